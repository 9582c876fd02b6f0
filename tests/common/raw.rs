//! Hand-written raw TCP peers: do the HTTP upgrade by hand, then send and read exact bytes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::EVENT_TIMEOUT;

pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for `key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// A valid 101 answer for `key`.
pub fn accept_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

/// Everything the server writes until it ends the connection (or [`EVENT_TIMEOUT`]), as text:
/// a refusal's status line and body, or a 503 an eviction wrote before its shutdown.
pub fn read_answer(s: &TcpStream) -> String {
    s.set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("set_read_timeout");
    let mut answer = Vec::new();
    let _ = (&*s).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads an HTTP head (up to and including the blank line), one byte at a time so nothing
/// after it is consumed.
pub fn read_head(s: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        assert!(head.len() < 64 * 1024, "head too long");
    }
    Ok(String::from_utf8(head).expect("head is ASCII"))
}

/// The value of header `name` in an HTTP head.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Accepts one connection on a fresh port and reads the client's upgrade request; `script`
/// gets the stream and the request's `Sec-WebSocket-Key` and answers however it likes.
pub fn raw_listener<T: Send + 'static>(
    script: impl FnOnce(TcpStream, String) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    raw_listener_head(move |s, key, _head| script(s, key))
}

/// Like [`raw_listener`], also handing `script` the whole request head.
pub fn raw_listener_head<T: Send + 'static>(
    script: impl FnOnce(TcpStream, String, String) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client connected");
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let head = read_head(&mut s).expect("upgrade request");
        assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
        let key = header_value(&head, "Sec-WebSocket-Key").expect("key");
        script(s, key, head)
    });
    (url, handle)
}

/// A raw server that completes a valid upgrade, then runs `script` on the connection.
pub fn raw_server<T: Send + 'static>(
    script: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    raw_listener(move |mut s, key| {
        s.write_all(&accept_response(&key)).expect("write 101");
        script(s)
    })
}

/// One frame as read off the wire (payload unmasked).
#[derive(Debug)]
pub struct Frame {
    pub b0: u8,
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// RSV1: the message is compressed (permessage-deflate).
    pub fn rsv1(&self) -> bool {
        self.b0 & 0x40 != 0
    }
}

pub fn read_frame_raw(s: &mut TcpStream) -> io::Result<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let masked = h[1] & 0x80 != 0;
    let mut key = [0u8; 4];
    if masked {
        s.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Frame {
        b0: h[0],
        fin: h[0] & 0x80 != 0,
        opcode: h[0] & 0x0F,
        masked,
        payload,
    })
}

/// Reads one frame the client sent (which must be masked and final): (opcode, payload).
pub fn read_client_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let f = read_frame_raw(s).expect("a frame from the client");
    assert!(f.masked, "client frames must be masked: {f:?}");
    assert!(f.fin, "client sent a non-final frame: {f:?}");
    (f.opcode, f.payload)
}

/// Reads the client's next frame, which must be a close frame; returns its payload.
pub fn read_client_close(s: &mut TcpStream) -> Vec<u8> {
    let (op, payload) = read_client_frame(s);
    assert_eq!(
        op, 0x8,
        "expected a close frame, got opcode {op:#x} {payload:?}"
    );
    payload
}

/// The code of a close payload (first two bytes, big-endian).
pub fn close_code(payload: &[u8]) -> u16 {
    assert!(
        payload.len() >= 2,
        "close payload without code: {payload:?}"
    );
    u16::from_be_bytes([payload[0], payload[1]])
}

/// Asserts the peer closed the connection (clean EOF) with nothing more sent.
pub fn assert_eof(s: &mut TcpStream) {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(_) => panic!("expected EOF, got byte {:#x}", b[0]),
        Err(e) => panic!("expected EOF, got {e}"),
    }
}

/// Reads until EOF or a reset (the peer closed TCP), failing on timeout.
pub fn read_until_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return;
            }
            Err(e) => panic!("connection not closed by the client: {e}"),
        }
    }
}

/// An unmasked frame header with first byte `b0` (FIN/RSV/opcode) and payload length `len`.
pub fn header(b0: u8, len: u64) -> Vec<u8> {
    let mut out = vec![b0];
    if len < 126 {
        out.push(len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out
}

/// A whole unmasked frame.
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Server side of a normal close: sends close 1000, expects the client's close 1000 back.
pub fn server_close(s: &mut TcpStream) {
    s.write_all(&frame(0x88, &close_payload(1000, b"")))
        .unwrap();
    assert_eq!(close_code(&read_client_close(s)), 1000);
}

/// A valid upgrade request (RFC 6455's example key) with `extra_headers`, each ending in CRLF.
pub fn upgrade_request(extra_headers: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

/// Connects to `addr` by hand and sends a valid upgrade request (nothing read yet).
pub fn send_upgrade_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s.write_all(upgrade_request("").as_bytes()).unwrap();
    s
}
