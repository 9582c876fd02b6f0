//! The rules of an HTTP/1.1 head both halves of the handshake follow: how large it may be,
//! and how a comma-separated header list is read.

use crate::header::{self, Header};

/// The most header bytes either side accepts before giving up on the handshake.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most header lines either side accepts.
pub const MAX_HEADERS: usize = 100;
/// How much of a failed handshake's response body is kept for the application.
pub(crate) const MAX_BODY_BYTES: usize = 4096;

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
}
