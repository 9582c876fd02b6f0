//! The server's refusals of an upgrade request: an HTTP status and what was wrong, and their
//! bytes.

use crate::header::{self, Header};

/// Why the server role refuses an upgrade request, as an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (400, 403, 405, 426, 431, 505, ...).
    pub status: u16,
    /// The reason phrase; for the server's own refusals it says what was wrong, after the
    /// status's usual phrase (`Bad Request: more than one Host header`).
    pub reason: String,
}

pub(super) fn refuse(status: u16, reason: &str) -> Refusal {
    Refusal {
        status,
        reason: reason.to_owned(),
    }
}

pub(super) fn bad_request(why: &str) -> Refusal {
    Refusal {
        status: 400,
        reason: format!("Bad Request: {why}"),
    }
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
