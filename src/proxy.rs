//! Proxies: the public [`Proxy`] type and the pure rules behind it (proxy URLs, the
//! environment variables, `no_proxy`). The handshakes are in `proto/tunnel.rs`, the I/O in
//! `driver/tunnel.rs`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::Error;

/// How a [`Client`](crate::Client) reaches servers: directly, through an HTTP `CONNECT` proxy,
/// through a SOCKS5 proxy, or as the environment says (the default).
///
/// Set it with [`ClientBuilder::proxy`](crate::ClientBuilder::proxy). Without that call a
/// client uses [`Proxy::from_env`], read once when [`ClientBuilder::build`](crate::ClientBuilder::build)
/// runs.
///
/// - [`Proxy::http`]: `http://[user:password@]host[:port]` (port 80 by default). Both `ws` and
///   `wss` go through a `CONNECT` tunnel; the upgrade request inside it is the ordinary
///   `GET /path` a direct connection sends, and TLS (for `wss`) runs end to end with the
///   server, checked against the server's name, not the proxy's.
/// - [`Proxy::socks5`]: `socks5://[user:password@]host[:port]` resolves the server's name
///   here and sends the proxy an IP address; `socks5h://` sends the name and lets the proxy
///   resolve it (port 1080 by default).
/// - [`Proxy::none`]: connect directly.
/// - [`Proxy::from_env`]: per URL, from `https_proxy` / `http_proxy` / `all_proxy` and
///   `no_proxy`; loopback servers are always reached directly.
///
/// A user name and password in the URL's userinfo are percent-decoded and sent as
/// `Proxy-Authorization: Basic` (HTTP) or RFC 1929 user name/password authentication
/// (SOCKS5). Neither `Debug` nor `Display` shows the password, and no error message carries
/// userinfo: a proxy is named as `scheme://host:port`.
///
/// An explicit proxy is used for every server, loopback included.
///
/// ```
/// use syncws::{Client, Proxy};
///
/// let proxy = Proxy::http("http://user:secret@proxy.example:3128")?;
/// assert_eq!(proxy.to_string(), "http://proxy.example:3128");
/// assert!(!format!("{proxy:?}").contains("secret"));
/// let client = Client::builder().proxy(proxy).build();
/// # drop(client);
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

enum Inner {
    Direct,
    Fixed(Endpoint),
    Env(Box<EnvProxy>),
}

/// The protocol spoken to a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    /// SOCKS5, the server's name resolved here.
    Socks5,
    /// SOCKS5, the server's name resolved by the proxy.
    Socks5h,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Socks5 | Scheme::Socks5h => 1080,
        }
    }
}

/// One proxy: where it is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub scheme: Scheme,
    /// Lowercase, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub auth: Option<Credentials>,
}

/// A user name and password, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

/// `scheme://host:port`: how every message names a proxy (never with userinfo).
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Endpoint");
        d.field("url", &format_args!("{self}"));
        if let Some(auth) = &self.auth {
            d.field("user", &auth.user);
            d.field("password", &format_args!("<redacted>"));
        }
        d.finish()
    }
}

impl Proxy {
    /// Connect directly, whatever the environment says.
    pub fn none() -> Proxy {
        Proxy {
            inner: Arc::new(Inner::Direct),
        }
    }

    /// An HTTP proxy, reached over plain TCP, that opens tunnels with `CONNECT`:
    /// `http://[user:password@]host[:port]`; a bare `host:port` means the same. The port
    /// defaults to 80. Userinfo is percent-decoded (`%40` for `@`, `%3A` for `:`).
    ///
    /// Fails with [`Error::Proxy`] for another scheme (`https://` proxies, TLS to the proxy
    /// itself, are not supported) or a malformed URL; the message does not repeat the URL.
    pub fn http(url: &str) -> Result<Proxy, Error> {
        let endpoint = parse_proxy_url(url, Scheme::Http).map_err(invalid)?;
        if endpoint.scheme != Scheme::Http {
            return Err(invalid(
                "Proxy::http takes an http:// URL; use Proxy::socks5 for socks5:// and socks5h://"
                    .into(),
            ));
        }
        Ok(Proxy::fixed(endpoint))
    }

    /// A SOCKS5 proxy (RFC 1928): `socks5://[user:password@]host[:port]` resolves the server's
    /// name here and sends the proxy its IP address; `socks5h://` sends the name, for the proxy
    /// to resolve (what you want when only the proxy can resolve it). A bare `host:port` means
    /// `socks5://`. The port defaults to 1080. With userinfo (percent-decoded; user name 1 to
    /// 255 bytes, password up to 255) the proxy may choose RFC 1929 user name/password
    /// authentication; without it only "no authentication" is offered.
    ///
    /// Fails with [`Error::Proxy`] for another scheme or a malformed URL.
    pub fn socks5(url: &str) -> Result<Proxy, Error> {
        let endpoint = parse_proxy_url(url, Scheme::Socks5).map_err(invalid)?;
        if endpoint.scheme == Scheme::Http {
            return Err(invalid(
                "Proxy::socks5 takes a socks5:// or socks5h:// URL; use Proxy::http for http://"
                    .into(),
            ));
        }
        Ok(Proxy::fixed(endpoint))
    }

    /// The proxies the environment names, chosen per URL when a socket connects. This is what
    /// a client uses unless [`ClientBuilder::proxy`](crate::ClientBuilder::proxy) says
    /// otherwise; the variables are read once, here (for the default: when the client is
    /// built), so later changes to the environment do not affect it.
    ///
    /// The rules, as curl and most tools apply them:
    /// - **Which variable**: for `wss` URLs `https_proxy`, for `ws` URLs `http_proxy`; if that
    ///   is unset, `all_proxy`. Each name is looked up in lowercase first, then in uppercase
    ///   (`HTTPS_PROXY`, ...); an empty value counts as unset. When `REQUEST_METHOD` is set
    ///   (a CGI program, where a request's `Proxy:` header arrives as `HTTP_PROXY`),
    ///   uppercase `HTTP_PROXY` is ignored.
    /// - **The value** is a proxy URL: `http://`, `socks5://` or `socks5h://`, with optional
    ///   userinfo and port as for [`Proxy::http`] and [`Proxy::socks5`]; a bare `host:port`
    ///   means `http://`. A value that is not a usable proxy URL fails the sockets that would
    ///   use it with [`Error::Proxy`] naming the variable (rather than silently connecting
    ///   directly).
    /// - **Loopback is never proxied**: `localhost`, `*.localhost`, 127.0.0.0/8 and `::1`.
    /// - **`no_proxy`** (then `NO_PROXY`) lists servers to reach directly, separated by commas
    ///   and/or spaces, matched without regard to case:
    ///   - `*` (as any entry) matches every server: nothing is proxied;
    ///   - `example.com` matches `example.com` and every name under it (`a.example.com`,
    ///     not `badexample.com`); `.example.com` and `*.example.com` mean the same (as in
    ///     curl: a leading `*` and `.` are ignored, as is a trailing `.`);
    ///   - an IP address (`10.1.2.3`, `::1`, `[::1]`) matches that address written any way,
    ///     and a CIDR block (`10.0.0.0/8`, `fd00::/8`) every address in it; names are not
    ///     resolved to be compared with addresses;
    ///   - `host:port` (`example.com:8080`, `10.1.2.3:8080`, `[::1]:8080`) matches only
    ///     that port (the URL's port, or 80/443);
    ///   - entries that are none of these are ignored. Internationalized names must be
    ///     written in their `xn--` form.
    pub fn from_env() -> Proxy {
        Proxy::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`Proxy::from_env`] with another source of variables (the unit tests pass a map).
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Proxy {
        Proxy {
            inner: Arc::new(Inner::Env(Box::new(EnvProxy::from_lookup(lookup)))),
        }
    }

    fn fixed(endpoint: Endpoint) -> Proxy {
        Proxy {
            inner: Arc::new(Inner::Fixed(endpoint)),
        }
    }

    /// The proxy to reach `host:port` through (`None`: connect directly). `host` has no
    /// brackets; `port` is the URL's, or its scheme's default. Fails only for an environment
    /// variable that would be used but is not a proxy URL.
    pub(crate) fn route(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Option<&Endpoint>, Error> {
        match &*self.inner {
            Inner::Direct => Ok(None),
            Inner::Fixed(endpoint) => Ok(Some(endpoint)),
            Inner::Env(env) => env.route(host, port, tls),
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::Proxy(format!("invalid proxy URL: {reason}"))
}

/// The proxy's `scheme://host:port`; `no proxy`; or, for the environment's, what it chose.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Direct => f.write_str("no proxy"),
            Inner::Fixed(endpoint) => write!(f, "{endpoint}"),
            Inner::Env(env) => {
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
                    show(env.http.as_ref().or(env.all.as_ref())),
                    show(env.https.as_ref().or(env.all.as_ref())),
                    env.no_proxy.len()
                )
            }
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Direct => f.write_str("Proxy::none()"),
            Inner::Fixed(endpoint) => f.debug_tuple("Proxy").field(endpoint).finish(),
            Inner::Env(env) => f
                .debug_struct("Proxy::from_env")
                .field("http", &env.http)
                .field("https", &env.https)
                .field("all", &env.all)
                .field("no_proxy", &env.no_proxy)
                .finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Proxy URLs
// ---------------------------------------------------------------------------------------------

/// Parses a proxy URL; `bare` is the scheme of a value without `scheme://`. The error never
/// repeats the input (it may hold a password).
pub(crate) fn parse_proxy_url(text: &str, bare: Scheme) -> Result<Endpoint, String> {
    let text = text.trim();
    let with_scheme;
    let text = if text.contains("://") {
        text
    } else {
        with_scheme = format!("{}://{text}", bare.as_str());
        &with_scheme
    };
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "socks5" => Scheme::Socks5,
        "socks5h" => Scheme::Socks5h,
        "https" => {
            return Err(
                "https:// proxies (TLS to the proxy) are not supported; most proxies \
                        take CONNECT over plain http://"
                    .into(),
            );
        }
        "socks" | "socks4" | "socks4a" => {
            return Err("SOCKS4 is not supported; use socks5:// or socks5h://".into());
        }
        other => {
            return Err(format!(
                "unsupported proxy scheme {other}: use http://, socks5:// or socks5h://"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port().unwrap_or(scheme.default_port());
    let user = decode(url.username(), "user name")?;
    let password = url.password().map(|p| decode(p, "password")).transpose()?;
    let auth = match (user, password) {
        (u, None) if u.is_empty() => None,
        (user, password) => Some(Credentials {
            user,
            password: password.unwrap_or_default(),
        }),
    };
    if scheme != Scheme::Http
        && let Some(a) = &auth
        && (a.user.is_empty() || a.user.len() > 255 || a.password.len() > 255)
    {
        return Err(
            "a SOCKS5 user name must be 1 to 255 bytes and a password at most 255 (RFC 1929)"
                .into(),
        );
    }
    Ok(Endpoint {
        scheme,
        host,
        port,
        auth,
    })
}

fn decode(s: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("the {what} is not UTF-8 once percent-decoded"))
}

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

/// A snapshot of the proxy variables.
struct EnvProxy {
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
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> EnvProxy {
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

    fn route(&self, host: &str, port: u16, tls: bool) -> Result<Option<&Endpoint>, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Proxy {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Proxy::from_lookup(move |name| map.get(name).cloned())
    }

    /// The proxy `proxy` picks for `url`, as `scheme://host:port`, or "direct".
    fn via(proxy: &Proxy, url: &str) -> String {
        let request = crate::Request::builder(url).build().unwrap();
        let (host, port) = request.host_port().unwrap();
        match proxy.route(&host, port, request.is_tls()) {
            Ok(Some(e)) => e.to_string(),
            Ok(None) => "direct".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn parses_http_urls() {
        let e =
            parse_proxy_url("http://user:pa%40ss%3Aw@Proxy.Example:3128", Scheme::Http).unwrap();
        assert_eq!(e.scheme, Scheme::Http);
        assert_eq!(e.host, "proxy.example");
        assert_eq!(e.port, 3128);
        let auth = e.auth.unwrap();
        assert_eq!(auth.user, "user");
        assert_eq!(auth.password, "pa@ss:w");

        let e = parse_proxy_url("http://proxy.example", Scheme::Http).unwrap();
        assert_eq!((e.port, e.auth.is_none()), (80, true));
        let e = parse_proxy_url("http://proxy.example:3128/", Scheme::Http).unwrap();
        assert_eq!(e.port, 3128);
        let e = parse_proxy_url("http://[::1]:3128", Scheme::Http).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 3128));
        assert_eq!(e.to_string(), "http://[::1]:3128");
        let e = parse_proxy_url("http://only-user@h:1", Scheme::Http).unwrap();
        let auth = e.auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("only-user", "")
        );
    }

    #[test]
    fn bare_host_port_takes_the_default_scheme() {
        let e = parse_proxy_url("10.0.0.1:3128", Scheme::Http).unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Http, "10.0.0.1", 3128)
        );
        let e = parse_proxy_url("u:p@proxy:8080", Scheme::Http).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("proxy", 8080));
        assert_eq!(e.auth.unwrap().password, "p");
        let e = parse_proxy_url("proxy:1081", Scheme::Socks5).unwrap();
        assert_eq!((e.scheme, e.port), (Scheme::Socks5, 1081));
    }

    #[test]
    fn parses_socks_urls() {
        let e = parse_proxy_url("socks5://127.0.0.1", Scheme::Http).unwrap();
        assert_eq!((e.scheme, e.port), (Scheme::Socks5, 1080));
        let e = parse_proxy_url("socks5h://u:p@Proxy:1", Scheme::Http).unwrap();
        assert_eq!((e.scheme, e.host.as_str()), (Scheme::Socks5h, "proxy"));
        assert_eq!(e.to_string(), "socks5h://proxy:1");
        // RFC 1929 lengths.
        let long = "x".repeat(256);
        assert!(parse_proxy_url(&format!("socks5://{long}:p@h:1"), Scheme::Http).is_err());
        assert!(parse_proxy_url(&format!("socks5://u:{long}@h:1"), Scheme::Http).is_err());
        assert!(parse_proxy_url(":p@h:1", Scheme::Socks5).is_err());
        // HTTP has no such limit.
        assert!(parse_proxy_url(&format!("http://{long}:p@h:1"), Scheme::Http).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_use_without_repeating_it() {
        for (url, words) in [
            ("https://u:secret@h:1", "https:// proxies"),
            ("socks4://u:secret@h:1", "SOCKS4"),
            ("ftp://u:secret@h:1", "unsupported proxy scheme ftp"),
            ("http://u:secret@h:99999", "invalid port"),
            ("http://u:secret@:1", "host"),
            ("http://u:%ff%fe@h:1", "password is not UTF-8"),
        ] {
            let e = parse_proxy_url(url, Scheme::Http).unwrap_err();
            assert!(e.contains(words), "{url}: {e}");
            assert!(!e.contains("secret") && !e.contains("%ff"), "{url}: {e}");
        }
        assert!(matches!(Proxy::http("socks5://h:1"), Err(Error::Proxy(_))));
        assert!(matches!(Proxy::socks5("http://h:1"), Err(Error::Proxy(_))));
        let e = Proxy::http("https://u:secret@h:1").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid proxy URL: ") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let p = Proxy::http("http://alice:s3cr%65t@proxy:3128").unwrap();
        assert_eq!(p.to_string(), "http://proxy:3128");
        let debug = format!("{p:?}");
        assert!(
            debug.contains("alice") && debug.contains("proxy:3128"),
            "{debug}"
        );
        assert!(!debug.contains("s3cr"), "{debug}");
        let e = env(&[("https_proxy", "http://alice:s3cret@proxy:3128")]);
        for shown in [format!("{e:?}"), e.to_string()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert!(
            e.to_string()
                .contains("wss http://proxy:3128 (from https_proxy)"),
            "{e}"
        );
        let bad = env(&[("http_proxy", "https://alice:s3cret@proxy:3128")]);
        for shown in [format!("{bad:?}"), bad.to_string()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(Proxy::none().to_string(), "no proxy");
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
        // An explicit proxy is used for loopback too.
        let explicit = Proxy::http("http://h:1").unwrap();
        assert_eq!(via(&explicit, "ws://127.0.0.1:9/"), "http://h:1");
        assert_eq!(via(&explicit, "ws://localhost/"), "http://h:1");
        assert_eq!(via(&Proxy::none(), "ws://example.com/"), "direct");
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
