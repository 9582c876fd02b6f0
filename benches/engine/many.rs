//! idle and scale: a client child process per run. The parent's side (`run_many`), and the
//! child's entry point with what its clients share (parameters, errors, /proc stats).

use std::collections::HashMap;
use std::io::{self, Write};
use std::thread;
use std::time::Duration;

use crate::children::ChildProc;
use crate::many_blocking::{many_conn, many_raw, many_tungstenite};
use crate::many_child::ManyParams;
use crate::many_syncws::many_syncws;
use crate::options::Lib;
use crate::report::Outcome;
use crate::watch_parent;

pub fn run_many(mode: &str, lib: Lib, n: usize, port: u16) -> Result<Outcome, String> {
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

pub fn many_main(args: &[String]) -> ! {
    watch_parent();
    let usage = "usage: --idle|--scale raw|tungstenite|syncws|syncws-conn N PORT";
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
        Lib::SyncwsConn => many_conn(&p),
    }
    let _ = io::stdout().flush();
    std::process::exit(0);
}
