//! Knowing when a message was written: [`WebSocket::send_with_receipt`] and its [`Receipt`].

use std::time::{Duration, Instant};

use crate::websocket::WebSocket;

/// What became of a message sent with [`WebSocket::send_with_receipt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteStatus {
    /// It left the queue and was handed to the operating system (written to the socket, or
    /// to the TLS session's records). Not a sign the peer read it: only a reply says that.
    Written,
    /// Still queued (or being written).
    Pending,
    /// It never will be: the socket was canceled or failed before it was written, or the peer
    /// closed first and what was still queued was discarded.
    NotWritten,
}

/// Says when one message was written (OkHttp's long-asked "message written" callback, uWS's
/// drain, for one message). Cheap: a number, compared with the socket's count of written
/// messages; a plain [`send`](WebSocket::send) costs nothing more for it existing.
///
/// ```
/// use std::time::Duration;
/// use syncws::WriteStatus;
/// let server = syncws::EchoServer::start()?;
/// let conn = syncws::connect(&server.url())?;
/// let receipt = conn.websocket().send_with_receipt("saved").expect("queued");
/// assert_eq!(receipt.wait(Duration::from_secs(5)), WriteStatus::Written);
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Receipt {
    ws: WebSocket,
    /// The message's number on its socket (see `Outbox::send_numbered`).
    number: u64,
}

impl Receipt {
    pub(crate) fn new(ws: WebSocket, number: u64) -> Receipt {
        Receipt { ws, number }
    }

    /// What became of the message so far; never blocks.
    pub fn status(&self) -> WriteStatus {
        let outbox = &self.ws.socket.outbox;
        if outbox.is_written(self.number) {
            return WriteStatus::Written;
        }
        // Finished: the writer is gone, the count is final (looked at again, in case the
        // last write landed between the two looks).
        if self.ws.socket.is_finished() {
            return if outbox.is_written(self.number) {
                WriteStatus::Written
            } else {
                WriteStatus::NotWritten
            };
        }
        WriteStatus::Pending
    }

    /// Waits up to `timeout` until the message is written or never will be; `Pending` if the
    /// time ran out first. Woken by the writer as it writes, not by polling. Do not call it
    /// from a listener callback with a long timeout: the socket's reader waits meanwhile.
    pub fn wait(&self, timeout: Duration) -> WriteStatus {
        let deadline = Instant::now().checked_add(timeout);
        let socket = &self.ws.socket;
        socket
            .outbox
            .wait_written(self.number, deadline, || socket.is_finished());
        self.status()
    }
}

impl WebSocket {
    /// [`send`](Self::send), with a [`Receipt`] that says when the message was written, or
    /// that it never will be. `None` where `send` returns false (the message was not
    /// queued; a full queue starts the same close with 1001).
    pub fn send_with_receipt(&self, message: impl Into<crate::Message>) -> Option<Receipt> {
        match self.socket.send_numbered(message.into()) {
            Ok(number) => Some(Receipt::new(self.clone(), number)),
            Err(e) => {
                // The same refusal as `send`'s (a full queue closes with 1001).
                self.queued(Err(e));
                None
            }
        }
    }
}
