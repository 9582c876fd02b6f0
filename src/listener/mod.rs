//! How the application hears about a socket: the [`WebSocketListener`] trait (here),
//! closures ([`Listener`], `closures.rs`), or a channel of events ([`channel()`], `channel.rs`).

mod channel;
mod closures;

pub use channel::{
    ChannelListener, DEFAULT_CHANNEL_LIMIT, EVENT_CHARGE, Event, Events, channel,
    channel_with_limit, channel_with_waker,
};
pub use closures::Listener;

use std::time::Duration;

use crate::driver::callbacks::Callbacks;
use crate::ended::Ended;
use crate::error::Error;
use crate::message::{Message, MessageKind, MessagePart};
use crate::proto::decoder::Part;
use crate::response::Response;
use crate::websocket::WebSocket;

/// Receives a socket's events. Every method has a default that does nothing.
///
/// # Guarantees
/// - All callbacks of one socket run on that socket's reader thread, one at a time, in wire
///   order: `on_open` first (if the handshake succeeds), then messages, `on_closing` when the
///   peer's close frame arrives, then exactly one of `on_closed` or `on_failure`, and nothing
///   after it. Failures found by the writer thread, a timer or [`WebSocket::cancel`] are
///   reported from that same thread.
/// - Callbacks may call `send`, `close` and `cancel` on their own socket: none of them blocks.
/// - A slow callback delays reading on its own socket only (and so the peer's writes, through
///   TCP flow control); pings keep being answered once it returns.
/// - A panic in a callback is caught: the socket sends close 1011 and reports
///   [`Error::ListenerPanicked`] through `on_failure`. A panic in `on_closed` or `on_failure` is
///   logged and swallowed.
#[allow(unused_variables)]
pub trait WebSocketListener: Send + 'static {
    /// The handshake succeeded; messages may flow.
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {}
    /// A whole message arrived (fragments reassembled, text checked as UTF-8).
    fn on_message(&mut self, ws: &WebSocket, message: Message) {}
    /// Whether large messages come in parts, through
    /// [`on_message_part`](Self::on_message_part), instead of whole. Default false: every
    /// message arrives whole, within `max_message_size`.
    ///
    /// When true, a message that grows past 64 KiB (or past `max_message_size`) is handed
    /// over as it arrives, in parts of about 64 KiB, and may be as large as
    /// `max_streamed_message_size` allows (`ClientBuilder`, `ServerBuilder`); smaller
    /// messages still come whole, through `on_message`. Asked before each read of the socket,
    /// for the messages that start in it.
    fn receives_parts(&self) -> bool {
        false
    }
    /// A part of a large message, when [`receives_parts`](Self::receives_parts) says so: its
    /// parts come in order ([`MessagePart::is_first`] to [`MessagePart::is_last`]), with no
    /// other message between them. The socket reads nothing while this runs, so a slow
    /// consumer holds the peer back (TCP flow control) and memory stays at one part.
    fn on_message_part(&mut self, ws: &WebSocket, part: MessagePart) {}
    /// The peer sent a ping with `payload`. It is answered already (its pong is queued, as
    /// RFC 6455 §5.5.2 asks): this is for seeing it, a heartbeat the peer sends, say.
    fn on_ping(&mut self, ws: &WebSocket, payload: &[u8]) {}
    /// A pong arrived with `payload`. `rtt` is the round trip when it answers one of our
    /// pings ([`WebSocket::ping`], or an automatic keepalive ping), `None` for an unsolicited
    /// pong (a heartbeat, RFC 6455 §5.5.3) or one we no longer remember.
    fn on_pong(&mut self, ws: &WebSocket, payload: &[u8], rtt: Option<Duration>) {}
    /// The peer sent its close frame. Unless `close` was called already, the socket answers with
    /// the same code right after this returns; call `close` here to answer differently.
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {}
    /// Both close frames were exchanged and the connection is closed. Carries the peer's code
    /// and reason. Terminal.
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {}
    /// The socket failed: handshake error, network error, protocol violation by the peer,
    /// timeout, or cancel. `response` is the server's answer when the handshake got that far.
    /// Terminal.
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {}
    /// The socket ended, however it did: called once, last. The default hands a clean close
    /// to [`on_closed`](Self::on_closed) and anything else to
    /// [`on_failure`](Self::on_failure); override it instead of those two to handle the end
    /// as one value ([`Ended`]).
    fn on_ended(&mut self, ws: &WebSocket, ended: Ended) {
        match ended {
            Ended::Closed { code, reason, .. } => self.on_closed(ws, code, &reason),
            Ended::Failed { error, response } => self.on_failure(ws, error, response.as_deref()),
        }
    }
}

/// A listener bound to its socket's handle: what the driver calls ([`Callbacks`]), in the
/// terms of the public API ([`WebSocketListener`] with a `&WebSocket`).
pub(crate) struct Bound {
    ws: WebSocket,
    listener: Box<dyn WebSocketListener>,
}

impl Bound {
    pub(crate) fn new(ws: WebSocket, listener: Box<dyn WebSocketListener>) -> Box<Bound> {
        Box::new(Bound { ws, listener })
    }
}

impl Callbacks for Bound {
    fn open(&mut self, response: &Response) {
        self.listener.on_open(&self.ws, response);
    }
    fn message(&mut self, message: Message) {
        self.listener.on_message(&self.ws, message);
    }
    fn wants_parts(&self) -> bool {
        self.listener.receives_parts()
    }
    fn part(&mut self, part: Part) {
        let part = MessagePart {
            kind: if part.text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            first: part.first,
            last: part.last,
            data: part.data,
        };
        self.listener.on_message_part(&self.ws, part);
    }
    fn ping(&mut self, payload: &[u8]) {
        self.listener.on_ping(&self.ws, payload);
    }
    fn pong(&mut self, payload: &[u8], rtt: Option<Duration>) {
        self.listener.on_pong(&self.ws, payload, rtt);
    }
    fn closing(&mut self, code: u16, reason: &str) {
        self.listener.on_closing(&self.ws, code, reason);
    }
    fn ended(&mut self, ended: Ended) {
        self.listener.on_ended(&self.ws, ended);
    }
}
