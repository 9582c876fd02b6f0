//! What the server role accepts as an upgrade request, over real sockets: the URL a handler
//! sees is the one the client asked for (the `Host` header and the request target, checked),
//! and an `Origin` allow-list keeps other sites' pages out (cross-site WebSocket hijacking).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::EVENT_TIMEOUT;
use common::raw::read_head;
use syncws::{Accept, Error, Listener, Request, Server};

/// A server whose handler upgrades every request and sends the URL it saw on `urls`; also
/// counts the handler's calls.
fn recording_server(
    builder: syncws::ServerBuilder,
) -> (
    Server,
    crossbeam_channel::Receiver<String>,
    Arc<AtomicUsize>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = builder
        .bind("127.0.0.1:0", move |request| {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(request.url().to_string());
            Accept::upgrade(Listener::new())
        })
        .expect("bind");
    (server, rx, calls)
}

/// Sends an upgrade request with this target and these header lines (each ending in CRLF);
/// returns the status line of the answer.
fn raw_upgrade(addr: SocketAddr, target: &str, headers: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\n{headers}Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(request.as_bytes()).expect("request");
    let head = read_head(&mut s).expect("an answer");
    head.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_handler_sees_the_url_the_client_asked_for() {
    let (server, urls, _) = recording_server(Server::builder());
    let url = format!("{}chat?room=1&x=%20y", server.url());
    let conn = syncws::connect(&url).expect("upgrade");
    assert_eq!(urls.recv_timeout(EVENT_TIMEOUT).unwrap(), url);
    drop(conn);
    // An absolute-form target naming the Host header's host and port is the same URL.
    let port = server.local_addr().port();
    let status = raw_upgrade(
        server.local_addr(),
        &format!("http://LOCALHOST:{port}/abs?q"),
        &format!("Host: localhost:{port}\r\n"),
    );
    assert!(status.starts_with("HTTP/1.1 101 "), "{status}");
    let seen = urls.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(seen, format!("ws://localhost:{port}/abs?q"));
}

/// The three examples, which used to reach the handler with a URL for another path
/// (`/admin`), another host (`evil.example`) or `localhost`.
#[test]
fn a_host_or_target_that_would_change_the_url_is_refused_with_400_before_the_handler() {
    let (server, _, calls) = recording_server(Server::builder());
    let addr = server.local_addr();
    let cases = [
        (
            "/public",
            "Host: example.com/admin?\r\n",
            "path, query or fragment",
        ),
        ("@evil.example/x", "Host: example.com\r\n", "not a path"),
        ("/", "Host: exa mple.com\r\n", "not allowed in a host name"),
        ("/", "", "no Host header"),
        ("/", "Host: a\r\nHost: b\r\n", "more than one Host header"),
        ("/", "Host: user@example.com\r\n", "user info"),
        (
            "ws://other.example/",
            "Host: example.com\r\n",
            "another host",
        ),
        ("*", "Host: example.com\r\n", "not a path"),
        (
            "/a/../admin",
            "Host: example.com\r\n",
            "not a normalized path",
        ),
    ];
    for (target, host, why) in cases {
        let status = raw_upgrade(addr, target, host);
        assert!(
            status.starts_with("HTTP/1.1 400 Bad Request: ") && status.contains(why),
            "GET {target} with {host:?}: {status}"
        );
    }
    // Each refusal was written before the handler would have run, on the same thread.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Connects with the crate's client, sending `origin` if given; the status it got.
fn status_with_origin(server: &Server, origin: Option<&str>) -> u16 {
    let mut request = Request::builder(&server.url());
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    match syncws::Client::new().connect(request.build().unwrap()) {
        Ok(conn) => conn.response().status(),
        Err(e) => {
            let r = e.response().unwrap_or_else(|| panic!("no answer: {e}"));
            if r.status() == 403 {
                assert!(r.reason().starts_with("Forbidden: "), "{}", r.reason());
            }
            r.status()
        }
    }
}

#[test]
fn allowed_origins_refuse_other_sites_pages_with_403_before_the_handler() {
    let (server, _, calls) = recording_server(
        // Written as a user might: case and a default port are normalised away.
        Server::builder().allowed_origins(["HTTPS://App.Example:443", "http://localhost:8080"]),
    );
    assert_eq!(
        status_with_origin(&server, Some("https://app.example")),
        101
    );
    assert_eq!(
        status_with_origin(&server, Some("http://localhost:8080")),
        101
    );
    // No Origin: a non-browser client, allowed unless required.
    assert_eq!(status_with_origin(&server, None), 101);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    for other in [
        "https://evil.example",
        "http://app.example",
        "https://app.example:8443",
        "http://localhost:8081",
        "http://127.0.0.1:8080",
        "null",
    ] {
        assert_eq!(status_with_origin(&server, Some(other)), 403, "{other}");
    }
    let e = syncws::Client::new()
        .connect(
            Request::builder(&server.url())
                .header("Origin", "https://evil.example")
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        e.response().map(|r| r.reason().to_owned()).as_deref(),
        Some("Forbidden: origin not allowed")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the handler saw a refused origin"
    );
}

#[test]
fn require_origin_refuses_requests_without_one() {
    let (server, _, calls) = recording_server(Server::builder().require_origin(true));
    assert_eq!(status_with_origin(&server, None), 403);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        status_with_origin(&server, Some("https://any.example")),
        101
    );
    // Without the knob (the default), no Origin is fine.
    let (open, _, _) = recording_server(Server::builder());
    assert_eq!(status_with_origin(&open, None), 101);
    assert_eq!(status_with_origin(&open, Some("https://any.example")), 101);
}

#[test]
fn an_allowed_origin_that_is_not_an_origin_fails_bind_naming_it() {
    for bad in [
        "https://app.example/",
        "app.example",
        "https://user@app.example",
        "null",
        "*",
    ] {
        let e = Server::builder()
            .allowed_origins(["https://fine.example", bad])
            .bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new()))
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidUrl(m) if m.contains(&format!("{bad:?}"))),
            "{bad}: {e}"
        );
    }
}
