//! The parent: starts the servers, runs every scenario for every client, round after round
//! (interleaved), and prints the table.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::{Duration, Instant};

use crate::children::ServerProc;
use crate::options::{FULL, LIBS, QUICK, Scenario, parse_options};
use crate::panic_text;
use crate::report::{Results, fmt_num, target_dir};
use crate::scenarios::run_one;

pub fn bench_main(args: &[String]) {
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
            for lib in LIBS
                .into_iter()
                .filter(|&lib| sc.runs(lib) && opts.clients.contains(&lib))
            {
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
                            "  {:<12} round {}/{} {:<12} {}  ({took:.1} s)",
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
                            "  {:<12} round {}/{} {:<12} FAILED: {e}  ({took:.1} s)",
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
