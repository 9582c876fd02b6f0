//! The hardening guarantees on the client side and the server's defaults: the close timer runs
//! from `close()`, `channel()` is bounded in bytes with backpressure, `cancel()` is final, TCP
//! keepalive is on, the accept handler sees the client's address, and the server role's
//! default limits.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::raw::*;
use common::*;
use syncws::{Accept, Client, Error, Event, Listener, Message, Request, Server, State, WebSocket};

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

fn expect_open(events: &syncws::Events) {
    match next(events) {
        Event::Open(_) => {}
        e => panic!("expected Open, got {e:?}"),
    }
}

fn expect_failure(events: &syncws::Events) -> Error {
    loop {
        match next(events) {
            Event::Ended(syncws::Ended::Failed { error, .. }) => return error,
            Event::Message(_) => {}
            e => panic!("expected Failure, got {e:?}"),
        }
    }
}

#[test]
fn the_close_timer_runs_from_close_even_while_the_queue_cannot_be_written() {
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let (url, peer) = raw_server(move |s| {
        // Never read: the client's queue can never drain, so its close frame is never written.
        let _ = hold.recv_timeout(EVENT_TIMEOUT * 3);
        drop(s);
    });
    let client = Client::builder()
        // No write timeout: only a close timer that starts at `close()` can end this.
        .write_timeout(Duration::ZERO)
        .close_timeout(Some(Duration::from_millis(500)))
        .build();
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(request(&url), listener);
    expect_open(&events);
    for _ in 0..8 {
        assert!(ws.send(vec![0u8; 1 << 20]));
    }
    assert!(matches!(ws.close(1000, None), Ok(true)));
    let error = expect_failure(&events);
    assert!(matches!(error, Error::CloseTimeout(_)), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    drop(release);
    peer.join().unwrap();
}

/// A server that sends `count` binary messages of `size` bytes, numbered, from `on_open`, and
/// hands over its side of the socket once they are queued.
fn bulk_server(count: usize, size: usize) -> (Server, crossbeam_channel::Receiver<WebSocket>) {
    let (tx, rx) = crossbeam_channel::bounded::<WebSocket>(1);
    let server = Server::builder()
        .max_queue_size(1 << 30)
        .bind("127.0.0.1:0", move |_| {
            let tx = tx.clone();
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                for i in 0..count {
                    let mut m = vec![i as u8; size];
                    m[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    assert!(ws.send(m));
                }
                let _ = tx.send(ws.clone());
            }))
        })
        .unwrap();
    (server, rx)
}

fn expect_numbered(events: &syncws::Events, count: usize, size: usize) {
    for i in 0..count {
        match next(events) {
            Event::Message(Message::Binary(b)) => {
                assert_eq!(b.len(), size);
                assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), i as u64);
            }
            e => panic!("message {i}: {e:?}"),
        }
    }
}

#[test]
fn a_full_channel_stops_reading_so_tcp_pushes_back_and_nothing_is_lost() {
    // Enough to overflow what loopback TCP buffers hold (here up to 32 MiB + 4 MiB).
    const MESSAGES: usize = 160;
    const SIZE: usize = 1 << 20;
    const LIMIT: usize = 1 << 20;
    let (server, server_ws) = bulk_server(MESSAGES, SIZE);
    // Uncompressed, so the kernel's buffers fill with the real bytes (these messages would
    // deflate to almost nothing).
    let client = Client::builder()
        .max_message_size(2 << 20)
        .compression(false)
        .build();
    let (listener, events) = syncws::channel_with_limit(LIMIT);
    let ws = client.new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let server_ws = server_ws.recv_timeout(EVENT_TIMEOUT).unwrap();
    // Without receiving, wait until the channel is full and the server's writer has stalled
    // (its queue stops moving).
    let mut last = u64::MAX;
    assert!(eventually(|| {
        let now = server_ws.queue_size();
        let stalled = now == last && events.pending_bytes() >= LIMIT;
        last = now;
        thread::sleep(Duration::from_millis(100));
        stalled
    }));
    // The reader stopped at the bound (passed by at most one message or one read), so most of
    // the data is still queued at the server: TCP flow control is pushing back.
    assert!(
        events.pending_bytes() <= LIMIT + SIZE + 64 * 1024,
        "{} bytes undelivered",
        events.pending_bytes()
    );
    assert!(
        server_ws.queue_size() >= (64 * SIZE) as u64,
        "server queue {}",
        server_ws.queue_size()
    );
    // Now receive: every message arrives, whole and in order.
    expect_numbered(&events, MESSAGES, SIZE);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
}

#[test]
fn our_pong_timeout_is_held_while_a_full_channel_stops_reading() {
    const MESSAGES: usize = 4;
    const SIZE: usize = 1 << 20;
    let (server, server_ws) = bulk_server(MESSAGES, SIZE);
    // A pong timeout far shorter than the pause below: the pongs wait unread in the socket,
    // behind the data, and must not fail it.
    let client = Client::builder()
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(400))
        .compression(false)
        .build();
    let (listener, events) = syncws::channel_with_limit(SIZE);
    let ws = client.new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    server_ws.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert!(eventually(|| events.pending_bytes() >= SIZE));
    // The pause under test: three pong timeouts long.
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(ws.state(), State::Open, "{:?}", events.try_iter().last());
    expect_numbered(&events, MESSAGES, SIZE);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
}

#[test]
fn cancel_and_a_dropped_receiver_end_the_wait_of_a_paused_reader() {
    let server = Server::builder()
        .max_queue_size(1 << 30)
        .bind("127.0.0.1:0", |_| {
            Accept::upgrade(Listener::new().on_open(|ws, _| {
                for _ in 0..32 {
                    ws.send(vec![1u8; 256 * 1024]);
                }
            }))
        })
        .unwrap();
    // Cancel while paused: the terminal event comes at once.
    let (listener, events) = syncws::channel_with_limit(1);
    let ws = Client::new().new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    assert!(eventually(|| events.pending_bytes() > 0));
    ws.cancel();
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(matches!(expect_failure(&events), Error::Canceled));

    // The application drops its receiver while the reader waits: nobody will make room, so
    // the reader goes on (and the socket can close normally).
    let (listener, events) = syncws::channel_with_limit(1);
    let opened = Arc::new(AtomicBool::new(false));
    let ws = Client::new().new_web_socket(request(&server.url()), listener);
    while !opened.load(Ordering::SeqCst) {
        if let Event::Open(_) = next(&events) {
            opened.store(true, Ordering::SeqCst);
        }
    }
    assert!(eventually(|| events.pending_bytes() > 0));
    drop(events);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn after_cancel_returns_no_callback_but_the_terminal_one_runs() {
    // The server's 101 and a text message arrive in one write: without the check before every
    // callback, the message would be delivered right after `on_open` returns, though
    // `cancel()` returned while `on_open` ran.
    let (url, peer) = raw_listener(|mut s, key| {
        let mut bytes = accept_response(&key);
        bytes.extend(frame(0x81, b"must not be delivered"));
        s.write_all(&bytes).unwrap();
        read_until_closed(&mut s);
    });
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<WebSocket>(1);
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let (events_tx, events_rx) = crossbeam_channel::unbounded::<String>();
    let (t1, t2, t3) = (events_tx.clone(), events_tx.clone(), events_tx);
    let listener = Listener::new()
        .on_open(move |ws, _| {
            t1.send("open".into()).unwrap();
            entered_tx.send(ws.clone()).unwrap();
            go_rx.recv_timeout(EVENT_TIMEOUT).unwrap();
        })
        .on_message(move |_, m| t2.send(format!("message {m:?}")).unwrap())
        .on_failure(move |_, e, _| t3.send(format!("failure {e:?}")).unwrap());
    let ws = Client::new().new_web_socket(request(&url), listener);
    let inside = entered_rx.recv_timeout(EVENT_TIMEOUT).unwrap();
    inside.cancel();
    go_tx.send(()).unwrap();
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let seen: Vec<String> = events_rx.try_iter().collect();
    assert_eq!(seen, ["open", "failure Canceled"]);
    peer.join().unwrap();
}

/// The kernel's timer for this process's TCP connections to or from `port` (not listeners):
/// `/proc/net/tcp`'s `tr` field, where 2 is the keepalive timer.
#[cfg(target_os = "linux")]
fn tcp_timers_on_port(port: u16) -> Vec<u8> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port_of = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            let ours = port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port);
            (ours && f[3] == "01").then(|| u8::from_str_radix(f[5].split(':').next()?, 16).ok())?
        })
        .collect()
}

// Linux only: the kernel's keepalive timer is read from /proc/net/tcp.
#[cfg(target_os = "linux")]
#[test]
fn tcp_keepalive_is_on_by_default_in_both_roles_and_can_be_turned_off() {
    for (keepalive, want) in [(Some(Duration::from_secs(60)), 2u8), (None, 0u8)] {
        let server = Server::builder()
            .tcp_keepalive(keepalive)
            .bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new()))
            .unwrap();
        let client = Client::builder().tcp_keepalive(keepalive).build();
        let (listener, events) = syncws::channel();
        let ws = client.new_web_socket(request(&server.url()), listener);
        expect_open(&events);
        // Both ends: the client's socket and the server's accepted one.
        let port = server.local_addr().port();
        assert!(
            eventually(|| tcp_timers_on_port(port) == [want, want]),
            "{keepalive:?}: timers {:?}",
            tcp_timers_on_port(port)
        );
        ws.cancel();
        assert!(ws.wait_finished(EVENT_TIMEOUT));
    }
    // And it is the default.
    let server = Server::bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new())).unwrap();
    let (listener, events) = syncws::channel();
    let ws = Client::new().new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let port = server.local_addr().port();
    assert!(eventually(|| tcp_timers_on_port(port) == [2, 2]));
    ws.cancel();
}

#[test]
fn the_accept_handler_sees_the_clients_address() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = Server::bind("127.0.0.1:0", move |req| {
        tx.send(req.peer_addr()).unwrap();
        Accept::reject(403, "Forbidden")
    })
    .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        rx.recv_timeout(EVENT_TIMEOUT).unwrap(),
        Some(s.local_addr().unwrap())
    );
    // A client's own request has none.
    assert_eq!(request("ws://localhost/").peer_addr(), None);
}

/// A server with `max_connections(cap)`: the first client opens (its socket and events are
/// returned), a second one meanwhile is refused with 503 (the refusal is returned).
fn one_open_and_one_refused(
    cap: usize,
) -> (Server, syncws::WebSocket, syncws::Events, syncws::Response) {
    let server = Server::builder()
        .max_connections(cap)
        .bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new()))
        .unwrap();
    let (listener, events) = syncws::channel();
    let first = Client::new().new_web_socket(request(&server.url()), listener);
    expect_open(&events);
    let (listener, second_events) = syncws::channel();
    let _second = Client::new().new_web_socket(request(&server.url()), listener);
    match next(&second_events) {
        Event::Ended(syncws::Ended::Failed { response, .. }) => {
            let response = *response.expect("an HTTP answer");
            assert_eq!(response.status(), 503);
            (server, first, events, response)
        }
        e => panic!("expected 503, got {e:?}"),
    }
}

/// Every cap of the server counts a value under 1 as 1, as its docs say: `max_connections(0)`
/// once refused every upgrade, while the three other caps were raised to 1.
#[test]
fn max_connections_under_one_counts_as_one() {
    let (_server, _first, _events, refusal) = one_open_and_one_refused(0);
    assert!(
        refusal.reason().contains("(max_connections 1)"),
        "{}",
        refusal.reason()
    );
}

#[test]
fn the_server_role_defaults_refuse_messages_over_1_mib_and_upgrades_past_max_connections() {
    // A second client while the only slot is taken: 503.
    let (_server, first, events, _refusal) = one_open_and_one_refused(1);
    // 1 MiB is accepted by default, one byte more is refused with 1009.
    assert!(first.send(vec![0u8; 1 << 20]));
    assert!(first.send(vec![0u8; (1 << 20) + 1]));
    match next(&events) {
        Event::Closing { code, .. } => assert_eq!(code, 1009),
        e => panic!("expected the server's 1009, got {e:?}"),
    }
}
