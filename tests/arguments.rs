//! Caller-supplied arguments at their extremes never panic a socket thread:
//! every duration knob at zero and at `Duration::MAX`, and a reader thread the OS refuses.

mod common;

use std::time::Duration;

use common::*;
use syncws::{Client, EchoServer, Error, Event, Message, Request, Server, State};

#[test]
fn every_duration_knob_accepts_zero_and_max() {
    for d in [Duration::ZERO, Duration::MAX] {
        let server = EchoServer::with_builder(
            Server::builder()
                .handshake_timeout(d)
                .write_timeout(d)
                .ping_interval(d)
                .pong_timeout(d)
                .close_timeout(Some(d))
                .thread_keep_alive(d),
        )
        .unwrap();
        let client = Client::builder()
            .connect_timeout(d)
            .handshake_timeout(d)
            .write_timeout(d)
            .ping_interval(d)
            .pong_timeout(d)
            .close_timeout(Some(d))
            .thread_keep_alive(d)
            .build();
        let (listener, events) = syncws::channel();
        let ws = client.new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
        assert!(ws.send("hello"));
        assert!(matches!(next(&events), Event::Open(_)), "{d:?}");
        match next(&events) {
            Event::Message(m) => assert_eq!(m, Message::Text("hello".into()), "{d:?}"),
            e => panic!("{d:?}: {e:?}"),
        }
        assert!(ws.close(1000, None).unwrap());
        assert!(
            matches!(next(&events), Event::Closing { code: 1000, .. }),
            "{d:?}"
        );
        assert!(
            matches!(
                next(&events),
                Event::Ended(syncws::Ended::Closed { code: 1000, .. })
            ),
            "{d:?}"
        );
        // The longest wait there is: it returns as soon as the socket has finished.
        assert!(ws.wait_finished(Duration::MAX), "{d:?}");
        assert_exhausted(&events);
    }
}

#[test]
fn a_reader_thread_the_os_refuses_still_yields_exactly_one_on_failure() {
    // A 1 TiB stack cannot be mapped (more than memory and swap), so no thread starts.
    let client = Client::builder().thread_stack_size(1 << 40).build();
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(
        Request::builder("ws://127.0.0.1:9/").build().unwrap(),
        listener,
    );
    match next(&events) {
        Event::Ended(syncws::Ended::Failed {
            error: Error::Io(e),
            response: None,
        }) => assert!(e.to_string().contains("reader thread"), "{e}"),
        e => panic!("expected one on_failure, got {e:?}"),
    }
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert!(!ws.send("too late"));
    assert_exhausted(&events);
}

#[test]
fn a_panicking_accept_handler_is_answered_with_500_and_the_server_goes_on() {
    use std::io::Write;
    let server = Server::bind("127.0.0.1:0", |request| {
        if request.url().path() == "/boom" {
            panic!("handler bug");
        }
        syncws::Accept::upgrade(syncws::Listener::new().on_message(|ws, m| {
            ws.send(m);
        }))
    })
    .unwrap();
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        s.write_all(
            b"GET /boom HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let head = common::raw::read_head(&mut s).expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
    }
    // The same server still upgrades other requests.
    let (listener, events) = syncws::channel();
    let ws =
        Client::new().new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    assert!(ws.send("still here"));
    assert!(matches!(next(&events), Event::Open(_)));
    match next(&events) {
        Event::Message(m) => assert_eq!(m, Message::Text("still here".into())),
        e => panic!("{e:?}"),
    }
    let _ = ws.close(1000, None);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}
