//! What the clients of an idle or scale child process share: their parameters, the errors
//! they count, the /proc stats and the RESULT line (`many.rs` runs the child).

use std::io::{self, Read, Write};
use std::thread;
use std::time::Duration;

pub struct ManyParams {
    pub n: usize,
    pub port: u16,
    pub open_timeout: Duration,
    pub echo_timeout: Duration,
    pub close_timeout: Duration,
    pub settle: Duration,
    pub io_timeout: Duration,
}

#[derive(Default)]
pub struct Errors(Vec<(String, usize)>);

impl Errors {
    pub fn add(&mut self, e: impl Into<String>) {
        let e = e.into();
        match self.0.iter_mut().find(|(k, _)| *k == e) {
            Some((_, c)) => *c += 1,
            None => self.0.push((e, 1)),
        }
    }

    pub fn print(&mut self) {
        for (e, c) in self.0.drain(..) {
            println!("ERROR {c}x {e}");
        }
    }
}

pub struct Stats {
    rss_kib: Option<u64>,
    pub threads: Option<u64>,
    pub fds: Option<u64>,
}

/// /proc/self/status, opened once at the start of a child: re-read at the end even when the
/// sockets have used up the open-file limit (the fd count then reads NA).
static STATUS: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();

pub fn stats() -> Stats {
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
pub fn report(
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
