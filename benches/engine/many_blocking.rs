//! The idle and scale children of the blocking clients (raw, tungstenite, syncws's
//! `Connection`): one thread, sockets opened one after another, then one echo each, then the
//! close handshakes. One run ([`run`]) for all three; each client says how it does the four
//! steps ([`Sequential`]).

use std::io::Write;
use std::time::Instant;

use tungstenite::Message as TMessage;

use crate::Deadline;
use crate::clients::connection::{ConnClient, open_connection};
use crate::clients::raw::{RawConn, raw_frame};
use crate::clients::tung::TungConn;
use crate::clients::{Conn, Got};
use crate::many_child::{Errors, ManyParams, report, stats};

/// One blocking client socket, as the sequential run drives it.
trait Sequential {
    /// Sends the one text message, "hello".
    fn send_hello(&mut self) -> Result<(), String>;
    /// Reads the echo: `Err` says what came instead.
    fn recv_echo(&mut self) -> Result<(), String>;
    /// Sends the close frame.
    fn send_close(&mut self) -> Result<(), String>;
    /// Waits for the close handshake and the server's TCP close.
    fn finish_close(&mut self) -> Result<(), String>;
}

impl Sequential for RawConn {
    fn send_hello(&mut self) -> Result<(), String> {
        let frame = raw_frame(1, b"hello");
        self.w
            .write_all(&frame)
            .and_then(|()| self.w.flush())
            .map_err(|e| e.to_string())
    }
    fn recv_echo(&mut self) -> Result<(), String> {
        match self.read_frame() {
            Ok(1) => Ok(()),
            Ok(op) => Err(format!("opcode {op}")),
            Err(e) => Err(e.to_string()),
        }
    }
    fn send_close(&mut self) -> Result<(), String> {
        RawConn::send_close(self).map_err(|e| format!("close: {e}"))
    }
    fn finish_close(&mut self) -> Result<(), String> {
        RawConn::finish_close(self)
    }
}

impl Sequential for TungConn {
    fn send_hello(&mut self) -> Result<(), String> {
        self.ws
            .send(TMessage::text("hello"))
            .map_err(|e| e.to_string())
    }
    fn recv_echo(&mut self) -> Result<(), String> {
        text_echo(self.recv())
    }
    fn send_close(&mut self) -> Result<(), String> {
        TungConn::send_close(self)
    }
    fn finish_close(&mut self) -> Result<(), String> {
        TungConn::finish_close(self)
    }
}

impl Sequential for ConnClient {
    fn send_hello(&mut self) -> Result<(), String> {
        if self.conn.send("hello") {
            return Ok(());
        }
        let state = self.conn.websocket().state();
        Err(format!("send returned false (state {state:?})"))
    }
    fn recv_echo(&mut self) -> Result<(), String> {
        text_echo(self.recv())
    }
    fn send_close(&mut self) -> Result<(), String> {
        ConnClient::send_close(self)
    }
    fn finish_close(&mut self) -> Result<(), String> {
        ConnClient::finish_close(self)
    }
}

fn text_echo(got: Result<Got, String>) -> Result<(), String> {
    match got {
        Ok(Got::Text(_)) => Ok(()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e),
    }
}

/// raw: small buffers, as a client holding many mostly idle sockets would not give each
/// 64 KiB.
pub fn many_raw(p: &ManyParams) {
    run(p, || {
        RawConn::connect(p.port, "/echo", 4096, p.io_timeout).map_err(|e| e.to_string())
    });
}

pub fn many_tungstenite(p: &ManyParams) {
    run(p, || TungConn::connect(p.port, "/echo", p.io_timeout));
}

/// syncws's blocking API: `Client::connect` one socket after another (each blocks until open,
/// as a blocking program would), then one echo each through `recv`.
pub fn many_conn(p: &ManyParams) {
    let client = syncws::Client::new();
    let url = format!("ws://127.0.0.1:{}/echo", p.port);
    run(p, || open_connection(&client, &url));
}

/// Opens `p.n` sockets with `open`, one after another, sends one message on each, reads each
/// echo, reports, then closes them all and reports the close.
fn run<S: Sequential>(p: &ManyParams, mut open: impl FnMut() -> Result<S, String>) {
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
        match open() {
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
        if let Err(e) = s.send_hello() {
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
        match s.recv_echo() {
            Ok(()) => echoed += 1,
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
