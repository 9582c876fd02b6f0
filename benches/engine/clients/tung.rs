//! tungstenite 0.30, blocking, defaults.

use std::net::TcpStream;
use std::time::Duration;

use tungstenite::Message as TMessage;

use super::{Conn, Got};
use crate::{IO_TIMEOUT, connect_tcp};

pub struct TungConn {
    pub ws: tungstenite::WebSocket<TcpStream>,
    pub last: Option<tungstenite::Utf8Bytes>,
}

impl TungConn {
    pub fn connect(port: u16, path: &str, timeout: Duration) -> Result<TungConn, String> {
        let s = connect_tcp(port, timeout).map_err(|e| format!("connect: {e}"))?;
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _response) =
            tungstenite::client(url.as_str(), s).map_err(|e| format!("handshake: {e}"))?;
        Ok(TungConn { ws, last: None })
    }

    pub fn send_close(&mut self) -> Result<(), String> {
        self.ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            }))
            .and_then(|()| self.ws.flush())
            .map_err(|e| format!("close: {e}"))
    }

    /// Reads until tungstenite reports the close complete (for a client: the server closed TCP).
    pub fn finish_close(&mut self) -> Result<(), String> {
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
                Err(e) => return Err(format!("waiting for the close: {e}")),
            }
        }
    }
}

impl Conn for TungConn {
    type Factory = ();
    type Bin = Vec<u8>;
    type Text = String;

    fn factory() {}

    fn open(_: &(), port: u16, path: &str) -> Result<Self, String> {
        TungConn::connect(port, path, IO_TIMEOUT)
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    fn prep_text(text: &str) -> String {
        text.to_owned()
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        // A fresh owned buffer per message, as for syncws (Vec -> Bytes does not copy again).
        self.ws
            .write(TMessage::binary(m.clone()))
            .map_err(|e| format!("write: {e}"))
    }

    fn send_text(&mut self, m: &String) -> Result<(), String> {
        self.ws
            .write(TMessage::text(m.clone()))
            .map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.ws.flush().map_err(|e| format!("flush: {e}"))
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.ws.read() {
                Ok(TMessage::Binary(b)) => return Ok(Got::Binary(b.len())),
                Ok(TMessage::Text(t)) => {
                    let n = t.len();
                    self.last = Some(t);
                    return Ok(Got::Text(n));
                }
                Ok(TMessage::Close(f)) => return Err(format!("the server closed: {f:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn last_text(&self) -> String {
        self.last
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default()
    }

    fn close(mut self) -> Result<(), String> {
        self.send_close()?;
        self.finish_close()
    }
}
