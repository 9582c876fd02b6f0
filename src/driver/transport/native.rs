//! The native-tls backend: the platform's TLS library, run over an in-memory transport.
//!
//! `native_tls::TlsStream` wants a `Read + Write` stream underneath. It gets [`Pipe`], which
//! never blocks: reads with nothing buffered say `WouldBlock`, which is how the session asks
//! for more network input, and writes only collect records for the caller to send.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::error::Error;

/// TLS records in and out, as plain memory.
#[derive(Debug, Default)]
pub(super) struct Pipe {
    incoming: Vec<u8>,
    read_pos: usize,
    outgoing: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.incoming[self.read_pos..];
        if available.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.read_pos += n;
        if self.read_pos == self.incoming.len() {
            self.incoming.clear();
            self.read_pos = 0;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A native-tls session whose records go through a [`Pipe`].
pub(super) struct NativeEngine(native_tls::TlsStream<Pipe>);

impl NativeEngine {
    /// The pipe holds whatever it is given: all of `cipher` is taken.
    pub(super) fn feed(&mut self, cipher: &[u8]) -> io::Result<usize> {
        self.0.get_mut().incoming.extend_from_slice(cipher);
        Ok(cipher.len())
    }

    pub(super) fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    pub(super) fn write_plain(&mut self, plain: &[u8]) -> io::Result<()> {
        self.0.write_all(plain)
    }

    pub(super) fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let pending = &mut self.0.get_mut().outgoing;
        if out.is_empty() {
            // Swapped, not copied: the pipe gets the caller's empty buffer (and its capacity).
            std::mem::swap(out, pending);
        } else {
            out.extend_from_slice(pending);
            pending.clear();
        }
        Ok(())
    }

    pub(super) fn has_output(&self) -> bool {
        !self.0.get_ref().outgoing.is_empty()
    }

    pub(super) fn close_notify(&mut self) {
        // Over the pipe, shutdown only queues the alert; it cannot wait for the peer's.
        let _ = self.0.shutdown();
    }
}

/// Runs the client side of a native-tls handshake for `domain` over `tcp`.
pub(super) fn connect(
    tcp: &TcpStream,
    connector: &native_tls::TlsConnector,
    domain: &str,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(NativeEngine, Vec<u8>), Error> {
    let start = connector.connect(domain, Pipe::default());
    finish_handshake(tcp, start, deadline, on_timeout)
}

/// Runs the server side of a native-tls handshake over `tcp`.
pub(super) fn accept(
    tcp: &TcpStream,
    acceptor: &native_tls::TlsAcceptor,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(NativeEngine, Vec<u8>), Error> {
    let start = acceptor.accept(Pipe::default());
    finish_handshake(tcp, start, deadline, on_timeout)
}

/// Drives a handshake to completion (or `deadline`): the session's records out, the peer's
/// in. Everything read is in the pipe, so nothing is left over for the read half.
fn finish_handshake(
    tcp: &TcpStream,
    mut result: Result<native_tls::TlsStream<Pipe>, native_tls::HandshakeError<Pipe>>,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(NativeEngine, Vec<u8>), Error> {
    let mut raw = vec![0u8; super::handshake::READ_CHUNK];
    let mut stream = loop {
        match result {
            Ok(s) => break s,
            Err(native_tls::HandshakeError::Failure(e)) => return Err(Error::Tls(e.to_string())),
            Err(native_tls::HandshakeError::WouldBlock(mut mid)) => {
                let out = std::mem::take(&mut mid.get_mut().outgoing);
                super::handshake::handshake_write(tcp, &out, deadline, on_timeout)?;
                let n = super::handshake::handshake_read(tcp, &mut raw, deadline, on_timeout)?;
                mid.get_mut().incoming.extend_from_slice(&raw[..n]);
                result = mid.handshake();
            }
        }
    };
    let out = std::mem::take(&mut stream.get_mut().outgoing);
    super::handshake::handshake_write(tcp, &out, deadline, on_timeout)?;
    Ok((NativeEngine(stream), Vec::new()))
}
