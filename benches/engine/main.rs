//! The engine benchmark: syncws, through its listener API (`syncws`) and through its blocking
//! `Connection` (`syncws-conn`), against tungstenite 0.30 (blocking) and a hand-written raw
//! client (the lower bound), all four talking to the same local server, which runs in a child
//! process of its own so this process's RSS, threads and fds belong to the client alone.
//!
//! `cargo bench --bench engine` runs every scenario for 7 interleaved rounds (raw, tungstenite,
//! syncws, syncws-conn, raw, ...) and prints a markdown table of medians, also written to
//! `target/engine-bench.md`. Flags (after `--`): `--quick` (1 round, a tenth of each count: a
//! smoke test), `--only rtt,connect`, `--rounds N`. The method is in docs/benchmarks.md.
//!
//! Only syncws's public API is used, so these files compile unchanged against another engine
//! with the same API.
//!
//! The same binary is also each child process, chosen by its first argument:
//! `--server` (thread per connection: `/echo`, `/sink`, `/source?n=N&size=S`),
//! `--scale-server` (single-threaded mio echo server), and `--idle|--scale CLIENT N PORT` (a
//! client opening N sockets). Every child exits when its stdin closes, so none outlives the
//! bench, even if the bench is killed.
//!
//! The modules, one job each:
//! - `options`: the scenarios, the clients, the counts and the command line;
//! - `rounds`: the round loop (the parent), `report`: medians and the table;
//! - `children`: starting and stopping child processes of this binary;
//! - `server` (with `sink`, its `/sink` route), `scale_server`: the two server children;
//! - `clients`: the clients behind one trait, one module each;
//! - `scenarios`: what one run does (rtt, send, recv, connect); `callbacks`: syncws's
//!   callback-style runs (receiving in `on_message`, rtt-callback); `streams`: the streamed
//!   send and receive (send-stream, recv-stream);
//! - `many`, `many_blocking`, `many_syncws`: the idle and scale client children.

mod callbacks;
mod children;
mod clients;
mod many;
mod many_blocking;
mod many_child;
mod many_syncws;
mod options;
mod report;
mod rounds;
mod scale_server;
mod scenarios;
mod server;
mod sink;
mod streams;

use std::io::{self, Read};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single blocking read, write or event wait may take before the run fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one run (one scenario, one client, one round) may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// Loops check the run's deadline once per this many messages.
pub const CHECK_EVERY: usize = 4096;
/// The rtt payload: 32 bytes of text.
pub const RTT_TEXT: &str = "0123456789abcdef0123456789abcdef";
pub const SMALL: usize = 64;
pub const LARGE: usize = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--server") => server::server_main(),
        Some("--scale-server") => scale_server::scale_server_main(),
        Some("--idle") | Some("--scale") => many::many_main(&args),
        _ => rounds::bench_main(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the parent and the children.
// ---------------------------------------------------------------------------------------------

/// In a child: exit as soon as the parent closes our stdin (or dies).
pub fn watch_parent() {
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
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline(Instant::now() + d)
    }

    pub fn check(&self, what: &str) -> Result<(), String> {
        if Instant::now() > self.0 {
            Err(format!("{what}: timed out"))
        } else {
            Ok(())
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() > self.0
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_owned()
    }
}

pub fn connect_tcp(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}
