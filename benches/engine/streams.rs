//! The streamed paths: `send-stream` and `recv-stream`.
//!
//! - `send-stream`: syncws sends one binary message of `large` MiB from a `Read`
//!   (`send_stream`, through the listener's `WebSocket` and through `Connection`) to `/sink`,
//!   which counts it as one message. raw and tungstenite send the same bytes as `large`
//!   whole 1 MiB messages (they have no streamed send): the lower bound and the reference.
//! - `recv-stream`: `/source` sends `large` messages of 1 MiB; syncws reads each as a stream
//!   (`recv_stream` on a `Connection`, `on_message_part` on the listener), never holding a
//!   message whole. raw and tungstenite receive them whole.
//!
//! The source is a `Read` that fills buffers with a constant byte, so the run measures the
//! socket's streamed path, not a disk.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use syncws::crossbeam_channel;
use syncws::{Listener, Message, MessageKind};

use crate::callbacks::open;
use crate::clients::connection::{ConnClient, open_connection};
use crate::clients::{Conn, send_waiting};
use crate::options::{Counts, Lib, Scenario};
use crate::report::Outcome;
use crate::{IO_TIMEOUT, LARGE, RUN_TIMEOUT};

/// `len` bytes of 0x5a, as a `Read`.
struct Filler {
    left: u64,
}

impl Read for Filler {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].fill(0x5a);
        self.left -= n as u64;
        Ok(n)
    }
}

pub fn run(sc: Scenario, lib: Lib, port: u16, c: &Counts) -> Result<Outcome, String> {
    let total = (c.large * LARGE) as u64;
    let secs = match (sc, lib) {
        (Scenario::SendStream, Lib::Syncws) => send_listener(port, total)?,
        (Scenario::SendStream, _) => send_connection(port, total)?,
        (_, Lib::Syncws) => recv_listener(port, c.large)?,
        _ => recv_connection(port, c.large)?,
    };
    Ok(Outcome::of(vec![(
        "rate",
        total as f64 / (1 << 20) as f64 / secs,
    )]))
}

/// One message of `total` bytes from a `Read` through `Connection::send_stream`; the seconds
/// from the first byte to the sink's count, which must be 1.
fn send_connection(port: u16, total: u64) -> Result<f64, String> {
    let client = syncws::Client::new();
    let mut conn = ConnClient::open(&client, port, "/sink")?;
    let t = Instant::now();
    let sent = conn
        .conn
        .send_stream(MessageKind::Binary, Filler { left: total })
        .map_err(|e| format!("send_stream: {e}"))?;
    if sent != total {
        return Err(format!("sent {sent} bytes, not {total}"));
    }
    // The stream leaves the queue up to full: a plain `send` could pass max_queue_size.
    send_waiting(conn.conn.websocket(), "done")?;
    let count = match conn.message()? {
        Message::Text(t) => t,
        other => return Err(format!("expected the count, got {} bytes", other.len())),
    };
    let secs = t.elapsed().as_secs_f64();
    if count != "1" {
        return Err(format!("the sink counted {count} messages, not 1"));
    }
    conn.close()?;
    Ok(secs)
}

/// The same through the listener's `WebSocket::send_stream`, the count arriving in
/// `on_message`.
fn send_listener(port: u16, total: u64) -> Result<f64, String> {
    let (count_tx, count_rx) = crossbeam_channel::bounded::<Result<String, String>>(1);
    let failed_tx = count_tx.clone();
    let listener = Listener::new()
        .on_message(move |_, m| {
            let _ = count_tx.try_send(match m {
                Message::Text(t) => Ok(t),
                Message::Binary(b) => Err(format!("a binary message of {} bytes", b.len())),
            });
        })
        .on_failure(move |_, e, _| {
            let _ = failed_tx.try_send(Err(format!("failed: {e}")));
        });
    let (ws, _cancel_on_error) = open(port, "/sink", listener)?;
    let t = Instant::now();
    let sent = ws
        .send_stream(MessageKind::Binary, Filler { left: total })
        .map_err(|e| format!("send_stream: {e}"))?;
    if sent != total {
        return Err(format!("sent {sent} bytes, not {total}"));
    }
    send_waiting(&ws, "done")?;
    let count = count_rx
        .recv_timeout(RUN_TIMEOUT)
        .map_err(|_| "no count within the run timeout".to_owned())??;
    let secs = t.elapsed().as_secs_f64();
    if count != "1" {
        return Err(format!("the sink counted {count} messages, not 1"));
    }
    let _ = ws.close(1000, None);
    if !ws.wait_finished(IO_TIMEOUT) {
        return Err("did not finish".into());
    }
    Ok(secs)
}

/// `n` messages of 1 MiB from `/source`, each read as a stream with `recv_stream` into a
/// 64 KiB buffer; the seconds from "go" to "end".
fn recv_connection(port: u16, n: usize) -> Result<f64, String> {
    let client = syncws::Client::new();
    let url = format!("ws://127.0.0.1:{port}/source?n={n}&size={LARGE}");
    let mut conn = open_connection(&client, &url)?;
    let mut buf = vec![0u8; 64 * 1024];
    let t = Instant::now();
    conn.conn.send("go");
    let mut count = 0;
    loop {
        let mut message = conn
            .conn
            .recv_stream()
            .map_err(|e| format!("recv_stream: {e}"))?;
        if message.kind() == MessageKind::Text {
            let mut text = String::new();
            message
                .read_to_string(&mut text)
                .map_err(|e| format!("text: {e}"))?;
            if text == "end" {
                break;
            }
            return Err(format!("unexpected text {text:?}"));
        }
        let mut len = 0;
        loop {
            match message.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => len += k,
                Err(e) => return Err(format!("message {count}: {e}")),
            }
        }
        if len != LARGE {
            return Err(format!("message of {len} bytes, not {LARGE}"));
        }
        count += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    if count != n {
        return Err(format!("received {count} messages, not {n}"));
    }
    conn.close()?;
    Ok(secs)
}

/// The same through the listener: `on_message_part` counts each message's bytes on the
/// reader thread.
fn recv_listener(port: u16, n: usize) -> Result<f64, String> {
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<usize, String>>(1);
    let failed_tx = done_tx.clone();
    let part_tx = done_tx.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let mut len = 0usize;
    let listener = Listener::new()
        .on_message_part(move |_, part| {
            len += part.data().len();
            if part.is_last() {
                if len == LARGE {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = part_tx.try_send(Err(format!("message of {len} bytes")));
                }
                len = 0;
            }
        })
        .on_message(move |_, m| {
            let _ = done_tx.try_send(match m {
                Message::Text(t) if t == "end" => Ok(0),
                other => Err(format!("unexpected whole message of {} bytes", other.len())),
            });
        })
        .on_failure(move |_, e, _| {
            let _ = failed_tx.try_send(Err(format!("failed: {e}")));
        });
    let (ws, _cancel_on_error) = open(port, &format!("/source?n={n}&size={LARGE}"), listener)?;
    let t = Instant::now();
    ws.send("go");
    done_rx
        .recv_timeout(RUN_TIMEOUT)
        .map_err(|_| "no end within the run timeout".to_owned())??;
    let secs = t.elapsed().as_secs_f64();
    let _ = ws.close(1000, None);
    if !ws.wait_finished(IO_TIMEOUT) {
        return Err("did not finish".into());
    }
    // Counted on the reader thread before "end" arrived on it.
    let count = count.load(Ordering::Relaxed);
    if count != n {
        return Err(format!("received {count} messages, not {n}"));
    }
    Ok(secs)
}
