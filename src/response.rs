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
}
