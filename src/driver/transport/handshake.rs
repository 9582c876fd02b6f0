//! What both backends' TLS handshakes share: reads and writes bounded by the handshake
//! deadline.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

pub(super) use super::tcp::READ_CHUNK;
use super::tcp::{is_stall, set_deadline, write_all_by};
use crate::error::Error;

#[cfg(any(feature = "native-tls", feature = "rustls"))]
fn io_err(e: io::Error, deadline_hit: impl FnOnce() -> Error) -> Error {
    if is_stall(&e) {
        deadline_hit()
    } else {
        Error::from(e)
    }
}

/// Reads handshake bytes from `tcp` by `deadline`: at least one, or an error (the peer's EOF
/// is one: a handshake cannot end that way).
#[cfg(any(feature = "native-tls", feature = "rustls"))]
pub(super) fn handshake_read(
    tcp: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<usize, Error> {
    set_deadline(tcp, Some(deadline)).map_err(|e| io_err(e, on_timeout))?;
    let mut tcp = tcp;
    let n = loop {
        match tcp.read(buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e, on_timeout)),
        }
    };
    if n == 0 {
        return Err(Error::Tls(
            "the peer closed the connection during the TLS handshake".into(),
        ));
    }
    Ok(n)
}

/// Writes handshake records to `tcp` by `deadline`.
#[cfg(any(feature = "native-tls", feature = "rustls"))]
pub(super) fn handshake_write(
    tcp: &TcpStream,
    bytes: &[u8],
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(), Error> {
    write_all_by(tcp, bytes, deadline).map_err(|e| io_err(e, on_timeout))
}
