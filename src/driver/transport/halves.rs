//! The two halves of a connection, plain or TLS, over one descriptor: the reader's and the
//! writer's, and how their blocking writes give up.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::super::platform;
use super::engine::TlsEngine;
use super::stall::{self, CloseDeadline, OnStall, Stall, WRITE_SLICE};
use super::tcp::{READ_CHUNK, is_stall};
pub(crate) use super::tcp::{set_deadline, write_all_by};

/// The reading side, owned by the reader thread.
pub(crate) struct ReadHalf {
    pub tcp: Arc<TcpStream>,
    tls: Option<Arc<Mutex<TlsEngine>>>,
    /// Ciphertext read from TCP; `raw[raw_pos..raw_len]` is what the session has not taken yet.
    raw: Vec<u8>,
    raw_pos: usize,
    raw_len: usize,
    /// The TLS session has bytes to send that only reading produced.
    pub tls_output_pending: bool,
}

/// The writing side, owned by the writer thread (or by the reader during the handshake).
pub(crate) struct WriteHalf {
    pub tcp: Arc<TcpStream>,
    tls: Option<Arc<Mutex<TlsEngine>>>,
    /// Ciphertext not yet written, from `cipher_pos` on: what a non-blocking write left.
    cipher: Vec<u8>,
    cipher_pos: usize,
    /// When a blocking write gives up.
    pub stall: Stall,
}

/// Reads and throws away raw bytes from `tcp` until the peer closes or `deadline`; true when
/// the peer closed. The scratch buffer is on the heap: this runs under the read loop's frame,
/// and every stack page a pooled thread touches stays resident for the life of the thread.
pub(crate) fn drain_until_eof(tcp: &TcpStream, deadline: Option<Instant>) -> bool {
    let mut scratch = vec![0u8; 4096];
    loop {
        if set_deadline(tcp, deadline).is_err() {
            return false;
        }
        match (&*tcp).read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes `a` then `b` on a socket whose send timeout is a `WRITE_SLICE`: a slice without
/// progress is retried until `stall` gives up (on Windows each call waits for the whole time
/// left instead, and a timeout is final: `platform::sockets`). While both have bytes, one vectored write per
/// round, so a large `b` (a payload behind its frame header) goes out without being copied.
fn write_all_stalling(
    tcp: &TcpStream,
    mut a: &[u8],
    mut b: &[u8],
    stall: &Stall,
) -> io::Result<()> {
    let mut tcp = tcp;
    let mut last_progress = Instant::now();
    while !a.is_empty() || !b.is_empty() {
        // Where a timed-out write cannot be resumed (Windows), the call blocks without a timeout
        // and the write watcher ends it if it stalls past a deadline.
        let _watched = if platform::sockets::TIMED_OUT_WRITES_RESUME {
            None
        } else {
            stall::watched(stall, last_progress)
        };
        let written = match (a.is_empty(), b.is_empty()) {
            (true, _) => tcp.write(b),
            (false, true) => tcp.write(a),
            (false, false) => tcp.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]),
        };
        let n = match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if is_stall(&e)
                    && platform::sockets::TIMED_OUT_WRITES_RESUME
                    && !stall.give_up(last_progress) =>
            {
                continue;
            }
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

/// Prepares the write half for the writer thread: a blocking write waits a slice at a time,
/// so that the write timeout (progress, not calls) and the close deadline are looked at even
/// while a peer that reads slowly keeps the write going. Where a timed-out write cannot be
/// resumed (Windows) the write watcher looks at them instead, and calls `on_stall`.
pub(crate) fn for_writer(
    mut io: WriteHalf,
    config: &crate::config::Config,
    close_deadline: &CloseDeadline,
    on_stall: OnStall,
) -> WriteHalf {
    let slice = config
        .write_timeout_option()
        .map_or(WRITE_SLICE, |t| t.min(WRITE_SLICE));
    // Slices only where a timed-out write can be resumed; elsewhere the watcher keeps time.
    let timeout = platform::sockets::TIMED_OUT_WRITES_RESUME.then_some(slice);
    let _ = io.tcp.set_write_timeout(timeout);
    io.stall = Stall {
        write_timeout: config.write_timeout_option(),
        close_deadline: Some(close_deadline.clone()),
        on_stall: Some(on_stall),
    };
    io
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
            raw_pos: 0,
            raw_len: 0,
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

/// Splits a connection whose TLS handshake is done. `leftover` is ciphertext read during the
/// handshake that the session has not taken yet.
#[cfg_attr(not(any(feature = "native-tls", feature = "rustls")), allow(dead_code))]
pub(super) fn split_tls(
    tcp: Arc<TcpStream>,
    session: TlsEngine,
    leftover: Vec<u8>,
) -> (ReadHalf, WriteHalf) {
    let w = tcp.clone();
    let tls = Arc::new(Mutex::new(session));
    let raw_len = leftover.len();
    (
        ReadHalf {
            tcp,
            tls: Some(tls.clone()),
            raw: leftover,
            raw_pos: 0,
            raw_len,
            tls_output_pending: false,
        },
        WriteHalf {
            tcp: w,
            tls: Some(tls),
            cipher: Vec::new(),
            cipher_pos: 0,
            stall: Stall::default(),
        },
    )
}

impl ReadHalf {
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads at least one byte of plaintext into `buf`; `Ok(0)` means the peer closed (TCP's
    /// EOF, or TLS close_notify).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return (&*self.tcp).read(buf);
        };
        loop {
            {
                let mut s = tls.lock();
                loop {
                    match s.read_plain(buf) {
                        Ok(n) => {
                            self.tls_output_pending |= s.has_output();
                            return Ok(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if self.raw_pos >= self.raw_len {
                        self.tls_output_pending |= s.has_output();
                        break;
                    }
                    let taken = s.feed(&self.raw[self.raw_pos..self.raw_len])?;
                    if taken == 0 {
                        // Neither plaintext nor room for input: never spin on it.
                        return Err(io::Error::other("the TLS session takes no more input"));
                    }
                    self.raw_pos += taken;
                }
            }
            if self.raw.len() < READ_CHUNK {
                self.raw.resize(READ_CHUNK, 0);
            }
            let n = (&*self.tcp).read(&mut self.raw)?;
            if n == 0 {
                // TCP's EOF without close_notify: reported as the end of the stream, which the
                // read loop turns into `UnexpectedEof` (no close frame came).
                return Ok(0);
            }
            self.raw_pos = 0;
            self.raw_len = n;
        }
    }

    /// Reads and throws away raw bytes until the peer closes or `deadline`; used while closing,
    /// when nothing more is to be delivered.
    pub(crate) fn drain_until_eof(&mut self, deadline: Option<Instant>) -> bool {
        drain_until_eof(&self.tcp, deadline)
    }
}

impl WriteHalf {
    /// Moves the TLS session's output (records for `plain`, or alerts and key updates) to the
    /// end of the ciphertext to write.
    fn encrypt(&mut self, plain: &[u8]) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            let mut s = tls.lock();
            s.write_plain(plain)?;
            s.take_output(&mut self.cipher)?;
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

    /// Ciphertext is left over from a non-blocking write.
    pub(crate) fn has_pending(&self) -> bool {
        self.cipher_pos < self.cipher.len()
    }

    /// Writes `plain` (encrypting it first under TLS), after anything a non-blocking write
    /// left; blocks (up to the write timeout) until all of it is written.
    pub(crate) fn write_all(&mut self, plain: &[u8]) -> io::Result<()> {
        if self.tls.is_none() {
            return write_all_stalling(&self.tcp, plain, &[], &self.stall);
        }
        self.encrypt(plain)?;
        let r = write_all_stalling(&self.tcp, &self.cipher[self.cipher_pos..], &[], &self.stall);
        self.cipher_written();
        r
    }

    /// Writes `plain` (encrypting it first under TLS) by `deadline`, for the handshake: a
    /// peer that does not read fails it with `TimedOut` then, however large `plain` is.
    pub(crate) fn write_all_by(&mut self, plain: &[u8], deadline: Instant) -> io::Result<()> {
        if self.tls.is_none() {
            return write_all_by(&self.tcp, plain, deadline);
        }
        self.encrypt(plain)?;
        let r = write_all_by(&self.tcp, &self.cipher[self.cipher_pos..], deadline);
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
        write_all_stalling(&self.tcp, a, b, &self.stall)
    }

    /// Writes as much of `plain` as the socket takes without waiting; returns how much of
    /// `plain` it consumed. Under TLS all of it is encrypted at once and what the socket does
    /// not take stays pending ([`has_pending`](Self::has_pending)) for the next write.
    pub(crate) fn write_nonblocking(&mut self, plain: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return platform::sockets::send_now(&self.tcp, plain);
        }
        self.encrypt(plain)?;
        let n = platform::sockets::send_now(&self.tcp, &self.cipher[self.cipher_pos..])?;
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

    /// [`finish`](Self::finish) during the handshake: close_notify written by `deadline` at
    /// the latest, then a FIN.
    pub(crate) fn finish_by(&mut self, deadline: Instant) {
        if let Some(tls) = &self.tls {
            tls.lock().close_notify();
            let _ = self.write_all_by(&[], deadline);
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }

    /// Sends TLS close_notify (if TLS) and a TCP FIN: we will write nothing more.
    pub(crate) fn finish(&mut self) {
        if let Some(tls) = &self.tls {
            tls.lock().close_notify();
            let _ = self.flush_tls();
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }
}
