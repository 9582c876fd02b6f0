//! The server's half of the opening handshake (RFC 6455 §4.2), as a pure function of the bytes:
//! the client's upgrade request and a [`Policy`] in; out either a [`ClientHello`] (what the
//! accept handler sees, with the URL the client asked for) or a [`Refusal`]; then the bytes of
//! the 101 ([`accept`]) or of the refusal ([`encode_refusal`](super::refusal::encode_refusal)).
//!
//! The URL a handler sees is built from the request target and the `Host` header with the `url`
//! crate's setters, never by pasting strings together: `Host: example.com/admin?` with
//! `GET /public`, or `GET @evil.example/x`, would otherwise give a URL for another path or
//! host than the client asked for. So `Host` must be exactly one `host[:port]` and the target a
//! path (or an absolute URL naming the same host); anything else is answered 400.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::header::{self, Header};
use crate::proto::deflate;

use super::head::{MAX_HEADER_BYTES, MAX_HEADERS, list_has};
use super::key::accept_key;
use super::origin::{OriginPolicy, check_origin};
use super::refusal::{Refusal, bad_request, refuse};
use super::target::{build_url, host_header, split_target};

/// What the server decides an upgrade request by, besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The connection is TLS: URLs are `wss`, and an absolute-form target must say `wss` or
    /// `https`.
    pub tls: bool,
    /// Which `Origin`s may upgrade.
    pub origins: OriginPolicy,
    /// permessage-deflate: whether it is offered back, and with which limits.
    pub deflate: deflate::ServerSettings,
}

/// An upgrade request the server role accepted, as the accept handler will see it.
#[derive(Debug, Clone)]
pub struct ClientHello {
    /// `ws://` or `wss://`, the `Host` header's host and port, the target's path and query.
    pub url: url::Url,
    /// Every header of the request, in order.
    pub headers: Vec<Header>,
    /// The subprotocols offered, in order.
    pub protocols: Vec<String>,
    /// What the 101 needs; kept apart so the rest can move into the handler's `Request`.
    pub terms: Terms,
}

/// What the server's 101 is built from, besides the handler's choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The client's `Sec-WebSocket-Key`, 16 bytes in base64.
    pub key: String,
    /// The permessage-deflate answer, if the extension was offered and is accepted: the
    /// parameters and the response header's value.
    pub deflate: Option<(deflate::Params, String)>,
}

/// Parses and checks a client's upgrade request under `policy`. `Ok(None)` means more bytes
/// are needed; a complete head gives the request and the length of its head.
pub fn parse_request(buf: &[u8], policy: &Policy) -> Result<Option<(ClientHello, usize)>, Refusal> {
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
    // Both are token lists (RFC 9110 §7.6.1, §7.8): `Upgrade: h2c, websocket` asks for either.
    if !list_has(&headers, "Upgrade", "websocket") || !list_has(&headers, "Connection", "upgrade") {
        return Err(bad_request("not a WebSocket upgrade"));
    }
    if get("Sec-WebSocket-Version") != Some("13") {
        return Err(refuse(426, "Upgrade Required"));
    }
    let key = get("Sec-WebSocket-Key").unwrap_or("").to_owned();
    if BASE64.decode(key.as_bytes()).map(|k| k.len()) != Ok(16) {
        return Err(bad_request("invalid Sec-WebSocket-Key"));
    }
    let host = host_header(&headers)?;
    // httparse gives a target only with a complete request line.
    let (path, query) = split_target(req.path.unwrap_or(""), &host, policy.tls)?;
    let url = build_url(policy.tls, &host, path, query)?;
    check_origin(&headers, &policy.origins)?;
    let protocols = header::values(&headers, "Sec-WebSocket-Protocol")
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let extensions: Vec<&str> = header::values(&headers, "Sec-WebSocket-Extensions").collect();
    let deflate = deflate::negotiate(&extensions, &policy.deflate);
    Ok(Some((
        ClientHello {
            url,
            headers,
            protocols,
            terms: Terms { key, deflate },
        },
        n,
    )))
}

/// The server's decision to upgrade, from the handler's choices.
#[derive(Debug)]
pub struct Accepted {
    /// The 101 response's bytes.
    pub response: Vec<u8>,
    /// The subprotocol confirmed, if any.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters agreed on, if any.
    pub deflate: Option<deflate::Params>,
}

/// The 101 for a request with `terms` and `offered` subprotocols: the handler's `subprotocol`
/// is confirmed only if the client offered it (another is left out, with a warning), and
/// `extra` headers (the handler's, already checked) are added.
pub fn accept(
    terms: &Terms,
    offered: &[String],
    subprotocol: Option<String>,
    extra: &[Header],
) -> Accepted {
    let protocol = subprotocol.filter(|p| {
        let was_offered = offered.contains(p);
        if !was_offered {
            log::warn!("handler chose subprotocol {p} the client did not offer; ignored");
        }
        was_offered
    });
    let response = encode_accept(
        &terms.key,
        protocol.as_deref(),
        terms.deflate.as_ref().map(|(_, header)| header.as_str()),
        extra,
    );
    Accepted {
        response,
        protocol,
        deflate: terms.deflate.as_ref().map(|(params, _)| *params),
    }
}

/// The server's 101 answer.
pub fn encode_accept(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::origin::normalize_origin;
    use crate::proto::handshake::refusal::{RefusalKind, encode_refusal};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// An upgrade request with `target` and `extra` header lines (each ending in CRLF).
    fn request(target: &str, extra: &str) -> Vec<u8> {
        format!(
            "GET {target} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn parse(bytes: &[u8], policy: &Policy) -> Result<ClientHello, Refusal> {
        parse_request(bytes, policy).map(|r| r.expect("complete").0)
    }

    /// The URL a request with `target` and these headers gets, or its refusal's status and
    /// reason.
    fn url_of(target: &str, extra: &str) -> Result<String, (u16, String)> {
        parse(&request(target, extra), &Policy::default())
            .map(|h| h.url.to_string())
            .map_err(|r| (r.status, r.reason))
    }

    fn refused_with(target: &str, extra: &str, why: &str) {
        match url_of(target, extra) {
            Err((400, reason)) => assert!(reason.contains(why), "{target} {extra:?}: {reason}"),
            other => panic!("{target} {extra:?}: {other:?}, expected 400 ({why})"),
        }
    }

    #[test]
    fn server_parses_and_refuses() {
        let ok =
            b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Protocol: a, b\r\n\r\n";
        let (hello, n) = parse_request(ok, &Policy::default()).unwrap().unwrap();
        assert_eq!(n, ok.len());
        assert_eq!(hello.url.as_str(), "ws://a/chat?x=1");
        assert_eq!(hello.protocols, ["a", "b"]);
        let text = std::str::from_utf8(ok).unwrap();
        let refusals = [
            (text.replace("GET", "POST"), 405),
            (text.replace("Version: 13", "Version: 8"), 426),
            (text.replace("Upgrade: websocket", "Upgrade: h2c"), 400),
            (
                text.replace("Upgrade: websocket", "Upgrade: websocket/13"),
                400,
            ),
            (
                text.replace("Connection: Upgrade", "Connection: keep-alive"),
                400,
            ),
            (text.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400),
        ];
        for (req, status) in refusals {
            let r = parse_request(req.as_bytes(), &Policy::default());
            assert_eq!(r.unwrap_err().status, status);
        }
        assert!(
            parse_request(&ok[..20], &Policy::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn upgrade_and_connection_are_case_insensitive_token_lists() {
        for (upgrade, connection) in [
            ("WebSocket", "upgrade"),
            ("h2c, websocket", "keep-alive, Upgrade"),
            ("websocket ,foo/2", "UPGRADE,keep-alive"),
            (
                "h2c\r\nUpgrade: websocket",
                "keep-alive\r\nConnection: upgrade",
            ),
        ] {
            let bytes = String::from_utf8(request("/", "Host: a\r\n"))
                .unwrap()
                .replace("Upgrade: websocket", &format!("Upgrade: {upgrade}"))
                .replace("Connection: Upgrade", &format!("Connection: {connection}"));
            assert!(
                parse(bytes.as_bytes(), &Policy::default()).is_ok(),
                "{bytes}"
            );
        }
    }

    #[test]
    fn the_url_is_the_host_header_and_the_target() {
        let cases = [
            ("/", "Host: example.com\r\n", "ws://example.com/"),
            (
                "/a/b?c=d&e",
                "Host: Example.COM:8080\r\n",
                "ws://example.com:8080/a/b?c=d&e",
            ),
            // The scheme's default port is dropped; an empty port means the default.
            ("/x", "Host: example.com:80\r\n", "ws://example.com/x"),
            ("/x", "Host: example.com:\r\n", "ws://example.com/x"),
            ("/x", "Host: 127.0.0.1:9001\r\n", "ws://127.0.0.1:9001/x"),
            ("/x", "Host: [::1]:9001\r\n", "ws://[::1]:9001/x"),
            ("/x", "Host: [0:0:0:0:0:0:0:1]\r\n", "ws://[::1]/x"),
            ("/?", "Host: a\r\n", "ws://a/?"),
            ("/%7e/%2F", "Host: a\r\n", "ws://a/%7e/%2F"),
            // Characters the url crate percent-encodes: the same path once decoded.
            ("/a{b}\"", "Host: a\r\n", "ws://a/a%7Bb%7D%22"),
            ("/q?'x'", "Host: a\r\n", "ws://a/q?%27x%27"),
            // Absolute form naming the Host header's host (case and default port aside).
            (
                "ws://EXAMPLE.com/abs?q",
                "Host: example.com\r\n",
                "ws://example.com/abs?q",
            ),
            (
                "http://example.com:80",
                "Host: example.com\r\n",
                "ws://example.com/",
            ),
            (
                "ws://example.com?q",
                "Host: example.com:80\r\n",
                "ws://example.com/?q",
            ),
            ("ws://[::1]:81/", "Host: [::1]:81\r\n", "ws://[::1]:81/"),
        ];
        for (target, host, url) in cases {
            assert_eq!(
                url_of(target, host),
                Ok(url.to_owned()),
                "{target} {host:?}"
            );
        }
        // wss on a TLS connection.
        let tls = Policy {
            tls: true,
            ..Policy::default()
        };
        let hello = parse(&request("https://a:443/s", "Host: a\r\n"), &tls).unwrap();
        assert_eq!(hello.url.as_str(), "wss://a/s");
        let hello = parse(&request("/s", "Host: a:443\r\n"), &tls).unwrap();
        assert_eq!(hello.url.as_str(), "wss://a/s");
    }

    #[test]
    fn the_issues_examples_are_refused() {
        // A Host with a path and query cannot move the handler to /admin.
        refused_with(
            "/public",
            "Host: example.com/admin?\r\n",
            "path, query or fragment",
        );
        // A target that is not a path cannot become the host.
        refused_with("@evil.example/x", "Host: example.com\r\n", "not a path");
        // An unparsable Host is refused, not replaced by localhost.
        refused_with("/", "Host: exa mple.com\r\n", "not allowed in a host name");
    }

    #[test]
    fn host_header_must_be_one_valid_host_and_port() {
        refused_with("/", "", "no Host header");
        refused_with("/", "Host: a\r\nHost: a\r\n", "more than one Host");
        refused_with("/", "Host: a\r\nhost: b\r\n", "more than one Host");
        refused_with("/", "Host: \r\n", "empty host");
        refused_with("/", "Host: :80\r\n", "empty host");
        refused_with("/", "Host: user@example.com\r\n", "user info");
        refused_with("/", "Host: user:pw@example.com\r\n", "user info");
        refused_with("/", "Host: example.com?x\r\n", "path, query or fragment");
        refused_with("/", "Host: example.com#x\r\n", "path, query or fragment");
        refused_with("/", "Host: a:b:80\r\n", "more than one ':'");
        refused_with("/", "Host: a:65536\r\n", "above 65535");
        refused_with("/", "Host: a:8o\r\n", "invalid port");
        refused_with("/", "Host: a:+80\r\n", "invalid port");
        refused_with("/", "Host: a:123456\r\n", "invalid port");
        refused_with("/", "Host: a,b\r\n", "not allowed");
        refused_with("/", "Host: a%2eb\r\n", "not allowed");
        refused_with("/", "Host: [::1\r\n", "unclosed");
        refused_with("/", "Host: [::g]\r\n", "invalid IPv6");
        refused_with("/", "Host: [::1]x\r\n", "after the IPv6");
        refused_with("/", "Host: [fe80::1%25eth0]\r\n", "invalid IPv6");
        // Names the url crate would read as another host.
        refused_with("/", "Host: 127.1\r\n", "no valid host");
        refused_with("/", "Host: 0x7f.0.0.1\r\n", "no valid host");
        refused_with("/", "Host: a.123\r\n", "no valid host");
        refused_with("/", "Host: xn--a\r\n", "no valid host");
        // A Host that is not UTF-8.
        let mut bytes = request("/", "Host: cafX\r\n");
        let at = bytes.windows(4).position(|w| w == b"cafX").unwrap();
        bytes[at + 3] = 0xe9; // Latin-1 é
        let r = parse(&bytes, &Policy::default()).unwrap_err();
        assert_eq!(
            (r.status, r.reason.as_str()),
            (400, "Bad Request: invalid Host header")
        );
    }

    #[test]
    fn only_origin_form_and_a_matching_absolute_form_are_accepted() {
        let host = "Host: example.com\r\n";
        refused_with("*", host, "not a path");
        refused_with("example.com:80", host, "not a path");
        refused_with("example.com/x", host, "not a path");
        refused_with("ftp://example.com/x", host, "not a path");
        refused_with("ws://other.example/x", host, "another host");
        refused_with("ws://example.com:81/x", host, "another host");
        refused_with("ws://user@example.com/x", host, "user info");
        refused_with("wss://example.com/x", host, "does not match the connection");
        refused_with("/x#frag", host, "fragment");
        refused_with("/a/../admin", host, "not a normalized path");
        refused_with("/a/%2e%2E/admin", host, "not a normalized path");
        refused_with("/./x", host, "not a normalized path");
        refused_with("/a\\b", host, "not a normalized path");
    }

    fn with_origins(allowed: Option<&[&str]>, required: bool) -> Policy {
        Policy {
            origins: OriginPolicy {
                allowed: allowed.map(|a| a.iter().map(|o| o.to_string()).collect()),
                required,
            },
            ..Policy::default()
        }
    }

    fn origin_status(policy: &Policy, origin_lines: &str) -> u16 {
        match parse(&request("/", &format!("Host: a\r\n{origin_lines}")), policy) {
            Ok(_) => 101,
            Err(r) => {
                assert!(
                    r.status != 403 || r.reason.starts_with("Forbidden: "),
                    "{r:?}"
                );
                r.status
            }
        }
    }

    #[test]
    fn origins_are_normalized() {
        let cases = [
            ("https://example.com", Some("https://example.com")),
            ("HTTPS://Example.COM:443", Some("https://example.com")),
            ("http://example.com:80", Some("http://example.com")),
            ("http://example.com:443", Some("http://example.com:443")),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("http://[0::1]:8080", Some("http://[::1]:8080")),
            (
                "chrome-extension://abcdef",
                Some("chrome-extension://abcdef"),
            ),
            ("https://example.com/", None),
            ("https://example.com/path", None),
            ("https://user@example.com", None),
            ("example.com", None),
            ("null", None),
            ("://example.com", None),
            ("1http://example.com", None),
            ("https://b\u{fc}cher.example", None),
            ("https://example.com:99999", None),
        ];
        for (input, normalized) in cases {
            assert_eq!(normalize_origin(input).as_deref(), normalized, "{input}");
        }
    }

    #[test]
    fn origin_policy() {
        let any = Policy::default();
        assert_eq!(origin_status(&any, ""), 101);
        assert_eq!(origin_status(&any, "Origin: https://evil.example\r\n"), 101);
        assert_eq!(origin_status(&any, "Origin: null\r\n"), 101);

        let list = with_origins(
            Some(&["https://app.example", "http://localhost:8080"]),
            false,
        );
        assert_eq!(origin_status(&list, "Origin: https://app.example\r\n"), 101);
        assert_eq!(
            origin_status(&list, "Origin: HTTPS://APP.example:443\r\n"),
            101
        );
        assert_eq!(
            origin_status(&list, "origin: http://localhost:8080\r\n"),
            101
        );
        // Without Origin (a non-browser client), allowed unless required.
        assert_eq!(origin_status(&list, ""), 101);
        for refused in [
            "Origin: https://evil.example\r\n",
            "Origin: http://app.example\r\n",
            "Origin: https://app.example:8443\r\n",
            "Origin: https://app.example.evil.example\r\n",
            "Origin: http://localhost:8081\r\n",
            "Origin: http://127.0.0.1:8080\r\n",
            "Origin: https://app.example/\r\n",
            "Origin: null\r\n",
            "Origin: \r\n",
            "Origin: https://app.example\r\nOrigin: https://app.example\r\n",
        ] {
            assert_eq!(origin_status(&list, refused), 403, "{refused:?}");
        }

        let required = with_origins(None, true);
        assert_eq!(origin_status(&required, ""), 403);
        assert_eq!(
            origin_status(&required, "Origin: https://any.example\r\n"),
            101
        );
        let both = with_origins(Some(&["https://app.example"]), true);
        assert_eq!(origin_status(&both, ""), 403);
        assert_eq!(origin_status(&both, "Origin: https://app.example\r\n"), 101);
        // A bad Host is still a 400: the request is malformed before it is cross-site.
        let r = parse(
            &request("/", "Host: a b\r\nOrigin: https://evil.example\r\n"),
            &both,
        );
        assert_eq!(r.unwrap_err().status, 400);
    }

    #[test]
    fn the_answer_confirms_only_an_offered_subprotocol_and_the_deflate_decision() {
        let hello = parse(
            &request(
                "/",
                "Host: a\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
            ),
            &Policy::default(),
        )
        .unwrap();
        let (params, header) = hello.terms.deflate.clone().expect("deflate accepted");
        let a = accept(
            &hello.terms,
            &hello.protocols,
            Some("superchat".into()),
            &[],
        );
        assert_eq!(a.protocol.as_deref(), Some("superchat"));
        assert_eq!(a.deflate, Some(params));
        let text = String::from_utf8(a.response).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nSec-WebSocket-Protocol: superchat\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!("\r\nSec-WebSocket-Extensions: {header}\r\n")));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        let a = accept(&hello.terms, &hello.protocols, Some("other".into()), &[]);
        assert_eq!(a.protocol, None);
        assert!(
            !String::from_utf8(a.response)
                .unwrap()
                .contains("Sec-WebSocket-Protocol")
        );
        // Compression off: no extension in the answer.
        let off = Policy {
            deflate: deflate::ServerSettings {
                enabled: false,
                ..deflate::ServerSettings::default()
            },
            ..Policy::default()
        };
        let hello = parse(
            &request(
                "/",
                "Host: a\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
            ),
            &off,
        )
        .unwrap();
        assert_eq!(hello.terms.deflate, None);
    }

    #[test]
    fn refusals_are_encoded_without_control_characters() {
        let r = Refusal {
            status: 503,
            reason: "Service Unavailable: too many\r\nX: y".into(),
            kind: RefusalKind::Request,
        };
        let text = String::from_utf8(encode_refusal(&r, &[])).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable: too manyX: y\r\nConnection: close\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let text =
            String::from_utf8(encode_refusal(&refuse(426, "Upgrade Required"), &[])).unwrap();
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
    }
}
