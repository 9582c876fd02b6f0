//! raw: the lower bound, a hand-written client on a plain `TcpStream`.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use super::{Conn, Got};
use crate::{IO_TIMEOUT, connect_tcp};

/// One TCP connection shared by a buffered reader and a buffered writer (one fd).
pub struct RcStream(Rc<TcpStream>);

impl Read for RcStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for RcStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// A fixed handshake key and a fixed mask: good enough for a lower bound.
const RAW_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RAW_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A whole masked client frame (FIN set).
pub fn raw_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = Vec::with_capacity(n + 14);
    f.push(0x80 | opcode);
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&RAW_MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ RAW_MASK[i % 4]));
    f
}

pub struct RawConn {
    pub r: BufReader<RcStream>,
    pub w: BufWriter<RcStream>,
    pub buf: Vec<u8>,
    pub len: usize,
}

impl RawConn {
    pub fn connect(
        port: u16,
        path: &str,
        buffer: usize,
        timeout: Duration,
    ) -> Result<RawConn, String> {
        let s = Rc::new(connect_tcp(port, timeout).map_err(|e| format!("connect: {e}"))?);
        let mut w = BufWriter::with_capacity(buffer, RcStream(s.clone()));
        let mut r = BufReader::with_capacity(buffer, RcStream(s));
        write!(
            w,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {RAW_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .and_then(|()| w.flush())
        .map_err(|e| format!("writing the upgrade request: {e}"))?;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            let n = r
                .read_line(&mut line)
                .map_err(|e| format!("reading the upgrade response: {e}"))?;
            if n == 0 {
                return Err("the server closed during the handshake".into());
            }
            if first && !line.starts_with("HTTP/1.1 101") {
                return Err(format!("upgrade refused: {}", line.trim()));
            }
            first = false;
            if line == "\r\n" {
                break;
            }
        }
        Ok(RawConn {
            r,
            w,
            buf: Vec::new(),
            len: 0,
        })
    }

    /// Reads one frame (server frames are unmasked); the payload is `self.buf[..self.len]`.
    pub fn read_frame(&mut self) -> io::Result<u8> {
        let mut h = [0u8; 2];
        self.r.read_exact(&mut h)?;
        if h[1] & 0x80 != 0 {
            return Err(io::Error::other("masked frame from the server"));
        }
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.r.read_exact(&mut self.buf[..len])?;
        self.len = len;
        Ok(h[0] & 0x0f)
    }

    pub fn send_close(&mut self) -> io::Result<()> {
        self.w.write_all(&raw_frame(8, &1000u16.to_be_bytes()))?;
        self.w.flush()
    }

    /// After our close: reads up to the server's close frame, then to EOF.
    pub fn finish_close(&mut self) -> Result<(), String> {
        loop {
            match self.read_frame() {
                Ok(8) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for the close frame: {e}")),
            }
        }
        let mut sink = [0u8; 256];
        loop {
            match self.r.read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for the server's TCP close: {e}")),
            }
        }
    }
}

impl Conn for RawConn {
    type Factory = ();
    type Bin = Vec<u8>;
    type Text = Vec<u8>;

    fn factory() {}

    fn open(_: &(), port: u16, path: &str) -> Result<Self, String> {
        RawConn::connect(port, path, 64 * 1024, IO_TIMEOUT)
    }

    fn prep_binary(payload: &[u8]) -> Vec<u8> {
        raw_frame(2, payload)
    }

    fn prep_text(text: &str) -> Vec<u8> {
        raw_frame(1, text.as_bytes())
    }

    fn send_binary(&mut self, m: &Vec<u8>) -> Result<(), String> {
        self.w.write_all(m).map_err(|e| format!("write: {e}"))
    }

    fn send_text(&mut self, m: &Vec<u8>) -> Result<(), String> {
        self.w.write_all(m).map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.w.flush().map_err(|e| format!("flush: {e}"))
    }

    fn recv(&mut self) -> Result<Got, String> {
        loop {
            match self.read_frame().map_err(|e| format!("read: {e}"))? {
                1 => return Ok(Got::Text(self.len)),
                2 => return Ok(Got::Binary(self.len)),
                8 => return Err("the server closed the connection".into()),
                _ => {}
            }
        }
    }

    fn last_text(&self) -> String {
        String::from_utf8_lossy(&self.buf[..self.len]).into_owned()
    }

    fn close(mut self) -> Result<(), String> {
        self.send_close()
            .map_err(|e| format!("sending close: {e}"))?;
        self.finish_close()
    }
}
