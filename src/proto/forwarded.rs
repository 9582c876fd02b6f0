//! Who the client is when the server runs behind a proxy: the PROXY protocol header (v1 text,
//! v2 binary; parsed by the `ppp` crate) and the `Forwarded` / `X-Forwarded-For` headers, each
//! believed only from configured proxy addresses. Plain data in, addresses out; the driver
//! reads the bytes.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::header::Header;

/// The longest PROXY header accepted: v1 is at most 107 bytes; v2 is 16 bytes and addresses
/// (36 for IPv6) plus TLVs, which proxies keep short. A longer one is refused, so a trusted
/// but broken proxy cannot make the server buffer 64 KiB per connection.
pub const MAX_PROXY_HEADER: usize = 1024;
/// v1's longest header, `\r\n` included (the spec's bound).
const MAX_V1: usize = 107;
/// v2's fixed part: the signature, version and command, family, length.
const V2_FIXED: usize = 16;
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The proxies whose word is taken: addresses and networks.
#[derive(Debug, Clone, Default)]
pub struct Trusted(Vec<IpNet>);

impl Trusted {
    /// Parses addresses (`10.0.0.1`, `::1`) and networks (`10.0.0.0/8`).
    pub fn parse<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Result<Trusted, String> {
        list.into_iter()
            .map(|s| {
                let s = s.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an IP address or network (a.b.c.d/n)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Trusted)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as its IPv4 one) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// What the PROXY header's first bytes say about its length.
#[derive(Debug, PartialEq, Eq)]
pub enum Length {
    /// Read up to this many bytes in all, then ask again (v2: the fixed part first).
    AtLeast(usize),
    /// The header is this long (v1: ends with `\r\n` within the bytes given).
    Exactly(usize),
}

/// How long the PROXY header at the start of `buf` is, as far as `buf` tells; `Err` when it
/// is not a PROXY header or is longer than [`MAX_PROXY_HEADER`].
pub fn header_length(buf: &[u8]) -> Result<Length, String> {
    if buf.is_empty() {
        return Ok(Length::AtLeast(1));
    }
    if buf[0] == b'P' {
        if !b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
            return Err("not a PROXY protocol header".into());
        }
        return match buf.windows(2).position(|w| w == b"\r\n") {
            Some(i) => Ok(Length::Exactly(i + 2)),
            None if buf.len() >= MAX_V1 => {
                Err(format!("a PROXY v1 header without CRLF in {MAX_V1} bytes"))
            }
            None => Ok(Length::AtLeast(buf.len() + 1)),
        };
    }
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err("not a PROXY protocol header".into());
    }
    if buf.len() < V2_FIXED {
        return Ok(Length::AtLeast(V2_FIXED));
    }
    let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_PROXY_HEADER {
        return Err(format!(
            "a PROXY v2 header of {len} bytes (at most {MAX_PROXY_HEADER})"
        ));
    }
    Ok(Length::Exactly(len))
}

/// The client a whole PROXY header names: `Ok(Some)` for a proxied TCP connection, `Ok(None)`
/// for the proxy's own connections (v2 `LOCAL`, v1 `UNKNOWN`: health checks), which keep the
/// TCP peer.
pub fn parse_header(header: &[u8]) -> Result<Option<SocketAddr>, String> {
    use ppp::{HeaderResult, v1, v2};
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => {
            if h.command == v2::Command::Local {
                return Ok(None);
            }
            Ok(match h.addresses {
                v2::Addresses::IPv4(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v2::Addresses::IPv6(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
            })
        }
        HeaderResult::V1(Err(e)) => Err(format!("a malformed PROXY v1 header ({e:?})")),
        HeaderResult::V2(Err(e)) => Err(format!("a malformed PROXY v2 header ({e:?})")),
    }
}

/// The request header a trusted proxy names the client in. The operator names the one its
/// proxy writes, and only that one is read: a proxy appends to its own header and passes any
/// other through untouched, so the other header is whatever the client wrote.
///
/// ```
/// use syncws::{ForwardedHeader, Server};
/// // nginx (`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`) or HAProxy
/// // (`option forwardfor`) in front, on 10.0.0.5:
/// let builder = Server::builder()
///     .trusted_proxies(["10.0.0.5"])
///     .forwarded_header(ForwardedHeader::XForwardedFor);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: <client>, <proxy>, …`: what nginx's `$proxy_add_x_forwarded_for`
    /// and HAProxy's `option forwardfor` append to.
    XForwardedFor,
    /// `Forwarded: for=<client>, for=<proxy>` (RFC 7239): what HAProxy's `option forwarded`
    /// writes, and nginx when configured to.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "X-Forwarded-For",
            ForwardedHeader::Forwarded => "Forwarded",
        }
    }
}

/// The client that header `which` names, for a request that came from a trusted proxy: walking
/// the hops from the right (each proxy appends the address it got the request from), the first
/// that is not itself a trusted proxy. What stands left of it may be forged, garbage included,
/// and is never read.
///
/// - `Ok(None)`: the request has no such header (the proxy's own request): keep the proxy's
///   address.
/// - `Ok(Some(ip))`: the client; every hop a trusted proxy gives the leftmost.
/// - `Err`: a hop the walk must read is not an address (`unknown`, an obfuscated name, bytes
///   that are not ASCII): the request is refused with 400, never taken to come from the proxy.
///
/// The header's values are read as bytes across repeated header lines (HAProxy adds a line of
/// its own; nginx joins what the client sent and the address into one value), split on commas
/// (outside quoted strings, for `Forwarded`); empty elements are skipped.
pub fn client_from_headers(
    headers: &[Header],
    which: ForwardedHeader,
    trusted: &Trusted,
) -> Result<Option<IpAddr>, String> {
    let name = which.name();
    let elements: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| split_list(h.value(), which == ForwardedHeader::Forwarded))
        .collect();
    let mut client = None;
    for (from_right, element) in elements.iter().rev().enumerate() {
        let ip = match which {
            ForwardedHeader::XForwardedFor => node_ip(element),
            ForwardedHeader::Forwarded => forwarded_for(element).and_then(node_ip),
        };
        let Some(ip) = ip else {
            return Err(format!(
                "{name}'s hop {} from the right is not an address: {}",
                from_right + 1,
                shown(element)
            ));
        };
        client = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    Ok(client)
}

/// A list header's elements (RFC 9110 §5.6.1): split on commas, trimmed of spaces and tabs,
/// empty ones skipped. With `quoted`, commas inside a quoted string (RFC 9110 §5.6.4, with its
/// backslash escapes) do not split.
fn split_list(value: &[u8], quoted: bool) -> impl Iterator<Item = &[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if quoted && b == b'"' {
            in_quotes = !in_quotes;
        } else if b == b',' && !in_quotes {
            parts.push(&value[start..i]);
            start = i + 1;
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(trim).filter(|p| !p.is_empty())
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The value of an RFC 7239 element's `for` parameter (`for=192.0.2.1;proto=https`), if it has
/// one.
fn forwarded_for(element: &[u8]) -> Option<&[u8]> {
    element
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
        })
        .find(|(k, _)| k.eq_ignore_ascii_case(b"for"))
        .map(|(_, v)| v)
}

/// An address as `Forwarded` or `X-Forwarded-For` write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn node_ip(v: &[u8]) -> Option<IpAddr> {
    let v = std::str::from_utf8(v).ok()?;
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    v.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

/// A hop as an error message shows it: escaped (it is the client's bytes, and goes to logs and
/// a 400's reason) and cut to 64 bytes.
fn shown(element: &[u8]) -> String {
    let cut = &element[..element.len().min(64)];
    let mut s: String = cut.escape_ascii().to_string();
    if element.len() > cut.len() {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: impl Into<Vec<u8>>) -> Header {
        Header::new(name, value)
    }

    fn trusted(list: &[&str]) -> Trusted {
        Trusted::parse(list).unwrap()
    }

    #[test]
    fn trusted_takes_addresses_and_networks_and_mapped_v4() {
        let t = trusted(&["10.0.0.0/8", "::1", "192.0.2.7"]);
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(t.contains("192.0.2.7".parse().unwrap()));
        assert!(!t.contains("192.0.2.8".parse().unwrap()));
        assert!(Trusted::parse(["10.0.0.0/33"]).is_err());
        assert!(Trusted::parse(["proxy.example"]).is_err());
    }

    #[test]
    fn v1_header_length_and_client() {
        let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1";
        assert_eq!(header_length(&header[..3]), Ok(Length::AtLeast(4)));
        let Ok(Length::Exactly(n)) = header_length(header) else {
            panic!()
        };
        assert_eq!(&header[n - 2..n], b"\r\n");
        assert_eq!(
            parse_header(&header[..n]),
            Ok(Some("192.0.2.1:56324".parse().unwrap()))
        );
        assert_eq!(parse_header(b"PROXY UNKNOWN\r\n"), Ok(None));
        assert!(header_length(b"GET / HTTP/1.1\r\n").is_err());
        assert!(header_length(&[b'P'; 200]).is_err());
        assert!(
            header_length(&{
                let mut v = b"PROXY ".to_vec();
                v.extend([b'1'; 120]);
                v
            })
            .is_err()
        );
    }

    fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | command);
        v.push(family);
        v.extend((addrs.len() as u16).to_be_bytes());
        v.extend(addrs);
        v
    }

    #[test]
    fn v2_header_length_and_client() {
        let addrs = [192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB];
        let header = v2(1, 0x11, &addrs);
        assert_eq!(header_length(&header[..5]), Ok(Length::AtLeast(16)));
        assert_eq!(header_length(&header), Ok(Length::Exactly(28)));
        assert_eq!(
            parse_header(&header),
            Ok(Some("192.0.2.1:56324".parse().unwrap()))
        );
        // LOCAL: the proxy's own connection (a health check).
        assert_eq!(parse_header(&v2(0, 0x00, &[])), Ok(None));
        // A length past the bound.
        let mut big = v2(1, 0x11, &addrs);
        big[14..16].copy_from_slice(&5000u16.to_be_bytes());
        assert!(header_length(&big).is_err());
        // Garbage after a good signature.
        assert!(parse_header(&v2(1, 0x11, &addrs[..5])).is_err());
    }

    fn client(headers: &[Header], which: ForwardedHeader) -> Result<Option<IpAddr>, String> {
        client_from_headers(headers, which, &trusted(&["10.0.0.0/8"]))
    }

    fn ip(s: &str) -> Result<Option<IpAddr>, String> {
        Ok(Some(s.parse().unwrap()))
    }

    use ForwardedHeader::{Forwarded, XForwardedFor};

    #[test]
    fn x_forwarded_for_names_the_rightmost_untrusted_hop() {
        // client, then a proxy of ours: the client.
        let xff = [h("X-Forwarded-For", "203.0.113.9, 10.0.0.2")];
        assert_eq!(client(&xff, XForwardedFor), ip("203.0.113.9"));
        // A forged entry left of the real client is ignored.
        let forged = [h("X-Forwarded-For", "1.2.3.4, 203.0.113.9")];
        assert_eq!(client(&forged, XForwardedFor), ip("203.0.113.9"));
        // Repeated lines are one list, in order (HAProxy adds a line of its own).
        let lines = [
            h("X-Forwarded-For", "1.2.3.4"),
            h("X-Forwarded-For", "203.0.113.9"),
        ];
        assert_eq!(client(&lines, XForwardedFor), ip("203.0.113.9"));
        // Every hop trusted: the leftmost. No header: the proxy's own request.
        let ours = [h("X-Forwarded-For", "10.0.0.7, 10.0.0.2")];
        assert_eq!(client(&ours, XForwardedFor), ip("10.0.0.7"));
        assert_eq!(client(&[], XForwardedFor), Ok(None));
        // Empty elements are no hops; ports and brackets are read.
        let odd = [h("X-Forwarded-For", " , [2001:db8::1]:4711 ,, ")];
        assert_eq!(client(&odd, XForwardedFor), ip("2001:db8::1"));
    }

    #[test]
    fn only_the_header_the_operator_named_is_read() {
        // A client's own `Forwarded` beside the proxy's X-Forwarded-For (nginx and HAProxy pass
        // it through untouched) is not believed, and the other way round.
        let both = [
            h("Forwarded", "for=6.6.6.6"),
            h("X-Forwarded-For", "203.0.113.9"),
        ];
        assert_eq!(client(&both, XForwardedFor), ip("203.0.113.9"));
        let both = [
            h("X-Forwarded-For", "6.6.6.6"),
            h("Forwarded", "for=203.0.113.9"),
        ];
        assert_eq!(client(&both, Forwarded), ip("203.0.113.9"));
        assert_eq!(
            client(&[h("Forwarded", "for=6.6.6.6")], XForwardedFor),
            Ok(None)
        );
    }

    #[test]
    fn forwarded_elements_are_read_with_their_quotes() {
        let f = [h(
            "Forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3",
        )];
        assert_eq!(client(&f, Forwarded), ip("2001:db8::1"));
        // A comma inside a quoted string does not split the element.
        let f = [h(
            "Forwarded",
            "for=6.6.6.6;ext=\"a,b\\\",c\", for=203.0.113.9",
        )];
        assert_eq!(client(&f, Forwarded), ip("203.0.113.9"));
        let f = [h("Forwarded", "proto=https;For=203.0.113.9")];
        assert_eq!(client(&f, Forwarded), ip("203.0.113.9"));
    }

    #[test]
    fn garbage_left_of_the_client_is_never_read_but_an_unreadable_last_hop_is_refused() {
        // nginx joins what the client sent with the address it saw: "\xff, <client>".
        let joined = [h("X-Forwarded-For", &b"\xff, 203.0.113.9"[..])];
        assert_eq!(client(&joined, XForwardedFor), ip("203.0.113.9"));
        let garbage = [h("X-Forwarded-For", &b"not an address, 203.0.113.9"[..])];
        assert_eq!(client(&garbage, XForwardedFor), ip("203.0.113.9"));
        // The hop the proxy appended cannot be read: refused, not taken as the proxy.
        let e = client(
            &[h("X-Forwarded-For", &b"203.0.113.9, \xff"[..])],
            XForwardedFor,
        )
        .unwrap_err();
        assert!(
            e.contains("hop 1 from the right") && e.contains("\\xff"),
            "{e}"
        );
        // Behind a trusted hop, the next one must be read too.
        let e = client(&[h("X-Forwarded-For", "junk, 10.0.0.2")], XForwardedFor).unwrap_err();
        assert!(e.contains("hop 2"), "{e}");
        let e = client(&[h("Forwarded", "for=unknown")], Forwarded).unwrap_err();
        assert!(e.contains("\"for=unknown\""), "{e}");
        let e = client(&[h("Forwarded", "proto=https")], Forwarded).unwrap_err();
        assert!(e.contains("not an address"), "{e}");
        // The message is cut: a 64 KiB header does not become a 64 KiB log line.
        let long = "x".repeat(5000);
        let e = client(&[h("X-Forwarded-For", long.as_str())], XForwardedFor).unwrap_err();
        assert!(e.len() < 200, "{}", e.len());
    }
}
