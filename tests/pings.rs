//! Pings and pongs the application sees and sends: `WebSocket::ping`, `on_ping`/`on_pong`
//! with the round trip, the pull channel's opt-in events, `Connection::ping`; over real
//! sockets on 127.0.0.1, against the mock server and syncws's own server.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::testing::{MockFrame, MockResponse, MockServer};
use syncws::{Client, Event, Listener, Request};

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

/// What the listener saw of pings and pongs.
#[derive(Debug, PartialEq)]
enum Seen {
    Ping(Vec<u8>),
    Pong(Vec<u8>, bool),
}

/// A listener that reports pings, pongs (with whether a round trip came) and the open.
fn watching(tx: mpsc::Sender<Seen>, open: mpsc::Sender<()>) -> Listener {
    let ping_tx = tx.clone();
    Listener::new()
        .on_open(move |_, _| {
            let _ = open.send(());
        })
        .on_ping(move |_, payload| {
            let _ = ping_tx.send(Seen::Ping(payload.to_vec()));
        })
        .on_pong(move |_, payload, rtt| {
            let _ = tx.send(Seen::Pong(payload.to_vec(), rtt.is_some()));
        })
}

/// `ping` sends one now; its pong comes to `on_pong` with the round trip, and counts in the
/// statistics.
#[test]
fn a_ping_of_ours_comes_back_to_on_pong_with_its_round_trip() {
    let server = syncws::EchoServer::start().unwrap();
    let (tx, seen) = mpsc::channel();
    let (open_tx, opened) = mpsc::channel();
    let ws = Client::new().new_web_socket(request(&server.url()), watching(tx, open_tx));
    opened.recv_timeout(EVENT_TIMEOUT).expect("open");
    assert!(ws.ping(&b"first"[..]));
    assert!(ws.ping(b"second".to_vec()));
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Seen::Pong(b"first".to_vec(), true)
    );
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Seen::Pong(b"second".to_vec(), true)
    );
    let stats = ws.stats();
    assert_eq!(stats.pongs_received, 2);
    assert!(stats.last_rtt.is_some());
    ws.cancel();
}

/// The rules: at most 125 bytes, only while open; nothing after our close frame.
#[test]
fn ping_refuses_long_payloads_and_a_socket_that_is_not_open() {
    let server = syncws::EchoServer::start().unwrap();
    let (tx, _seen) = mpsc::channel();
    let (open_tx, opened) = mpsc::channel();
    let ws = Client::new().new_web_socket(request(&server.url()), watching(tx, open_tx));
    opened.recv_timeout(EVENT_TIMEOUT).expect("open");
    assert!(!ws.ping(vec![0u8; 126]), "126 bytes is past RFC 6455's 125");
    assert!(ws.ping(vec![0u8; 125]));
    ws.close(1000, None).unwrap();
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(!ws.ping(&b"late"[..]), "no ping once the socket is closed");
}

/// The peer's ping reaches `on_ping` and is answered (the mock checks the pong); an
/// unsolicited pong reaches `on_pong` without a round trip.
#[test]
fn the_peers_pings_and_unsolicited_pongs_reach_the_listener() {
    let mock = MockServer::start().unwrap();
    mock.enqueue(
        MockResponse::upgrade()
            .send_ping(b"are you there")
            .send_pong(b"heartbeat")
            .expect_close(),
    );
    let (tx, seen) = mpsc::channel();
    let (open_tx, _opened) = mpsc::channel();
    let ws = Client::new().new_web_socket(request(&mock.url()), watching(tx, open_tx));
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Seen::Ping(b"are you there".to_vec())
    );
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Seen::Pong(b"heartbeat".to_vec(), false)
    );
    ws.close(1000, None).unwrap();
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let frames = mock.received(1);
    assert!(
        frames
            .iter()
            .any(|f| f.opcode == MockFrame::PONG && f.payload == b"are you there"),
        "the ping was answered: {frames:?}"
    );
}

/// Automatic keepalive pings go on alongside, and their pongs reach `on_pong` too.
#[test]
fn keepalive_pings_go_on_beside_the_applications() {
    let server = syncws::EchoServer::start().unwrap();
    let client = Client::builder()
        .ping_interval(Duration::from_millis(50))
        .build();
    let (tx, seen) = mpsc::channel();
    let (open_tx, opened) = mpsc::channel();
    let ws = client.new_web_socket(request(&server.url()), watching(tx, open_tx));
    opened.recv_timeout(EVENT_TIMEOUT).expect("open");
    assert!(ws.ping(&b"mine"[..]));
    let mut mine = false;
    let mut keepalives = 0;
    while !(mine && keepalives >= 2) {
        match seen.recv_timeout(EVENT_TIMEOUT).expect("pongs keep coming") {
            Seen::Pong(p, true) if p == b"mine" => mine = true,
            // A keepalive's payload is its 8-byte token.
            Seen::Pong(p, true) if p.len() == 8 => keepalives += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.cancel();
}

/// The pull channel delivers pings and pongs only when asked: an application written before
/// them sees none.
#[test]
fn the_channel_delivers_ping_events_only_when_asked() {
    let server = syncws::EchoServer::start().unwrap();
    for asked in [false, true] {
        let (listener, events) = syncws::channel();
        let listener = if asked {
            listener.with_ping_events()
        } else {
            listener
        };
        let ws = Client::new().new_web_socket(request(&server.url()), listener);
        assert!(matches!(
            events.recv_timeout(EVENT_TIMEOUT).unwrap(),
            Event::Open(_)
        ));
        // The server answers the ping before it echoes the message that follows it.
        assert!(ws.ping(&b"p"[..]));
        assert!(ws.send("after"));
        let first = events.recv_timeout(EVENT_TIMEOUT).unwrap();
        if asked {
            assert!(
                matches!(&first, Event::Pong { payload, rtt: Some(_) } if payload == b"p"),
                "{first:?}"
            );
            assert!(matches!(
                events.recv_timeout(EVENT_TIMEOUT).unwrap(),
                Event::Message(_)
            ));
        } else {
            assert!(matches!(first, Event::Message(_)), "{first:?}");
        }
        ws.cancel();
    }
}

/// `Connection::ping` waits for its pong: the round trip, or `None` from a peer that does
/// not answer within the timeout.
#[test]
fn a_connections_ping_waits_for_its_round_trip() {
    let server = syncws::EchoServer::start().unwrap();
    let conn = syncws::connect(&server.url()).unwrap();
    let rtt = conn.ping(&b"1"[..], EVENT_TIMEOUT).expect("a pong");
    assert!(rtt < EVENT_TIMEOUT);
    assert_eq!(conn.ping(vec![0u8; 200], EVENT_TIMEOUT), None);

    let mock = MockServer::start().unwrap();
    mock.enqueue(MockResponse::upgrade().ignore_pings().expect_close());
    let deaf = syncws::connect(&mock.url()).unwrap();
    assert_eq!(deaf.ping(&b"2"[..], Duration::from_millis(200)), None);
}
