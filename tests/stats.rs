//! Statistics: a socket's counts are exact for traffic whose framing the test can work out
//! (messages, payload and wire bytes, frames, the queue's high-water mark, pings), the same
//! through `Connection` and the reconnecting socket; a server's counts name each refusal.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::raw::read_answer;
use common::*;
use syncws::testing::{MockResponse, MockServer};
use syncws::{
    Accept, Client, EchoServer, Event, Listener, Message, Reconnect, Request, Server, State,
};

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

/// A client frame of a payload under 126 bytes: 2 header bytes, a 4-byte mask key.
fn client_frame(len: u64) -> u64 {
    2 + 4 + len
}

/// A server frame of a payload under 126 bytes: 2 header bytes, no mask.
fn server_frame(len: u64) -> u64 {
    2 + len
}

#[test]
fn a_connection_counts_messages_bytes_frames_and_wire_bytes_exactly() {
    let server = EchoServer::start().unwrap();
    let client = Client::builder().compression(false).build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    assert!(conn.stats().opened_at.is_some());
    let sizes = [0u64, 1, 50, 125];
    for (i, &n) in sizes.iter().enumerate() {
        if i % 2 == 0 {
            assert!(conn.send("t".repeat(n as usize)));
        } else {
            assert!(conn.send(vec![1u8; n as usize]));
        }
        conn.recv().unwrap();
    }
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    let s = conn.stats();
    let total: u64 = sizes.iter().sum();
    assert_eq!((s.messages_sent, s.bytes_sent), (4, total));
    assert_eq!((s.messages_received, s.bytes_received), (4, total));
    assert_eq!((s.frames_sent, s.frames_received), (4, 4));
    assert_eq!(
        s.wire_bytes_sent,
        sizes.iter().map(|&n| client_frame(n)).sum::<u64>()
    );
    assert_eq!(
        s.wire_bytes_received,
        sizes.iter().map(|&n| server_frame(n)).sum::<u64>()
    );
    assert_eq!(s.pings_sent, 0);
    assert_eq!(s.last_rtt, None);
}

#[test]
fn compression_shows_as_fewer_wire_bytes_than_payload() {
    let server = EchoServer::start().unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    let text = "the same words again and again ".repeat(300);
    assert!(conn.send(text.clone()));
    assert_eq!(conn.recv().unwrap(), Message::Text(text.clone()));
    let s = conn.stats();
    assert_eq!(s.bytes_sent, text.len() as u64);
    assert_eq!(s.bytes_received, text.len() as u64);
    assert!(s.wire_bytes_sent * 10 < s.bytes_sent, "{s:?}");
    assert!(s.wire_bytes_received * 10 < s.bytes_received, "{s:?}");
}

#[test]
fn the_queue_high_water_mark_holds_what_waited_for_the_connection() {
    // A server that accepts TCP and never answers the upgrade: the socket stays connecting
    // and every send waits in its queue.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", silent.local_addr().unwrap());
    let ws = Client::new().new_web_socket(request(&url), Listener::new());
    for n in [100usize, 200, 300] {
        assert!(ws.send(vec![0u8; n]));
    }
    let s = ws.stats();
    assert_eq!(s.queue_high_water, 600);
    assert_eq!(ws.queue_size(), 600);
    assert_eq!(s.messages_sent, 0, "nothing written yet");
    assert_eq!(s.opened_at, None, "not open");
    ws.cancel();
    assert_eq!(
        ws.stats().messages_sent,
        0,
        "canceled sends are not counted as sent"
    );
}

#[test]
fn pings_pongs_and_the_round_trip_are_counted() {
    let server = EchoServer::start().unwrap();
    let client = Client::builder()
        .ping_interval(Duration::from_millis(20))
        .build();
    let conn = client.connect(request(&server.url())).unwrap();
    assert!(
        eventually(|| conn.stats().pongs_received >= 3),
        "{:?}",
        conn.stats()
    );
    let s = conn.stats();
    assert!(s.pings_sent >= s.pongs_received, "{s:?}");
    let rtt = s.last_rtt.expect("a round trip was measured");
    assert!(rtt < EVENT_TIMEOUT, "{rtt:?}");
    // Pings and pongs are frames, not messages.
    assert_eq!(s.messages_sent, 0);
    assert!(s.frames_sent >= s.pings_sent && s.frames_received >= s.pongs_received);
}

#[test]
fn a_reconnecting_socket_reports_its_current_connection() {
    let server = MockServer::start().unwrap();
    // Ended in order (a FIN, no close frame), so "one" is read before the end.
    server.enqueue(MockResponse::upgrade().send_text("one").close_tcp());
    server.enqueue(MockResponse::upgrade().send_text("two").send_text("three"));
    let (listener, events) = syncws::channel();
    let policy = Reconnect::default()
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(10));
    let rs = Client::new().reconnecting(request(&server.url()), policy, listener);
    let mut texts = Vec::new();
    while texts.len() < 3 {
        if let Event::Message(Message::Text(t)) = next(&events) {
            texts.push(t);
        }
    }
    assert_eq!(texts, ["one", "two", "three"]);
    let s = rs.stats().expect("connected");
    assert_eq!(
        s.messages_received, 2,
        "the second connection counts from zero: {s:?}"
    );
    rs.cancel();
    server.verify();
}

#[test]
fn a_server_counts_accepted_open_and_each_refusal() {
    let server = Server::builder()
        .max_connections_per_ip(2)
        .allowed_origins(["https://app.example"])
        .bind("127.0.0.1:0", |request| {
            if request.url().path() == "/private" {
                Accept::reject(401, "no")
            } else {
                Accept::upgrade(Listener::new())
            }
        })
        .unwrap();
    let url = server.url();
    let with_origin = |path: &str| {
        Request::builder(&format!("{url}{}", path.trim_start_matches('/')))
            .header("Origin", "https://app.example")
            .build()
            .unwrap()
    };
    let client = Client::new();
    let a = client.connect(with_origin("/")).unwrap();
    let b = client.connect(with_origin("/")).unwrap();
    let full = client.connect(with_origin("/"));
    assert!(full.is_err(), "the per-address cap of 2");
    assert!(client.connect(with_origin("/private")).is_err());
    let wrong_origin = Request::builder(&url)
        .header("Origin", "https://evil.example")
        .build()
        .unwrap();
    assert!(client.connect(wrong_origin).is_err());
    // Not an upgrade at all.
    let mut raw = TcpStream::connect(server.local_addr()).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = read_answer(&raw);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    let s = server.stats();
    assert_eq!((s.accepted, s.open), (2, 2), "{s:?}");
    assert_eq!(s.refused_per_address, 1, "{s:?}");
    assert_eq!(s.refused_by_handler, 1, "{s:?}");
    assert_eq!(s.refused_origin, 1, "{s:?}");
    assert_eq!(s.refused_bad_handshake, 1, "{s:?}");
    assert_eq!((s.refused_cap, s.evicted), (0, 0), "{s:?}");

    a.close(1000, None).unwrap();
    assert!(matches!(
        a.websocket().state(),
        State::Closing | State::Closed
    ));
    b.websocket().cancel();
    assert!(
        eventually(|| server.stats().open == 0),
        "{:?}",
        server.stats()
    );
}

#[test]
fn a_server_counts_the_cap_handshakes_in_progress_and_evictions() {
    let server = Server::builder()
        .max_connections(1)
        .max_handshaking_per_ip(1)
        .bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new()))
        .unwrap();
    let first = syncws::connect(&server.url()).unwrap();
    // Its handshake counts until its thread is done with it, a moment after the 101: with
    // max_handshaking_per_ip 1 a second connection before that is refused for the address.
    assert!(eventually(|| server.stats().handshaking == 0));
    assert!(syncws::connect(&server.url()).is_err(), "max_connections 1");
    assert_eq!(server.stats().refused_cap, 1);
    // The refusal's handshake slot is free once its client has gone.
    assert!(
        eventually(|| server.stats().handshaking == 0),
        "{:?}",
        server.stats()
    );
    // A connection that never sends its request is a handshake in progress until a second
    // one from the same address evicts it (max_handshaking_per_ip 1).
    let (_silent, _second) = evict_a_silent_handshake(&server);
    let s = server.stats();
    assert_eq!(
        (s.evicted, s.accepted, s.open),
        (1, 1, 1),
        "{s:?} {:?}",
        first.websocket().state()
    );
    drop(first);
}
