//! The reader's side of a `Connection`: what the socket's reader thread hands to the caller's
//! thread ([`Handed`]), in batches, one per read of the reader (and at once for the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::driver::callbacks::Callbacks;
use crate::driver::handoff::{self, INLINE_MAX, Received};
use crate::ended::Ended;
use crate::listener::EVENT_CHARGE;
use crate::message::Message;
use crate::proto::decoder::Part;

/// What a `Connection`'s caller receives.
pub(crate) enum Handed {
    Message(Message),
    /// The peer's close frame came, for a byte stream: the end of its reads.
    PeerClosed,
    /// A piece of a large message, once the caller asked for streams.
    Part(Part),
    Ended(Ended),
}

impl Handed {
    /// What it is charged in the backlog: its payload, plus the cost of an event.
    fn charge(&self) -> usize {
        let payload = match self {
            Handed::Message(m) => m.len(),
            Handed::Part(p) => p.data.len(),
            Handed::Ended(_) | Handed::PeerClosed => 0,
        };
        payload.saturating_add(EVENT_CHARGE)
    }
}

pub(crate) struct Feed {
    tx: handoff::Sender<Handed>,
    modes: Arc<Modes>,
}

/// How the caller receives, set from its thread, read by the reader's.
#[derive(Default)]
pub(crate) struct Modes {
    /// Set once the caller receives a stream: large messages then come in parts.
    pub parts: AtomicBool,
    /// A byte stream: the peer's close ends its reads at once, and is answered when the
    /// caller is done writing (a half-close), not right away.
    pub half_close: AtomicBool,
    /// Callers of `Connection::ping` waiting for their pong: its payload and where its
    /// round trip goes.
    pub pong_waiters: parking_lot::Mutex<Vec<(Vec<u8>, crossbeam_channel::Sender<Duration>)>>,
}

impl Feed {
    pub(crate) fn new(tx: handoff::Sender<Handed>, modes: Arc<Modes>) -> Feed {
        Feed { tx, modes }
    }

    fn push(&mut self, handed: Handed) {
        let charge = handed.charge();
        self.tx.push(handed, charge);
    }
}

impl Callbacks for Feed {
    // No `open`: the caller (`Client::connect`, or the server's upgrade) has the response.
    fn message(&mut self, message: Message) {
        if message.len() <= INLINE_MAX {
            // Copied into the batch, and freed here; the caller's thread makes its own copy.
            let charge = message.len().saturating_add(EVENT_CHARGE);
            let text = matches!(message, Message::Text(_));
            self.tx.push_bytes(text, message.as_bytes(), charge);
        } else {
            self.push(Handed::Message(message));
        }
    }
    fn wants_parts(&self) -> bool {
        self.modes.parts.load(Ordering::Relaxed)
    }
    fn closing(&mut self, _code: u16, _reason: &str) {
        if self.modes.half_close.load(Ordering::Relaxed) {
            self.push(Handed::PeerClosed);
            self.tx.flush();
        }
    }
    fn answers_peer_close(&self) -> bool {
        !self.modes.half_close.load(Ordering::Relaxed)
    }
    fn part(&mut self, part: Part) {
        self.push(Handed::Part(part));
    }
    fn pong(&mut self, payload: &[u8], rtt: Option<Duration>) {
        let Some(rtt) = rtt else { return };
        let mut waiters = self.modes.pong_waiters.lock();
        if let Some(i) = waiters.iter().position(|(p, _)| p == payload) {
            let (_, tx) = waiters.swap_remove(i);
            let _ = tx.try_send(rtt);
        }
    }
    // `closing` only for a byte stream: a `Connection` answers the peer's close itself and
    // reports the end that follows, so waking its caller for the close frame would be a
    // wasted hand-off.
    fn ended(&mut self, ended: Ended) {
        self.push(Handed::Ended(ended));
        self.tx.flush();
    }
    fn flush(&mut self) {
        self.tx.flush();
    }
}

/// What the caller's thread receives: a small message is made here, from the batch's bytes
/// (valid UTF-8 for text: the decoder checked it).
pub(crate) fn handed(received: Received<Handed>) -> Handed {
    match received {
        Received::Other(handed) => handed,
        Received::Bytes { text: false, bytes } => Handed::Message(Message::Binary(bytes)),
        Received::Bytes { text: true, bytes } => match String::from_utf8(bytes) {
            Ok(s) => Handed::Message(Message::Text(s)),
            // Cannot happen (the decoder validated it); a binary message says what came.
            Err(e) => Handed::Message(Message::Binary(e.into_bytes())),
        },
    }
}
