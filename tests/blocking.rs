//! The blocking API (`syncws::connect`, `Client::connect`, `Connection`): it opens or fails,
//! receives in order, times out, reports how the socket ended, keeps the listener style's
//! guarantees (nothing queued before `close` is lost) and is bounded.

mod common;

use std::time::Duration;

use common::raw::{frame, raw_server};
use common::{EVENT_TIMEOUT, eventually, next};
use syncws::{Accept, Client, EchoServer, Error, Event, Listener, Message, Request, Server};

#[test]
fn connect_send_recv_text_and_binary() {
    let server = EchoServer::start().unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    assert_eq!(conn.response().status(), 101);
    assert!(conn.send("hello"));
    assert!(conn.send(vec![0u8, 1, 2, 255]));
    assert_eq!(conn.recv().unwrap(), Message::Text("hello".into()));
    assert_eq!(conn.recv().unwrap(), Message::Binary(vec![0, 1, 2, 255]));
    assert_eq!(conn.websocket().state(), syncws::State::Open);
}

#[test]
fn recv_timeout_says_none_then_delivers() {
    let server = EchoServer::start().unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    assert_eq!(
        conn.recv_timeout(Duration::from_millis(50)).unwrap(),
        None,
        "nothing was sent"
    );
    conn.send("late");
    assert_eq!(
        conn.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Some(Message::Text("late".into()))
    );
}

#[test]
fn everything_sent_before_close_comes_back_then_closed() {
    let server = EchoServer::start().unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    for i in 0..1000 {
        assert!(conn.send(format!("m{i}")));
    }
    assert!(conn.close(1000, Some("bye")).unwrap());
    assert!(!conn.send("after close"), "send after close is refused");
    for i in 0..1000 {
        assert_eq!(conn.recv().unwrap(), Message::Text(format!("m{i}")));
    }
    // The echo server answers our close with our code (and no reason); the socket then ends
    // cleanly, and every later call says the same.
    for _ in 0..2 {
        match conn.recv() {
            Err(Error::Closed { code, reason }) => {
                assert_eq!((code, reason.as_str()), (1000, ""));
            }
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert!(matches!(
        conn.recv_timeout(Duration::from_millis(10)),
        Err(Error::Closed { code: 1000, .. })
    ));
}

#[test]
fn peer_close_is_reported_with_its_code_and_reason() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::upgrade(Listener::new().on_message(|ws, _| {
            let _ = ws.close(4001, Some("go away"));
        }))
    })
    .unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    conn.send("close me");
    match conn.recv() {
        Err(Error::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (4001, "go away"))
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[test]
fn a_protocol_error_ends_recv_with_that_error_every_time() {
    let (url, peer) = raw_server(|mut s| {
        use std::io::Write;
        s.write_all(&frame(0x81, b"ok")).unwrap();
        // A reserved opcode.
        s.write_all(&frame(0x83, b"")).unwrap();
        common::raw::read_client_close(&mut s)
    });
    let mut conn = syncws::connect(&url).unwrap();
    assert_eq!(conn.recv().unwrap(), Message::Text("ok".into()));
    for _ in 0..2 {
        assert!(
            matches!(
                conn.recv(),
                Err(Error::Protocol(syncws::ProtocolError::UnknownOpcode {
                    opcode: 3
                }))
            ),
            "the failure is returned again"
        );
    }
    let close = peer.join().unwrap();
    assert_eq!(common::raw::close_code(&close), 1002);
}

#[test]
fn an_io_error_ends_recv_with_the_same_io_error_every_time() {
    // The peer closes with our frame unread in its buffer, so its kernel answers with a reset
    // and the client's read fails with ECONNRESET: an io::Error with an OS code.
    let (url, peer) = raw_server(|s| {
        let mut byte = [0u8; 1];
        s.peek(&mut byte).expect("the client's frame");
        drop(s);
    });
    let mut conn = syncws::connect(&url).unwrap();
    assert!(conn.send("left unread"));
    peer.join().unwrap();
    for _ in 0..2 {
        let error = conn.recv().unwrap_err();
        let Error::Io(io) = &error else {
            panic!("expected Error::Io, got {error:?}");
        };
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
        // A copy made by hand (kind and text) would have lost the OS code.
        assert!(io.raw_os_error().is_some(), "{io:?}");
        let source = std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("source() is the io::Error");
        assert_eq!(source.raw_os_error(), io.raw_os_error());
    }
}

#[test]
fn a_refused_upgrade_is_an_error_with_the_response() {
    let server = Server::bind("127.0.0.1:0", |_| Accept::reject(403, "Forbidden")).unwrap();
    let error = syncws::connect(&server.url()).unwrap_err();
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    let response = error.response().expect("the server's answer");
    assert_eq!((response.status(), response.reason()), (403, "Forbidden"));
}

#[test]
fn connect_errors_come_back_from_connect() {
    assert!(matches!(
        syncws::connect("ftp://example.com/"),
        Err(Error::InvalidUrl(_))
    ));
    // A port nobody listens on: bind one, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = syncws::connect(&format!("ws://127.0.0.1:{port}/")).unwrap_err();
    assert!(matches!(error, Error::Io(_)), "{error:?}");
}

#[test]
fn client_connect_uses_the_clients_settings_and_the_request() {
    let server = Server::bind("127.0.0.1:0", |request| {
        let token = request.header("Authorization").unwrap_or("").to_owned();
        Accept::upgrade_with(
            "chat",
            Listener::new().on_open(move |ws, _| {
                ws.send(token.clone());
            }),
        )
    })
    .unwrap();
    let client = Client::builder().compression(false).build();
    let request = Request::builder(&server.url())
        .header("Authorization", "Bearer t")
        .subprotocol("chat")
        .build()
        .unwrap();
    let mut conn = client.connect(request).unwrap();
    assert_eq!(conn.response().subprotocol(), Some("chat"));
    assert_eq!(
        conn.response().header("Sec-WebSocket-Extensions"),
        None,
        "compression(false) was used"
    );
    assert_eq!(conn.recv().unwrap(), Message::Text("Bearer t".into()));
}

#[test]
fn dropping_the_connection_closes_it_with_1000() {
    let (listener, events) = syncws::channel();
    let server = Server::bind("127.0.0.1:0", move |_| Accept::upgrade(listener.clone())).unwrap();
    let conn = syncws::connect(&server.url()).unwrap();
    conn.send("last words");
    assert!(matches!(next(&events), Event::Open(_)));
    drop(conn);
    assert_eq!(next(&events).to_string_lossy(), "message last words");
    match next(&events) {
        Event::Closing { code, .. } => assert_eq!(code, 1000),
        e => panic!("expected Closing, got {e:?}"),
    }
    match next(&events) {
        Event::Ended(syncws::Ended::Closed { code, .. }) => assert_eq!(code, 1000),
        e => panic!("expected Closed, got {e:?}"),
    }
}

/// A peer that sends far more than the buffer holds while the application does not call
/// `recv`: the socket stops reading (so the server's queue stays full instead of the client's
/// memory growing), and every message still arrives, in order, once `recv` catches up.
#[test]
fn a_connection_that_is_not_read_is_bounded_and_loses_nothing() {
    const COUNT: usize = 96;
    const SIZE: usize = 1024 * 1024;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let server = Server::builder()
        .compression(false)
        .max_queue_size(256 * 1024 * 1024)
        .bind("127.0.0.1:0", move |_| {
            let tx = tx.clone();
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                for i in 0..COUNT {
                    let mut m = vec![0u8; SIZE];
                    m[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    assert!(ws.send(m));
                }
                let _ = tx.send(ws.clone());
            }))
        })
        .unwrap();
    let mut conn = Client::builder()
        .compression(false)
        .build()
        .connect(Request::builder(&server.url()).build().unwrap())
        .unwrap();
    let server_ws = rx.recv_timeout(EVENT_TIMEOUT).unwrap();
    // The server has written what the kernel buffers and the 4 MiB bound took, and then stops
    // making progress: well over half of the 96 MiB is still queued on its side.
    let mut last = u64::MAX;
    assert!(eventually(|| {
        let q = server_ws.queue_size();
        let settled = q == last;
        last = q;
        thread_pause();
        settled
    }));
    assert!(
        last > (COUNT * SIZE / 4) as u64,
        "the server's queue drained to {last} bytes: the client read without bound"
    );
    for i in 0..COUNT {
        match conn.recv().unwrap() {
            Message::Binary(m) => {
                assert_eq!(m.len(), SIZE);
                assert_eq!(u64::from_be_bytes(m[..8].try_into().unwrap()), i as u64);
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    // The server counts a message written once its write call returns, which can be just
    // after the client has read it.
    assert!(eventually(|| server_ws.queue_size() == 0));
}

/// Lets the peer's writer run between two readings of its queue.
fn thread_pause() {
    std::thread::sleep(Duration::from_millis(200));
}

trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl Lossy for Event {
    fn to_string_lossy(&self) -> String {
        match self {
            Event::Message(Message::Text(t)) => format!("message {t}"),
            e => format!("{e:?}"),
        }
    }
}
