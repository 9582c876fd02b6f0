//! Broadcast with `Prepared`: one message to many server-side sockets, framed once and (with
//! `server_no_context_takeover`) deflated once; sockets whose encoding differs get it encoded
//! for them; a full queue is skipped or closed as `WhenFull` says, and never slows the others.

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};

use common::raw::{read_head, send_upgrade_request};
use common::*;
use syncws::{
    Accept, Client, Connection, Listener, Message, Prepared, Request, Server, ServerBuilder, State,
    WebSocket, WhenFull,
};

type Room = Arc<Mutex<Vec<WebSocket>>>;

/// A server whose open sockets join `room`; `opened` hears of each.
fn room_server(builder: ServerBuilder) -> (Server, Room, mpsc::Receiver<()>) {
    let room: Room = Arc::default();
    let (tx, opened) = mpsc::channel();
    let members = room.clone();
    let server = builder
        .bind("127.0.0.1:0", move |_| {
            let (members, tx) = (members.clone(), tx.clone());
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                members.lock().unwrap().push(ws.clone());
                let _ = tx.send(());
            }))
        })
        .unwrap();
    (server, room, opened)
}

fn join(
    server: &Server,
    client: &Client,
    n: usize,
    opened: &mpsc::Receiver<()>,
) -> Vec<Connection> {
    let conns: Vec<Connection> = (0..n)
        .map(|_| {
            client
                .connect(Request::builder(&server.url()).build().unwrap())
                .unwrap()
        })
        .collect();
    for _ in 0..n {
        opened.recv_timeout(EVENT_TIMEOUT).unwrap();
    }
    conns
}

fn members(room: &Room) -> Vec<WebSocket> {
    room.lock().unwrap().clone()
}

#[test]
fn every_member_gets_the_message_uncompressed() {
    let (server, room, opened) = room_server(Server::builder().compression(false));
    let mut conns = join(&server, &Client::new(), 5, &opened);
    let text = r#"{"type":"news","text":"hello, room"}"#;
    let d = Prepared::new(text).send_to(&members(&room), WhenFull::Skip);
    assert_eq!((d.sent, d.skipped, d.closed, d.ended), (5, 0, 0, 0));
    for c in &mut conns {
        assert_eq!(c.recv().unwrap(), Message::Text(text.into()));
    }
    for ws in members(&room) {
        assert!(ws.wait_drained(EVENT_TIMEOUT));
        let s = ws.stats();
        assert_eq!(
            (s.messages_sent, s.bytes_sent, s.frames_sent),
            (1, text.len() as u64, 1)
        );
        assert_eq!(s.wire_bytes_sent, 2 + text.len() as u64);
    }
}

#[test]
fn with_no_context_takeover_it_is_deflated_once_and_interleaves_with_sends() {
    let (server, room, opened) = room_server(Server::builder().server_no_context_takeover(true));
    let mut conns = join(&server, &Client::new(), 4, &opened);
    let big = "the same words, again and again. ".repeat(100);
    let prepared = Prepared::new(big.clone());
    for ws in members(&room) {
        assert!(ws.send_prepared(&prepared));
        assert!(ws.send("between"));
        assert!(ws.send(big.clone()));
        assert!(ws.send_prepared(&prepared));
    }
    for c in &mut conns {
        for expected in [&big[..], "between", &big[..], &big[..]] {
            assert_eq!(c.recv().unwrap(), Message::Text(expected.into()));
        }
        let s = c.stats();
        assert!(
            s.wire_bytes_received * 5 < s.bytes_received,
            "compressed: {s:?}"
        );
    }
}

#[test]
fn sockets_with_context_takeover_and_client_sockets_get_it_encoded_for_them() {
    // Context takeover (the default): each socket's compressed bytes depend on its history.
    let (server, room, opened) = room_server(Server::builder());
    let mut conns = join(&server, &Client::new(), 3, &opened);
    let big = "abcabcabc ".repeat(500);
    let prepared = Prepared::new(big.clone());
    for _ in 0..3 {
        let d = prepared.send_to(&members(&room), WhenFull::Skip);
        assert_eq!(d.sent, 3);
    }
    for c in &mut conns {
        for _ in 0..3 {
            assert_eq!(c.recv().unwrap(), Message::Text(big.clone()));
        }
    }
    // A client-role socket masks every frame with its own key: it encodes the message itself.
    let echo = syncws::EchoServer::start().unwrap();
    let mut conn = syncws::connect(&echo.url()).unwrap();
    assert!(
        conn.websocket()
            .send_prepared(&Prepared::new("from a client"))
    );
    assert_eq!(conn.recv().unwrap(), Message::Text("from a client".into()));
}

/// A raw client that upgrades and then never reads: its server-side socket's queue fills.
fn stalled_client(server: &Server) -> TcpStream {
    let mut s = send_upgrade_request(server.local_addr());
    let head = read_head(&mut s).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Broadcasts 16 KiB messages until the stalled member is refused once; the reading member
/// gets every one, undelayed. Returns the deliveries, the stalled socket (server side) and its
/// server and client's TCP stream (kept by the caller: dropping the server closes its sockets).
fn until_full(when_full: WhenFull) -> (Vec<syncws::Delivery>, WebSocket, (Server, TcpStream)) {
    let (server, room, opened) = room_server(
        Server::builder()
            .compression(false)
            .max_queue_size(256 * 1024)
            // The stalled socket's writer blocks: it must not give up during the test.
            .write_timeout(std::time::Duration::from_secs(60))
            // At the end, the stalled socket cannot take a close: do not wait for it.
            .stop_timeout(std::time::Duration::from_millis(100)),
    );
    let mut reader = join(&server, &Client::new(), 1, &opened).remove(0);
    let stalled = stalled_client(&server);
    opened.recv_timeout(EVENT_TIMEOUT).unwrap();
    let stalled_ws = members(&room)[1].clone();
    let chunk = Prepared::new(vec![7u8; 16 * 1024]);
    let mut deliveries = Vec::new();
    // The kernel's buffers take a few MiB, then the 256 KiB queue fills.
    for i in 0..4096 {
        let d = chunk.send_to(&members(&room), when_full);
        // The reader keeps up; the stalled socket never delays it.
        assert_eq!(
            reader.recv().unwrap(),
            Message::Binary(vec![7u8; 16 * 1024]),
            "{i}"
        );
        let full = d.skipped + d.closed > 0;
        deliveries.push(d);
        if full {
            break;
        }
    }
    (deliveries, stalled_ws, (server, stalled))
}

#[test]
fn when_full_skip_leaves_the_slow_socket_open() {
    let (deliveries, stalled, _tcp) = until_full(WhenFull::Skip);
    let last = deliveries.last().unwrap();
    assert_eq!(
        (last.sent, last.skipped, last.closed),
        (1, 1, 0),
        "{deliveries:?}"
    );
    assert_eq!(stalled.state(), State::Open);
}

#[test]
fn when_full_close_closes_the_slow_socket_with_the_code() {
    let (deliveries, stalled, _tcp) = until_full(WhenFull::Close(1008));
    let last = deliveries.last().unwrap();
    assert_eq!(
        (last.sent, last.skipped, last.closed),
        (1, 0, 1),
        "{deliveries:?}"
    );
    assert_eq!(stalled.state(), State::Closing);
    // Nothing more goes to it.
    let d = Prepared::new("after").send_to(&[stalled], WhenFull::Skip);
    assert_eq!(d.ended, 1);
}

#[test]
fn when_full_close_with_a_code_close_refuses_still_closes_the_slow_socket() {
    // 999 is not a close code (`close` refuses it): the slow socket is closed with 1008
    // instead of being left open and counted as ended.
    let (deliveries, stalled, _tcp) = until_full(WhenFull::Close(999));
    let last = deliveries.last().unwrap();
    assert_eq!(
        (last.sent, last.skipped, last.closed, last.ended),
        (1, 0, 1, 0),
        "{deliveries:?}"
    );
    assert_eq!(stalled.state(), State::Closing);
}
