//! Reading a PROXY protocol header off a connection from a trusted proxy: exactly its bytes
//! (byte by byte for v1's line, the fixed part then the rest for v2), never what follows, by
//! the handshake's deadline. What the bytes mean is `proto::forwarded`'s.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::proto::forwarded::{self, Length};

/// The client the header names (`None`: the proxy's own connection, keep its address).
pub(crate) fn read(tcp: &TcpStream, deadline: Instant) -> Result<Option<SocketAddr>, String> {
    let mut buf = Vec::with_capacity(64);
    loop {
        let want = match forwarded::header_length(&buf)? {
            Length::Exactly(n) if buf.len() >= n => return forwarded::parse_header(&buf[..n]),
            Length::Exactly(n) | Length::AtLeast(n) => n,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no whole PROXY header before the handshake timeout".into());
        }
        tcp.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let start = buf.len();
        buf.resize(want, 0);
        match (&*tcp).read(&mut buf[start..]) {
            Ok(0) => return Err("the connection closed inside its PROXY header".into()),
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => return Err(format!("reading the PROXY header: {e}")),
        }
    }
}
