//! The byte pipe under a socket: plain TCP, or TLS run over an in-memory transport.
//!
//! A blocking `native_tls::TlsStream` cannot be shared by a reader and a writer thread: the
//! reader would hold it (and any lock around it) while waiting for data, and the writer could
//! not send. So TLS runs over [`Pipe`], an in-memory transport that never blocks: the threads
//! do the TCP I/O themselves, outside any lock, and take the session's lock only for the moment
//! it takes to encrypt or decrypt.
//!
//! ```text
//!   reader thread                                   writer thread
//!   tcp.read(raw) ──▶ lock{ pipe.in += raw;          lock{ tls.write(plain) ──▶ pipe.out;
//!                          tls.read(plain) }              take pipe.out } ──▶ tcp.write_all
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Error;

/// TLS records in and out, as plain memory. Reads with nothing buffered say `WouldBlock`, which
/// is how the TLS session asks for more network input.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
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

type Session = native_tls::TlsStream<Pipe>;

/// How much ciphertext the reader takes from TCP at once (a TLS record is at most ~16 KiB).
const READ_CHUNK: usize = 16 * 1024;

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

/// The reading side, owned by the reader thread.
pub(crate) struct ReadHalf {
    pub tcp: Arc<TcpStream>,
    tls: Option<Arc<Mutex<Session>>>,
    raw: Vec<u8>,
    /// The TLS session has bytes to send that only reading produced.
    pub tls_output_pending: bool,
}

/// The writing side, owned by the writer thread (or by the reader during the handshake).
pub(crate) struct WriteHalf {
    pub tcp: Arc<TcpStream>,
    tls: Option<Arc<Mutex<Session>>>,
    /// Ciphertext not yet written, from `cipher_pos` on: what a non-blocking write left.
    cipher: Vec<u8>,
    cipher_pos: usize,
    /// When a blocking write gives up.
    pub stall: Stall,
}

/// One blocking write call waits at most this long (the socket's send timeout) before the
/// writer looks at its deadlines again.
pub(crate) const WRITE_SLICE: Duration = Duration::from_millis(500);

/// When a blocking write stops waiting for a peer that does not read: after `write_timeout` with
/// no byte accepted (progress, not calls: a peer that reads a byte now and then keeps it going),
/// or once the close timer, which runs from `close()`, has expired.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stall {
    pub write_timeout: Option<Duration>,
    pub close_timeout: Option<Duration>,
    pub close_started: Option<Arc<OnceLock<Instant>>>,
}

impl Stall {
    /// Whether the close timer has expired.
    pub(crate) fn close_expired(&self, now: Instant) -> bool {
        let (Some(timeout), Some(started)) = (self.close_timeout, &self.close_started) else {
            return false;
        };
        started
            .get()
            .and_then(|t| t.checked_add(timeout))
            .is_some_and(|deadline| now >= deadline)
    }

    fn give_up(&self, last_progress: Instant) -> bool {
        let now = Instant::now();
        self.write_timeout
            .is_some_and(|t| now.saturating_duration_since(last_progress) >= t)
            || self.close_expired(now)
    }
}

fn stalled(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `write_all` on a socket whose send timeout is a `WRITE_SLICE`: a slice without progress is
/// retried until `stall` gives up.
fn write_all_stalling(tcp: &TcpStream, mut buf: &[u8], stall: &Stall) -> io::Result<()> {
    let mut tcp = tcp;
    let mut last_progress = Instant::now();
    while !buf.is_empty() {
        match tcp.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if stalled(&e) && !stall.give_up(last_progress) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Splits a plain TCP connection. Both halves share the one descriptor: `&TcpStream` reads,
/// writes and shuts down, and the socket's read and write timeouts are separate options.
pub(crate) fn plain(tcp: Arc<TcpStream>) -> (ReadHalf, WriteHalf) {
    let w = tcp.clone();
    (
        ReadHalf {
            tcp,
            tls: None,
            raw: Vec::new(),
            tls_output_pending: false,
        },
        WriteHalf {
            tcp: w,
            tls: None,
            cipher: Vec::new(),
            cipher_pos: 0,
            stall: Stall::default(),
        },
    )
}

fn io_err(e: io::Error, deadline_hit: impl FnOnce() -> Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => deadline_hit(),
        _ => Error::Io(e),
    }
}

/// Drives a TLS handshake over `tcp` to completion (or `deadline`), then splits the connection.
fn finish_handshake(
    tcp: Arc<TcpStream>,
    mut result: Result<Session, native_tls::HandshakeError<Pipe>>,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let mut raw = vec![0u8; 16 * 1024];
    let session = loop {
        match result {
            Ok(s) => break s,
            Err(native_tls::HandshakeError::Failure(e)) => return Err(Error::Tls(e.to_string())),
            Err(native_tls::HandshakeError::WouldBlock(mut mid)) => {
                let out = std::mem::take(&mut mid.get_mut().outgoing);
                (&*tcp).write_all(&out).map_err(Error::Io)?;
                set_deadline(&tcp, Some(deadline)).map_err(|e| io_err(e, &on_timeout))?;
                let n = (&*tcp).read(&mut raw).map_err(|e| io_err(e, &on_timeout))?;
                if n == 0 {
                    return Err(Error::Tls(
                        "the peer closed the connection during the TLS handshake".into(),
                    ));
                }
                mid.get_mut().incoming.extend_from_slice(&raw[..n]);
                result = mid.handshake();
            }
        }
    };
    let mut session = session;
    let out = std::mem::take(&mut session.get_mut().outgoing);
    (&*tcp).write_all(&out).map_err(Error::Io)?;
    let w = tcp.clone();
    let tls = Arc::new(Mutex::new(session));
    Ok((
        ReadHalf {
            tcp,
            tls: Some(tls.clone()),
            raw: Vec::new(),
            tls_output_pending: false,
        },
        WriteHalf {
            tcp: w,
            tls: Some(tls),
            cipher: Vec::new(),
            cipher_pos: 0,
            stall: Stall::default(),
        },
    ))
}

/// Runs the client side of TLS for `domain`.
pub(crate) fn tls_connect(
    tcp: Arc<TcpStream>,
    connector: &native_tls::TlsConnector,
    domain: &str,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let start = connector.connect(domain, Pipe::default());
    finish_handshake(tcp, start, deadline, on_timeout)
}

/// Runs the server side of TLS.
pub(crate) fn tls_accept(
    tcp: Arc<TcpStream>,
    acceptor: &native_tls::TlsAcceptor,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let start = acceptor.accept(Pipe::default());
    finish_handshake(tcp, start, deadline, on_timeout)
}

impl ReadHalf {
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads at least one byte of plaintext into `buf`; `Ok(0)` means the peer closed.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return (&*self.tcp).read(buf);
        };
        loop {
            {
                let mut s = tls.lock();
                match s.read(buf) {
                    Ok(n) => {
                        self.tls_output_pending |= !s.get_ref().outgoing.is_empty();
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.tls_output_pending |= !s.get_ref().outgoing.is_empty();
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.raw.is_empty() {
                self.raw.resize(READ_CHUNK, 0);
            }
            let n = (&*self.tcp).read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            tls.lock()
                .get_mut()
                .incoming
                .extend_from_slice(&self.raw[..n]);
        }
    }

    /// Reads and throws away raw bytes until the peer closes or `deadline`; used while closing,
    /// when nothing more is to be delivered.
    ///
    /// The scratch buffer is on the heap: this runs under the read loop's frame, and every
    /// stack page a pooled thread touches stays resident for the life of the thread.
    pub(crate) fn drain_until_eof(&mut self, deadline: Option<Instant>) -> bool {
        let mut scratch = vec![0u8; 4096];
        loop {
            if set_deadline(&self.tcp, deadline).is_err() {
                return false;
            }
            match (&*self.tcp).read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// Writes what the socket takes now without waiting: `MSG_DONTWAIT` on this one call, so the
/// descriptor the reader blocks on stays blocking. Returns bytes written; 0 when the socket's
/// buffer is full.
fn send_now(tcp: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let sock = socket2::SockRef::from(tcp);
    let mut done = 0;
    while done < buf.len() {
        match sock.send_with_flags(&buf[done..], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl WriteHalf {
    /// Moves the TLS session's output (records for `plain`, or alerts and key updates) to the
    /// end of the ciphertext to write.
    fn encrypt(&mut self, plain: &[u8]) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            let mut s = tls.lock();
            s.write_all(plain)?;
            let out = &mut s.get_mut().outgoing;
            if self.cipher.is_empty() {
                std::mem::swap(&mut self.cipher, out);
            } else {
                self.cipher.extend_from_slice(out);
                out.clear();
            }
        }
        Ok(())
    }

    fn cipher_written(&mut self) {
        self.cipher.clear();
        self.cipher_pos = 0;
        if self.cipher.capacity() > 1 << 20 {
            self.cipher.shrink_to(64 * 1024);
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Ciphertext is left over from a non-blocking write.
    pub(crate) fn has_pending(&self) -> bool {
        self.cipher_pos < self.cipher.len()
    }

    /// Writes `plain` (encrypting it first under TLS), after anything a non-blocking write
    /// left; blocks (up to the write timeout) until all of it is written.
    pub(crate) fn write_all(&mut self, plain: &[u8]) -> io::Result<()> {
        if self.tls.is_none() {
            return write_all_stalling(&self.tcp, plain, &self.stall);
        }
        self.encrypt(plain)?;
        let r = write_all_stalling(&self.tcp, &self.cipher[self.cipher_pos..], &self.stall);
        self.cipher_written();
        r
    }

    /// Writes `a` then `b`, as `write_all` would write their concatenation: one vectored
    /// write per round on plain TCP, so a large payload goes out without being copied.
    pub(crate) fn write_all_two(&mut self, a: &[u8], b: &[u8]) -> io::Result<()> {
        if b.is_empty() {
            return self.write_all(a);
        }
        if self.tls.is_some() {
            self.encrypt(a)?;
            return self.write_all(b);
        }
        let (mut a, mut b) = (a, b);
        let mut tcp = &*self.tcp;
        let mut last_progress = Instant::now();
        while !a.is_empty() || !b.is_empty() {
            let written = if a.is_empty() {
                tcp.write(b)
            } else {
                tcp.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
            };
            let n = match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if stalled(&e) && !self.stall.give_up(last_progress) => continue,
                Err(e) => return Err(e),
            };
            last_progress = Instant::now();
            if n <= a.len() {
                a = &a[n..];
            } else {
                b = &b[n - a.len()..];
                a = &[];
            }
        }
        Ok(())
    }

    /// Writes as much of `plain` as the socket takes without waiting; returns how much of
    /// `plain` it consumed. Under TLS all of it is encrypted at once and what the socket does
    /// not take stays pending ([`has_pending`](Self::has_pending)) for the next write.
    pub(crate) fn write_nonblocking(&mut self, plain: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return send_now(&self.tcp, plain);
        }
        self.encrypt(plain)?;
        let n = send_now(&self.tcp, &self.cipher[self.cipher_pos..])?;
        self.cipher_pos += n;
        if !self.has_pending() {
            self.cipher_written();
        }
        Ok(plain.len())
    }

    /// Writes whatever the TLS session produced on its own (after reads, or a shutdown).
    pub(crate) fn flush_tls(&mut self) -> io::Result<()> {
        self.write_all(&[])
    }

    /// Sends TLS close_notify (if TLS) and a TCP FIN: we will write nothing more.
    pub(crate) fn finish(&mut self) {
        if let Some(tls) = &self.tls {
            let _ = tls.lock().shutdown();
            let _ = self.flush_tls();
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }
}
