//! Which pages may open a socket: the `Origin` header against the server's allow-list
//! (cross-site WebSocket hijacking, `docs/connecting.md`).

use super::refusal::{Refusal, forbidden_origin};
use super::target::parse_authority;
use crate::header::{self, Header};

/// Which `Origin` headers the server accepts (cross-site WebSocket hijacking, `docs/connecting.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Normalised origins ([`normalize_origin`]) a request's `Origin` must be one of; `None`
    /// allows every origin.
    pub allowed: Option<Vec<String>>,
    /// Refuse requests that carry no `Origin` (non-browser clients send none).
    pub required: bool,
}

/// An origin as browsers serialize it (RFC 6454 §6.2): `scheme://host[:port]`, with the scheme
/// and host lower-cased and the scheme's default port left out. `None` for anything else: a
/// path (even `/`), user info, an opaque origin (`null`), a host that is not ASCII (write its
/// punycode, as browsers send it).
pub fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let valid_scheme = scheme
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let authority = parse_authority(rest).ok()?;
    let default = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    let host = authority.host_text();
    Some(match authority.port {
        Some(port) if Some(port) != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Cross-site WebSocket hijacking: with an allow-list, a request's one `Origin` must be on it
/// (compared normalised); when required, a request without `Origin` is refused. 403 either way.
pub(super) fn check_origin(headers: &[Header], policy: &OriginPolicy) -> Result<(), Refusal> {
    let mut origins = header::bytes(headers, "Origin");
    let (first, second) = (origins.next(), origins.next());
    let Some(origin) = first else {
        if policy.required {
            return Err(forbidden_origin("Forbidden: no Origin header"));
        }
        return Ok(());
    };
    let Some(allowed) = &policy.allowed else {
        return Ok(());
    };
    if second.is_some() {
        return Err(forbidden_origin("Forbidden: more than one Origin header"));
    }
    let normalized = std::str::from_utf8(origin)
        .ok()
        .and_then(|o| normalize_origin(o.trim()));
    match normalized {
        Some(o) if allowed.contains(&o) => Ok(()),
        _ => Err(forbidden_origin("Forbidden: origin not allowed")),
    }
}
