//! The opening handshake (RFC 6455 §4), both roles, as bytes in and bytes out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::Error;
use crate::header::{self, Header};
use crate::proto::deflate;
use crate::request::Request;
use crate::response::Response;

/// The most header bytes either side accepts before giving up on the handshake.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most header lines either side accepts.
const MAX_HEADERS: usize = 100;
/// How much of a failed handshake's response body is kept for the application.
pub(crate) const MAX_BODY_BYTES: usize = 4096;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub(crate) fn new_key() -> String {
    let mut raw = [0u8; 16];
    crate::proto::mask::fill_random(&mut raw);
    BASE64.encode(raw)
}

/// The `Sec-WebSocket-Accept` value for `key`.
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// The client's upgrade request.
pub(crate) fn encode_request(req: &Request, key: &str, compression: bool) -> Vec<u8> {
    use std::fmt::Write as _;
    let url = req.url();
    let mut target = url.path().to_owned();
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = url.host_str().unwrap_or_default();
    let mut s = String::with_capacity(256);
    let _ = write!(s, "GET {target} HTTP/1.1\r\nHost: {host}");
    if let Some(port) = url.port() {
        let _ = write!(s, ":{port}");
    }
    let _ = write!(
        s,
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    if !req.subprotocols().is_empty() {
        let _ = write!(
            s,
            "Sec-WebSocket-Protocol: {}\r\n",
            req.subprotocols().join(", ")
        );
    }
    if compression {
        let _ = write!(s, "Sec-WebSocket-Extensions: {}\r\n", deflate::CLIENT_OFFER);
    }
    let mut out = s.into_bytes();
    header::encode(&mut out, req.headers());
    out.extend_from_slice(b"\r\n");
    out
}

fn parse_error(e: httparse::Error) -> String {
    match e {
        httparse::Error::TooManyHeaders => format!("more than {MAX_HEADERS} header lines"),
        other => other.to_string(),
    }
}

/// Parses the server's response head. `Ok(None)` means more bytes are needed.
///
/// Returns the response (without body) and the length of the head; bytes after it are either
/// the body of a failed handshake or the first frames of an accepted one.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let n = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEADER_BYTES {
                return Err(Error::rejected(format!(
                    "response headers exceed {MAX_HEADER_BYTES} bytes"
                )));
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::rejected(format!(
                "malformed HTTP response: {}",
                parse_error(e)
            )));
        }
    };
    let response = Response {
        status: res.code.unwrap_or(0),
        reason: res.reason.unwrap_or("").to_owned(),
        headers: res
            .headers
            .iter()
            .map(|h| Header::new(h.name, h.value))
            .collect(),
        subprotocol: None,
        body: Vec::new(),
        url: None,
    };
    Ok(Some((response, n)))
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks a response head against the request; fills in the negotiated subprotocol and returns
/// the negotiated permessage-deflate parameters, if any.
pub(crate) fn check_response(
    resp: &mut Response,
    key: &str,
    offered: &[String],
    compression_offered: bool,
) -> Result<Option<deflate::Params>, Error> {
    if resp.status != 101 {
        return Err(Error::rejected(format!(
            "expected HTTP 101 response but was '{} {}'",
            resp.status, resp.reason
        )));
    }
    let upgrade = resp.header("Upgrade");
    if !upgrade.is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket")) {
        return Err(Error::rejected(format!(
            "expected 'Upgrade' header value 'websocket' but was '{}'",
            upgrade.unwrap_or("null")
        )));
    }
    if !has_token(resp.header("Connection"), "upgrade") {
        return Err(Error::rejected(format!(
            "expected 'Connection' header to contain 'Upgrade' but was '{}'",
            resp.header("Connection").unwrap_or("null")
        )));
    }
    let expected = accept_key(key);
    let actual = resp.header("Sec-WebSocket-Accept");
    if actual.map(str::trim) != Some(expected.as_str()) {
        return Err(Error::rejected(format!(
            "expected 'Sec-WebSocket-Accept' header value '{expected}' but was '{}'",
            actual.unwrap_or("null")
        )));
    }
    let extensions: Vec<&str> = header::values(&resp.headers, "Sec-WebSocket-Extensions").collect();
    let deflate =
        deflate::check_response(&extensions, compression_offered).map_err(Error::rejected)?;
    let chosen: Vec<&str> = header::values(&resp.headers, "Sec-WebSocket-Protocol")
        .map(str::trim)
        .collect();
    match chosen.as_slice() {
        [] => {}
        [p] if offered.iter().any(|o| o == p) => resp.subprotocol = Some((*p).to_owned()),
        [p] => {
            return Err(Error::rejected(format!(
                "server chose subprotocol '{p}' that the client did not offer"
            )));
        }
        _ => {
            return Err(Error::rejected(
                "server sent more than one Sec-WebSocket-Protocol header",
            ));
        }
    }
    Ok(deflate)
}

/// An upgrade request as the server role received it.
#[derive(Debug, Clone)]
pub(crate) struct ClientHello {
    pub path: String,
    pub host: String,
    pub key: String,
    pub headers: Vec<Header>,
    pub protocols: Vec<String>,
}

/// Why the server role refuses an upgrade request, as an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: &str) -> Refusal {
    Refusal {
        status,
        reason: reason.to_owned(),
    }
}

/// Parses and checks a client's upgrade request. `Ok(None)` means more bytes are needed.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Option<(ClientHello, usize)>, Refusal> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEADER_BYTES {
                return Err(refuse(431, "Request Header Fields Too Large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(431, "Request Header Fields Too Large"));
        }
        Err(_) => return Err(refuse(400, "Bad Request")),
    };
    if req.method != Some("GET") {
        return Err(refuse(405, "Method Not Allowed"));
    }
    if req.version != Some(1) {
        return Err(refuse(505, "HTTP Version Not Supported"));
    }
    let headers: Vec<Header> = req
        .headers
        .iter()
        .map(|h| Header::new(h.name, h.value))
        .collect();
    let get = |name: &'static str| header::values(&headers, name).next().map(str::trim);
    if !get("Upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        || !has_token(get("Connection"), "upgrade")
    {
        return Err(refuse(400, "Bad Request"));
    }
    if get("Sec-WebSocket-Version") != Some("13") {
        return Err(refuse(426, "Upgrade Required"));
    }
    let key = get("Sec-WebSocket-Key").unwrap_or("").to_owned();
    if BASE64.decode(key.as_bytes()).map(|k| k.len()) != Ok(16) {
        return Err(refuse(400, "Bad Request"));
    }
    let Some(host) = get("Host").map(str::to_owned) else {
        return Err(refuse(400, "Bad Request"));
    };
    let protocols = header::values(&headers, "Sec-WebSocket-Protocol")
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Some((
        ClientHello {
            path: req.path.unwrap_or("/").to_owned(),
            host,
            key,
            headers,
            protocols,
        },
        n,
    )))
}

/// The server's 101 answer.
pub(crate) fn encode_accept(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[Header],
) -> Vec<u8> {
    let mut s = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = protocol {
        s.push_str("Sec-WebSocket-Protocol: ");
        s.push_str(p);
        s.push_str("\r\n");
    }
    if let Some(e) = extensions {
        s.push_str("Sec-WebSocket-Extensions: ");
        s.push_str(e);
        s.push_str("\r\n");
    }
    let mut out = s.into_bytes();
    header::encode(&mut out, extra);
    out.extend_from_slice(b"\r\n");
    out
}

/// The server's refusal.
pub(crate) fn encode_refusal(r: &Refusal, extra: &[Header]) -> Vec<u8> {
    let reason: String = r.reason.chars().filter(|c| !c.is_control()).collect();
    let version = if r.status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nConnection: close\r\n{version}Content-Length: 0\r\n",
        r.status
    )
    .into_bytes();
    header::encode(&mut out, extra);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys_are_16_random_bytes() {
        let a = new_key();
        assert_eq!(BASE64.decode(&a).unwrap().len(), 16);
        assert_ne!(a, new_key());
    }

    fn response(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key("dGhlIHNhbXBsZSBub25jZQ==")
        )
        .into_bytes()
    }

    fn check(bytes: &[u8], offered: &[&str]) -> Result<Response, Error> {
        let (mut r, _) = parse_response(bytes)?.expect("complete");
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        check_response(&mut r, "dGhlIHNhbXBsZSBub25jZQ==", &offered, false)?;
        Ok(r)
    }

    #[test]
    fn accepts_valid_response_and_keeps_trailing_bytes() {
        let mut bytes = response("");
        let head = bytes.len();
        bytes.extend_from_slice(&[0x81, 0x00]);
        let (_, n) = parse_response(&bytes).unwrap().unwrap();
        assert_eq!(n, head);
        assert!(check(&bytes, &[]).is_ok());
    }

    #[test]
    fn connection_token_list_is_accepted() {
        let text = String::from_utf8(response(""))
            .unwrap()
            .replace("Connection: Upgrade", "Connection: keep-alive, Upgrade");
        assert!(check(text.as_bytes(), &[]).is_ok());
    }

    #[test]
    fn rejections() {
        let base = String::from_utf8(response("")).unwrap();
        let cases = [
            base.replace("101 Switching Protocols", "200 OK"),
            base.replace("Upgrade: websocket", "Upgrade: Pepsi"),
            base.replace("Connection: Upgrade", "Connection: Downgrade"),
            base.replace("Sec-WebSocket-Accept: ", "Sec-WebSocket-Accept: x"),
            base.replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            ),
            base.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
        ];
        for c in &cases {
            assert!(
                matches!(
                    check(c.as_bytes(), &[]),
                    Err(Error::HandshakeRejected { .. })
                ),
                "{c}"
            );
        }
        let msg = check(cases[0].as_bytes(), &[]).unwrap_err().to_string();
        assert!(msg.contains("'200 OK'"), "{msg}");
    }

    #[test]
    fn subprotocol_must_be_offered() {
        let r = check(
            &response("Sec-WebSocket-Protocol: chat\r\n"),
            &["chat", "x"],
        )
        .unwrap();
        assert_eq!(r.subprotocol(), Some("chat"));
    }

    #[test]
    fn oversized_headers_fail() {
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        while bytes.len() <= MAX_HEADER_BYTES {
            bytes.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_response(&bytes).is_err());
    }

    #[test]
    fn server_parses_and_refuses() {
        let ok =
            b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Protocol: a, b\r\n\r\n";
        let (hello, n) = parse_request(ok).unwrap().unwrap();
        assert_eq!(n, ok.len());
        assert_eq!(hello.path, "/chat?x=1");
        assert_eq!(hello.protocols, ["a", "b"]);
        let text = std::str::from_utf8(ok).unwrap();
        let refusals = [
            (text.replace("GET", "POST"), 405),
            (text.replace("Version: 13", "Version: 8"), 426),
            (text.replace("Upgrade: websocket", "Upgrade: h2c"), 400),
            (text.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400),
        ];
        for (req, status) in refusals {
            assert_eq!(parse_request(req.as_bytes()).unwrap_err().status, status);
        }
        assert!(parse_request(&ok[..20]).unwrap().is_none());
    }
}
