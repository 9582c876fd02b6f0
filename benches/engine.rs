//! The engine benchmark: syncws against tungstenite 0.30 (blocking) and a hand-written raw
//! client (the lower bound), all three talking to the same local server, which runs in a child
//! process of its own so this process's RSS, threads and fds belong to the client alone.
//!
//! `cargo bench --bench engine` runs every scenario for 5 interleaved rounds (raw, tungstenite,
//! syncws, raw, ...) and prints a markdown table of medians, also written to
//! `target/engine-bench.md`. Flags (after `--`): `--quick` (1 round, a tenth of each count: a
//! smoke test), `--only rtt,connect`, `--rounds N`. The method is in docs/benchmarks-method.md.
//!
//! Only syncws's public API is used, so this file compiles unchanged against another engine
//! with the same API.
//!
//! The same binary is also each child process, chosen by its first argument:
//! `--server` (tungstenite, thread per connection: `/echo`, `/sink`, `/source?n=N&size=S`),
//! `--scale-server` (single-threaded mio echo server), and `--idle|--scale CLIENT N PORT` (a
//! client opening N sockets). Every child exits when its stdin closes, so none outlives the
//! bench, even if the bench is killed.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use syncws::crossbeam_channel::{self, RecvTimeoutError};
use syncws::{Event, Listener, Message, Request};
use tungstenite::Message as TMessage;

/// Longest a single blocking read, write or event wait may take before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one run (one scenario, one client, one round) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// Loops check the run's deadline once per this many messages.
const CHECK_EVERY: usize = 4096;
/// The rtt payload: 32 bytes of text.
const RTT_TEXT: &str = "0123456789abcdef0123456789abcdef";
const SMALL: usize = 64;
const LARGE: usize = 1 << 20;
/// syncws backpressure for the send scenarios: `send` is never blocking and refuses (and closes
/// with 1001) past `max_queue_size` (16 MiB with `Client::new()`), so the sender waits while
/// more than half of that is queued, polling the public `queue_size()`.
const HIGH_WATER: u64 = 8 << 20;

#[derive(Clone, Copy, Debug)]
struct Counts {
    rtt: usize,
    rtt_warmup: usize,
    small: usize,
    large: usize,
    connect: usize,
    idle: usize,
    scale: usize,
}

const FULL: Counts = Counts {
    rtt: 20_000,
    rtt_warmup: 1_000,
    small: 500_000,
    large: 200,
    connect: 1_000,
    idle: 1_000,
    scale: 10_000,
};

const QUICK: Counts = Counts {
    rtt: 2_000,
    rtt_warmup: 100,
    small: 50_000,
    large: 20,
    connect: 100,
    idle: 100,
    scale: 500,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lib {
    Raw,
    Tungstenite,
    Syncws,
}

const LIBS: [Lib; 3] = [Lib::Raw, Lib::Tungstenite, Lib::Syncws];

impl Lib {
    fn name(self) -> &'static str {
        match self {
            Lib::Raw => "raw",
            Lib::Tungstenite => "tungstenite",
            Lib::Syncws => "syncws",
        }
    }

    fn parse(s: &str) -> Option<Lib> {
        LIBS.into_iter().find(|l| l.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scenario {
    Rtt,
    SendSmall,
    RecvSmall,
    SendLarge,
    RecvLarge,
    Connect,
    Idle,
    Scale,
}

const SCENARIOS: [Scenario; 8] = [
    Scenario::Rtt,
    Scenario::SendSmall,
    Scenario::RecvSmall,
    Scenario::SendLarge,
    Scenario::RecvLarge,
    Scenario::Connect,
    Scenario::Idle,
    Scenario::Scale,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Rtt => "rtt",
            Scenario::SendSmall => "send-small",
            Scenario::RecvSmall => "recv-small",
            Scenario::SendLarge => "send-large",
            Scenario::RecvLarge => "recv-large",
            Scenario::Connect => "connect",
            Scenario::Idle => "idle",
            Scenario::Scale => "scale",
        }
    }

    /// The metrics a run reports: key and the label printed in the table.
    fn metrics(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::Rtt => &[
                ("p50", "p50 latency, µs (lower is better)"),
                ("p99", "p99 latency, µs (lower is better)"),
            ],
            Scenario::SendSmall | Scenario::RecvSmall => &[("rate", "msg/s (higher is better)")],
            Scenario::SendLarge | Scenario::RecvLarge => &[("rate", "MiB/s (higher is better)")],
            Scenario::Connect => &[("rate", "conn/s (higher is better)")],
            Scenario::Idle => &[
                ("rss", "RSS KiB per socket (lower is better)"),
                ("threads", "threads per socket"),
                ("fds", "fds per socket"),
            ],
            Scenario::Scale => &[
                ("opened", "sockets opened"),
                ("echoed", "sockets echoed"),
                ("secs", "wall s, open + echo (lower is better)"),
                ("closed", "sockets closed cleanly"),
                ("ended", "sockets with exactly one terminal callback"),
            ],
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--server") => server_main(),
        Some("--scale-server") => scale_server_main(),
        Some("--idle") | Some("--scale") => many_main(&args),
        _ => bench_main(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the parent and the children.
// ---------------------------------------------------------------------------------------------

/// In a child: exit as soon as the parent closes our stdin (or dies).
fn watch_parent() {
    thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}

#[derive(Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn after(d: Duration) -> Deadline {
        Deadline(Instant::now() + d)
    }

    fn check(&self, what: &str) -> Result<(), String> {
        if Instant::now() > self.0 {
            Err(format!("{what}: timed out"))
        } else {
            Ok(())
        }
    }

    fn passed(&self) -> bool {
        Instant::now() > self.0
    }

    fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_owned()
    }
}

fn connect_tcp(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The parent: child processes, scenarios, the table.
// ---------------------------------------------------------------------------------------------

/// A child process of this binary. Dropping it closes its stdin (it exits), then kills it if
/// it has not exited within 2 s.
struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    what: String,
}

impl ChildProc {
    fn spawn(args: &[String], what: &str) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {what}: {e}"))?;
        let stdout = child.stdout.take().expect("child stdout is piped");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc {
            child,
            stdin,
            lines: rx,
            what: what.to_owned(),
        })
    }

    /// Waits for a line starting with `prefix` and returns the rest; other lines go to `other`.
    fn wait_line(
        &self,
        prefix: &str,
        timeout: Duration,
        other: &mut Vec<String>,
    ) -> Result<String, String> {
        let deadline = Deadline::after(timeout);
        loop {
            match self.lines.recv_timeout(deadline.remaining()) {
                Ok(l) => match l.strip_prefix(prefix) {
                    Some(rest) => return Ok(rest.trim().to_owned()),
                    None => other.push(l),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: no '{prefix}' line within {timeout:?}",
                        self.what
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("{}: exited before printing '{prefix}'", self.what));
                }
            }
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)) | Err(_))
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Deadline::after(Duration::from_secs(2));
        while !deadline.passed() {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server child and the port it listens on.
struct ServerProc {
    proc: ChildProc,
    port: u16,
    flag: &'static str,
}

impl ServerProc {
    fn start(flag: &'static str) -> Result<ServerProc, String> {
        let proc = ChildProc::spawn(&[flag.to_owned()], &format!("{flag} child"))?;
        let line = proc.wait_line("PORT ", Duration::from_secs(20), &mut Vec::new())?;
        let port = line
            .parse()
            .map_err(|e| format!("{flag}: bad port line {line:?}: {e}"))?;
        Ok(ServerProc { proc, port, flag })
    }

    /// Restarts the server if it died; returns a note saying so.
    fn ensure_alive(&mut self) -> Result<Option<String>, String> {
        if !self.proc.exited() {
            return Ok(None);
        }
        *self = ServerProc::start(self.flag)?;
        Ok(Some(format!(
            "the {} child had exited and was restarted",
            self.flag
        )))
    }
}

struct Options {
    quick: bool,
    rounds: usize,
    only: Vec<Scenario>,
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        quick: false,
        rounds: 5,
        only: SCENARIOS.to_vec(),
    };
    let mut rounds_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => {
                let v = it.next().expect("--rounds needs a number");
                o.rounds = v.parse().expect("--rounds needs a positive number");
                assert!(o.rounds > 0, "--rounds needs a positive number");
                rounds_given = true;
            }
            "--only" => {
                let v = it.next().expect("--only needs SCENARIO[,SCENARIO]");
                o.only = v
                    .split(',')
                    .map(|name| {
                        SCENARIOS
                            .into_iter()
                            .find(|s| s.name() == name.trim())
                            .unwrap_or_else(|| {
                                panic!(
                                    "unknown scenario {name:?}; known: {}",
                                    SCENARIOS.map(Scenario::name).join(", ")
                                )
                            })
                    })
                    .collect();
            }
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "usage: cargo bench --bench engine -- [--quick] [--rounds N] [--only {}]",
                    SCENARIOS.map(Scenario::name).join(",")
                );
                std::process::exit(0);
            }
            other => eprintln!("engine bench: ignoring unknown argument {other:?}"),
        }
    }
    if o.quick && !rounds_given {
        o.rounds = 1;
    }
    o
}

/// What one run measured.
struct Outcome {
    metrics: Vec<(&'static str, f64)>,
    notes: Vec<String>,
}

impl Outcome {
    fn of(metrics: Vec<(&'static str, f64)>) -> Outcome {
        Outcome {
            metrics,
            notes: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Results {
    values: HashMap<(Scenario, &'static str, Lib), Vec<f64>>,
    failures: HashMap<(Scenario, Lib), usize>,
    notes: Vec<String>,
}

impl Results {
    fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    fn cell(&self, sc: Scenario, key: &str, lib: Lib) -> (Option<f64>, String) {
        let failed = self.failures.get(&(sc, lib)).copied().unwrap_or(0);
        let vals = self
            .values
            .iter()
            .find(|((s, k, l), _)| *s == sc && *k == key && *l == lib)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match median(vals) {
            None if failed > 0 => (None, "ERR".to_owned()),
            None => (None, "-".to_owned()),
            Some(m) if failed > 0 => (Some(m), format!("{} ({failed} failed)", fmt_num(m))),
            Some(m) => (Some(m), fmt_num(m)),
        }
    }

    fn render(&self, scenarios: &[Scenario], header: &str) -> String {
        let mut out = String::new();
        out.push_str(header);
        out.push_str(
            "\n| scenario | metric | raw | tungstenite | syncws | syncws/tungstenite | syncws/raw |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for &sc in scenarios {
            for (key, label) in sc.metrics() {
                let (r, rs) = self.cell(sc, key, Lib::Raw);
                let (t, ts) = self.cell(sc, key, Lib::Tungstenite);
                let (s, ss) = self.cell(sc, key, Lib::Syncws);
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                    _ => "-".to_owned(),
                };
                out.push_str(&format!(
                    "| {} | {label} | {rs} | {ts} | {ss} | {} | {} |\n",
                    sc.name(),
                    ratio(s, t),
                    ratio(s, r)
                ));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes and errors:\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `target/` of this build: the bench binary is `target/<profile>/deps/engine-<hash>`.
fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for a in exe.ancestors() {
            if a.file_name().is_some_and(|n| n == "deps")
                && let Some(t) = a.parent().and_then(|p| p.parent())
            {
                return t.to_path_buf();
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

fn bench_main(args: &[String]) {
    let opts = parse_options(args);
    let counts = if opts.quick { QUICK } else { FULL };
    // A safety net over the per-run timeouts: the bench stops by itself whatever happens.
    // Children exit on their own when this process's end closes their stdin.
    let limit = Duration::from_secs(if opts.quick { 20 * 60 } else { 90 * 60 });
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!("engine bench: still running after {limit:?}; giving up");
        std::process::exit(2);
    });

    let needs_server = opts.only.iter().any(|s| *s != Scenario::Scale);
    let needs_scale = opts.only.contains(&Scenario::Scale);
    let mut server = needs_server.then(|| ServerProc::start("--server").expect("server child"));
    let mut scale_server =
        needs_scale.then(|| ServerProc::start("--scale-server").expect("scale server child"));

    let header = format!(
        "engine bench: {} round(s){}, medians; {} cores; counts {:?}",
        opts.rounds,
        if opts.quick { " (--quick)" } else { "" },
        thread::available_parallelism().map_or(0, |n| n.get()),
        counts
    );
    println!("{header}");

    let mut results = Results::default();
    for &sc in &opts.only {
        for round in 0..opts.rounds {
            for lib in LIBS {
                let srv = if sc == Scenario::Scale {
                    scale_server.as_mut()
                } else {
                    server.as_mut()
                }
                .expect("the server this scenario needs was started");
                let port = match srv.ensure_alive() {
                    Ok(note) => {
                        if let Some(n) = note {
                            results.note(format!("{} round {}: {n}", sc.name(), round + 1));
                        }
                        srv.port
                    }
                    Err(e) => {
                        results.note(format!("{}: could not restart the server: {e}", sc.name()));
                        *results.failures.entry((sc, lib)).or_default() += 1;
                        continue;
                    }
                };
                let started = Instant::now();
                let r = catch_unwind(AssertUnwindSafe(|| run_one(sc, lib, port, &counts)))
                    .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(p))));
                let took = started.elapsed().as_secs_f64();
                match r {
                    Ok(out) => {
                        let shown: Vec<String> = out
                            .metrics
                            .iter()
                            .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                            .collect();
                        println!(
                            "  {:<10} round {}/{} {:<11} {}  ({took:.1} s)",
                            sc.name(),
                            round + 1,
                            opts.rounds,
                            lib.name(),
                            shown.join(" ")
                        );
                        for (k, v) in out.metrics {
                            results.values.entry((sc, k, lib)).or_default().push(v);
                        }
                        for n in out.notes {
                            results.note(format!("{} {}: {n}", sc.name(), lib.name()));
                        }
                    }
                    Err(e) => {
                        println!(
                            "  {:<10} round {}/{} {:<11} FAILED: {e}  ({took:.1} s)",
                            sc.name(),
                            round + 1,
                            opts.rounds,
                            lib.name()
                        );
                        *results.failures.entry((sc, lib)).or_default() += 1;
                        results.note(format!(
                            "{} {} round {}: {e}",
                            sc.name(),
                            lib.name(),
                            round + 1
                        ));
                    }
                }
                if sc == Scenario::Scale {
                    // Let the server drop the last client's connections.
                    thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
    drop(server.take());
    drop(scale_server.take());

    let table = results.render(&opts.only, &format!("{header}\n"));
    println!("\n{table}");
    let path = target_dir().join("engine-bench.md");
    match std::fs::write(&path, &table) {
        Ok(()) => println!("(written to {})", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

fn run_one(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
    match (lib, sc) {
        (Lib::Raw, _) => run_with::<RawConn>(sc, lib, port, c),
        (Lib::Tungstenite, _) => run_with::<TungConn>(sc, lib, port, c),
        // A listener library is used through its listener: messages are handled in
        // `on_message`, on the socket's reader thread. The pull style (`channel()`, one
        // thread hand-off and one cross-thread free per message) is measured too, as a note.
        (Lib::Syncws, Scenario::RecvSmall | Scenario::RecvLarge) => {
            let (n, size) = if sc == Scenario::RecvSmall {
                (c.small, SMALL)
            } else {
                (c.large, LARGE)
            };
            let rate = |secs: f64| match sc {
                Scenario::RecvSmall => n as f64 / secs,
                _ => (n * size) as f64 / (1 << 20) as f64 / secs,
            };
            let listener = rate(recv_n_listener(port, n, size)?);
            let channel = rate(recv_n::<SyncwsConn>(port, n, size)?);
            let mut outcome = Outcome::of(vec![("rate", listener)]);
            outcome.notes.push(format!(
                "{listener:.0} through the listener, {channel:.0} through channel()"
            ));
            Ok(outcome)
        }
        (Lib::Syncws, _) => run_with::<SyncwsConn>(sc, lib, port, c),
    }
}

/// syncws's receive path as its listener API is meant to be used: each message handled in
/// `on_message`; the application thread only hears when the last one has arrived.
fn recv_n_listener(port: u16, n: usize, size: usize) -> Result<f64, String> {
    let client = syncws::Client::new();
    let (open_tx, open_rx) = crossbeam_channel::bounded::<()>(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<usize, String>>(1);
    let (closed_tx, closed_rx) = crossbeam_channel::bounded::<()>(1);
    let failed_tx = done_tx.clone();
    let mut count = 0usize;
    let listener = Listener::new()
        .on_open(move |_, _| {
            let _ = open_tx.try_send(());
        })
        .on_message(move |_, m| match m {
            Message::Binary(b) if b.len() == size => count += 1,
            Message::Binary(b) => {
                let _ = done_tx.try_send(Err(format!("message of {} bytes, not {size}", b.len())));
            }
            Message::Text(t) if t == "end" => {
                let _ = done_tx.try_send(Ok(count));
            }
            Message::Text(t) => {
                let _ = done_tx.try_send(Err(format!("unexpected text {t:?}")));
            }
        })
        .on_closed(move |_, _, _| {
            let _ = closed_tx.try_send(());
        })
        .on_failure(move |_, e, _| {
            let _ = failed_tx.try_send(Err(format!("failed: {e}")));
        });
    let url = format!("ws://127.0.0.1:{port}/source?n={n}&size={size}");
    let request = Request::builder(&url)
        .build()
        .map_err(|e| format!("request: {e}"))?;
    let ws = client.new_web_socket(request, listener);
    let _cancel_on_error = CancelOnDrop(ws.clone());
    open_rx
        .recv_timeout(IO_TIMEOUT)
        .map_err(|_| "no on_open".to_owned())?;
    let t = Instant::now();
    if !ws.send("go") {
        return Err("send returned false".into());
    }
    let got = done_rx
        .recv_timeout(RUN_TIMEOUT)
        .map_err(|_| "no end within the run timeout".to_owned())??;
    let secs = t.elapsed().as_secs_f64();
    if got != n {
        return Err(format!("received {got} messages, not {n}"));
    }
    let _ = ws.close(1000, None);
    closed_rx
        .recv_timeout(IO_TIMEOUT)
        .map_err(|_| "no on_closed".to_owned())?;
    if !ws.wait_finished(IO_TIMEOUT) {
        return Err("did not finish".into());
    }
    Ok(secs)
}

/// Cancels the socket if a run fails midway; a no-op once it has finished.
struct CancelOnDrop(syncws::WebSocket);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn run_with<C: Conn>(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
    let mib = |n: usize, secs: f64| (n * LARGE) as f64 / (1 << 20) as f64 / secs;
    Ok(match sc {
        Scenario::Rtt => rtt::<C>(port, c)?,
        Scenario::SendSmall => Outcome::of(vec![(
            "rate",
            c.small as f64 / send_n::<C>(port, c.small, SMALL)?,
        )]),
        Scenario::RecvSmall => Outcome::of(vec![(
            "rate",
            c.small as f64 / recv_n::<C>(port, c.small, SMALL)?,
        )]),
        Scenario::SendLarge => Outcome::of(vec![(
            "rate",
            mib(c.large, send_n::<C>(port, c.large, LARGE)?),
        )]),
        Scenario::RecvLarge => Outcome::of(vec![(
            "rate",
            mib(c.large, recv_n::<C>(port, c.large, LARGE)?),
        )]),
        Scenario::Connect => connect_n::<C>(port, c.connect)?,
        Scenario::Idle => run_many("--idle", lib, c.idle, port)?,
        Scenario::Scale => run_many("--scale", lib, c.scale, port)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The three clients behind one trait (static dispatch: each scenario is monomorphised).
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Got {
    Text(usize),
    Binary(usize),
}

trait Conn: Sized {
    /// What opens connections (syncws: one `Client`, reused as an application would).
    type Factory;
    /// A message prepared once and sent many times.
    type Bin;
    type Text;
    fn factory() -> Self::Factory;
    /// Connects and completes the opening handshake.
    fn open(f: &Self::Factory, port: u16, path: &str) -> Result<Self, String>;
    fn prep_binary(payload: &[u8]) -> Self::Bin;
    fn prep_text(text: &str) -> Self::Text;
    /// Sends (or buffers, where the client buffers) one message.
    fn send_binary(&mut self, m: &Self::Bin) -> Result<(), String>;
    fn send_text(&mut self, m: &Self::Text) -> Result<(), String>;
    fn flush(&mut self) -> Result<(), String>;
    /// The next data message.
    fn recv(&mut self) -> Result<Got, String>;
    /// The text of the last text message `recv` returned.
    fn last_text(&self) -> String;
    /// Client close 1000, and waits for the close handshake and the server's TCP close.
    fn close(self) -> Result<(), String>;
}

// --- raw: the lower bound ---------------------------------------------------------------------

/// One TCP connection shared by a buffered reader and a buffered writer (one fd).
struct RcStream(Rc<TcpStream>);

impl Read for RcStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for RcStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// A fixed handshake key and a fixed mask: good enough for a lower bound.
const RAW_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RAW_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A whole masked client frame (FIN set).
fn raw_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = Vec::with_capacity(n + 14);
    f.push(0x80 | opcode);
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&RAW_MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ RAW_MASK[i % 4]));
    f
}

struct RawConn {
    r: BufReader<RcStream>,
    w: BufWriter<RcStream>,
    buf: Vec<u8>,
    len: usize,
}

impl RawConn {
    fn connect(port: u16, path: &str, buffer: usize, timeout: Duration) -> Result<RawConn, String> {
        let s = Rc::new(connect_tcp(port, timeout).map_err(|e| format!("connect: {e}"))?);
        let mut w = BufWriter::with_capacity(buffer, RcStream(s.clone()));
        let mut r = BufReader::with_capacity(buffer, RcStream(s));
        write!(
            w,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {RAW_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .and_then(|()| w.flush())
        .map_err(|e| format!("writing the upgrade request: {e}"))?;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            let n = r
                .read_line(&mut line)
                .map_err(|e| format!("reading the upgrade response: {e}"))?;
            if n == 0 {
                return Err("the server closed during the handshake".into());
            }
            if first && !line.starts_with("HTTP/1.1 101") {
                return Err(format!("upgrade refused: {}", line.trim()));
            }
            first = false;
            if line == "\r\n" {
                break;
            }
        }
        Ok(RawConn {
            r,
            w,
            buf: Vec::new(),
            len: 0,
        })
    }

    /// Reads one frame (server frames are unmasked); the payload is `self.buf[..self.len]`.
    fn read_frame(&mut self) -> io::Result<u8> {
        let mut h = [0u8; 2];
        self.r.read_exact(&mut h)?;
        if h[1] & 0x80 != 0 {
            return Err(io::Error::other("masked frame from the server"));
        }
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.r.read_exact(&mut self.buf[..len])?;
        self.len = len;
        Ok(h[0] & 0x0f)
    }

    fn send_close(&mut self) -> io::Result<()> {
        self.w.write_all(&raw_frame(8, &1000u16.to_be_bytes()))?;
        self.w.flush()
    }

    /// After our close: reads up to the server's close frame, then to EOF.
    fn finish_close(&mut self) -> Result<(), String> {
        loop {
            match self.read_frame() {
                Ok(8) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for the close frame: {e}")),
            }
        }
        let mut sink = [0u8; 256];
        loop {
            match self.r.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for the server's TCP close: {e}")),
            }
        }
    }
}

impl Conn for RawConn {
    type Factory = ();
    type Bin = Vec<u8>;
    type Text = Vec<u8>;

    fn factory() {}

    fn open(_: &(), port: u16, path: &str) -> Result<Self, String> {
        RawConn::connect(port, path, 64 * 1024, IO_TIMEOUT)
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        raw_frame(2, payload)
    }

    fn prep_text(text: &str) -> Vec<u8> {
        raw_frame(1, text.as_bytes())
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        self.w.write_all(m).map_err(|e| format!("write: {e}"))
    }

    fn send_text(&mut self, m: &Vec<u8>) -> Result<(), String> {
        self.w.write_all(m).map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.w.flush().map_err(|e| format!("flush: {e}"))
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.read_frame().map_err(|e| format!("read: {e}"))? {
                1 => return Ok(Got::Text(self.len)),
                2 => return Ok(Got::Binary(self.len)),
                8 => return Err("the server closed the connection".into()),
                _ => {}
            }
        }
    }

    fn last_text(&self) -> String {
        String::from_utf8_lossy(&self.buf[..self.len]).into_owned()
    }

    fn close(mut self) -> Result<(), String> {
        self.send_close()
            .map_err(|e| format!("sending close: {e}"))?;
        self.finish_close()
    }
}

// --- tungstenite 0.30, blocking, defaults -----------------------------------------------------

struct TungConn {
    ws: tungstenite::WebSocket<TcpStream>,
    last: Option<tungstenite::Utf8Bytes>,
}

impl TungConn {
    fn connect(port: u16, path: &str, timeout: Duration) -> Result<TungConn, String> {
        let s = connect_tcp(port, timeout).map_err(|e| format!("connect: {e}"))?;
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _response) =
            tungstenite::client(url.as_str(), s).map_err(|e| format!("handshake: {e}"))?;
        Ok(TungConn { ws, last: None })
    }

    fn send_close(&mut self) -> Result<(), String> {
        self.ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            }))
            .and_then(|()| self.ws.flush())
            .map_err(|e| format!("close: {e}"))
    }

    /// Reads until tungstenite reports the close complete (for a client: the server closed TCP).
    fn finish_close(&mut self) -> Result<(), String> {
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
                Err(e) => return Err(format!("waiting for the close: {e}")),
            }
        }
    }
}

impl Conn for TungConn {
    type Factory = ();
    type Bin = Vec<u8>;
    type Text = String;

    fn factory() {}

    fn open(_: &(), port: u16, path: &str) -> Result<Self, String> {
        TungConn::connect(port, path, IO_TIMEOUT)
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    fn prep_text(text: &str) -> String {
        text.to_owned()
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        // A fresh owned buffer per message, as for syncws (Vec -> Bytes does not copy again).
        self.ws
            .write(TMessage::binary(m.clone()))
            .map_err(|e| format!("write: {e}"))
    }

    fn send_text(&mut self, m: &String) -> Result<(), String> {
        self.ws
            .write(TMessage::text(m.clone()))
            .map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.ws.flush().map_err(|e| format!("flush: {e}"))
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.ws.read() {
                Ok(TMessage::Binary(b)) => return Ok(Got::Binary(b.len())),
                Ok(TMessage::Text(t)) => {
                    let n = t.len();
                    self.last = Some(t);
                    return Ok(Got::Text(n));
                }
                Ok(TMessage::Close(f)) => return Err(format!("the server closed: {f:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn last_text(&self) -> String {
        self.last
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default()
    }

    fn close(mut self) -> Result<(), String> {
        self.send_close()?;
        self.finish_close()
    }
}

// --- syncws, public API, Client::new() ---------------------------------------------------------

struct SyncwsConn {
    ws: syncws::WebSocket,
    events: syncws::Events,
    last: Option<String>,
}

impl Drop for SyncwsConn {
    /// On an error path, do not leave the socket running; a no-op once it has finished.
    fn drop(&mut self) {
        self.ws.cancel();
    }
}

fn describe(e: &Event) -> String {
    match e {
        Event::Ended(syncws::Ended::Failed { error, .. }) => format!("failed: {error}"),
        Event::Closing { code, reason }
        | Event::Ended(syncws::Ended::Closed { code, reason, .. }) => {
            format!("closed by the server: {code} {reason:?}")
        }
        other => format!("unexpected event {other:?}"),
    }
}

impl SyncwsConn {
    fn event(&self) -> Result<Event, String> {
        match self.events.recv_timeout(IO_TIMEOUT) {
            Ok(e) => Ok(e),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "no event within {IO_TIMEOUT:?} (state {:?}, queue_size {})",
                self.ws.state(),
                self.ws.queue_size()
            )),
            Err(RecvTimeoutError::Disconnected) => Err("the event channel closed".into()),
        }
    }

    /// Waits while more than `HIGH_WATER` payload bytes are queued.
    fn backpressure(&self) -> Result<(), String> {
        if self.ws.queue_size() <= HIGH_WATER {
            return Ok(());
        }
        let deadline = Deadline::after(IO_TIMEOUT);
        while self.ws.queue_size() > HIGH_WATER {
            if deadline.passed() {
                return Err(format!(
                    "queue_size stayed above {HIGH_WATER} for {IO_TIMEOUT:?} (state {:?})",
                    self.ws.state()
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn send(&self, m: impl Into<Message>) -> Result<(), String> {
        if self.ws.send(m) {
            Ok(())
        } else {
            Err(format!(
                "send returned false (state {:?}, queue_size {})",
                self.ws.state(),
                self.ws.queue_size()
            ))
        }
    }
}

impl Conn for SyncwsConn {
    type Factory = syncws::Client;
    type Bin = Vec<u8>;
    type Text = String;

    fn factory() -> syncws::Client {
        syncws::Client::new()
    }

    fn open(client: &syncws::Client, port: u16, path: &str) -> Result<Self, String> {
        let url = format!("ws://127.0.0.1:{port}{path}");
        let request = Request::builder(&url)
            .build()
            .map_err(|e| format!("request: {e}"))?;
        let (listener, events) = syncws::channel();
        let ws = client.new_web_socket(request, listener);
        let conn = SyncwsConn {
            ws,
            events,
            last: None,
        };
        match conn.event()? {
            // Client::new() offers permessage-deflate; the bench servers must never accept it.
            Event::Open(r) if r.header("Sec-WebSocket-Extensions").is_some() => Err(format!(
                "the server negotiated an extension: {:?}",
                r.header("Sec-WebSocket-Extensions")
            )),
            Event::Open(_) => Ok(conn),
            other => Err(describe(&other)),
        }
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    fn prep_text(text: &str) -> String {
        text.to_owned()
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        self.backpressure()?;
        self.send(m.clone())
    }

    fn send_text(&mut self, m: &String) -> Result<(), String> {
        self.backpressure()?;
        self.send(m.clone())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.event()? {
                Event::Message(Message::Binary(b)) => return Ok(Got::Binary(b.len())),
                Event::Message(Message::Text(t)) => {
                    let n = t.len();
                    self.last = Some(t);
                    return Ok(Got::Text(n));
                }
                Event::Open(_) => {}
                other => return Err(describe(&other)),
            }
        }
    }

    fn last_text(&self) -> String {
        self.last.clone().unwrap_or_default()
    }

    fn close(self) -> Result<(), String> {
        self.ws
            .close(1000, None)
            .map_err(|e| format!("close: {e}"))?;
        loop {
            match self.event()? {
                Event::Ended(syncws::Ended::Closed { .. }) => break,
                Event::Ended(syncws::Ended::Failed { error, .. }) => {
                    return Err(format!("closing failed: {error}"));
                }
                _ => {}
            }
        }
        if !self.ws.wait_finished(IO_TIMEOUT) {
            return Err(format!("not finished {IO_TIMEOUT:?} after on_closed"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The in-process scenarios.
// ---------------------------------------------------------------------------------------------

fn rtt<C: Conn>(port: u16, c: &Counts) -> Result<Outcome, String> {
    let f = C::factory();
    let mut conn = C::open(&f, port, "/echo")?;
    let text = C::prep_text(RTT_TEXT);
    let deadline = Deadline::after(RUN_TIMEOUT);
    let mut lat = Vec::with_capacity(c.rtt);
    for i in 0..c.rtt_warmup + c.rtt {
        if i.is_multiple_of(1024) {
            deadline.check("rtt")?;
        }
        let t = Instant::now();
        conn.send_text(&text)?;
        conn.flush()?;
        match conn.recv()? {
            Got::Text(n) if n == RTT_TEXT.len() => {}
            other => return Err(format!("rtt: echo was {other:?}")),
        }
        if i >= c.rtt_warmup {
            lat.push(t.elapsed());
        }
    }
    conn.close()?;
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = us(lat[lat.len() / 2]);
    let p99 = us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]);
    Ok(Outcome::of(vec![("p50", p50), ("p99", p99)]))
}

/// Sends `n` binary messages of `size` bytes to `/sink`, then "done"; returns the seconds from
/// the first send to the server's reply (the count, checked).
fn send_n<C: Conn>(port: u16, n: usize, size: usize) -> Result<f64, String> {
    let f = C::factory();
    let mut conn = C::open(&f, port, "/sink")?;
    let msg = C::prep_binary(&vec![0x5a; size]);
    let done = C::prep_text("done");
    let deadline = Deadline::after(RUN_TIMEOUT);
    let t = Instant::now();
    for i in 0..n {
        if i.is_multiple_of(CHECK_EVERY) {
            deadline.check("send")?;
        }
        conn.send_binary(&msg)?;
    }
    conn.send_text(&done)?;
    conn.flush()?;
    match conn.recv()? {
        Got::Text(_) => {}
        other => return Err(format!("expected the count, got {other:?}")),
    }
    let secs = t.elapsed().as_secs_f64();
    let count = conn.last_text();
    if count != n.to_string() {
        return Err(format!("the server counted {count} messages, not {n}"));
    }
    conn.close()?;
    Ok(secs)
}

/// Has `/source` send `n` binary messages of `size` bytes; returns the seconds from "go" to
/// "end".
fn recv_n<C: Conn>(port: u16, n: usize, size: usize) -> Result<f64, String> {
    let f = C::factory();
    let mut conn = C::open(&f, port, &format!("/source?n={n}&size={size}"))?;
    let go = C::prep_text("go");
    let deadline = Deadline::after(RUN_TIMEOUT);
    let t = Instant::now();
    conn.send_text(&go)?;
    conn.flush()?;
    let mut count = 0usize;
    loop {
        if count.is_multiple_of(CHECK_EVERY) {
            deadline.check("recv")?;
        }
        match conn.recv()? {
            Got::Binary(len) if len == size => count += 1,
            Got::Binary(len) => return Err(format!("message of {len} bytes, not {size}")),
            Got::Text(_) => {
                let text = conn.last_text();
                if text == "end" {
                    break;
                }
                return Err(format!("unexpected text {text:?}"));
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if count != n {
        return Err(format!("received {count} messages, not {n}"));
    }
    conn.close()?;
    Ok(secs)
}

fn connect_n<C: Conn>(port: u16, n: usize) -> Result<Outcome, String> {
    let f = C::factory();
    let deadline = Deadline::after(RUN_TIMEOUT);
    let t = Instant::now();
    for i in 0..n {
        deadline.check("connect")?;
        let conn = C::open(&f, port, "/echo").map_err(|e| format!("connection #{i}: {e}"))?;
        conn.close().map_err(|e| format!("connection #{i}: {e}"))?;
    }
    Ok(Outcome::of(vec![(
        "rate",
        n as f64 / t.elapsed().as_secs_f64(),
    )]))
}

// ---------------------------------------------------------------------------------------------
// idle and scale: a client child process per run.
// ---------------------------------------------------------------------------------------------

fn run_many(mode: &str, lib: Lib, n: usize, port: u16) -> Result<Outcome, String> {
    let args = [
        mode.to_owned(),
        lib.name().to_owned(),
        n.to_string(),
        port.to_string(),
    ];
    let child = ChildProc::spawn(&args, &format!("{mode} {} child", lib.name()))?;
    let mut other = Vec::new();
    let result = child.wait_line("RESULT ", Duration::from_secs(240), &mut other)?;
    let closed = child.wait_line("CLOSED ", Duration::from_secs(60), &mut other);
    drop(child);
    let mut notes: Vec<String> = other
        .iter()
        .filter_map(|l| l.strip_prefix("ERROR "))
        .map(|e| format!("error: {e}"))
        .collect();
    let fields = |line: &str| -> HashMap<String, String> {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let r = fields(&result);
    let num = |m: &HashMap<String, String>, k: &str| -> Option<f64> {
        m.get(k).and_then(|v| v.parse::<f64>().ok())
    };
    let opened = num(&r, "opened").ok_or_else(|| format!("bad RESULT line {result:?}"))?;
    let echoed = num(&r, "echoed").ok_or_else(|| format!("bad RESULT line {result:?}"))?;
    if echoed < n as f64 {
        notes.push(format!("{opened} of {n} opened, {echoed} echoed"));
    }
    let mut metrics = Vec::new();
    if mode == "--idle" {
        if echoed == 0.0 {
            return Err(format!("no socket echoed ({})", notes.join("; ")));
        }
        for (key, a, b) in [
            ("rss", "rss0", "rss1"),
            ("threads", "thr0", "thr1"),
            ("fds", "fd0", "fd1"),
        ] {
            match (num(&r, a), num(&r, b)) {
                (Some(a), Some(b)) => metrics.push((key, (b - a) / echoed)),
                _ => notes.push(format!("could not read /proc for {key} ({result})")),
            }
        }
    } else {
        let secs = num(&r, "secs").ok_or_else(|| format!("bad RESULT line {result:?}"))?;
        metrics.push(("opened", opened));
        metrics.push(("echoed", echoed));
        metrics.push(("secs", secs));
        match closed {
            Ok(line) => {
                let f = fields(&line);
                if let Some(c) = num(&f, "closed") {
                    metrics.push(("closed", c));
                }
                // syncws counts each socket's terminal callback; the others have none.
                if let Some(e) = num(&f, "ended") {
                    metrics.push(("ended", e));
                    if e < n as f64 {
                        notes.push(format!("{e} of {n} sockets ended exactly once"));
                    }
                }
            }
            Err(e) => notes.push(e),
        }
        let shown = |k: &str, f: &dyn Fn(f64) -> String| num(&r, k).map_or("NA".to_owned(), f);
        notes.push(format!(
            "open phase {} s; with {echoed} sockets echoed: RSS {} MiB, {} threads, {} fds",
            shown("open_secs", &|v| format!("{v:.2}")),
            shown("rss1", &|v| format!("{:.0}", v / 1024.0)),
            shown("thr1", &|v| format!("{v}")),
            shown("fd1", &|v| format!("{v}")),
        ));
    }
    Ok(Outcome { metrics, notes })
}

struct ManyParams {
    n: usize,
    port: u16,
    open_timeout: Duration,
    echo_timeout: Duration,
    close_timeout: Duration,
    settle: Duration,
    io_timeout: Duration,
}

#[derive(Default)]
struct Errors(Vec<(String, usize)>);

impl Errors {
    fn add(&mut self, e: impl Into<String>) {
        let e = e.into();
        match self.0.iter_mut().find(|(k, _)| *k == e) {
            Some((_, c)) => *c += 1,
            None => self.0.push((e, 1)),
        }
    }

    fn print(&mut self) {
        for (e, c) in self.0.drain(..) {
            println!("ERROR {c}x {e}");
        }
    }
}

struct Stats {
    rss_kib: Option<u64>,
    threads: Option<u64>,
    fds: Option<u64>,
}

/// /proc/self/status, opened once at the start of a child: re-read at the end even when the
/// sockets have used up the open-file limit (the fd count then reads NA).
static STATUS: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();

fn stats() -> Stats {
    use std::io::Seek;
    let status = STATUS
        .get_or_init(|| {
            let f = std::fs::File::open("/proc/self/status").expect("open /proc/self/status");
            std::sync::Mutex::new(f)
        })
        .lock()
        .ok()
        .and_then(|mut f| {
            let mut s = String::new();
            f.rewind().ok()?;
            f.read_to_string(&mut s).ok()?;
            Some(s)
        });
    let field = |name: &str| -> Option<u64> {
        let s = status.as_ref()?;
        let line = s.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Stats {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("NA".to_owned(), |v| v.to_string())
}

/// Waits `settle`, reads the stats again and prints the errors and the RESULT line.
fn report(
    base: &Stats,
    opened: usize,
    echoed: usize,
    open_secs: f64,
    secs: f64,
    p: &ManyParams,
    errs: &mut Errors,
) {
    thread::sleep(p.settle);
    let now = stats();
    errs.print();
    println!(
        "RESULT opened={opened} echoed={echoed} open_secs={open_secs:.3} secs={secs:.3} \
         rss0={} rss1={} thr0={} thr1={} fd0={} fd1={}",
        opt(base.rss_kib),
        opt(now.rss_kib),
        opt(base.threads),
        opt(now.threads),
        opt(base.fds),
        opt(now.fds)
    );
    let _ = io::stdout().flush();
}

fn many_main(args: &[String]) -> ! {
    watch_parent();
    let usage = "usage: --idle|--scale raw|tungstenite|syncws N PORT";
    let scale = args[0] == "--scale";
    let lib = args.get(1).and_then(|s| Lib::parse(s)).expect(usage);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let port: u16 = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(290));
        eprintln!("many-sockets child: hard timeout");
        std::process::exit(3);
    });
    let p = ManyParams {
        n,
        port,
        open_timeout: Duration::from_secs(if scale { 90 } else { 30 }),
        echo_timeout: Duration::from_secs(30),
        close_timeout: Duration::from_secs(30),
        settle: Duration::from_secs(1),
        io_timeout: Duration::from_secs(10),
    };
    match lib {
        Lib::Raw => many_raw(&p),
        Lib::Tungstenite => many_tungstenite(&p),
        Lib::Syncws => many_syncws(&p),
    }
    let _ = io::stdout().flush();
    std::process::exit(0);
}

/// raw and tungstenite: one thread, sockets opened one after another, then one echo each.
fn many_raw(p: &ManyParams) {
    let base = stats();
    let mut errs = Errors::default();
    let t0 = Instant::now();
    let open_deadline = Deadline::after(p.open_timeout);
    let mut socks = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        if open_deadline.passed() {
            errs.add("open phase timed out");
            break;
        }
        // Small buffers: a client holding many mostly idle sockets would not give each 64 KiB.
        match RawConn::connect(p.port, "/echo", 4096, p.io_timeout) {
            Ok(s) => socks.push(s),
            Err(e) => {
                errs.add(format!("stopped opening: {e}"));
                break;
            }
        }
    }
    let opened = socks.len();
    let open_secs = t0.elapsed().as_secs_f64();
    let frame = raw_frame(1, b"hello");
    let mut ok = vec![true; opened];
    for (i, s) in socks.iter_mut().enumerate() {
        if let Err(e) = s.w.write_all(&frame).and_then(|()| s.w.flush()) {
            errs.add(format!("send: {e}"));
            ok[i] = false;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    let mut echoed = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        if !ok[i] {
            continue;
        }
        if echo_deadline.passed() {
            errs.add("echo phase timed out");
            break;
        }
        match s.read_frame() {
            Ok(1) => echoed += 1,
            Ok(op) => errs.add(format!("echo: opcode {op}")),
            Err(e) => errs.add(format!("echo: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    for s in socks.iter_mut() {
        if let Err(e) = s.send_close() {
            errs.add(format!("close: {e}"));
        }
    }
    let mut closed = 0;
    for s in socks.iter_mut() {
        if close_deadline.passed() {
            errs.add("close phase timed out");
            break;
        }
        match s.finish_close() {
            Ok(()) => closed += 1,
            Err(e) => errs.add(e),
        }
    }
    errs.print();
    println!(
        "CLOSED closed={closed} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}

fn many_tungstenite(p: &ManyParams) {
    let base = stats();
    let mut errs = Errors::default();
    let t0 = Instant::now();
    let open_deadline = Deadline::after(p.open_timeout);
    let mut socks = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        if open_deadline.passed() {
            errs.add("open phase timed out");
            break;
        }
        match TungConn::connect(p.port, "/echo", p.io_timeout) {
            Ok(s) => socks.push(s),
            Err(e) => {
                errs.add(format!("stopped opening: {e}"));
                break;
            }
        }
    }
    let opened = socks.len();
    let open_secs = t0.elapsed().as_secs_f64();
    let mut ok = vec![true; opened];
    for (i, s) in socks.iter_mut().enumerate() {
        if let Err(e) = s.ws.send(TMessage::text("hello")) {
            errs.add(format!("send: {e}"));
            ok[i] = false;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    let mut echoed = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        if !ok[i] {
            continue;
        }
        if echo_deadline.passed() {
            errs.add("echo phase timed out");
            break;
        }
        match s.recv() {
            Ok(Got::Text(_)) => echoed += 1,
            Ok(other) => errs.add(format!("echo: {other:?}")),
            Err(e) => errs.add(format!("echo: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    for s in socks.iter_mut() {
        if let Err(e) = s.send_close() {
            errs.add(e);
        }
    }
    let mut closed = 0;
    for s in socks.iter_mut() {
        if close_deadline.passed() {
            errs.add("close phase timed out");
            break;
        }
        match s.finish_close() {
            Ok(()) => closed += 1,
            Err(e) => errs.add(e),
        }
    }
    errs.print();
    println!(
        "CLOSED closed={closed} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}

/// syncws: every socket created at once (each starts connecting on its own reader thread);
/// listener closures forward (index, event) to one crossbeam channel.
fn many_syncws(p: &ManyParams) {
    #[derive(Debug)]
    enum Ev {
        Open,
        Echo,
        Closed,
        Failed(String),
    }
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum St {
        Connecting,
        Open,
        Echoed,
        Failed,
        Closed,
    }

    let base = stats();
    let mut errs = Errors::default();
    let client = syncws::Client::new();
    let url = format!("ws://127.0.0.1:{}/echo", p.port);
    let request = Request::builder(&url).build().expect("a valid URL");
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Ev)>();
    let t0 = Instant::now();
    let mut sockets = Vec::with_capacity(p.n);
    for i in 0..p.n {
        let (a, b, c, d) = (tx.clone(), tx.clone(), tx.clone(), tx.clone());
        let listener = Listener::new()
            .on_open(move |_, _| {
                let _ = a.send((i, Ev::Open));
            })
            .on_message(move |_, _| {
                let _ = b.send((i, Ev::Echo));
            })
            .on_closed(move |_, _, _| {
                let _ = c.send((i, Ev::Closed));
            })
            .on_failure(move |_, e, _| {
                let _ = d.send((i, Ev::Failed(e.to_string())));
            });
        sockets.push(client.new_web_socket(request.clone(), listener));
    }
    drop(tx);
    let mut st = vec![St::Connecting; p.n];
    // A socket whose reader thread could not start ends Canceled without any callback: after
    // it has been seen Canceled for a second with no event, count it as failed.
    let mut canceled_since: Vec<Option<Instant>> = vec![None; p.n];
    let mut late_opens = 0usize;
    // Every socket must end exactly once (on_closed or on_failure): counted per socket, so a
    // lost or doubled terminal callback shows.
    let mut ends = vec![0u8; p.n];
    let mut apply = |i: usize, ev: Ev, st: &mut [St], errs: &mut Errors| {
        if matches!(ev, Ev::Closed | Ev::Failed(_)) {
            ends[i] = ends[i].saturating_add(1);
        }
        match (st[i], ev) {
            (St::Connecting, Ev::Open) => st[i] = St::Open,
            (St::Open, Ev::Echo) => st[i] = St::Echoed,
            (St::Connecting | St::Open | St::Echoed, Ev::Failed(e)) => {
                errs.add(format!("{:?}: {e}", st[i]));
                st[i] = St::Failed;
            }
            (St::Failed, Ev::Open) => late_opens += 1,
            (St::Open | St::Echoed, Ev::Closed) => st[i] = St::Closed,
            (s, ev) => errs.add(format!("unexpected {ev:?} in state {s:?}")),
        }
    };

    let open_deadline = Deadline::after(p.open_timeout);
    let mut last_scan = Instant::now();
    while st.contains(&St::Connecting) && !open_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_scan.elapsed() > Duration::from_millis(500) {
            last_scan = Instant::now();
            for i in 0..p.n {
                if st[i] != St::Connecting || sockets[i].state() != syncws::State::Canceled {
                    continue;
                }
                match canceled_since[i] {
                    None => canceled_since[i] = Some(Instant::now()),
                    Some(t) if t.elapsed() > Duration::from_secs(1) => {
                        errs.add("ended Canceled without a callback (reader thread not started?)");
                        st[i] = St::Failed;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let still = st.iter().filter(|s| **s == St::Connecting).count();
    if still > 0 {
        errs.add(format!(
            "{still} still connecting after {:?}",
            p.open_timeout
        ));
        for i in 0..p.n {
            if st[i] == St::Connecting {
                st[i] = St::Failed;
                sockets[i].cancel();
            }
        }
    }
    let opened = st.iter().filter(|s| **s == St::Open).count();
    let open_secs = t0.elapsed().as_secs_f64();

    for i in 0..p.n {
        if st[i] == St::Open && !sockets[i].send("hello") {
            errs.add(format!(
                "send returned false (state {:?})",
                sockets[i].state()
            ));
            st[i] = St::Failed;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    while st.contains(&St::Open) && !echo_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let waiting = st.iter().filter(|s| **s == St::Open).count();
    if waiting > 0 {
        errs.add(format!(
            "{waiting} open sockets got no echo within {:?}",
            p.echo_timeout
        ));
    }
    let echoed = st.iter().filter(|s| **s == St::Echoed).count();
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    let mut closing = 0;
    for i in 0..p.n {
        if matches!(st[i], St::Open | St::Echoed) {
            match sockets[i].close(1000, None) {
                Ok(true) => closing += 1,
                Ok(false) => errs.add(format!("close: already closing ({:?})", sockets[i].state())),
                Err(e) => errs.add(format!("close: {e}")),
            }
        }
    }
    while st.iter().any(|s| matches!(s, St::Open | St::Echoed)) && !close_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let closed = st.iter().filter(|s| **s == St::Closed).count();
    if closed < closing {
        errs.add(format!(
            "{} of {closing} closes did not complete within {:?}",
            closing - closed,
            p.close_timeout
        ));
    }
    let mut unfinished = 0;
    for s in &sockets {
        if !s.wait_finished(close_deadline.remaining()) {
            unfinished += 1;
            s.cancel();
        }
    }
    // Every socket has finished (its terminal callback has returned): take the events still
    // in the channel, then count the ends.
    while let Ok((i, ev)) = rx.try_recv() {
        apply(i, ev, &mut st, &mut errs);
    }
    let ended = ends.iter().filter(|&&e| e == 1).count();
    let unended = ends.iter().filter(|&&e| e == 0).count();
    let doubled = ends.iter().filter(|&&e| e > 1).count();
    if unended > 0 || doubled > 0 {
        errs.add(format!(
            "{unended} sockets without a terminal callback, {doubled} with more than one"
        ));
    }
    if unfinished > 0 {
        errs.add(format!(
            "{unfinished} sockets not finished at the close deadline"
        ));
    }
    if late_opens > 0 {
        errs.add(format!(
            "{late_opens} on_open after on_failure (should not happen)"
        ));
    }
    errs.print();
    println!(
        "CLOSED closed={closed} ended={ended} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// The server child: tungstenite, thread per connection, no compression.
// ---------------------------------------------------------------------------------------------

fn server_main() -> ! {
    watch_parent();
    let listener = TcpListener::bind("127.0.0.1:0").expect("server: bind 127.0.0.1:0");
    let port = listener.local_addr().expect("server: local_addr").port();
    println!("PORT {port}");
    let _ = io::stdout().flush();
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                let spawned = thread::Builder::new()
                    .name("bench-server".into())
                    .stack_size(512 * 1024)
                    .spawn(move || serve(s));
                if let Err(e) = spawned {
                    eprintln!("server: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("server: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    std::process::exit(1);
}

// tungstenite's callback type fixes the error type.
#[allow(clippy::result_large_err)]
fn serve(stream: TcpStream) {
    use tungstenite::handshake::server::{ErrorResponse, Request as HReq, Response as HResp};
    let _ = stream.set_nodelay(true);
    // Bounds every blocking read: no connection thread outlives a vanished client for long.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut target = (String::new(), String::new());
    let accepted = tungstenite::accept_hdr(
        stream,
        |req: &HReq, resp: HResp| -> Result<HResp, ErrorResponse> {
            target = (
                req.uri().path().to_owned(),
                req.uri().query().unwrap_or("").to_owned(),
            );
            Ok(resp)
        },
    );
    let Ok(mut ws) = accepted else { return };
    match target.0.as_str() {
        "/echo" => serve_echo(&mut ws),
        "/sink" => serve_sink(&mut ws),
        "/source" => serve_source(&mut ws, &target.1),
        _ => {
            let _ = ws.close(None);
        }
    }
    // Drive the close handshake (tungstenite answers the client's close) until it reports
    // ConnectionClosed; dropping the socket then closes TCP.
    while ws.read().is_ok() {}
}

type ServerWs = tungstenite::WebSocket<TcpStream>;

fn serve_echo(ws: &mut ServerWs) {
    loop {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(TMessage::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn serve_sink(ws: &mut ServerWs) {
    let mut count: u64 = 0;
    loop {
        match ws.read() {
            Ok(TMessage::Binary(_)) => count += 1,
            Ok(TMessage::Text(t)) if t.as_str() == "done" => {
                if ws.send(TMessage::text(count.to_string())).is_err() {
                    return;
                }
                count = 0;
            }
            Ok(TMessage::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn serve_source(ws: &mut ServerWs, query: &str) {
    let mut n = 0usize;
    let mut size = 0usize;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("n", v)) => n = v.parse().unwrap_or(0),
            Some(("size", v)) => size = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    loop {
        match ws.read() {
            Ok(TMessage::Text(t)) if t.as_str() == "go" => break,
            Ok(TMessage::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
    let payload = tungstenite::Bytes::from(vec![0xa5u8; size]);
    for _ in 0..n {
        if ws.write(TMessage::Binary(payload.clone())).is_err() {
            return;
        }
    }
    if ws.write(TMessage::text("end")).is_err() || ws.flush().is_err() {
        return;
    }
    serve_echo(ws);
}

// ---------------------------------------------------------------------------------------------
// The scale server child: one thread, mio, upgrade + echo, no compression.
// ---------------------------------------------------------------------------------------------

struct EchoConn {
    stream: mio::net::TcpStream,
    inb: Vec<u8>,
    out: Vec<u8>,
    upgraded: bool,
    close_after_flush: bool,
}

impl EchoConn {
    /// Reads what is there, answers it, writes what it can. Returns false to drop the
    /// connection (which closes it).
    fn service(&mut self, chunk: &mut [u8]) -> bool {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => return false,
                Ok(n) => self.inb.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !self.close_after_flush && !self.process() {
            return false;
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return false,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        // The server closes TCP once its close frame is out.
        !self.close_after_flush
    }

    fn process(&mut self) -> bool {
        if !self.upgraded {
            let Some(end) = self.inb.windows(4).position(|w| w == b"\r\n\r\n") else {
                return self.inb.len() <= 16 * 1024;
            };
            let head = String::from_utf8_lossy(&self.inb[..end]).into_owned();
            let key = head.split("\r\n").find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            });
            let Some(key) = key else {
                self.out
                    .extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                self.close_after_flush = true;
                return true;
            };
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            self.out.extend_from_slice(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .as_bytes(),
            );
            self.inb.drain(..end + 4);
            self.upgraded = true;
        }
        let mut pos = 0;
        loop {
            let b = &self.inb[pos..];
            if b.len() < 2 {
                break;
            }
            if b[1] & 0x80 == 0 {
                return false; // clients must mask
            }
            let (len, mut hdr) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            hdr += 4;
            if len > 16 << 20 {
                return false;
            }
            if b.len() < hdr + len {
                break;
            }
            let mask = [b[hdr - 4], b[hdr - 3], b[hdr - 2], b[hdr - 1]];
            let payload: Vec<u8> = b[hdr..hdr + len]
                .iter()
                .enumerate()
                .map(|(i, x)| x ^ mask[i % 4])
                .collect();
            let (b0, opcode) = (b[0], b[0] & 0x0f);
            pos += hdr + len;
            match opcode {
                0..=2 => push_frame(&mut self.out, b0, &payload),
                8 => {
                    push_frame(&mut self.out, 0x88, &payload[..payload.len().min(2)]);
                    self.close_after_flush = true;
                    break;
                }
                9 => push_frame(&mut self.out, 0x8a, &payload),
                10 => {}
                _ => return false,
            }
        }
        self.inb.drain(..pos);
        true
    }
}

/// An unmasked server frame.
fn push_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8]) {
    let n = payload.len();
    out.push(b0);
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn scale_server_main() -> ! {
    use mio::{Events, Interest, Poll, Token};
    watch_parent();
    const LISTENER: Token = Token(usize::MAX);
    let addr = "127.0.0.1:0".parse().expect("an address");
    let mut listener = mio::net::TcpListener::bind(addr).expect("scale server: bind");
    let port = listener
        .local_addr()
        .expect("scale server: local_addr")
        .port();
    let mut poll = Poll::new().expect("scale server: poll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("scale server: register the listener");
    println!("PORT {port}");
    let _ = io::stdout().flush();
    let mut conns: Vec<Option<EchoConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // After an accept error (EMFILE) the edge-triggered listener would not fire again for the
    // connections already queued: retry on a short timer instead.
    let mut retry_accept = false;
    loop {
        let timeout = retry_accept.then_some(Duration::from_millis(10));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("scale server: poll: {e}");
            std::process::exit(1);
        }
        let mut accept_now = retry_accept;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_now = true;
                continue;
            }
            let idx = ev.token().0;
            let keep = match conns.get_mut(idx) {
                Some(Some(c)) => c.service(&mut chunk),
                _ => continue,
            };
            if !keep && let Some(mut c) = conns[idx].take() {
                let _ = poll.registry().deregister(&mut c.stream);
                free.push(idx);
            }
        }
        if accept_now {
            retry_accept = false;
            loop {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nodelay(true);
                        let idx = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        if poll
                            .registry()
                            .register(&mut s, Token(idx), interest)
                            .is_err()
                        {
                            free.push(idx);
                            continue;
                        }
                        conns[idx] = Some(EchoConn {
                            stream: s,
                            inb: Vec::new(),
                            out: Vec::new(),
                            upgraded: false,
                            close_after_flush: false,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("scale server: accept: {e}");
                        retry_accept = true;
                        break;
                    }
                }
            }
        }
    }
}
