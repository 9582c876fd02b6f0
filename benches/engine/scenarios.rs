//! The in-process scenarios: what one run of one client does.

use std::time::Instant;

use crate::callbacks::{recv_n_listener, rtt_callback};
use crate::clients::connection::ConnClient;
use crate::clients::listener::SyncwsConn;
use crate::clients::raw::RawConn;
use crate::clients::tung::TungConn;
use crate::clients::{Conn, Got};
use crate::many::run_many;
use crate::options::{Counts, Lib, Scenario};
use crate::report::{Outcome, latencies};
use crate::streams;
use crate::{CHECK_EVERY, Deadline, LARGE, RTT_TEXT, RUN_TIMEOUT, SMALL};

pub fn run_one(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
    match (lib, sc) {
        // The streamed paths: syncws's `send_stream` / `recv_stream` / `on_message_part`;
        // raw and tungstenite move the same bytes as whole messages (`run_with`).
        (Lib::Syncws | Lib::SyncwsConn, Scenario::SendStream | Scenario::RecvStream) => {
            streams::run(sc, lib, port, c)
        }
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
        // The listener's own round trip: the next message is sent from `on_message`.
        (Lib::Syncws, Scenario::RttCallback) => rtt_callback(port, c),
        (Lib::Syncws, _) => run_with::<SyncwsConn>(sc, lib, port, c),
        // The blocking API: every scenario through `Connection`, receiving by `recv`.
        (Lib::SyncwsConn, _) => run_with::<ConnClient>(sc, lib, port, c),
    }
}

fn run_with<C: Conn>(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
    let mib = |n: usize, secs: f64| (n * LARGE) as f64 / (1 << 20) as f64 / secs;
    Ok(match sc {
        // raw and tungstenite have no callbacks: their own round trip is the loop of `rtt`,
        // run again in these rounds so that the ratios compare runs of the same moment.
        Scenario::Rtt | Scenario::RttCallback => rtt::<C>(port, c)?,
        Scenario::SendSmall => {
            let secs = send_n::<C>(port, c.small, SMALL)?;
            Outcome::of(vec![("rate", c.small as f64 / secs)])
        }
        Scenario::RecvSmall => Outcome::of(vec![(
            "rate",
            c.small as f64 / recv_n::<C>(port, c.small, SMALL)?,
        )]),
        Scenario::SendLarge | Scenario::SendStream => {
            let secs = send_n::<C>(port, c.large, LARGE)?;
            Outcome::of(vec![("rate", mib(c.large, secs))])
        }
        Scenario::RecvLarge | Scenario::RecvStream => Outcome::of(vec![(
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
    Ok(latencies(lat))
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
pub fn recv_n<C: Conn>(port: u16, n: usize, size: usize) -> Result<f64, String> {
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
