//! The scale server child: one thread, mio, upgrade + echo, no compression.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::watch_parent;

struct EchoConn {
    pub stream: mio::net::TcpStream,
    inb: Vec<u8>,
    pub out: Vec<u8>,
    upgraded: bool,
    close_after_flush: bool,
}

impl EchoConn {
    /// Reads what is there, answers it, writes what it can. Returns false to drop the
    /// connection (which closes it).
    fn service(&mut self, chunk: &mut [u8]) -> bool {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => return false,
                Ok(n) => self.inb.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !self.close_after_flush && !self.process() {
            return false;
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return false,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        // The server closes TCP once its close frame is out.
        !self.close_after_flush
    }

    pub fn process(&mut self) -> bool {
        if !self.upgraded {
            let Some(end) = self.inb.windows(4).position(|w| w == b"\r\n\r\n") else {
                return self.inb.len() <= 16 * 1024;
            };
            let head = String::from_utf8_lossy(&self.inb[..end]).into_owned();
            let key = head.split("\r\n").find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            });
            let Some(key) = key else {
                self.out
                    .extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                self.close_after_flush = true;
                return true;
            };
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            self.out.extend_from_slice(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .as_bytes(),
            );
            self.inb.drain(..end + 4);
            self.upgraded = true;
        }
        let mut pos = 0;
        loop {
            let b = &self.inb[pos..];
            if b.len() < 2 {
                break;
            }
            if b[1] & 0x80 == 0 {
                return false; // clients must mask
            }
            let (len, mut hdr) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            hdr += 4;
            if len > 16 << 20 {
                return false;
            }
            if b.len() < hdr + len {
                break;
            }
            let mask = [b[hdr - 4], b[hdr - 3], b[hdr - 2], b[hdr - 1]];
            let payload: Vec<u8> = b[hdr..hdr + len]
                .iter()
                .enumerate()
                .map(|(i, x)| x ^ mask[i % 4])
                .collect();
            let (b0, opcode) = (b[0], b[0] & 0x0f);
            pos += hdr + len;
            match opcode {
                0..=2 => push_frame(&mut self.out, b0, &payload),
                8 => {
                    push_frame(&mut self.out, 0x88, &payload[..payload.len().min(2)]);
                    self.close_after_flush = true;
                    break;
                }
                9 => push_frame(&mut self.out, 0x8a, &payload),
                10 => {}
                _ => return false,
            }
        }
        self.inb.drain(..pos);
        true
    }
}

/// An unmasked server frame.
pub fn push_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8]) {
    let n = payload.len();
    out.push(b0);
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

pub fn scale_server_main() -> ! {
    use mio::{Events, Interest, Poll, Token};
    watch_parent();
    const LISTENER: Token = Token(usize::MAX);
    let addr = "127.0.0.1:0".parse().expect("an address");
    let mut listener = mio::net::TcpListener::bind(addr).expect("scale server: bind");
    let port = listener
        .local_addr()
        .expect("scale server: local_addr")
        .port();
    let mut poll = Poll::new().expect("scale server: poll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("scale server: register the listener");
    println!("PORT {port}");
    let _ = io::stdout().flush();
    let mut conns: Vec<Option<EchoConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // After an accept error (EMFILE) the edge-triggered listener would not fire again for the
    // connections already queued: retry on a short timer instead.
    let mut retry_accept = false;
    loop {
        let timeout = retry_accept.then_some(Duration::from_millis(10));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("scale server: poll: {e}");
            std::process::exit(1);
        }
        let mut accept_now = retry_accept;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_now = true;
                continue;
            }
            let idx = ev.token().0;
            let keep = match conns.get_mut(idx) {
                Some(Some(c)) => c.service(&mut chunk),
                _ => continue,
            };
            if !keep && let Some(mut c) = conns[idx].take() {
                let _ = poll.registry().deregister(&mut c.stream);
                free.push(idx);
            }
        }
        if accept_now {
            retry_accept = false;
            loop {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nodelay(true);
                        let idx = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        if poll
                            .registry()
                            .register(&mut s, Token(idx), interest)
                            .is_err()
                        {
                            free.push(idx);
                            continue;
                        }
                        conns[idx] = Some(EchoConn {
                            stream: s,
                            inb: Vec::new(),
                            out: Vec::new(),
                            upgraded: false,
                            close_after_flush: false,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("scale server: accept: {e}");
                        retry_accept = true;
                        break;
                    }
                }
            }
        }
    }
}
