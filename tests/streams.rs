//! Streams over real sockets: messages sent from a `Read` and received as one, and a web
//! socket as a byte stream (`docs/streams.md`).

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::testing::{MockFrame, MockResponse, MockServer};
use syncws::{Accept, ByteStream, Client, Error, Message, MessageKind, Request, Server};

/// A source of `len` bytes, each `(i % 251)`, with hooks: it says when it is first read
/// (`started`), fails at byte `fail_at`, or records the send queue's size at every read.
struct Pattern {
    len: u64,
    pos: u64,
    started: Option<mpsc::Sender<()>>,
    fail_at: Option<u64>,
    watch: Option<(syncws::WebSocket, mpsc::Sender<u64>)>,
}

impl Pattern {
    fn new(len: u64) -> Pattern {
        Pattern {
            len,
            pos: 0,
            started: None,
            fail_at: None,
            watch: None,
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn is_pattern(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(tx) = self.started.take() {
            let _ = tx.send(());
        }
        if let Some((ws, tx)) = &self.watch {
            let _ = tx.send(ws.queue_size());
        }
        if self.fail_at.is_some_and(|at| self.pos >= at) {
            return Err(io::Error::other("the disk is gone"));
        }
        let end = self.len.min(self.pos + buf.len() as u64);
        let end = self.fail_at.map_or(end, |at| end.min(at));
        let n = (end - self.pos) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.pos + i as u64) % 251) as u8;
        }
        self.pos = end;
        Ok(n)
    }
}

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

/// The data frames of one recorded connection: (opcode, fin, rsv1, payload length).
fn data_frames(frames: &[MockFrame]) -> Vec<(u8, bool, bool, usize)> {
    frames
        .iter()
        .filter(|f| f.opcode <= MockFrame::BINARY)
        .map(|f| (f.opcode, f.fin, f.rsv1, f.payload.len()))
        .collect()
}

// ---- sending from a Read ----

/// The message's frames are contiguous: messages another thread sends meanwhile go behind
/// it, pings go between its frames (RFC 6455 §5.4), and it arrives whole.
#[test]
fn a_streamed_message_is_contiguous_with_pings_between_its_frames() {
    let server = MockServer::start().unwrap();
    const LEN: usize = 3 << 20;
    server.enqueue(
        MockResponse::upgrade()
            // ~0.3 s on the wire: the client's pings come meanwhile.
            .throttle(10 << 20)
            .within(EVENT_TIMEOUT)
            .expect_binary_where("the pattern, whole", |b| is_pattern(b, LEN))
            .expect_text("after 0")
            .expect_text("after 1")
            .expect_text("after 2"),
    );
    let client = Client::builder()
        .fragment_size(256 * 1024)
        .ping_interval(Duration::from_millis(20))
        // The throttled peer reads our pings behind megabytes of the message.
        .pong_timeout(EVENT_TIMEOUT)
        .compression(false)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let (started, begun) = mpsc::channel();
    let ws = conn.websocket().clone();
    let sender = std::thread::spawn(move || {
        let mut source = Pattern::new(LEN as u64);
        source.started = Some(started);
        ws.send_stream(MessageKind::Binary, source)
    });
    begun.recv_timeout(EVENT_TIMEOUT).unwrap();
    for i in 0..3 {
        assert!(conn.send(format!("after {i}")));
    }
    assert_eq!(sender.join().unwrap().unwrap(), LEN as u64);
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    conn.close(1000, None).unwrap();
    let _ = conn.recv();
    server.verify();
    let frames = server.received(1);
    let data = data_frames(&frames);
    // The stream: a binary frame, continuations, the last with FIN; then the three texts.
    let stream_end = data.iter().position(|f| f.1).unwrap();
    assert_eq!(data[0].0, MockFrame::BINARY);
    assert!(
        data[1..=stream_end]
            .iter()
            .all(|f| f.0 == MockFrame::CONTINUATION)
    );
    assert!(stream_end >= 11, "{} frames of 256 KiB", stream_end + 1);
    assert!(
        data[stream_end + 1..]
            .iter()
            .all(|f| f.0 == MockFrame::TEXT)
    );
    assert_eq!(data.len(), stream_end + 4);
    // Pings went out between the stream's frames.
    let first = frames
        .iter()
        .position(|f| f.opcode == MockFrame::BINARY)
        .unwrap();
    let last = frames
        .iter()
        .position(|f| f.opcode == MockFrame::CONTINUATION && f.fin)
        .unwrap();
    let between = frames[first..last]
        .iter()
        .filter(|f| f.opcode == MockFrame::PING)
        .count();
    assert!(between > 0, "no ping between the stream's frames");
}

#[test]
fn a_streamed_message_is_compressed_as_one_across_its_frames() {
    let server = MockServer::start().unwrap();
    let text = "the same line of text, again and again\n".repeat(100_000);
    let expected = text.clone();
    server.enqueue(
        MockResponse::upgrade()
            .deflate(true)
            .expect_text_where("the text, whole", move |t| t == expected),
    );
    let client = Client::builder().fragment_size(512 * 1024).build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let sent = conn
        .send_stream(MessageKind::Text, text.as_bytes())
        .unwrap();
    assert_eq!(sent, text.len() as u64);
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    conn.close(1000, None).unwrap();
    let _ = conn.recv();
    server.verify();
    let data = data_frames(&server.received(1));
    // Several frames, RSV1 on the first only, and far smaller than the text.
    assert!(data.len() >= 8, "{data:?}");
    assert!(data[0].2, "RSV1 on the first frame");
    assert!(
        data[1..].iter().all(|f| !f.2),
        "RSV1 on the first frame only"
    );
    let wire: usize = data.iter().map(|f| f.3).sum();
    assert!(wire < text.len() / 20, "{wire} bytes for {}", text.len());
}

/// Each part counts in `queue_size` as it is read, and the next is read only once there is
/// room: a slow peer holds the source back.
#[test]
fn a_streamed_send_waits_for_room_in_the_queue() {
    let server = MockServer::start().unwrap();
    const LEN: usize = 8 << 20;
    server.enqueue(
        MockResponse::upgrade()
            .throttle(16 << 20)
            .within(EVENT_TIMEOUT)
            .expect_binary_where("8 MiB", |b| b.len() == LEN),
    );
    const QUEUE: u64 = 1 << 20;
    let client = Client::builder()
        .max_queue_size(QUEUE)
        .compression(false)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let (tx, seen) = mpsc::channel();
    let mut source = Pattern::new(LEN as u64);
    source.watch = Some((conn.websocket().clone(), tx));
    assert_eq!(
        conn.send_stream(MessageKind::Binary, source).unwrap(),
        LEN as u64
    );
    let most = seen.try_iter().max().unwrap();
    assert!(most <= QUEUE, "queue_size reached {most} (limit {QUEUE})");
    assert!(
        most > 0,
        "the queue never held a part when the source was read"
    );
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    conn.close(1000, None).unwrap();
    let _ = conn.recv();
    server.verify();
}

#[test]
fn cancel_ends_a_streamed_send_at_once() {
    let server = MockServer::start().unwrap();
    // The peer reads nothing: the queue fills and the send waits for room.
    server.enqueue(MockResponse::upgrade().stop_reading());
    let client = Client::builder()
        .max_queue_size(256 * 1024)
        .compression(false)
        .build();
    let conn = client.connect(request(&server.url())).unwrap();
    let ws = conn.websocket().clone();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(ws.send_stream(MessageKind::Binary, Pattern::new(1 << 30)));
    });
    // Wait until it is stuck: the queue is full.
    assert!(common::eventually(
        || conn.websocket().queue_size() >= 128 * 1024
    ));
    conn.websocket().cancel();
    let result = finished
        .recv_timeout(EVENT_TIMEOUT)
        .expect("send_stream returned");
    assert!(matches!(result, Err(Error::Canceled)), "{result:?}");
}

/// `close()` during a streamed send waits for it: the close frame follows its last frame.
#[test]
fn close_waits_for_a_streamed_send_to_finish() {
    let server = MockServer::start().unwrap();
    const LEN: usize = 2 << 20;
    server.enqueue(
        MockResponse::upgrade()
            .throttle(8 << 20)
            .within(EVENT_TIMEOUT)
            .expect_binary_where("all of it", |b| is_pattern(b, LEN))
            .expect_close_with(1000),
    );
    let client = Client::builder().compression(false).build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let ws = conn.websocket().clone();
    let (started, begun) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        let mut source = Pattern::new(LEN as u64);
        source.started = Some(started);
        ws.send_stream(MessageKind::Binary, source)
    });
    begun.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert!(conn.close(1000, Some("done")).unwrap());
    // Other sends are refused from now on, the stream goes on.
    assert!(!conn.send("too late"));
    assert_eq!(sender.join().unwrap().unwrap(), LEN as u64);
    assert!(matches!(conn.recv(), Err(Error::Closed { code: 1000, .. })));
    server.verify();
    let frames = server.received(1);
    let fin = frames.iter().position(|f| f.opcode <= 2 && f.fin).unwrap();
    let close = frames
        .iter()
        .position(|f| f.opcode == MockFrame::CLOSE)
        .unwrap();
    assert!(
        fin < close,
        "the close frame came before the message's last frame"
    );
}

#[test]
fn a_source_that_fails_before_anything_is_sent_fails_only_the_message() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().expect_text("still open"));
    let mut conn = Client::new().connect(request(&server.url())).unwrap();
    let mut source = Pattern::new(1 << 20);
    source.fail_at = Some(0);
    let result = conn.send_stream(MessageKind::Binary, source);
    match result {
        Err(Error::MessageSource(e)) => assert_eq!(e.to_string(), "the disk is gone"),
        other => panic!("{other:?}"),
    }
    assert!(conn.send("still open"));
    assert!(conn.wait_drained(EVENT_TIMEOUT));
    conn.close(1000, None).unwrap();
    let _ = conn.recv();
    server.verify();
}

/// A message cannot be taken back once its first frame is out: the socket fails with 1011
/// rather than deliver a truncated one.
#[test]
fn a_source_that_fails_mid_message_fails_the_socket_with_1011() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().expect_close_with(1011));
    let client = Client::builder()
        .fragment_size(64 * 1024)
        .compression(false)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let mut source = Pattern::new(1 << 20);
    source.fail_at = Some(300 * 1024);
    let result = conn.send_stream(MessageKind::Binary, source);
    assert!(matches!(result, Err(Error::MessageSource(_))), "{result:?}");
    assert!(matches!(conn.recv(), Err(Error::MessageSource(_))));
    server.verify();
    // The parts before the failure went out, but never a final frame.
    let data = data_frames(&server.received(1));
    assert!(data.len() >= 4, "{data:?}");
    assert!(data.iter().all(|f| !f.1), "a frame with FIN: {data:?}");
}

#[test]
fn a_text_stream_that_is_not_utf8_is_refused() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().expect_close_with(1011));
    let client = Client::builder().fragment_size(1000).build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let mut text = "é".repeat(2000).into_bytes();
    text.extend_from_slice(&[0xFF, b'a']);
    match conn.send_stream(MessageKind::Text, &text[..]) {
        Err(Error::MessageSource(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("not UTF-8"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.recv(), Err(Error::MessageSource(_))));
    server.verify();
}

// ---- receiving as a stream ----

/// A server that streams `len` pattern bytes to each client as one binary message, then
/// (`then_whole`) the same as an ordinary message.
fn streaming_server(len: usize, then_whole: bool) -> Server {
    Server::builder()
        .max_queue_size(4 << 20)
        .bind("127.0.0.1:0", move |_| {
            Accept::connection(move |mut conn| {
                conn.send_stream(MessageKind::Binary, Pattern::new(len as u64))
                    .expect("streamed");
                if then_whole {
                    // Again: the client takes this one with `recv`.
                    let _ = conn.send_stream(MessageKind::Binary, Pattern::new(len as u64));
                }
                let _ = conn.recv();
            })
        })
        .unwrap()
}

#[test]
fn recv_stream_reads_a_message_larger_than_max_message_size() {
    const LEN: usize = 20 << 20;
    let server = streaming_server(LEN, true);
    let client = Client::builder()
        .max_message_size(1 << 20)
        .max_streamed_message_size(64 << 20)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let mut message = conn.recv_stream().unwrap();
    assert_eq!(message.kind(), MessageKind::Binary);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 100_000];
    loop {
        let n = message.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    drop(message);
    assert!(is_pattern(&got, LEN));
    // `recv` still takes messages whole, within max_message_size: this one fails with 1009.
    match conn.recv() {
        Err(Error::MessageTooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("{other:?}"),
    }
}

/// `recv` refuses a message it would have to put together past `max_message_size` as the
/// decoder refuses one whole: close 1009, which reaches the peer although the refusal is
/// made on the caller's thread, not the reader's.
#[test]
fn recv_refuses_a_message_in_parts_past_max_message_size_with_1009() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_binary(vec![5u8; 2 << 20])
            .expect_close_with(1009),
    );
    let client = Client::builder()
        .max_message_size(1 << 20)
        .max_streamed_message_size(4 << 20)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    match conn.recv() {
        Err(Error::MessageTooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("{other:?}"),
    }
    server.verify();
}

#[test]
fn the_streamed_limit_holds_for_streams() {
    let server = streaming_server(3 << 20, false);
    let client = Client::builder().max_streamed_message_size(2 << 20).build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let mut message = conn.recv_stream().unwrap();
    let mut sink = Vec::new();
    let e = message.read_to_end(&mut sink).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<Error>());
    assert!(
        matches!(inner, Some(Error::MessageTooLarge { limit, .. }) if *limit == 2 << 20),
        "{e:?}"
    );
    assert!(sink.len() <= 2 << 20);
}

/// Invalid UTF-8 in the middle of a streamed text message fails with 1007 as it lands: the
/// reader gets what came before it, then an error.
#[test]
fn invalid_text_mid_stream_fails_with_1007() {
    let server = MockServer::start().unwrap();
    let mut first = vec![0x01, 127, 0, 0, 0, 0, 0, 1, 0x00, 0x00];
    first.extend(std::iter::repeat_n(b'a', 65536));
    let mut second = vec![0x80, 3];
    second.extend_from_slice(&[0xED, 0xA0, 0x80]);
    server.enqueue(
        MockResponse::upgrade()
            .send_raw(first)
            .send_raw(second)
            .expect_close_with(1007),
    );
    // Streams larger than whole messages: parts from the start.
    let client = Client::builder()
        .max_message_size(1 << 20)
        .max_streamed_message_size(2 << 20)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    let mut message = conn.recv_stream().unwrap();
    assert_eq!(message.kind(), MessageKind::Text);
    let mut got = Vec::new();
    let e = message.read_to_end(&mut got).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(
        got.len() >= 65536 - 4,
        "{} bytes before the error",
        got.len()
    );
    drop(message);
    assert!(matches!(conn.recv(), Err(Error::InvalidUtf8)));
    server.verify();
}

/// With compression, a large message is inflated a part at a time as it is read.
#[test]
fn a_compressed_stream_arrives_in_parts() {
    const LEN: usize = 16 << 20;
    let server = streaming_server(LEN, false);
    let client = Client::builder()
        .max_message_size(1 << 20)
        .max_streamed_message_size(u64::MAX)
        .build();
    let mut conn = client.connect(request(&server.url())).unwrap();
    assert!(conn.response().header("Sec-WebSocket-Extensions").is_some());
    let mut message = conn.recv_stream().unwrap();
    let mut got = Vec::new();
    message.read_to_end(&mut got).unwrap();
    assert!(is_pattern(&got, LEN));
    // Far fewer bytes on the wire than the message: it was compressed.
    drop(message);
    assert!(conn.stats().wire_bytes_received < LEN as u64 / 4);
}

#[test]
fn a_listener_takes_large_messages_in_parts() {
    const LEN: usize = 1 << 20;
    let server = streaming_server(LEN, false);
    let (tx, parts) = mpsc::channel();
    let listener = syncws::Listener::new().on_message_part(move |_ws, part| {
        let _ = tx.send(part);
    });
    let _ws = Client::new().new_web_socket(request(&server.url()), listener);
    let mut got = Vec::new();
    let mut count = 0;
    loop {
        let part = parts.recv_timeout(EVENT_TIMEOUT).unwrap();
        assert_eq!(part.is_first(), count == 0);
        assert!(part.data().len() <= 2 * 64 * 1024);
        count += 1;
        got.extend_from_slice(part.data());
        if part.is_last() {
            break;
        }
    }
    assert!(count >= 8, "{count} parts");
    assert!(is_pattern(&got, LEN));
}

// ---- the byte stream ----

/// An echo of bytes: each server connection copies what it reads back.
fn byte_echo() -> Server {
    Server::bind("127.0.0.1:0", |_| {
        Accept::byte_stream(|stream| {
            let (mut reader, mut writer) = stream.split();
            let _ = io::copy(&mut reader, &mut writer);
            let _ = writer.flush();
            let _ = writer.shutdown();
            // Read to the client's close, so the close handshake completes.
            let _ = io::copy(&mut reader, &mut io::sink());
        })
    })
    .unwrap()
}

#[test]
fn a_byte_stream_carries_bytes_both_ways_on_two_threads() {
    let server = byte_echo();
    let stream = ByteStream::connect(&server.url()).unwrap();
    let (mut reader, mut writer) = stream.split();
    const LEN: usize = 5 << 20;
    let writing = std::thread::spawn(move || {
        // Odd-sized writes, as a program's are.
        let data = pattern(LEN);
        for chunk in data.chunks(77_777) {
            writer.write_all(chunk).unwrap();
        }
        writer.flush().unwrap();
        writer.shutdown().unwrap();
    });
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    writing.join().unwrap();
    assert!(is_pattern(&got, LEN), "{} bytes back", got.len());
}

#[test]
fn a_byte_stream_read_times_out_with_timed_out() {
    let server = byte_echo();
    let mut stream = ByteStream::connect(&server.url()).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 10];
    let e = stream.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    // Still usable after a timeout, as a TcpStream is.
    stream.write_all(b"abc").unwrap();
    stream.set_read_timeout(Some(EVENT_TIMEOUT));
    stream.read_exact(&mut buf[..3]).unwrap();
    assert_eq!(&buf[..3], b"abc");
}

#[test]
fn shutting_a_byte_streams_writes_ends_the_peers_reads() {
    let server = byte_echo();
    let mut stream = ByteStream::connect(&server.url()).unwrap();
    stream.write_all(b"last words").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    // The echo reads to our close, echoes, closes: our reads end with Ok(0).
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words");
    stream.shutdown(Shutdown::Read).unwrap();
    assert_eq!(stream.read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn text_messages_read_as_bytes_in_a_byte_stream() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_text("one ")
            .send_text("two")
            .close(1000, ""),
    );
    let conn = Client::new().connect(request(&server.url())).unwrap();
    let mut stream = ByteStream::new(conn);
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert_eq!(got, "one two");
    let _ = Message::Text(got);
}
