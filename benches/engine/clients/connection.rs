//! syncws through its blocking API, public API only, `Client::new()`: `Client::connect` blocks
//! until the socket is open and gives a `Connection`; `send` queues, `recv` waits for the next
//! message (the pull model scripts and tests use: a `channel()` under the `Connection`, so every
//! message crosses from the reader thread to the caller's).

use syncws::{Connection, Message, Request};

use super::{Conn, Got, send_waiting};
use crate::IO_TIMEOUT;

pub struct ConnClient {
    pub conn: Connection,
    last: Option<String>,
}

impl Drop for ConnClient {
    /// On an error path, do not leave the socket running (dropping a `Connection` only starts a
    /// graceful close); a no-op once it has finished.
    fn drop(&mut self) {
        self.conn.websocket().cancel();
    }
}

impl ConnClient {
    /// The next message, or an error saying why there is none within `IO_TIMEOUT`.
    pub fn message(&mut self) -> Result<Message, String> {
        match self.conn.recv_timeout(IO_TIMEOUT) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(format!(
                "no message within {IO_TIMEOUT:?} (state {:?}, queue_size {})",
                self.conn.websocket().state(),
                self.conn.websocket().queue_size()
            )),
            Err(syncws::Error::Closed { code, reason }) => {
                Err(format!("closed by the server: {code} {reason:?}"))
            }
            Err(e) => Err(format!("failed: {e}")),
        }
    }

    /// Starts the close; `finish_close` waits for it.
    pub fn send_close(&self) -> Result<(), String> {
        self.conn
            .close(1000, None)
            .map(drop)
            .map_err(|e| format!("close: {e}"))
    }

    /// Reads on until `recv` reports the clean close (after the server's close frame and its TCP
    /// close), then waits for the socket's threads to finish with it.
    pub fn finish_close(&mut self) -> Result<(), String> {
        loop {
            match self.conn.recv_timeout(IO_TIMEOUT) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("no close within {IO_TIMEOUT:?}")),
                Err(syncws::Error::Closed { .. }) => break,
                Err(e) => return Err(format!("closing failed: {e}")),
            }
        }
        if !self.conn.websocket().wait_finished(IO_TIMEOUT) {
            return Err(format!("not finished {IO_TIMEOUT:?} after the close"));
        }
        Ok(())
    }
}

/// Connects with `client`, as a new user would: a `Request` for the URL, `Client::connect`.
pub fn open_connection(client: &syncws::Client, url: &str) -> Result<ConnClient, String> {
    let request = Request::builder(url)
        .build()
        .map_err(|e| format!("request: {e}"))?;
    let conn = client.connect(request).map_err(|e| format!("{e}"))?;
    // Client::new() offers permessage-deflate; the bench servers must never accept it.
    if let Some(ext) = conn.response().header("Sec-WebSocket-Extensions") {
        return Err(format!("the server negotiated an extension: {ext:?}"));
    }
    Ok(ConnClient { conn, last: None })
}

impl Conn for ConnClient {
    type Factory = syncws::Client;
    type Bin = Vec<u8>;
    type Text = String;

    fn factory() -> syncws::Client {
        syncws::Client::new()
    }

    fn open(client: &syncws::Client, port: u16, path: &str) -> Result<Self, String> {
        open_connection(client, &format!("ws://127.0.0.1:{port}{path}"))
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    fn prep_text(text: &str) -> String {
        text.to_owned()
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        send_waiting(self.conn.websocket(), m.clone())
    }

    fn send_text(&mut self, m: &String) -> Result<(), String> {
        send_waiting(self.conn.websocket(), m.clone())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn recv(&mut self) -> Result<Got, String> {
        match self.message()? {
            Message::Binary(b) => Ok(Got::Binary(b.len())),
            Message::Text(t) => {
                let n = t.len();
                self.last = Some(t);
                Ok(Got::Text(n))
            }
        }
    }

    fn last_text(&self) -> String {
        self.last.clone().unwrap_or_default()
    }

    fn close(mut self) -> Result<(), String> {
        self.send_close()?;
        self.finish_close()
    }
}
