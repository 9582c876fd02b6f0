//! Proxies: the public [`Proxy`] type, and the pure rules behind it: proxy URLs and what they
//! name ([`endpoint`]), the environment variables and `no_proxy` ([`env`](mod@env)). The handshakes are
//! in `proto/tunnel.rs`, the I/O in `driver/connect/tunnel.rs`.

mod endpoint;
pub(crate) mod env;

use std::fmt;
use std::sync::Arc;

pub(crate) use endpoint::{Endpoint, Scheme};

use endpoint::parse_proxy_url;
use env::EnvProxy;

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
            Inner::Env(env) => write!(f, "{env}"),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Direct => f.write_str("Proxy::none()"),
            Inner::Fixed(endpoint) => f.debug_tuple("Proxy").field(endpoint).finish(),
            Inner::Env(env) => write!(f, "{env:?}"),
        }
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
    fn an_explicit_proxy_is_used_for_loopback_too() {
        let explicit = Proxy::http("http://h:1").unwrap();
        assert_eq!(via(&explicit, "ws://127.0.0.1:9/"), "http://h:1");
        assert_eq!(via(&explicit, "ws://localhost/"), "http://h:1");
        assert_eq!(via(&Proxy::none(), "ws://example.com/"), "direct");
        assert_eq!(
            via(&env(&[("http_proxy", "http://h:1")]), "ws://localhost/"),
            "direct"
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
}
