//! One host cannot starve the others: per-address caps on
//! handshaking and established connections, over real sockets. Clients are bound to different
//! loopback addresses (on Linux all of 127/8 is local) with socket2 before they connect, so the
//! server sees them as different hosts.

mod common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::raw::read_head;
use common::{EVENT_TIMEOUT, eventually};
use syncws::{Accept, Listener, Server};

/// The flooding host, the well-behaved one, and others.
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const THIRD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// These tests open many connections and watch who gets evicted: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a socket can be bound to 127.0.0.2. If not (a system without the 127/8 loopback
/// range), the caller skips its test, saying so.
fn loopback_aliases(test: &str) -> bool {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
    let bound = socket.and_then(|s| s.bind(&SocketAddr::new(FLOODER.into(), 0).into()));
    match bound {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: cannot bind {FLOODER} ({e}); it needs clients on several \
                 loopback addresses (127/8, which Linux has)"
            );
            false
        }
    }
}

/// A TCP connection from `from` (any free port) to `server`.
fn connect_from(from: Ipv4Addr, server: SocketAddr) -> io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from.into(), 0).into())?;
    s.connect_timeout(&server.into(), EVENT_TIMEOUT)?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(EVENT_TIMEOUT))?;
    Ok(s)
}

const REQUEST_LINE: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n";
const REQUEST_REST: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// An upgrade from `from`; the stream and the status line of the answer.
fn upgrade_from(from: Ipv4Addr, server: SocketAddr) -> (TcpStream, String) {
    let mut s = connect_from(from, server).expect("connect");
    s.write_all(format!("{REQUEST_LINE}{REQUEST_REST}").as_bytes())
        .expect("request");
    let status = status_line(&mut s).expect("an answer");
    (s, status)
}

/// The first line of the answer on `s`.
fn status_line(s: &mut TcpStream) -> io::Result<String> {
    Ok(read_head(s)?.lines().next().unwrap_or_default().to_owned())
}

/// Whether a read on `s` would block now (it is open and silent) rather than see data or EOF.
fn is_open_and_silent(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let r =
        matches!((&mut &*s).read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking");
    r
}

fn echo_server(builder: syncws::ServerBuilder) -> Server {
    builder
        .bind("127.0.0.1:0", |_| {
            Accept::upgrade(Listener::new().on_message(|ws, m| {
                ws.send(m);
            }))
        })
        .expect("bind")
}

/// How long the flood goes on, and how often the good client shakes hands during it.
const FLOOD_FOR: Duration = Duration::from_secs(10);
const GOOD_HANDSHAKES: u32 = 10;
/// The bound for each of the good client's handshakes.
const HANDSHAKE_BOUND: Duration = Duration::from_secs(2);
/// The good client sends its request in two writes this far apart, as a slow link would (a
/// phone, another continent). With the server's old global oldest-first eviction, the flood's
/// newer connections evicted it in that time; with per-address eviction they cannot.
const SLOW_LINK: Duration = Duration::from_millis(250);

#[test]
fn a_sustained_flood_from_one_address_does_not_keep_another_from_10_of_10_handshakes() {
    let _lock = serial();
    if !loopback_aliases("a_sustained_flood_from_one_address_...") {
        return;
    }
    // The defaults: 256 handshaking, 32 per address.
    let server = echo_server(Server::builder());
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    // Says when the flood has opened more connections than the server has handshake places.
    let (going_tx, going) = crossbeam_channel::bounded(1);
    let flood: Vec<_> = (0..3)
        .map(|t| {
            let (stop, opened, going_tx) = (stop.clone(), opened.clone(), going_tx.clone());
            thread::spawn(move || {
                let mut held = VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    // Out of ports for a moment, or a connect cut short: go on flooding.
                    let Ok(mut s) = connect_from(FLOODER, addr) else {
                        continue;
                    };
                    // Some stall after the start of a request, the rest never send a byte.
                    if t % 2 == 0 {
                        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: loc");
                    }
                    held.push_back(s);
                    if held.len() > 100 {
                        held.pop_front();
                    }
                    if opened.fetch_add(1, Ordering::Relaxed) + 1 == 512 {
                        let _ = going_tx.try_send(());
                    }
                }
            })
        })
        .collect();
    going
        .recv_timeout(EVENT_TIMEOUT)
        .expect("the flood did not get going");
    let start = Instant::now();
    let at_start = opened.load(Ordering::Relaxed);
    let mut took = Vec::new();
    for i in 0..GOOD_HANDSHAKES {
        // Spread over the flood (pacing, not synchronisation).
        let due = start + FLOOD_FOR.mul_f64(f64::from(i) / f64::from(GOOD_HANDSHAKES));
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let t0 = Instant::now();
        let result = (|| -> io::Result<String> {
            let mut s = connect_from(GOOD, addr)?;
            s.set_read_timeout(Some(HANDSHAKE_BOUND))?;
            s.write_all(REQUEST_LINE.as_bytes())?;
            thread::sleep(SLOW_LINK);
            s.write_all(REQUEST_REST.as_bytes())?;
            status_line(&mut s)
        })();
        let elapsed = t0.elapsed();
        took.push(elapsed);
        match result {
            Ok(status) if status.starts_with("HTTP/1.1 101 ") => {}
            other => panic!(
                "handshake {} of {GOOD_HANDSHAKES} from {GOOD} during the flood: {other:?} \
                 after {elapsed:?} ({} flood connections so far)",
                i + 1,
                opened.load(Ordering::Relaxed)
            ),
        }
        assert!(
            elapsed < HANDSHAKE_BOUND,
            "handshake {} took {elapsed:?}",
            i + 1
        );
    }
    // The flood goes on to its end.
    thread::sleep((start + FLOOD_FOR).saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().expect("flood thread");
    }
    let during = opened.load(Ordering::Relaxed) - at_start;
    eprintln!(
        "flood from {FLOODER}: {during} new connections in {:?}; handshakes from {GOOD} took \
         {took:?}",
        start.elapsed()
    );
    // A flood worth the name: many times the server's 256 handshake places.
    assert!(during > 4 * 256, "only {during} flood connections");
}

#[test]
fn past_max_connections_per_ip_an_address_gets_503_saying_so_and_others_still_get_in() {
    let _lock = serial();
    if !loopback_aliases("past_max_connections_per_ip_...") {
        return;
    }
    let server = echo_server(
        Server::builder()
            .max_connections_per_ip(2)
            .max_connections(3),
    );
    let addr = server.local_addr();
    let (a1, s1) = upgrade_from(FLOODER, addr);
    let (_a2, s2) = upgrade_from(FLOODER, addr);
    assert!(s1.starts_with("HTTP/1.1 101 ") && s2.starts_with("HTTP/1.1 101 "));
    let (_, refused) = upgrade_from(FLOODER, addr);
    assert_eq!(
        refused,
        "HTTP/1.1 503 Service Unavailable: too many connections from this address \
         (max_connections_per_ip 2)"
    );
    // Another address still gets in, up to the total cap.
    let (_b1, s) = upgrade_from(GOOD, addr);
    assert!(s.starts_with("HTTP/1.1 101 "), "{s}");
    let (_, s) = upgrade_from(THIRD, addr);
    assert_eq!(
        s,
        "HTTP/1.1 503 Service Unavailable: too many connections (max_connections 3)"
    );
    // A connection that ends gives its address's place back.
    drop(a1);
    assert!(
        eventually(|| upgrade_from(FLOODER, addr).1.starts_with("HTTP/1.1 101 ")),
        "the closed connection's place was never freed"
    );
}

#[test]
fn the_crates_client_sees_the_per_address_503_reason() {
    let _lock = serial();
    let server = echo_server(Server::builder().max_connections_per_ip(1));
    let first = syncws::connect(&server.url()).expect("the first connection");
    let e = syncws::connect(&server.url()).unwrap_err();
    let r = e.response().expect("an answer");
    assert_eq!(
        (r.status(), r.reason()),
        (
            503,
            "Service Unavailable: too many connections from this address \
             (max_connections_per_ip 1)"
        )
    );
    drop(first);
}

#[test]
fn an_address_at_its_handshake_cap_evicts_its_own_oldest_with_a_503() {
    let _lock = serial();
    if !loopback_aliases("an_address_at_its_handshake_cap_...") {
        return;
    }
    let server = echo_server(
        Server::builder()
            .max_handshaking_per_ip(3)
            .handshake_timeout(Duration::from_secs(60)),
    );
    let addr = server.local_addr();
    // The oldest handshake of all is another address's.
    let other = connect_from(GOOD, addr).unwrap();
    let mut mine: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(FLOODER, addr).unwrap())
        .collect();
    // A fourth from the same address: its oldest goes, answered first.
    let _newest = connect_from(FLOODER, addr).unwrap();
    assert_eq!(
        status_line(&mut mine[0]).expect("the evicted handshake's answer"),
        "HTTP/1.1 503 Service Unavailable: too many connections handshaking from this address \
         (max_handshaking_per_ip 3)"
    );
    assert_eq!(mine[0].read(&mut [0u8; 1]).expect("EOF after the 503"), 0);
    assert!(
        is_open_and_silent(&other),
        "another address's handshake was evicted"
    );
    assert!(
        is_open_and_silent(&mine[1]),
        "more than the oldest was evicted"
    );
}

#[test]
fn with_every_handshake_place_taken_the_address_holding_the_most_gives_one_up() {
    let _lock = serial();
    if !loopback_aliases("with_every_handshake_place_taken_...") {
        return;
    }
    let server = echo_server(
        Server::builder()
            .max_handshaking(5)
            .max_handshaking_per_ip(usize::MAX)
            .handshake_timeout(Duration::from_secs(60)),
    );
    let addr = server.local_addr();
    // GOOD's two are the oldest: oldest-first eviction would take GOOD's first.
    let good: Vec<TcpStream> = (0..2).map(|_| connect_from(GOOD, addr).unwrap()).collect();
    let mut flood: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(FLOODER, addr).unwrap())
        .collect();
    let _third = connect_from(THIRD, addr).unwrap();
    assert_eq!(
        status_line(&mut flood[0]).expect("the evicted handshake's answer"),
        "HTTP/1.1 503 Service Unavailable: too many connections handshaking (max_handshaking 5)"
    );
    for s in &good {
        assert!(is_open_and_silent(s), "a handshake of {GOOD} was evicted");
    }
    // GOOD can still complete its handshake.
    let mut g = good.into_iter().next().unwrap();
    g.write_all(format!("{REQUEST_LINE}{REQUEST_REST}").as_bytes())
        .unwrap();
    assert!(status_line(&mut g).unwrap().starts_with("HTTP/1.1 101 "));
}

/// Over TLS the evicting thread cannot write a 503 into the session (the connection's own
/// thread holds it): an evicted TLS handshake is only shut down, never sent plaintext.
#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn an_evicted_tls_handshake_is_shut_down_without_plaintext() {
    let _lock = serial();
    let tls = common::test_tls();
    let server = echo_server(
        tls.server()
            .max_handshaking_per_ip(1)
            .handshake_timeout(Duration::from_secs(60)),
    );
    let addr = server.local_addr();
    let mut first = TcpStream::connect(addr).unwrap();
    first.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let _second = TcpStream::connect(addr).unwrap();
    let mut got = Vec::new();
    match first.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the evicted connection was not ended: {e}"),
    }
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // The TLS read the shutdown ended fails too: counted as the eviction only. The thread has
    // counted (or not) before it closes its descriptor; once only ours is left, it is final.
    // (Linux only: the descriptor is seen in /proc.)
    #[cfg(target_os = "linux")]
    {
        let port = first.local_addr().unwrap().port();
        assert!(eventually(|| common::connection_fds_on_port(port) == 1));
        let s = server.stats();
        assert_eq!((s.evicted, s.refused_bad_handshake), (1, 0), "{s:?}");
    }
}

/// A handshake whose thread is answering (the handler runs, the answer
/// and its linger follow) keeps its place until the thread is free, so threads never outnumber
/// `max_handshaking`. Before, evicting it only took it out of the count while its thread went
/// on, and a newcomer's thread ran beside it; now, with every place held by threads that are
/// answering, the newcomer is refused at once (503) and gets no thread.
#[test]
fn handshakes_that_are_answering_keep_their_places_and_a_newcomer_is_refused() {
    let _lock = serial();
    let in_handler = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let (entered, entries) = crossbeam_channel::unbounded();
    let server = {
        let (in_handler, most) = (in_handler.clone(), most.clone());
        Server::builder()
            .max_handshaking(2)
            .bind("127.0.0.1:0", move |_| {
                let now = in_handler.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _ = entered.send(());
                // Held until the test lets it go (or drops the sender).
                let _ = released.recv();
                in_handler.fetch_sub(1, Ordering::SeqCst);
                Accept::upgrade(Listener::new())
            })
            .expect("bind")
    };
    let addr = server.local_addr();
    let request = format!("{REQUEST_LINE}{REQUEST_REST}");
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            entries.recv_timeout(EVENT_TIMEOUT).expect("in the handler");
            s
        })
        .collect();
    // Both places are held by threads in the handler: the newcomer is answered at once, as it
    // connects. (It sends nothing first: a server that closes with a request unread resets the
    // connection, and Windows then drops the 503 the client had not read yet.)
    let mut newcomer = TcpStream::connect(addr).unwrap();
    newcomer.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    assert_eq!(
        status_line(&mut newcomer).expect("an answer without waiting for the handlers"),
        "HTTP/1.1 503 Service Unavailable: too many connections handshaking (max_handshaking 2)"
    );
    let stats = server.stats();
    assert_eq!(
        (stats.handshaking, stats.refused_cap, stats.evicted),
        (2, 1, 0),
        "{stats:?}"
    );
    for _ in 0..2 {
        release.send(()).unwrap();
    }
    for s in &mut held {
        assert!(status_line(s).unwrap().starts_with("HTTP/1.1 101 "));
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "threads in the handler at once"
    );
}
