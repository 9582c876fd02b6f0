//! Strictness against misbehaving peers (RFC 6455), proven against peers on 127.0.0.1 that
//! send exact bytes: the test kit's `MockServer` where a script says it (protocol violations by
//! raw bytes, pings, closes, refusals, a peer that stops reading), hand-written raw TCP peers
//! where the mock cannot (each says why: bytes in the same write as the 101, a malformed 101,
//! one byte at a time, a reply timed against what the client sends, the server role).

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use syncws::testing::{MockFrame, MockResponse, MockServer};
use syncws::{Accept, Client, Error, Event, Message, ProtocolError, Request, Response, Server};

fn connect(client: &Client, url: &str) -> (syncws::WebSocket, syncws::Events) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().unwrap(), listener);
    (ws, events)
}

fn expect_open(events: &syncws::Events) {
    match next(events) {
        Event::Open(r) => assert_eq!(r.status(), 101),
        e => panic!("expected Open, got {e:?}"),
    }
}

/// The next event must be the terminal failure, and nothing may follow it.
fn expect_failure(events: &syncws::Events) -> (Error, Option<Response>) {
    match next(events) {
        Event::Ended(syncws::Ended::Failed { error, response }) => {
            assert_exhausted(events);
            (error, response.map(|r| *r))
        }
        e => panic!("expected Failure, got {e:?}"),
    }
}

fn expect_message(events: &syncws::Events) -> Message {
    match next(events) {
        Event::Message(m) => m,
        e => panic!("expected Message, got {e:?}"),
    }
}

/// The client's side of a close started by the server with 1000.
fn expect_closed_1000(events: &syncws::Events) {
    assert!(matches!(next(events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
    assert_exhausted(events);
}

/// Runs a protocol violation: the mock server sends `bytes` after the upgrade and must then
/// receive the client's close frame (its only frame) and EOF right after it. Returns the close
/// code the peer received and the error the client's listener got (after exactly Open, then
/// Failure).
fn violation_with(client: &Client, bytes: Vec<u8>) -> (u16, Error) {
    let server = MockServer::start().unwrap();
    // Nothing more is sent: the client must decide on what it has.
    server.enqueue(
        MockResponse::upgrade()
            .send_raw(bytes)
            .expect_close()
            .expect_eof(),
    );
    let (ws, events) = connect(client, &server.url());
    expect_open(&events);
    let (error, response) = expect_failure(&events);
    assert!(response.is_none());
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
    let frames = server.received(1);
    assert_eq!(frames.len(), 1, "only a close frame: {frames:?}");
    (frames[0].close_code().expect("a close code"), error)
}

/// The frames a mock connection received, as (opcode, payload).
fn received(server: &MockServer, connection: usize) -> Vec<(u8, Vec<u8>)> {
    server
        .received(connection)
        .into_iter()
        .map(|f| (f.opcode, f.payload))
        .collect()
}

fn violation(bytes: Vec<u8>) -> (u16, Error) {
    violation_with(&Client::new(), bytes)
}

fn assert_protocol_violation(bytes: Vec<u8>, what: &str, expected: ProtocolError) {
    let (code, error) = violation(bytes);
    assert_eq!(code, 1002, "{what}: close code");
    assert_eq!(error.close_code(), Some(1002), "{what}");
    assert!(
        matches!(&error, Error::Protocol(e) if *e == expected),
        "{what}: {error:?}"
    );
}

fn assert_invalid_utf8(bytes: Vec<u8>, what: &str) {
    let (code, error) = violation(bytes);
    assert_eq!(code, 1007, "{what}: close code");
    assert!(matches!(error, Error::InvalidUtf8), "{what}: {error:?}");
}

// ---------------------------------------------------------------------------------------------
// Protocol violations by the server
// ---------------------------------------------------------------------------------------------

#[test]
fn masked_server_frame_is_1002() {
    let key = [1u8, 2, 3, 4];
    let mut bytes = vec![0x81, 0x80 | 5];
    bytes.extend_from_slice(&key);
    bytes.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    assert_protocol_violation(bytes, "masked frame", ProtocolError::MaskedFrameFromServer);
}

#[test]
fn reserved_bits_are_1002() {
    for (rsv, b0, expected) in [
        ("RSV1", 0xC1, ProtocolError::Rsv1WithoutDeflate),
        ("RSV2", 0xA1, ProtocolError::ReservedBits { bits: 0b010 }),
        ("RSV3", 0x91, ProtocolError::ReservedBits { bits: 0b001 }),
    ] {
        assert_protocol_violation(frame(b0, b"hi"), rsv, expected);
    }
}

#[test]
fn unknown_opcodes_are_1002() {
    assert_protocol_violation(
        frame(0x83, b"x"),
        "data opcode 3",
        ProtocolError::UnknownOpcode { opcode: 3 },
    );
    assert_protocol_violation(
        frame(0x8B, b""),
        "control opcode 0xB",
        ProtocolError::UnknownOpcode { opcode: 0xB },
    );
}

#[test]
fn control_frame_over_125_bytes_is_1002() {
    assert_protocol_violation(
        frame(0x89, &[b'p'; 126]),
        "ping with 126 bytes",
        ProtocolError::ControlFrameTooLong {
            opcode: 0x9,
            len: 126,
        },
    );
}

#[test]
fn fragmented_control_frame_is_1002() {
    assert_protocol_violation(
        frame(0x09, b"abc"),
        "ping without FIN",
        ProtocolError::FragmentedControlFrame { opcode: 0x9 },
    );
}

#[test]
fn continuation_without_message_is_1002() {
    assert_protocol_violation(
        frame(0x80, b"orphan"),
        "lone continuation",
        ProtocolError::ContinuationWithoutMessage,
    );
}

#[test]
fn new_data_frame_inside_fragmented_message_is_1002() {
    let mut bytes = frame(0x01, b"first");
    bytes.extend(frame(0x81, b"intruder"));
    assert_protocol_violation(
        bytes,
        "text inside fragmented message",
        ProtocolError::NewMessageInsideFragmented { opcode: 0x1 },
    );
}

#[test]
fn length_with_top_bit_set_is_1002() {
    let mut bytes = vec![0x82, 127];
    bytes.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    assert_protocol_violation(
        bytes,
        "64-bit length with top bit",
        ProtocolError::LengthTooLarge { len: 1 << 63 | 5 },
    );
}

#[test]
fn one_byte_close_payload_is_1002() {
    assert_protocol_violation(
        frame(0x88, &[0x03]),
        "1-byte close payload",
        ProtocolError::OneByteClosePayload,
    );
}

#[test]
fn invalid_close_codes_are_1002() {
    for code in [999u16, 1005, 1006, 1015, 2999, 5000] {
        assert_protocol_violation(
            frame(0x88, &close_payload(code, b"")),
            &format!("close {code}"),
            ProtocolError::InvalidCloseCode { code },
        );
    }
}

#[test]
fn close_reason_invalid_utf8_is_1007() {
    assert_invalid_utf8(
        frame(0x88, &close_payload(1000, b"ok\xFF\xFE")),
        "close reason",
    );
}

#[test]
fn text_message_invalid_utf8_is_1007() {
    assert_invalid_utf8(frame(0x81, b"abc\xFFdef"), "text message");
}

#[test]
fn invalid_utf8_in_first_fragment_fails_before_final_fragment() {
    // The final fragment is never sent: the close must come from the first fragment alone.
    assert_invalid_utf8(frame(0x01, b"a\xFFb"), "first fragment");
}

#[test]
fn invalid_utf8_fails_before_frame_is_complete() {
    // 100 bytes announced, 10 sent (with an invalid byte), the other 90 never come.
    let mut bytes = header(0x81, 100);
    bytes.extend_from_slice(b"abcd\xFF\xFEefgh");
    assert_invalid_utf8(bytes, "partial frame");
}

#[test]
fn oversized_frame_is_1009_before_payload_arrives() {
    let client = Client::builder().max_message_size(1000).build();
    // A 2000-byte binary frame is announced; its payload never comes.
    let (code, error) = violation_with(&client, header(0x82, 2000));
    assert_eq!(code, 1009);
    assert!(
        matches!(
            error,
            Error::MessageTooLarge {
                size: 2000,
                limit: 1000
            }
        ),
        "{error:?}"
    );
}

#[test]
fn fragmented_message_over_limit_is_1009() {
    let client = Client::builder().max_message_size(1000).build();
    // Two fragments of 600 bytes: each fits, together they do not.
    let mut bytes = frame(0x02, &[7u8; 600]);
    bytes.extend(header(0x80, 600));
    let (code, error) = violation_with(&client, bytes);
    assert_eq!(code, 1009);
    assert!(
        matches!(
            error,
            Error::MessageTooLarge {
                size: 1200,
                limit: 1000
            }
        ),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Valid behaviours
// ---------------------------------------------------------------------------------------------

#[test]
fn ping_is_answered_with_identical_pong() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_ping(b"abc")
            .close(1000, "")
            .expect_close_with(1000),
    );
    let (ws, events) = connect(&Client::new(), &server.url());
    expect_open(&events);
    expect_closed_1000(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
    assert_eq!(
        received(&server, 1),
        [
            (MockFrame::PONG, b"abc".to_vec()),
            (MockFrame::CLOSE, 1000u16.to_be_bytes().to_vec())
        ]
    );
}

#[test]
fn a_ping_flood_from_a_peer_that_does_not_read_is_bounded() {
    // Hand-written: 25 MB of pings written without reading, then every pong counted.
    // 200,000 pings of 125 bytes (25 MB) while not reading: the pongs (26 MB) cannot all fit in
    // the kernel's buffers, so the client's writer blocks; unanswered pings must then be
    // dropped instead of piling up in memory. Afterwards the peer reads what was answered.
    const PINGS: usize = 200_000;
    let (url, peer) = raw_server(|mut s| {
        let ping = frame(0x89, &[b'p'; 125]);
        let batch: Vec<u8> = ping.repeat(1000);
        for _ in 0..PINGS / 1000 {
            s.write_all(&batch).unwrap();
        }
        s.write_all(&frame(0x88, &close_payload(1000, b"")))
            .unwrap();
        let mut pongs = 0;
        loop {
            let (op, payload) = read_client_frame(&mut s);
            match op {
                0xA => {
                    assert_eq!(payload.len(), 125);
                    pongs += 1;
                }
                0x8 => return pongs,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    });
    let client = Client::builder()
        .write_timeout(Duration::from_secs(60))
        .build();
    let (ws, events) = connect(&client, &url);
    expect_open(&events);
    let pongs = peer.join().expect("raw peer");
    assert!(
        pongs > 0 && pongs < PINGS,
        "{pongs} pongs for {PINGS} pings"
    );
    assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn ping_between_fragments_is_answered_and_message_delivered_once() {
    // Hand-written: the rest of the message goes only after the pong came back.
    let (url, peer) = raw_server(|mut s| {
        let mut bytes = frame(0x01, b"Hel");
        bytes.extend(frame(0x89, b"mid"));
        s.write_all(&bytes).unwrap();
        // The pong comes back while the message is still incomplete.
        let (op, payload) = read_client_frame(&mut s);
        assert_eq!((op, payload.as_slice()), (0xA, &b"mid"[..]));
        s.write_all(&frame(0x80, b"lo")).unwrap();
        server_close(&mut s);
    });
    let (ws, events) = connect(&Client::new(), &url);
    expect_open(&events);
    assert_eq!(expect_message(&events), Message::Text("Hello".into()));
    expect_closed_1000(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().expect("raw peer");
}

#[test]
fn frame_in_same_write_as_101_is_delivered() {
    // Hand-written: the frame shares the 101's write (the mock writes the 101 alone).
    let (url, peer) = raw_listener(|mut s, key| {
        let mut bytes = accept_response(&key);
        bytes.extend(frame(0x81, b"early bird"));
        s.write_all(&bytes).unwrap();
        server_close(&mut s);
    });
    let (ws, events) = connect(&Client::new(), &url);
    expect_open(&events);
    assert_eq!(expect_message(&events), Message::Text("early bird".into()));
    expect_closed_1000(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().expect("raw peer");
}

#[test]
fn frame_trickled_one_byte_at_a_time_is_reassembled() {
    // Hand-written: one byte per write, with a pause between (the mock writes whole steps).
    // Multi-byte characters so that reads split characters as well as the header.
    let text = "héllo wörld ✓ ".repeat(12);
    assert!(text.len() > 125, "use the 16-bit length form");
    let expected = text.clone();
    let (url, peer) = raw_server(move |mut s| {
        for b in frame(0x81, text.as_bytes()) {
            s.write_all(&[b]).unwrap();
            s.flush().unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        server_close(&mut s);
    });
    let (ws, events) = connect(&Client::new(), &url);
    expect_open(&events);
    assert_eq!(expect_message(&events), Message::Text(expected));
    expect_closed_1000(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().expect("raw peer");
}

#[test]
fn frame_with_64_bit_length_arrives_intact() {
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let bytes = frame(0x82, &data);
    assert_eq!(bytes[1], 127, "uses the 64-bit length form");
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_raw(bytes)
            .close(1000, "")
            .expect_close_with(1000),
    );
    let (ws, events) = connect(&Client::new(), &server.url());
    expect_open(&events);
    assert_eq!(expect_message(&events), Message::Binary(expected));
    expect_closed_1000(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
}

#[test]
fn empty_close_is_reported_as_1005_and_answered_empty() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().close_empty().expect_close());
    let (ws, events) = connect(&Client::new(), &server.url());
    expect_open(&events);
    match next(&events) {
        Event::Closing { code, reason } => assert_eq!((code, reason.as_str()), (1005, "")),
        e => panic!("expected Closing, got {e:?}"),
    }
    match next(&events) {
        Event::Ended(syncws::Ended::Closed { code, reason, .. }) => {
            assert_eq!((code, reason.as_str()), (1005, ""))
        }
        e => panic!("expected Closed, got {e:?}"),
    }
    assert_exhausted(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
    assert_eq!(
        received(&server, 1),
        [(MockFrame::CLOSE, vec![])],
        "the reply to an empty close is empty"
    );
}

#[test]
fn server_close_1000_is_answered_automatically() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .close(1000, "bye")
            .expect_close_with(1000),
    );
    let (ws, events) = connect(&Client::new(), &server.url());
    expect_open(&events);
    match next(&events) {
        Event::Closing { code, reason } => assert_eq!((code, reason.as_str()), (1000, "bye")),
        e => panic!("expected Closing, got {e:?}"),
    }
    match next(&events) {
        Event::Ended(syncws::Ended::Closed { code, reason, .. }) => {
            assert_eq!((code, reason.as_str()), (1000, "bye"))
        }
        e => panic!("expected Closed, got {e:?}"),
    }
    assert_exhausted(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
}

// ---------------------------------------------------------------------------------------------
// Close behaviours and timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn client_waits_for_server_to_close_tcp_then_closes_after_close_timeout() {
    // Hand-written: after the close handshake this peer keeps TCP open (the mock, a polite
    // server, closes it).
    let close_timeout = Duration::from_millis(300);
    let (url, peer) = raw_server(|mut s| {
        let code = close_code(&read_client_close(&mut s));
        s.write_all(&frame(0x88, &close_payload(1000, b"")))
            .unwrap();
        // Keep TCP open: the client must give up waiting and close it itself.
        read_until_closed(&mut s);
        code
    });
    let client = Client::builder().close_timeout(Some(close_timeout)).build();
    let (ws, events) = connect(&client, &url);
    expect_open(&events);
    let closed_at = Instant::now();
    assert!(ws.close(1000, Some("done")).unwrap());
    assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
    assert!(
        closed_at.elapsed() >= close_timeout,
        "on_closed came before the close timeout although the server kept TCP open"
    );
    assert_exhausted(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(peer.join().expect("raw peer"), 1000);
}

#[test]
fn unanswered_close_fails_with_close_timeout() {
    // Hand-written: this peer reads the close and never answers (the mock answers every close).
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let (url, peer) = raw_server(move |mut s| {
        let code = close_code(&read_client_close(&mut s));
        // Never answer; keep TCP open until the test is done.
        let _ = hold.recv_timeout(EVENT_TIMEOUT);
        code
    });
    let client = Client::builder()
        .close_timeout(Some(Duration::from_millis(300)))
        .build();
    let (ws, events) = connect(&client, &url);
    expect_open(&events);
    assert!(ws.close(1000, None).unwrap());
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::CloseTimeout(_)), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    drop(release);
    assert_eq!(peer.join().expect("raw peer"), 1000);
}

#[test]
fn tcp_drop_without_close_frame_is_unexpected_eof() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().close_tcp());
    let (ws, events) = connect(&Client::new(), &server.url());
    expect_open(&events);
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::UnexpectedEof), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
}

#[test]
fn ignored_pings_fail_with_pong_timeout() {
    // Read (and ignore) pings until the client gives up and closes the connection (the mock
    // fails the script on an unmasked frame).
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .ignore_pings()
            .expect_ping()
            .expect_eof(),
    );
    let client = Client::builder()
        .ping_interval(Duration::from_millis(100))
        .build();
    let (ws, events) = connect(&client, &server.url());
    expect_open(&events);
    let (error, _) = expect_failure(&events);
    assert!(
        matches!(error, Error::PongTimeout { successful: 0, .. }),
        "{error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
    let frames = server.received(1);
    assert!(!frames.is_empty(), "no ping was sent");
    assert!(
        frames.iter().all(|f| f.opcode == MockFrame::PING),
        "only pings expected: {frames:?}"
    );
}

#[test]
fn peer_that_stops_reading_fails_with_write_timeout() {
    // Never reads; keeps the connection open until the server is dropped.
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().stop_reading());
    let client = Client::builder()
        .write_timeout(Duration::from_millis(300))
        .max_queue_size(1 << 30)
        .build();
    let (ws, events) = connect(&client, &server.url());
    expect_open(&events);
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        if !ws.send(chunk.clone()) {
            break; // the socket already failed
        }
    }
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::WriteTimeout(_)), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
}

// ---------------------------------------------------------------------------------------------
// Handshake failures
// ---------------------------------------------------------------------------------------------

/// A raw server (hand-written: these answers are malformed 101s, which the mock, a correct
/// server, never sends) answers the upgrade with `answer(key)` and closes; returns what the client's
/// listener got (which must be exactly one failure, no open).
fn handshake_failure_with(
    subprotocols: &[&str],
    answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
) -> (Error, Option<Response>) {
    handshake_failure_client(&Client::new(), subprotocols, answer)
}

fn handshake_failure_client(
    client: &Client,
    subprotocols: &[&str],
    answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
) -> (Error, Option<Response>) {
    let (url, peer) = raw_listener(move |mut s, key| {
        s.write_all(&answer(&key)).unwrap();
    });
    let mut request = Request::builder(&url);
    for p in subprotocols {
        request = request.subprotocol(*p);
    }
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request.build().unwrap(), listener);
    let failure = expect_failure(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().expect("raw peer");
    failure
}

fn handshake_failure(answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> Response {
    let (error, response) = handshake_failure_with(&[], answer);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    response.expect("the server's response")
}

/// A valid 101 head for `key` with `edit` applied to its text.
fn edited_101(key: &str, edit: impl FnOnce(String) -> String) -> Vec<u8> {
    edit(String::from_utf8(accept_response(key)).unwrap()).into_bytes()
}

/// The mock server refuses the upgrade with `refusal`; returns the response the client's
/// listener got with its failure (exactly one failure, no open).
fn refused(refusal: MockResponse) -> Response {
    let server = MockServer::start().unwrap();
    server.enqueue(refusal);
    let (ws, events) = connect(&Client::new(), &server.url());
    let (error, response) = expect_failure(&events);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    server.verify();
    response.expect("the server's response")
}

#[test]
fn status_200_with_body_is_rejected_with_response_and_body() {
    let response = refused(MockResponse::refuse(200).body("Body"));
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), b"Body");
}

#[test]
fn status_404_is_rejected() {
    let response = refused(MockResponse::refuse(404));
    assert_eq!(response.status(), 404);
    assert_eq!(response.reason(), "Not Found");
}

#[test]
fn missing_or_wrong_upgrade_header_is_rejected() {
    let response =
        handshake_failure(|key| edited_101(key, |s| s.replace("Upgrade: websocket\r\n", "")));
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("Upgrade"), None);

    let response = handshake_failure(|key| {
        edited_101(key, |s| s.replace("Upgrade: websocket", "Upgrade: Pepsi"))
    });
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("Upgrade"), Some("Pepsi"));
}

#[test]
fn connection_header_without_upgrade_token_is_rejected() {
    let response = handshake_failure(|key| {
        edited_101(key, |s| {
            s.replace("Connection: Upgrade", "Connection: keep-alive")
        })
    });
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("Connection"), Some("keep-alive"));
}

#[test]
fn wrong_accept_key_is_rejected() {
    let response = handshake_failure(|key| {
        let wrong = accept_key(&format!("{key}x"));
        edited_101(key, |s| s.replace(&accept_key(key), &wrong))
    });
    assert_eq!(response.status(), 101);
}

#[test]
fn subprotocol_not_offered_is_rejected() {
    let (error, response) = handshake_failure_with(&["chat"], |key| {
        edited_101(key, |s| {
            s.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: superchat\r\n\r\n")
        })
    });
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    let response = response.expect("response");
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("superchat"));
}

#[test]
fn extension_not_offered_is_rejected() {
    // With compression off the client offers no extension, so none may be accepted.
    let client = Client::builder().compression(false).build();
    let (error, response) = handshake_failure_client(&client, &[], |key| {
        edited_101(key, |s| {
            s.replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            )
        })
    });
    assert!(
        matches!(&error, Error::HandshakeRejected { message: m, .. } if m.contains("did not offer")),
        "{error:?}"
    );
    assert_eq!(response.expect("response").status(), 101);
}

#[test]
fn endless_response_headers_fail_without_unbounded_growth() {
    // Hand-written: the response head itself misbehaves (the mock sends correct ones).
    const CAP: usize = 64 << 20;
    let (url, peer) = raw_listener(|mut s, _key| {
        // One header line that never ends. The client must give up (and close the connection)
        // long before CAP bytes; a write error tells us it did.
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: ")
            .unwrap();
        let block = [b'a'; 16 * 1024];
        let mut written = 0;
        while written < CAP {
            if s.write_all(&block).is_err() {
                return Some(written);
            }
            written += block.len();
        }
        None
    });
    let (ws, events) = connect(&Client::new(), &url);
    let (error, response) = expect_failure(&events);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    assert!(response.is_none(), "{response:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let written = peer.join().expect("raw peer");
    assert!(
        written.is_some(),
        "the client kept reading {CAP} bytes of headers"
    );
}

#[test]
fn trickling_response_head_fails_with_read_timeout() {
    // Hand-written: the response head itself misbehaves (the mock sends correct ones).
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let (url, peer) = raw_listener(move |mut s, _key| {
        // One byte per 100 ms of a head that never ends, until the client hangs up.
        let head = b"HTTP/1.1 101 Switching Protocols\r\nX-Slow: ";
        let bytes = head.iter().copied().chain(std::iter::repeat(b'z'));
        for b in bytes {
            if s.write_all(&[b]).is_err() || hold.try_recv().is_err_and(|e| e.is_disconnected()) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let client = Client::builder()
        .handshake_timeout(Duration::from_millis(500))
        .build();
    let (ws, events) = connect(&client, &url);
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::ReadTimeout(_)), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    drop(release);
    peer.join().expect("raw peer");
}

#[test]
fn silent_server_fails_with_read_timeout() {
    // Hand-written: no response head at all (the mock always answers).
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let (url, peer) = raw_listener(move |s, _key| {
        let _ = hold.recv_timeout(EVENT_TIMEOUT);
        drop(s);
    });
    let client = Client::builder()
        .handshake_timeout(Duration::from_millis(500))
        .build();
    let (ws, events) = connect(&client, &url);
    let (error, response) = expect_failure(&events);
    assert!(matches!(error, Error::ReadTimeout(_)), "{error:?}");
    assert!(response.is_none());
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    drop(release);
    peer.join().expect("raw peer");
}

#[test]
fn connection_refused_is_io_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (ws, events) = connect(&Client::new(), &format!("ws://127.0.0.1:{port}/"));
    let (error, response) = expect_failure(&events);
    assert!(matches!(error, Error::Io(_)), "{error:?}");
    assert!(response.is_none());
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

// ---------------------------------------------------------------------------------------------
// Server role strictness
// ---------------------------------------------------------------------------------------------

/// A raw client's upgrade request with `edit` applied.
fn raw_request(port: u16, key: &str, edit: impl FnOnce(String) -> String) -> Vec<u8> {
    edit(format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ))
    .into_bytes()
}

fn raw_client(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[test]
fn server_answers_unmasked_client_frame_with_close_1002() {
    let (listener, events) = syncws::channel();
    let server = Server::bind("127.0.0.1:0", move |_| Accept::upgrade(listener.clone())).unwrap();
    let mut s = raw_client(&server);
    let port = server.local_addr().port();
    s.write_all(&raw_request(port, KEY, |r| r)).unwrap();
    let head = read_head(&mut s).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(
        header_value(&head, "Sec-WebSocket-Accept").as_deref(),
        Some(accept_key(KEY).as_str())
    );
    s.write_all(&frame(0x81, b"unmasked")).unwrap();
    let f = read_frame_raw(&mut s).expect("close frame from the server");
    assert!(!f.masked, "server frames must not be masked");
    assert_eq!(f.opcode, 0x8, "{f:?}");
    assert_eq!(close_code(&f.payload), 1002);
    assert_eof(&mut s);
    drop(s);
    expect_open(&events);
    let (error, _) = expect_failure(&events);
    assert!(
        matches!(
            error,
            Error::Protocol(ProtocolError::UnmaskedFrameFromClient)
        ),
        "{error:?}"
    );
}

/// Sends a raw request to a server that would accept any valid upgrade; returns its response
/// head (the server must close the connection after it).
fn server_refusal(edit: impl FnOnce(String) -> String) -> String {
    let (listener, events) = syncws::channel();
    let server = Server::bind("127.0.0.1:0", move |_| Accept::upgrade(listener.clone())).unwrap();
    let mut s = raw_client(&server);
    s.write_all(&raw_request(server.local_addr().port(), KEY, edit))
        .unwrap();
    let head = read_head(&mut s).unwrap();
    assert_eof(&mut s);
    // No socket was opened for the refused request.
    assert!(
        events.recv_timeout(Duration::from_millis(200)).is_err(),
        "a refused request reached the handler"
    );
    head
}

#[test]
fn server_refuses_wrong_version_with_426() {
    let head =
        server_refusal(|r| r.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"));
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert_eq!(
        header_value(&head, "Sec-WebSocket-Version").as_deref(),
        Some("13")
    );
}

#[test]
fn server_refuses_post_with_405() {
    let head = server_refusal(|r| r.replacen("GET", "POST", 1));
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
}

/// A client that echoes every message, for ordering tests.
fn echo_client(url: &str) -> syncws::WebSocket {
    let request = Request::builder(url).build().expect("request");
    Client::new().new_web_socket(
        request,
        syncws::Listener::new().on_message(|ws, m| {
            ws.send(m);
        }),
    )
}

#[test]
fn pong_goes_out_before_a_reply_queued_after_it() {
    // Hand-written: the peer's bytes are timed against what the client writes.
    // Autobahn 5.6: the ping sits between two fragments, so the reader queues the pong before
    // the listener queues its echo; both are ready when the writer wakes. Repeat to catch a
    // writer that picks whichever queue it sees first.
    for _ in 0..20 {
        let (url, peer) = raw_server(|mut s| {
            let mut bytes = frame(0x01, b"frag1");
            bytes.extend(frame(0x89, b"ping payload"));
            bytes.extend(frame(0x80, b"frag2"));
            s.write_all(&bytes).unwrap();
            let first = read_client_frame(&mut s);
            let second = read_client_frame(&mut s);
            server_close(&mut s);
            (first, second)
        });
        let ws = echo_client(&url);
        let (first, second) = peer.join().expect("raw peer");
        assert_eq!(first, (0xA, b"ping payload".to_vec()), "pong first");
        assert_eq!(second, (0x1, b"frag1frag2".to_vec()), "then the echo");
        assert!(ws.wait_finished(EVENT_TIMEOUT));
    }
}

#[test]
fn replies_queued_before_a_protocol_error_are_sent_before_the_close() {
    // Hand-written: the peer's bytes are timed against what the client writes.
    // Autobahn 3.2: a message, then a frame with RSV2, in one write. The listener's echo of
    // the message was queued before the violation was found: it must not be dropped.
    for _ in 0..20 {
        let (url, peer) = raw_server(|mut s| {
            let mut bytes = frame(0x81, b"Hello, world!");
            bytes.extend(frame(0xA1, b"Hello, world!"));
            s.write_all(&bytes).unwrap();
            let echo = read_client_frame(&mut s);
            let close = read_client_close(&mut s);
            (echo, close_code(&close))
        });
        let ws = echo_client(&url);
        let (echo, code) = peer.join().expect("raw peer");
        assert_eq!(echo, (0x1, b"Hello, world!".to_vec()));
        assert_eq!(code, 1002);
        assert!(ws.wait_finished(EVENT_TIMEOUT));
    }
}
