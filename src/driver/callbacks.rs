//! What the driver tells the application, and nothing about how: the public listener sits
//! behind [`Callbacks`] with the socket's handle (`listener::Bound`), so the driver knows
//! neither the listener trait nor `WebSocket`.

use std::time::Duration;

use crate::ended::Ended;
use crate::message::Message;
use crate::proto::decoder::Part;
use crate::response::Response;

/// What the reader tells the application, in order: the open, each message, the peer's close,
/// and the end.
#[allow(unused_variables)]
pub(crate) trait Callbacks: Send {
    fn open(&mut self, response: &Response) {}
    fn message(&mut self, message: Message) {}
    /// Whether large messages are to come in parts (`part`) rather than whole: asked before
    /// each read, and it holds for the messages that start in it.
    fn wants_parts(&self) -> bool {
        false
    }
    /// A piece of a large message, when `wants_parts` said so.
    fn part(&mut self, part: Part) {}
    /// The peer's ping (already answered: its pong is queued).
    fn ping(&mut self, payload: &[u8]) {}
    /// A pong; `rtt` when it answered one of our pings.
    fn pong(&mut self, payload: &[u8], rtt: Option<Duration>) {}
    fn closing(&mut self, code: u16, reason: &str) {}
    /// Whether the peer's close is answered as soon as `closing` returns (if the application
    /// did not answer in it). False: the application answers when it is done writing.
    fn answers_peer_close(&self) -> bool {
        true
    }
    /// Once, last.
    fn ended(&mut self, ended: Ended) {}
    /// The reader is about to block (in a read, or waiting for room): whatever the
    /// callbacks hold back for a batched hand-off goes to the application now.
    fn flush(&mut self) {}
}

/// The callbacks of a socket whose listener is gone.
pub(crate) struct NoCallbacks;

impl Callbacks for NoCallbacks {}
