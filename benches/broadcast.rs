//! Broadcast: one 1 KiB JSON message to 1,000 server-side sockets, uncompressed and
//! compressed (permessage-deflate, `server_no_context_takeover`), sent with a loop of `send`
//! (what there was before `Prepared`), with `Prepared::send_to` over a list, and with
//! `Topics::publish` to a topic every socket subscribes to, interleaved, 7 rounds, medians. Measured: the process's CPU time (user + system, every thread: the writers
//! compress and write) from the first send until every queue is written, and the allocations
//! (count and bytes) in that window, per broadcast.
//!
//!     cargo bench --bench broadcast                  # 1,000 sockets, 7 rounds
//!     cargo bench --bench broadcast -- --quick       # 200 sockets, 3 rounds
//!     cargo bench --bench broadcast -- --windows same     # memory: clients at the server's window
//!     cargo bench --bench broadcast -- --windows chosen   # ... and clients choosing windows
//!
//! `--windows` measures the process's RSS (Linux) when 16 threads (a chat's senders' reader
//! threads) broadcast to 7 clients that asked for `server_max_window_bits` 9 to 15, against 7
//! clients at the server's own window: a compressor kept per thread and per window would show
//! as 16 × 7 zlib states.
//!
//! The clients are raw TCP sockets that do the upgrade and then read only between rounds, so
//! their work is not measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncws::{Accept, Listener, Prepared, Server, Topics, WebSocket, WhenFull};

/// Counts allocations (all threads).
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The process's CPU time, user + system, every thread (Unix: getrusage).
#[cfg(unix)]
fn cpu() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    assert_eq!(r, 0, "getrusage");
    // SAFETY: initialised by the successful call above.
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Elsewhere (the bench builds for Windows, where CI only compiles it) there is no getrusage:
/// the bench says so instead of measuring.
#[cfg(not(unix))]
fn cpu() -> Duration {
    eprintln!("the broadcast bench measures CPU time with getrusage (Unix)");
    std::process::exit(2)
}

struct Setup {
    _server: Server,
    room: Vec<WebSocket>,
    topics: Topics,
    clients: Vec<TcpStream>,
}

fn setup(n: usize, compressed: bool) -> Setup {
    let room: Arc<Mutex<Vec<WebSocket>>> = Arc::default();
    let members = room.clone();
    let topics = Topics::new();
    let registry = topics.clone();
    let server = Server::builder()
        .compression(compressed)
        .server_no_context_takeover(true)
        .max_connections(n + 16)
        .max_connections_per_ip(n + 16)
        .max_queue_size(64 << 20)
        .ping_interval(Duration::ZERO)
        .bind("127.0.0.1:0", move |_| {
            let members = members.clone();
            let registry = registry.clone();
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                registry.subscribe(ws, "room");
                members.lock().unwrap().push(ws.clone());
            }))
        })
        .expect("bind");
    let ext = if compressed {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(server.local_addr()).expect("connect");
            s.write_all(
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut b).unwrap(), 1, "upgrade");
                head.push(b[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101"));
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    while room.lock().unwrap().len() < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let room = room.lock().unwrap().clone();
    Setup {
        _server: server,
        room,
        topics,
        clients,
    }
}

/// Reads what the clients got (outside the measured window).
fn drain(clients: &mut [TcpStream]) {
    let mut buf = vec![0u8; 64 * 1024];
    for c in clients {
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Way {
    Loop,
    Prepared,
    Topic,
}

/// Broadcasts per measurement: CPU time is read from the kernel's accounting, whose grain is
/// coarse for a single broadcast.
const PER_ROUND: u32 = 10;

/// One measured round of broadcasts of `message` to the room: per broadcast, (CPU,
/// allocations, allocated bytes).
fn broadcast(s: &mut Setup, message: &str, way: Way) -> (Duration, u64, u64) {
    let mut total = (Duration::ZERO, 0, 0);
    for _ in 0..PER_ROUND {
        let (c, a, b) = broadcast_once(s, message, way);
        total = (total.0 + c, total.1 + a, total.2 + b);
    }
    let n = u64::from(PER_ROUND);
    (total.0 / PER_ROUND, total.1 / n, total.2 / n)
}

fn broadcast_once(s: &mut Setup, message: &str, way: Way) -> (Duration, u64, u64) {
    drain(&mut s.clients);
    let (a0, b0, c0) = (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
        cpu(),
    );
    match way {
        Way::Loop => {
            for ws in &s.room {
                ws.send(message);
            }
        }
        Way::Prepared => {
            let d = Prepared::new(message).send_to(&s.room, WhenFull::Skip);
            assert_eq!(d.sent, s.room.len());
        }
        Way::Topic => {
            let d = s.topics.publish("room", message, WhenFull::Skip);
            assert_eq!(d.sent, s.room.len());
        }
    }
    for ws in &s.room {
        assert!(ws.wait_drained(Duration::from_secs(30)), "drained");
    }
    let c1 = cpu();
    (
        c1 - c0,
        ALLOCS.load(Ordering::Relaxed) - a0,
        ALLOC_BYTES.load(Ordering::Relaxed) - b0,
    )
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The process's resident set, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `--windows`: RSS after 16 threads broadcast to 7 clients offering windows 9 to 15 (or, with
/// `chosen` false, 7 clients at the server's window 15), with those threads still alive, as
/// pooled reader threads are.
fn windows(chosen: bool) -> (u64, u64) {
    let room: Arc<Mutex<Vec<WebSocket>>> = Arc::default();
    let members = room.clone();
    let topics = Topics::new();
    let registry = topics.clone();
    let server = Server::builder()
        .ping_interval(Duration::ZERO)
        .max_queue_size(64 << 20)
        .bind("127.0.0.1:0", move |_| {
            let members = members.clone();
            let registry = registry.clone();
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                registry.subscribe(ws, "room");
                members.lock().unwrap().push(ws.clone());
            }))
        })
        .expect("bind");
    let mut clients: Vec<TcpStream> = (9..=15u8)
        .map(|bits| {
            let bits = if chosen { bits } else { 15 };
            let mut s = TcpStream::connect(server.local_addr()).expect("connect");
            s.write_all(
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                     Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
                     server_max_window_bits={bits}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut b).unwrap(), 1, "upgrade");
                head.push(b[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101"));
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    while room.lock().unwrap().len() < 7 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let room = room.lock().unwrap().clone();
    let text = "a line of chat, compressible enough; ".repeat(200);
    let before = rss_kib();
    let done = Arc::new(std::sync::Barrier::new(17));
    let measured = Arc::new(std::sync::Barrier::new(17));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (room, text) = (room.clone(), text.clone());
            let (done, measured) = (done.clone(), measured.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    Prepared::new(text.as_str()).send_to(&room, WhenFull::Skip);
                }
                done.wait();
                measured.wait();
            })
        })
        .collect();
    done.wait();
    for ws in &room {
        assert!(ws.wait_drained(Duration::from_secs(30)), "drained");
    }
    drain(&mut clients);
    let after = rss_kib();
    measured.wait();
    for s in senders {
        s.join().unwrap();
    }
    drop(server);
    (before, after)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--windows") {
        // One case per process (`same` or `chosen`), so the allocator's memory from one case
        // does not count in the other's; both, one after the other, without.
        let cases: &[bool] = match args.get(i + 1).map(String::as_str) {
            Some("same") => &[false],
            Some("chosen") => &[true],
            _ => &[false, true],
        };
        for &chosen in cases {
            let (before, after) = windows(chosen);
            let case = if chosen {
                "7 clients choosing windows 9 to 15"
            } else {
                "7 clients at the server's window (15)"
            };
            println!(
                "{case}: RSS {before} KiB before, {after} KiB after 16 threads broadcast ({:+} KiB)",
                after as i64 - before as i64
            );
        }
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, rounds) = if quick { (200, 3) } else { (1000, 7) };
    // A 1 KiB JSON message, as a chat or feed sends.
    let mut message = String::from(r#"{"type":"update","items":["#);
    let mut id = 0;
    while message.len() < 1060 {
        id += 1;
        message.push_str(&format!(
            r#"{{"id":{id},"name":"item {id}","price":19.99}},"#
        ));
    }
    message.push_str(r#"null]}"#);
    println!(
        "broadcast bench: {} B message to {n} server-side sockets, {rounds} rounds, medians; {} cores",
        message.len(),
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!();
    println!("| case | way | CPU per broadcast | allocations | allocated bytes |");
    println!("|---|---|---|---|---|");
    for compressed in [false, true] {
        let mut s = setup(n, compressed);
        // Warm up both ways (first compressor allocations, frames, buffers).
        broadcast(&mut s, &message, Way::Loop);
        broadcast(&mut s, &message, Way::Prepared);
        broadcast(&mut s, &message, Way::Topic);
        let mut results: [Vec<(Duration, u64, u64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..rounds {
            results[0].push(broadcast(&mut s, &message, Way::Loop));
            results[1].push(broadcast(&mut s, &message, Way::Prepared));
            results[2].push(broadcast(&mut s, &message, Way::Topic));
        }
        let case = if compressed {
            "compressed"
        } else {
            "uncompressed"
        };
        let mut cpu_ms = [0.0f64; 3];
        for (i, way) in ["loop of send", "Prepared::send_to", "Topics::publish"]
            .iter()
            .enumerate()
        {
            let r = &results[i];
            let c = median(r.iter().map(|x| x.0.as_secs_f64() * 1e3).collect());
            let a = median(r.iter().map(|x| x.1).collect());
            let b = median(r.iter().map(|x| x.2).collect());
            cpu_ms[i] = c;
            println!("| {case} | {way} | {c:.2} ms | {a} | {b} |");
        }
        println!(
            "| {case} | loop / prepared | {:.1}× | | |",
            cpu_ms[0] / cpu_ms[1].max(1e-9)
        );
        println!(
            "| {case} | publish / prepared | {:.2}× | | |",
            cpu_ms[2] / cpu_ms[1].max(1e-9)
        );
    }
}
