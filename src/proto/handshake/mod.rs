//! The opening handshake (RFC 6455 §4) as bytes in and bytes out: what both roles share here,
//! the client's half in [`client`], the server's in [`server`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::header::{self, Header};

mod client;
mod server;

pub(crate) use client::encode_request;
pub(crate) use server::{Accepted, Refusal, encode_refusal};
// `pub` where the fuzz targets reach them through `crate::fuzz`.
pub use client::{check_response, parse_response};
pub use server::{ClientHello, OriginPolicy, Policy, accept, normalize_origin, parse_request};
// The fuzz targets build 101s by hand.
#[cfg(feature = "fuzzing")]
pub use server::encode_accept;

/// The most header bytes either side accepts before giving up on the handshake.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most header lines either side accepts.
pub const MAX_HEADERS: usize = 100;
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
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// Whether header `name`, a comma-separated list (RFC 9110 §5.6.1) that may be split over
/// several header lines, contains `token` (case-insensitive).
pub(crate) fn list_has(headers: &[Header], name: &str, token: &str) -> bool {
    header::values(headers, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_span_lines_and_ignore_case_and_spaces() {
        let headers = [
            Header::new("Upgrade", "h2c"),
            Header::new("upgrade", " WebSocket , foo"),
            Header::new("Connection", "keep-alive,Upgrade"),
        ];
        assert!(list_has(&headers, "upgrade", "websocket"));
        assert!(list_has(&headers, "Connection", "upgrade"));
        assert!(!list_has(&headers, "Connection", "close"));
        assert!(!list_has(
            &[Header::new("Upgrade", "websocket/13")],
            "Upgrade",
            "websocket"
        ));
        assert!(!list_has(
            &[Header::new("Upgrade", "web socket")],
            "Upgrade",
            "websocket"
        ));
    }

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
}
