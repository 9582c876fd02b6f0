//! The application's description of the connection to open.

use crate::error::Error;
use crate::header::{self, Header, is_token_byte};
use crate::redact;

/// What to connect to: a URL, extra headers and the subprotocols to offer.
///
/// ```
/// let request = syncws::Request::builder("wss://example.com/chat?room=1")
///     .header("Authorization", "Bearer t")
///     .subprotocol("chat")
///     .build()?;
/// assert_eq!(request.url().scheme(), "wss");
/// assert_eq!(request.subprotocols(), ["chat"]);
/// # Ok::<(), syncws::Error>(())
/// ```
///
/// `Debug` shows the URL without userinfo, query and fragment (they may hold tokens) and the
/// values of credential headers as `<redacted>`; [`url`](Self::url) and
/// [`headers`](Self::headers) give them whole.
#[derive(Clone)]
pub struct Request {
    url: url::Url,
    headers: Vec<Header>,
    subprotocols: Vec<String>,
    peer_addr: Option<std::net::SocketAddr>,
    /// The application's value for the socket ([`RequestBuilder::data`]).
    data: Option<SocketData>,
}

/// An application's value attached to a socket: see [`WebSocket::data`](crate::WebSocket::data).
pub(crate) type SocketData = std::sync::Arc<dyn std::any::Any + Send + Sync>;

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("url", &self.shown_url())
            .field("headers", &self.headers)
            .field("subprotocols", &self.subprotocols)
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

impl Request {
    /// Starts a request for `url`: `ws://`, `wss://`, `http://` or `https://` (http and https
    /// are read as ws and wss).
    pub fn builder(url: &str) -> RequestBuilder {
        RequestBuilder {
            url: url.to_owned(),
            headers: Vec::new(),
            subprotocols: Vec::new(),
            data: None,
        }
    }

    /// The application's value attached with [`RequestBuilder::data`].
    pub(crate) fn socket_data(&self) -> Option<&SocketData> {
        self.data.as_ref()
    }

    /// The URL, with its scheme normalised to `ws` or `wss`. On the server, what the client
    /// asked for: the `Host` header's host and port and the request target's path and query,
    /// both checked (an invalid or ambiguous one was answered 400 before the handler ran).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The application's own headers (on the server: every header of the client's request),
    /// in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// On the server, the address of the client as TCP sees it (behind a reverse proxy, the
    /// proxy's): what an accept handler limits per client by. `None` for a client's request.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer_addr
    }

    /// The first value of header `name` (case-insensitive) that is UTF-8, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        header::values(&self.headers, name).next()
    }

    /// The first value of header `name` (case-insensitive), as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        header::bytes(&self.headers, name).next()
    }

    /// The subprotocols offered, in order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "wss"
    }

    /// The URL as logs, error texts and `Debug` show it: without userinfo, query and fragment
    /// ([`redact::url`]).
    pub(crate) fn shown_url(&self) -> String {
        redact::url(self.url.as_str())
    }

    /// Host and port to connect to.
    pub(crate) fn host_port(&self) -> Result<(String, u16), Error> {
        let host = self
            .url
            .host_str()
            .ok_or_else(|| Error::InvalidUrl(format!("{}: no host", self.shown_url())))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = self
            .url
            .port_or_known_default()
            .unwrap_or(if self.is_tls() { 443 } else { 80 });
        Ok((host, port))
    }

    /// Builds a request the server role received (the URL from its Host header and path).
    pub(crate) fn from_parts(
        url: url::Url,
        headers: Vec<Header>,
        subprotocols: Vec<String>,
        peer_addr: Option<std::net::SocketAddr>,
    ) -> Request {
        Request {
            url,
            headers,
            subprotocols,
            peer_addr,
            data: None,
        }
    }
}

/// Builder for [`Request`]; see [`Request::builder`]. `Debug` redacts as [`Request`]'s does.
#[derive(Clone)]
pub struct RequestBuilder {
    url: String,
    headers: Vec<Header>,
    subprotocols: Vec<String>,
    data: Option<SocketData>,
}

impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("url", &redact::url(&self.url))
            .field("headers", &self.headers)
            .field("subprotocols", &self.subprotocols)
            .finish()
    }
}

impl RequestBuilder {
    /// Adds a header sent with the upgrade request (`Authorization`, `Origin`, `Cookie`, ...).
    ///
    /// A redirect to another origin drops `Authorization`, `Proxy-Authorization` and `Cookie`
    /// and keeps every other header: add other credentials with
    /// [`sensitive_header`](Self::sensitive_header).
    ///
    /// The handshake headers the library writes itself (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`) are refused by [`build`](Self::build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name.into(), value.into()));
        self
    }

    /// Adds a header whose value is bytes that need not be UTF-8 (HTTP's `obs-text`), sent as
    /// they are. The same rules as [`header`](Self::header) apply.
    pub fn header_bytes(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name.into(), value.into()));
        self
    }

    /// Adds a header whose value is a credential (an API key, a token): sent like
    /// [`header`](Self::header), but **dropped when a redirect leaves the origin** (the scheme,
    /// host or port changes) and shown as `<redacted>` by `Debug`. Like the `http` crate's
    /// `HeaderValue::set_sensitive`, which converts to it (feature `http`).
    ///
    /// `Authorization`, `Proxy-Authorization` and `Cookie` are treated this way without being
    /// marked; mark every other header that authenticates (`X-Api-Key`, `X-Auth-Token`, ...).
    ///
    /// ```
    /// let request = syncws::Request::builder("wss://api.example.com/feed")
    ///     .sensitive_header("X-Api-Key", "k-123")
    ///     .header("X-Trace", "t-1") // goes along to any origin
    ///     .build()?;
    /// assert!(request.headers()[0].is_sensitive());
    /// assert!(!format!("{request:?}").contains("k-123"));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn sensitive_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push(Header::sensitive(name.into(), value.into()));
        self
    }

    /// [`sensitive_header`](Self::sensitive_header) with a value of bytes that need not be
    /// UTF-8, as [`header_bytes`](Self::header_bytes).
    pub fn sensitive_header_bytes(
        mut self,
        name: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        self.headers
            .push(Header::sensitive(name.into(), value.into()));
        self
    }

    /// Adds `header` as it is, its mark included (a redirect carries headers over).
    pub(crate) fn push_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call once per protocol, most preferred
    /// first. The server's choice is checked against the offer.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Attaches the application's `value` to the socket made from this request, for every
    /// callback to read with [`WebSocket::data`](crate::WebSocket::data) (a session id, a
    /// room, what the user typed to open it) without a map keyed by socket. Not sent.
    ///
    /// ```
    /// struct Room(&'static str);
    /// let request = syncws::Request::builder("ws://127.0.0.1:9/").data(Room("lobby")).build()?;
    /// # let _ = request;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn data<T: std::any::Any + Send + Sync>(mut self, value: T) -> RequestBuilder {
        self.data = Some(std::sync::Arc::new(value));
        self
    }

    /// Checks the URL and headers.
    pub fn build(self) -> Result<Request, Error> {
        // The URL in an error is redacted: it may carry a token or a password.
        let shown = || redact::url(&self.url);
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::InvalidUrl(format!("{}: {e}", shown())))?;
        let scheme = match url.scheme() {
            "ws" | "http" => "ws",
            "wss" | "https" => "wss",
            other => {
                return Err(Error::InvalidUrl(format!(
                    "{}: scheme '{other}' is not ws, wss, http or https",
                    shown()
                )));
            }
        };
        if url.scheme() != scheme {
            // Switching between these special schemes never fails; keep the old one if it did.
            let _ = url.set_scheme(scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl(format!("{}: no host", shown())));
        }
        url.set_fragment(None);
        for h in &self.headers {
            let name = h.name();
            if let Some(why) = header::invalid(name, h.value()) {
                return Err(Error::InvalidRequest(why));
            }
            if header::written_by_syncws(name) {
                return Err(Error::InvalidRequest(format!(
                    "header {name} is written by syncws itself; use Request::subprotocol for \
                     subprotocols and ClientBuilder options for extensions"
                )));
            }
        }
        for p in &self.subprotocols {
            if p.is_empty() || !p.bytes().all(is_token_byte) {
                return Err(Error::InvalidRequest(format!(
                    "subprotocol {p:?} is not a valid HTTP token"
                )));
            }
        }
        Ok(Request {
            url,
            headers: self.headers,
            subprotocols: self.subprotocols,
            peer_addr: None,
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        for (input, scheme) in [
            ("ws://a/", "ws"),
            ("WS://a/", "ws"),
            ("http://a/", "ws"),
            ("wss://a/", "wss"),
            ("https://a/", "wss"),
        ] {
            assert_eq!(
                Request::builder(input).build().unwrap().url().scheme(),
                scheme
            );
        }
        assert!(matches!(
            Request::builder("ftp://a/").build(),
            Err(Error::InvalidUrl(_))
        ));
        assert!(matches!(
            Request::builder("nonsense").build(),
            Err(Error::InvalidUrl(_))
        ));
    }

    #[test]
    fn default_ports() {
        let r = Request::builder("wss://example.com/x").build().unwrap();
        assert_eq!(r.host_port().unwrap(), ("example.com".into(), 443));
        let r = Request::builder("ws://[::1]:8080/x").build().unwrap();
        assert_eq!(r.host_port().unwrap(), ("::1".into(), 8080));
    }

    #[test]
    fn rejects_bad_headers() {
        for (n, v) in [
            ("Sec-WebSocket-Extensions", "x"),
            ("connection", "close"),
            ("X Bad", "v"),
            ("X-Ok", "a\r\nInjected: 1"),
        ] {
            assert!(
                matches!(
                    Request::builder("ws://a/").header(n, v).build(),
                    Err(Error::InvalidRequest(_))
                ),
                "{n}"
            );
        }
        assert!(
            Request::builder("ws://a/")
                .subprotocol("a b")
                .build()
                .is_err()
        );
    }
}
