//! The server's answer to the upgrade request.

use crate::header::Header;

/// The HTTP response to the opening handshake.
///
/// Given to [`WebSocketListener::on_open`](crate::WebSocketListener::on_open) for a successful
/// upgrade, and to `on_failure` when the server answered but the handshake failed; for a non-101
/// answer, [`body`](Self::body) holds the first bytes of the body (at most 4 KiB).
///
/// `Debug` shows the URL without userinfo, query and fragment and the values of credential
/// headers (`Set-Cookie`) as `<redacted>`: an [`Error`](crate::Error) that carries a response
/// can be logged with `{:?}`.
#[derive(Clone, Default)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<Header>,
    pub(crate) subprotocol: Option<String>,
    pub(crate) body: Vec<u8>,
    pub(crate) url: Option<url::Url>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .field("subprotocol", &self.subprotocol)
            .field("body", &self.body)
            .field(
                "url",
                &self.url.as_ref().map(|u| crate::redact::url(u.as_str())),
            )
            .finish()
    }
}

impl Response {
    /// The status code, 101 for an accepted upgrade.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase (`Switching Protocols`, `Not Found`, ...).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// All headers, in the order received, with their values' bytes.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive) that is UTF-8, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::header::values(&self.headers, name).next()
    }

    /// The first value of header `name` (case-insensitive), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        crate::header::bytes(&self.headers, name).next()
    }

    /// The subprotocol the server chose, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The URL that gave this answer: for a client, the last one after any redirects
    /// (`ClientBuilder::max_redirects`); for a server socket, the client's request URL.
    ///
    /// It is the whole URL, query and userinfo included (a redirect's target may need them to
    /// reconnect); `Debug` leaves those out, so log this with care.
    pub fn url(&self) -> Option<&url::Url> {
        self.url.as_ref()
    }

    /// The first bytes (at most 4 KiB) of the body of a failed handshake's response; empty for
    /// a 101.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// A response made by hand, for tests: the test kit's fake sockets
    /// (`testing::FakeSocket::open_with`) open with one. Add headers with
    /// [`with_header`](Self::with_header).
    ///
    /// ```
    /// let r = syncws::Response::new(429, "Too Many Requests").with_header("Retry-After", "3");
    /// assert_eq!(r.status(), 429);
    /// assert_eq!(r.header("retry-after"), Some("3"));
    /// ```
    pub fn new(status: u16, reason: &str) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            ..Response::default()
        }
    }

    /// A plain `101 Switching Protocols` (with `Upgrade` and `Connection` headers), for tests.
    ///
    /// ```
    /// let r = syncws::Response::switching_protocols();
    /// assert_eq!(r.status(), 101);
    /// assert_eq!(r.subprotocol(), None);
    /// ```
    pub fn switching_protocols() -> Response {
        Response::new(101, "Switching Protocols")
            .with_header("Upgrade", "websocket")
            .with_header("Connection", "Upgrade")
    }

    /// Adds a header; a `Sec-WebSocket-Protocol` header also sets
    /// [`subprotocol`](Self::subprotocol).
    ///
    /// ```
    /// let r = syncws::Response::switching_protocols().with_header("Sec-WebSocket-Protocol", "chat.v2");
    /// assert_eq!(r.subprotocol(), Some("chat.v2"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        if name.eq_ignore_ascii_case("Sec-WebSocket-Protocol") {
            self.subprotocol = Some(value.to_owned());
        }
        self.headers.push(crate::header::Header::new(name, value));
        self
    }
}
