//! Senders that wait for room: `send_timeout` waits while a message does not fit under
//! `max_queue_size` and never starts the 1001 close that `send` starts; `wait_drained` waits
//! for the queue to empty. The peer is a raw server that does not read until the test lets it,
//! so the queue really fills.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use syncws::{Client, Event, Message, SendTimeoutError, State};

/// The client's queue limit in these tests: small, so the queue fills long before the
/// kernel's buffers are the limit... once they are full.
const LIMIT: u64 = 64 * 1024;
const CHUNK: usize = 16 * 1024;

fn client() -> Client {
    Client::builder().max_queue_size(LIMIT).build()
}

/// A server that completes the upgrade, waits for `go` (the test's latch), then reads
/// `expected` binary frames, checks each carries its sequence number, and closes cleanly.
fn reading_server(go: mpsc::Receiver<()>, expected: usize) -> (String, thread::JoinHandle<()>) {
    raw_server(move |mut s: TcpStream| {
        go.recv_timeout(EVENT_TIMEOUT * 3).expect("the test's go");
        s.set_read_timeout(Some(EVENT_TIMEOUT * 3)).unwrap();
        for i in 0..expected {
            let (op, payload) = read_client_frame(&mut s);
            assert_eq!(op, 0x2, "frame {i}");
            assert_eq!(payload.len(), CHUNK, "frame {i}");
            assert_eq!(
                &payload[..8],
                &(i as u64).to_be_bytes(),
                "frame {i} out of order"
            );
        }
        let payload = read_client_close(&mut s);
        assert_eq!(close_code(&payload), 1000);
        // Answer the close, then end TCP (dropping the stream), as a server does.
        s.write_all(&frame(0x88, &payload)).unwrap();
    })
}

fn chunk(i: usize) -> Vec<u8> {
    let mut m = vec![0xAB; CHUNK];
    m[..8].copy_from_slice(&(i as u64).to_be_bytes());
    m
}

/// Fills the queue: sends with a short timeout until one times out; returns how many went in
/// and the error of the one that did not.
fn fill(ws: &syncws::WebSocket) -> (usize, SendTimeoutError) {
    for i in 0..100_000 {
        // Long enough that a timeout means the peer's buffers are full, not that the writer
        // thread was slow to wake (where there are no inline writes it does every write, and
        // under Wine a wake-up can take tens of milliseconds).
        if let Err(e) = ws.send_timeout(chunk(i), Duration::from_millis(250)) {
            return (i, e);
        }
    }
    panic!("100,000 × 16 KiB went into a 64 KiB queue without a timeout");
}

#[test]
fn a_bulk_sender_waits_for_room_and_every_message_arrives_without_a_1001() {
    // 2,000 × 16 KiB = 32 MiB through a 64 KiB queue: far more than the queue and the
    // kernel's buffers together, so the sender must wait many times.
    const N: usize = 2_000;
    let (go_tx, go_rx) = mpsc::channel();
    let (url, server) = reading_server(go_rx, N);
    let (listener, events) = syncws::channel();
    let ws = client().new_web_socket(syncws::Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), Event::Open(_)));

    let sender = {
        let ws = ws.clone();
        thread::spawn(move || {
            for i in 0..N {
                if let Err(e) = ws.send_timeout(chunk(i), Duration::from_secs(60)) {
                    return Err((i, e.to_string()));
                }
            }
            Ok(())
        })
    };
    // The server reads nothing yet: the queue fills up to its limit and the sender waits.
    assert!(
        eventually(|| ws.queue_size() > LIMIT - CHUNK as u64),
        "the queue never filled: {}",
        ws.queue_size()
    );
    assert!(
        ws.queue_size() <= LIMIT,
        "over the limit: {}",
        ws.queue_size()
    );
    assert_eq!(
        ws.state(),
        State::Open,
        "a full queue must not close the socket"
    );
    go_tx.send(()).unwrap();

    sender.join().unwrap().expect("every send_timeout went in");
    assert!(
        ws.wait_drained(EVENT_TIMEOUT),
        "queue_size {}",
        ws.queue_size()
    );
    assert_eq!(ws.queue_size(), 0);
    assert!(ws.close(1000, None).unwrap());
    loop {
        match next(&events) {
            Event::Ended(syncws::Ended::Closed { code, .. }) => {
                assert_eq!(code, 1000);
                break;
            }
            Event::Ended(other) => panic!("socket did not close cleanly: {other}"),
            _ => {}
        }
    }
    server.join().unwrap();
}

#[test]
fn at_the_timeout_the_message_comes_back_and_the_socket_stays_open() {
    let (go_tx, go_rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s: TcpStream| {
        let _ = go_rx.recv_timeout(EVENT_TIMEOUT * 3);
        read_until_closed(&mut s);
    });
    let (listener, events) = syncws::channel();
    let ws = client().new_web_socket(syncws::Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), Event::Open(_)));

    let started = Instant::now();
    let (sent, error) = fill(&ws);
    assert!(started.elapsed() >= Duration::from_millis(20));
    match error {
        SendTimeoutError::Timeout(m) => assert_eq!(m, Message::Binary(chunk(sent))),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(ws.queue_size() <= LIMIT);
    assert_eq!(
        ws.state(),
        State::Open,
        "a timeout must not close the socket"
    );
    // And the plain send, for contrast, refuses and closes with 1001.
    assert!(!ws.send(chunk(0)));
    assert_eq!(ws.state(), State::Closing);
    go_tx.send(()).unwrap();
    ws.cancel();
    server.join().unwrap();
}

#[test]
fn a_message_that_can_never_fit_and_a_closed_socket_give_the_message_back_at_once() {
    let server = syncws::EchoServer::start().unwrap();
    let (listener, events) = syncws::channel();
    let ws = client().new_web_socket(
        syncws::Request::builder(&server.url()).build().unwrap(),
        listener,
    );
    assert!(matches!(next(&events), Event::Open(_)));

    let huge = vec![1u8; LIMIT as usize + 1];
    let started = Instant::now();
    match ws.send_timeout(huge.clone(), Duration::from_secs(30)) {
        Err(SendTimeoutError::TooLarge(m)) => assert_eq!(m, Message::Binary(huge)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30), "it waited");
    assert_eq!(
        ws.state(),
        State::Open,
        "TooLarge must not close the socket"
    );

    assert!(ws.send_timeout("fits", Duration::from_secs(5)).is_ok());
    match next(&events) {
        Event::Message(m) => assert_eq!(m, Message::Text("fits".into())),
        other => panic!("expected the echo, got {other:?}"),
    }

    ws.close(1000, None).unwrap();
    let e = ws
        .send_timeout("late", Duration::from_secs(30))
        .unwrap_err();
    assert_eq!(e, SendTimeoutError::Closed(Message::Text("late".into())));
    assert!(e.to_string().contains("closing or closed"), "{e}");
    assert_eq!(e.into_message(), Message::Text("late".into()));
}

#[test]
fn cancel_releases_a_sender_waiting_for_room_and_a_drain_waiter() {
    let (go_tx, go_rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s: TcpStream| {
        let _ = go_rx.recv_timeout(EVENT_TIMEOUT * 3);
        read_until_closed(&mut s);
    });
    let (listener, events) = syncws::channel();
    let ws = client().new_web_socket(syncws::Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), Event::Open(_)));
    let (sent, _) = fill(&ws);

    // Not drained: the server reads nothing.
    assert!(!ws.wait_drained(Duration::from_millis(20)));

    let (done_tx, done_rx) = mpsc::channel();
    let waiting_sender = {
        let (ws, done) = (ws.clone(), done_tx.clone());
        thread::spawn(move || {
            let r = ws.send_timeout(chunk(sent), Duration::MAX);
            done.send("sender").unwrap();
            r
        })
    };
    let waiting_drain = {
        let (ws, done) = (ws.clone(), done_tx);
        thread::spawn(move || {
            let r = ws.wait_drained(Duration::MAX);
            done.send("drain").unwrap();
            r
        })
    };
    // Both stay blocked while nothing changes.
    assert!(done_rx.recv_timeout(Duration::from_millis(100)).is_err());

    ws.cancel();
    for _ in 0..2 {
        done_rx
            .recv_timeout(EVENT_TIMEOUT)
            .expect("cancel released both waiters");
    }
    match waiting_sender.join().unwrap() {
        Err(SendTimeoutError::Closed(m)) => assert_eq!(m, Message::Binary(chunk(sent))),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(
        !waiting_drain.join().unwrap(),
        "bytes were lost: not drained"
    );
    go_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn the_blocking_connection_sends_with_a_timeout_too() {
    let server = syncws::EchoServer::start().unwrap();
    let mut conn = client()
        .connect(syncws::Request::builder(&server.url()).build().unwrap())
        .unwrap();
    for i in 0..64u32 {
        conn.send_timeout(i.to_be_bytes().to_vec(), Duration::from_secs(10))
            .unwrap();
    }
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    for i in 0..64u32 {
        assert_eq!(
            conn.recv().unwrap(),
            Message::Binary(i.to_be_bytes().to_vec())
        );
    }
}
