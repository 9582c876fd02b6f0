//! syncws's callback style, where the listener does the work on the socket's reader thread:
//! receiving in `on_message` (recv-small, recv-large) and answering from `on_message`
//! (rtt-callback).

use std::time::{Duration, Instant};

use syncws::crossbeam_channel::{self, Sender};
use syncws::{Error, Listener};
use syncws::{Message, Request, Response, WebSocket, WebSocketListener};

use crate::options::Counts;
use crate::report::Outcome;
use crate::report::latencies;
use crate::{IO_TIMEOUT, RTT_TEXT, RUN_TIMEOUT};

/// syncws's receive path as its listener API is meant to be used: each message handled in
/// `on_message`; the application thread only hears when the last one has arrived.
pub fn recv_n_listener(port: u16, n: usize, size: usize) -> Result<f64, String> {
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<usize, String>>(1);
    let (closed_tx, closed_rx) = crossbeam_channel::bounded::<()>(1);
    let failed_tx = done_tx.clone();
    let mut count = 0usize;
    let listener = Listener::new()
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
    let (ws, _cancel_on_error) = open(port, &format!("/source?n={n}&size={size}"), listener)?;
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

/// Connects `listener` (given an `on_open` here) to `path` on the bench server and waits for
/// the open; the socket is canceled if the run fails midway (the guard's drop).
pub fn open(
    port: u16,
    path: &str,
    listener: Listener,
) -> Result<(syncws::WebSocket, CancelOnDrop), String> {
    let (open_tx, open_rx) = crossbeam_channel::bounded::<()>(1);
    let listener = listener.on_open(move |_, _| {
        let _ = open_tx.try_send(());
    });
    let request = Request::builder(&format!("ws://127.0.0.1:{port}{path}"))
        .build()
        .map_err(|e| format!("request: {e}"))?;
    let ws = syncws::Client::new().new_web_socket(request, listener);
    let guard = CancelOnDrop(ws.clone());
    open_rx
        .recv_timeout(IO_TIMEOUT)
        .map_err(|_| "no on_open".to_owned())?;
    Ok((ws, guard))
}

/// Cancels the socket if a run fails midway; a no-op once it has finished.
pub struct CancelOnDrop(syncws::WebSocket);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// rtt-callback: the listener's own round trip. `on_open` sends the first message; each echo's
/// `on_message` times the round trip and sends the next one from the reader thread, with no
/// hand-off to the caller's thread. The caller only hears when all are done.
pub fn rtt_callback(port: u16, c: &Counts) -> Result<Outcome, String> {
    let (open_tx, open_rx) = crossbeam_channel::bounded::<()>(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let (closed_tx, closed_rx) = crossbeam_channel::bounded::<()>(1);
    let listener = PingPong {
        warmup: c.rtt_warmup,
        total: c.rtt_warmup + c.rtt,
        sent: 0,
        sent_at: Instant::now(),
        lat: Vec::with_capacity(c.rtt),
        open: open_tx,
        done: done_tx,
        closed: closed_tx,
    };
    let request = Request::builder(&format!("ws://127.0.0.1:{port}/echo"))
        .build()
        .map_err(|e| format!("request: {e}"))?;
    let ws = syncws::Client::new().new_web_socket(request, listener);
    let _cancel_on_error = CancelOnDrop(ws.clone());
    open_rx
        .recv_timeout(IO_TIMEOUT)
        .map_err(|_| "no on_open".to_owned())?;
    let lat = done_rx
        .recv_timeout(RUN_TIMEOUT)
        .map_err(|_| "the round trips did not end within the run timeout".to_owned())??;
    let _ = ws.close(1000, None);
    closed_rx
        .recv_timeout(IO_TIMEOUT)
        .map_err(|_| "no on_closed".to_owned())?;
    if !ws.wait_finished(IO_TIMEOUT) {
        return Err("did not finish".into());
    }
    Ok(latencies(lat))
}

/// The rtt-callback listener: one message in flight, the next sent from `on_message`.
struct PingPong {
    warmup: usize,
    total: usize,
    sent: usize,
    sent_at: Instant,
    lat: Vec<Duration>,
    open: Sender<()>,
    done: Sender<Result<Vec<Duration>, String>>,
    closed: Sender<()>,
}

impl PingPong {
    fn send_next(&mut self, ws: &WebSocket) {
        self.sent += 1;
        self.sent_at = Instant::now();
        if !ws.send(RTT_TEXT) {
            let _ = self.done.try_send(Err("send returned false".into()));
        }
    }
}

impl WebSocketListener for PingPong {
    fn on_open(&mut self, ws: &WebSocket, _: &Response) {
        let _ = self.open.try_send(());
        self.send_next(ws);
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let took = self.sent_at.elapsed();
        match message {
            Message::Text(t) if t.len() == RTT_TEXT.len() => {}
            other => {
                let _ = self.done.try_send(Err(format!("echo was {other:?}")));
                return;
            }
        }
        if self.sent > self.warmup {
            self.lat.push(took);
        }
        if self.sent < self.total {
            self.send_next(ws);
        } else {
            let _ = self.done.try_send(Ok(std::mem::take(&mut self.lat)));
        }
    }

    fn on_closed(&mut self, _: &WebSocket, _: u16, _: &str) {
        let _ = self.closed.try_send(());
    }

    fn on_failure(&mut self, _: &WebSocket, e: Error, _: Option<&Response>) {
        let _ = self.done.try_send(Err(format!("failed: {e}")));
    }
}
