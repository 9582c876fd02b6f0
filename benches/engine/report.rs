//! What the runs measured: medians over rounds, and the markdown table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::{LIBS, Lib, Scenario};

/// What one run measured.
pub struct Outcome {
    pub metrics: Vec<(&'static str, f64)>,
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn of(metrics: Vec<(&'static str, f64)>) -> Outcome {
        Outcome {
            metrics,
            notes: Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct Results {
    pub values: HashMap<(Scenario, &'static str, Lib), Vec<f64>>,
    pub failures: HashMap<(Scenario, Lib), usize>,
    pub notes: Vec<String>,
}

impl Results {
    pub fn note(&mut self, n: String) {
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

    /// The table: each client's median, then syncws's and syncws-conn's ratios to tungstenite
    /// and to raw.
    pub fn render(&self, scenarios: &[Scenario], header: &str) -> String {
        let syncws = [Lib::Syncws, Lib::SyncwsConn];
        let mut out = String::new();
        out.push_str(header);
        out.push_str("\n| scenario | metric |");
        for lib in LIBS {
            out.push_str(&format!(" {} |", lib.name()));
        }
        for other in [Lib::Tungstenite, Lib::Raw] {
            for s in syncws {
                out.push_str(&format!(" {}/{} |", s.name(), other.name()));
            }
        }
        out.push_str(&format!("\n|---|---|{}\n", "---|".repeat(LIBS.len() + 4)));
        for &sc in scenarios {
            for (key, label) in sc.metrics() {
                let cell = |lib| self.cell(sc, key, lib);
                let ratio = |a: Lib, b: Lib| match (cell(a).0, cell(b).0) {
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                    _ => "-".to_owned(),
                };
                out.push_str(&format!("| {} | {label} |", sc.name()));
                for lib in LIBS {
                    out.push_str(&format!(" {} |", cell(lib).1));
                }
                for other in [Lib::Tungstenite, Lib::Raw] {
                    for s in syncws {
                        out.push_str(&format!(" {} |", ratio(s, other)));
                    }
                }
                out.push('\n');
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

pub fn fmt_num(v: f64) -> String {
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
pub fn target_dir() -> PathBuf {
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

/// The p50 and p99 of round-trip times, in µs.
pub fn latencies(mut lat: Vec<Duration>) -> Outcome {
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = us(lat[lat.len() / 2]);
    let p99 = us(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]);
    Outcome::of(vec![("p50", p50), ("p99", p99)])
}
