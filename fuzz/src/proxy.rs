//! The `proxy` target: what a proxy sends back, and the environment's proxy rules.

use syncws::fuzz::handshake;
use syncws::fuzz::proxy::{from_lookup, is_loopback, route};
use syncws::fuzz::tunnel::{self, Reply};

use crate::{ALL_SPLITS_UP_TO, Bytes};

/// What a proxy sends back, and the environment's proxy rules, on arbitrary bytes: everything
/// a proxy (or whoever sets the environment) controls.
///
/// Input: byte 0 picks flags (bit 0: the target is `wss`; bit 1: password offered to SOCKS5),
/// then the rest, used whole as a proxy's answer, and also split at `\n` into four texts:
/// `http_proxy`, `https_proxy`, `no_proxy` and the target host (the port is the first two
/// bytes after the flags).
///
/// Checks that nothing panics; that the `CONNECT` answer parser agrees with itself when the
/// answer arrives in two pieces (the driver re-parses as bytes come), never claims more bytes
/// than it was given or more than the head limit, and keeps the reason printable and short;
/// that a SOCKS5 reply asks for more bytes only when it has fewer and completes at exactly the
/// length it asked for; and that a loopback target is never routed through an environment
/// proxy.
pub fn proxy(data: &[u8]) {
    let mut input = Bytes(data);
    let flags = input.u8();
    let port = input.u16();
    let rest = input.rest();

    // CONNECT answers.
    let whole = tunnel::parse_connect_answer(rest);
    if let Ok(Some((answer, len))) = &whole {
        assert!(*len <= rest.len() && *len <= handshake::MAX_HEADER_BYTES);
        assert!(
            answer
                .reason
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        );
        assert!(answer.reason.len() <= 100);
    }
    for cut in split_points(rest.len()) {
        match tunnel::parse_connect_answer(&rest[..cut]) {
            // A complete head in a prefix is the same head in the whole.
            Ok(Some(early)) => match &whole {
                Ok(Some(w)) => assert_eq!(&early, w),
                other => panic!("a prefix held {early:?}, the whole gave {other:?}"),
            },
            Ok(None) => {}
            Err(_) => assert!(whole.is_err(), "a prefix failed but the whole did not"),
        }
    }

    // SOCKS5 answers.
    let method = tunnel::parse_method(
        [
            rest.first().copied().unwrap_or(0),
            rest.get(1).copied().unwrap_or(0),
        ],
        flags & 2 != 0,
    );
    if flags & 2 == 0 {
        assert!(!matches!(method, Ok(tunnel::Method::Password)));
    }
    let _ = tunnel::parse_auth_answer([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(0),
    ]);
    match tunnel::parse_reply(rest) {
        Ok(Reply::Need(n)) => {
            assert!(n > rest.len());
        }
        Ok(Reply::Done(n)) => {
            assert!(n <= rest.len());
            assert!(matches!(tunnel::parse_reply(&rest[..n]), Ok(Reply::Done(m)) if m == n));
            for cut in 0..n {
                assert!(matches!(tunnel::parse_reply(&rest[..cut]), Ok(Reply::Need(m)) if m > cut));
            }
        }
        Err(_) => {}
    }

    // The environment's rules.
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\n');
    let (http, https, no_proxy) = (parts.next(), parts.next(), parts.next());
    let host = parts.next().unwrap_or("localhost");
    let env = from_lookup(|name| match name {
        "http_proxy" => http.map(str::to_owned),
        "https_proxy" => https.map(str::to_owned),
        "no_proxy" => no_proxy.map(str::to_owned),
        _ => None,
    });
    let routed = route(&env, host, port, flags & 1 != 0);
    if is_loopback(host) {
        assert!(
            matches!(routed, Ok(None)),
            "loopback {host:?} routed: {routed:?}"
        );
    }
    let _ = (env.to_string(), format!("{env:?}"));
}

/// The split points tried for inputs that arrive in two pieces: all of them for short inputs,
/// a sample for long ones.
fn split_points(n: usize) -> Vec<usize> {
    if n <= ALL_SPLITS_UP_TO {
        (0..n).collect()
    } else {
        (0..n).step_by(n / ALL_SPLITS_UP_TO + 1).collect()
    }
}
