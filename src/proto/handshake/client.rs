//! The client's half of the opening handshake: the upgrade request it sends, and the checks on
//! the server's answer.

use crate::error::Error;
use crate::header::{self, Header};
use crate::proto::deflate;
use crate::request::Request;
use crate::response::Response;

use super::head::{MAX_HEADER_BYTES, MAX_HEADERS, list_has};
use super::key::accept_key;

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
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, Error> {
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

/// Checks a response head against the request; fills in the negotiated subprotocol and returns
/// the negotiated permessage-deflate parameters, if any.
pub fn check_response(
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
    // RFC 6455 §4.1 asks for an `Upgrade` that is a case-insensitive match for "websocket";
    // `Upgrade` is a token list (RFC 9110 §7.8), so a list that contains it is accepted too,
    // as the server role accepts it in requests.
    if !list_has(&resp.headers, "Upgrade", "websocket") {
        return Err(Error::rejected(format!(
            "expected 'Upgrade' header value 'websocket' but was '{}'",
            resp.header("Upgrade").unwrap_or("null")
        )));
    }
    if !list_has(&resp.headers, "Connection", "upgrade") {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn upgrade_is_a_case_insensitive_token_list() {
        let base = String::from_utf8(response("")).unwrap();
        for upgrade in ["WebSocket", "h2c, websocket", "websocket ,foo", "WEBSOCKET"] {
            let text = base.replace("Upgrade: websocket", &format!("Upgrade: {upgrade}"));
            assert!(check(text.as_bytes(), &[]).is_ok(), "{upgrade}");
        }
        for upgrade in ["websocket/13", "web socket", "h2c", ""] {
            let text = base.replace("Upgrade: websocket", &format!("Upgrade: {upgrade}"));
            assert!(check(text.as_bytes(), &[]).is_err(), "{upgrade:?}");
        }
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
}
