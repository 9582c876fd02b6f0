//! The pull API's bound holds for any message size: a peer flooding empty frames at an
//! application that does not read makes the socket stop reading, exactly as large messages
//! do, in both roles; once the application reads, every message arrives and the socket closes
//! cleanly.
//!
//! This binary counts the heap's live bytes with a global allocator of its own, so the tests
//! can check that what the bound charges covers what the queued events really cost.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::process;
use common::raw::*;
use common::*;
use syncws::{Accept, Event, Message, Server};

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is only
// arithmetic on the sizes it is given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The flood: five million empty frames.
const FLOOD: usize = 5_000_000;
/// How long the application does not read: the scenario, not a synchronisation.
const NOT_READING: Duration = Duration::from_secs(5);

/// The memory tests measure the whole process: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `count` copies of `frame` in large writes, then `tail`. Blocks while the receiver
/// pushes back, which is the point.
fn flood(s: &mut TcpStream, frame: &[u8], count: usize, tail: &[u8]) {
    const PER_WRITE: usize = 8192;
    let chunk: Vec<u8> = frame.repeat(PER_WRITE);
    let mut left = count;
    while left > 0 {
        let n = left.min(PER_WRITE);
        s.write_all(&chunk[..n * frame.len()]).expect("flood write");
        left -= n;
    }
    s.write_all(tail).expect("write the close");
}

/// What the application sees once it reads: every message (all empty), then the peer's close
/// and a clean end.
fn read_everything(events: &syncws::Events) -> usize {
    let mut messages = 0usize;
    loop {
        let event = events.recv_timeout(EVENT_TIMEOUT).unwrap_or_else(|_| {
            panic!("no event within {EVENT_TIMEOUT:?} after {messages} messages")
        });
        match event {
            Event::Message(m) => {
                assert_eq!(m, Message::Binary(Vec::new()));
                messages += 1;
            }
            Event::Closing { code, .. } => assert_eq!(code, 1000),
            Event::Ended(syncws::Ended::Closed { code, .. }) => {
                assert_eq!(code, 1000);
                return messages;
            }
            e => panic!("after {messages} messages: unexpected {e:?}"),
        }
    }
}

/// Lets the flood run into a reader that is not read from, then checks memory: the process's
/// RSS grew less than the 64 MiB, and the heap grew by no more than the bound charged
/// for the queued events (plus the socket's buffers), so the charge is honest.
fn check_memory_while_not_reading(events: &syncws::Events, rss0: Option<usize>, live0: usize) {
    thread::sleep(NOT_READING);
    let live_grown = LIVE.load(Ordering::Relaxed).saturating_sub(live0);
    let charged = events.pending_bytes();
    let queued = events.len();
    // The RSS is read from /proc (Linux); the heap, counted by this binary's allocator, is
    // checked everywhere.
    if let (Some(rss0), Some(now)) = (rss0, process::rss_kib()) {
        let grown_mib = now.saturating_sub(rss0) / 1024;
        assert!(
            grown_mib < 64,
            "RSS grew {grown_mib} MiB with {queued} events queued"
        );
    }
    assert!(
        queued < FLOOD / 10,
        "{queued} events queued: the reader did not stop"
    );
    assert!(
        charged >= syncws::DEFAULT_CHANNEL_LIMIT,
        "the reader stopped before the bound ({charged} bytes charged)"
    );
    // The socket's own buffers (read buffer, decoder, writer) come on top of the events.
    let slack = 2 << 20;
    assert!(
        live_grown <= charged + slack,
        "the heap grew {live_grown} bytes for {queued} events charged {charged}"
    );
}

#[test]
fn a_client_on_a_channel_stops_reading_a_flood_of_empty_frames_and_loses_none() {
    let _lock = serial();
    let (url, peer) = raw_server(|mut s| {
        s.set_write_timeout(None).unwrap();
        flood(
            &mut s,
            &[0x82, 0x00],
            FLOOD,
            &frame(0x88, &close_payload(1000, b"")),
        );
        // The client answers the close; then the server ends TCP (RFC 6455 §7.1.1).
        let (op, _) = read_client_frame(&mut s);
        assert_eq!(op, 0x8);
        drop(s);
    });
    let rss0 = process::rss_kib();
    let live0 = LIVE.load(Ordering::Relaxed);
    let (listener, events) = syncws::channel();
    let ws = syncws::Client::new()
        .new_web_socket(syncws::Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), Event::Open(_)));
    check_memory_while_not_reading(&events, rss0, live0);
    assert_eq!(read_everything(&events), FLOOD);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().unwrap();
}

#[test]
fn a_server_on_a_channel_stops_reading_a_flood_of_empty_frames_and_loses_none() {
    let _lock = serial();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let server = Server::bind("127.0.0.1:0", move |_| {
        let (listener, events) = syncws::channel();
        let _ = tx.send(events);
        Accept::upgrade(listener)
    })
    .unwrap();
    let rss0 = process::rss_kib();
    let live0 = LIVE.load(Ordering::Relaxed);
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let head = read_head(&mut s).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let events = rx.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert!(matches!(next(&events), Event::Open(_)));
    // An empty masked binary frame, six bytes; then a masked close with 1000.
    let empty = [0x82, 0x80, 1, 2, 3, 4];
    let mut close = vec![0x88, 0x82, 0, 0, 0, 0];
    close.extend_from_slice(&1000u16.to_be_bytes());
    let peer = thread::spawn(move || {
        flood(&mut s, &empty, FLOOD, &close);
        // The server answers the close and ends TCP; then so does the client.
        let frame = read_frame_raw(&mut s).expect("the server's close");
        assert_eq!(frame.b0, 0x88);
        assert_eq!(close_code(&frame.payload), 1000);
        assert_eof(&mut s);
    });
    check_memory_while_not_reading(&events, rss0, live0);
    assert_eq!(read_everything(&events), FLOOD);
    peer.join().unwrap();
}
