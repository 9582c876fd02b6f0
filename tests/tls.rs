//! wss-specific behaviour: the TLS session sits behind a short lock so that a reader blocked
//! waiting for data never blocks the writer (src/driver/transport/).
//!
//! Every test here runs under whichever TLS backend the build has (`tests/common/tls.rs` makes
//! syncws's clients and servers; the tests' own rustls plays the hand-written peers): `cargo test --test tls`
//! for native-tls, `cargo test --no-default-features --features rustls --test tls` for rustls.
//! Tests that only one backend can pass are cfg-gated and say why.
#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::*;
use crossbeam_channel::{Receiver, Sender};
use syncws::{
    Accept, ChannelListener, Client, EchoServer, Error, Event, Listener, Message, Request,
    Response, Server, ServerBuilder, State, WebSocket, WebSocketListener,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A server-side listener that forwards every callback to a channel and hands out the socket.
struct Tap {
    events: ChannelListener,
    sockets: Sender<WebSocket>,
}

impl WebSocketListener for Tap {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        let _ = self.sockets.send(ws.clone());
        self.events.on_open(ws, response);
    }
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.events.on_message(ws, message);
    }
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.on_closing(ws, code, reason);
    }
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.on_closed(ws, code, reason);
    }
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {
        self.events.on_failure(ws, error, response);
    }
}

/// A server whose sockets report to channels: (server, server-side sockets, server-side events).
fn tap_server(builder: ServerBuilder) -> (Server, Receiver<WebSocket>, syncws::Events) {
    let (listener, events) = syncws::channel();
    let (sockets_tx, sockets) = crossbeam_channel::unbounded();
    let server = builder
        .bind("127.0.0.1:0", move |_req| {
            Accept::upgrade(Tap {
                events: listener.clone(),
                sockets: sockets_tx.clone(),
            })
        })
        .expect("bind");
    (server, sockets, events)
}

fn tls_client(tls: &TestTls) -> Client {
    tls.client().build()
}

fn request(url: &str) -> Request {
    Request::builder(url).build().expect("request")
}

fn expect_open(events: &syncws::Events) {
    match next(events) {
        Event::Open(r) => assert_eq!(r.status(), 101),
        e => panic!("expected Open, got {e:?}"),
    }
}

fn expect_message(events: &syncws::Events) -> Message {
    match next(events) {
        Event::Message(m) => m,
        e => panic!("expected Message, got {e:?}"),
    }
}

fn expect_failure(events: &syncws::Events) -> Error {
    match next(events) {
        Event::Ended(syncws::Ended::Failed { error, .. }) => error,
        e => panic!("expected Failure, got {e:?}"),
    }
}

fn expect_closing(events: &syncws::Events, want_code: u16, want_reason: &str) {
    match next(events) {
        Event::Closing { code, reason } => {
            assert_eq!((code, reason.as_str()), (want_code, want_reason))
        }
        e => panic!("expected Closing {want_code}, got {e:?}"),
    }
}

fn expect_closed(events: &syncws::Events, want_code: u16) {
    match next(events) {
        Event::Ended(syncws::Ended::Closed { code, .. }) => assert_eq!(code, want_code),
        e => panic!("expected Closed {want_code}, got {e:?}"),
    }
}

/// Closes a client socket gracefully and checks the whole close sequence.
fn close_cleanly(ws: &WebSocket, events: &syncws::Events) {
    assert!(ws.close(1000, None).unwrap());
    expect_closing(events, 1000, "");
    expect_closed(events, 1000);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(events);
}

/// ASCII text of exactly `len` bytes, varied so that reordering or corruption shows.
fn text_of(len: usize, seed: usize) -> String {
    (0..len)
        .map(|i| (b'a' + ((i * 7 + seed) % 26) as u8) as char)
        .collect()
}

fn bytes_of(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed * 17) % 251) as u8)
        .collect()
}

fn numbered(i: usize) -> String {
    format!("message #{i:04}")
}

/// A WebSocket frame as a server sends it (unmasked).
fn server_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![first_byte, payload.len() as u8];
    f.extend_from_slice(payload);
    f
}

fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// Reads an HTTP request head from `stream` and returns it as text.
fn read_head(stream: &mut impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too long"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Answers an upgrade request read from `stream` with a valid 101.
fn upgrade_by_hand(stream: &mut (impl Read + Write)) -> std::io::Result<()> {
    let head = read_head(stream)?;
    let key = header_value(&head, "Sec-WebSocket-Key")
        .ok_or_else(|| std::io::Error::other("no Sec-WebSocket-Key"))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

// ---------------------------------------------------------------------------------------------
// 1. Echo round trip with varied sizes
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_echo_round_trip_of_varied_sizes_text_and_binary_in_order() {
    let tls = test_tls();
    // Past the server role's 1 MiB defaults: this echoes 1 MiB messages, many queued at once.
    let builder = tls
        .server()
        .max_message_size(4 << 20)
        .max_queue_size(64 << 20);
    let server = EchoServer::with_builder(builder).unwrap();
    assert!(server.url().starts_with("wss://"));
    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);

    let sizes = [0usize, 1, 125, 126, 65535, 65536, 1 << 20];
    let mut sent = Vec::new();
    for round in 0..2 {
        for (i, &size) in sizes.iter().enumerate() {
            let seed = round * 100 + i;
            sent.push(Message::Text(text_of(size, seed)));
            sent.push(Message::Binary(bytes_of(size, seed)));
        }
    }
    // Queued while connecting: they go out right after the handshake.
    for m in &sent {
        assert!(ws.send(m.clone()));
    }
    expect_open(&events);
    for (i, want) in sent.iter().enumerate() {
        let got = expect_message(&events);
        assert!(
            &got == want,
            "message {i}: expected {} ({} bytes), got {} ({} bytes)",
            if want.as_text().is_some() {
                "text"
            } else {
                "binary"
            },
            want.len(),
            if got.as_text().is_some() {
                "text"
            } else {
                "binary"
            },
            got.len()
        );
    }
    close_cleanly(&ws, &events);
}

// ---------------------------------------------------------------------------------------------
// 2. A reader blocked in read never blocks the writer
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_client_writes_while_its_reader_is_blocked_waiting_for_a_silent_server() {
    const N: usize = 1000;
    let tls = test_tls();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Vec<String>>(1);
    let server = tls
        .server()
        .bind("127.0.0.1:0", move |_req| {
            let done_tx = done_tx.clone();
            let mut got = Vec::new();
            // Never sends anything: the client's reader has nothing to read.
            Accept::upgrade(Listener::new().on_message(move |_ws, m| {
                got.push(m.as_text().unwrap_or("<binary>").to_owned());
                if got.len() == N {
                    let _ = done_tx.send(std::mem::take(&mut got));
                }
            }))
        })
        .unwrap();

    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    // The reader thread is now blocked reading from a server that never sends.
    for i in 0..N {
        assert!(ws.send(numbered(i)));
    }
    let got = done_rx
        .recv_timeout(EVENT_TIMEOUT)
        .expect("the server did not receive all 1000 messages: the writer is blocked");
    let want: Vec<String> = (0..N).map(numbered).collect();
    assert_eq!(got, want);
    // Nothing came from the server.
    assert_exhausted(&events);
    close_cleanly(&ws, &events);
}

#[test]
fn wss_server_writes_while_its_reader_is_blocked_waiting_for_a_silent_client() {
    const N: usize = 1000;
    let tls = test_tls();
    let server = tls
        .server()
        .bind("127.0.0.1:0", |_req| {
            Accept::upgrade(Listener::new().on_open(|ws, _| {
                for i in 0..N {
                    assert!(ws.send(numbered(i)));
                }
            }))
        })
        .unwrap();

    let (listener, events) = syncws::channel();
    // The client never sends: the server's reader stays blocked in read throughout.
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    for i in 0..N {
        assert_eq!(expect_message(&events), Message::Text(numbered(i)));
    }
    assert_exhausted(&events);
    close_cleanly(&ws, &events);
}

// ---------------------------------------------------------------------------------------------
// 3. Full duplex
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_full_duplex_both_sides_send_500_concurrently() {
    const N: usize = 500;
    let tls = test_tls();
    let (server, sockets, server_events) = tap_server(tls.server());
    let payload = |from: &str, i: usize| format!("{from} {i:04} {}", text_of(2048, i));

    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let server_ws = sockets.recv_timeout(EVENT_TIMEOUT).expect("server socket");
    expect_open(&server_events);

    // Both senders start together.
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (s, b) = (server_ws.clone(), start.clone());
    let server_sender = thread::spawn(move || {
        b.wait();
        (0..N).all(|i| s.send(payload("server", i)))
    });
    let (c, b) = (ws.clone(), start);
    let client_sender = thread::spawn(move || {
        b.wait();
        (0..N).all(|i| c.send(payload("client", i)))
    });

    // Read both directions at once so neither side's events pile up unread.
    let server_side = thread::spawn(move || {
        (0..N)
            .map(|_| match next(&server_events) {
                Event::Message(m) => m,
                e => panic!("server expected a message, got {e:?}"),
            })
            .collect::<Vec<Message>>()
    });
    for i in 0..N {
        assert_eq!(
            expect_message(&events),
            Message::Text(payload("server", i)),
            "client got a wrong message at {i}"
        );
    }
    let server_got = server_side.join().expect("server side reader");
    for (i, m) in server_got.into_iter().enumerate() {
        assert_eq!(
            m,
            Message::Text(payload("client", i)),
            "server got a wrong message at {i}"
        );
    }
    assert!(server_sender.join().unwrap());
    assert!(client_sender.join().unwrap());
    close_cleanly(&ws, &events);
}

// ---------------------------------------------------------------------------------------------
// 4, 5. Certificate trust and hostname verification
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_untrusted_self_signed_certificate_fails_with_tls_error() {
    let tls = test_tls();
    let server = EchoServer::with_builder(tls.server()).unwrap();
    let (listener, events) = syncws::channel();
    // Default client: system trust roots, which do not include the test certificate.
    let ws = Client::new().new_web_socket(request(&server.url()), listener);
    let error = expect_failure(&events);
    assert!(
        matches!(error, Error::Tls(_)),
        "expected Error::Tls, got {error:?}"
    );
    assert!(
        error.to_string().contains("TLS"),
        "Display should mention TLS: {error}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_exhausted(&events);
}

#[test]
fn wss_hostname_not_in_certificate_fails_with_tls_error() {
    let tls = test_tls();
    let client = tls_client(&tls);

    // Control: the same connector accepts the same certificate under a name it carries.
    let good = EchoServer::with_builder(tls.server()).unwrap();
    let url = format!("wss://127.0.0.1:{}/", good.local_addr().port());
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    expect_open(&events);
    close_cleanly(&ws, &events);

    // 127.0.0.2 is loopback on Linux but not in the certificate (localhost, 127.0.0.1).
    let bad = tls
        .server()
        .bind("127.0.0.2:0", |_req| Accept::upgrade(Listener::new()))
        .expect("bind 127.0.0.2 (Linux loopback)");
    let url = format!("wss://127.0.0.2:{}/", bad.local_addr().port());
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    let error = expect_failure(&events);
    assert!(
        matches!(error, Error::Tls(_)),
        "expected Error::Tls, got {error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
}

// ---------------------------------------------------------------------------------------------
// 6. cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_cancel_unblocks_a_reader_waiting_for_data() {
    let tls = test_tls();
    let (server, sockets, server_events) = tap_server(tls.server());
    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let _server_ws = sockets.recv_timeout(EVENT_TIMEOUT).expect("server socket");
    expect_open(&server_events);
    // The server never sends: the client's reader is blocked in read.
    assert_exhausted(&events);
    ws.cancel();
    let error = expect_failure(&events);
    assert!(
        matches!(error, Error::Canceled),
        "expected Canceled, got {error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert!(!ws.send("too late"));
    assert_exhausted(&events);
    // The server side sees the connection end too.
    match next(&server_events) {
        Event::Ended(syncws::Ended::Failed { .. }) => {}
        e => panic!("server expected Failure, got {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Close handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_client_initiated_close_handshake() {
    let tls = test_tls();
    let (server, sockets, server_events) = tap_server(tls.server());
    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let server_ws = sockets.recv_timeout(EVENT_TIMEOUT).expect("server socket");
    expect_open(&server_events);

    assert!(ws.close(1000, Some("client bye")).unwrap());
    expect_closing(&events, 1000, "");
    expect_closed(&events, 1000);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
    assert_exhausted(&events);

    expect_closing(&server_events, 1000, "client bye");
    expect_closed(&server_events, 1000);
    assert!(server_ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(server_ws.state(), State::Closed);
}

#[test]
fn wss_server_initiated_close_handshake() {
    let tls = test_tls();
    let (server, sockets, server_events) = tap_server(tls.server());
    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let server_ws = sockets.recv_timeout(EVENT_TIMEOUT).expect("server socket");
    expect_open(&server_events);

    assert!(server_ws.close(1000, Some("server bye")).unwrap());
    expect_closing(&events, 1000, "server bye");
    expect_closed(&events, 1000);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
    assert_exhausted(&events);

    expect_closing(&server_events, 1000, "");
    expect_closed(&server_events, 1000);
    assert!(server_ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(server_ws.state(), State::Closed);
}

// ---------------------------------------------------------------------------------------------
// 8. Protocol violation from a raw TLS peer
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_protocol_violation_is_answered_with_close_1002_over_tls() {
    let tls = test_tls();
    let (peer_tx, peer_rx) = crossbeam_channel::bounded::<Result<Vec<u8>, String>>(1);
    let (url, peer) = peer_server(&tls, None, move |ssl| {
        let result = (|| -> Result<Vec<u8>, String> {
            let mut tls = ssl.map_err(|e| e.to_string())?;
            tls.get_ref()
                .set_write_timeout(Some(EVENT_TIMEOUT))
                .map_err(|e| e.to_string())?;
            upgrade_by_hand(&mut tls).map_err(|e| e.to_string())?;
            // FIN + RSV2 + text opcode, no extension negotiated: a protocol violation.
            tls.write_all(&server_frame(0x80 | 0x20 | 0x1, b"hi"))
                .map_err(|e| e.to_string())?;
            tls.flush().map_err(|e| e.to_string())?;
            // The client's close frame: 0x88, masked length 2, 4-byte mask, 2-byte code.
            let mut frame = [0u8; 8];
            tls.read_exact(&mut frame).map_err(|e| e.to_string())?;
            Ok(frame.to_vec())
            // Dropping the stream closes TCP, which lets the client finish.
        })();
        let _ = peer_tx.send(result);
    });

    let (listener, events) = syncws::channel();
    let ws = tls_client(&tls).new_web_socket(request(&url), listener);
    expect_open(&events);

    let frame = peer_rx
        .recv_timeout(EVENT_TIMEOUT)
        .expect("raw peer did not finish")
        .expect("raw peer failed");
    assert_eq!(
        frame[0], 0x88,
        "expected a FIN close frame, got {frame:02x?}"
    );
    assert_eq!(
        frame[1],
        0x80 | 2,
        "expected a masked 2-byte payload, got {frame:02x?}"
    );
    let mask = &frame[2..6];
    let code = u16::from_be_bytes([frame[6] ^ mask[0], frame[7] ^ mask[1]]);
    assert_eq!(code, 1002);

    let error = expect_failure(&events);
    assert!(
        matches!(
            error,
            Error::Protocol(syncws::ProtocolError::ReservedBits { bits: 0b010 })
        ),
        "expected Protocol, got {error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
    peer.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 9. wss against a plain ws server
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_client_against_plain_ws_server_fails_instead_of_hanging() {
    // The server waits a long time for a valid request, so only the client's own handling
    // (TLS failure or its 1 s read timeout) can end this within EVENT_TIMEOUT.
    let server =
        EchoServer::with_builder(Server::builder().handshake_timeout(Duration::from_secs(60)))
            .unwrap();
    assert!(server.url().starts_with("ws://"));
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let tls = test_tls();
    let client = tls
        .client()
        .handshake_timeout(Duration::from_secs(1))
        .build();
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    let error = expect_failure(&events);
    assert!(
        matches!(error, Error::Tls(_) | Error::Io(_)),
        "expected Error::Tls or Error::Io, got {error:?}"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
}

// ---------------------------------------------------------------------------------------------
// Hardening: certificate dates, client certificates, close_notify in both roles
// ---------------------------------------------------------------------------------------------

/// A masked client frame (zero mask: the payload goes as is).
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![first_byte, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// Reads one frame's first byte and (unmasked) payload.
fn read_any_frame(stream: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    stream.read_exact(&mut h)?;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        stream.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        stream.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    let mut key = [0u8; 4];
    if masked {
        stream.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    Ok((h[0], payload))
}

/// The raw TLS peers' stream: rustls (the tests' own), over one TCP connection.
type PeerStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// Reads until the peer ends the TLS session; true when it sent close_notify (an orderly
/// end: rustls reads 0 bytes after it), false for a bare TCP close or a reset (an error).
fn ends_with_close_notify(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Ends our side of a peer's TLS session in order: close_notify, then TCP's FIN.
fn end_session(s: &mut PeerStream) {
    s.conn.send_close_notify();
    let _ = s.flush();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
}

/// A TLS server of the tests' own (rustls) on a fresh port for one connection, presenting
/// `tls`'s certificate; with `client_ca`, it requires a client certificate issued by it. The
/// script gets the stream once the handshake is done, or the handshake's error.
fn peer_server<T: Send + 'static>(
    tls: &TestTls,
    client_ca: Option<&[u8]>,
    script: impl FnOnce(std::io::Result<PeerStream>) -> T + Send + 'static,
) -> (String, std::thread::JoinHandle<T>) {
    let config = rustls_server_config(tls, client_ca);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let handshake = (|| {
            let mut conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)?;
            }
            Ok(rustls::StreamOwned::new(conn, tcp))
        })();
        script(handshake)
    });
    (url, handle)
}

#[test]
fn wss_expired_certificate_fails_with_a_tls_error_that_says_so() {
    let tls = expired_test_tls();
    let server = EchoServer::with_builder(tls.server()).unwrap();
    let (listener, events) = syncws::channel();
    let _ws = tls_client(&tls).new_web_socket(request(&server.url()), listener);
    match expect_failure(&events) {
        Error::Tls(message) => assert!(message.contains("expired"), "{message}"),
        e => panic!("expected a TLS error, got {e:?}"),
    }
}

#[test]
fn wss_client_certificate_is_presented_to_a_server_that_requires_one() {
    let now = unix_now();
    let server_tls = test_tls();
    let client_id = issue("syncws-test-client", now - 60, now + 86_400);
    let connector = |with_identity: bool| {
        if with_identity {
            client_with_identity(&server_tls.ca, &client_id).build()
        } else {
            client_trusting(&server_tls.ca).build()
        }
    };

    // With the identity: the server sees the client's certificate and echoes one message.
    let presented = certs(&client_id.chain).remove(0);
    let (url, peer) = peer_server(&server_tls, Some(&client_id.ca), move |ssl| {
        let mut ssl = ssl.expect("TLS with a client certificate");
        let seen = ssl.conn.peer_certificates().expect("a client certificate")[0].clone();
        upgrade_by_hand(&mut ssl).unwrap();
        let (_, payload) = read_any_frame(&mut ssl).unwrap();
        ssl.write_all(&server_frame(0x81, &payload)).unwrap();
        seen == presented
    });
    let (listener, events) = syncws::channel();
    let ws = connector(true).new_web_socket(request(&url), listener);
    expect_open(&events);
    assert!(ws.send("hello"));
    assert_eq!(expect_message(&events), Message::Text("hello".into()));
    assert!(peer.join().unwrap(), "the server saw another certificate");
    ws.cancel();

    // Without it: the server refuses the TLS session and the socket fails before it opens.
    let (url, peer) = peer_server(&server_tls, Some(&client_id.ca), |ssl| ssl.is_err());
    let (listener, events) = syncws::channel();
    let _ws = connector(false).new_web_socket(request(&url), listener);
    let error = expect_failure(&events);
    assert!(matches!(error, Error::Tls(_) | Error::Io(_)), "{error:?}");
    assert!(
        peer.join().unwrap(),
        "the server accepted a client without a certificate"
    );
}

#[test]
fn wss_server_sends_close_notify_after_a_close_it_started() {
    let tls = test_tls();
    let server = tls
        .server()
        .bind("127.0.0.1:0", |_| {
            Accept::upgrade(Listener::new().on_open(|ws, _| {
                let _ = ws.close(1000, Some("bye"));
            }))
        })
        .unwrap();
    let tcp = TcpStream::connect(server.local_addr()).unwrap();
    tcp.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let conn = rustls::ClientConnection::new(
        rustls_client_config(&tls.ca, None),
        "localhost".try_into().unwrap(),
    )
    .unwrap();
    let mut ssl = rustls::StreamOwned::new(conn, tcp);
    ssl.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut ssl).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (b0, payload) = read_any_frame(&mut ssl).unwrap();
    assert_eq!((b0, &payload[..2]), (0x88, &1000u16.to_be_bytes()[..]));
    ssl.write_all(&masked_frame(0x88, &1000u16.to_be_bytes()))
        .unwrap();
    // The server closes the connection first (RFC 6455 §7.1.1), in order: close_notify.
    assert!(
        ends_with_close_notify(&mut ssl),
        "the server skipped close_notify"
    );
}

#[test]
fn wss_client_sends_close_notify_at_the_end_of_a_clean_close() {
    let tls = test_tls();
    let (url, peer) = peer_server(&tls, None, |ssl| {
        let mut ssl = ssl.unwrap();
        upgrade_by_hand(&mut ssl).unwrap();
        ssl.write_all(&server_frame(0x88, &1000u16.to_be_bytes()))
            .unwrap();
        let (b0, _) = read_any_frame(&mut ssl).unwrap();
        assert_eq!(b0, 0x88);
        // As a server does: close_notify, then TCP's FIN; then see how the client ends.
        end_session(&mut ssl);
        ends_with_close_notify(&mut ssl)
    });
    let client = tls_client(&tls);
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    expect_open(&events);
    expect_closing(&events, 1000, "");
    expect_closed(&events, 1000);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(peer.join().unwrap(), "the client skipped close_notify");
}

#[test]
fn wss_client_ends_the_session_after_the_close_handshake_when_the_server_waits_for_it() {
    // TLS cannot half-close, so some servers (Python `websockets` among them) wait, after the
    // close handshake, for the client to end the session. A client that waited for the server
    // instead would wait out the server's close timeout.
    let tls = test_tls();
    let (url, peer) = peer_server(&tls, None, |ssl| {
        let mut ssl = ssl.unwrap();
        upgrade_by_hand(&mut ssl).unwrap();
        let (b0, payload) = read_any_frame(&mut ssl).unwrap();
        assert_eq!(b0, 0x88);
        ssl.write_all(&server_frame(0x88, &payload[..2])).unwrap();
        // Wait (up to the read timeout) for the client to end the session; never close first.
        ends_with_close_notify(&mut ssl)
    });
    let client = tls_client(&tls);
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    expect_open(&events);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&events, 1000, "");
    expect_closed(&events, 1000);
    assert!(
        peer.join().unwrap(),
        "the client never ended the TLS session"
    );
}

// ---------------------------------------------------------------------------------------------
// Either backend: how the peer ends the session, and a key update from the peer
// ---------------------------------------------------------------------------------------------

#[test]
fn wss_peer_ending_the_session_without_a_close_frame_fails_with_unexpected_eof() {
    // With close_notify (the TLS session ends in order) or without (TCP just closes): either
    // way no close frame came, which is what the socket reports.
    for with_close_notify in [true, false] {
        let tls = test_tls();
        let (url, peer) = peer_server(&tls, None, move |ssl| {
            let mut ssl = ssl.unwrap();
            upgrade_by_hand(&mut ssl).unwrap();
            ssl.write_all(&server_frame(0x81, b"last")).unwrap();
            if with_close_notify {
                ssl.conn.send_close_notify();
                ssl.flush().unwrap();
            }
            ssl.sock.shutdown(std::net::Shutdown::Both).unwrap();
        });
        let (listener, events) = syncws::channel();
        let ws = tls_client(&tls).new_web_socket(request(&url), listener);
        expect_open(&events);
        assert_eq!(expect_message(&events), Message::Text("last".into()));
        let error = expect_failure(&events);
        assert!(
            matches!(error, Error::UnexpectedEof),
            "close_notify {with_close_notify}: expected UnexpectedEof, got {error:?}"
        );
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        peer.join().unwrap();
    }
}

/// A peer that asks for a TLS 1.3 key update: the session goes on both ways, so the socket
/// took the peer's new keys and answered with its own key update before its next record (the
/// peer could not read the echo otherwise). The peer is rustls; the socket is the build's
/// default backend.
#[test]
fn wss_key_update_requested_by_the_peer_is_answered_and_the_session_goes_on() {
    let tls = test_tls();
    let config = rustls_server_config(&tls, None);
    let raw = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://localhost:{}/", raw.local_addr().unwrap().port());
    let peer = thread::spawn(move || {
        let (tcp, _) = raw.accept().unwrap();
        tcp.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        upgrade_by_hand(&mut s).unwrap();
        assert_eq!(
            s.conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        s.conn.refresh_traffic_keys().unwrap();
        s.flush().unwrap();
        // Neither backend answers at once: OpenSSL and rustls both send their key update
        // just before their next record (RFC 8446 §4.6.3), so the echo below is what proves it.
        s.write_all(&server_frame(0x81, b"after the key update"))
            .unwrap();
        let (b0, payload) = read_any_frame(&mut s).unwrap();
        (b0, payload)
    });
    let client = tls_client(&tls);
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    expect_open(&events);
    let got = expect_message(&events);
    assert_eq!(got, Message::Text("after the key update".into()));
    assert!(ws.send(got));
    assert_eq!(
        peer.join().unwrap(),
        (0x81, b"after the key update".to_vec()),
        "the peer read the echo with its updated keys"
    );
    ws.cancel();
}

// ---------------------------------------------------------------------------------------------
// rustls only: its configs, its default roots, and mutual TLS on the server
// ---------------------------------------------------------------------------------------------

/// An echo round trip and a clean close.
#[cfg(feature = "rustls")]
fn echo_and_close(client: &Client, url: &str) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(url), listener);
    expect_open(&events);
    assert!(ws.send("over rustls"));
    assert_eq!(expect_message(&events), Message::Text("over rustls".into()));
    close_cleanly(&ws, &events);
}

/// With only rustls built, the default client is rustls with the platform's roots (or the
/// Mozilla ones): a self-signed server is refused, and the error is rustls's own words.
#[cfg(all(feature = "rustls", not(feature = "native-tls")))]
#[test]
fn rustls_default_client_refuses_a_self_signed_server_with_rustls_reason() {
    let tls = test_tls();
    let server = EchoServer::with_builder(tls.server()).unwrap();
    let (listener, events) = syncws::channel();
    let _ws = Client::new().new_web_socket(request(&server.url()), listener);
    match expect_failure(&events) {
        Error::Tls(message) => {
            // A machine with no CA bundle at all fails earlier, with the message that says so
            // (only possible with the platform's roots).
            let no_roots = cfg!(not(feature = "rustls-webpki-roots"))
                && message.contains("no root certificates");
            assert!(
                message.contains("invalid peer certificate: UnknownIssuer") || no_roots,
                "{message}"
            );
        }
        e => panic!("expected a TLS error, got {e:?}"),
    }
}

#[cfg(feature = "rustls")]
#[test]
fn rustls_client_config_trusting_the_test_ca_connects() {
    let tls = test_tls();
    // The build's own server (native-tls when both backends are built).
    let server = EchoServer::with_builder(tls.server()).unwrap();
    let client = Client::builder()
        .rustls_config(rustls_client_config(&tls.ca, None))
        .build();
    echo_and_close(&client, &server.url());
    // The same config without the CA: refused, so it was the config that trusted it.
    let other = test_tls();
    let untrusting = Client::builder()
        .rustls_config(rustls_client_config(&other.ca, None))
        .build();
    let (listener, events) = syncws::channel();
    let _ws = untrusting.new_web_socket(request(&server.url()), listener);
    match expect_failure(&events) {
        Error::Tls(message) => assert!(message.contains("UnknownIssuer"), "{message}"),
        e => panic!("expected a TLS error, got {e:?}"),
    }
}

#[cfg(feature = "rustls")]
#[test]
fn rustls_server_config_serves_a_rustls_client() {
    let tls = test_tls();
    let server =
        EchoServer::with_builder(Server::builder().rustls(rustls_server_config(&tls, None)))
            .unwrap();
    assert!(server.url().starts_with("wss://"));
    let rustls_client = Client::builder()
        .rustls_config(rustls_client_config(&tls.ca, None))
        .build();
    echo_and_close(&rustls_client, &server.url());
}

#[cfg(all(feature = "rustls", feature = "native-tls"))]
#[test]
fn rustls_server_config_serves_a_native_tls_client() {
    let tls = test_tls();
    let server =
        EchoServer::with_builder(Server::builder().rustls(rustls_server_config(&tls, None)))
            .unwrap();
    let connector = syncws::native_tls::TlsConnector::builder()
        .add_root_certificate(syncws::native_tls::Certificate::from_pem(&tls.ca).unwrap())
        .build()
        .unwrap();
    echo_and_close(
        &Client::builder().tls_connector(connector).build(),
        &server.url(),
    );
}

/// Mutual TLS, which native-tls's acceptor cannot ask for: a rustls `ServerConfig` with
/// `WebPkiClientVerifier` admits a client whose certificate its CA issued, and refuses one
/// with no certificate or one from another CA before the upgrade request is read.
#[cfg(feature = "rustls")]
#[test]
fn rustls_server_with_a_client_verifier_accepts_certified_clients_only() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let now = unix_now();
    let server_tls = test_tls();
    let client_id = issue("syncws-test-client", now - 60, now + 86_400);
    let stranger = issue("syncws-test-stranger", now - 60, now + 86_400);
    let upgrades = Arc::new(AtomicUsize::new(0));
    let counted = upgrades.clone();
    let server = Server::builder()
        .rustls(rustls_server_config(&server_tls, Some(&client_id.ca)))
        .bind("127.0.0.1:0", move |_req| {
            counted.fetch_add(1, Ordering::SeqCst);
            Accept::upgrade(Listener::new().on_message(|ws, m| {
                ws.send(m);
            }))
        })
        .unwrap();

    // The build's default backend presents the certificate.
    let certified = client_with_identity(&server_tls.ca, &client_id).build();
    echo_and_close(&certified, &server.url());
    assert_eq!(upgrades.load(Ordering::SeqCst), 1);

    for (what, client) in [
        ("no certificate", client_trusting(&server_tls.ca).build()),
        (
            "a certificate from another CA",
            client_with_identity(&server_tls.ca, &stranger).build(),
        ),
    ] {
        let (listener, events) = syncws::channel();
        let _ws = client.new_web_socket(request(&server.url()), listener);
        // TLS 1.3 clients finish their side of the handshake before the server has checked
        // their certificate, so its alert can arrive during the upgrade: Tls or Io.
        let error = expect_failure(&events);
        assert!(
            matches!(error, Error::Tls(_) | Error::Io(_)),
            "{what}: {error:?}"
        );
        let text = error.to_string().to_lowercase();
        assert!(
            text.contains("certificate")
                || text.contains("unknownca")
                || text.contains("unknown ca"),
            "{what}: the error should name the certificate: {error}"
        );
    }
    assert_eq!(
        upgrades.load(Ordering::SeqCst),
        1,
        "an uncertified client reached the upgrade handler"
    );
}
