//! The idle and scale children of the blocking clients (raw, tungstenite, syncws's
//! `Connection`): one thread, sockets opened one after another, then one echo each.

use std::io::Write;
use std::time::Instant;

use tungstenite::Message as TMessage;

use crate::Deadline;
use crate::clients::connection::open_connection;
use crate::clients::raw::{RawConn, raw_frame};
use crate::clients::tung::TungConn;
use crate::clients::{Conn, Got};
use crate::many_child::{Errors, ManyParams, report, stats};

/// raw and tungstenite: one thread, sockets opened one after another, then one echo each.
pub fn many_raw(p: &ManyParams) {
    let base = stats();
    let mut errs = Errors::default();
    let t0 = Instant::now();
    let open_deadline = Deadline::after(p.open_timeout);
    let mut socks = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        if open_deadline.passed() {
            errs.add("open phase timed out");
            break;
        }
        // Small buffers: a client holding many mostly idle sockets would not give each 64 KiB.
        match RawConn::connect(p.port, "/echo", 4096, p.io_timeout) {
            Ok(s) => socks.push(s),
            Err(e) => {
                errs.add(format!("stopped opening: {e}"));
                break;
            }
        }
    }
    let opened = socks.len();
    let open_secs = t0.elapsed().as_secs_f64();
    let frame = raw_frame(1, b"hello");
    let mut ok = vec![true; opened];
    for (i, s) in socks.iter_mut().enumerate() {
        if let Err(e) = s.w.write_all(&frame).and_then(|()| s.w.flush()) {
            errs.add(format!("send: {e}"));
            ok[i] = false;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    let mut echoed = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        if !ok[i] {
            continue;
        }
        if echo_deadline.passed() {
            errs.add("echo phase timed out");
            break;
        }
        match s.read_frame() {
            Ok(1) => echoed += 1,
            Ok(op) => errs.add(format!("echo: opcode {op}")),
            Err(e) => errs.add(format!("echo: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    for s in socks.iter_mut() {
        if let Err(e) = s.send_close() {
            errs.add(format!("close: {e}"));
        }
    }
    let mut closed = 0;
    for s in socks.iter_mut() {
        if close_deadline.passed() {
            errs.add("close phase timed out");
            break;
        }
        match s.finish_close() {
            Ok(()) => closed += 1,
            Err(e) => errs.add(e),
        }
    }
    errs.print();
    println!(
        "CLOSED closed={closed} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}

pub fn many_tungstenite(p: &ManyParams) {
    let base = stats();
    let mut errs = Errors::default();
    let t0 = Instant::now();
    let open_deadline = Deadline::after(p.open_timeout);
    let mut socks = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        if open_deadline.passed() {
            errs.add("open phase timed out");
            break;
        }
        match TungConn::connect(p.port, "/echo", p.io_timeout) {
            Ok(s) => socks.push(s),
            Err(e) => {
                errs.add(format!("stopped opening: {e}"));
                break;
            }
        }
    }
    let opened = socks.len();
    let open_secs = t0.elapsed().as_secs_f64();
    let mut ok = vec![true; opened];
    for (i, s) in socks.iter_mut().enumerate() {
        if let Err(e) = s.ws.send(TMessage::text("hello")) {
            errs.add(format!("send: {e}"));
            ok[i] = false;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    let mut echoed = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        if !ok[i] {
            continue;
        }
        if echo_deadline.passed() {
            errs.add("echo phase timed out");
            break;
        }
        match s.recv() {
            Ok(Got::Text(_)) => echoed += 1,
            Ok(other) => errs.add(format!("echo: {other:?}")),
            Err(e) => errs.add(format!("echo: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    for s in socks.iter_mut() {
        if let Err(e) = s.send_close() {
            errs.add(e);
        }
    }
    let mut closed = 0;
    for s in socks.iter_mut() {
        if close_deadline.passed() {
            errs.add("close phase timed out");
            break;
        }
        match s.finish_close() {
            Ok(()) => closed += 1,
            Err(e) => errs.add(e),
        }
    }
    errs.print();
    println!(
        "CLOSED closed={closed} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}

/// syncws's blocking API: one thread, `Client::connect` one socket after another (each blocks
/// until open, as a blocking program would), then one echo each through `recv`.
pub fn many_conn(p: &ManyParams) {
    let base = stats();
    let mut errs = Errors::default();
    let client = syncws::Client::new();
    let url = format!("ws://127.0.0.1:{}/echo", p.port);
    let t0 = Instant::now();
    let open_deadline = Deadline::after(p.open_timeout);
    let mut socks = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        if open_deadline.passed() {
            errs.add("open phase timed out");
            break;
        }
        match open_connection(&client, &url) {
            Ok(s) => socks.push(s),
            Err(e) => {
                errs.add(format!("stopped opening: {e}"));
                break;
            }
        }
    }
    let opened = socks.len();
    let open_secs = t0.elapsed().as_secs_f64();
    let mut ok = vec![true; opened];
    for (i, s) in socks.iter_mut().enumerate() {
        if !s.conn.send("hello") {
            errs.add(format!(
                "send returned false (state {:?})",
                s.conn.websocket().state()
            ));
            ok[i] = false;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    let mut echoed = 0;
    for (i, s) in socks.iter_mut().enumerate() {
        if !ok[i] {
            continue;
        }
        if echo_deadline.passed() {
            errs.add("echo phase timed out");
            break;
        }
        match s.recv() {
            Ok(Got::Text(_)) => echoed += 1,
            Ok(other) => errs.add(format!("echo: {other:?}")),
            Err(e) => errs.add(format!("echo: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    for s in socks.iter_mut() {
        if let Err(e) = s.send_close() {
            errs.add(e);
        }
    }
    let mut closed = 0;
    for s in socks.iter_mut() {
        if close_deadline.passed() {
            errs.add("close phase timed out");
            break;
        }
        match s.finish_close() {
            Ok(()) => closed += 1,
            Err(e) => errs.add(e),
        }
    }
    errs.print();
    println!(
        "CLOSED closed={closed} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}
