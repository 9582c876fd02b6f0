//! syncws through its listener API, public API only, `Client::new()`: a `channel()` listener
//! for the events.

use syncws::crossbeam_channel::RecvTimeoutError;
use syncws::{Event, Message, Request};

use super::{Conn, Got, send_waiting};
use crate::IO_TIMEOUT;

pub struct SyncwsConn {
    pub ws: syncws::WebSocket,
    pub events: syncws::Events,
    pub last: Option<String>,
}

impl Drop for SyncwsConn {
    /// On an error path, do not leave the socket running; a no-op once it has finished.
    fn drop(&mut self) {
        self.ws.cancel();
    }
}

fn describe(e: &Event) -> String {
    match e {
        Event::Ended(syncws::Ended::Failed { error, .. }) => format!("failed: {error}"),
        Event::Closing { code, reason }
        | Event::Ended(syncws::Ended::Closed { code, reason, .. }) => {
            format!("closed by the server: {code} {reason:?}")
        }
        other => format!("unexpected event {other:?}"),
    }
}

impl SyncwsConn {
    pub fn event(&self) -> Result<Event, String> {
        match self.events.recv_timeout(IO_TIMEOUT) {
            Ok(e) => Ok(e),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "no event within {IO_TIMEOUT:?} (state {:?}, queue_size {})",
                self.ws.state(),
                self.ws.queue_size()
            )),
            Err(RecvTimeoutError::Disconnected) => Err("the event channel closed".into()),
        }
    }
}

impl Conn for SyncwsConn {
    type Factory = syncws::Client;
    type Bin = Vec<u8>;
    type Text = String;

    fn factory() -> syncws::Client {
        syncws::Client::new()
    }

    fn open(client: &syncws::Client, port: u16, path: &str) -> Result<Self, String> {
        let url = format!("ws://127.0.0.1:{port}{path}");
        let request = Request::builder(&url)
            .build()
            .map_err(|e| format!("request: {e}"))?;
        let (listener, events) = syncws::channel();
        let ws = client.new_web_socket(request, listener);
        let conn = SyncwsConn {
            ws,
            events,
            last: None,
        };
        match conn.event()? {
            // Client::new() offers permessage-deflate; the bench servers must never accept it.
            Event::Open(r) if r.header("Sec-WebSocket-Extensions").is_some() => Err(format!(
                "the server negotiated an extension: {:?}",
                r.header("Sec-WebSocket-Extensions")
            )),
            Event::Open(_) => Ok(conn),
            other => Err(describe(&other)),
        }
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    fn prep_text(text: &str) -> String {
        text.to_owned()
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        send_waiting(&self.ws, m.clone())
    }

    fn send_text(&mut self, m: &String) -> Result<(), String> {
        send_waiting(&self.ws, m.clone())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.event()? {
                Event::Message(Message::Binary(b)) => return Ok(Got::Binary(b.len())),
                Event::Message(Message::Text(t)) => {
                    let n = t.len();
                    self.last = Some(t);
                    return Ok(Got::Text(n));
                }
                Event::Open(_) => {}
                other => return Err(describe(&other)),
            }
        }
    }

    fn last_text(&self) -> String {
        self.last.clone().unwrap_or_default()
    }

    fn close(self) -> Result<(), String> {
        self.ws
            .close(1000, None)
            .map_err(|e| format!("close: {e}"))?;
        loop {
            match self.event()? {
                Event::Ended(syncws::Ended::Closed { .. }) => break,
                Event::Ended(syncws::Ended::Failed { error, .. }) => {
                    return Err(format!("closing failed: {error}"));
                }
                _ => {}
            }
        }
        if !self.ws.wait_finished(IO_TIMEOUT) {
            return Err(format!("not finished {IO_TIMEOUT:?} after on_closed"));
        }
        Ok(())
    }
}
