//! The server role's hooks: headers on the handler's answer (an upgrade's `Set-Cookie`, a
//! 401's `WWW-Authenticate`) without header injection, the remote address in the handler and on
//! both sockets, and `Server::stop` closing open sockets with 1001 within a bounded time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::raw::{close_code, read_frame_raw, read_head, send_upgrade_request};
use common::{EVENT_TIMEOUT, next};
use syncws::{Accept, Error, Event, Listener, Server};

#[test]
fn an_upgrade_carries_the_handlers_headers() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::upgrade(Listener::new())
            .header("Set-Cookie", "session=abc; HttpOnly")
            .header("X-Served-By", "syncws")
    })
    .unwrap();
    let conn = syncws::connect(&server.url()).unwrap();
    let r = conn.response();
    assert_eq!(r.status(), 101);
    assert_eq!(r.header("set-cookie"), Some("session=abc; HttpOnly"));
    assert_eq!(r.header("X-Served-By"), Some("syncws"));
}

#[test]
fn a_401_carries_www_authenticate() {
    let server = Server::bind("127.0.0.1:0", |request| {
        if request.header("Authorization") == Some("Bearer right") {
            Accept::upgrade(Listener::new())
        } else {
            Accept::reject(401, "Unauthorized").header("WWW-Authenticate", "Bearer realm=\"chat\"")
        }
    })
    .unwrap();
    let error = syncws::connect(&server.url()).unwrap_err();
    let r = error.response().expect("the 401");
    assert_eq!((r.status(), r.reason()), (401, "Unauthorized"));
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"chat\""));
    let request = syncws::Request::builder(&server.url())
        .header("Authorization", "Bearer right")
        .build()
        .unwrap();
    assert!(syncws::Client::new().connect(request).is_ok());
}

/// A handler that puts CR LF (or other control bytes) in a header cannot inject lines into the
/// answer, nor take over the headers the server writes itself; the answer still goes out.
#[test]
fn handler_headers_cannot_inject_or_override() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::reject(403, "Forbidden")
            .header("X-Evil", "a\r\nInjected: yes")
            .header("X Bad Name", "v")
            .header("Content-Length", "999")
            .header("X-Fine", "ok")
    })
    .unwrap();
    let mut s = send_upgrade_request(server.local_addr());
    let head = read_head(&mut s).unwrap();
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    assert!(head.contains("\r\nX-Fine: ok\r\n"), "{head}");
    assert!(!head.contains("Injected"), "{head}");
    assert!(!head.contains("X-Evil"), "{head}");
    assert!(!head.contains("X Bad Name"), "{head}");
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    assert!(head.contains("Content-Length: 0\r\n"), "{head}");
}

#[test]
fn both_sockets_know_their_addresses_and_the_handler_sees_the_client() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = Server::bind("127.0.0.1:0", move |request| {
        let tx = tx.clone();
        let seen = request.peer_addr();
        Accept::upgrade(Listener::new().on_open(move |ws, _| {
            let _ = tx.send((seen, ws.peer_addr(), ws.local_addr()));
        }))
    })
    .unwrap();
    let conn = syncws::connect(&server.url()).unwrap();
    let ws = conn.websocket();
    let (handler_saw, server_peer, server_local) = rx.recv_timeout(EVENT_TIMEOUT).unwrap();
    let client_local = ws.local_addr().expect("connected");
    assert_eq!(ws.peer_addr(), Some(server.local_addr()));
    assert_eq!(handler_saw, Some(client_local));
    assert_eq!(server_peer, Some(client_local));
    assert_eq!(server_local, Some(server.local_addr()));
    // A socket that has not connected yet has none.
    let unconnected = syncws::Client::new().new_web_socket(
        syncws::Request::builder("ws://192.0.2.1:9/")
            .build()
            .unwrap(),
        Listener::new(),
    );
    assert_eq!(unconnected.peer_addr(), None);
    unconnected.cancel();
}

#[test]
fn stop_closes_open_sockets_with_1001() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::upgrade(Listener::new().on_message(|ws, m| {
            ws.send(m);
        }))
    })
    .unwrap();
    let (listener, events) = syncws::channel();
    let ws = syncws::Client::new().new_web_socket(
        syncws::Request::builder(&server.url()).build().unwrap(),
        listener,
    );
    assert!(matches!(next(&events), Event::Open(_)));
    ws.send("echo me");
    assert!(matches!(next(&events), Event::Message(_)));
    server.stop();
    match next(&events) {
        Event::Closing { code, reason } => {
            assert_eq!((code, reason.as_str()), (1001, "server stopping"))
        }
        e => panic!("expected the server's close, got {e:?}"),
    }
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { code: 1001, .. })
    ));
}

/// A client that never answers the close cannot hold `stop` for longer than the stop timeout:
/// it sees the 1001 close frame, then the connection is dropped.
#[test]
fn stop_is_bounded_by_the_stop_timeout_when_a_client_does_not_answer() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = Server::builder()
        .stop_timeout(Duration::from_millis(300))
        .bind("127.0.0.1:0", move |_| {
            let tx = tx.clone();
            Accept::upgrade(Listener::new().on_failure(move |_, e, _| {
                let _ = tx.send(e);
            }))
        })
        .unwrap();
    let mut s = send_upgrade_request(server.local_addr());
    assert!(read_head(&mut s).unwrap().starts_with("HTTP/1.1 101"));
    // Also one still in its handshake: stop drops it.
    let mut half = TcpStream::connect(server.local_addr()).unwrap();
    half.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        server.stop();
        let _ = done_tx.send(());
    });
    let close = read_frame_raw(&mut s).unwrap();
    assert_eq!(close.opcode, 0x8);
    assert_eq!(close_code(&close.payload), 1001);
    // We never answer: stop gives up on us and returns.
    done_rx
        .recv_timeout(EVENT_TIMEOUT)
        .expect("stop returned within its bound");
    assert!(matches!(
        rx.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Error::Canceled
    ));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let mut buf = [0u8; 64];
    assert_eq!(
        half.read(&mut buf).unwrap_or(0),
        0,
        "the handshaking connection was dropped"
    );
}
