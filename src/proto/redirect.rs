//! Following a redirect of the opening handshake: where to go next, and with which headers.
//!
//! Plain data: a request and the server's 3xx answer in, the next request (or why not) out.

use crate::error::Error;
use crate::redact;
use crate::request::Request;
use crate::response::Response;

/// Statuses that are followed; all of them repeat the GET, since an upgrade has no body.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// Whether a response to the upgrade is a redirect to follow.
pub fn is_redirect(status: u16) -> bool {
    REDIRECTS.contains(&status)
}

/// The request to send after the redirect `response`.
///
/// - `Location` is resolved against the current URL; `http` and `https` become `ws` and
///   `wss`.
/// - `ws` → `wss` is followed; `wss` → `ws` is refused (it would drop TLS without the
///   application knowing).
/// - When the origin (scheme, host or port) changes, every credential is dropped: the headers
///   the application marked sensitive and `Authorization`, `Proxy-Authorization` and
///   `Cookie` (`Header::is_credential`). A redirect must not hand one
///   site's credentials to another. Headers keep their mark on the way, so a later hop to
///   another origin still drops them.
pub fn follow(request: &Request, response: &Response) -> Result<Request, Error> {
    let from = request.url();
    // Every URL in the error is redacted: a Location is as likely as the request to carry a
    // token (a signed URL), and errors reach logs.
    let refused = |why: String| {
        Error::rejected(format!(
            "redirect {} from {}: {why}",
            response.status(),
            redact::url(from.as_str())
        ))
    };
    let Some(location) = response.header("Location") else {
        return Err(refused("no Location header".into()));
    };
    let mut to = from.join(location.trim()).map_err(|e| {
        refused(format!(
            "Location {:?} is not a URL: {e}",
            redact::url(location)
        ))
    })?;
    let scheme = match to.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => return Err(refused(format!("to a {other}: URL"))),
    };
    if to.scheme() != scheme {
        // Switching between these special schemes cannot fail; a failure would keep the URL
        // as it is, which the check below still sees.
        let _ = to.set_scheme(scheme);
    }
    if from.scheme() == "wss" && to.scheme() == "ws" {
        return Err(refused(format!(
            "to {} would drop TLS; syncws does not follow wss to ws",
            redact::url(to.as_str())
        )));
    }
    let same_origin = from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default();
    let mut builder = Request::builder(to.as_str());
    for h in request.headers() {
        if same_origin || !h.is_credential() {
            builder = builder.push_header(h.clone());
        }
    }
    for p in request.subprotocols() {
        builder = builder.subprotocol(p.as_str());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Header;

    fn redirect(status: u16, location: Option<&str>) -> Response {
        Response {
            status,
            reason: "Moved".into(),
            headers: location
                .map(|l| vec![Header::new("Location", l)])
                .unwrap_or_default(),
            ..Response::default()
        }
    }

    fn request(url: &str) -> Request {
        Request::builder(url)
            .header("Authorization", "Bearer t")
            .header("Cookie", "a=1")
            .header("Proxy-Authorization", "Basic p")
            .sensitive_header("X-Api-Key", "key")
            .header("X-Keep", "k")
            .subprotocol("chat")
            .build()
            .unwrap()
    }

    fn names(r: &Request) -> Vec<&str> {
        r.headers().iter().map(|h| h.name()).collect()
    }

    #[test]
    fn only_redirect_statuses_are_followed() {
        let r = request("ws://a/x");
        for status in [200, 300, 304, 305, 400, 101] {
            assert!(!is_redirect(status), "{status}");
        }
        for status in REDIRECTS {
            assert!(is_redirect(status));
            let to = follow(&r, &redirect(status, Some("/y"))).unwrap();
            assert_eq!(to.url().as_str(), "ws://a/y");
        }
    }

    #[test]
    fn same_origin_keeps_everything() {
        let to = follow(&request("ws://a:8080/x"), &redirect(302, Some("/y?q=1"))).unwrap();
        assert_eq!(to.url().as_str(), "ws://a:8080/y?q=1");
        assert_eq!(
            names(&to),
            [
                "Authorization",
                "Cookie",
                "Proxy-Authorization",
                "X-Api-Key",
                "X-Keep"
            ]
        );
        assert_eq!(to.subprotocols(), ["chat"]);
        // Still marked, for the next hop.
        assert!(to.headers()[3].is_sensitive());
    }

    #[test]
    fn each_kind_of_credential_stays_with_its_origin() {
        let kinds = [
            Request::builder("ws://a/x").header("AUTHORIZATION", "Bearer t"),
            Request::builder("ws://a/x").header("proxy-authorization", "Basic p"),
            Request::builder("ws://a/x").header("cookie", "a=1"),
            Request::builder("ws://a/x").sensitive_header("X-Api-Key", "key"),
            Request::builder("ws://a/x").sensitive_header_bytes("X-Token", b"\xff".to_vec()),
        ];
        for kind in kinds {
            let r = kind.header("X-Keep", "k").build().unwrap();
            let name = r.headers()[0].name().to_owned();
            let same = follow(&r, &redirect(307, Some("/y"))).unwrap();
            assert_eq!(names(&same), [name.as_str(), "X-Keep"]);
            for location in ["ws://b/x", "ws://a:81/x", "wss://a/x"] {
                let other = follow(&r, &redirect(307, Some(location))).unwrap();
                assert_eq!(names(&other), ["X-Keep"], "{name} to {location}");
            }
        }
        // An unmarked header with a credential-like name is the application's to mark.
        let r = Request::builder("ws://a/x")
            .header("X-Api-Key", "key")
            .build()
            .unwrap();
        let other = follow(&r, &redirect(307, Some("ws://b/x"))).unwrap();
        assert_eq!(names(&other), ["X-Api-Key"]);
    }

    #[test]
    fn a_same_origin_hop_then_another_origin_still_drops_the_marked_headers() {
        let first = follow(&request("ws://a/x"), &redirect(302, Some("/y"))).unwrap();
        let second = follow(&first, &redirect(302, Some("ws://b/z"))).unwrap();
        assert_eq!(names(&second), ["X-Keep"]);
    }

    #[test]
    fn another_host_or_port_loses_the_credentials() {
        for location in ["ws://b/y", "ws://a:81/y", "https://a/y"] {
            let to = follow(&request("ws://a/x"), &redirect(307, Some(location))).unwrap();
            assert_eq!(names(&to), ["X-Keep"], "{location}");
        }
    }

    #[test]
    fn schemes_map_and_tls_is_never_dropped() {
        let to = follow(&request("ws://a/x"), &redirect(301, Some("https://a/y"))).unwrap();
        assert_eq!(to.url().as_str(), "wss://a/y");
        for location in ["ws://a/y", "http://a/y"] {
            let e = follow(&request("wss://a/x"), &redirect(301, Some(location))).unwrap_err();
            assert!(e.to_string().contains("drop TLS"), "{e}");
        }
        let e = follow(&request("ws://a/x"), &redirect(301, Some("ftp://a/y"))).unwrap_err();
        assert!(e.to_string().contains("ftp"), "{e}");
    }

    #[test]
    fn errors_name_the_urls_without_userinfo_or_query() {
        let from = request("wss://u:secret@a/x?token=secret");
        for (location, names) in [
            (
                "ws://u:secret@b/y?token=secret",
                "to ws://b/y would drop TLS",
            ),
            (
                "ws://u:secret@[::1/y?token=secret",
                "Location \"ws://[::1/y\"",
            ),
            ("ftp://u:secret@b/y?token=secret", "to a ftp: URL"),
        ] {
            let e = follow(&from, &redirect(302, Some(location))).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(text.contains("from wss://a/x:"), "{text}");
            assert!(text.contains(names), "{text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn a_redirect_without_a_usable_location_is_an_error() {
        for location in [None, Some("http://[::1")] {
            let e = follow(&request("ws://a/x"), &redirect(302, location)).unwrap_err();
            assert!(matches!(e, Error::HandshakeRejected { .. }), "{e:?}");
        }
    }
}
