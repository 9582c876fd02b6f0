//! The server's `/sink` route: counts binary messages and answers a text `done` with the count.
//!
//! It reads the socket 128 KiB at a time into one buffer and walks the frames in place:
//! binary payloads are skipped (counted, never unmasked, copied or allocated), and only small
//! frames (text, close, ping) are kept whole. So the sink costs little per message, and the
//! send scenarios measure the client rather than the server.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::scale_server::push_frame;

/// What one `read` asks for.
const READ_SIZE: usize = 128 * 1024;
/// The largest frame kept whole (text, close, ping); larger non-binary frames end the
/// connection. The clients send `done` and control frames of at most 125 bytes.
const KEEP_MAX: usize = 4096;

/// A client frame's header.
struct Header {
    fin: bool,
    opcode: u8,
    /// Header length, mask included.
    len: usize,
    payload: u64,
    mask: [u8; 4],
}

/// Parses a header at the start of `b`: `Ok(None)` if incomplete, `Err` if unmasked.
fn header(b: &[u8]) -> Result<Option<Header>, ()> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 == 0 {
        return Err(()); // clients must mask
    }
    let (payload, at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
        127 if b.len() >= 10 => {
            let mut l = [0u8; 8];
            l.copy_from_slice(&b[2..10]);
            (u64::from_be_bytes(l), 10)
        }
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if b.len() < at + 4 {
        return Ok(None);
    }
    Ok(Some(Header {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0f,
        len: at + 4,
        payload,
        mask: [b[at], b[at + 1], b[at + 2], b[at + 3]],
    }))
}

/// Serves `/sink` on a socket just past the opening handshake, until the client's close (which
/// it answers, then closes TCP) or an error.
///
/// The handshake was tungstenite's: a client that sent frames before reading the 101 would
/// have had them read into tungstenite's buffer, and they would be lost here. None of the
/// bench's clients does, and a loss would show as a count that does not match, or a failed run.
pub fn serve_sink(mut s: TcpStream) {
    let mut buf = vec![0u8; READ_SIZE];
    let (mut start, mut end) = (0usize, 0usize);
    // Payload bytes of the current binary frame still to come, and whether the data message
    // being received is binary (continuation frames follow their first frame's type).
    let mut skip: u64 = 0;
    let mut binary = false;
    let mut count: u64 = 0;
    let mut out = Vec::new();
    loop {
        while start < end {
            if skip > 0 {
                let k = skip.min((end - start) as u64) as usize;
                start += k;
                skip -= k as u64;
                continue;
            }
            let h = match header(&buf[start..end]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(()) => return,
            };
            if h.opcode == 2 || (h.opcode == 0 && binary) {
                binary = true;
                if h.fin {
                    count += 1;
                }
                start += h.len;
                skip = h.payload;
                continue;
            }
            if h.payload > KEEP_MAX as u64 {
                return;
            }
            let whole = h.len + h.payload as usize;
            if end - start < whole {
                break;
            }
            let mut payload = buf[start + h.len..start + whole].to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= h.mask[i % 4];
            }
            start += whole;
            out.clear();
            match h.opcode {
                0 | 1 => {
                    binary = false;
                    if h.fin && payload == b"done" {
                        push_frame(&mut out, 0x81, count.to_string().as_bytes());
                        count = 0;
                    }
                }
                8 => {
                    // Answer with the client's code, then close TCP (dropping the socket).
                    push_frame(&mut out, 0x88, &payload[..payload.len().min(2)]);
                    let _ = s.write_all(&out);
                    return;
                }
                9 => push_frame(&mut out, 0x8a, &payload),
                10 => {}
                _ => return,
            }
            if !out.is_empty() && s.write_all(&out).is_err() {
                return;
            }
        }
        // Keep a partial header or small frame (at most KEEP_MAX bytes), then read the next
        // 128 KiB (less that partial frame) after it.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        match s.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}
