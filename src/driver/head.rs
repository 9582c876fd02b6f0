//! Reading an HTTP head off a connection: the upgrade request or response (both roles), and a
//! proxy's answer to `CONNECT`.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

use super::transport::{self, ReadHalf};
use crate::proto::handshake;

/// HTTP heads up to this size are parsed after every read; longer ones once complete.
const EAGER_PARSE_BYTES: usize = 4096;

/// Why an HTTP head could not be read.
pub(super) enum HeadError<E> {
    /// The head is malformed, too large, or refused by `parse`.
    Parse(E),
    Io(std::io::Error),
    /// The peer closed the connection first, after `partial` bytes of a head or none.
    Eof {
        partial: bool,
    },
}

/// Where a head is read from: one read of at most `buf.len()` bytes, by `deadline`.
pub(super) trait HeadSource {
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize>;
}

/// The upgrade's head, over TLS or not.
impl HeadSource for ReadHalf {
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        transport::set_deadline(&self.tcp, Some(deadline))?;
        self.read(buf)
    }
}

/// A proxy's answer, on the TCP connection to it.
impl HeadSource for &TcpStream {
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        transport::set_deadline(self, Some(deadline))?;
        loop {
            match self.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

/// Reads an HTTP head by `deadline` and parses it with `parse`; returns the parsed head and the
/// bytes read past it.
///
/// `parse` runs on every read while the head is short (so garbage is refused at once), and
/// past that only once a blank line (the end of a head) has arrived or the head has reached the
/// size cap: a peer trickling a long head a byte at a time costs one scan of each byte, not a
/// fresh parse of the whole head on every read.
pub(super) fn read_head<T, E>(
    source: &mut impl HeadSource,
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<(T, Vec<u8>), HeadError<E>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    let mut scanned: usize = 0;
    loop {
        let end_seen = buf[scanned.saturating_sub(2)..]
            .windows(2)
            .any(|w| w == b"\n\n")
            || buf[scanned.saturating_sub(3)..]
                .windows(3)
                .any(|w| w == b"\n\r\n");
        scanned = buf.len();
        if (end_seen || buf.len() <= EAGER_PARSE_BYTES || buf.len() > handshake::MAX_HEADER_BYTES)
            && let Some((head, len)) = parse(&buf).map_err(HeadError::Parse)?
        {
            return Ok((head, buf.split_off(len)));
        }
        let n = source
            .read_by(&mut chunk, deadline)
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Eof {
                partial: !buf.is_empty(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
