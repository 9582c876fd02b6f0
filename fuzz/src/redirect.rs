//! The `redirect` target: following a redirected upgrade.

use syncws::Request;
use syncws::fuzz::redirect;

use crate::Bytes;

/// Following a redirect of the upgrade, with an arbitrary status and `Location`.
///
/// Input: byte 0 picks the current URL (`ws://a.example:8080/x?q=1` or `wss://a.example/y`),
/// bytes 1–2 the status, the rest is the `Location` value (bytes, as a server may send).
///
/// Checks that nothing panics; that only 301, 302, 303, 307 and 308 are redirects; that a
/// followed redirect goes to a `ws` or `wss` URL, never from `wss` to `ws`; and that the
/// credentials (`Authorization`, `Cookie`, `Proxy-Authorization`, a header marked sensitive)
/// go along exactly when scheme, host and port stay the same, marked as they were.
pub fn redirect(data: &[u8]) {
    let mut input = Bytes(data);
    let from = if input.u8() & 1 == 0 {
        "ws://a.example:8080/x?q=1"
    } else {
        "wss://a.example/y"
    };
    let status = input.u16() % 1000;
    let location = input.rest();
    let Ok(request) = Request::builder(from)
        .header("Authorization", "Bearer t")
        .header("Cookie", "c=1")
        .header("Proxy-Authorization", "Basic p")
        .sensitive_header("X-Api-Key", "k")
        .header("X-Other", "o")
        .build()
    else {
        panic!("the fixed request is valid");
    };
    let response = syncws::fuzz::redirect_response(status, location);
    assert_eq!(
        redirect::is_redirect(status),
        [301, 302, 303, 307, 308].contains(&status)
    );
    let Ok(next) = redirect::follow(&request, &response) else {
        return;
    };
    let (a, b) = (request.url(), next.url());
    assert!(matches!(b.scheme(), "ws" | "wss"), "{b}");
    assert!(!(a.scheme() == "wss" && b.scheme() == "ws"), "{a} -> {b}");
    let same_origin = a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default();
    for credential in [
        "Authorization",
        "Cookie",
        "Proxy-Authorization",
        "X-Api-Key",
    ] {
        let carried = next.headers().iter().find(|h| h.name() == credential);
        assert_eq!(carried.is_some(), same_origin, "{credential}: {a} -> {b}");
        if let Some(h) = carried {
            assert_eq!(h.is_sensitive(), credential == "X-Api-Key", "{credential}");
        }
    }
    assert_eq!(next.header("X-Other"), Some("o"));
}
