//! What an upgrade request names: its `Host` header and request target, checked, and the URL
//! built from them with the `url` crate's setters (never by pasting strings together).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::refusal::{Refusal, bad_request};
use crate::header::{self, Header};

/// A host as RFC 3986 writes it in an authority: a name, an IPv4 address or an IPv6 literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostName {
    /// A reg-name, lower-cased.
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// `host[:port]`: an authority with no userinfo (RFC 9110 §7.2, the `Host` header's syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    pub host: HostName,
    /// `None` when absent or empty (`host:`, which RFC 3986 allows and means the default).
    pub port: Option<u16>,
}

impl Authority {
    /// The port, or `default` when none was written.
    fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// The host as a URL writes it (IPv6 in brackets).
    pub(super) fn host_text(&self) -> String {
        match &self.host {
            HostName::Name(n) => n.clone(),
            HostName::V4(a) => a.to_string(),
            HostName::V6(a) => format!("[{a}]"),
        }
    }
}

/// Parses `host[:port]`. Names are restricted to RFC 3986's unreserved characters (letters,
/// digits, `-`, `.`, `_`, `~`): no userinfo (`@`), no path, query or fragment (`/`, `?`, `#`),
/// no percent-encoding and none of the sub-delimiters (`!$&'()*+,;=`), which no DNS name has
/// and which only make one header mean two things.
pub(crate) fn parse_authority(s: &str) -> Result<Authority, &'static str> {
    // Looked for first: `user:pw@host` must not read as the host `user` and a bad port.
    if s.contains('@') {
        return Err("user info in the host");
    }
    if s.contains(['/', '?', '#']) {
        return Err("a path, query or fragment in the host");
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or("an unclosed '[' in the host")?;
        let addr: Ipv6Addr = literal
            .parse()
            .map_err(|_| "an invalid IPv6 address in the host")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("text after the IPv6 address")?),
        };
        (HostName::V6(addr), port)
    } else {
        let (name, port) = match s.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        };
        if name.is_empty() {
            return Err("an empty host");
        }
        if let Some(b) = name.bytes().find(|&b| !is_unreserved(b)) {
            return Err(match b {
                b':' => "more than one ':' in the host",
                _ => "a character that is not allowed in a host name",
            });
        }
        match name.parse::<Ipv4Addr>() {
            Ok(a) => (HostName::V4(a), port),
            Err(_) => (HostName::Name(name.to_ascii_lowercase()), port),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "a port above 65535")?)
        }
        Some(_) => return Err("an invalid port"),
    };
    Ok(Authority { host, port })
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The one `Host` header, parsed. None, two (which could name two hosts) or an invalid one
/// is refused: RFC 9112 §3.2 asks for 400 in each case.
pub(super) fn host_header(headers: &[Header]) -> Result<Authority, Refusal> {
    let mut hosts = header::bytes(headers, "Host");
    let (Some(value), None) = (hosts.next(), hosts.next()) else {
        return Err(bad_request(
            if header::bytes(headers, "Host").next().is_none() {
                "no Host header"
            } else {
                "more than one Host header"
            },
        ));
    };
    let value = std::str::from_utf8(value).map_err(|_| bad_request("invalid Host header"))?;
    parse_authority(value.trim()).map_err(|why| bad_request(&format!("Host header has {why}")))
}

/// Splits the request target into path and query. Only the origin form (`/path?query`) and
/// the absolute form (`ws|wss|http|https://authority/path?query`, RFC 9112 §3.2.2) whose
/// authority is the `Host` header's are accepted; `*`, the authority form and anything else
/// are refused, as is a fragment, which a request never carries.
pub(super) fn split_target<'t>(
    target: &'t str,
    host: &Authority,
    tls: bool,
) -> Result<(&'t str, Option<&'t str>), Refusal> {
    if target.contains('#') {
        return Err(bad_request("a fragment in the request target"));
    }
    let path_and_query = if target.starts_with('/') {
        target
    } else if let Some((scheme, rest)) = target.split_once("://") {
        let scheme_tls = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(bad_request("the request target is not a path")),
        };
        if scheme_tls != tls {
            return Err(bad_request(
                "the request target's scheme does not match the connection",
            ));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = parse_authority(&rest[..end])
            .map_err(|why| bad_request(&format!("request target has {why}")))?;
        let default = if tls { 443 } else { 80 };
        if authority.host != host.host || authority.port_or(default) != host.port_or(default) {
            return Err(bad_request(
                "the request target names another host than the Host header",
            ));
        }
        &rest[end..]
    } else {
        return Err(bad_request("the request target is not a path"));
    };
    Ok(match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    })
}

/// Builds the URL the handler sees with the `url` crate's setters, and checks that it says what
/// the request said: the same host, and the same path and query once percent-decoded (the
/// `url` crate percent-encodes some characters, such as `"` or `{`, and that is the same
/// resource). A target it would rewrite into another one, by resolving `.` and `..` segments
/// (also as `%2e`) or reading `\` as `/`, is refused: the handler would route a path the client
/// never sent.
pub(super) fn build_url(
    tls: bool,
    host: &Authority,
    path: &str,
    query: Option<&str>,
) -> Result<url::Url, Refusal> {
    let base = if tls { "wss://x/" } else { "ws://x/" };
    let mut url = url::Url::parse(base).expect("a constant, valid URL");
    if url.set_host(Some(&host.host_text())).is_err() || !same_host(&url, &host.host) {
        // The url crate reads some names as something else: `127.1` as 127.0.0.1, labels
        // ending in a number as IPv4, `xn--` labels through IDNA.
        return Err(bad_request("Host header names no valid host"));
    }
    // Never fails for a ws/wss URL with a host; the default port for the scheme is dropped.
    let _ = url.set_port(host.port);
    url.set_path(if path.is_empty() { "/" } else { path });
    url.set_query(query);
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let same_path = decoded(url.path()) == decoded(if path.is_empty() { "/" } else { path });
    let same_query = url.query().map(decoded) == query.map(decoded);
    if !same_path || !same_query {
        return Err(bad_request(
            "the request target is not a normalized path ('.', '..' or '\\' segments)",
        ));
    }
    Ok(url)
}

fn same_host(url: &url::Url, host: &HostName) -> bool {
    match (url.host(), host) {
        (Some(url::Host::Domain(d)), HostName::Name(n)) => d == n,
        (Some(url::Host::Ipv4(a)), HostName::V4(b)) => a == *b,
        (Some(url::Host::Ipv6(a)), HostName::V6(b)) => a == *b,
        _ => false,
    }
}
