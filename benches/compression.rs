//! Compression on vs. off on a realistic JSON telemetry stream, client ↔ the crate's own echo
//! server over loopback, through a byte-counting TCP relay that measures what crosses the wire.
//!
//! `cargo bench --bench compression` (results are written up in docs/compression.md).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use syncws::{Client, EchoServer, Event, Message, Request, Server};

const MESSAGES: usize = 4000;
const ROUNDS: usize = 3;

/// Deterministic telemetry batches of about 2 KiB: what a dashboard or IoT feed sends.
fn stream() -> Vec<String> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let statuses = ["ok", "ok", "ok", "degraded", "ok", "offline"];
    (0..MESSAGES)
        .map(|m| {
            let mut s = String::from("{\"batch\":");
            s.push_str(&m.to_string());
            s.push_str(",\"records\":[");
            let mut first = true;
            while s.len() < 2000 {
                let r = next();
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!(
                    "{{\"ts\":{},\"device\":\"sensor-{:03}\",\"temp\":{}.{:02},\"humidity\":{},\
                     \"battery\":{},\"status\":\"{}\",\"firmware\":\"2.4.{}\"}}",
                    1_764_000_000_000u64 + m as u64 * 250 + (r % 250),
                    r % 64,
                    15 + r % 15,
                    (r >> 8) % 100,
                    30 + (r >> 16) % 60,
                    (r >> 24) % 101,
                    statuses[((r >> 32) % 6) as usize],
                    (r >> 40) % 4
                ));
            }
            s.push_str("]}");
            s
        })
        .collect()
}

/// A TCP relay that counts bytes in each direction.
fn relay(target: std::net::SocketAddr) -> (u16, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (u, d) = (up.clone(), down.clone());
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let Ok(server) = TcpStream::connect(target) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            pump(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                u.clone(),
            );
            pump(server, client, d.clone());
        }
    });
    (port, up, down)
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

struct Run {
    secs: f64,
    up: u64,
    down: u64,
}

fn run(compression: bool, bits: u8, level: u32, messages: &[String]) -> Run {
    let builder = Server::builder()
        .server_max_window_bits(bits)
        .client_max_window_bits(bits)
        .compression_level(level)
        .max_queue_size(64 << 20);
    let server = EchoServer::with_builder(builder).unwrap();
    let (port, up, down) = relay(server.local_addr());
    let client = Client::builder()
        .compression(compression)
        .compression_level(level)
        .max_queue_size(64 << 20)
        .build();
    let (listener, events) = syncws::channel();
    let url = format!("ws://127.0.0.1:{port}/");
    let ws = client.new_web_socket(Request::builder(&url).build().unwrap(), listener);
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(Event::Open(r)) => {
            assert_eq!(r.header("Sec-WebSocket-Extensions").is_some(), compression)
        }
        other => panic!("{other:?}"),
    }
    let (up0, down0) = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
    let start = Instant::now();
    for m in messages {
        assert!(ws.send(m.as_str()));
    }
    for m in messages {
        match events.recv_timeout(Duration::from_secs(60)) {
            Ok(Event::Message(Message::Text(t))) => assert_eq!(t.len(), m.len()),
            other => panic!("{other:?}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let run = Run {
        secs,
        up: up.load(Ordering::Relaxed) - up0,
        down: down.load(Ordering::Relaxed) - down0,
    };
    let _ = ws.close(1000, None);
    ws.wait_finished(Duration::from_secs(10));
    run
}

fn main() {
    let messages = stream();
    let payload: u64 = messages.iter().map(|m| m.len() as u64).sum();
    println!(
        "{} JSON messages, {:.1} KiB average, {:.2} MiB per direction; best of {ROUNDS} rounds",
        messages.len(),
        payload as f64 / messages.len() as f64 / 1024.0,
        payload as f64 / (1 << 20) as f64
    );
    println!(
        "| mode | wire bytes per direction | ratio (payload / wire) | round trip time | throughput (payload MiB/s each way) | messages/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, compression, bits, level) in [
        ("off", false, 15, 6),
        ("on, window 15, level 1", true, 15, 1),
        ("on, window 15, level 3", true, 15, 3),
        ("on, window 15, level 6 (default)", true, 15, 6),
        ("on, window 15, level 9", true, 15, 9),
        ("on, window 12, level 6", true, 12, 6),
        ("on, window 9, level 6", true, 9, 6),
    ] {
        let best = (0..ROUNDS)
            .map(|_| run(compression, bits, level, &messages))
            .min_by(|a, b| a.secs.total_cmp(&b.secs))
            .unwrap();
        let wire = (best.up + best.down) / 2;
        println!(
            "| {label} | {:.2} MiB | {:.2} | {:.3} s | {:.1} | {:.0} |",
            wire as f64 / (1 << 20) as f64,
            payload as f64 / wire as f64,
            best.secs,
            payload as f64 / (1 << 20) as f64 / best.secs,
            messages.len() as f64 / best.secs
        );
    }
}
