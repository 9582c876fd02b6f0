//! Redirects of the upgrade: 301/302/303/307/308 are followed up to `max_redirects`, ws→wss
//! is followed and wss→ws refused, credentials (the standard headers and those marked
//! sensitive) stay with their origin, and the URL that answered is on the `Response`.

mod common;

use common::EVENT_TIMEOUT;
#[cfg(any(feature = "native-tls", feature = "rustls"))]
use common::test_tls;
use syncws::{Accept, Client, EchoServer, Listener, Request, Server};

/// What a server saw of one upgrade request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    cookie: Option<String>,
    /// Every header name, lowercase.
    names: Vec<String>,
}

/// A server that redirects `/from/<status>` to the `Location` `to(status)`, counts every
/// request and upgrades everything else.
fn redirecting(
    to: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (Server, crossbeam_channel::Receiver<Seen>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = Server::bind("127.0.0.1:0", move |request| {
        let path = request.url().path().to_owned();
        let _ = tx.send(Seen {
            path: path.clone(),
            authorization: request.header("Authorization").map(str::to_owned),
            cookie: request.header("Cookie").map(str::to_owned),
            names: request
                .headers()
                .iter()
                .map(|h| h.name().to_ascii_lowercase())
                .collect(),
        });
        match path.strip_prefix("/from/") {
            Some(status) => {
                Accept::reject(status.parse().unwrap(), "Moved").header("Location", to(status))
            }
            None => Accept::upgrade(Listener::new()),
        }
    })
    .unwrap();
    (server, rx)
}

fn with_credentials(url: &str) -> Request {
    Request::builder(url)
        .header("Authorization", "Bearer t")
        .header("Cookie", "session=1")
        .build()
        .unwrap()
}

#[test]
fn every_redirect_status_is_followed_on_the_same_origin_with_credentials() {
    let (server, seen) = redirecting(|status| format!("/to/{status}"));
    for status in [301, 302, 303, 307, 308] {
        let url = format!("{}from/{status}", server.url());
        let conn = Client::new().connect(with_credentials(&url)).unwrap();
        let final_url = conn.response().url().unwrap();
        assert_eq!(final_url.path(), format!("/to/{status}"));
        let first = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
        let second = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
        assert_eq!(first.path, format!("/from/{status}"));
        assert_eq!(second.path, format!("/to/{status}"));
        assert_eq!(second.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(second.cookie.as_deref(), Some("session=1"));
    }
}

#[test]
fn another_host_or_port_gets_no_credentials() {
    let (target, target_seen) = redirecting(|_| unreachable!());
    let port = target.local_addr().port();
    // Another port, then the same port under another host name (localhost vs 127.0.0.1).
    for location in [
        format!("ws://127.0.0.1:{port}/landed"),
        format!("ws://localhost:{port}/landed"),
    ] {
        let (server, _) = redirecting(move |_| location.clone());
        let url = format!("ws://127.0.0.1:{}/from/302", server.local_addr().port());
        let conn = Client::new().connect(with_credentials(&url)).unwrap();
        assert_eq!(conn.response().url().unwrap().port(), Some(port));
        let landed = target_seen.recv_timeout(EVENT_TIMEOUT).unwrap();
        assert_eq!(landed.path, "/landed");
        assert_eq!(landed.authorization, None);
        assert_eq!(landed.cookie, None);
    }
}

/// An API key marked sensitive, a `Proxy-Authorization` and a header that is no credential.
fn with_marked_credentials(url: &str) -> Request {
    Request::builder(url)
        .sensitive_header("X-Api-Key", "key-1")
        .header("Proxy-Authorization", "Basic dTpw")
        .header("X-Trace", "trace-1")
        .build()
        .unwrap()
}

fn has(seen: &Seen, name: &str) -> bool {
    seen.names.iter().any(|n| n == name)
}

#[test]
fn marked_headers_and_proxy_authorization_stay_with_their_origin() {
    // The first server answers 307 to the second, on another port.
    let (target, target_seen) = redirecting(|_| unreachable!());
    let landed = format!("ws://127.0.0.1:{}/landed", target.local_addr().port());
    let (server, seen) = redirecting(move |_| landed.clone());
    let url = format!("ws://127.0.0.1:{}/from/307", server.local_addr().port());
    Client::new()
        .connect(with_marked_credentials(&url))
        .unwrap();
    let first = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert!(has(&first, "x-api-key") && has(&first, "proxy-authorization"));
    let second = target_seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(second.path, "/landed");
    assert!(has(&second, "x-trace"), "{second:?}");
    assert!(!has(&second, "x-api-key"), "{second:?}");
    assert!(!has(&second, "proxy-authorization"), "{second:?}");

    // On the same origin all of them go along.
    let (server, seen) = redirecting(|status| format!("/to/{status}"));
    let url = format!("{}from/307", server.url());
    Client::new()
        .connect(with_marked_credentials(&url))
        .unwrap();
    let _first = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    let second = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(second.path, "/to/307");
    for name in ["x-api-key", "proxy-authorization", "x-trace"] {
        assert!(has(&second, name), "{name}: {second:?}");
    }
}

#[test]
fn max_redirects_bounds_a_loop_and_zero_turns_following_off() {
    let (server, seen) = redirecting(|_| "/from/302".into());
    let url = format!("{}from/302", server.url());
    let error = Client::new().connect(with_credentials(&url)).unwrap_err();
    assert!(error.to_string().contains("max_redirects"), "{error}");
    assert_eq!(error.response().map(|r| r.status()), Some(302));
    assert_eq!(
        seen.try_iter().count(),
        11,
        "the first request and 10 redirects"
    );

    let error = Client::builder()
        .max_redirects(0)
        .build()
        .connect(with_credentials(&url))
        .unwrap_err();
    assert!(error.to_string().contains("302"), "{error}");
    assert!(!error.to_string().contains("max_redirects"), "{error}");
    assert_eq!(seen.try_iter().count(), 1, "not followed");

    let error = Client::builder()
        .max_redirects(3)
        .build()
        .connect(with_credentials(&url))
        .unwrap_err();
    assert!(error.to_string().contains("after 3 redirects"), "{error}");
    assert_eq!(seen.try_iter().count(), 4);
}

#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn ws_to_wss_is_followed() {
    let tls = test_tls();
    let secure = EchoServer::with_builder(tls.server()).unwrap();
    let wss = secure.url();
    let (server, _) = redirecting(move |_| wss.clone());
    let client = tls.client().build();
    let mut conn = client
        .connect(
            Request::builder(&format!("{}from/301", server.url()))
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(conn.response().url().unwrap().scheme(), "wss");
    conn.send("over TLS");
    assert_eq!(
        conn.recv().unwrap(),
        syncws::Message::Text("over TLS".into())
    );
}

#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn wss_to_ws_is_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use syncws::Error;
    let plain_hits = Arc::new(AtomicUsize::new(0));
    let hits = plain_hits.clone();
    let plain = Server::bind("127.0.0.1:0", move |_| {
        hits.fetch_add(1, Ordering::SeqCst);
        Accept::upgrade(Listener::new())
    })
    .unwrap();
    let plain_url = plain.url();
    let tls = test_tls();
    let secure = tls
        .server()
        .bind("127.0.0.1:0", move |_| {
            Accept::reject(302, "Found").header("Location", plain_url.clone())
        })
        .unwrap();
    let client = tls.client().build();
    let error = client
        .connect(Request::builder(&secure.url()).build().unwrap())
        .unwrap_err();
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("drop TLS"), "{error}");
    assert_eq!(plain_hits.load(Ordering::SeqCst), 0);
}

#[test]
fn the_final_url_is_the_request_url_without_redirects() {
    let server = EchoServer::start().unwrap();
    let conn = syncws::connect(&format!("{}chat?room=1", server.url())).unwrap();
    assert_eq!(
        conn.response().url().unwrap().as_str(),
        format!("{}chat?room=1", server.url())
    );
}
