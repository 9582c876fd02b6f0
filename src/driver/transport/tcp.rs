//! Blocking TCP I/O that the halves and the TLS handshakes share: reads and writes bounded by
//! a deadline, and how much one read takes.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Instant;

/// How much ciphertext the reader takes from TCP at once (a TLS record is at most ~16 KiB).
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// Sets the socket's read timeout from a deadline; errors if the deadline has passed.
pub(crate) fn set_deadline(tcp: &TcpStream, deadline: Option<Instant>) -> io::Result<()> {
    match deadline {
        None => tcp.set_read_timeout(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            tcp.set_read_timeout(Some(left))
        }
    }
}

/// Whether an I/O error says a blocking read or write ran out of time (a socket timeout:
/// `WouldBlock` on Unix, `TimedOut` elsewhere), not that the connection failed.
pub(crate) fn is_stall(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes all of `bytes` by `deadline` (the handshake's writes, before the socket's own write
/// timeout is set): each write waits at most what is left, and `TimedOut` once nothing is.
pub(crate) fn write_all_by(tcp: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut tcp_ref = tcp;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        tcp.set_write_timeout(Some(left))?;
        match tcp_ref.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_stall(&e) => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        }
    }
    tcp.set_write_timeout(None)
}
