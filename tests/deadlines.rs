//! Every wait of a socket has one deadline, set once:
//! - the close timer counts from `close()`, even when the batch that carries the close frame
//!   is written slowly and completes just before the deadline;
//! - the handshake's writes (the upgrade request, the 101 or a refusal) are bounded by the
//!   handshake deadline, so a peer that accepts TCP and never reads cannot hang `connect`;
//! - a whole redirect chain, and the name lookup, share the handshake's deadline.

mod common;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use syncws::{Client, Error, Event, Request};

/// The most a blocking write waits before the writer looks at its deadlines again
/// (`transport::WRITE_SLICE`).
const WRITE_SLICE: Duration = Duration::from_millis(500);

/// A listener whose accepted connections get a small receive buffer, so a peer that reads
/// slowly really holds the sender back.
fn small_buffer_listener() -> TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(16).unwrap();
    socket.into()
}

#[test]
fn the_close_timer_counts_from_close_when_the_close_frame_is_written_slowly() {
    let close_timeout = Duration::from_secs(2);
    let listener = small_buffer_listener();
    let url = format!("ws://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let (saw_close, close_seen) = crossbeam_channel::bounded::<Instant>(1);
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let head = read_head(&mut s).unwrap();
        let key = header_value(&head, "Sec-WebSocket-Key").unwrap();
        std::io::Write::write_all(&mut s, &accept_response(&key)).unwrap();
        // Read about 4 MiB/s, a frame at a time, and never answer the close.
        loop {
            let Ok(frame) = read_frame_raw(&mut s) else {
                return;
            };
            if frame.opcode == 0x8 {
                let _ = saw_close.send(Instant::now());
            }
            thread::sleep(Duration::from_micros(frame.payload.len() as u64 / 4));
        }
    });
    let client = Client::builder()
        .close_timeout(Some(close_timeout))
        .write_timeout(Duration::ZERO)
        .build();
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), Event::Open(_)));
    // Enough that the socket buffers hold only part of it: at the peer's pace the close frame,
    // behind it, is taken well inside the close timeout, but not at once.
    for _ in 0..96 {
        assert!(ws.send(vec![1u8; 64 * 1024]));
    }
    let closed_at = Instant::now();
    assert_eq!(ws.close(1000, None).ok(), Some(true));
    let error = loop {
        match next(&events) {
            Event::Ended(syncws::Ended::Failed { error, .. }) => break error,
            Event::Message(_) => {}
            e => panic!("unexpected {e:?}"),
        }
    };
    let ended = closed_at.elapsed();
    assert!(matches!(error, Error::CloseTimeout(_)), "{error:?}");
    let close_written = close_seen
        .recv_timeout(Duration::ZERO)
        .expect("the close frame reached the peer before the socket ended")
        .duration_since(closed_at);
    // The scenario: the batch with the close frame was written slowly, and finished inside
    // the close timeout.
    assert!(
        close_written > Duration::from_millis(300) && close_written < close_timeout,
        "the close frame was taken {close_written:?} after close()"
    );
    // One deadline, from close(): not close_timeout again from when the frame was written.
    assert!(
        ended >= close_timeout && ended < close_timeout + WRITE_SLICE,
        "the socket ended {ended:?} after close() (close frame taken after {close_written:?})"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().unwrap();
}

// Linux only: it shrinks the client's send buffer, and the only way to the descriptor of a
// syncws client from outside is /proc.
#[cfg(target_os = "linux")]
#[test]
fn the_close_timer_is_not_restarted_by_a_slow_write_of_the_close_frames_batch() {
    // The interleaving: messages and `close()` are queued while the socket connects, so the
    // first batch the writer writes carries them and the close frame, and the peer takes that
    // batch slowly, for about a second. The close timer must still run from `close()`.
    let close_timeout = Duration::from_secs(2);
    let listener = small_buffer_listener();
    let url = format!("ws://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let (go, wait_go) = crossbeam_channel::bounded::<()>(1);
    let (client_port, port) = crossbeam_channel::bounded::<u16>(1);
    let peer = thread::spawn(move || {
        use std::io::Read;
        let (mut s, from) = listener.accept().unwrap();
        client_port.send(from.port()).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let head = read_head(&mut s).unwrap();
        let key = header_value(&head, "Sec-WebSocket-Key").unwrap();
        wait_go.recv_timeout(EVENT_TIMEOUT).unwrap();
        std::io::Write::write_all(&mut s, &accept_response(&key)).unwrap();
        // About 32 KiB/s for a second, then everything as it comes; never a close frame.
        let mut buf = vec![0u8; 64 * 1024];
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if s.read(&mut buf[..4096]).unwrap_or(0) == 0 {
                return;
            }
            thread::sleep(Duration::from_millis(125));
        }
        while s.read(&mut buf).unwrap_or(0) > 0 {}
    });
    let client = Client::builder()
        .close_timeout(Some(close_timeout))
        .write_timeout(Duration::ZERO)
        .build();
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(&url).build().unwrap(), listener);
    // Under one batch (256 KiB) with the close frame.
    for _ in 0..5 {
        assert!(ws.send(vec![2u8; 48 * 1024]));
    }
    let closed_at = Instant::now();
    assert_eq!(ws.close(1000, None).ok(), Some(true));
    // On loopback a new connection's send buffer starts at 1 MiB or more (ten 64 KiB
    // segments, doubled) and would take the whole batch at once; make it small, as on a real
    // network, so the batch is written at the peer's pace.
    shrink_send_buffer(port.recv_timeout(EVENT_TIMEOUT).unwrap());
    go.send(()).unwrap();
    assert!(matches!(next(&events), Event::Open(_)));
    let error = match next(&events) {
        Event::Ended(syncws::Ended::Failed { error, .. }) => error,
        e => panic!("unexpected {e:?}"),
    };
    let ended = closed_at.elapsed();
    assert!(matches!(error, Error::CloseTimeout(_)), "{error:?}");
    assert!(
        ended >= close_timeout && ended < close_timeout + WRITE_SLICE,
        "the socket ended {ended:?} after close()"
    );
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    peer.join().unwrap();
}

/// Sets `SO_SNDBUF` to 8 KiB on this process's TCP socket whose local port is `port`.
#[cfg(target_os = "linux")]
fn shrink_send_buffer(port: u16) {
    use std::os::fd::BorrowedFd;
    let mut inodes = Vec::new();
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local = f[1]
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        if local == Some(port) {
            inodes.push(format!("socket:[{}]", f[9]));
        }
    }
    let fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            inodes
                .contains(&target.to_string_lossy().into_owned())
                .then(|| e.file_name().to_str()?.parse::<i32>().ok())
                .flatten()
        })
        .next()
        .expect("the client's socket");
    // SAFETY: `fd` is open for the duration of this call: its connection waits for the peer's
    // answer, which the peer sends only after this returns.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    socket.set_send_buffer_size(8 * 1024).unwrap();
}

/// A listener that accepts connections and never reads from them, with small buffers.
fn never_reading_peer() -> (
    String,
    thread::JoinHandle<()>,
    crossbeam_channel::Sender<()>,
) {
    let listener = small_buffer_listener();
    let url = format!("ws://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let (done, wait_done) = crossbeam_channel::bounded::<()>(0);
    let peer = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = wait_done.recv_timeout(EVENT_TIMEOUT * 3);
        drop(s);
    });
    (url, peer, done)
}

#[test]
fn a_server_that_never_reads_cannot_hold_connect_with_a_large_request() {
    let (url, peer, done) = never_reading_peer();
    let client = Client::builder()
        .handshake_timeout(Duration::from_secs(1))
        .build();
    // A large cookie is enough to fill the connection's buffers (on loopback they take over
    // a mebibyte at once, so 4 MiB; on a real network far less would do).
    let request = Request::builder(&url)
        .header("Cookie", "a".repeat(4 << 20))
        .build()
        .unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t0 = Instant::now();
    thread::spawn(move || {
        let _ = tx.send(client.connect(request).map(|_| ()));
    });
    let result = rx
        .recv_timeout(EVENT_TIMEOUT)
        .expect("connect hung on a server that does not read");
    let took = t0.elapsed();
    assert!(matches!(result, Err(Error::ReadTimeout(_))), "{result:?}");
    // The handshake deadline (1 s), not more: the write is bounded by it.
    assert!(took < Duration::from_secs(2), "connect took {took:?}");
    drop(done);
    peer.join().unwrap();
}

#[test]
fn a_client_that_never_reads_cannot_hold_the_servers_answer() {
    use std::io::Write;
    // The handler's answer is large (a big cookie) and the client never reads it: the
    // server's write must give up at the handshake deadline and free the connection's place.
    let (opened, was_opened) = crossbeam_channel::unbounded::<()>();
    let server = syncws::Server::builder()
        .handshake_timeout(Duration::from_secs(1))
        .max_connections(1)
        .bind("127.0.0.1:0", move |request| {
            let opened = opened.clone();
            let listener = syncws::Listener::new().on_open(move |_, _| {
                let _ = opened.send(());
            });
            if request.header("X-Stuck").is_some() {
                syncws::Accept::upgrade(listener).header("Set-Cookie", "a".repeat(16 << 20))
            } else {
                syncws::Accept::upgrade(listener)
            }
        })
        .unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&server.local_addr().into()).unwrap();
    let mut stuck: std::net::TcpStream = socket.into();
    stuck
        .write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              X-Stuck: 1\r\n\r\n",
        )
        .unwrap();
    // The server is writing the answer once its first bytes are here.
    stuck.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut first = [0u8; 1];
    assert_eq!(stuck.peek(&mut first).unwrap(), 1);
    // While the stuck answer holds the only place, others are refused; once the server gives
    // up on it, a client gets in.
    let url = server.url();
    assert!(
        eventually_within(Duration::from_secs(5), || syncws::connect(&url).is_ok()),
        "the server never gave up writing to a client that does not read"
    );
    assert!(was_opened.recv_timeout(EVENT_TIMEOUT).is_ok());
    // The stuck client's socket never opened: its listener heard nothing.
    assert!(was_opened.try_recv().is_err());
    drop(stuck);
}

#[test]
fn a_redirect_chain_shares_one_deadline() {
    // Five hops, each answering its 307 after 700 ms (well inside the 1 s read timeout), then
    // a server that upgrades: 3.5 s in all, past the chain's deadline of connect + read
    // timeout, 2 s.
    let last = syncws::EchoServer::start().unwrap();
    let mut next = last.url();
    let mut hops = Vec::new();
    for _ in 0..5 {
        let location = next.clone();
        let (url, hop) = raw_listener(move |mut s, _key| {
            thread::sleep(Duration::from_millis(700));
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = std::io::Write::write_all(&mut s, answer.as_bytes());
        });
        next = url;
        hops.push(hop);
    }
    let client = Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .handshake_timeout(Duration::from_secs(1))
        .build();
    let t0 = Instant::now();
    let result = client.connect(Request::builder(&next).build().unwrap());
    let took = t0.elapsed();
    assert!(
        matches!(result, Err(Error::ReadTimeout(t)) if t == Duration::from_secs(2)),
        "{result:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "the chain took {took:?}"
    );
    for hop in hops.into_iter().rev().take(3) {
        hop.join().unwrap();
    }
}

/// A client whose resolver never answers until `release` is dropped; `called` hears each
/// lookup start.
struct StuckResolver {
    client: Client,
    called: crossbeam_channel::Receiver<()>,
    release: crossbeam_channel::Sender<()>,
}

fn stuck_resolver(connect_timeout: Duration) -> StuckResolver {
    let (release, held) = crossbeam_channel::bounded::<()>(0);
    let (call, called) = crossbeam_channel::unbounded();
    let client = Client::builder()
        .connect_timeout(connect_timeout)
        .dns_resolver(move |_, _| {
            let _ = call.send(());
            let _ = held.recv();
            Err(std::io::Error::other("released"))
        })
        .build();
    StuckResolver {
        client,
        called,
        release,
    }
}

#[test]
fn a_stuck_name_lookup_is_bounded_by_the_connect_timeout() {
    let stuck = stuck_resolver(Duration::from_millis(500));
    let t0 = Instant::now();
    let result = stuck
        .client
        .connect(Request::builder("ws://stuck.test/").build().unwrap());
    let took = t0.elapsed();
    assert!(stuck.called.try_recv().is_ok(), "the resolver was asked");
    assert!(
        matches!(result, Err(Error::ConnectTimeout(_))),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(stuck.release);
}

#[test]
fn cancel_ends_a_socket_at_once_while_its_name_lookup_is_stuck() {
    // Only a cancel can end this connect soon: its timeout is an hour.
    let stuck = stuck_resolver(Duration::from_secs(3600));
    let (listener, events) = syncws::channel();
    let ws = stuck.client.new_web_socket(
        Request::builder("ws://stuck.test/").build().unwrap(),
        listener,
    );
    stuck.called.recv_timeout(EVENT_TIMEOUT).unwrap();
    ws.cancel();
    match events.recv_timeout(Duration::from_secs(1)) {
        Ok(Event::Ended(syncws::Ended::Failed {
            error: Error::Canceled,
            ..
        })) => {}
        e => panic!("expected on_failure(Canceled) at once, got {e:?}"),
    }
    assert!(ws.wait_finished(Duration::from_secs(1)));
    drop(stuck.release);
}
