//! The server half of the browser test (`scripts/browser.sh`, `docs/browser.md`): a syncws
//! [`Server`] that a real browser talks to, and everything the browser needs around it.
//!
//! `cargo run --release --example browser_server`
//!
//! It listens on three loopback ports and prints one line naming them:
//!
//! - **http**: a tiny HTTP/1.0 responder (std `TcpListener`) for the test page
//!   (`tests/browser/page.html`, `page.js`, compiled in) and `GET /report`, which waits (up to
//!   60 s) until both sockets have ended and answers the server side's observations as JSON;
//! - **ws**: a byte-for-byte TCP relay in front of the syncws server that the page connects
//!   to. It changes nothing (half-closes are passed on as half-closes); it parses the frame
//!   headers going by and counts the ones with RSV1 set, so the test sees that messages were
//!   really compressed in both directions, which the public API does not show;
//! - the syncws server itself, with compression on (the default) and `max_message_size` /
//!   `max_queue_size` at 8 MiB, above the 4 MiB messages plus queueing overhead.
//!
//! Socket `/echo` checks every message against what the page must have sent (the same
//! generator as `page.js`) and echoes it; socket `/close` answers "please close" with
//! `close(4000, "server done")`; socket `/probe` is opened and closed by the page to see
//! whether its origin may connect. The server allows only the **http** listener's own origin
//! (`http://127.0.0.1:H`, [`ServerBuilder::allowed_origins`](syncws::ServerBuilder::allowed_origins)),
//! so the same page loaded as `http://localhost:H/` is refused with 403. The accept handler
//! records the offered `Sec-WebSocket-Extensions` and `Origin`; `on_closing`, `on_closed` and
//! `on_failure` are recorded too, and the relay records the status line of each answer the
//! server sent. After `/report` is served the process exits, with status 1 if a server-side
//! check failed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use syncws::{Accept, Listener, Message, Server};

const PAGE_HTML: &str = include_str!("../tests/browser/page.html");
const PAGE_JS: &str = include_str!("../tests/browser/page.js");

/// Must match `SIZES` in `tests/browser/page.js`.
const SIZES: [usize; 10] = [0, 1, 125, 126, 1023, 1024, 65535, 65536, 1 << 20, 4 << 20];
/// Above the largest message, with room for the queue's bookkeeping.
const LIMIT: u64 = 8 << 20;
/// How long `/report` waits for both sockets to end.
const REPORT_WAIT: Duration = Duration::from_secs(60);
/// How long the process lives without `/report` being asked for.
const LIFETIME: Duration = Duration::from_secs(300);

/// `page.js`'s `xorshift`.
struct Xorshift(u32);

impl Xorshift {
    /// `page.js`'s `seedFor(k)`.
    fn for_message(k: usize) -> Self {
        let k = u32::try_from(k).unwrap_or(u32::MAX - 1);
        Xorshift(k.wrapping_add(1).wrapping_mul(0x9e37_79b1))
    }

    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Message `k` of the page's plan: `(kind, bytes)`, generated as `page.js` does.
fn payload(k: usize) -> Option<(&'static str, Message)> {
    let size = *SIZES.get(k / 2)?;
    let mut rng = Xorshift::for_message(k);
    if k % 2 == 1 {
        let bytes = (0..size).map(|_| (rng.next() & 0xff) as u8).collect();
        return Some(("binary", Message::Binary(bytes)));
    }
    let mixed = (k / 2) % 2 == 1;
    let letters = b"etaoinshrdlu";
    let mut text = String::with_capacity(size);
    while text.len() < size {
        let r = rng.next();
        let c = if !mixed {
            if r & 7 == 0 {
                ' '
            } else {
                char::from(letters[(r >> 3) as usize % letters.len()])
            }
        } else {
            let mut n = (r & 3) as usize + 1;
            if n > size - text.len() {
                n = 1;
            }
            let v = r >> 8;
            let cp = match n {
                1 => 0x20 + v % 95,
                2 => 0x80 + v % (0x800 - 0x80),
                3 => 0x800 + v % (0xd800 - 0x800),
                _ => 0x10000 + v % 0x10_0000,
            };
            char::from_u32(cp).unwrap_or('?')
        };
        text.push(c);
    }
    let kind = if mixed { "text-utf8" } else { "text-ascii" };
    Some((kind, Message::Text(text)))
}

/// Frames seen by the relay in one direction.
#[derive(Default, Clone, Copy)]
struct FrameStats {
    frames: u64,
    /// First frames of data messages (text, binary).
    messages: u64,
    /// Of those, the ones with RSV1: compressed (RFC 7692 §6).
    compressed: u64,
    bytes: u64,
}

/// Follows the frame headers in one direction of a WebSocket connection, after its HTTP head.
#[derive(Default)]
struct FrameCounter {
    /// How much of "\r\n\r\n" has been matched; 4 once the head is over.
    head: u8,
    header: Vec<u8>,
    skip: u64,
    stats: FrameStats,
}

impl FrameCounter {
    fn feed(&mut self, mut buf: &[u8]) {
        self.stats.bytes = self.stats.bytes.saturating_add(buf.len() as u64);
        while let Some((&b, rest)) = buf.split_first() {
            if self.head < 4 {
                self.head = match (self.head, b) {
                    (0 | 2, b'\r') | (1 | 3, b'\n') => self.head + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                buf = rest;
            } else if self.skip > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= n as u64;
                buf = &buf[n..];
            } else {
                self.header.push(b);
                buf = rest;
                self.try_header();
            }
        }
    }

    fn try_header(&mut self) {
        let h = &self.header;
        if h.len() < 2 {
            return;
        }
        let ext = match h[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
        if h.len() < 2 + ext + mask {
            return;
        }
        let len = match ext {
            0 => u64::from(h[1] & 0x7f),
            _ => h[2..2 + ext]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        };
        let opcode = h[0] & 0x0f;
        self.stats.frames += 1;
        if opcode == 1 || opcode == 2 {
            self.stats.messages += 1;
            if h[0] & 0x40 != 0 {
                self.stats.compressed += 1;
            }
        }
        self.skip = len;
        self.header.clear();
    }
}

/// How a socket ended.
enum Ending {
    Closed { code: u16, reason: String },
    Failed(String),
}

/// One echoed message as the server saw it.
struct Check {
    k: usize,
    kind: &'static str,
    size: usize,
    error: Option<String>,
}

#[derive(Default)]
struct Observed {
    /// Per upgrade: path, offered `Sec-WebSocket-Extensions`, `Origin`.
    upgrades: Vec<(String, Option<String>, Option<String>)>,
    /// Upgrades of `/probe` that reached the handler.
    probes: usize,
    /// The first line of each answer the server sent through the relay.
    answers: Vec<String>,
    messages: Vec<Check>,
    closing: Vec<(&'static str, u16, String)>,
    ended: Vec<(&'static str, Ending)>,
    problems: Vec<String>,
    relay_open: usize,
    to_server: FrameStats,
    to_browser: FrameStats,
}

impl Observed {
    fn complete(&self) -> bool {
        self.ended.len() >= 2 && self.relay_open == 0
    }
}

#[derive(Default)]
struct Shared {
    observed: Mutex<Observed>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Observed)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

fn socket_listener(path: &'static str, shared: Arc<Shared>) -> Listener {
    let (s1, s2, s3, s4) = (shared.clone(), shared.clone(), shared.clone(), shared);
    let mut next = 0usize;
    Listener::new()
        .on_message(move |ws, message| match path {
            "echo" => {
                let k = next;
                next += 1;
                let check = match payload(k) {
                    None => Check {
                        k,
                        kind: "unexpected",
                        size: message.len(),
                        error: Some("more messages than the page's plan has".into()),
                    },
                    Some((kind, expected)) => Check {
                        k,
                        kind,
                        size: expected.len(),
                        error: difference(&expected, &message),
                    },
                };
                println!(
                    "browser_server: echo message {k} {} {} B: {}",
                    check.kind,
                    check.size,
                    check.error.as_deref().unwrap_or("as expected")
                );
                let queued = ws.send(message);
                s1.update(|o| {
                    o.messages.push(check);
                    if !queued {
                        o.problems.push(format!("send of echo {k} refused"));
                    }
                });
            }
            _ => {
                if message.as_text() == Some("please close") {
                    if let Err(e) = ws.close(4000, Some("server done")) {
                        s1.update(|o| o.problems.push(format!("close(4000) failed: {e}")));
                    }
                } else {
                    s1.update(|o| o.problems.push(format!("unexpected message on /{path}")));
                }
            }
        })
        .on_closing(move |_ws, code, reason| {
            println!("browser_server: /{path} on_closing {code} {reason:?}");
            s2.update(|o| o.closing.push((path, code, reason.to_owned())));
        })
        .on_closed(move |_ws, code, reason| {
            println!("browser_server: /{path} on_closed {code} {reason:?}");
            let reason = reason.to_owned();
            s3.update(|o| o.ended.push((path, Ending::Closed { code, reason })));
        })
        .on_failure(move |_ws, error, _response| {
            println!("browser_server: /{path} on_failure {error}");
            s4.update(|o| o.ended.push((path, Ending::Failed(error.to_string()))));
        })
}

/// Why `got` is not `expected`, or `None`.
fn difference(expected: &Message, got: &Message) -> Option<String> {
    let kind = |m: &Message| {
        if m.as_text().is_some() {
            "text"
        } else {
            "binary"
        }
    };
    if kind(expected) != kind(got) {
        return Some(format!(
            "a {} message, {} expected",
            kind(got),
            kind(expected)
        ));
    }
    let (e, g) = (expected.as_bytes(), got.as_bytes());
    if e == g {
        return None;
    }
    let at = e
        .iter()
        .zip(g)
        .position(|(a, b)| a != b)
        .unwrap_or(e.len().min(g.len()));
    Some(format!(
        "differs at byte {at} ({} B expected, {} B received)",
        e.len(),
        g.len()
    ))
}

/// Copies `from` to `to` until EOF, then half-closes `to`, as the peer did.
fn pump(mut from: TcpStream, mut to: TcpStream, to_server: bool, shared: Arc<Shared>) {
    let mut counter = FrameCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    // The server's status line, toward the browser.
    let mut first_line = Vec::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                if !to_server && !first_line.ends_with(b"\r\n") && first_line.len() < 256 {
                    first_line.extend_from_slice(&buf[..n.min(256)]);
                    if let Some(end) = first_line.windows(2).position(|w| w == b"\r\n") {
                        first_line.truncate(end + 2);
                    }
                }
                counter.feed(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    break;
                }
            }
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    shared.update(|o| {
        if !first_line.is_empty() {
            let line = String::from_utf8_lossy(&first_line);
            o.answers.push(line.trim_end().to_owned());
        }
        let total = if to_server {
            &mut o.to_server
        } else {
            &mut o.to_browser
        };
        total.frames += counter.stats.frames;
        total.messages += counter.stats.messages;
        total.compressed += counter.stats.compressed;
        total.bytes += counter.stats.bytes;
        o.relay_open = o.relay_open.saturating_sub(1);
    });
}

fn relay(listener: TcpListener, server: std::net::SocketAddr, shared: Arc<Shared>) {
    for browser in listener.incoming().flatten() {
        let upstream = match TcpStream::connect(server) {
            Ok(s) => s,
            Err(e) => {
                shared.update(|o| o.problems.push(format!("relay: connect to server: {e}")));
                continue;
            }
        };
        let clones = browser
            .try_clone()
            .and_then(|b| Ok((b, upstream.try_clone()?)));
        let Ok((browser2, upstream2)) = clones else {
            continue;
        };
        let _ = (browser.set_nodelay(true), upstream.set_nodelay(true));
        shared.update(|o| o.relay_open += 2);
        let (s1, s2) = (shared.clone(), shared.clone());
        thread::spawn(move || pump(browser, upstream, true, s1));
        thread::spawn(move || pump(upstream2, browser2, false, s2));
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(s: &Option<String>) -> String {
    s.as_deref().map_or("null".into(), json_str)
}

fn stats_json(s: &FrameStats) -> String {
    format!(
        r#"{{"frames":{},"messages":{},"compressed":{},"bytes":{}}}"#,
        s.frames, s.messages, s.compressed, s.bytes
    )
}

/// The observations as JSON, and whether the server's own checks passed.
fn report(o: &Observed) -> (String, bool) {
    let upgrades: Vec<String> = o
        .upgrades
        .iter()
        .map(|(path, ext, origin)| {
            format!(
                r#"{{"path":{},"extensions":{},"origin":{}}}"#,
                json_str(path),
                json_opt(ext),
                json_opt(origin)
            )
        })
        .collect();
    let messages: Vec<String> = o
        .messages
        .iter()
        .map(|c| {
            format!(
                r#"{{"k":{},"kind":{},"size":{},"ok":{},"error":{}}}"#,
                c.k,
                json_str(c.kind),
                c.size,
                c.error.is_none(),
                json_opt(&c.error)
            )
        })
        .collect();
    let closing: Vec<String> = o
        .closing
        .iter()
        .map(|(path, code, reason)| {
            format!(
                r#"{{"path":{},"code":{code},"reason":{}}}"#,
                json_str(path),
                json_str(reason)
            )
        })
        .collect();
    let ended: Vec<String> = o
        .ended
        .iter()
        .map(|(path, ending)| match ending {
            Ending::Closed { code, reason } => format!(
                r#"{{"path":{},"closed":true,"code":{code},"reason":{}}}"#,
                json_str(path),
                json_str(reason)
            ),
            Ending::Failed(e) => format!(
                r#"{{"path":{},"closed":false,"error":{}}}"#,
                json_str(path),
                json_str(e)
            ),
        })
        .collect();
    let problems: Vec<String> = o.problems.iter().map(|p| json_str(p)).collect();
    let answers: Vec<String> = o.answers.iter().map(|a| json_str(a)).collect();
    let ok = o.complete()
        && o.problems.is_empty()
        && o.messages.len() == 2 * SIZES.len()
        && o.messages.iter().all(|c| c.error.is_none());
    let json = format!(
        r#"{{"complete":{},"ok":{ok},"expectedMessages":{},"upgrades":[{}],"probes":{},"answers":[{}],"messages":[{}],"closing":[{}],"ended":[{}],"problems":[{}],"frames":{{"toServer":{},"toBrowser":{}}}}}"#,
        o.complete(),
        2 * SIZES.len(),
        upgrades.join(","),
        o.probes,
        answers.join(","),
        messages.join(","),
        closing.join(","),
        ended.join(","),
        problems.join(","),
        stats_json(&o.to_server),
        stats_json(&o.to_browser),
    );
    (json, ok)
}

/// Answers one HTTP request; returns the report's verdict if this was `/report`.
fn serve_http(mut conn: TcpStream, shared: &Shared) -> Option<bool> {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let mut verdict = None;
    let (status, kind, body) = match (method, path) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", PAGE_HTML.to_owned()),
        ("GET", "/page.js") => (
            "200 OK",
            "text/javascript; charset=utf-8",
            PAGE_JS.to_owned(),
        ),
        ("GET", "/report") => {
            let deadline = Instant::now() + REPORT_WAIT;
            let mut o = shared.lock();
            while !o.complete() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                o = match shared.changed.wait_timeout(o, left) {
                    Ok((guard, _)) => guard,
                    Err(e) => e.into_inner().0,
                };
            }
            let (json, ok) = report(&o);
            verdict = Some(ok);
            ("200 OK", "application/json", json)
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let _ = write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
    verdict
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    // The page's own origin is the only one allowed: the page served as localhost is refused.
    let http = TcpListener::bind("127.0.0.1:0")?;
    let page_origin = format!("http://{}", http.local_addr()?);
    let server = Server::builder()
        .max_message_size(LIMIT)
        .max_queue_size(LIMIT)
        .allowed_origins([&page_origin])
        .bind("127.0.0.1:0", move |request| {
            let path = request.url().path().trim_start_matches('/').to_owned();
            if path == "probe" {
                s.update(|o| o.probes += 1);
                return Accept::upgrade(Listener::new());
            }
            let offer = request
                .header("Sec-WebSocket-Extensions")
                .map(str::to_owned);
            let origin = request.header("Origin").map(str::to_owned);
            println!(
                "browser_server: upgrade /{path}, offered extensions {offer:?}, origin {origin:?}"
            );
            s.update(|o| o.upgrades.push((path.clone(), offer, origin)));
            match path.as_str() {
                "echo" => Accept::upgrade(socket_listener("echo", s.clone())),
                "close" => Accept::upgrade(socket_listener("close", s.clone())),
                _ => Accept::reject(404, "Not Found"),
            }
        })?;
    let ws_relay = TcpListener::bind("127.0.0.1:0")?;
    println!(
        "browser_server: listening http=http://{}/ ws=ws://{}/ (syncws server at {}, allowed origin {page_origin})",
        http.local_addr()?,
        ws_relay.local_addr()?,
        server.local_addr()
    );
    let (s, target) = (shared.clone(), server.local_addr());
    thread::spawn(move || relay(ws_relay, target, s));

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for conn in http.incoming().flatten() {
            let (s, done) = (shared.clone(), done_tx.clone());
            thread::spawn(move || {
                if let Some(ok) = serve_http(conn, &s) {
                    let _ = done.send(ok);
                }
            });
        }
    });
    let ok = done_rx.recv_timeout(LIFETIME).unwrap_or(false);
    server.stop();
    println!(
        "browser_server: server-side checks {}",
        if ok { "passed" } else { "FAILED" }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
