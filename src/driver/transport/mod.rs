//! The byte pipe under a socket: plain TCP, or a TLS session that both threads share.
//!
//! A blocking TLS stream cannot be shared by a reader and a writer thread: the reader would
//! hold it (and any lock around it) while waiting for data, and the writer could not send. So
//! the threads do the TCP I/O themselves, outside any lock, and hold the session's lock
//! ([`Session`]) only for the moment it takes to encrypt or decrypt:
//!
//! ```text
//!   reader thread                                   writer thread
//!   tcp.read(raw) ──▶ lock{ session.feed(raw);       lock{ session.write_plain(plain);
//!                          session.read_plain() }         session.take_output() } ──▶ tcp.write_all
//! ```
//!
//! Each backend is one module: [`native`] runs a `native_tls` session over an in-memory
//! transport (`Pipe`), [`rustls`] drives a `rustls::Connection`, which is sans-I/O already.
//! With no TLS feature there is no session type at all, and a `wss` URL fails before it
//! connects (`client.rs`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::driver::shared::CloseClock;
use crate::error::Error;

#[cfg(feature = "native-tls")]
mod native;
#[cfg(feature = "rustls")]
mod rustls;

/// Why a `wss` URL fails in a build without a TLS backend.
#[cfg(not(any(feature = "native-tls", feature = "rustls")))]
pub(crate) const NO_BACKEND: &str = "this build of syncws has no TLS backend: enable the `native-tls` or `rustls` feature of syncws";

/// The TLS configuration a client socket connects with.
#[derive(Clone, Debug)]
pub(crate) enum Connector {
    /// A native-tls connector (the platform's TLS library).
    #[cfg(feature = "native-tls")]
    Native(native_tls::TlsConnector),
    /// A rustls client configuration.
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ClientConfig>),
}

/// The TLS configuration a server accepts with.
#[derive(Clone)]
pub(crate) enum Acceptor {
    /// A native-tls acceptor (the platform's TLS library).
    #[cfg(feature = "native-tls")]
    Native(native_tls::TlsAcceptor),
    /// A rustls server configuration.
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ServerConfig>),
}

/// The connector of a client that was given none: native-tls when that backend is built
/// (it is the default feature), else rustls with its default roots.
pub(crate) fn default_connector() -> Result<Connector, String> {
    #[cfg(feature = "native-tls")]
    {
        native_tls::TlsConnector::new()
            .map(Connector::Native)
            .map_err(|e| e.to_string())
    }
    #[cfg(all(feature = "rustls", not(feature = "native-tls")))]
    {
        rustls::default_client_config().map(Connector::Rustls)
    }
    #[cfg(not(any(feature = "native-tls", feature = "rustls")))]
    {
        Err(NO_BACKEND.to_owned())
    }
}

/// A TLS session of either backend, as plain memory: ciphertext in and out, plaintext in and
/// out. None of its methods does I/O or blocks.
enum Session {
    #[cfg(feature = "native-tls")]
    Native(native::Session),
    #[cfg(feature = "rustls")]
    Rustls(rustls::Session),
}

// `match *self` with `ref mut` bindings, so that the matches are still valid (and empty) in a
// build with no backend, where `Session` has no variants.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, clippy::ptr_arg)
)]
impl Session {
    /// Takes ciphertext from the network; returns how much of it the session took (it may
    /// stop early once it has plaintext to hand out, or after the peer's close_notify).
    fn feed(&mut self, cipher: &[u8]) -> io::Result<usize> {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref mut s) => s.feed(cipher),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref mut s) => s.feed(cipher),
        }
    }

    /// Plaintext received: `Ok(0)` after the peer's close_notify, `WouldBlock` when the
    /// session needs more ciphertext.
    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref mut s) => s.read_plain(buf),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref mut s) => s.read_plain(buf),
        }
    }

    /// Encrypts all of `plain`; the records wait for [`take_output`](Self::take_output).
    fn write_plain(&mut self, plain: &[u8]) -> io::Result<()> {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref mut s) => s.write_plain(plain),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref mut s) => s.write_plain(plain),
        }
    }

    /// Appends all ciphertext waiting to go out to `out`.
    fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref mut s) => s.take_output(out),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref mut s) => s.take_output(out),
        }
    }

    /// Whether ciphertext is waiting to go out (records, an alert, a key update).
    fn has_output(&self) -> bool {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref s) => s.has_output(),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref s) => s.has_output(),
        }
    }

    /// Queues close_notify: we will send no more data.
    fn close_notify(&mut self) {
        match *self {
            #[cfg(feature = "native-tls")]
            Session::Native(ref mut s) => s.close_notify(),
            #[cfg(feature = "rustls")]
            Session::Rustls(ref mut s) => s.close_notify(),
        }
    }
}

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
/// or once the socket's close deadline, which runs from `close()`, has passed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stall {
    pub write_timeout: Option<Duration>,
    pub close_clock: Option<Arc<CloseClock>>,
}

impl Stall {
    /// Whether the close deadline has passed.
    pub(crate) fn close_expired(&self, now: Instant) -> bool {
        self.close_clock.as_ref().is_some_and(|c| c.expired(now))
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

/// Writes `a` then `b` on a socket whose send timeout is a `WRITE_SLICE`: a slice without
/// progress is retried until `stall` gives up. While both have bytes, one vectored write per
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
        let written = match (a.is_empty(), b.is_empty()) {
            (true, _) => tcp.write(b),
            (false, true) => tcp.write(a),
            (false, false) => tcp.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]),
        };
        let n = match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if stalled(&e) && !stall.give_up(last_progress) => continue,
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
            Err(e) if stalled(&e) => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        }
    }
    tcp.set_write_timeout(None)
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

#[cfg(any(feature = "native-tls", feature = "rustls"))]
fn io_err(e: io::Error, deadline_hit: impl FnOnce() -> Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => deadline_hit(),
        _ => Error::from(e),
    }
}

/// Reads handshake bytes from `tcp` by `deadline`: at least one, or an error (the peer's EOF
/// is one: a handshake cannot end that way).
#[cfg(any(feature = "native-tls", feature = "rustls"))]
fn handshake_read(
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
fn handshake_write(
    tcp: &TcpStream,
    bytes: &[u8],
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(), Error> {
    write_all_by(tcp, bytes, deadline).map_err(|e| io_err(e, on_timeout))
}

/// Splits a connection whose TLS handshake is done. `leftover` is ciphertext read during the
/// handshake that the session has not taken yet.
#[cfg_attr(not(any(feature = "native-tls", feature = "rustls")), allow(dead_code))]
fn split_tls(tcp: Arc<TcpStream>, session: Session, leftover: Vec<u8>) -> (ReadHalf, WriteHalf) {
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

/// Runs the client side of TLS for `domain`, to completion or `deadline`, then splits the
/// connection.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, unreachable_code)
)]
pub(crate) fn tls_connect(
    tcp: Arc<TcpStream>,
    connector: &Connector,
    domain: &str,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let (session, leftover) = match *connector {
        #[cfg(feature = "native-tls")]
        Connector::Native(ref c) => native::connect(&tcp, c, domain, deadline, &on_timeout)
            .map(|(s, rest)| (Session::Native(s), rest))?,
        #[cfg(feature = "rustls")]
        Connector::Rustls(ref c) => rustls::connect(&tcp, c, domain, deadline, &on_timeout)
            .map(|(s, rest)| (Session::Rustls(s), rest))?,
    };
    Ok(split_tls(tcp, session, leftover))
}

/// Runs the server side of TLS, to completion or `deadline`, then splits the connection.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, unreachable_code)
)]
pub(crate) fn tls_accept(
    tcp: Arc<TcpStream>,
    acceptor: &Acceptor,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let (session, leftover) = match *acceptor {
        #[cfg(feature = "native-tls")]
        Acceptor::Native(ref a) => native::accept(&tcp, a, deadline, &on_timeout)
            .map(|(s, rest)| (Session::Native(s), rest))?,
        #[cfg(feature = "rustls")]
        Acceptor::Rustls(ref c) => rustls::accept(&tcp, c, deadline, &on_timeout)
            .map(|(s, rest)| (Session::Rustls(s), rest))?,
    };
    Ok(split_tls(tcp, session, leftover))
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
