//! The crate's one error type.

use std::fmt;
use std::io;
use std::time::Duration;

/// Everything that can go wrong with a web socket, from building the request to the last frame.
///
/// Errors reach the application in two ways: returned by a call (`Request::builder(..).build()`,
/// [`WebSocket::close`](crate::WebSocket::close)), or delivered once to
/// [`WebSocketListener::on_failure`](crate::WebSocketListener::on_failure) when a socket fails.
/// The `Display` text says what happened and, where there is something to do, what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed (connection refused, reset, broken pipe, ...).
    Io(io::Error),
    /// The TLS handshake or the TLS session failed (untrusted certificate, bad record, ...).
    Tls(String),
    /// The URL could not be parsed or has a scheme other than ws, wss, http or https.
    InvalidUrl(String),
    /// The request carries a header the application may not set or a malformed header.
    InvalidRequest(String),
    /// The server answered the upgrade request with something other than a valid 101.
    HandshakeRejected(String),
    /// The peer broke RFC 6455; the socket sent a close frame with 1002 and gave up.
    Protocol(String),
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
}

impl Error {
    /// The close code this error is reported to the peer with, when the RFC gives one.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self {
            Error::Protocol(_) => Some(1002),
            Error::InvalidUtf8 => Some(1007),
            Error::MessageTooLarge { .. } => Some(1009),
            Error::ListenerPanicked(_) => Some(1011),
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
            Error::HandshakeRejected(e) => write!(f, "web socket handshake rejected: {e}"),
            Error::Protocol(e) => {
                write!(f, "protocol violation by the peer: {e} (sent close 1002)")
            }
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
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
