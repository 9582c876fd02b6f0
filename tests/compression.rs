//! permessage-deflate (RFC 7692) end to end: negotiation with the crate's own server, the wire
//! format seen by raw peers, the limits, and the window-bits-8 decision.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::raw::*;
use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use syncws::{Client, EchoServer, Error, Event, Message, ProtocolError, Request, Server};

/// A realistic JSON message of about `n` bytes.
fn json(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"type":"trade","symbol":"ACME","price":{}.{:02},"qty":{}}},"#,
            100 + i % 7,
            i % 100,
            i % 13
        ));
        i += 1;
    }
    s.push(']');
    s
}

fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate_raw(data: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

/// A raw server accepting permessage-deflate with `params` (e.g. "; server_no_context_takeover").
fn deflate_server<T: Send + 'static>(
    params: &'static str,
    script: impl FnOnce(TcpStream, String) -> T + Send + 'static,
) -> (String, std::thread::JoinHandle<T>) {
    raw_listener_head(move |mut s, key, head| {
        let mut r = String::from_utf8(accept_response(&key)).unwrap();
        r.truncate(r.len() - 2);
        r.push_str(&format!(
            "Sec-WebSocket-Extensions: permessage-deflate{params}\r\n\r\n"
        ));
        s.write_all(r.as_bytes()).unwrap();
        script(s, head)
    })
}

fn open(client: &Client, url: &str) -> (syncws::WebSocket, syncws::Events, syncws::Response) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().unwrap(), listener);
    match next(&events) {
        Event::Open(r) => (ws, events, r),
        e => panic!("expected Open, got {e:?}"),
    }
}

fn echo_round_trip(ws: &syncws::WebSocket, events: &syncws::Events) {
    let messages = [
        Message::Text(String::new()),
        Message::Text("small".into()),
        Message::Text(json(2_000)),
        Message::Text(json(200_000)),
        Message::Binary(vec![7u8; 5_000]),
        Message::Binary((0..70_000u32).map(|i| (i * 31 % 251) as u8).collect()),
        Message::Text(json(2_000)),
    ];
    for m in &messages {
        assert!(ws.send(m.clone()));
    }
    for m in &messages {
        match next(events) {
            Event::Message(got) => assert_eq!(&got, m),
            e => panic!("expected a message, got {e:?}"),
        }
    }
    assert!(ws.close(1000, None).unwrap());
    assert!(matches!(next(events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn compression_on_both_sides_is_negotiated_and_round_trips() {
    let server = EchoServer::start().unwrap();
    let (ws, events, response) = open(&Client::new(), &server.url());
    assert_eq!(
        response.header("Sec-WebSocket-Extensions"),
        Some("permessage-deflate")
    );
    echo_round_trip(&ws, &events);
}

#[test]
fn server_with_compression_off_declines_cleanly() {
    let server = EchoServer::with_builder(Server::builder().compression(false)).unwrap();
    let (ws, events, response) = open(&Client::new(), &server.url());
    assert_eq!(response.header("Sec-WebSocket-Extensions"), None);
    echo_round_trip(&ws, &events);
}

#[test]
fn client_with_compression_off_offers_nothing() {
    let server = EchoServer::start().unwrap();
    let client = Client::builder().compression(false).build();
    let (ws, events, response) = open(&client, &server.url());
    assert_eq!(response.header("Sec-WebSocket-Extensions"), None);
    echo_round_trip(&ws, &events);
}

#[test]
fn server_parameters_are_negotiated_and_honoured() {
    let builder = Server::builder()
        .client_no_context_takeover(true)
        .server_no_context_takeover(true)
        .server_max_window_bits(10)
        .client_max_window_bits(9);
    let server = EchoServer::with_builder(builder).unwrap();
    let (ws, events, response) = open(&Client::new(), &server.url());
    assert_eq!(
        response.header("Sec-WebSocket-Extensions"),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        )
    );
    echo_round_trip(&ws, &events);
}

#[test]
fn client_offers_and_compresses_only_messages_over_the_threshold() {
    let big = json(3_000);
    let expected = big.clone();
    let (url, peer) = deflate_server("", move |mut s, head| {
        let first = read_frame_raw(&mut s).unwrap();
        let second = read_frame_raw(&mut s).unwrap();
        server_close(&mut s);
        (head, first, second)
    });
    let (ws, events, _) = open(&Client::new(), &url);
    assert!(ws.send("tiny"));
    assert!(ws.send(big));
    let (head, small, large) = peer.join().unwrap();
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
        "{head}"
    );
    // Below min_compress_size (1024): plain text, RSV1 clear.
    assert!(!small.rsv1());
    assert_eq!(small.payload, b"tiny");
    // Above it: RSV1 on the (single) frame, and a deflate payload smaller than the text.
    assert!(large.rsv1());
    assert!(
        large.payload.len() < expected.len() / 3,
        "{}",
        large.payload.len()
    );
    assert_eq!(inflate_raw(&large.payload), expected.as_bytes());
    assert!(matches!(next(&events), Event::Closing { .. }));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn client_inflates_fragmented_compressed_messages() {
    let text = json(50_000);
    let compressed = deflate_raw(text.as_bytes());
    let (url, peer) = deflate_server("", move |mut s, _| {
        // RSV1 on the first frame only; three fragments; a ping in between.
        let third = compressed.len() / 3;
        s.write_all(&frame(0x41, &compressed[..third])).unwrap();
        s.write_all(&frame(0x89, b"p")).unwrap();
        s.write_all(&frame(0x00, &compressed[third..2 * third]))
            .unwrap();
        s.write_all(&frame(0x80, &compressed[2 * third..])).unwrap();
        let pong = read_client_frame(&mut s);
        assert_eq!(pong, (0xA, b"p".to_vec()));
        server_close(&mut s);
    });
    let (ws, events, _) = open(&Client::new(), &url);
    match next(&events) {
        Event::Message(Message::Text(t)) => assert_eq!(t, json(50_000)),
        e => panic!("{e:?}"),
    }
    assert!(matches!(next(&events), Event::Closing { .. }));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().unwrap();
}

/// A raw server that negotiates deflate, sends `bytes` and expects close `code` back.
fn deflate_violation(bytes: Vec<u8>, max_message_size: u64) -> (u16, Error) {
    let (url, peer) = deflate_server("", move |mut s, _| {
        let _ = s.write_all(&bytes);
        close_code(&read_client_close(&mut s))
    });
    let client = Client::builder().max_message_size(max_message_size).build();
    let (ws, events, _) = open(&client, &url);
    let error = match next(&events) {
        Event::Ended(syncws::Ended::Failed { error, .. }) => error,
        e => panic!("expected Failure, got {e:?}"),
    };
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    (peer.join().unwrap(), error)
}

#[test]
fn rsv1_on_continuation_or_control_frames_is_1002() {
    let compressed = deflate_raw(b"hello hello hello");
    let mut bytes = frame(0x41, &compressed[..4]);
    bytes.extend(frame(0xC0, &compressed[4..]));
    let (code, e) = deflate_violation(bytes, 1 << 20);
    assert_eq!(code, 1002);
    assert!(
        matches!(e, Error::Protocol(ProtocolError::Rsv1OnContinuation)),
        "{e:?}"
    );
    let (code, e) = deflate_violation(frame(0xC9, b""), 1 << 20);
    assert_eq!(code, 1002);
    assert!(
        matches!(
            e,
            Error::Protocol(ProtocolError::Rsv1OnControlFrame { opcode: 0x9 })
        ),
        "{e:?}"
    );
}

#[test]
fn corrupt_compressed_data_is_1002() {
    let (code, e) = deflate_violation(frame(0xC1, &[0xff, 0xff, 0xff, 0xff, 0xff]), 1 << 20);
    assert_eq!(code, 1002);
    assert!(
        matches!(
            e,
            Error::Protocol(ProtocolError::InvalidCompressedData { .. })
        ),
        "{e:?}"
    );
}

#[test]
fn small_message_inflating_past_the_limit_is_1009() {
    // 4 MiB of zeros deflate to about 4 KiB; the limit is 1 MiB.
    let bomb = deflate_raw(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 8 * 1024, "{}", bomb.len());
    let (code, e) = deflate_violation(frame(0xC2, &bomb), 1 << 20);
    assert_eq!(code, 1009);
    assert!(
        matches!(e, Error::MessageTooLarge { size, limit: 1_048_576 } if size == (1 << 20) + 1),
        "{e:?}"
    );
}

#[test]
fn deflate_bomb_of_gigabytes_stops_at_the_default_limit() {
    // Once the window holds zeros, each compressed MiB of zeros is the same ~1 KiB block, so
    // a stream that would inflate to 4 GiB is built from repeats. The client (default limit
    // 64 MiB) must stop at 64 MiB + 1 byte and answer 1009 while the peer is still sending.
    let mut c = Compress::new(Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut first = Vec::with_capacity(1 << 20);
    c.compress_vec(&zeros, &mut first, FlushCompress::Sync)
        .unwrap();
    let mut block = Vec::with_capacity(1 << 20);
    c.compress_vec(&zeros, &mut block, FlushCompress::Sync)
        .unwrap();
    let (url, peer) = deflate_server("", move |mut s, _| {
        let mut sent = first.len();
        s.write_all(&frame(0x42, &first)).unwrap();
        // Up to 4095 more MiB, as continuation frames of 64 blocks each.
        let chunk: Vec<u8> = block.repeat(64);
        for _ in 0..(4095 / 64) {
            if s.write_all(&frame(0x00, &chunk)).is_err() {
                break;
            }
            sent += chunk.len();
            s.set_nonblocking(true).unwrap();
            let mut probe = [0u8; 1];
            let answered = matches!(s.peek(&mut probe), Ok(n) if n > 0);
            s.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
        }
        let code = close_code(&read_client_close(&mut s));
        (code, sent)
    });
    let (ws, events, _) = open(&Client::new(), &url);
    let error = match next(&events) {
        Event::Ended(syncws::Ended::Failed { error, .. }) => error,
        e => panic!("expected Failure, got {e:?}"),
    };
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let (code, sent) = peer.join().unwrap();
    assert_eq!(code, 1009);
    let limit = 64u64 << 20;
    assert!(
        matches!(error, Error::MessageTooLarge { size, limit: l } if l == limit && size == limit + 1),
        "{error:?}"
    );
    assert!(
        sent < 4 << 20,
        "the peer sent {sent} bytes before the client gave up"
    );
}

#[test]
fn window_bits_8_is_accepted_and_messages_go_out_uncompressed() {
    // zlib cannot compress with a 256-byte window: the client keeps the extension (it can
    // still inflate anything) but sends every message uncompressed, which RFC 7692 allows.
    let big = json(3_000);
    let expected = big.clone();
    let (url, peer) = deflate_server("; client_max_window_bits=8", move |mut s, _| {
        let f = read_frame_raw(&mut s).unwrap();
        server_close(&mut s);
        f
    });
    let (ws, events, response) = open(&Client::new(), &url);
    assert!(response.header("Sec-WebSocket-Extensions").is_some());
    assert!(ws.send(big));
    let f = peer.join().unwrap();
    assert!(!f.rsv1());
    assert_eq!(f.payload, expected.as_bytes());
    assert!(matches!(next(&events), Event::Closing { .. }));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn server_role_with_window_bits_8_sends_uncompressed_and_otherwise_compresses() {
    let server = EchoServer::start().unwrap();
    for (offer, compressed) in [
        ("permessage-deflate; server_max_window_bits=8", false),
        ("permessage-deflate", true),
    ] {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut s).unwrap();
        let ext = header_value(&head, "Sec-WebSocket-Extensions").expect("accepted");
        assert_eq!(
            ext.contains("server_max_window_bits=8"),
            !compressed,
            "{ext}"
        );
        // A masked, uncompressed 3000-byte text message.
        let text = json(3_000);
        let key = [1u8, 2, 3, 4];
        let mut msg = vec![0x81, 0x80 | 126];
        msg.extend_from_slice(&(text.len() as u16).to_be_bytes());
        msg.extend_from_slice(&key);
        msg.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
        s.write_all(&msg).unwrap();
        let echo = read_frame_raw(&mut s).unwrap();
        assert!(!echo.masked);
        assert_eq!(echo.rsv1(), compressed, "{offer}");
        let payload = if compressed {
            inflate_raw(&echo.payload)
        } else {
            echo.payload
        };
        assert_eq!(payload, text.as_bytes());
        let mut rest = Vec::new();
        drop(s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
        let _ = s.read_to_end(&mut rest);
    }
}

/// An offer whose window bits are not plain digits is declined: the upgrade goes through
/// without compression (the offer after it, if valid, is taken instead).
#[test]
fn server_declines_offers_with_window_bits_that_are_not_plain_digits() {
    let server = EchoServer::start().unwrap();
    for (offer, answer) in [
        ("permessage-deflate; server_max_window_bits=+9", None),
        ("permessage-deflate; client_max_window_bits=09", None),
        ("permessage-deflate; server_max_window_bits=\" 9\"", None),
        ("permessage-deflate; server_max_window_bits=9.0", None),
        (
            "permessage-deflate; server_max_window_bits=09, permessage-deflate; \
             server_max_window_bits=\"9\"",
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
    ] {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut s).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{offer}: {head}");
        assert_eq!(
            header_value(&head, "Sec-WebSocket-Extensions").as_deref(),
            answer,
            "{offer}"
        );
    }
}

#[test]
fn bad_extension_responses_fail_the_handshake_naming_the_problem() {
    for (params, needle) in [
        ("; foo", "foo"),
        ("; server_max_window_bits=7", "server_max_window_bits=7"),
        ("; server_max_window_bits=16", "16"),
        ("; client_max_window_bits", "client_max_window_bits"),
        (
            "; server_no_context_takeover; server_no_context_takeover",
            "twice",
        ),
        (", permessage-deflate", "twice"),
        (", x-webkit-deflate-frame", "x-webkit-deflate-frame"),
        // RFC 7692 §7.1.2 and RFC 6455 §9.1: plain digits, a token once unquoted.
        ("; server_max_window_bits=+9", "server_max_window_bits=+9"),
        ("; client_max_window_bits=09", "client_max_window_bits=09"),
        (
            "; server_max_window_bits=\"9.0\"",
            "server_max_window_bits=9.0",
        ),
        ("; server_max_window_bits=\" 9\"", "not a token"),
        (";", "parameter name"),
    ] {
        let (url, peer) = deflate_server(params, |_s, _| ());
        let (listener, events) = syncws::channel();
        let ws = Client::new().new_web_socket(Request::builder(&url).build().unwrap(), listener);
        match next(&events) {
            Event::Ended(syncws::Ended::Failed {
                error: Error::HandshakeRejected { message: m, .. },
                response: Some(r),
            }) => {
                assert!(m.contains(needle), "{params}: {m}");
                assert_eq!(r.status(), 101);
            }
            e => panic!("{params}: expected a handshake failure, got {e:?}"),
        }
        assert_exhausted(&events);
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        peer.join().unwrap();
    }
}

#[test]
fn queue_size_counts_uncompressed_bytes() {
    // The server holds the upgrade until the test has queued everything, so nothing can have
    // been written when queue_size is read.
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let server = Server::bind("127.0.0.1:0", move |_| {
        let _ = release_rx.recv_timeout(EVENT_TIMEOUT);
        syncws::Accept::upgrade(syncws::Listener::new().on_message(|ws, m| {
            ws.send(m);
        }))
    })
    .unwrap();
    let (listener, events) = syncws::channel();
    let ws =
        Client::new().new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    let text = json(100_000);
    // Queued while connecting: nothing is written yet, so every byte is still counted.
    for _ in 0..10 {
        assert!(ws.send(text.as_str()));
    }
    assert_eq!(ws.queue_size(), 10 * text.len() as u64);
    release_tx.send(()).unwrap();
    assert!(matches!(next(&events), Event::Open(_)));
    for _ in 0..10 {
        assert!(matches!(next(&events), Event::Message(Message::Text(t)) if t == text));
    }
    // Once the socket is finished its writer is gone: everything was written, and what was
    // subtracted must equal what was added, the uncompressed sizes.
    assert!(ws.close(1000, None).unwrap());
    assert!(matches!(next(&events), Event::Closing { .. }));
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { .. })
    ));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.queue_size(), 0);
}
