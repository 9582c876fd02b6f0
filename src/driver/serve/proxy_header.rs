//! Reading a PROXY protocol header off a connection from a trusted proxy: exactly its bytes
//! (byte by byte for v1's line, the fixed part then the rest for v2), never what follows, by
//! the handshake's deadline. What the bytes mean is `proto::forwarded`'s.

use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::driver::head::HeadSource;
use crate::driver::transport::is_stall;
use crate::proto::forwarded::{self, Length};

/// The client the header names (`None`: the proxy's own connection, keep its address).
pub(crate) fn read(tcp: &TcpStream, deadline: Instant) -> Result<Option<SocketAddr>, String> {
    let mut buf = Vec::with_capacity(64);
    let mut source = tcp;
    loop {
        let want = match forwarded::header_length(&buf)? {
            Length::Exactly(n) if buf.len() >= n => return forwarded::parse_header(&buf[..n]),
            Length::Exactly(n) | Length::AtLeast(n) => n,
        };
        let start = buf.len();
        buf.resize(want, 0);
        match source.read_by(&mut buf[start..], deadline) {
            Ok(0) => return Err("the connection closed inside its PROXY header".into()),
            Ok(n) => buf.truncate(start + n),
            Err(e) if is_stall(&e) => {
                return Err("no whole PROXY header before the handshake timeout".into());
            }
            Err(e) => return Err(format!("reading the PROXY header: {e}")),
        }
    }
}
