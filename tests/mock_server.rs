//! The test kit's mock server, exercised by the crate's own client: refusals of any kind, the
//! recorded request and frames, every script step, and the failure messages a script that
//! does not go as written produces (naming connection, step, expected and got), never a hang.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use syncws::testing::{MockFrame, MockResponse, MockServer};
use syncws::{Client, Ended, Error, Event, Events, Message, Request, State, WebSocket};

fn open(client: &Client, url: &str) -> (WebSocket, Events) {
    let (listener, events) = syncws::channel();
    let request = Request::builder(url).build().expect("a valid request");
    (client.new_web_socket(request, listener), events)
}

/// Every event up to and including the terminal one.
fn until_end(events: &Events) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = next(events);
        let end = e.is_terminal();
        seen.push(e);
        if end {
            return seen;
        }
    }
}

fn ended(seen: &[Event]) -> &Ended {
    match seen.last() {
        Some(Event::Ended(how)) => how,
        other => panic!("no terminal event: {other:?}"),
    }
}

fn texts(seen: &[Event]) -> Vec<String> {
    seen.iter()
        .filter_map(|e| match e {
            Event::Message(Message::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn refusals_carry_any_status_headers_and_body() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::refuse(401).header("WWW-Authenticate", "Bearer realm=\"feed\""));
    server.enqueue(
        MockResponse::refuse(429)
            .header("Retry-After", "7")
            .body("slow down"),
    );
    server.enqueue(MockResponse::refuse(500).body("database down"));
    let client = Client::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_ws, events) = open(&client, &server.url());
        match ended(&until_end(&events)) {
            Ended::Failed {
                response: Some(r), ..
            } => seen.push((
                r.status(),
                r.header("www-authenticate").map(str::to_owned),
                r.header("retry-after").map(str::to_owned),
                String::from_utf8_lossy(r.body()).into_owned(),
            )),
            other => panic!("expected a refusal with its response, got {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            (
                401,
                Some("Bearer realm=\"feed\"".into()),
                None,
                String::new()
            ),
            (429, None, Some("7".into()), "slow down".into()),
            (500, None, None, "database down".into()),
        ]
    );
    server.verify();
}

#[test]
fn a_redirect_is_followed_to_the_next_scripted_connection() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::refuse(307).header("Location", &server.url_for("/moved")));
    server.enqueue(MockResponse::upgrade().send_text("you made it"));
    let (ws, events) = open(&Client::new(), &server.url_for("/old"));
    assert!(matches!(next(&events), Event::Open(_)));
    assert!(matches!(next(&events), Event::Message(Message::Text(t)) if t == "you made it"));
    let first = server.take_request(EVENT_TIMEOUT).unwrap();
    let second = server.take_request(EVENT_TIMEOUT).unwrap();
    assert_eq!((first.target(), first.connection()), ("/old", 1));
    assert_eq!((second.target(), second.connection()), ("/moved", 2));
    ws.cancel();
    server.verify();
}

#[test]
fn take_request_records_the_upgrade_as_sent() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().subprotocol("chat.v2"));
    let request = Request::builder(&server.url_for("/rooms/7?since=42"))
        .header("Authorization", "Bearer s3cret")
        .subprotocol("chat.v1")
        .subprotocol("chat.v2")
        .build()
        .unwrap();
    let (listener, events) = syncws::channel();
    let ws = Client::new().new_web_socket(request, listener);
    match next(&events) {
        Event::Open(r) => assert_eq!(r.subprotocol(), Some("chat.v2")),
        other => panic!("expected open, got {other:?}"),
    }
    let seen = server
        .take_request(EVENT_TIMEOUT)
        .expect("the upgrade request");
    assert_eq!(seen.method(), "GET");
    assert_eq!(seen.target(), "/rooms/7?since=42");
    assert_eq!(seen.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.subprotocols(), ["chat.v1", "chat.v2"]);
    assert_eq!(
        seen.extensions(),
        ["permessage-deflate; client_max_window_bits"]
    );
    assert!(server.take_request(Duration::from_millis(50)).is_none());
    ws.cancel();
    server.verify();
}

#[test]
fn a_script_sends_every_kind_of_frame_and_expects_the_clients_messages() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_text("welcome")
            .expect_text("login ann")
            .send_binary([1u8, 2, 3])
            .expect_binary([3u8, 2, 1])
            .send_fragmented("in three parts", 3)
            .expect_text_where("an ack of the fragments", |t| t.starts_with("ack"))
            .send_ping(b"p")
            .send_pong(b"unsolicited")
            .close(4000, "kicked")
            .expect_close_with(4000),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    let mut seen = Vec::new();
    loop {
        let Ok(e) = events.recv_timeout(EVENT_TIMEOUT) else {
            panic!("stuck after {seen:?}: {:?}", server.failures());
        };
        match &e {
            Event::Message(Message::Text(t)) if t == "welcome" => {
                ws.send("login ann");
            }
            Event::Message(Message::Binary(b)) => {
                assert_eq!(b, &[1, 2, 3]);
                ws.send(vec![3u8, 2, 1]);
            }
            Event::Message(Message::Text(t)) if t == "in three parts" => {
                ws.send("ack 3");
            }
            _ => {}
        }
        let end = e.is_terminal();
        seen.push(e);
        if end {
            break;
        }
    }
    assert_eq!(texts(&seen), ["welcome", "in three parts"]);
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Closing { code: 4000, reason } if reason == "kicked")),
        "{seen:?}"
    );
    assert!(matches!(ended(&seen), Ended::Closed { code: 4000, .. }));
    server.verify();
    // What connection 1 received, frame by frame: the three messages, the pong answering
    // our ping, and the client's close.
    let frames = server.received(1);
    let kinds: Vec<(u8, bool)> = frames.iter().map(|f| (f.opcode, f.fin)).collect();
    assert_eq!(
        kinds,
        [
            (MockFrame::TEXT, true),
            (MockFrame::BINARY, true),
            (MockFrame::TEXT, true),
            (MockFrame::PONG, true),
            (MockFrame::CLOSE, true),
        ]
    );
    assert_eq!(frames[0].payload, b"login ann");
    assert_eq!(frames[3].payload, b"p");
    assert_eq!(frames[4].close_code(), Some(4000));
}

#[test]
fn deflate_is_accepted_on_request_and_the_script_compares_inflated_text() {
    let server = MockServer::start().unwrap();
    let big = "compressible ".repeat(200);
    let want = big.clone();
    server.enqueue(
        MockResponse::upgrade()
            .deflate(true)
            .expect_text_where("the long text", move |t| t == want)
            .close(1000, ""),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    match next(&events) {
        Event::Open(r) => assert!(
            r.header("sec-websocket-extensions")
                .is_some_and(|v| v.starts_with("permessage-deflate")),
            "{r:?}"
        ),
        other => panic!("{other:?}"),
    }
    ws.send(big.clone());
    assert!(ended(&until_end(&events)).is_clean());
    server.verify();
    let first = &server.received(1)[0];
    assert!(first.rsv1, "the client compressed it");
    assert!(
        first.payload.len() < big.len() / 4,
        "{} bytes",
        first.payload.len()
    );
}

#[test]
fn malformed_raw_bytes_make_the_client_fail_with_1002() {
    let server = MockServer::start().unwrap();
    // Opcode 0x3 is reserved.
    server.enqueue(
        MockResponse::upgrade()
            .send_raw([0x83, 0x00])
            .expect_close_with(1002),
    );
    let (_ws, events) = open(&Client::new(), &server.url());
    match ended(&until_end(&events)) {
        Ended::Failed {
            error: Error::Protocol(e),
            ..
        } => assert_eq!(e.close_code(), 1002),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    server.verify();
}

#[test]
fn drop_tcp_mid_message_fails_the_client_without_a_close() {
    let server = MockServer::start().unwrap();
    // The header of a 100-byte text frame, 3 bytes of it, then a reset.
    server.enqueue(
        MockResponse::upgrade()
            .send_raw([0x81, 100, b'a', b'b', b'c'])
            .drop_tcp(),
    );
    let (_ws, events) = open(&Client::new(), &server.url());
    let seen = until_end(&events);
    assert!(texts(&seen).is_empty());
    let how = ended(&seen);
    assert!(
        matches!(
            how,
            Ended::Failed {
                error: Error::Io(_) | Error::UnexpectedEof,
                ..
            }
        ),
        "{how:?}"
    );
    server.verify();
}

#[test]
fn stop_reading_fills_the_clients_queue_until_send_refuses() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().stop_reading());
    let client = Client::builder().max_queue_size(256 * 1024).build();
    let (ws, events) = open(&client, &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    let chunk = vec![7u8; 64 * 1024];
    // The kernel's buffers take a few MiB; after that the queue grows to its limit and send
    // refuses. 4096 × 64 KiB = 256 MiB is far more than any loopback buffers.
    let refused = (0..4096).any(|_| !ws.send(chunk.clone()));
    assert!(refused, "send never refused: the mock kept reading");
    assert_eq!(ws.state(), State::Closing);
    ws.cancel();
    server.verify();
}

#[test]
fn throttle_paces_what_the_mock_sends() {
    let server = MockServer::start().unwrap();
    // 3000 bytes at 10 000 B/s: at least 0.3 s, whatever the machine.
    server.enqueue(
        MockResponse::upgrade()
            .throttle(10_000)
            .send_binary(vec![1u8; 3000]),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    let start = Instant::now();
    assert!(matches!(next(&events), Event::Message(Message::Binary(b)) if b.len() == 3000));
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    ws.cancel();
    server.verify();
}

#[test]
fn wait_holds_the_next_step_back() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_text("now")
            .wait(Duration::from_millis(300))
            .send_text("later"),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    assert!(matches!(next(&events), Event::Message(Message::Text(t)) if t == "now"));
    let start = Instant::now();
    assert!(matches!(next(&events), Event::Message(Message::Text(t)) if t == "later"));
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    ws.cancel();
    server.verify();
}

#[test]
fn a_server_that_ignores_pings_exercises_the_pong_timeout() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().ignore_pings().expect_ping());
    let client = Client::builder()
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(300))
        .build();
    let (_ws, events) = open(&client, &server.url());
    let how = ended(&until_end(&events)).clone();
    assert!(
        matches!(
            how,
            Ended::Failed {
                error: Error::PongTimeout { .. },
                ..
            }
        ),
        "{how:?}"
    );
    server.verify();
}

#[test]
fn a_server_that_answers_pings_keeps_the_socket_alive() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .expect_ping()
            .expect_ping()
            .expect_ping()
            .close(1000, "enough"),
    );
    let client = Client::builder()
        .ping_interval(Duration::from_millis(50))
        .pong_timeout(Duration::from_millis(500))
        .build();
    let (_ws, events) = open(&client, &server.url());
    assert!(ended(&until_end(&events)).is_clean());
    server.verify();
}

// --- The script's own failures -------------------------------------------------------------

#[test]
fn an_unexpected_message_is_reported_naming_connection_step_expected_and_got() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().send_text("hi").expect_text("hello"));
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    ws.send("bye");
    let failures = server.failures();
    assert_eq!(
        failures,
        [r#"connection 1, step 2 (expect text "hello"): got text "bye""#]
    );
    ws.cancel();
}

#[test]
fn verify_panics_on_the_tests_thread_with_the_message() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().expect_binary([1u8]));
    let (ws, events) = open(&Client::new(), &server.url());
    // verify covers the connections accepted so far: wait for this one.
    assert!(matches!(next(&events), Event::Open(_)));
    ws.send("text, not binary");
    let panic = catch_unwind(AssertUnwindSafe(|| server.verify())).expect_err("verify panics");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains(
            r#"connection 1, step 1 (expect binary (1 bytes)): got text "text, not binary""#
        ),
        "{message}"
    );
    ws.cancel();
}

#[test]
fn dropping_the_server_reports_what_verify_did_not() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .within(Duration::from_millis(200))
            .expect_text("anything"),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    let start = Instant::now();
    let panic = catch_unwind(AssertUnwindSafe(move || drop(server))).expect_err("drop panics");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message
            .contains(r#"connection 1, step 2 (expect text "anything"): got nothing within 200ms"#),
        "{message}"
    );
    assert!(start.elapsed() < EVENT_TIMEOUT, "the drop did not hang");
    ws.cancel();
}

#[test]
fn a_connection_with_nothing_enqueued_is_a_failure_unless_when_empty_says() {
    let server = MockServer::start().unwrap();
    let (_ws, events) = open(&Client::new(), &server.url_for("/surprise"));
    match ended(&until_end(&events)) {
        Ended::Failed {
            response: Some(r), ..
        } => assert_eq!(r.status(), 503),
        other => panic!("{other:?}"),
    }
    let failures = server.failures();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("connection 1, request GET /surprise: no MockResponse"),
        "{failures:?}"
    );

    server.when_empty(MockResponse::refuse(503).header("Retry-After", "1"));
    for _ in 0..2 {
        let (_ws, events) = open(&Client::new(), &server.url());
        assert!(!ended(&until_end(&events)).is_clean());
    }
    assert_eq!(server.connection_count(), 3);
    server.verify();
}

#[test]
fn the_client_closing_early_is_reported_as_what_the_step_got() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().expect_text("data"));
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    ws.close(1001, Some("going")).unwrap();
    assert_eq!(
        server.failures(),
        [r#"connection 1, step 1 (expect text "data"): got close 1001 "going""#]
    );
    // The mock answered the close, as a server does: the client ends cleanly.
    assert!(ended(&until_end(&events)).is_clean());
}

#[test]
fn a_panic_in_the_tests_own_check_is_a_failure_not_a_hang() {
    let server = std::sync::Arc::new(MockServer::start().unwrap());
    server.enqueue(
        MockResponse::upgrade().expect_text_where("anything", |_| panic!("the check blew up")),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    ws.send("hello");
    // On another thread, so that a verify that waits for ever fails the test instead.
    let (tx, rx) = std::sync::mpsc::channel();
    let theirs = server.clone();
    std::thread::spawn(move || {
        let verdict = catch_unwind(AssertUnwindSafe(|| theirs.verify()));
        let _ = tx.send(verdict.map_err(|p| p.downcast_ref::<String>().cloned()));
    });
    let Ok(verdict) = rx.recv_timeout(EVENT_TIMEOUT) else {
        // Its drop would wait for ever too.
        std::mem::forget(server);
        panic!("verify did not return: the connection's panic was never counted");
    };
    let message = verdict.expect_err("verify panics").unwrap_or_default();
    assert!(
        message.contains("connection 1: panicked: the check blew up"),
        "{message}"
    );
    ws.cancel();
}

#[test]
fn a_response_enqueued_after_the_client_connected_is_in_time() {
    use std::io::Write;
    let server = MockServer::start().unwrap();
    let mut tcp = std::net::TcpStream::connect(server.addr()).unwrap();
    // Accepted with nothing enqueued yet: the response is taken when the request head has
    // come, not when the connection was accepted.
    assert!(eventually(|| server.connection_count() == 1));
    server.enqueue(MockResponse::refuse(418));
    tcp.write_all(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    tcp.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let head = common::raw::read_head(&mut tcp).unwrap();
    assert!(head.starts_with("HTTP/1.1 418 "), "{head}");
    server.verify();
}

/// What the mock records is bounded: data payloads up to 64 MiB per connection; from the first
/// data frame past that, frames are still recorded in order but with empty payloads, while
/// control frames keep theirs (the close code stays readable).
#[test]
fn recorded_payloads_stop_at_64_mib_per_connection_and_frames_go_on() {
    const PART: usize = 8 << 20;
    const PARTS: usize = 8; // 64 MiB in all: exactly the budget
    let server = MockServer::start().unwrap();
    let mut script = MockResponse::upgrade().deflate(false);
    for _ in 0..PARTS {
        script = script.expect_binary_where("8 MiB", |b| b.len() == PART);
    }
    server.enqueue(
        script
            .expect_binary(b"x".to_vec())
            .expect_text("after")
            .expect_close_with(4001),
    );
    let (ws, events) = open(&Client::new(), &server.url());
    assert!(matches!(next(&events), Event::Open(_)));
    for i in 0..PARTS {
        let part = vec![i as u8; PART];
        ws.send_timeout(part, EVENT_TIMEOUT)
            .expect("room in the send queue");
    }
    // The queue may still hold 16 MiB: wait for room as the parts did.
    ws.send_timeout(vec![b'x'], EVENT_TIMEOUT).expect("room");
    ws.send_timeout("after", EVENT_TIMEOUT).expect("room");
    assert!(ws.close(4001, Some("done")).unwrap());
    let seen = until_end(&events);
    server.verify();
    let frames = server.received(1);
    // The client sends large messages in frames of its own size: group by what follows.
    let Some(split) = frames.len().checked_sub(3) else {
        panic!("too few frames: {seen:?}");
    };
    let (parts, tail) = frames.split_at(split);
    let whole: Vec<u8> = parts
        .iter()
        .flat_map(|f| f.payload.iter().copied())
        .collect();
    assert_eq!(
        whole.len(),
        PARTS * PART,
        "every byte of the 64 MiB is recorded"
    );
    for (i, part) in whole.chunks(PART).enumerate() {
        assert!(
            part.iter().all(|&b| b == i as u8),
            "part {i} recorded whole"
        );
    }
    let shape: Vec<(u8, usize)> = tail.iter().map(|f| (f.opcode, f.payload.len())).collect();
    assert_eq!(
        shape,
        [
            (MockFrame::BINARY, 0),
            (MockFrame::TEXT, 0),
            (MockFrame::CLOSE, 2 + "done".len()),
        ]
    );
    assert_eq!(tail[2].close_code(), Some(4001));
}
