//! The handshake targets: the server's parse of an upgrade request (`handshake_request`), its
//! whole decision under a policy (`server_request`), and the client's parse and check of the
//! answer (`handshake_response`).

use std::fmt::Debug;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use syncws::Response;
use syncws::fuzz::deflate::{self, ServerSettings};
use syncws::fuzz::handshake;

use crate::{Bytes, KEY, Rng, cut_points, header_bytes, header_values};

/// Checks that parsing a prefix (`cut` bytes) of a head agrees with parsing all of it:
/// a head complete in the prefix is the same head, a prefix short of a complete head asks for
/// more, and an error in the prefix is the same error in the whole. Results are compared as
/// their `Debug` text (the parsed types do not implement `PartialEq`); `whole_text` is the
/// whole input's.
fn prefix_agrees<T: Debug, E: Debug>(
    whole: &Result<Option<(T, usize)>, E>,
    whole_text: &str,
    part: &Result<Option<(T, usize)>, E>,
    cut: usize,
) {
    match (whole, part) {
        (_, Ok(Some((_, n)))) => {
            assert!(*n <= cut, "head of {n} bytes in a prefix of {cut}");
            assert_eq!(whole_text, format!("{part:?}"), "prefix of {cut}");
        }
        (Ok(Some((_, n))), Ok(None)) => {
            assert!(
                *n > cut,
                "head of {n} bytes incomplete in a prefix of {cut}"
            );
        }
        (_, Ok(None)) => {}
        (Err(_), Err(_)) => assert_eq!(whole_text, format!("{part:?}"), "prefix of {cut}"),
        (Ok(_), Err(e)) => panic!("prefix of {cut} fails with {e:?}, the whole gives {whole:?}"),
    }
}

/// Every prefix check for one head parser; returns the whole input's parse.
fn check_prefixes<T: Debug, E: Debug>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<Option<(T, usize)>, E> {
    let whole = parse(data);
    let whole_text = format!("{whole:?}");
    let extra = match &whole {
        Ok(Some((_, n))) => vec![n.saturating_sub(1), *n, n + 1],
        _ => Vec::new(),
    };
    let mut rng = Rng::new(data);
    for cut in cut_points(data.len(), &mut rng, &extra) {
        // Past MAX_HEADER_BYTES an incomplete head is refused as too large while a complete
        // one is not looked at: that cap applies to what is still to come.
        if cut <= handshake::MAX_HEADER_BYTES {
            prefix_agrees(&whole, &whole_text, &parse(&data[..cut]), cut);
        }
    }
    whole
}

/// The server's parse of an upgrade request, on arbitrary bytes, under the default policy
/// (`ws`, any origin, permessage-deflate on).
///
/// Checks that it never panics; that a prefix of the input parses consistently with the whole
/// (`Ok(None)` until the head is complete, then the same request; errors are the same error);
/// that an accepted request carries a 16-byte key; and that the 101 the server builds for it
/// (with its first subprotocol, and the deflate answer it decided) passes the client's
/// `check_response` for that key, with the same subprotocol and mirrored deflate parameters.
pub fn handshake_request(data: &[u8]) {
    let policy = handshake::Policy::default();
    let whole = check_prefixes(data, |head| handshake::parse_request(head, &policy));
    let Ok(Some((hello, n))) = whole else {
        return;
    };
    assert!(n > 0 && n <= data.len());
    check_accept(&hello);
}

/// The 101 the server builds for an accepted request passes the client's checks.
fn check_accept(hello: &handshake::ClientHello) {
    let key = &hello.terms.key;
    assert_eq!(BASE64.decode(key.as_bytes()).map(|k| k.len()), Ok(16));
    assert!(hello.protocols.iter().all(|p| !p.is_empty()));
    let protocol = hello.protocols.first().cloned();
    let accepted = handshake::accept(&hello.terms, &hello.protocols, protocol.clone(), &[]);
    let (mut response, len) = handshake::parse_response(&accepted.response)
        .expect("our own 101 parses")
        .expect("our own 101 is complete");
    assert_eq!(len, accepted.response.len());
    let compression = accepted.deflate.is_some();
    let client = handshake::check_response(&mut response, key, &hello.protocols, compression)
        .unwrap_or_else(|e| panic!("our own 101 for {hello:?} refused: {e}"));
    assert_eq!(response.subprotocol(), protocol.as_deref());
    match (accepted.deflate, client) {
        (None, None) => {}
        (Some(server), Some(client)) => {
            assert_eq!(
                client.send_no_context_takeover,
                server.recv_no_context_takeover
            );
            assert_eq!(
                client.recv_no_context_takeover,
                server.send_no_context_takeover
            );
        }
        (server, client) => panic!("deflate: server {server:?}, client {client:?}"),
    }
}

/// The allow-list the `server_request` target uses when its input turns one on.
pub const ALLOWED_ORIGINS: [&str; 2] = ["http://example.com", "https://app.example:8443"];

/// The server's whole decision on an upgrade request (`Host`, request target, `Origin`,
/// deflate), on arbitrary bytes.
///
/// Input: byte 0 = the policy (bit 0: TLS, so `wss`; bit 1: an `Origin` allow-list,
/// [`ALLOWED_ORIGINS`]; bit 2: `Origin` required; bit 3: permessage-deflate off), the rest =
/// the request head.
///
/// Checks that it never panics; prefixes parse consistently with the whole, as for
/// `handshake_request`; a refusal is one of 400, 403 (only with an origin policy), 405, 426,
/// 431, 505; and an accepted request has exactly one `Host` header, a `ws`/`wss` URL (by the
/// policy) whose host and port are the `Host` header's (case aside, the scheme's default port
/// when none is written), whose path starts with `/`, and whose path and query are the
/// request target's once percent-decoded; its `Origin` is one the policy allows; the default
/// policy accepts it too, with the same URL; and the 101 built for it passes the client's
/// checks.
pub fn server_request(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let head = b.rest();
    let tls = flags & 1 != 0;
    let policy = handshake::Policy {
        tls,
        origins: handshake::OriginPolicy {
            allowed: (flags & 2 != 0).then(|| ALLOWED_ORIGINS.map(String::from).to_vec()),
            required: flags & 4 != 0,
        },
        deflate: ServerSettings {
            enabled: flags & 8 == 0,
            ..ServerSettings::default()
        },
    };
    let whole = check_prefixes(head, |h| handshake::parse_request(h, &policy));
    let (hello, n) = match whole {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return,
        Err(r) => {
            let origin_policy = policy.origins.allowed.is_some() || policy.origins.required;
            assert!(
                matches!(r.status, 400 | 405 | 426 | 431 | 505)
                    || (r.status == 403 && origin_policy),
                "refused with {r:?}"
            );
            return;
        }
    };
    assert!(n > 0 && n <= head.len());
    let url = &hello.url;
    assert_eq!(url.scheme(), if tls { "wss" } else { "ws" });

    // Host: exactly one, and the URL's host and port are its own.
    let hosts: Vec<&[u8]> = header_bytes(&hello.headers, "Host").collect();
    let [host] = hosts[..] else {
        panic!("accepted with {} Host headers", hosts.len());
    };
    let host = std::str::from_utf8(host)
        .expect("an accepted Host is UTF-8")
        .trim();
    let (host_name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (literal, rest) = v6.split_once(']').expect("a closed IPv6 literal");
            (literal, rest.strip_prefix(':'))
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let url_host = url.host_str().expect("a URL with a host");
    match url_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => assert_eq!(
            v6.parse::<std::net::Ipv6Addr>().ok(),
            host_name.parse().ok(),
            "{url} for Host {host:?}"
        ),
        None => assert!(
            url_host.eq_ignore_ascii_case(host_name),
            "{url} for Host {host:?}"
        ),
    }
    let default_port = if tls { 443 } else { 80 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse().expect("an accepted port is a number"),
    };
    assert_eq!(
        url.port_or_known_default(),
        Some(port),
        "{url} for Host {host:?}"
    );

    // The path and query are the target's.
    let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    let target = request.path.expect("an accepted request has a target");
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        let (_, rest) = target.split_once("://").expect("an absolute-form target");
        &rest[rest.find(['/', '?']).unwrap_or(rest.len())..]
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    assert!(url.path().starts_with('/'), "{url}");
    assert_eq!(decoded(url.path()), decoded(path), "{url} for {target:?}");
    assert_eq!(
        url.query().map(decoded),
        query.map(decoded),
        "{url} for {target:?}"
    );

    // Origin: as the policy says.
    let origins: Vec<&[u8]> = header_bytes(&hello.headers, "Origin").collect();
    if policy.origins.required {
        assert!(!origins.is_empty(), "accepted without Origin");
    }
    if let (Some(allowed), false) = (&policy.origins.allowed, origins.is_empty()) {
        let [origin] = origins[..] else {
            panic!("accepted with {} Origin headers", origins.len());
        };
        let origin = std::str::from_utf8(origin).expect("an allowed Origin is UTF-8");
        let normalized = handshake::normalize_origin(origin.trim());
        assert!(
            normalized.is_some_and(|o| allowed.contains(&o)),
            "Origin {origin:?} accepted"
        );
    }

    // A stricter policy only refuses more: the default one gives the same URL.
    let open = handshake::Policy {
        tls,
        ..handshake::Policy::default()
    };
    match handshake::parse_request(head, &open) {
        Ok(Some((same, _))) => assert_eq!(&same.url, url),
        other => panic!("the default policy gives {other:?}"),
    }
    check_accept(&hello);
}

/// The client's parse and check of the server's answer, on arbitrary bytes.
///
/// Input: byte 0 = flags (bit 0: compression was offered; bits 1-2: the subprotocols offered,
/// none / `chat` / `chat, superchat` / `a, b, c`), the rest = the response bytes, checked
/// against [`KEY`].
///
/// Checks that it never panics; prefixes parse consistently with the whole, as for requests;
/// and a response that `check_response` accepts is a 101 whose `Upgrade` list has `websocket`, a
/// `Connection` header, the right accept value, an offered subprotocol at most, and
/// permessage-deflate only if offered, with the same parameters `deflate::check_response`
/// reads from its headers.
pub fn handshake_response(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let bytes = b.rest();
    let compression_offered = flags & 1 != 0;
    let offered: Vec<String> = match (flags >> 1) & 3 {
        0 => vec![],
        1 => vec!["chat".into()],
        2 => vec!["chat".into(), "superchat".into()],
        _ => vec!["a".into(), "b".into(), "c".into()],
    };
    let whole = check_prefixes(bytes, handshake::parse_response);
    let Ok(Some((mut response, n))) = whole else {
        return;
    };
    assert!(n > 0 && n <= bytes.len());
    let before: Response = response.clone();
    let Ok(params) = handshake::check_response(&mut response, KEY, &offered, compression_offered)
    else {
        assert_eq!(
            response.subprotocol(),
            None,
            "a refused response picked a subprotocol"
        );
        return;
    };
    assert_eq!(response.status(), 101);
    let upgrade = header_values(response.headers(), "Upgrade")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"));
    assert!(upgrade, "accepted without websocket in Upgrade");
    assert!(response.header("Connection").is_some());
    assert_eq!(
        response.header("Sec-WebSocket-Accept").map(str::trim),
        Some(handshake::accept_key(KEY).as_str())
    );
    if let Some(p) = response.subprotocol() {
        assert!(
            offered.iter().any(|o| o == p),
            "subprotocol {p:?} not offered"
        );
    }
    assert!(params.is_none() || compression_offered);
    let values: Vec<&str> = header_values(response.headers(), "Sec-WebSocket-Extensions").collect();
    assert_eq!(
        deflate::check_response(&values, compression_offered),
        Ok(params)
    );
    // The check is a pure function of the response.
    let mut again = before;
    let second = handshake::check_response(&mut again, KEY, &offered, compression_offered);
    assert_eq!(second.ok(), Some(params));
    assert_eq!(again.subprotocol(), response.subprotocol());
}
