//! `syncws bench`: a load generator against an echo server: N connections, each sending M
//! messages of S bytes and waiting for each echo; prints throughput and round-trip percentiles.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use syncws::{Client, Message, Request};

/// Load-test an echo server: throughput and round-trip latency.
#[derive(clap::Args)]
#[command(
    long_about = "Opens --connections connections to URL (an echo server: `syncws listen` is \
        one), and on each sends --messages binary messages of --size bytes, one at a time, \
        waiting for each echo (optionally at most --rate messages per second per connection). \
        Prints the messages per second and bytes per second over the whole run, and the \
        round-trip percentiles p50, p99 and p99.9. A progress bar shows on a terminal. Exits \
        1 if any connection failed, including one whose echo did not come back within \
        --timeout.",
    after_help = "Examples:\n  \
        syncws bench ws://127.0.0.1:9000/\n  \
        syncws bench ws://127.0.0.1:9000/ -c 100 -n 10000 -s 1024\n  \
        syncws bench ws://127.0.0.1:9000/ -c 10 --rate 50 --json"
)]
pub struct Args {
    /// An echo server's URL.
    url: String,
    /// Connections, each on its own thread.
    #[arg(short = 'c', long, default_value_t = 10)]
    connections: usize,
    /// Messages per connection.
    #[arg(short = 'n', long, default_value_t = 1000)]
    messages: u64,
    /// Payload bytes per message.
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// At most this many messages per second per connection (default: as fast as the echoes
    /// come back).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Give up on a connection whose echo has not come back within this long, e.g. 500ms, 10s.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "10s"
    )]
    timeout: Duration,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// One connection's run: its round trips, or why it failed.
fn one(client: &Client, args: &Args, progress: &ProgressBar) -> Result<Vec<Duration>, String> {
    let request = Request::builder(&args.url)
        .build()
        .map_err(|e| e.to_string())?;
    let mut conn = client.connect(request).map_err(|e| e.to_string())?;
    // The echo comes back as the next payload: no allocation per round trip.
    let mut payload = vec![0x5au8; args.size];
    let mut rtts = Vec::with_capacity(usize::try_from(args.messages).unwrap_or(0));
    let start = Instant::now();
    for i in 0..args.messages {
        if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
            // Paced from the start, so one late echo does not slow the rest.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let sent = Instant::now();
        if !conn.send(std::mem::take(&mut payload)) {
            return Err("the socket closed".into());
        }
        match conn.recv_timeout(args.timeout).map_err(|e| e.to_string())? {
            Some(Message::Binary(b)) if b.len() == args.size => payload = b,
            Some(other) => return Err(format!("not an echo: {} bytes", other.len())),
            None => {
                return Err(format!(
                    "no echo within {}",
                    humantime::format_duration(args.timeout)
                ));
            }
        }
        rtts.push(sent.elapsed());
        progress.inc(1);
    }
    let _ = conn.close(1000, None);
    Ok(rtts)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn run(args: Args) -> ExitCode {
    let total = args.messages.saturating_mul(args.connections as u64);
    let progress = if !args.json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let client = Arc::new(Client::new());
    let args = Arc::new(args);
    let start = Instant::now();
    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, args, progress) = (client.clone(), args.clone(), progress.clone());
            std::thread::spawn(move || one(&client, &args, &progress))
        })
        .collect();
    let mut rtts = Vec::new();
    let mut errors = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(r)) => rtts.extend(r),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a connection's thread panicked".into()),
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    rtts.sort_unstable();
    let done = rtts.len() as u64;
    let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let per_sec = done as f64 / secs;
    let bytes_per_sec = per_sec * args.size as f64 * 2.0;
    let (p50, p99, p999) = (
        percentile(&rtts, 50.0),
        percentile(&rtts, 99.0),
        percentile(&rtts, 99.9),
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    if args.json {
        println!(
            "{}",
            json!({
                "connections": args.connections, "messages": done, "size": args.size,
                "seconds": secs, "messages_per_second": per_sec,
                "bytes_per_second": bytes_per_sec,
                "rtt_us": {"p50": us(p50), "p99": us(p99), "p99_9": us(p999)},
                "errors": errors,
            })
        );
    } else {
        println!(
            "{done} messages of {} bytes over {} connections in {:.2} s",
            args.size, args.connections, secs
        );
        println!(
            "throughput: {per_sec:.0} messages/s, {:.2} MiB/s (both ways)",
            bytes_per_sec / (1024.0 * 1024.0)
        );
        println!(
            "round trip: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
            us(p50),
            us(p99),
            us(p999)
        );
        for e in &errors {
            eprintln!(
                "# a connection failed: {}",
                crate::output::for_terminal(&e.to_string())
            );
        }
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
