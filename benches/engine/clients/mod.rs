//! The clients behind one trait (static dispatch: each scenario is monomorphised).

use std::thread;
use std::time::{Duration, Instant};

use syncws::Message;

use crate::{Deadline, HIGH_WATER, IO_TIMEOUT};

pub mod connection;
pub mod listener;
pub mod raw;
pub mod tung;

#[derive(Debug)]
pub enum Got {
    Text(usize),
    Binary(usize),
}

pub trait Conn: Sized {
    /// What opens connections (syncws: one `Client`, reused as an application would).
    type Factory;
    /// A message prepared once and sent many times.
    type Bin;
    type Text;
    fn factory() -> Self::Factory;
    /// Connects and completes the opening handshake.
    fn open(f: &Self::Factory, port: u16, path: &str) -> Result<Self, String>;
    fn prep_binary(payload: &[u8]) -> Self::Bin;
    fn prep_text(text: &str) -> Self::Text;
    /// Sends (or buffers, where the client buffers) one message.
    fn send_binary(&mut self, m: &Self::Bin) -> Result<(), String>;
    fn send_text(&mut self, m: &Self::Text) -> Result<(), String>;
    fn flush(&mut self) -> Result<(), String>;
    /// The next data message.
    fn recv(&mut self) -> Result<Got, String>;
    /// The text of the last text message `recv` returned.
    fn last_text(&self) -> String;
    /// Client close 1000, and waits for the close handshake and the server's TCP close.
    fn close(self) -> Result<(), String>;
    /// Time spent waiting before sends (`send_paced`): syncws only; the others block in
    /// `write` instead.
    fn paced(&self) -> Option<Duration> {
        None
    }
}

/// How both syncws clients send: `send` never blocks and refuses a message (and starts a close
/// with 1001) past `max_queue_size` (16 MiB with `Client::new()`), so the sender first waits
/// while more than `HIGH_WATER` (half of that) is queued, polling the public `queue_size()`
/// before every send and sleeping 1 ms between polls. That is how the independent harness of
/// Engine v3 paces too (docs/benchmarks.md). `paced` adds up the time spent waiting, which the
/// send scenarios report.
///
/// The one place pacing happens. When syncws has the blocking `send_timeout` the lead is
/// adding, this whole function becomes that call (`ws.send_timeout(m, IO_TIMEOUT)`, timed
/// into `paced`) and the polling goes.
pub fn send_paced(
    ws: &syncws::WebSocket,
    m: impl Into<Message>,
    paced: &mut Duration,
) -> Result<(), String> {
    if ws.queue_size() > HIGH_WATER {
        let started = Instant::now();
        let deadline = Deadline::after(IO_TIMEOUT);
        while ws.queue_size() > HIGH_WATER {
            if deadline.passed() {
                return Err(format!(
                    "queue_size stayed above {HIGH_WATER} for {IO_TIMEOUT:?} (state {:?})",
                    ws.state()
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
        *paced += started.elapsed();
    }
    if ws.send(m) {
        Ok(())
    } else {
        Err(format!(
            "send returned false (state {:?}, queue_size {})",
            ws.state(),
            ws.queue_size()
        ))
    }
}
