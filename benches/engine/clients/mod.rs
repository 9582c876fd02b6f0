//! The clients behind one trait (static dispatch: each scenario is monomorphised).

use syncws::Message;

use crate::IO_TIMEOUT;

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
}

/// How both syncws clients send in bulk: `send` never blocks and refuses a message (and starts
/// a close with 1001) past `max_queue_size` (16 MiB with `Client::new()`), so bulk senders use
/// `send_timeout`, which waits for room instead (woken by the writer, no polling).
pub fn send_waiting(ws: &syncws::WebSocket, m: impl Into<Message>) -> Result<(), String> {
    ws.send_timeout(m, IO_TIMEOUT).map_err(|e| {
        format!(
            "send_timeout: {e} (state {:?}, queue_size {})",
            ws.state(),
            ws.queue_size()
        )
    })
}
