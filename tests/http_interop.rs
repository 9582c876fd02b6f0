//! Feature `http`: `Request: TryFrom<http::Request<()>>`, and the handshake's `Response` (and a
//! server's `Request`) as `http` types, with header values' bytes kept exactly.

mod common;

use std::io::Write;

use common::EVENT_TIMEOUT;
use common::raw::raw_listener;
use syncws::{Accept, Error, Listener, Request, Server};

/// A server that sends back, as its first message, the bytes of the `X-Bytes` header it got,
/// and hands the test its view of the request as an `http::Request`.
fn recording_server() -> (Server, crossbeam_channel::Receiver<http::Request<()>>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = Server::bind("127.0.0.1:0", move |request| {
        let _ = tx.send(http::Request::try_from(request).expect("the server's request"));
        let echo = request.header_bytes("X-Bytes").unwrap_or_default().to_vec();
        let listener = Listener::new().on_open(move |ws, _| {
            ws.send(echo.clone());
        });
        match request.subprotocols().first() {
            Some(p) => Accept::upgrade_with(p, listener),
            None => Accept::upgrade(listener),
        }
    })
    .unwrap();
    (server, rx)
}

#[test]
fn a_request_built_for_tungstenite_connects() {
    use tungstenite::client::IntoClientRequest;
    let (server, seen) = recording_server();
    let mut http_request = server.url().into_client_request().unwrap();
    http_request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("chat"),
    );
    http_request
        .headers_mut()
        .insert("Authorization", http::HeaderValue::from_static("Bearer t"));
    // tungstenite put its own Host, Upgrade, Connection, key and version in: syncws writes
    // those itself, and the conversion takes the rest.
    assert!(http_request.headers().contains_key("sec-websocket-key"));
    let request = Request::try_from(http_request).unwrap();
    assert_eq!(request.subprotocols(), ["chat"]);
    let mut conn = syncws::Client::new().connect(request).unwrap();
    assert_eq!(conn.response().subprotocol(), Some("chat"));
    let got = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(got.headers()["authorization"], "Bearer t");
    assert_eq!(got.headers().get_all("sec-websocket-key").iter().count(), 1);
    assert_eq!(conn.recv().unwrap(), syncws::Message::Binary(Vec::new()));
}

/// Every header syncws writes itself is dropped by the conversion, not only the five a
/// tungstenite request carries: a `Content-Length: 0` or a stray `Sec-WebSocket-Accept` (which
/// the request builder refuses) once failed the conversion.
#[test]
fn every_header_syncws_writes_is_dropped_by_the_conversion() {
    let (server, seen) = recording_server();
    let http_request = http::Request::get(server.url())
        .header("Host", "elsewhere.example")
        .header("Content-Length", "0")
        .header("Transfer-Encoding", "chunked")
        .header("Sec-WebSocket-Accept", "not yours")
        .header("X-Kept", "yes")
        .body(())
        .unwrap();
    let request = Request::try_from(http_request).unwrap();
    let mut conn = syncws::Client::new().connect(request).unwrap();
    assert_eq!(conn.recv().unwrap(), syncws::Message::Binary(Vec::new()));
    let got = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(got.headers()["x-kept"], "yes");
    for dropped in [
        "content-length",
        "transfer-encoding",
        "sec-websocket-accept",
    ] {
        assert!(
            !got.headers().contains_key(dropped),
            "{dropped} reached the server"
        );
    }
    // The server saw the URI's host, not the request's.
    assert_ne!(got.headers()["host"], "elsewhere.example");
}

#[test]
fn header_bytes_that_are_not_utf8_survive_both_ways() {
    let (server, seen) = recording_server();
    let value = b"caf\xe9 \x80\xff".to_vec();
    let http_request = http::Request::get(server.url())
        .header("X-Bytes", http::HeaderValue::from_bytes(&value).unwrap())
        .body(())
        .unwrap();
    let request = Request::try_from(http_request).unwrap();
    assert_eq!(request.header_bytes("x-bytes"), Some(&value[..]));
    assert_eq!(request.header("x-bytes"), None, "not UTF-8");
    let mut conn = syncws::Client::new().connect(request).unwrap();
    // What the server received, byte for byte, and its view as an http::Request.
    assert_eq!(conn.recv().unwrap(), syncws::Message::Binary(value.clone()));
    let got = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(got.headers()["x-bytes"].as_bytes(), &value[..]);
    assert_eq!(got.method(), http::Method::GET);
    assert_eq!(got.uri().path(), "/");
}

#[test]
fn the_response_converts_with_its_header_bytes() {
    let (url, peer) = raw_listener(|mut s, key| {
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
            common::raw::accept_key(&key)
        )
        .into_bytes();
        head.extend_from_slice(b"X-Raw: caf\xe9\r\n\r\n");
        s.write_all(&head).unwrap();
        common::raw::read_client_close(&mut s)
    });
    let conn = syncws::connect(&url).unwrap();
    assert_eq!(conn.response().header_bytes("x-raw"), Some(&b"caf\xe9"[..]));
    let response = http::Response::try_from(conn.response()).unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-raw"].as_bytes(), b"caf\xe9");
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    drop(conn);
    peer.join().unwrap();
}

#[test]
fn a_refusal_converts_too() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::reject(401, "Unauthorized").header("WWW-Authenticate", "Basic realm=\"x\"")
    })
    .unwrap();
    let error = syncws::connect(&server.url()).unwrap_err();
    let response = http::Response::try_from(error.response().unwrap().clone()).unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"x\"");
}

#[test]
fn requests_that_cannot_be_an_upgrade_are_refused() {
    let post = http::Request::post("ws://example.com/").body(()).unwrap();
    assert!(matches!(
        Request::try_from(post),
        Err(Error::InvalidRequest(m)) if m.contains("POST")
    ));
    let relative = http::Request::get("/chat").body(()).unwrap();
    assert!(matches!(
        Request::try_from(relative),
        Err(Error::InvalidUrl(_))
    ));
    let extensions = http::Request::get("ws://example.com/")
        .header("Sec-WebSocket-Extensions", "permessage-deflate")
        .body(())
        .unwrap();
    assert!(matches!(
        Request::try_from(extensions),
        Err(Error::InvalidRequest(_))
    ));
    let ftp = http::Request::get("ftp://example.com/").body(()).unwrap();
    assert!(matches!(Request::try_from(ftp), Err(Error::InvalidUrl(_))));
}

#[test]
fn sensitive_marks_convert_both_ways() {
    let mut key = http::HeaderValue::from_static("key-1");
    key.set_sensitive(true);
    let http_request = http::Request::get("ws://example.com/feed")
        .header("X-Api-Key", key)
        .header("X-Trace", "trace-1")
        .body(())
        .unwrap();
    let request = Request::try_from(http_request).unwrap();
    let marks: Vec<(&str, bool)> = request
        .headers()
        .iter()
        .map(|h| (h.name(), h.is_sensitive()))
        .collect();
    assert_eq!(marks, [("x-api-key", true), ("x-trace", false)]);
    assert!(!format!("{request:?}").contains("key-1"));

    let back = http::Request::try_from(&request).unwrap();
    assert!(back.headers()["x-api-key"].is_sensitive());
    assert!(!back.headers()["x-trace"].is_sensitive());
    let built = Request::builder("ws://example.com/")
        .sensitive_header_bytes("X-Token", b"\xfft".to_vec())
        .build()
        .unwrap();
    let back = http::Request::try_from(&built).unwrap();
    assert!(back.headers()["x-token"].is_sensitive());
    assert_eq!(back.headers()["x-token"].as_bytes(), b"\xfft");
}
