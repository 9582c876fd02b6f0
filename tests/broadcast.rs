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

/// The broadcast pattern of `docs/deploying.md`: whatever a client sends goes to everyone
/// in the room (itself too) with `WhenFull::Close(1008)`.
fn chat_room(builder: ServerBuilder) -> (Server, Room) {
    let room: Room = Arc::default();
    let members = room.clone();
    let server = builder
        .bind("127.0.0.1:0", move |_| {
            let (joined, everyone) = (members.clone(), members.clone());
            Accept::upgrade(
                Listener::new()
                    .on_open(move |ws, _| joined.lock().unwrap().push(ws.clone()))
                    .on_message(move |_, m| {
                        let room = everyone.lock().unwrap();
                        Prepared::new(m).send_to(room.iter(), WhenFull::Close(1008));
                    }),
            )
        })
        .unwrap();
    (server, room)
}

/// A receiver on a slow link: a raw client with a small receive buffer (no autotuning) that
/// reads at about `per_second` bytes a second, until it has `enough` bytes of messages or
/// gets a close frame. Returns (bytes of messages, the close code if one came, the connection
/// still open).
type Received = (u64, Option<u16>, TcpStream);
fn slow_receiver(
    server: &Server,
    per_second: u64,
    enough: u64,
) -> (std::thread::JoinHandle<Received>, mpsc::Receiver<()>) {
    use std::io::Write;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&server.local_addr().into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s.write_all(common::raw::upgrade_request("").as_bytes())
        .unwrap();
    let head = read_head(&mut s).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (ready, is_ready) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let _ = ready.send(());
        let start = std::time::Instant::now();
        let mut got = 0u64;
        while got < enough {
            let Ok(frame) = common::raw::read_frame_raw(&mut s) else {
                return (got, None, s);
            };
            match frame.opcode {
                0x8 => return (got, Some(common::raw::close_code(&frame.payload)), s),
                0x0..=0x2 => got += frame.payload.len() as u64,
                _ => {}
            }
            // The link's speed: what has been read so far may not be ahead of the rate.
            let due = std::time::Duration::from_secs_f64(got as f64 / per_second as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        (got, None, s)
    });
    (reader, is_ready)
}

/// One client flooding a room must not get every other member closed
/// as "too slow". Without a per-sender rate, a flood of 64 KiB messages (under the server's
/// 1 MiB message limit) fills every receiver's send queue faster than a 2 MB/s link drains it,
/// and `WhenFull::Close(1008)` closes them all. With the pattern's `max_receive_rate`, the
/// flooder is held back by TCP (its reader rests) and receivers that read faster than that
/// rate stay connected and get everything, in order.
#[test]
fn one_flooding_sender_does_not_get_the_other_members_closed() {
    const RECEIVERS: usize = 3;
    const LINK: u64 = 2_000_000;
    const PART: usize = 60 * 1024;
    let flood = |server: &Server, room: &Room| {
        let flooder = Client::builder()
            .compression(false)
            .max_queue_size(64 << 20)
            .build()
            .connect(Request::builder(&server.url()).build().unwrap())
            .unwrap();
        assert!(eventually(|| room.lock().unwrap().len() == RECEIVERS + 1));
        // 15 MiB: beyond what the queues and the kernel's buffers hold.
        for i in 0..256u32 {
            let mut m = vec![0u8; PART];
            m[..4].copy_from_slice(&i.to_be_bytes());
            assert!(flooder.send(m));
        }
        flooder
    };

    // Unprotected: the server role's defaults, no rate. The flood closes every receiver.
    let (server, room) = chat_room(Server::builder().compression(false));
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| slow_receiver(&server, LINK, u64::MAX))
        .collect();
    for (_, ready) in &receivers {
        ready.recv_timeout(EVENT_TIMEOUT).unwrap();
    }
    let flooder = flood(&server, &room);
    for (reader, _) in receivers {
        let (_, code, _) = reader.join().unwrap();
        assert_eq!(code, Some(1008), "the flood closes a receiver as too slow");
    }
    // Its queue holds megabytes: a clean close would wait for them.
    flooder.websocket().cancel();
    drop(server);

    // The pattern: each sender at most 1 MiB/s (bursts of 1 MiB), messages up to 64 KiB. The
    // receivers read at 2 MB/s: they keep up, and read 3 MiB of the flood without a close.
    let (server, room) = chat_room(
        Server::builder()
            .compression(false)
            .max_message_size(64 * 1024)
            .max_receive_rate(1 << 20, 1 << 20),
    );
    let enough = 3 << 20;
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| slow_receiver(&server, LINK, enough))
        .collect();
    for (_, ready) in &receivers {
        ready.recv_timeout(EVENT_TIMEOUT).unwrap();
    }
    let flooder = flood(&server, &room);
    let mut open = Vec::new();
    for (reader, _) in receivers {
        let (got, code, stream) = reader.join().unwrap();
        assert_eq!((got >= enough, code), (true, None), "{got} bytes");
        open.push(stream);
    }
    for ws in members(&room) {
        assert_eq!(ws.state(), State::Open, "nobody was closed");
    }
    // The flooder is held back, not closed: most of its flood still waits on its side.
    assert_eq!(flooder.websocket().state(), State::Open);
    assert!(flooder.websocket().queue_size() > 4 << 20);
    flooder.websocket().cancel();
}

/// A client offering `server_max_window_bits` makes the server compress
/// with that window. Before, broadcast frames were shared per window size, so seven clients
/// offering 9 to 15 made each broadcast compress seven times and every broadcasting thread keep
/// seven compressors (~1.7 MiB) for life. Now only the server's own window is shared; the
/// others get the message compressed by their own socket, as a `send` would.
#[test]
fn clients_choosing_their_own_window_get_broadcasts_compressed_for_them_alone() {
    use std::io::Write;
    let (server, room, opened) = room_server(Server::builder());
    let mut clients = Vec::new();
    for bits in 9..=15 {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let offer = format!(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             server_max_window_bits={bits}\r\n"
        );
        s.write_all(common::raw::upgrade_request(&offer).as_bytes())
            .unwrap();
        let head = read_head(&mut s).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains(&format!("server_max_window_bits={bits}")),
            "{head}"
        );
        clients.push(s);
    }
    for _ in 9..=15 {
        opened.recv_timeout(EVENT_TIMEOUT).unwrap();
    }
    let text = "a message for everyone in the room; ".repeat(100);
    let before = syncws::testing::prepared_compressors();
    let d = Prepared::new(text.clone()).send_to(&members(&room), WhenFull::Skip);
    assert_eq!(d.sent, 7);
    assert_eq!(
        syncws::testing::prepared_compressors() - before,
        1,
        "one compressor, for the server's own window (15)"
    );
    for s in &mut clients {
        let frame = common::raw::read_frame_raw(s).unwrap();
        assert!(frame.rsv1() && frame.fin, "{frame:?}");
        let mut payload = frame.payload;
        payload.extend([0, 0, 0xff, 0xff]);
        let mut inflate = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(text.len() + 64);
        inflate
            .decompress_vec(&payload, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, text.as_bytes());
    }
}

/// The same pattern refuses a message over its limit with 1009: a flooder of 1 MB messages
/// (the issue's measurement) is closed itself, and nobody else is.
#[test]
fn a_flooder_of_one_megabyte_messages_is_closed_itself_under_the_pattern() {
    let (server, room) = chat_room(
        Server::builder()
            .max_message_size(64 * 1024)
            .max_receive_rate(1 << 20, 1 << 20),
    );
    let mut others = join_plain(&server, 2);
    let mut flooder = syncws::connect(&server.url()).unwrap();
    assert!(eventually(|| room.lock().unwrap().len() == 3));
    for _ in 0..8 {
        flooder.send(vec![7u8; 1_000_000]);
    }
    match flooder.recv() {
        Err(syncws::Error::Closed { code, .. }) => assert_eq!(code, 1009),
        other => panic!("{other:?}"),
    }
    assert!(others[0].send("still here"));
    for c in &mut others {
        // Everyone (the sender too) gets the room's message, and nothing of the flood.
        assert_eq!(c.recv().unwrap(), Message::Text("still here".into()));
    }
}

fn join_plain(server: &Server, n: usize) -> Vec<Connection> {
    (0..n)
        .map(|_| syncws::connect(&server.url()).unwrap())
        .collect()
}
