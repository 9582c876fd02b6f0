//! Engine behaviours, over real sockets: fragmentation of large messages, pongs
//! between fragments, the thread stack knob.

mod common;

use std::io::Write;

use common::raw::*;
use common::*;
use syncws::{Client, Event, Listener, Message, Request, Server};

fn connect(client: &Client, url: &str) -> (syncws::WebSocket, syncws::Events) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().unwrap(), listener);
    (ws, events)
}

/// Reads client frames up to and including the final frame of one data message.
fn read_message_frames(s: &mut std::net::TcpStream) -> (Vec<(u8, bool, usize)>, Vec<u8>, usize) {
    let mut frames = Vec::new();
    let mut payload = Vec::new();
    let mut pongs_before_fin = 0;
    loop {
        let f = read_frame_raw(s).expect("a frame from the client");
        assert!(f.masked);
        if f.opcode == 0xA {
            pongs_before_fin += 1;
            continue;
        }
        frames.push((f.opcode, f.fin, f.payload.len()));
        payload.extend_from_slice(&f.payload);
        if f.fin {
            return (frames, payload, pongs_before_fin);
        }
    }
}

#[test]
fn large_messages_go_out_in_frames_of_fragment_size() {
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let expected = message.clone();
    let (url, peer) = raw_server(move |mut s| {
        let (frames, payload, _) = read_message_frames(&mut s);
        server_close(&mut s);
        (frames, payload)
    });
    let client = Client::builder()
        .fragment_size(64 * 1024)
        .compression(false)
        .build();
    let (ws, events) = connect(&client, &url);
    assert!(ws.send(message));
    assert!(matches!(next(&events), Event::Open(_)));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let (frames, payload) = peer.join().expect("raw peer");
    assert_eq!(
        frames,
        [
            (2, false, 65536),
            (0, false, 65536),
            (0, false, 65536),
            (0, true, 200_000 - 3 * 65536)
        ]
    );
    assert_eq!(payload, expected);
}

#[test]
fn a_pong_is_not_stuck_behind_a_large_message() {
    // 16 MiB at the default 1 MiB fragments: the peer's ping, sent once the first fragment
    // has arrived, is answered before the message's last fragment.
    let message = vec![7u8; 16 * 1024 * 1024];
    let (url, peer) = raw_server(move |mut s| {
        let first = read_frame_raw(&mut s).expect("first fragment");
        assert_eq!((first.opcode, first.fin), (2, false));
        s.write_all(&frame(0x89, b"are you there")).unwrap();
        let (frames, payload, pongs) = read_message_frames(&mut s);
        server_close(&mut s);
        (pongs, frames.len() + 1, payload.len() + first.payload.len())
    });
    let client = Client::builder().compression(false).build();
    let (ws, events) = connect(&client, &url);
    assert!(ws.send(message));
    assert!(matches!(next(&events), Event::Open(_)));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let (pongs, frames, len) = peer.join().expect("raw peer");
    assert_eq!(len, 16 * 1024 * 1024);
    assert_eq!(frames, 16);
    assert_eq!(pongs, 1, "the pong must arrive before the last fragment");
}

#[test]
fn callbacks_get_the_configured_thread_stack() {
    // 1 MiB of stack in a callback would overflow the default 256 KiB (and abort the
    // process); with a 4 MiB stack it runs.
    let server = Server::builder()
        .thread_stack_size(4 * 1024 * 1024)
        .bind("127.0.0.1:0", |_| {
            syncws::Accept::upgrade(Listener::new().on_message(|ws, m| {
                let big = std::hint::black_box([1u8; 1024 * 1024]);
                let sum: u64 = big.iter().map(|&b| u64::from(b)).sum();
                ws.send(format!("{}:{sum}", m.len()));
            }))
        })
        .unwrap();
    let (ws, events) = connect(&Client::new(), &server.url());
    assert!(ws.send("x"));
    assert!(matches!(next(&events), Event::Open(_)));
    match next(&events) {
        Event::Message(m) => assert_eq!(m, Message::Text(format!("1:{}", 1024 * 1024))),
        e => panic!("{e:?}"),
    }
    let _ = ws.close(1000, None);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn a_burst_of_sends_is_delivered_whole_and_in_order() {
    // One inline write at most, then the writer batches: every message arrives, in order.
    let server = syncws::EchoServer::start().unwrap();
    let (ws, events) = connect(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    for i in 0..5000u32 {
        assert!(ws.send(i.to_be_bytes().to_vec()));
    }
    for i in 0..5000u32 {
        match next(&events) {
            Event::Message(m) => assert_eq!(m, Message::Binary(i.to_be_bytes().to_vec())),
            e => panic!("{e:?}"),
        }
    }
    let _ = ws.close(1000, None);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}
