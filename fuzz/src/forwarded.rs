//! The `forwarded` target: who the client is behind a proxy.

use syncws::fuzz::forwarded::{self, ForwardedHeader, Length, MAX_PROXY_HEADER, Trusted};

use crate::Bytes;

/// A PROXY protocol header's framing and parse, and the `Forwarded` / `X-Forwarded-For` walk.
///
/// Input: byte 0 picks which header the rest is tried as (`Forwarded` or `X-Forwarded-For`);
/// the rest is both a PROXY header's first bytes and that header's value.
///
/// Checks that nothing panics; that the framing never asks for more than `MAX_PROXY_HEADER`
/// bytes nor says a header ends past the bytes it was shown (v1) or before its fixed part
/// (v2); that the header walk reads only the header it is told to (the other, with the same
/// bytes, changes nothing), and that a named client that is a trusted proxy means every hop
/// was one.
pub fn forwarded(data: &[u8]) {
    let mut input = Bytes(data);
    let which = input.u8();
    let rest = input.rest();
    match forwarded::header_length(rest) {
        Ok(Length::Exactly(n)) => {
            assert!(n <= MAX_PROXY_HEADER, "{n}");
            if rest.first() == Some(&b'P') {
                assert!(n <= rest.len(), "v1 ends within what it was shown");
            } else {
                assert!(n >= 16, "v2 has its fixed part");
            }
            if n <= rest.len() {
                let _ = forwarded::parse_header(&rest[..n]);
            }
        }
        Ok(Length::AtLeast(n)) => assert!(n > rest.len() && n <= MAX_PROXY_HEADER, "{n}"),
        Err(_) => {}
    }
    let Ok(trusted) = Trusted::parse(["10.0.0.0/8", "::1"]) else {
        panic!("the fixed list is valid");
    };
    let (read, other) = if which & 1 == 0 {
        (ForwardedHeader::Forwarded, ForwardedHeader::XForwardedFor)
    } else {
        (ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded)
    };
    let alone = [syncws::fuzz::header(read.name(), rest)];
    let client = forwarded::client_from_headers(&alone, read, &trusted);
    // The header the operator did not name is never read, whatever it holds.
    let beside = [
        syncws::fuzz::header(other.name(), rest),
        syncws::fuzz::header(read.name(), rest),
        syncws::fuzz::header(other.name(), b"for=6.6.6.6, 6.6.6.6"),
    ];
    assert_eq!(
        forwarded::client_from_headers(&beside, read, &trusted),
        client,
        "the other header changed the answer"
    );
    if let Ok(Some(ip)) = client
        && trusted.contains(ip)
    {
        // Every hop was a trusted proxy: the same value with an untrusted hop prepended names
        // that hop instead (unless an earlier hop was unreadable, which the walk never reached).
        let mut prefixed = b"203.0.113.1, ".to_vec();
        if read == ForwardedHeader::Forwarded {
            prefixed = b"for=203.0.113.1, ".to_vec();
        }
        prefixed.extend_from_slice(rest);
        let headers = [syncws::fuzz::header(read.name(), &prefixed)];
        let named = forwarded::client_from_headers(&headers, read, &trusted);
        assert!(
            matches!(named, Ok(Some(ip)) if !trusted.contains(ip)),
            "{named:?}"
        );
    }
}
