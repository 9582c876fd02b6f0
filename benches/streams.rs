//! Streams: a large file sent from a file and received to a file, through each way syncws
//! offers, against raw TCP carrying the same bytes, on loopback. Each side is its own process,
//! so each side's memory is its own:
//!
//! - `raw`: a `TcpStream`, `io::copy` both ends (the lower bound);
//! - `listener`: `WebSocket::send_stream` from the file; the server's listener takes the
//!   message in parts (`on_message_part`) and writes them to the file;
//! - `connection`: `Connection::send_stream`; the server's `Accept::connection` reads it with
//!   `recv_stream` into the file;
//! - `bytes`: a `ByteStream` each side, `io::copy` (64 KiB buffers) both ways.
//!
//! Rounds interleave the four, 7 by default; each reports its median throughput (bytes
//! received per second, the receiver's clock from the connection to the last byte written)
//! and the most either side's resident memory grew (peak RSS, `VmHWM`, minus the RSS before
//! the transfer; Linux). Every round checks the received file is the sent one.
//!
//! Then a streamed send to a slow reader (`MockServer::throttle`): the sender's memory must
//! stay flat while the peer holds it back.
//!
//!     cargo bench --bench streams                 # 1 GiB, 7 rounds
//!     cargo bench --bench streams -- --quick      # 128 MiB, 3 rounds
//!     cargo bench --bench streams -- --size 256 --rounds 5   # MiB, rounds
//!     cargo bench --bench streams -- --only bytes            # one way (and raw TCP)

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use syncws::testing::{MockResponse, MockServer};
use syncws::{Accept, ByteStream, Client, Listener, MessageKind, Request, Server};

const KINDS: [&str; 4] = ["raw", "listener", "connection", "bytes"];
/// io::copy's buffers: one 64 KiB message per write on the byte stream.
const COPY_BUF: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let mut size_mib: u64 = 1024;
    let mut rounds = 7;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                size_mib = 128;
                rounds = 3;
            }
            "--size" => size_mib = it.next().and_then(|v| v.parse().ok()).expect("--size MiB"),
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            // One way only, raw TCP beside it (for a profiler).
            "--only" => only = it.next().cloned(),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    let size = size_mib << 20;
    let dir = tempdir();
    let source = dir.join("source.bin");
    write_source(&source, size);
    println!(
        "streams bench: {size_mib} MiB from a file to a file, {rounds} rounds, interleaved; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); KINDS.len()];
    for round in 0..rounds {
        for (k, kind) in KINDS.iter().enumerate() {
            if only.as_ref().is_some_and(|o| o != kind && *kind != "raw") {
                continue;
            }
            let out = dir.join(format!("received-{kind}.bin"));
            let run = transfer(kind, &source, &out);
            assert!(
                same_file(&source, &out),
                "{kind}, round {round}: the file changed"
            );
            let _ = std::fs::remove_file(&out);
            results[k].push(run);
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let raw = median(results[0].iter().map(|r| r.mb_per_s()).collect());
    println!();
    println!(
        "| way | MB/s (median) | × raw TCP | sender RSS growth, MiB (max) | receiver RSS growth, MiB (max) |"
    );
    println!("|---|---|---|---|---|");
    for (k, kind) in KINDS.iter().enumerate() {
        if results[k].is_empty() {
            continue;
        }
        let rate = median(results[k].iter().map(|r| r.mb_per_s()).collect());
        let grow = |f: fn(&Run) -> Option<u64>| {
            results[k]
                .iter()
                .filter_map(f)
                .max()
                .map_or("n/a".to_string(), |kib| {
                    format!("{:.1}", kib as f64 / 1024.0)
                })
        };
        println!(
            "| {kind} | {rate:.0} | {:.2} | {} | {} |",
            rate / raw,
            grow(|r| r.sender_kib),
            grow(|r| r.receiver_kib)
        );
    }
    let throttled = throttled_send(64 << 20, 32 << 20);
    println!();
    println!(
        "throttled: 64 MiB streamed to a MockServer reading 32 MiB/s took {:.1} s; the sender's RSS grew {}",
        throttled.0,
        throttled.1.map_or("n/a".to_string(), |kib| format!(
            "{:.1} MiB",
            kib as f64 / 1024.0
        ))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Clone, Debug)]
struct Run {
    bytes: u64,
    secs: f64,
    sender_kib: Option<u64>,
    receiver_kib: Option<u64>,
}

impl Run {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("syncws-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// `size` bytes that do not compress (xorshift), written once for every round.
fn write_source(path: &Path, size: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("source file"));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n]).expect("source file");
        left -= n as u64;
    }
    out.flush().expect("source file");
}

fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(fa), Ok(fb)) = (File::open(a), File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (BufReader::new(fa), BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut ra, &mut ba);
        let nb = read_full(&mut rb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// One transfer of `kind`: a receiver child (it says its port), then a sender child.
fn transfer(kind: &str, source: &Path, out: &Path) -> Run {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut receiver = Command::new(&exe)
        .args(["--child", "recv", kind, &out.to_string_lossy()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver child");
    let mut lines = io::BufReader::new(receiver.stdout.take().unwrap());
    let port_line = read_line(&mut lines);
    let port = port_line.strip_prefix("PORT ").expect("PORT").to_owned();
    let sender = Command::new(&exe)
        .args(["--child", "send", kind, &port, &source.to_string_lossy()])
        .output()
        .expect("the sender child");
    let sent = String::from_utf8_lossy(&sender.stdout).into_owned();
    let received = read_line(&mut lines);
    let _ = receiver.wait();
    let field = |line: &str, key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
    };
    let bytes: u64 = field(&received, "bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let secs: f64 = field(&received, "secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Run {
        bytes,
        secs,
        sender_kib: field(&sent, "rss_kib").and_then(|v| v.parse().ok()),
        receiver_kib: field(&received, "rss_kib").and_then(|v| v.parse().ok()),
    }
}

fn read_line(r: &mut impl io::BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("a line from the child");
    line.trim().to_owned()
}

// ---- the children ----

/// A field of /proc/self/status, in KiB (Linux).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

/// The RSS now, to measure growth from.
fn rss_baseline() -> Option<u64> {
    status_kib("VmRSS:")
}

/// How much the peak RSS passed `baseline`.
fn rss_growth(baseline: Option<u64>) -> String {
    match (baseline, status_kib("VmHWM:")) {
        (Some(b), Some(peak)) => format!("rss_kib={}", peak.saturating_sub(b)),
        _ => String::new(),
    }
}

fn child(args: &[String]) {
    let (role, kind) = (args[0].as_str(), args[1].as_str());
    match role {
        "throttled" => throttled_child(kind, args[2].parse().expect("size")),
        "recv" => receive(kind, Path::new(&args[2])),
        "send" => send(kind, args[2].parse().expect("port"), Path::new(&args[3])),
        _ => panic!("unknown child {role}"),
    }
}

/// The send queue both sides use: 4 MiB, a quarter of the default. A bulk stream needs no more
/// to keep loopback busy, and the sender's memory grows by about its queue (with the default
/// 16 MiB, up to 33 MiB was seen for `bytes`: 64 KiB buffers freed on the writer thread stay
/// cached in the sending thread's allocator arena). docs/streams.md advises the same.
const QUEUE: u64 = 4 << 20;

fn client() -> Client {
    Client::builder()
        .compression(false)
        .max_streamed_message_size(u64::MAX)
        .max_queue_size(QUEUE)
        .build()
}

fn send(kind: &str, port: u16, source: &Path) {
    let file = File::open(source).expect("the source file");
    let base = rss_baseline();
    let url = format!("ws://127.0.0.1:{port}/");
    let sent = match kind {
        "raw" => {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let n = io::copy(&mut BufReader::with_capacity(COPY_BUF, file), &mut tcp).unwrap();
            tcp.shutdown(std::net::Shutdown::Write).unwrap();
            // Until the receiver is done.
            let _ = tcp.read(&mut [0u8; 1]);
            n
        }
        "listener" => {
            let (tx, closed) = mpsc::channel();
            let listener = Listener::new().on_ended(move |_, _| {
                let _ = tx.send(());
            });
            let request = Request::builder(&url).build().unwrap();
            let ws = client().new_web_socket(request, listener);
            let n = ws
                .send_stream(MessageKind::Binary, file)
                .expect("send_stream");
            ws.close(1000, None).unwrap();
            closed.recv_timeout(Duration::from_secs(600)).unwrap();
            n
        }
        "connection" => {
            let request = Request::builder(&url).build().unwrap();
            let mut conn = client().connect(request).expect("connect");
            let n = conn
                .send_stream(MessageKind::Binary, file)
                .expect("send_stream");
            conn.close(1000, None).unwrap();
            while conn.recv().is_ok() {}
            n
        }
        "bytes" => {
            let request = Request::builder(&url).build().unwrap();
            let stream = ByteStream::connect_with(&client(), request).expect("connect");
            let (mut reader, mut writer) = stream.split();
            let n = io::copy(&mut BufReader::with_capacity(COPY_BUF, file), &mut writer).unwrap();
            writer.flush().unwrap();
            writer.shutdown().unwrap();
            // Until the receiver's close.
            let _ = io::copy(&mut reader, &mut io::sink());
            n
        }
        _ => panic!("unknown kind {kind}"),
    };
    println!("bytes={sent} {}", rss_growth(base));
}

fn receive(kind: &str, out: &Path) {
    let file = File::create(out).expect("the output file");
    let (done_tx, done) = mpsc::channel::<(u64, Instant)>();
    let (start_tx, started) = mpsc::channel::<Instant>();
    let server_config = || {
        Server::builder()
            .compression(false)
            .max_streamed_message_size(u64::MAX)
            .max_queue_size(QUEUE)
    };
    // The server is kept alive until the transfer is done.
    let (port, _server) = match kind {
        "raw" => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let (mut tcp, _) = listener.accept().unwrap();
                let t0 = Instant::now();
                let _ = start_tx.send(t0);
                let mut file = file;
                let n = copy_with(&mut tcp, &mut file);
                file.flush().unwrap();
                let _ = done_tx.send((n, Instant::now()));
                drop(tcp);
            });
            (port, None)
        }
        "listener" => one_transfer(
            server_config(),
            file,
            start_tx,
            done_tx,
            |mut file, done_tx| {
                let mut total = 0u64;
                Accept::upgrade(Listener::new().on_message_part(move |_ws, part| {
                    file.write_all(part.data()).unwrap();
                    total += part.data().len() as u64;
                    if part.is_last() {
                        file.flush().unwrap();
                        let _ = done_tx.send((total, Instant::now()));
                    }
                }))
            },
        ),
        "connection" => one_transfer(
            server_config(),
            file,
            start_tx,
            done_tx,
            |mut file, done_tx| {
                Accept::connection(move |mut conn| {
                    let mut message = conn.recv_stream().expect("the message");
                    let n = copy_with(&mut message, &mut file);
                    file.flush().unwrap();
                    drop(message);
                    let _ = done_tx.send((n, Instant::now()));
                    while conn.recv().is_ok() {}
                })
            },
        ),
        "bytes" => one_transfer(
            server_config(),
            file,
            start_tx,
            done_tx,
            |mut file, done_tx| {
                Accept::byte_stream(move |stream| {
                    let (mut reader, writer) = stream.split();
                    let n = copy_with(&mut reader, &mut file);
                    file.flush().unwrap();
                    let _ = done_tx.send((n, Instant::now()));
                    drop(writer);
                })
            },
        ),
        _ => panic!("unknown kind {kind}"),
    };
    let base = rss_baseline();
    println!("PORT {port}");
    let _ = io::stdout().flush();
    let t0 = started.recv().expect("a connection");
    let (n, end) = done.recv().expect("the transfer");
    println!(
        "bytes={n} secs={:.6} {}",
        end.duration_since(t0).as_secs_f64(),
        rss_growth(base)
    );
    let _ = io::stdout().flush();
}

/// A server for one transfer: the first upgrade gets the output file and the channel for its
/// end, as `accept` makes of them (the start is noted here); any later one is refused.
fn one_transfer(
    config: syncws::ServerBuilder,
    file: File,
    start_tx: mpsc::Sender<Instant>,
    done_tx: mpsc::Sender<(u64, Instant)>,
    accept: impl FnOnce(File, mpsc::Sender<(u64, Instant)>) -> Accept + Send + 'static,
) -> (u16, Option<Server>) {
    let slot = std::sync::Mutex::new(Some((file, start_tx, done_tx, accept)));
    let server = config
        .bind("127.0.0.1:0", move |_| {
            let Some((file, start_tx, done_tx, accept)) = slot.lock().unwrap().take() else {
                return Accept::reject(503, "one transfer");
            };
            let _ = start_tx.send(Instant::now());
            accept(file, done_tx)
        })
        .unwrap();
    (server.local_addr().port(), Some(server))
}

/// `io::copy` with a 64 KiB buffer (std's is 8 KiB).
fn copy_with(from: &mut impl Read, to: &mut impl Write) -> u64 {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => {
                to.write_all(&buf[..n]).unwrap();
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A streamed send of `size` bytes to a MockServer (in this process) that reads `rate` bytes
/// a second, from a sender child: the seconds it took and how much the sender's RSS grew.
fn throttled_send(size: u64, rate: u64) -> (f64, Option<u64>) {
    let server = MockServer::start().expect("a mock server");
    server.enqueue(
        MockResponse::upgrade()
            .throttle(rate)
            .within(Duration::from_secs(600))
            .expect_binary_where("the whole message", move |b| b.len() as u64 == size),
    );
    let exe = std::env::current_exe().expect("the bench's own path");
    let out = Command::new(exe)
        .args(["--child", "throttled", &server.url(), &size.to_string()])
        .output()
        .expect("the throttled child");
    server.verify();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
    };
    (
        field("secs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        field("rss_kib").and_then(|v| v.parse().ok()),
    )
}

/// Bytes that cost no memory to make: `len` of them, `(i % 251)`.
struct Pattern {
    len: u64,
    pos: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.pos + i as u64) % 251) as u8;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The throttled sender: a streamed send of `size` generated bytes.
fn throttled_child(url: &str, size: u64) {
    let request = Request::builder(url).build().unwrap();
    let conn = client().connect(request).expect("connect");
    let base = rss_baseline();
    let t0 = Instant::now();
    let sent = conn
        .send_stream(MessageKind::Binary, Pattern { len: size, pos: 0 })
        .expect("send_stream");
    assert!(conn.wait_drained(Duration::from_secs(600)));
    println!(
        "bytes={sent} secs={:.3} {}",
        t0.elapsed().as_secs_f64(),
        rss_growth(base)
    );
}
