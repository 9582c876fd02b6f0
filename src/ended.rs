//! How a socket ended: the one answer its terminal callback, the pull API's last event, the
//! blocking `Connection` and the reconnecting socket all give.

use std::fmt;

use crate::error::Error;
use crate::response::Response;

/// How a socket ended, decided once, when it ends.
///
/// A listener hears it as [`on_closed`](crate::WebSocketListener::on_closed) or
/// [`on_failure`](crate::WebSocketListener::on_failure) (or as a whole, in
/// [`on_ended`](crate::WebSocketListener::on_ended)); [`channel`](crate::channel) delivers it
/// as [`Event::Ended`](crate::Event::Ended); a blocking [`Connection`](crate::Connection)
/// returns it from `recv` as an [`Error`] ([`into_error`](Self::into_error)); a
/// reconnecting socket tells [`Reconnect::on_retry`](crate::Reconnect::on_retry) why the last
/// connection ended with it.
///
/// ```
/// use syncws::{Ended, Event};
/// let server = syncws::EchoServer::start()?;
/// let (listener, events) = syncws::channel();
/// let ws = syncws::Client::new()
///     .new_web_socket(syncws::Request::builder(&server.url()).build()?, listener);
/// ws.close(1000, Some("done"))?;
/// for event in events.iter() {
///     if let Event::Ended(ended) = event {
///         assert!(matches!(ended, Ended::Closed { code: 1000, by_peer: false, .. }));
///         break;
///     }
/// }
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Ended {
    /// The close handshake completed: both close frames were exchanged and the connection is
    /// closed.
    Closed {
        /// The peer's close code (1005 if its close frame had none).
        code: u16,
        /// The peer's close reason.
        reason: String,
        /// Whether the peer sent the first close frame. False when this side did: `close()`
        /// (from any handle), or the 1001 close of a full send queue.
        by_peer: bool,
    },
    /// The socket failed or was canceled, or its handshake did not succeed.
    Failed {
        /// What went wrong ([`Error::Canceled`] after `cancel()`).
        error: Error,
        /// The server's answer to the upgrade, when the handshake got that far (a refusal).
        response: Option<Box<Response>>,
    },
}

impl Ended {
    /// Whether the close handshake completed.
    pub fn is_clean(&self) -> bool {
        matches!(self, Ended::Closed { .. })
    }

    /// The error, for a socket that failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Ended::Failed { error, .. } => Some(error),
            Ended::Closed { .. } => None,
        }
    }

    /// The server's answer to the upgrade, for a refused handshake.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Ended::Failed { response, .. } => response.as_deref(),
            Ended::Closed { .. } => None,
        }
    }

    /// As an [`Error`]: [`Error::Closed`] for a clean close, the error itself for a failure
    /// (with the server's answer attached to a refused handshake).
    pub fn into_error(self) -> Error {
        match self {
            Ended::Closed { code, reason, .. } => Error::Closed { code, reason },
            Ended::Failed { error, response } => error.with_response(response.map(|r| *r)),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Closed {
                code,
                reason,
                by_peer,
            } => {
                let who = if *by_peer { "the peer" } else { "this side" };
                write!(f, "closed by {who} with {code} {reason:?}")
            }
            Ended::Failed { error, .. } => write!(f, "{error}"),
        }
    }
}
