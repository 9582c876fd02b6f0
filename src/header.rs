//! HTTP header fields of the opening handshake, as bytes.

/// One header field of the opening handshake: a name and its value's bytes.
///
/// Values are kept as the bytes that were sent or received: HTTP allows bytes that are not
/// UTF-8 (`obs-text`), and a conversion to and from the `http` crate's types must not lose
/// them. [`value_str`](Self::value_str) gives the text when it is UTF-8, which it nearly always
/// is.
///
/// ```
/// let request = syncws::Request::builder("ws://example.com/")
///     .header("Cookie", "a=1")
///     .header_bytes("X-Latin-1", b"caf\xe9".to_vec())
///     .build()?;
/// let h = &request.headers()[1];
/// assert_eq!((h.name(), h.value()), ("X-Latin-1", &b"caf\xe9"[..]));
/// assert_eq!(h.value_str(), None);
/// assert_eq!(request.header("cookie"), Some("a=1"));
/// # Ok::<(), syncws::Error>(())
/// ```
///
/// A header can be **sensitive**: marked by the application as a credential
/// ([`RequestBuilder::sensitive_header`](crate::RequestBuilder::sensitive_header)), like the
/// `http` crate's `HeaderValue::set_sensitive`. A sensitive header is sent like any other, but
/// a redirect to another origin drops it, and `Debug` does not show its value. The standard
/// credential headers get the same treatment without being marked (see
/// [`is_sensitive`](Self::is_sensitive)).
///
/// `Debug` shows the values of sensitive headers and of `Authorization`,
/// `Proxy-Authorization`, `Cookie` and `Set-Cookie` as `<redacted>`, and the URLs of
/// `Location`, `Content-Location` and `Referer` without userinfo, query and fragment, so a
/// request or response can be logged whole. Equality and hashing compare name and value only,
/// as `http`'s do.
#[derive(Clone)]
pub struct Header {
    name: String,
    value: Vec<u8>,
    sensitive: bool,
}

impl PartialEq for Header {
    fn eq(&self, other: &Header) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl Eq for Header {}

impl std::hash::Hash for Header {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.value.hash(state);
    }
}

impl Header {
    pub(crate) fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
            sensitive: false,
        }
    }

    /// A header marked as a credential (see [`is_sensitive`](Self::is_sensitive)).
    pub(crate) fn sensitive(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Header {
        Header {
            sensitive: true,
            ..Header::new(name, value)
        }
    }

    /// Whether the application marked this header as a credential
    /// ([`RequestBuilder::sensitive_header`](crate::RequestBuilder::sensitive_header), or an
    /// `http::HeaderValue` marked sensitive). A redirect to another origin drops it and `Debug`
    /// hides its value.
    ///
    /// `Authorization`, `Proxy-Authorization` and `Cookie` are treated the same way whether
    /// marked or not; this says only whether the mark was set. Headers a server receives are
    /// never marked.
    ///
    /// ```
    /// let request = syncws::Request::builder("wss://api.example.com/feed")
    ///     .sensitive_header("X-Api-Key", "k-123")
    ///     .header("X-Trace", "t-1")
    ///     .build()?;
    /// assert!(request.headers()[0].is_sensitive());
    /// assert!(!request.headers()[1].is_sensitive());
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// Whether the value is a credential: marked sensitive, or one of the standard credential
    /// headers. It stays with its origin across redirects and out of `Debug` output.
    pub(crate) fn is_credential(&self) -> bool {
        self.sensitive
            || CREDENTIALS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&self.name))
    }

    /// The name, as it was given or received (compare case-insensitively).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value's bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as text, or `None` if it is not UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Header");
        d.field("name", &self.name);
        let is_url = URLS.iter().any(|u| u.eq_ignore_ascii_case(&self.name));
        match self.value_str() {
            _ if self.is_credential() => d.field("value", &format_args!("<redacted>")),
            Some(text) if is_url => d.field("value", &crate::redact::url(text)),
            Some(text) => d.field("value", &text),
            // A URL that is not UTF-8 cannot be cut as text: none of it is shown.
            None if is_url => d.field("value", &format_args!("<redacted>")),
            None => d.field("value", &self.value),
        };
        d.finish()
    }
}

/// The standard headers that carry credentials (`Set-Cookie` only in a response): kept out of
/// `Debug` output and, in a request, off other origins.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Headers whose value is a URL: `Debug` shows it redacted (a redirect's `Location` may carry
/// a token).
const URLS: &[&str] = &["location", "content-location", "referer"];

/// The handshake's own headers, which syncws writes itself in both roles (the framing ones
/// too): neither a client's request nor a server handler's answer may set them.
const WRITTEN_BY_SYNCWS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
];

/// Whether `name` (any case) is one of the handshake headers syncws writes itself.
pub(crate) fn written_by_syncws(name: &str) -> bool {
    WRITTEN_BY_SYNCWS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(name))
}

/// Why a header may not be sent, or `None` if it may: the name must be an RFC 9110 token and
/// the value must not hold CR, LF, NUL or other control bytes but tab (header injection).
pub(crate) fn invalid(name: &str, value: &[u8]) -> Option<String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Some(format!("header name {name:?} is not a valid HTTP token"));
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Some(format!(
            "header {name} has a control character (CR, LF, NUL, ...) in its value"
        ));
    }
    None
}

/// Every UTF-8 value of header `name` (case-insensitive), in order.
pub(crate) fn values<'a, 'n>(
    headers: &'a [Header],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    bytes(headers, name).filter_map(|v| std::str::from_utf8(v).ok())
}

/// Every value of header `name` (case-insensitive), in order, as bytes.
pub(crate) fn bytes<'a, 'n>(
    headers: &'a [Header],
    name: &'n str,
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// Writes `name: value\r\n` for each header.
pub(crate) fn encode(out: &mut Vec<u8>, headers: &[Header]) {
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 7230 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_and_bad_names_are_refused() {
        assert!(invalid("X-Ok", b"a\tb \x80\xff").is_none());
        for v in [&b"a\r\nInjected: 1"[..], b"a\nb", b"a\0", b"\x7f", b"\x01"] {
            assert!(invalid("X-Ok", v).is_some(), "{v:?}");
        }
        for n in ["", "X Bad", "X:Y", "é"] {
            assert!(invalid(n, b"v").is_some(), "{n:?}");
        }
    }

    #[test]
    fn values_are_case_insensitive_and_skip_non_utf8() {
        let h = vec![
            Header::new("A", "1"),
            Header::new("b", "2"),
            Header::new("a", b"\xff".to_vec()),
            Header::new("a", "3"),
        ];
        assert_eq!(values(&h, "a").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(bytes(&h, "A").count(), 3);
        let mut out = Vec::new();
        encode(&mut out, &h[..3]);
        assert_eq!(out, b"A: 1\r\nb: 2\r\na: \xff\r\n");
    }

    #[test]
    fn debug_hides_credentials_and_the_secret_parts_of_urls() {
        let shown = |name: &str, value: &[u8]| format!("{:?}", Header::new(name, value));
        for name in [
            "Authorization",
            "proxy-authorization",
            "COOKIE",
            "Set-Cookie",
        ] {
            assert_eq!(
                shown(name, b"Bearer secret"),
                format!("Header {{ name: {name:?}, value: <redacted> }}")
            );
        }
        assert_eq!(
            shown("Location", b"wss://u:secret@h/p?token=secret"),
            r#"Header { name: "Location", value: "wss://h/p" }"#
        );
        assert_eq!(
            shown("referer", b"/p?token=secret\xff"),
            r#"Header { name: "referer", value: <redacted> }"#
        );
        assert_eq!(
            shown("X-Trace", b"t-1"),
            r#"Header { name: "X-Trace", value: "t-1" }"#
        );
        assert_eq!(
            shown("X-Bytes", b"\xff"),
            r#"Header { name: "X-Bytes", value: [255] }"#
        );
        let key = Header::sensitive("X-Api-Key", "secret");
        assert_eq!(
            format!("{key:?}"),
            r#"Header { name: "X-Api-Key", value: <redacted> }"#
        );
        assert!(key.is_credential() && key.is_sensitive());
        assert!(
            Header::new("cookie", "").is_credential() && !Header::new("cookie", "").is_sensitive()
        );
        // The mark is not part of the header's identity, as in `http`.
        assert_eq!(key, Header::new("X-Api-Key", "secret"));
    }
}
