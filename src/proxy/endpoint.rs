//! One proxy, as syncws talks to it: its scheme, where it is, its credentials, and how a proxy
//! URL becomes one.

use std::fmt;

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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
        }
    }

    pub(super) fn default_port(self) -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::proxy::Proxy;

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
}
