//! Soak test: many sockets × many messages through an echo peer, checking that nothing is lost,
//! duplicated, reordered or corrupted, that every socket closes cleanly, and that memory,
//! threads and descriptors do not leak. See `docs/soak.md`; `scripts/soak.sh` runs all four
//! combinations (syncws or Python peer, ws or wss).
//!
//! ```text
//! cargo run --release --example soak -- [--sockets N] [--messages M] [--peer syncws|python]
//!     [--tls] [--python-url URL] [--cert-dir DIR] [--window W] [--batch B]
//!     [--stall-timeout SECS] [--report-every SECS]
//! cargo run --release --example soak -- --gen-cert --cert-dir DIR
//! ```
//!
//! - `--sockets N` (1000) client sockets open at once, each sending `--messages M` (10000)
//!   numbered messages with at most `--window W` (64) of them unechoed; sockets connect in
//!   batches of `--batch B` (100) and all start sending once the last one is open.
//! - `--peer syncws` (default) runs the crate's own echo `Server` in this process (wss with a
//!   self-signed certificate when `--tls`); `--peer python` connects to `--python-url`
//!   (`scripts/soak_peer.py`, on the `websockets` library).
//! - `--cert-dir DIR`: with `--gen-cert`, write a fresh self-signed `localhost` certificate
//!   (`cert.pem`, `key.pem`) there and exit; with `--tls`, use (or create) the certificate
//!   there, so that the client trusts the Python server's certificate.
//! - `--stall-timeout SECS` (60): fail when no echo arrives and no socket ends for that long.
//! - Every `--report-every SECS` (10) a progress line; at the end a report, the failed
//!   criteria and one `SOAK ok|FAIL key=value...` line.
//! - Exit status: 0 when every criterion holds, 1 when one fails, 2 for bad usage or an
//!   environment that cannot run the soak (e.g. too low a descriptor limit).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use syncws::{
    Accept, Client, Error, Message, Request, Response, Server, WebSocket, WebSocketListener,
    native_tls,
};

/// RSS after warm-up may reach `warm × RSS_FACTOR + RSS_SLACK_KIB`.
const RSS_FACTOR: f64 = 1.25;
const RSS_SLACK_KIB: u64 = 16 * 1024;
/// Bytes still allocated at the end, once every socket is gone, may exceed the baseline by
/// `HEAP_END_SLACK_KIB` plus `HEAP_END_PER_SOCKET_KIB` per socket. Not a leak of syncws:
/// parking_lot sizes its table of parked threads to 3 × 64 bytes per thread ever alive at once
/// (4 per socket pair), rounded up to a power of two, and keeps every smaller table it
/// outgrew: up to ~3 KiB per socket pair, for the life of the process.
const HEAP_END_SLACK_KIB: u64 = 1024;
const HEAP_END_PER_SOCKET_KIB: u64 = 4;
/// The warm-up sample is taken once this share of all echoes has arrived.
const WARM_UP_SHARE: f64 = 0.10;
/// How long the end of the run may take to give back threads and descriptors.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Syncws,
    Python,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Syncws => "syncws",
            Peer::Python => "python",
        }
    }
}

#[derive(Debug)]
struct Options {
    sockets: u32,
    messages: u32,
    peer: Peer,
    tls: bool,
    python_url: Option<String>,
    cert_dir: Option<PathBuf>,
    gen_cert: bool,
    window: u32,
    batch: u32,
    stall_timeout: Duration,
    report_every: Duration,
}

const USAGE: &str = "usage: soak [--sockets N] [--messages M] [--peer syncws|python] [--tls]
            [--python-url URL] [--cert-dir DIR] [--window W] [--batch B]
            [--stall-timeout SECS] [--report-every SECS]
       soak --gen-cert --cert-dir DIR";

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        sockets: 1000,
        messages: 10_000,
        peer: Peer::Syncws,
        tls: false,
        python_url: None,
        cert_dir: None,
        gen_cert: false,
        window: 64,
        batch: 100,
        stall_timeout: Duration::from_secs(60),
        report_every: Duration::from_secs(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        fn number(name: &str, v: String) -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("{name}: '{v}' is not a whole number"))
        }
        match arg.as_str() {
            "--sockets" => o.sockets = number(&arg, value(&arg)?)?,
            "--messages" => o.messages = number(&arg, value(&arg)?)?,
            "--window" => o.window = number(&arg, value(&arg)?)?.max(1),
            "--batch" => o.batch = number(&arg, value(&arg)?)?.max(1),
            "--stall-timeout" => {
                o.stall_timeout = Duration::from_secs(number(&arg, value(&arg)?)?.max(1).into())
            }
            "--report-every" => {
                o.report_every = Duration::from_secs(number(&arg, value(&arg)?)?.max(1).into())
            }
            "--peer" => {
                o.peer = match value(&arg)?.as_str() {
                    "syncws" => Peer::Syncws,
                    "python" => Peer::Python,
                    other => return Err(format!("--peer: '{other}' is not syncws or python")),
                }
            }
            "--tls" => o.tls = true,
            "--python-url" => o.python_url = Some(value(&arg)?),
            "--cert-dir" => o.cert_dir = Some(PathBuf::from(value(&arg)?)),
            "--gen-cert" => o.gen_cert = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if o.gen_cert && o.cert_dir.is_none() {
        return Err("--gen-cert needs --cert-dir".into());
    }
    if !o.gen_cert && o.peer == Peer::Python {
        match &o.python_url {
            None => return Err("--peer python needs --python-url (scripts/soak_peer.py)".into()),
            Some(u) if u.starts_with("wss:") != o.tls => {
                return Err(format!(
                    "--python-url {u} does not match {}",
                    if o.tls {
                        "--tls"
                    } else {
                        "plain ws (no --tls)"
                    }
                ));
            }
            Some(_) => {}
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Process resources
// ---------------------------------------------------------------------------------------------

/// The system allocator, counting the bytes currently allocated through it: every Rust
/// allocation of the process (syncws, zlib-rs, this driver), though not OpenSSL's own mallocs.
/// Unlike RSS, this is exact: what is still allocated once every socket is gone has leaked.
struct CountingAlloc;

static HEAP_LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter
// has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller upholds `alloc`'s contract).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with this layout.
        unsafe { System.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn heap_live_kib() -> u64 {
    (HEAP_LIVE.load(Ordering::Relaxed).max(0) as u64) / 1024
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    heap_kib: u64,
    threads: u64,
    fds: u64,
}

impl Sample {
    fn max(self, o: Sample) -> Sample {
        Sample {
            rss_kib: self.rss_kib.max(o.rss_kib),
            heap_kib: self.heap_kib.max(o.heap_kib),
            threads: self.threads.max(o.threads),
            fds: self.fds.max(o.fds),
        }
    }
}

fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn sample() -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // The listing's own directory descriptor is in the listing: leave it out.
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(1)
        .saturating_sub(1);
    Sample {
        rss_kib: status_field(&status, "VmRSS:"),
        heap_kib: heap_live_kib(),
        threads: status_field(&status, "Threads:"),
        fds,
    }
}

/// Thread names and how many of each, for reporting what is left over.
fn thread_names() -> BTreeMap<String, u32> {
    let mut names = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            *names.entry(comm.trim_end().to_owned()).or_insert(0) += 1;
        }
    }
    names
}

/// What each open descriptor points at, for reporting what is left over.
fn fd_targets() -> BTreeMap<String, u32> {
    let mut targets = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let t = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            // socket:[123] → socket
            let kind = t.split(":[").next().unwrap_or(&t).to_owned();
            *targets.entry(kind).or_insert(0) += 1;
        }
    }
    targets
}

/// Resident memory by kind of mapping (anonymous, `[heap]`, files, ...): KiB and mappings.
fn rss_by_mapping() -> BTreeMap<String, (u64, u32)> {
    let mut by = BTreeMap::new();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut kind = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address range, perms, offset, device, inode, path.
            let path = words.nth(4).unwrap_or("");
            kind = match path {
                "" => "anonymous".to_owned(),
                p if p.starts_with('[') => p.to_owned(),
                _ => "files".to_owned(),
            };
            by.entry(kind.clone()).or_insert((0, 0)).1 += 1;
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            by.entry(kind.clone()).or_insert((0, 0)).0 += kib;
        }
    }
    by
}

/// The soft limit of `name` in /proc/self/limits (None: unlimited or unreadable).
fn soft_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Samples the process every second, and once at the moment the warm-up share is reached.
struct Sampler {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SamplerState>>,
    thread: Option<thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SamplerState {
    warm: Option<Sample>,
    max_after_warm: Sample,
    max: Sample,
    last: Sample,
    /// The samples taken at 10%, 20%, ... of the echoes.
    marks: Vec<Sample>,
}

impl Sampler {
    /// Samples every second, at `warm_at` echoes (the warm-up sample) and at every
    /// `mark_every` echoes (10%, 20%, ...).
    fn start(progress: Arc<AtomicU64>, warm_at: u64, mark_every: u64) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        let (s, st) = (stop.clone(), state.clone());
        let mark_every = mark_every.max(1);
        let thread = thread::Builder::new()
            .name("soak-sampler".into())
            .spawn(move || {
                let mut last = Instant::now()
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or_else(Instant::now);
                let mut next_mark = mark_every;
                let mut warm_taken = false;
                while !s.load(Ordering::Acquire) {
                    let echoes = progress.load(Ordering::Relaxed);
                    let mark = echoes >= next_mark;
                    let warm = !warm_taken && echoes >= warm_at;
                    if mark || warm || last.elapsed() >= Duration::from_secs(1) {
                        if mark {
                            next_mark += mark_every;
                        }
                        last = Instant::now();
                        let now = sample();
                        let mut g = st.lock().unwrap();
                        if warm {
                            warm_taken = true;
                            g.warm = Some(now);
                        }
                        if mark {
                            g.marks.push(now);
                        }
                        if g.warm.is_some() {
                            g.max_after_warm = g.max_after_warm.max(now);
                        }
                        g.max = g.max.max(now);
                        g.last = now;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            })
            .expect("sampler thread");
        Sampler {
            stop,
            state,
            thread: Some(thread),
        }
    }

    fn last(&self) -> Sample {
        self.state.lock().unwrap().last
    }

    fn finish(mut self) -> (Option<Sample>, Sample, Sample, Vec<Sample>) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let g = self.state.lock().unwrap();
        (g.warm, g.max_after_warm, g.max, g.marks.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Pieces of text messages: ASCII words and 2-, 3- and 4-byte UTF-8 characters, so that
/// fragmentation and compression split multi-byte characters at arbitrary points.
const PIECES: &[&str] = &[
    "soak ",
    "syncws ",
    "echo ",
    "frame ",
    "é",
    "naïve ",
    "€",
    "→ ",
    "𝄞",
    "日本 ",
    "0123456789",
    "message ",
    "ω",
    "\u{1f980} ",
];

/// The largest message size.
const LARGEST: u64 = 64 * 1024;

/// Message `seq` of socket `sock`: the same (kind, size, content) every time it is made.
///
/// Messages 0 and 1 are 4 KiB (so compressed) text and patterned binary, 2 and 3 the largest
/// (64 KiB) random binary and text. After them, sizes:
/// 93.6% small (16–127 bytes), 6% medium (128–1023), 0.4% large (1–64 KiB; only messages of
/// 1 KiB and more are compressed, syncws sends smaller ones uncompressed). Half text (ASCII
/// words and 2- to 4-byte characters), half binary, of which half random (incompressible) and
/// half a repeating pattern. The first 16 bytes identify the message: text
/// `{seq:08x}{sock:08x}`, binary seq and sock as little-endian u32s and 8 padding bytes.
fn make_message(sock: u32, seq: u32) -> Message {
    let h = splitmix((u64::from(sock) << 32) | u64::from(seq));
    let r = (h >> 8) % 1000;
    let mut size = if r < 4 {
        1024 + (h >> 24) % (LARGEST - 1024 + 1)
    } else if r < 64 {
        128 + (h >> 24) % 896
    } else {
        16 + (h >> 24) % 112
    } as usize;
    // 0: text, 1: random binary, 2: patterned binary.
    // 0: text, 1: random binary, 2: patterned binary.
    let mut kind = if h & 1 == 0 { 0 } else { 1 + ((h >> 4) & 1) };
    // Each socket starts with compressed text and binary messages and with the largest ones,
    // so that its compression contexts (allocated on first use) and its buffers (which keep
    // the capacity of the largest message so far) reach their full size before the warm-up
    // sample.
    match seq {
        0 => (kind, size) = (0, 4096),
        1 => (kind, size) = (2, 4096),
        2 => (kind, size) = (1, LARGEST as usize),
        3 => (kind, size) = (0, LARGEST as usize),
        _ => {}
    }
    let mut rng = splitmix(h);
    if kind == 0 {
        let mut s = String::with_capacity(size + 4);
        s.push_str(&format!("{seq:08x}{sock:08x}"));
        while s.len() < size {
            rng = splitmix(rng);
            s.push_str(PIECES[(rng % PIECES.len() as u64) as usize]);
        }
        Message::Text(s)
    } else {
        let mut b = Vec::with_capacity(size);
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&sock.to_le_bytes());
        b.extend_from_slice(&[0xa5; 8]);
        if kind == 1 {
            while b.len() < size {
                rng = splitmix(rng);
                let take = (size - b.len()).min(8);
                b.extend_from_slice(&rng.to_le_bytes()[..take]);
            }
        } else {
            let period = 1 + (rng % 61) as usize;
            let mut i = 0usize;
            while b.len() < size {
                b.push((i % period) as u8 ^ 0x3c);
                i += 1;
            }
        }
        Message::Binary(b)
    }
}

/// The (seq, sock) a message says it is.
fn identify(m: &Message) -> Option<(u32, u32)> {
    match m {
        Message::Text(t) => {
            let seq = u32::from_str_radix(t.get(0..8)?, 16).ok()?;
            let sock = u32::from_str_radix(t.get(8..16)?, 16).ok()?;
            Some((seq, sock))
        }
        Message::Binary(b) if b.len() >= 8 => Some((
            u32::from_le_bytes(b[0..4].try_into().ok()?),
            u32::from_le_bytes(b[4..8].try_into().ok()?),
        )),
        Message::Binary(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Client sockets
// ---------------------------------------------------------------------------------------------

/// A socket's open or terminal callback, with its id.
enum Event {
    Opened(u32),
    Finished(u32),
}

/// What all client sockets share.
struct Shared {
    messages: u32,
    window: u32,
    /// Distinct echoes received, all sockets.
    echoed: Arc<AtomicU64>,
    /// Payload bytes of those echoes.
    bytes: AtomicU64,
    /// Held for writing by the main thread until every socket is open.
    gate: RwLock<()>,
    events: mpsc::Sender<Event>,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Running,
    Closed(u16, String),
    Failed(String),
}

struct SockState {
    opened: bool,
    next_send: u32,
    /// Distinct sequence numbers received.
    received: u32,
    max_seen: Option<u32>,
    seen: Vec<u64>,
    duplicated: u64,
    reordered: u64,
    corrupt: u64,
    misdelivered: u64,
    send_refused: u64,
    close_started: bool,
    close_started_at: Option<Instant>,
    closing_code: Option<u16>,
    outcome: Outcome,
    finished_at: Option<Instant>,
    first_problem: Option<String>,
}

impl SockState {
    fn new(messages: u32) -> SockState {
        SockState {
            opened: false,
            next_send: 0,
            received: 0,
            max_seen: None,
            seen: vec![0; (messages as usize).div_ceil(64)],
            duplicated: 0,
            reordered: 0,
            corrupt: 0,
            misdelivered: 0,
            send_refused: 0,
            close_started: false,
            close_started_at: None,
            closing_code: None,
            outcome: Outcome::Running,
            finished_at: None,
            first_problem: None,
        }
    }

    fn problem(&mut self, what: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }
}

struct SoakSocket {
    id: u32,
    state: Arc<Mutex<SockState>>,
    /// `received`, readable without the lock (for the progress reports).
    progress: Arc<AtomicU32>,
    shared: Arc<Shared>,
}

/// Sends the next message of the socket, if any is left.
fn send_next(id: u32, ws: &WebSocket, st: &mut SockState, messages: u32) {
    if st.next_send >= messages {
        return;
    }
    let seq = st.next_send;
    st.next_send += 1;
    if !ws.send(make_message(id, seq)) {
        st.send_refused += 1;
        st.problem(format!(
            "send of #{seq} refused (queue_size {})",
            ws.queue_size()
        ));
    }
}

fn start_close(ws: &WebSocket, st: &mut SockState) {
    if !st.close_started {
        st.close_started = true;
        st.close_started_at = Some(Instant::now());
        if !matches!(ws.close(1000, Some("soak done")), Ok(true)) {
            st.problem("close(1000) did not start a close".into());
        }
    }
}

/// Starts the traffic of an open socket: its first `window` messages. Runs on the socket's own
/// thread (in `on_open`), so that 1000 sockets start at once: the main thread would need
/// seconds for them, as each send wakes a socket thread and the main thread then waits its
/// turn behind every busy one.
fn start_traffic(id: u32, ws: &WebSocket, state: &Mutex<SockState>, shared: &Shared) {
    let mut st = state.lock().unwrap();
    for _ in 0..shared.window.min(shared.messages) {
        send_next(id, ws, &mut st, shared.messages);
    }
    if shared.messages == 0 {
        start_close(ws, &mut st);
    }
}

impl WebSocketListener for SoakSocket {
    fn on_open(&mut self, ws: &WebSocket, _response: &Response) {
        self.state.lock().unwrap().opened = true;
        let _ = self.shared.events.send(Event::Opened(self.id));
        // Wait (this socket's reader thread only) until every socket is open.
        let _open = self.shared.gate.read().unwrap();
        start_traffic(self.id, ws, &self.state, &self.shared);
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let m = self.shared.messages;
        let mut st = self.state.lock().unwrap();
        let Some((seq, sock)) = identify(&message) else {
            st.corrupt += 1;
            st.problem(format!("unidentifiable echo of {} bytes", message.len()));
            return;
        };
        if sock != self.id {
            st.misdelivered += 1;
            st.problem(format!("echo of socket {sock}'s #{seq} arrived here"));
            return;
        }
        if seq >= st.next_send {
            st.corrupt += 1;
            let next = st.next_send;
            st.problem(format!("echo of #{seq}, never sent (next is {next})"));
            return;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if st.seen[word] & bit != 0 {
            st.duplicated += 1;
            st.problem(format!("duplicate echo of #{seq}"));
            return;
        }
        st.seen[word] |= bit;
        st.received += 1;
        self.progress.store(st.received, Ordering::Relaxed);
        match st.max_seen {
            Some(max) if seq < max => {
                st.reordered += 1;
                st.problem(format!("echo of #{seq} after #{max}"));
            }
            _ => st.max_seen = Some(seq),
        }
        if make_message(self.id, seq) != message {
            st.corrupt += 1;
            st.problem(format!("echo of #{seq} differs from what was sent"));
        }
        self.shared.echoed.fetch_add(1, Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_add(message.len() as u64, Ordering::Relaxed);
        // One more out for each echo in: `window` messages in flight (sent, not yet echoed).
        if st.next_send - st.received < self.shared.window {
            send_next(self.id, ws, &mut st, m);
        }
        if st.received == m {
            start_close(ws, &mut st);
        }
    }

    fn on_closing(&mut self, _ws: &WebSocket, code: u16, _reason: &str) {
        self.state.lock().unwrap().closing_code = Some(code);
    }

    fn on_closed(&mut self, _ws: &WebSocket, code: u16, reason: &str) {
        let mut st = self.state.lock().unwrap();
        st.outcome = Outcome::Closed(code, reason.to_owned());
        st.finished_at = Some(Instant::now());
        drop(st);
        let _ = self.shared.events.send(Event::Finished(self.id));
    }

    fn on_failure(&mut self, _ws: &WebSocket, error: Error, _response: Option<&Response>) {
        let mut st = self.state.lock().unwrap();
        st.outcome = Outcome::Failed(error.to_string());
        st.finished_at = Some(Instant::now());
        drop(st);
        let _ = self.shared.events.send(Event::Finished(self.id));
    }
}

// ---------------------------------------------------------------------------------------------
// The syncws echo peer
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct ServerStats {
    accepted: AtomicU64,
    messages: AtomicU64,
    send_refused: AtomicU64,
    closed_1000: AtomicU64,
    closed_other: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ServerStats {
    fn finished(&self) -> u64 {
        self.closed_1000.load(Ordering::Acquire)
            + self.closed_other.load(Ordering::Acquire)
            + self.failed.load(Ordering::Acquire)
    }
}

struct EchoSocket(Arc<ServerStats>);

impl WebSocketListener for EchoSocket {
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.0.messages.fetch_add(1, Ordering::Relaxed);
        if !ws.send(message) {
            self.0.send_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn on_closed(&mut self, _ws: &WebSocket, code: u16, _reason: &str) {
        if code == 1000 {
            self.0.closed_1000.fetch_add(1, Ordering::AcqRel);
        } else {
            self.0.closed_other.fetch_add(1, Ordering::AcqRel);
        }
    }
    fn on_failure(&mut self, _ws: &WebSocket, error: Error, _response: Option<&Response>) {
        self.0
            .first_failure
            .lock()
            .unwrap()
            .get_or_insert_with(|| error.to_string());
        self.0.failed.fetch_add(1, Ordering::AcqRel);
    }
}

// ---------------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------------

/// A fresh self-signed certificate for `localhost` and 127.0.0.1, valid for 30 days: (cert PEM,
/// PKCS#8 key PEM). rcgen, so the example builds wherever syncws does.
fn make_certificate() -> Result<(Vec<u8>, Vec<u8>), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    // Its own CA, so that clients can trust it as a root.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(30);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem().into_bytes(), key.serialize_pem().into_bytes()))
}

fn write_certificate(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (cert, key) = make_certificate().map_err(|e| format!("making a certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (file, pem) in [("cert.pem", &cert), ("key.pem", &key)] {
        let p = dir.join(file);
        std::fs::write(&p, pem).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok((cert, key))
}

/// The certificate to serve and trust: loaded from `--cert-dir` if it is there, else made.
fn certificate(dir: Option<&Path>) -> Result<(Vec<u8>, Vec<u8>), String> {
    let Some(dir) = dir else {
        return make_certificate().map_err(|e| format!("making a certificate: {e}"));
    };
    match (
        std::fs::read(dir.join("cert.pem")),
        std::fs::read(dir.join("key.pem")),
    ) {
        (Ok(c), Ok(k)) => Ok((c, k)),
        _ => write_certificate(dir),
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Gives the allocator's free pages back to the OS, so that RSS at the end shows what is still
/// allocated rather than what glibc keeps cached in its arenas (which, with thousands of
/// threads, is hundreds of MiB of already freed memory).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn main() -> ExitCode {
    env_logger::init();
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.gen_cert {
        let dir = o.cert_dir.as_deref().expect("checked");
        return match write_certificate(dir) {
            Ok(_) => {
                println!("wrote {0}/cert.pem and {0}/key.pem", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("soak: {e}");
                ExitCode::from(2)
            }
        };
    }
    match run(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// Checks that the process may open enough descriptors and threads.
fn check_limits(o: &Options) -> Result<(), String> {
    let per_socket = if o.peer == Peer::Syncws { 2 } else { 1 };
    let fds_needed = u64::from(o.sockets) * per_socket + 64;
    if let Some(limit) = soft_limit("Max open files")
        && limit < fds_needed
    {
        return Err(format!(
            "the open-file limit is {limit} but {} sockets with the {} peer need about \
             {fds_needed} descriptors; raise it (ulimit -n {fds_needed}) or use fewer --sockets",
            o.sockets,
            o.peer.name()
        ));
    }
    let threads_needed = u64::from(o.sockets) * 2 * per_socket + 16;
    let threads_max = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(max) = threads_max
        && max < threads_needed
    {
        return Err(format!(
            "kernel.threads-max is {max} but the run needs about {threads_needed} threads; \
             use fewer --sockets"
        ));
    }
    if let Some(limit) = soft_limit("Max processes")
        && limit < threads_needed
    {
        // Root is not held to RLIMIT_NPROC, so this is only a warning.
        eprintln!(
            "soak: warning: the process limit (ulimit -u) is {limit}; the run needs about \
             {threads_needed} threads"
        );
    }
    Ok(())
}

fn run(o: &Options) -> Result<bool, String> {
    check_limits(o)?;
    let total = u64::from(o.sockets) * u64::from(o.messages);
    println!(
        "soak: peer={} tls={} sockets={} messages/socket={} total={} window={} batch={}",
        o.peer.name(),
        o.tls,
        o.sockets,
        o.messages,
        total,
        o.window,
        o.batch
    );

    // TLS material first, so that its one-time costs are in the baseline.
    let tls = if o.tls {
        let (cert, key) = certificate(o.cert_dir.as_deref())?;
        let connector = native_tls::TlsConnector::builder()
            .add_root_certificate(
                native_tls::Certificate::from_pem(&cert).map_err(|e| format!("cert: {e}"))?,
            )
            .build()
            .map_err(|e| format!("TLS connector: {e}"))?;
        let acceptor = if o.peer == Peer::Syncws {
            let id = native_tls::Identity::from_pkcs8(&cert, &key)
                .map_err(|e| format!("TLS identity: {e}"))?;
            Some(native_tls::TlsAcceptor::new(id).map_err(|e| format!("TLS acceptor: {e}"))?)
        } else {
            None
        };
        Some((connector, acceptor))
    } else {
        None
    };

    let echoed = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::start(
        echoed.clone(),
        ((total as f64 * WARM_UP_SHARE) as u64).max(1),
        (total / 10).max(1),
    );
    thread::sleep(Duration::from_millis(50));
    release_free_memory();
    let base = sample();
    println!(
        "baseline: rss={} threads={} fds={}",
        mib(base.rss_kib),
        base.threads,
        base.fds
    );

    // The peer.
    let server_stats = Arc::new(ServerStats::default());
    let mut server = None;
    let url = match o.peer {
        Peer::Syncws => {
            let mut b = Server::builder()
                .thread_keep_alive(Duration::ZERO)
                .max_connections(o.sockets as usize + 16)
                // Every socket comes from 127.0.0.1, in batches of `--batch` at once: the
                // per-address caps, there for hosts among many, would refuse and evict them.
                .max_connections_per_ip(usize::MAX)
                .max_handshaking_per_ip(usize::MAX);
            if let Some((_, Some(acceptor))) = &tls {
                b = b.tls(acceptor.clone());
            }
            let stats = server_stats.clone();
            let s = b
                .bind("127.0.0.1:0", move |_request| {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    Accept::upgrade(EchoSocket(stats.clone()))
                })
                .map_err(|e| format!("starting the echo server: {e}"))?;
            let url = s.url();
            server = Some(s);
            url
        }
        Peer::Python => o.python_url.clone().expect("checked"),
    };
    println!("peer: {url}");

    let mut client = Client::builder()
        .thread_keep_alive(Duration::ZERO)
        // Keepalive pings interleave control frames with the data; generous pong timeout
        // for a loaded machine.
        .ping_interval(Duration::from_secs(10))
        .pong_timeout(Duration::from_secs(60));
    if let Some((connector, _)) = &tls {
        client = client.tls_connector(connector.clone());
    }
    let client = client.build();
    let request = Request::builder(&url)
        .build()
        .map_err(|e| format!("{url}: {e}"))?;

    let (events_tx, events) = mpsc::channel();
    let shared = Arc::new(Shared {
        messages: o.messages,
        window: o.window,
        echoed: echoed.clone(),
        bytes: AtomicU64::new(0),
        gate: RwLock::new(()),
        events: events_tx,
    });

    // Open every socket, in batches, then start them all at once: each `on_open` waits for
    // the gate, held shut until the last socket is open.
    let gate = shared.gate.write().unwrap();
    let started = Instant::now();
    let mut sockets: Vec<(WebSocket, Arc<Mutex<SockState>>)> =
        Vec::with_capacity(o.sockets as usize);
    let mut progress_of: Vec<Arc<AtomicU32>> = Vec::with_capacity(o.sockets as usize);
    let mut finished = 0u32;
    let mut open_failed = false;
    while (sockets.len() as u32) < o.sockets && !open_failed {
        let n = o.batch.min(o.sockets - sockets.len() as u32);
        for _ in 0..n {
            let id = sockets.len() as u32;
            let state = Arc::new(Mutex::new(SockState::new(o.messages)));
            let progress = Arc::new(AtomicU32::new(0));
            progress_of.push(progress.clone());
            let ws = client.new_web_socket(
                request.clone(),
                SoakSocket {
                    id,
                    state: state.clone(),
                    progress,
                    shared: shared.clone(),
                },
            );
            sockets.push((ws, state));
        }
        let first = sockets.len() as u32 - n;
        let mut waiting = n;
        while waiting > 0 {
            match events.recv_timeout(Duration::from_secs(30)) {
                Ok(Event::Opened(id)) => {
                    if id >= first {
                        waiting -= 1;
                    }
                }
                Ok(Event::Finished(id)) => {
                    finished += 1;
                    if !sockets[id as usize].1.lock().unwrap().opened {
                        // on_failure before on_open: this socket never opened.
                        waiting -= 1;
                        open_failed = true;
                    }
                }
                Err(_) => {
                    eprintln!("soak: {waiting} sockets of a batch did not open within 30 s");
                    open_failed = true;
                    break;
                }
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    println!(
        "opened {} sockets in {open_secs:.1} s{}",
        sockets.len(),
        if open_failed { " (some failed)" } else { "" }
    );

    // Traffic.
    let t0 = Instant::now();
    let mut stalled = false;
    if open_failed {
        for (ws, _) in &sockets {
            ws.cancel();
        }
        drop(gate);
    } else {
        drop(gate);
        let mut last_progress = (0u64, 0u32);
        let mut last_change = Instant::now();
        let mut last_report = Instant::now();
        while finished < o.sockets {
            match events.recv_timeout(Duration::from_millis(500)) {
                Ok(Event::Finished(_)) => finished += 1,
                Ok(Event::Opened(_)) => {}
                Err(_) => {}
            }
            let progress = (echoed.load(Ordering::Relaxed), finished);
            if progress != last_progress {
                last_progress = progress;
                last_change = Instant::now();
            } else if last_change.elapsed() >= o.stall_timeout {
                stalled = true;
                break;
            }
            if last_report.elapsed() >= o.report_every {
                last_report = Instant::now();
                let s = sampler.last();
                let secs = t0.elapsed().as_secs_f64();
                let mut per: Vec<u32> = progress_of
                    .iter()
                    .map(|p| p.load(Ordering::Relaxed))
                    .collect();
                per.sort_unstable();
                println!(
                    "  {secs:6.0} s  echoes {}/{} ({:.1}%)  {:.0}/s  per socket min/median/max \
                     {}/{}/{}  closed {finished}  rss={} heap={} threads={} fds={}",
                    progress.0,
                    total,
                    100.0 * progress.0 as f64 / total.max(1) as f64,
                    progress.0 as f64 / secs,
                    per.first().unwrap_or(&0),
                    per.get(per.len() / 2).unwrap_or(&0),
                    per.last().unwrap_or(&0),
                    mib(s.rss_kib),
                    mib(s.heap_kib),
                    s.threads,
                    s.fds
                );
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();

    if stalled {
        eprintln!(
            "soak: STALL: no echo and no socket finished for {:?}; stuck sockets:",
            o.stall_timeout
        );
        let mut shown = 0;
        for (id, (ws, state)) in sockets.iter().enumerate() {
            let st = state.lock().unwrap();
            if st.outcome == Outcome::Running && shown < 10 {
                shown += 1;
                eprintln!(
                    "  socket {id}: state={:?} sent={} received={} close_started={} \
                     closing_code={:?} queue_size={} first_problem={:?}",
                    ws.state(),
                    st.next_send,
                    st.received,
                    st.close_started,
                    st.closing_code,
                    ws.queue_size(),
                    st.first_problem
                );
            }
        }
        for (ws, _) in &sockets {
            ws.cancel();
        }
    }

    // Every socket's threads back in the pool.
    let mut unfinished = 0;
    for (ws, _) in &sockets {
        if !ws.wait_finished(Duration::from_secs(10)) {
            unfinished += 1;
        }
    }

    // Totals over the client sockets.
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let mut reordered = 0u64;
    let mut corrupt = 0u64;
    let mut misdelivered = 0u64;
    let mut send_refused = 0u64;
    let mut clean = 0u32;
    let mut unclean: BTreeMap<String, u32> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut finish_secs: Vec<f64> = Vec::new();
    let mut close_secs_max = 0f64;
    for (id, (_, state)) in sockets.iter().enumerate() {
        let st = state.lock().unwrap();
        if let Some(at) = st.finished_at {
            finish_secs.push(at.saturating_duration_since(t0).as_secs_f64());
            if let Some(from) = st.close_started_at {
                close_secs_max =
                    close_secs_max.max(at.saturating_duration_since(from).as_secs_f64());
            }
        }
        lost += u64::from(o.messages - st.received);
        duplicated += st.duplicated;
        reordered += st.reordered;
        corrupt += st.corrupt;
        misdelivered += st.misdelivered;
        send_refused += st.send_refused;
        match &st.outcome {
            Outcome::Closed(1000, _) if st.received == o.messages => clean += 1,
            other => {
                let what = match other {
                    Outcome::Running => "still running".to_owned(),
                    Outcome::Closed(code, reason) => {
                        format!("closed {code} {reason:?} after {} echoes", st.received)
                    }
                    Outcome::Failed(e) => {
                        format!(
                            "failed ({}opened): {e}",
                            if st.opened { "" } else { "never " }
                        )
                    }
                };
                *unclean.entry(what).or_insert(0) += 1;
            }
        }
        if let Some(p) = &st.first_problem
            && problems.len() < 10
        {
            problems.push(format!("socket {id}: {p}"));
        }
    }
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let echoes = echoed.load(Ordering::Relaxed);

    // Stop the peer, then let every thread and descriptor go.
    let mut server_ok = true;
    if let Some(s) = server.take() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while server_stats.finished() < sockets.len() as u64 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let st = &server_stats;
        let (c1000, other, failed) = (
            st.closed_1000.load(Ordering::Acquire),
            st.closed_other.load(Ordering::Acquire),
            st.failed.load(Ordering::Acquire),
        );
        println!(
            "server: accepted={} echoed={} send_refused={} closed_1000={c1000} closed_other={other} \
             failed={failed}{}",
            st.accepted.load(Ordering::Relaxed),
            st.messages.load(Ordering::Relaxed),
            st.send_refused.load(Ordering::Relaxed),
            match &*st.first_failure.lock().unwrap() {
                Some(e) => format!(" (first failure: {e})"),
                None => String::new(),
            }
        );
        server_ok = c1000 == u64::from(o.sockets)
            && other == 0
            && failed == 0
            && st.send_refused.load(Ordering::Relaxed) == 0;
        s.stop();
    }
    drop(sockets);
    drop(client);
    drop(request);
    drop(progress_of);
    drop(shared);
    drop(events);
    let drain_start = Instant::now();
    let mut end = sample();
    while (end.threads > base.threads || end.fds > base.fds)
        && drain_start.elapsed() < DRAIN_TIMEOUT
    {
        thread::sleep(Duration::from_millis(100));
        end = sample();
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let rss_end_untrimmed = end.rss_kib;
    release_free_memory();
    end.rss_kib = sample().rss_kib;
    // `end` was taken with the sampler thread still running, as `base` was.
    let (warm, max_after_warm, max, marks) = sampler.finish();

    // Verdict.
    let warm_s = warm.unwrap_or(max);
    let rss_limit = (warm_s.rss_kib as f64 * RSS_FACTOR) as u64 + RSS_SLACK_KIB;
    let mut failures: Vec<String> = Vec::new();
    if open_failed {
        failures.push("not every socket opened".into());
    }
    if stalled {
        failures.push(format!("stalled for {:?}", o.stall_timeout));
    }
    if lost + duplicated + reordered + corrupt + misdelivered > 0 {
        failures.push(format!(
            "messages: lost={lost} duplicated={duplicated} reordered={reordered} \
             corrupt={corrupt} misdelivered={misdelivered}"
        ));
    }
    if send_refused > 0 {
        failures.push(format!("{send_refused} sends refused by the client"));
    }
    if clean != o.sockets {
        failures.push(format!(
            "{} of {} client sockets did not close cleanly with 1000",
            o.sockets - clean,
            o.sockets
        ));
    }
    if unfinished > 0 {
        failures.push(format!(
            "{unfinished} sockets not finished (wait_finished) 10 s after their end"
        ));
    }
    if !server_ok {
        failures.push("server sockets did not all close cleanly with 1000".into());
    }
    if warm.is_none() {
        failures.push("no warm-up sample (the run ended before 10% of the echoes)".into());
    } else if max_after_warm.rss_kib > rss_limit {
        failures.push(format!(
            "RSS grew after warm-up: max {} > {} (warm-up {} × {RSS_FACTOR} + {})",
            mib(max_after_warm.rss_kib),
            mib(rss_limit),
            mib(warm_s.rss_kib),
            mib(RSS_SLACK_KIB)
        ));
    }
    let heap_limit =
        base.heap_kib + HEAP_END_SLACK_KIB + HEAP_END_PER_SOCKET_KIB * u64::from(o.sockets);
    if end.heap_kib > heap_limit {
        failures.push(format!(
            "heap at the end {} KiB > {heap_limit} KiB (baseline {} KiB + {HEAP_END_SLACK_KIB} \
             KiB + {HEAP_END_PER_SOCKET_KIB} KiB per socket): memory leaked",
            end.heap_kib, base.heap_kib
        ));
    }
    if end.threads > base.threads {
        failures.push(format!(
            "threads at the end {} > baseline {} (now: {:?})",
            end.threads,
            base.threads,
            thread_names()
        ));
    }
    if end.fds > base.fds {
        failures.push(format!(
            "descriptors at the end {} > baseline {} (now: {:?})",
            end.fds,
            base.fds,
            fd_targets()
        ));
    }

    println!();
    println!("== soak result: peer={} tls={}", o.peer.name(), o.tls);
    println!(
        "  traffic     {echoes} echoes of {total} ({:.1} MiB of payload each way) in {secs:.1} s: \
         {:.0} msg/s, {:.1} MiB/s each way (sockets opened in {open_secs:.1} s)",
        bytes as f64 / 1048576.0,
        echoes as f64 / secs,
        bytes as f64 / 1048576.0 / secs
    );
    println!(
        "  integrity   lost={lost} duplicated={duplicated} reordered={reordered} \
         corrupt={corrupt} misdelivered={misdelivered} send_refused={send_refused}"
    );
    finish_secs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        finish_secs
            .get(((finish_secs.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "  closes      {clean}/{} closed cleanly with 1000; sockets finished after {:.1} s \
         (first), {:.1} s (median), {:.1} s (last); close(1000) to on_closed: {close_secs_max:.2} \
         s at most",
        o.sockets,
        at(0.0),
        at(0.5),
        at(1.0)
    );
    for (what, n) in &unclean {
        println!("              {n} × {what}");
    }
    for p in &problems {
        println!("  problem     {p}");
    }
    println!(
        "  rss         base {}  warm-up {}  max after warm-up {} (limit {} = warm-up × {RSS_FACTOR} \
         + {})  end {} ({} after malloc_trim)",
        mib(base.rss_kib),
        mib(warm_s.rss_kib),
        mib(max_after_warm.rss_kib),
        mib(rss_limit),
        mib(RSS_SLACK_KIB),
        mib(rss_end_untrimmed),
        mib(end.rss_kib)
    );
    let by_echo = |f: fn(&Sample) -> u64| {
        marks
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}%: {:.0}", (i + 1) * 10, f(s) as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("  rss by echo {} (MiB)", by_echo(|s| s.rss_kib));
    println!(
        "  heap        base {} KiB  warm-up {}  max {}  end {} KiB (limit {heap_limit} KiB = base + \
         {HEAP_END_SLACK_KIB} KiB + {HEAP_END_PER_SOCKET_KIB} KiB per socket)",
        base.heap_kib,
        mib(warm_s.heap_kib),
        mib(max.heap_kib),
        end.heap_kib
    );
    println!(
        "  rss at end  by mapping, after malloc_trim: {}",
        rss_by_mapping()
            .iter()
            .filter(|(_, (kib, _))| *kib >= 1024)
            .map(|(kind, (kib, n))| format!("{kind} {} in {n}", mib(*kib)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  heap by echo {} (MiB)", by_echo(|s| s.heap_kib));
    println!(
        "  threads     base {}  max {}  end {} (must be ≤ base)",
        base.threads, max.threads, end.threads
    );
    println!(
        "  fds         base {}  max {}  end {} (must be ≤ base; drained in {drain_secs:.1} s)",
        base.fds, max.fds, end.fds
    );
    for f in &failures {
        println!("  FAILED      {f}");
    }
    let ok = failures.is_empty();
    println!(
        "SOAK {} peer={} tls={} sockets={} messages={} total={total} echoed={echoes} lost={lost} \
         dup={duplicated} reordered={reordered} corrupt={corrupt} clean_closed={clean} \
         close_max_secs={close_secs_max:.2} payload_mib={:.1} secs={secs:.1} msgs_per_sec={:.0} rss_base_kib={} rss_warm_kib={} \
         rss_max_kib={} rss_end_kib={} rss_end_trimmed_kib={} heap_base_kib={} heap_max_kib={} \
         heap_end_kib={} threads_base={} threads_max={} threads_end={} fds_base={} fds_max={} \
         fds_end={}",
        if ok { "ok" } else { "FAIL" },
        o.peer.name(),
        o.tls,
        o.sockets,
        o.messages,
        bytes as f64 / 1048576.0,
        echoes as f64 / secs,
        base.rss_kib,
        warm_s.rss_kib,
        max_after_warm.rss_kib,
        rss_end_untrimmed,
        end.rss_kib,
        base.heap_kib,
        max.heap_kib,
        end.heap_kib,
        base.threads,
        max.threads,
        end.threads,
        base.fds,
        max.fds,
        end.fds
    );
    Ok(ok)
}
