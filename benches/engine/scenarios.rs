//! The in-process scenarios: what one run of one client does.

use std::time::{Duration, Instant};

use syncws::crossbeam_channel;
use syncws::{Listener, Message, Request};

use crate::clients::connection::ConnClient;
use crate::clients::listener::SyncwsConn;
use crate::clients::raw::RawConn;
use crate::clients::tung::TungConn;
use crate::clients::{Conn, Got};
use crate::many::run_many;
use crate::options::{Counts, Lib, Scenario};
use crate::report::Outcome;
use crate::{CHECK_EVERY, Deadline, IO_TIMEOUT, LARGE, RTT_TEXT, RUN_TIMEOUT, SMALL};

pub fn run_one(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
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
        // The blocking API: every scenario through `Connection`, receiving by `recv`.
        (Lib::SyncwsConn, _) => run_with::<ConnClient>(sc, lib, port, c),
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

pub fn rtt<C: Conn>(port: u16, c: &Counts) -> Result<Outcome, String> {
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
