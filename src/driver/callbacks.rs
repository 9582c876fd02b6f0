//! What the driver tells the application, and nothing about how: the public listener sits
//! behind [`Callbacks`] with the socket's handle (`listener::Bound`), so the driver knows
//! neither the listener trait nor `WebSocket`.

use crate::ended::Ended;
use crate::message::Message;
use crate::response::Response;

/// What the reader tells the application, in order: the open, each message, the peer's close,
/// and the end.
#[allow(unused_variables)]
pub(crate) trait Callbacks: Send {
    fn open(&mut self, response: &Response) {}
    fn message(&mut self, message: Message) {}
    fn closing(&mut self, code: u16, reason: &str) {}
    /// Once, last.
    fn ended(&mut self, ended: Ended) {}
    /// The reader is about to block (in a read, or waiting for room): whatever the
    /// callbacks hold back for a batched hand-off goes to the application now.
    fn flush(&mut self) {}
}

/// The callbacks of a socket whose listener is gone.
pub(crate) struct NoCallbacks;

impl Callbacks for NoCallbacks {}
