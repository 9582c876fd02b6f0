//! Who the client is when the server runs behind a proxy: the PROXY protocol header (v1 text,
//! v2 binary; parsed by the `ppp` crate) and the `Forwarded` / `X-Forwarded-For` headers, each
//! believed only from configured proxy addresses. Plain data in, addresses out; the driver
//! reads the bytes.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::header::{self, Header};

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

/// The client the `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For` headers name, for
/// a request that came from a trusted proxy: the rightmost address that is not itself a
/// trusted proxy (each proxy appends the address it got the request from, so everything left
/// of the first untrusted hop may be forged). `None` when there is no such header, or the
/// chain has an entry that is not an address (`unknown`, an obfuscated name): the proxy's
/// address is kept.
pub fn client_from_headers(headers: &[Header], trusted: &Trusted) -> Option<IpAddr> {
    // Every element of the comma-separated lists, across repeated headers.
    let values = |name: &str| {
        header::values(headers, name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let forwarded = values("Forwarded");
    let chain: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_ip(v.trim()))
            })
            .collect()
    } else {
        values("X-Forwarded-For")
            .iter()
            .map(|v| node_ip(v))
            .collect()
    };
    let mut client = None;
    for hop in chain.iter().rev() {
        let ip = (*hop)?;
        client = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// An address as `Forwarded` or `X-Forwarded-For` write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn node_ip(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
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

    #[test]
    fn forwarded_headers_name_the_rightmost_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        // client, then a proxy of ours: the client.
        let xff = [h("X-Forwarded-For", "203.0.113.9, 10.0.0.2")];
        assert_eq!(
            client_from_headers(&xff, &t),
            Some("203.0.113.9".parse().unwrap())
        );
        // A forged entry left of the real client is ignored.
        let forged = [h("X-Forwarded-For", "1.2.3.4, 203.0.113.9")];
        assert_eq!(
            client_from_headers(&forged, &t),
            Some("203.0.113.9".parse().unwrap())
        );
        // Forwarded wins over X-Forwarded-For; quoted IPv6 with a port.
        let both = [
            h("X-Forwarded-For", "198.51.100.1"),
            h(
                "Forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3",
            ),
        ];
        assert_eq!(
            client_from_headers(&both, &t),
            Some("2001:db8::1".parse().unwrap())
        );
        // An unknown hop stops the walk: the proxy's address stays.
        let unknown = [h("Forwarded", "for=unknown")];
        assert_eq!(client_from_headers(&unknown, &t), None);
        assert_eq!(client_from_headers(&[], &t), None);
    }
}
