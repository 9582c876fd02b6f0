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
    /// What kind of refusal it is (what the server's statistics count it as).
    pub kind: RefusalKind,
}

/// What a [`Refusal`] is about, for the server to count it by (a status says what the client
/// reads, not why: a future 403 need not be about the origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request is not a valid upgrade request (or not one this server takes).
    Request,
    /// The page's origin is not allowed (`allowed_origins`, `require_origin`).
    Origin,
}

pub(super) fn refuse(status: u16, reason: &str) -> Refusal {
    Refusal {
        status,
        reason: reason.to_owned(),
        kind: RefusalKind::Request,
    }
}

/// A refusal for the page's origin: 403.
pub(super) fn forbidden_origin(reason: &str) -> Refusal {
    Refusal {
        kind: RefusalKind::Origin,
        ..refuse(403, reason)
    }
}

pub(super) fn bad_request(why: &str) -> Refusal {
    Refusal {
        status: 400,
        reason: format!("Bad Request: {why}"),
        kind: RefusalKind::Request,
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
