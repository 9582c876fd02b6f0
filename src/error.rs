//! The crate's one error type.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::response::Response;

mod protocol;

pub use protocol::ProtocolError;

/// Everything that can go wrong with a web socket, from building the request to the last frame.
///
/// Errors reach the application in two ways: returned by a call (`Request::builder(..).build()`,
/// [`WebSocket::close`](crate::WebSocket::close)), or delivered once to
/// [`WebSocketListener::on_failure`](crate::WebSocketListener::on_failure) when a socket fails.
/// The `Display` text says what happened and, where there is something to do, what to do.
///
/// `Error` is `Clone`: the blocking [`Connection`](crate::Connection) returns the error that
/// ended its socket from every later `recv`, and an application may hand one error to several
/// places. `Error::Io` holds its [`io::Error`] in an [`Arc`] for this (`io::Error` is not
/// `Clone`), so a copy keeps the original's kind, OS error code and source.
///
/// ```
/// use std::io;
///
/// let error = syncws::Error::from(io::Error::from_raw_os_error(111));
/// let copy = error.clone();
/// match (&error, &copy) {
///     (syncws::Error::Io(a), syncws::Error::Io(b)) => {
///         assert_eq!(b.raw_os_error(), Some(111));
///         assert!(std::sync::Arc::ptr_eq(a, b), "one io::Error, shared");
///     }
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed (connection refused, reset, broken pipe, ...).
    ///
    /// The `io::Error` is shared (an [`Arc`]) so that `Error` can be `Clone` without losing
    /// it; methods such as `kind()` and `raw_os_error()` are called through it as usual, and
    /// [`source`](std::error::Error::source) returns it. Build one with `Error::from(io_error)`.
    Io(Arc<io::Error>),
    /// The TLS handshake or the TLS session failed (untrusted certificate, bad record, ...).
    Tls(String),
    /// The URL could not be parsed or has a scheme other than ws, wss, http or https.
    InvalidUrl(String),
    /// The request carries a header the application may not set or a malformed header.
    InvalidRequest(String),
    /// The server answered the upgrade request with something other than a valid 101.
    HandshakeRejected {
        /// What was wrong with the answer.
        message: String,
        /// The server's answer, when it sent one (its status, headers and the first bytes of
        /// its body); also given to `on_failure`.
        response: Option<Box<Response>>,
    },
    /// The peer broke RFC 6455 (or RFC 7692) in the way the [`ProtocolError`] says; the
    /// socket sent a close frame with its [`close_code`](ProtocolError::close_code) (1002) and
    /// gave up.
    Protocol(ProtocolError),
    /// A text message or close reason was not valid UTF-8; the socket sent close 1007.
    InvalidUtf8,
    /// An incoming message was larger than `max_message_size`; the socket sent close 1009.
    MessageTooLarge {
        /// The size the message reached or announced, in bytes.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A ping was sent and no pong came back within the pong timeout.
    PongTimeout {
        /// The pong timeout in force.
        timeout: Duration,
        /// How many pings were answered before this one.
        successful: u64,
    },
    /// The peer did not answer our close frame within the close timeout.
    CloseTimeout(Duration),
    /// The TCP connection could not be set up within the connect timeout.
    ConnectTimeout(Duration),
    /// The server did not finish the opening handshake within the read timeout.
    ReadTimeout(Duration),
    /// A write could not make progress within the write timeout (the peer stopped reading).
    WriteTimeout(Duration),
    /// The peer closed the TCP connection without a close frame.
    UnexpectedEof,
    /// `close` was called with a code that may not be sent.
    InvalidCloseCode(u16),
    /// `close` was called with a reason longer than 123 UTF-8 bytes.
    ReasonTooLong(usize),
    /// A listener callback panicked; the socket sent close 1011.
    ListenerPanicked(String),
    /// The socket was canceled by [`WebSocket::cancel`](crate::WebSocket::cancel).
    Canceled,
    /// The `Read` a streamed message was being sent from failed, or a text stream was not
    /// UTF-8 ([`WebSocket::send_stream`](crate::WebSocket::send_stream)). If part of the
    /// message had been queued, the socket sent close 1011 and failed with this error (a
    /// message cannot be taken back once its first frame is out); if nothing had, only the
    /// send failed.
    MessageSource(Arc<io::Error>),
    /// A conversion to or from an `http` crate type failed (feature `http`).
    Http(String),
    /// The socket was closed cleanly: both close frames were exchanged. Returned by the
    /// blocking [`Connection::recv`](crate::Connection::recv) once the socket has ended; carries
    /// the peer's close code (1005 if it sent none) and reason.
    Closed {
        /// The peer's close code.
        code: u16,
        /// The peer's close reason.
        reason: String,
    },
    /// A proxy URL is invalid, or the proxy could not be reached or refused, closed or
    /// garbled the tunnel. The text names the proxy as `scheme://host:port` (never its user
    /// name or password) and what it said. A proxy that does not answer within the connect
    /// timeout is [`Error::ConnectTimeout`].
    Proxy(String),
}

impl Error {
    /// An [`Error::Io`] of `kind` with `message`: the driver's way of saying which step of a
    /// connection the failure happened in.
    pub(crate) fn io(kind: io::ErrorKind, message: impl Into<String>) -> Error {
        Error::from(io::Error::new(kind, message.into()))
    }

    /// A refused handshake, without the response (the driver attaches it).
    pub(crate) fn rejected(message: impl Into<String>) -> Error {
        Error::HandshakeRejected {
            message: message.into(),
            response: None,
        }
    }

    /// The server's response to the opening handshake, for an error that has one
    /// ([`Error::HandshakeRejected`] after the server answered).
    ///
    /// ```
    /// let server = syncws::Server::bind("127.0.0.1:0", |_| syncws::Accept::reject(401, "Unauthorized"))?;
    /// let error = syncws::connect(&server.url()).unwrap_err();
    /// assert_eq!(error.response().map(|r| r.status()), Some(401));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn response(&self) -> Option<&Response> {
        match self {
            Error::HandshakeRejected { response, .. } => response.as_deref(),
            _ => None,
        }
    }

    /// Attaches the handshake's response to a refused handshake.
    pub(crate) fn with_response(self, response: Option<Response>) -> Error {
        match (self, response) {
            (Error::HandshakeRejected { message, .. }, Some(r)) => Error::HandshakeRejected {
                message,
                response: Some(Box::new(r)),
            },
            (e, _) => e,
        }
    }

    /// The close code the socket answers this error with: `Some` for the errors that are
    /// answered with a close frame before the connection is dropped (a protocol violation,
    /// invalid UTF-8, an oversized message, a panicking listener), `None` for the others
    /// (network failures, timeouts, the application's own mistakes, ...).
    ///
    /// ```
    /// use syncws::{Error, ProtocolError};
    ///
    /// assert_eq!(Error::Protocol(ProtocolError::MaskedFrameFromServer).close_code(), Some(1002));
    /// assert_eq!(Error::InvalidUtf8.close_code(), Some(1007));
    /// assert_eq!(Error::MessageTooLarge { size: 2, limit: 1 }.close_code(), Some(1009));
    /// assert_eq!(Error::UnexpectedEof.close_code(), None);
    /// ```
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::InvalidUtf8 => Some(1007),
            Error::MessageTooLarge { .. } => Some(1009),
            Error::ListenerPanicked(_) | Error::MessageSource(_) => Some(1011),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            #[cfg(any(feature = "native-tls", feature = "rustls"))]
            Error::Tls(e) => write!(
                f,
                "TLS error: {e} (check the server's certificate chain, or configure the client \
                 to trust it: ClientBuilder::tls_connector or rustls_config)"
            ),
            // The one TLS error of a build without TLS: the hint above would mislead.
            #[cfg(not(any(feature = "native-tls", feature = "rustls")))]
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::InvalidUrl(e) => write!(f, "invalid web socket URL: {e}"),
            Error::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            Error::HandshakeRejected { message, .. } => {
                write!(f, "web socket handshake rejected: {message}")
            }
            Error::Protocol(e) => write!(
                f,
                "protocol violation by the peer: {e} (sent close {})",
                e.close_code()
            ),
            Error::InvalidUtf8 => {
                write!(
                    f,
                    "the peer sent text that is not valid UTF-8 (sent close 1007)"
                )
            }
            Error::MessageTooLarge { size, limit } => write!(
                f,
                "incoming message of at least {size} bytes exceeds max_message_size {limit} \
                 (sent close 1009; raise ClientBuilder::max_message_size if it is expected)"
            ),
            Error::PongTimeout {
                timeout,
                successful,
            } => write!(
                f,
                "sent ping but didn't receive pong within {}ms (after {successful} successful \
                 ping/pongs)",
                timeout.as_millis()
            ),
            Error::CloseTimeout(t) => write!(
                f,
                "the peer did not complete the close handshake within {}ms",
                t.as_millis()
            ),
            Error::ConnectTimeout(t) => {
                write!(f, "could not connect within {}ms", t.as_millis())
            }
            Error::ReadTimeout(t) => write!(
                f,
                "the server did not complete the opening handshake within {}ms",
                t.as_millis()
            ),
            Error::WriteTimeout(t) => write!(
                f,
                "a write made no progress for {}ms: the peer is not reading",
                t.as_millis()
            ),
            Error::UnexpectedEof => {
                write!(f, "the peer closed the connection without a close frame")
            }
            Error::InvalidCloseCode(c) => write!(
                f,
                "close code {c} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            ),
            Error::ReasonTooLong(n) => write!(
                f,
                "close reason is {n} UTF-8 bytes; at most 123 fit in a close frame"
            ),
            Error::ListenerPanicked(m) => {
                write!(f, "a listener callback panicked: {m} (sent close 1011)")
            }
            Error::Canceled => write!(f, "the web socket was canceled"),
            Error::MessageSource(e) => write!(
                f,
                "the source of a streamed message failed: {e} (once part of it was sent, the \
                 socket sent close 1011)"
            ),
            Error::Http(e) => write!(f, "converting to or from an http type: {e}"),
            Error::Closed { code, reason } if reason.is_empty() => {
                write!(f, "the web socket is closed (the peer's code {code})")
            }
            Error::Closed { code, reason } => write!(
                f,
                "the web socket is closed (the peer's code {code}, reason {reason:?})"
            ),
            Error::Proxy(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The io::Error itself, not the Arc: callers downcast to io::Error.
            Error::Io(e) | Error::MessageSource(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}
