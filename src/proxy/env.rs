//! The proxy the environment asks for: `https_proxy`, `http_proxy`, `all_proxy` and
//! `no_proxy` (lowercase first; uppercase `HTTP_PROXY` ignored under CGI), loopback always
//! direct.

use std::fmt;
use std::net::IpAddr;

use super::endpoint::{Endpoint, Scheme, parse_proxy_url};
use crate::error::Error;

/// A snapshot of the proxy variables.
pub(super) struct EnvProxy {
    http: Option<EnvValue>,
    https: Option<EnvValue>,
    all: Option<EnvValue>,
    no_proxy: NoProxy,
}

/// One proxy variable: which name it was found under, and what it says.
#[derive(Debug)]
struct EnvValue {
    var: &'static str,
    endpoint: Result<Endpoint, String>,
}

impl EnvProxy {
    pub(super) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> EnvProxy {
        let cgi = lookup("REQUEST_METHOD").is_some_and(|v| !v.is_empty());
        let first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|&n| lookup(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let proxy = |names: &[&'static str]| {
            first(names).map(|(var, value)| EnvValue {
                var,
                endpoint: parse_proxy_url(&value, Scheme::Http),
            })
        };
        let http_names: &[&'static str] = if cgi {
            &["http_proxy"]
        } else {
            &["http_proxy", "HTTP_PROXY"]
        };
        EnvProxy {
            http: proxy(http_names),
            https: proxy(&["https_proxy", "HTTPS_PROXY"]),
            all: proxy(&["all_proxy", "ALL_PROXY"]),
            no_proxy: first(&["no_proxy", "NO_PROXY"])
                .map(|(_, v)| NoProxy::parse(&v))
                .unwrap_or_default(),
        }
    }

    pub(super) fn route(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Option<&Endpoint>, Error> {
        let chosen = if tls { &self.https } else { &self.http };
        let Some(value) = chosen.as_ref().or(self.all.as_ref()) else {
            return Ok(None);
        };
        if is_loopback(host) || self.no_proxy.matches(host, port) {
            return Ok(None);
        }
        match &value.endpoint {
            Ok(endpoint) => Ok(Some(endpoint)),
            Err(reason) => Err(Error::Proxy(format!(
                "the environment variable {} is not a usable proxy URL: {reason}",
                value.var
            ))),
        }
    }
}

/// `localhost`, a name under `.localhost` (RFC 6761), 127.0.0.0/8, `::1` (also IPv4-mapped).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback(),
        Ok(IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// A parsed `no_proxy` list.
#[derive(Debug, Default)]
struct NoProxy {
    all: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, PartialEq, Eq)]
enum Rule {
    /// The name and every name under it.
    Name { name: String, port: Option<u16> },
    /// Addresses in `net/prefix` (a single address has the full prefix).
    Ip {
        net: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for token in list
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            if token == "*" {
                no_proxy.all = true;
            } else if let Some(rule) = Rule::parse(&token.to_ascii_lowercase()) {
                no_proxy.rules.push(rule);
            }
        }
        no_proxy
    }

    fn len(&self) -> usize {
        self.rules.len() + usize::from(self.all)
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.rules.iter().any(|rule| rule.matches(&host, ip, port))
    }
}

impl Rule {
    fn parse(token: &str) -> Option<Rule> {
        if let Some((addr, bits)) = token.split_once('/') {
            let net = unbracket(addr).parse::<IpAddr>().ok()?;
            let prefix = bits.parse::<u8>().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Rule::Ip {
                net,
                prefix,
                port: None,
            });
        }
        if let Some(rest) = token.strip_prefix('[') {
            let (addr, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
            };
            return Some(Rule::ip(addr.parse().ok()?, port));
        }
        if let Ok(ip) = token.parse::<IpAddr>() {
            return Some(Rule::ip(ip, None));
        }
        let (host, port) = match token.split_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
            None => (token, None),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Rule::ip(ip, port));
        }
        let name = host.strip_prefix('*').unwrap_or(host);
        let name = name.strip_prefix('.').unwrap_or(name).trim_end_matches('.');
        if name.is_empty() || name.contains(['*', '[', ']', '/']) {
            return None;
        }
        Some(Rule::Name {
            name: name.to_owned(),
            port,
        })
    }

    fn ip(net: IpAddr, port: Option<u16>) -> Rule {
        let prefix = if net.is_ipv4() { 32 } else { 128 };
        Rule::Ip { net, prefix, port }
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        match self {
            Rule::Name { name, port: p } => {
                p.is_none_or(|p| p == port)
                    && ip.is_none()
                    && (host == name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            Rule::Ip {
                net,
                prefix,
                port: p,
            } => p.is_none_or(|p| p == port) && ip.is_some_and(|ip| in_net(ip, *net, *prefix)),
        }
    }
}

fn unbracket(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

/// Whether `ip` is in `net/prefix` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// What the environment chose for each scheme, without credentials.
impl fmt::Display for EnvProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<&EnvValue>| match v {
            None => "direct".to_owned(),
            Some(EnvValue {
                var,
                endpoint: Ok(e),
            }) => format!("{e} (from {var})"),
            Some(EnvValue { var, .. }) => format!("invalid {var}"),
        };
        write!(
            f,
            "proxies from the environment: ws {}, wss {}, {} no_proxy entries",
            show(self.http.as_ref().or(self.all.as_ref())),
            show(self.https.as_ref().or(self.all.as_ref())),
            self.no_proxy.len()
        )
    }
}

impl fmt::Debug for EnvProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy::from_env")
            .field("http", &self.http)
            .field("https", &self.https)
            .field("all", &self.all)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> EnvProxy {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EnvProxy::from_lookup(move |name| map.get(name).cloned())
    }

    /// The proxy `proxy` picks for `url`, as `scheme://host:port`, or "direct".
    fn via(proxy: &EnvProxy, url: &str) -> String {
        let request = crate::Request::builder(url).build().unwrap();
        let (host, port) = request.host_port().unwrap();
        match proxy.route(&host, port, request.is_tls()) {
            Ok(Some(e)) => e.to_string(),
            Ok(None) => "direct".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn ws_uses_http_proxy_and_wss_https_proxy() {
        let p = env(&[
            ("http_proxy", "http://h:1"),
            ("https_proxy", "http://s:2"),
            ("all_proxy", "socks5://a:3"),
        ]);
        assert_eq!(via(&p, "ws://example.com/"), "http://h:1");
        assert_eq!(via(&p, "wss://example.com/"), "http://s:2");
        assert_eq!(via(&p, "http://example.com/"), "http://h:1");
        assert_eq!(via(&p, "https://example.com/"), "http://s:2");
    }

    #[test]
    fn all_proxy_fills_in() {
        let p = env(&[("all_proxy", "socks5h://a:3")]);
        assert_eq!(via(&p, "ws://example.com/"), "socks5h://a:3");
        assert_eq!(via(&p, "wss://example.com/"), "socks5h://a:3");
        let p = env(&[("ALL_PROXY", "socks5://a:3"), ("http_proxy", "h:1")]);
        assert_eq!(via(&p, "ws://example.com/"), "http://h:1");
        assert_eq!(via(&p, "wss://example.com/"), "socks5://a:3");
        // https_proxy is not used for ws, nor http_proxy for wss.
        let p = env(&[("https_proxy", "s:2")]);
        assert_eq!(via(&p, "ws://example.com/"), "direct");
        let p = env(&[("http_proxy", "h:1")]);
        assert_eq!(via(&p, "wss://example.com/"), "direct");
        assert_eq!(via(&env(&[]), "wss://example.com/"), "direct");
    }

    #[test]
    fn lowercase_wins_over_uppercase() {
        let p = env(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("no_proxy", "lower.example"),
            ("NO_PROXY", "upper.example"),
        ]);
        assert_eq!(via(&p, "ws://example.com/"), "http://lower:1");
        assert_eq!(via(&p, "wss://example.com/"), "http://lower:2");
        assert_eq!(via(&p, "ws://lower.example/"), "direct");
        assert_eq!(via(&p, "ws://upper.example/"), "http://lower:1");
        let p = env(&[
            ("all_proxy", "http://lower:3"),
            ("ALL_PROXY", "http://upper:3"),
        ]);
        assert_eq!(via(&p, "ws://example.com/"), "http://lower:3");
        // Uppercase alone is used; an empty lowercase value counts as unset.
        let p = env(&[
            ("http_proxy", ""),
            ("HTTP_PROXY", "http://upper:1"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("NO_PROXY", "upper.example"),
        ]);
        assert_eq!(via(&p, "ws://example.com/"), "http://upper:1");
        assert_eq!(via(&p, "wss://example.com/"), "http://upper:2");
        assert_eq!(via(&p, "wss://upper.example/"), "direct");
    }

    #[test]
    fn cgi_ignores_uppercase_http_proxy() {
        let p = env(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "http://evil:1")]);
        assert_eq!(via(&p, "ws://example.com/"), "direct");
        let p = env(&[("REQUEST_METHOD", "GET"), ("http_proxy", "http://ok:1")]);
        assert_eq!(via(&p, "ws://example.com/"), "http://ok:1");
    }

    #[test]
    fn loopback_is_never_proxied_by_the_environment() {
        let p = env(&[("all_proxy", "http://h:1")]);
        for url in [
            "ws://localhost/",
            "ws://LOCALHOST:8080/",
            "wss://localhost./",
            "ws://app.localhost/",
            "ws://127.0.0.1:9/",
            "ws://127.200.3.4/",
            "wss://[::1]:9/",
            "ws://[::ffff:127.0.0.1]/",
        ] {
            assert_eq!(via(&p, url), "direct", "{url}");
        }
        for url in [
            "ws://localhost.example/",
            "ws://128.0.0.1/",
            "ws://[::2]/",
            "ws://mylocalhost/",
        ] {
            assert_eq!(via(&p, url), "http://h:1", "{url}");
        }
    }

    fn no_proxy(list: &str, url: &str) -> bool {
        let p = env(&[("all_proxy", "http://h:1"), ("no_proxy", list)]);
        via(&p, url) == "direct"
    }

    #[test]
    fn no_proxy_names_match_the_name_and_below() {
        for list in [
            "example.com",
            ".example.com",
            "*.example.com",
            "EXAMPLE.COM.",
            "example.com:",
        ] {
            let expect = list != "example.com:";
            assert_eq!(no_proxy(list, "ws://example.com/"), expect, "{list}");
            assert_eq!(no_proxy(list, "ws://a.b.example.com/"), expect, "{list}");
            assert_eq!(no_proxy(list, "ws://Example.Com./"), expect, "{list}");
            assert!(!no_proxy(list, "ws://badexample.com/"), "{list}");
            assert!(!no_proxy(list, "ws://example.com.evil/"), "{list}");
            assert!(!no_proxy(list, "ws://com/"), "{list}");
        }
    }

    #[test]
    fn no_proxy_lists_split_on_commas_and_spaces() {
        let list = " a.example , b.example\tc.example,,d.example ";
        for host in ["a.example", "b.example", "c.example", "d.example"] {
            assert!(no_proxy(list, &format!("ws://{host}/")), "{host}");
        }
        assert!(!no_proxy(list, "ws://e.example/"));
        assert!(!no_proxy("", "ws://a.example/"));
        assert!(!no_proxy(",, ,", "ws://a.example/"));
    }

    #[test]
    fn no_proxy_star_matches_everything() {
        assert!(no_proxy("*", "ws://example.com/"));
        assert!(no_proxy("*", "wss://10.0.0.1/"));
        assert!(no_proxy("foo.example, *", "ws://example.com/"));
        // `*` inside a name is not a wildcard.
        assert!(!no_proxy("ex*.com", "ws://example.com/"));
    }

    #[test]
    fn no_proxy_ports() {
        assert!(no_proxy("example.com:8080", "ws://example.com:8080/"));
        assert!(no_proxy("example.com:8080", "ws://a.example.com:8080/"));
        assert!(!no_proxy("example.com:8080", "ws://example.com:8081/"));
        assert!(!no_proxy("example.com:8080", "ws://example.com/"));
        assert!(no_proxy("example.com:80", "ws://example.com/"));
        assert!(no_proxy("example.com:443", "wss://example.com/"));
        assert!(!no_proxy("example.com:443", "ws://example.com/"));
        assert!(no_proxy("10.1.2.3:8080", "ws://10.1.2.3:8080/"));
        assert!(!no_proxy("10.1.2.3:8080", "ws://10.1.2.3:8081/"));
        assert!(no_proxy("[fd00::1]:8080", "ws://[fd00::1]:8080/"));
        assert!(!no_proxy("[fd00::1]:8080", "ws://[fd00::1]:8081/"));
        // A port that is not a number makes the entry ignored.
        assert!(!no_proxy("example.com:http", "ws://example.com/"));
    }

    #[test]
    fn no_proxy_ip_addresses_and_cidr() {
        assert!(no_proxy("10.1.2.3", "ws://10.1.2.3/"));
        assert!(!no_proxy("10.1.2.3", "ws://10.1.2.4/"));
        assert!(no_proxy("10.0.0.0/8", "ws://10.200.3.4:9/"));
        assert!(!no_proxy("10.0.0.0/8", "ws://11.0.0.1/"));
        assert!(no_proxy("192.168.1.0/24", "ws://192.168.1.255/"));
        assert!(!no_proxy("192.168.1.0/24", "ws://192.168.2.1/"));
        assert!(no_proxy("0.0.0.0/0", "ws://8.8.8.8/"));
        assert!(!no_proxy("0.0.0.0/0", "ws://[fd00::1]/"));
        assert!(!no_proxy("10.0.0.0/33", "ws://10.0.0.1/"));
        // IPv6: bare, bracketed, written another way, CIDR.
        assert!(no_proxy("fd00::1", "ws://[fd00::1]/"));
        assert!(no_proxy("[fd00::1]", "ws://[fd00::1]/"));
        assert!(no_proxy("fd00:0:0::1", "ws://[fd00::1]/"));
        assert!(no_proxy("fd00::/8", "ws://[fdab::7]/"));
        assert!(no_proxy("[fd00::]/8", "ws://[fdab::7]/"));
        assert!(!no_proxy("fd00::/16", "ws://[fdab::7]/"));
        assert!(!no_proxy("fd00::/129", "ws://[fd00::1]/"));
        // Addresses are not names: no suffix matching on them, and names are not resolved.
        assert!(!no_proxy("2.3", "ws://10.1.2.3/"));
        assert!(!no_proxy("10.1.2.3", "ws://host.example/"));
    }

    #[test]
    fn an_invalid_variable_fails_only_the_sockets_that_use_it() {
        let p = env(&[
            ("https_proxy", "https://u:secret@proxy:3128"),
            ("no_proxy", "direct.example"),
        ]);
        let e = via(&p, "wss://example.com/");
        assert!(
            e.starts_with("error: the environment variable https_proxy"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        assert_eq!(via(&p, "ws://example.com/"), "direct");
        assert_eq!(via(&p, "wss://direct.example/"), "direct");
        assert_eq!(via(&p, "wss://localhost/"), "direct");
    }

    #[test]
    fn cidr_masks_at_the_edges() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(v4("1.2.3.4"), v4("9.9.9.9"), 0));
        assert!(in_net(v4("1.2.3.4"), v4("1.2.3.4"), 32));
        assert!(!in_net(v4("1.2.3.5"), v4("1.2.3.4"), 32));
        assert!(in_net(v4("1.2.3.5"), v4("1.2.3.4"), 31));
        assert!(in_net(v4("::1"), v4("::"), 0));
        assert!(in_net(v4("::1"), v4("::1"), 128));
        assert!(!in_net(v4("::1"), v4("::"), 128));
    }
}
