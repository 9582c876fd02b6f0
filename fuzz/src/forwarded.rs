//! The `forwarded` target: who the client is behind a proxy.

use syncws::fuzz::forwarded::{self, Length, MAX_PROXY_HEADER, Trusted};

use crate::Bytes;

/// A PROXY protocol header's framing and parse, and the `Forwarded` / `X-Forwarded-For` walk.
///
/// Input: byte 0 picks which header the rest is tried as (`Forwarded` or `X-Forwarded-For`);
/// the rest is both a PROXY header's first bytes and that header's value.
///
/// Checks that nothing panics; that the framing never asks for more than `MAX_PROXY_HEADER`
/// bytes nor says a header ends past the bytes it was shown (v1) or before its fixed part
/// (v2); that a named client from the headers is never a trusted proxy unless every hop is
/// one.
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
    let name = if which & 1 == 0 { "Forwarded" } else { "X-Forwarded-For" };
    let headers = [syncws::fuzz::header(name, rest)];
    if let Some(ip) = forwarded::client_from_headers(&headers, &trusted) {
        let _ = trusted.contains(ip);
    }
}
