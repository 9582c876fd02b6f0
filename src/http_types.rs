//! Conversions to and from the `http` crate's types (feature `http`), the types tungstenite,
//! ureq and the web frameworks use at their boundaries.
//!
//! Header values keep their bytes both ways: nothing is converted through text.

use crate::error::Error;
use crate::header;
use crate::request::Request;
use crate::response::Response;

/// An `http::Request<()>` for a client: a GET with an absolute `ws`, `wss`, `http` or `https`
/// URI.
///
/// - `Sec-WebSocket-Protocol` becomes the offered subprotocols, in order.
/// - `Sec-WebSocket-Extensions` is refused: compression is a client setting
///   ([`ClientBuilder::compression`](crate::ClientBuilder::compression)).
/// - The other headers syncws writes itself (the handshake's: `Host`, `Upgrade`,
///   `Connection`, `Sec-WebSocket-Key`, `-Version`, `-Accept`, and the framing ones) are
///   dropped: they come from the URI and the client's settings, with a fresh key, so a request
///   made for another WebSocket client (tungstenite's `into_client_request()` adds some)
///   converts without error.
/// - Every other header is kept with its value's exact bytes, in order. A value marked
///   sensitive (`HeaderValue::set_sensitive`) becomes a [sensitive
///   header](crate::RequestBuilder::sensitive_header): it stays with its origin across
///   redirects. The HTTP version and the extensions are ignored: the upgrade is always
///   HTTP/1.1.
///
/// ```
/// let http_request = http::Request::get("wss://example.com/chat")
///     .header("Authorization", "Bearer t")
///     .header("Sec-WebSocket-Protocol", "chat, superchat")
///     .body(())
///     .unwrap();
/// let request = syncws::Request::try_from(http_request)?;
/// assert_eq!(request.subprotocols(), ["chat", "superchat"]);
/// assert_eq!(request.header("authorization"), Some("Bearer t"));
/// # Ok::<(), syncws::Error>(())
/// ```
impl TryFrom<http::Request<()>> for Request {
    type Error = Error;

    fn try_from(request: http::Request<()>) -> Result<Request, Error> {
        if request.method() != http::Method::GET {
            return Err(Error::InvalidRequest(format!(
                "a web socket upgrade is a GET, not {}",
                request.method()
            )));
        }
        let uri = request.uri();
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(Error::InvalidUrl(format!(
                "{}: an absolute URI (ws://host/path) is needed to connect",
                crate::redact::url(&uri.to_string())
            )));
        }
        let mut builder = Request::builder(&uri.to_string());
        for (name, value) in request.headers() {
            let lower = name.as_str();
            if lower == "sec-websocket-extensions" {
                return Err(Error::InvalidRequest(
                    "Sec-WebSocket-Extensions: compression is a client setting \
                     (ClientBuilder::compression), not a header"
                        .into(),
                ));
            }
            if lower == "sec-websocket-protocol" {
                let Ok(list) = value.to_str() else {
                    return Err(Error::InvalidRequest(
                        "Sec-WebSocket-Protocol is not ASCII".into(),
                    ));
                };
                for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    builder = builder.subprotocol(p);
                }
                continue;
            }
            if header::written_by_syncws(lower) {
                continue;
            }
            builder = if value.is_sensitive() {
                builder.sensitive_header_bytes(lower, value.as_bytes())
            } else {
                builder.header_bytes(lower, value.as_bytes())
            };
        }
        builder.build()
    }
}

/// The request as an `http::Request<()>`: a GET of the URL with its headers (on the server,
/// every header of the client's request), values as bytes; a
/// [sensitive](crate::Header::is_sensitive) header's value is marked sensitive.
impl TryFrom<&Request> for http::Request<()> {
    type Error = Error;

    fn try_from(request: &Request) -> Result<http::Request<()>, Error> {
        let mut out = http::Request::get(request.url().as_str())
            .body(())
            .map_err(|e| Error::Http(format!("the URL as an http::Uri: {e}")))?;
        for h in request.headers() {
            let (name, value) = header(h)?;
            out.headers_mut().append(name, value);
        }
        Ok(out)
    }
}

/// The handshake's response as an `http::Response<()>`: status and headers, values as bytes,
/// duplicates kept in order. The reason phrase and the body of a refusal are not carried
/// (`http::Response` has no place for the one, and the type says `()` for the other); read them
/// from [`Response::reason`] and [`Response::body`]. Fails only for a status outside 100–999.
///
/// ```
/// let server = syncws::EchoServer::start()?;
/// let conn = syncws::connect(&server.url())?;
/// let response = http::Response::try_from(conn.response())?;
/// assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
/// assert_eq!(response.headers()["upgrade"], "websocket");
/// # Ok::<(), syncws::Error>(())
/// ```
impl TryFrom<&Response> for http::Response<()> {
    type Error = Error;

    fn try_from(response: &Response) -> Result<http::Response<()>, Error> {
        let status = http::StatusCode::from_u16(response.status())
            .map_err(|e| Error::Http(format!("status {}: {e}", response.status())))?;
        let mut out = http::Response::new(());
        *out.status_mut() = status;
        for h in response.headers() {
            let (name, value) = header(h)?;
            out.headers_mut().append(name, value);
        }
        Ok(out)
    }
}

impl TryFrom<Response> for http::Response<()> {
    type Error = Error;

    fn try_from(response: Response) -> Result<http::Response<()>, Error> {
        http::Response::try_from(&response)
    }
}

fn header(h: &crate::header::Header) -> Result<(http::HeaderName, http::HeaderValue), Error> {
    let name = http::HeaderName::from_bytes(h.name().as_bytes())
        .map_err(|e| Error::Http(format!("header name {:?}: {e}", h.name())))?;
    let mut value = http::HeaderValue::from_bytes(h.value())
        .map_err(|e| Error::Http(format!("value of header {}: {e}", h.name())))?;
    value.set_sensitive(h.is_sensitive());
    Ok((name, value))
}
