//! The server's half of the opening handshake: the client's upgrade request, checked, and the
//! server's answers to it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::header::{self, Header};

use super::{MAX_HEADER_BYTES, MAX_HEADERS, accept_key, has_token};

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
