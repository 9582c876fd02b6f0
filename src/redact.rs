//! How a URL is shown where people and log collectors read it: log lines, `Error` texts and
//! `Debug` output. Pure; the one place that decides what of a URL may be shown.
//!
//! A URL keeps its scheme, host, port and path, and loses its userinfo (`user:password@`), its
//! query and its fragment: those are where URLs carry secrets (`?token=…`, `?access_token=…`,
//! signed URLs' signatures, passwords in userinfo), and logs and error reports travel further
//! than the secret should. The path stays because it names the route (`/chat`, `/v1/feed`),
//! which is what someone reading a log needs to tell one endpoint from another, and paths
//! rarely hold secrets; an application that puts one there (`/ws/<token>`) should send it in a
//! header instead, which [`RequestBuilder::sensitive_header`](crate::RequestBuilder::sensitive_header)
//! keeps out of `Debug` and off other origins.

/// `text`, a URL or something meant to be one, as it may be shown: scheme, host, port and
/// path, without userinfo, query or fragment. The rule syncws applies wherever it shows a URL
/// itself (logs, `Error` texts, `Debug`), for applications that log URLs of their own (a
/// broker's, a database's) to apply too.
///
/// ```
/// assert_eq!(
///     syncws::redact_url("redis://app:s3cret@cache.internal:6379/0?timeout=5"),
///     "redis://cache.internal:6379/0"
/// );
/// assert_eq!(syncws::redact_url("user:pw@db.internal/x?token=t"), "db.internal/x");
/// ```
///
/// A string that is not a URL with a host (a typo in `Request::builder`, a server's
/// `Location` that does not parse) is cut by hand: at the first `?` or `#`, and everything
/// from the start of the authority up to the last `@` before that is dropped. In a string that
/// did not parse there is no telling where the authority really ends (a password may hold a
/// `/`), so the last `@` is taken, even if that drops a path's `@`.
pub fn url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.has_host() => {
            u.set_query(None);
            u.set_fragment(None);
            // Both fail only where a URL cannot hold userinfo (an empty host, `file:`); the
            // check below catches any that stayed.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.username().is_empty() && u.password().is_none() {
                u.into()
            } else {
                unparsed(text)
            }
        }
        // Not a URL, or one without a host (`mailto:user:secret@x`), whose path may hold
        // anything.
        _ => unparsed(text),
    }
}

/// The by-hand cut of [`url`](fn@url) for text that is not a URL with a host.
fn unparsed(text: &str) -> String {
    let text = &text[..text.find(['?', '#']).unwrap_or(text.len())];
    // The authority starts after `scheme://` or a leading `//`; without either, at the start
    // (`user:pass@host/x` has no scheme, and what looks like one is the user name).
    let authority = match text.find('/') {
        Some(0) if text.starts_with("//") => 2,
        Some(slash) if text[..slash].ends_with(':') && text[slash..].starts_with("//") => slash + 2,
        _ => 0,
    };
    match text[authority..].rfind('@') {
        Some(at) => format!("{}{}", &text[..authority], &text[authority + at + 1..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn a_url_keeps_scheme_host_port_and_path() {
        for (input, shown) in [
            (
                "wss://user:secret@example.com:8443/feed?token=abc#x",
                "wss://example.com:8443/feed",
            ),
            ("ws://user@example.com/a/b", "ws://example.com/a/b"),
            ("ws://:secret@example.com/", "ws://example.com/"),
            ("ws://example.com/chat?room=1", "ws://example.com/chat"),
            ("ws://example.com#frag", "ws://example.com/"),
            ("ws://[::1]:9001/x?t=1", "ws://[::1]:9001/x"),
            (
                "ws://127.0.0.1:9001/users/@me",
                "ws://127.0.0.1:9001/users/@me",
            ),
            ("ws://example.com/", "ws://example.com/"),
            // Percent-encoded userinfo, and a password with an `@` in it.
            ("ws://u%40x:p%3Ass@example.com/", "ws://example.com/"),
            ("ws://user:p@ss@example.com/x", "ws://example.com/x"),
            // Other schemes with a host (an InvalidUrl for the scheme) are cut the same way.
            (
                "ftp://user:secret@example.com/f?token=abc",
                "ftp://example.com/f",
            ),
        ] {
            assert_eq!(url(input), shown, "{input}");
        }
    }

    #[test]
    fn text_that_does_not_parse_is_cut_by_hand() {
        for (input, shown) in [
            // An unclosed IPv6 literal, a bad port.
            ("ws://user:secret@[::1/x?token=abc", "ws://[::1/x"),
            (
                "ws://user:secret@host:99999/x?token=abc",
                "ws://host:99999/x",
            ),
            // A password with a `/` makes the authority end early for a parser.
            ("ws://user:se/cret@host:x/p?token=abc", "ws://host:x/p"),
            // No scheme at all.
            ("user:secret@host/x?token=abc", "host/x"),
            ("//user:secret@host/x#token=abc", "//host/x"),
            ("/just/a/path?token=abc", "/just/a/path"),
            ("nonsense", "nonsense"),
            ("", ""),
            ("?token=abc", ""),
            // No host: the "path" may hold anything.
            ("mailto:user:secret@x?token=abc", "x"),
        ] {
            let out = url(input);
            assert_eq!(out, shown, "{input}");
            assert!(
                !out.contains("secret") && !out.contains("token"),
                "{input}: {out}"
            );
        }
    }

    #[test]
    fn nothing_after_the_last_at_or_before_the_query_survives() {
        // Whatever the input, the password and the query never do.
        for input in [
            "ws://user:secret@h/p?token=abc",
            "ws://user:secret@/p?token=abc",
            "ws://user:secret@@h/p?token=abc",
            "wss://user:secret@h:0/p?token=abc#token=abc",
            "http://user:secret@h/p?token=abc",
            "ws:\\\\user:secret@h\\p?token=abc",
            "ws://user:secret@h\\p?token=abc",
            "file://user:secret@h/p?token=abc",
            "x://user:secret@/p?token=abc",
            "ws:user:secret@h/p?token=abc",
            "ws:user:secret@",
        ] {
            let out = url(input);
            assert!(
                !out.contains("secret") && !out.contains("token"),
                "{input}: {out}"
            );
        }
    }
}
