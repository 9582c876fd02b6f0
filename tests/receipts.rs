//! Write receipts: `WebSocket::send_with_receipt` says when a message was handed to the
//! operating system, or that it never will be; over real sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::testing::{MockResponse, MockServer};
use syncws::{Message, WriteStatus};

/// A message to a peer that reads is written; the receipt says so, and a later message's
/// receipt implies every earlier one's (messages are written in order).
#[test]
fn a_receipt_says_when_its_message_was_written() {
    let server = syncws::EchoServer::start().unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    let receipts: Vec<_> = (0..200)
        .map(|i| {
            conn.websocket()
                .send_with_receipt(format!("message {i}"))
                .expect("queued")
        })
        .collect();
    assert_eq!(
        receipts.last().unwrap().wait(EVENT_TIMEOUT),
        WriteStatus::Written
    );
    for r in &receipts {
        assert_eq!(r.status(), WriteStatus::Written);
    }
    // The echo of the last one shows it really went out.
    let mut last = None;
    for _ in 0..200 {
        last = Some(conn.recv().unwrap());
    }
    assert_eq!(last, Some(Message::Text("message 199".into())));
}

/// Behind a peer that stops reading a message stays queued (`Pending`, and `wait` gives up
/// at its timeout); a cancel discards it: `NotWritten`, at once for a waiter.
#[test]
fn a_message_a_peer_never_takes_is_pending_then_not_written() {
    let mock = MockServer::start().unwrap();
    mock.enqueue(MockResponse::upgrade().stop_reading());
    let conn = syncws::connect(&mock.url()).unwrap();
    let ws = conn.websocket();
    // More than the loopback's buffers hold: the first receipts may be written, the last not.
    let receipts: Vec<_> = (0..64)
        .map(|_| ws.send_with_receipt(vec![7u8; 256 * 1024]).expect("queued"))
        .collect();
    let last = receipts.last().unwrap();
    assert_eq!(last.wait(Duration::from_millis(100)), WriteStatus::Pending);
    assert_eq!(last.status(), WriteStatus::Pending);
    // A waiter with all the time in the world: the socket's end must wake it.
    let (tx, woken) = std::sync::mpsc::channel();
    {
        let last = last.clone();
        std::thread::spawn(move || {
            let _ = tx.send(last.wait(Duration::from_secs(3600)));
        });
    }
    ws.cancel();
    assert_eq!(
        woken
            .recv_timeout(EVENT_TIMEOUT)
            .expect("the end wakes a waiting receipt"),
        WriteStatus::NotWritten
    );
    assert_eq!(last.status(), WriteStatus::NotWritten);
}

/// No receipt where `send` would refuse: once the socket is closing.
#[test]
fn no_receipt_for_a_message_that_is_not_queued() {
    let server = syncws::EchoServer::start().unwrap();
    let conn = syncws::connect(&server.url()).unwrap();
    conn.close(1000, None).unwrap();
    assert!(conn.websocket().send_with_receipt("late").is_none());
}
