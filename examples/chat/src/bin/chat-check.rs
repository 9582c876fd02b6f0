//! Checks a scaled-out chat (`scripts/chat.sh` starts Redis, HAProxy and three `chat-server`s):
//! reconnecting clients through the load balancer land on different processes; every message
//! reaches every client exactly once, in order per sender; then the process holding the first
//! client is killed, its clients come back through the load balancer on another process, and
//! everything sent after that reaches everyone again.
//!
//!     chat-check --url ws://127.0.0.1:PORT/ --clients 6 --messages 20 --servers s1=PID,s2=PID,s3=PID

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use syncws::{Client, Event, Events, Message, Reconnect, ReconnectingWebSocket, Request};

const WAIT: Duration = Duration::from_secs(30);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Member {
    ws: ReconnectingWebSocket,
    events: Events,
    /// The process it is on, from its last `welcome`.
    server: String,
}

/// The next text message for `m` (noting `welcome`s), by `deadline`.
fn next_text(m: &mut Member, deadline: Instant) -> Result<String, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match m.events.recv_timeout(left) {
            Ok(Event::Message(Message::Text(t))) => {
                if let Some(server) = t.strip_prefix("welcome ") {
                    m.server = server.to_owned();
                }
                return Ok(t);
            }
            Ok(Event::Ended(how)) => return Err(format!("the socket ended: {how:?}")),
            Ok(_) => {}
            Err(_) => return Err("nothing within the deadline".into()),
        }
    }
}

/// Every member sends `count` messages tagged `phase`, then each must receive all of them:
/// each sender's, once, in order.
fn round(members: &mut [Member], phase: &str, count: usize) -> Result<(), String> {
    for (i, m) in members.iter().enumerate() {
        for seq in 0..count {
            if !m.ws.send(format!("{phase} c{i} {seq}")) {
                return Err(format!("client {i}: send {seq} refused"));
            }
        }
    }
    let deadline = Instant::now() + WAIT;
    let n = members.len();
    for (r, m) in members.iter_mut().enumerate() {
        // Next expected sequence number per sender.
        let mut next = vec![0usize; n];
        let mut got = 0;
        while got < n * count {
            let text = next_text(m, deadline).map_err(|e| {
                format!(
                    "client {r}: {e} after {got} of {} {phase} messages",
                    n * count
                )
            })?;
            if text.starts_with("welcome ") {
                continue;
            }
            let parts: Vec<&str> = text.split(' ').collect();
            let [p, sender, seq] = parts.as_slice() else {
                return Err(format!("client {r}: unexpected {text:?}"));
            };
            if *p != phase {
                return Err(format!(
                    "client {r}: a {p} message during {phase}: {text:?}"
                ));
            }
            // From the network: a malformed line is an error, never a panic.
            let sender: usize = sender
                .strip_prefix('c')
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("client {r}: malformed {text:?}"))?;
            let seq: usize = seq
                .parse()
                .map_err(|_| format!("client {r}: malformed {text:?}"))?;
            let expected = next
                .get_mut(sender)
                .ok_or_else(|| format!("client {r}: bad sender {text:?}"))?;
            if seq != *expected {
                return Err(format!(
                    "client {r}: from c{sender} got {seq}, expected {expected} (lost, repeated or out of order)"
                ));
            }
            *expected += 1;
            got += 1;
        }
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let url = arg(args, "--url").ok_or("--url URL")?;
    let clients: usize = arg(args, "--clients")
        .map_or(Ok(6), |v| v.parse())
        .map_err(|_| "--clients")?;
    let count: usize = arg(args, "--messages")
        .map_or(Ok(20), |v| v.parse())
        .map_err(|_| "--messages")?;
    let servers: HashMap<String, String> = arg(args, "--servers")
        .ok_or("--servers NAME=PID,...")?
        .split(',')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let policy = Reconnect::default()
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(500));
    let client = Client::new();
    let mut members: Vec<Member> = (0..clients)
        .map(|_| {
            let (listener, events) = syncws::channel();
            let request = Request::builder(&url).build().map_err(|e| e.to_string())?;
            Ok(Member {
                ws: client.reconnecting(request, policy.clone(), listener),
                events,
                server: String::new(),
            })
        })
        .collect::<Result<_, String>>()?;
    let deadline = Instant::now() + WAIT;
    for (i, m) in members.iter_mut().enumerate() {
        let t = next_text(m, deadline).map_err(|e| format!("client {i}: {e}"))?;
        if !t.starts_with("welcome ") {
            return Err(format!("client {i}: expected a welcome, got {t:?}"));
        }
    }
    let on: Vec<String> = members.iter().map(|m| m.server.clone()).collect();
    println!("chat-check: {clients} clients on {on:?}");
    let mut distinct = on.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(format!("every client landed on one process: {on:?}"));
    }
    round(&mut members, "p1", count)?;
    println!(
        "chat-check: {} messages reached all {clients} clients exactly once, in order",
        clients * count
    );

    let victim = members[0].server.clone();
    let pid = servers.get(&victim).ok_or(format!("no pid for {victim}"))?;
    let status = std::process::Command::new("kill")
        .args(["-9", pid])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("could not kill {victim} ({pid})"));
    }
    println!("chat-check: killed {victim} (pid {pid})");
    let deadline = Instant::now() + WAIT;
    for (i, m) in members.iter_mut().enumerate() {
        if m.server != victim {
            continue;
        }
        loop {
            let t =
                next_text(m, deadline).map_err(|e| format!("client {i} did not come back: {e}"))?;
            if t.starts_with("welcome ") && m.server != victim {
                break;
            }
        }
    }
    let on: Vec<String> = members.iter().map(|m| m.server.clone()).collect();
    println!("chat-check: after the kill, clients on {on:?}");
    round(&mut members, "p3", count)?;
    println!(
        "chat-check: after the reconnect, {} messages reached all {clients} clients exactly once, in order",
        clients * count
    );
    for m in &members {
        m.ws.cancel();
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => {
            println!("CHAT OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-check: {e}");
            ExitCode::FAILURE
        }
    }
}
