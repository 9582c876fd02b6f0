//! Socket calls that differ per OS: writing without waiting, and SIGPIPE.
//!
//! **Writing without waiting.** A sender whose socket's writer thread sleeps writes its small
//! message itself, at once (`outbox`'s inline write), and the accept loop answers a connection
//! it will not serve with a short 503: both need a write that never waits, on a socket whose
//! reader thread is blocked in a read at the same time.
//!
//! - Linux has it per call: `MSG_DONTWAIT` on that one `send`, so the socket the reader
//!   blocks on stays blocking.
//! - Apple's `send(2)` documents no such flag, and XNU's `sosendcheck`
//!   (`bsd/kern/uipc_socket.c`) returns `EWOULDBLOCK` for a full send buffer only when the
//!   socket itself is non-blocking: `MSG_DONTWAIT` there does not keep a send from waiting.
//! - Windows has no per-call flag at all.
//! - Switching the socket to non-blocking mode for one write (`O_NONBLOCK`, `FIONBIO`) would
//!   make the reader's blocking reads on the same socket fail with `WouldBlock` meanwhile.
//!
//! So outside Linux senders never write inline ([`WRITES_WITHOUT_WAITING`] is false): they
//! queue, and the writer thread, which may wait, writes. What that costs is measured on Linux
//! (`--cfg syncws_portable_sockets` takes the Windows paths of this module there, for tests and
//! benchmarks; `docs/benchmarks.md`). The accept
//! loop's 503 goes to a connection the server has not written to yet, whose send buffer is
//! empty: a plain write with a short write timeout takes it at once.
//!
//! **Waking a thread blocked on the socket.** `cancel()`, a failure and the timers end a
//! socket by shutting its connection down, which on Linux and macOS makes the reader's blocked
//! read (and a writer's blocked write) return at once. On Windows it does not (rust-lang/rust
//! issue 121594: a thread in `recv` stays there until the peer acts); `CancelIoEx` on the socket
//! does, and [`shut_down`] calls it after the shutdown, so a read that starts later sees the
//! shutdown and one already waiting is cancelled (`ERROR_OPERATION_ABORTED`).
//!
//! **A write that timed out.** The writer's blocking writes wait in slices (the socket's send
//! timeout) and look at their deadlines between them, resuming the write after each slice.
//! That is sound where a timed-out `send` returns what it wrote (Unix); on Windows "if a send or
//! receive operation times out on a socket, the socket state is indeterminate, and should not
//! be used" (`SO_SNDTIMEO`, Winsock's `setsockopt` documentation): part of the data may have
//! gone out. So there ([`TIMED_OUT_WRITES_RESUME`] false) each write waits for the whole time
//! left, and a timeout ends the socket.
//!
//! **SIGPIPE.** Writing to a connection the peer has reset raises SIGPIPE on Unix, which kills
//! a process that does not ignore it (Rust programs ignore it by default; a C host embedding a
//! Rust library may not). Linux: `MSG_NOSIGNAL` on our own `send` calls (std passes it on its
//! writes). Apple: `SO_NOSIGPIPE` on every socket, set by [`prepare`] (std and socket2 set it on
//! sockets they create, and an accepted socket inherits it from its listener; set here as
//! well, so that no socket depends on where it came from). Windows has no SIGPIPE.

use std::io;
use std::net::TcpStream;
#[cfg(not(all(target_os = "linux", not(syncws_portable_sockets))))]
use std::time::Duration;

/// Whether a write can be made that takes what the socket's buffer has room for and never
/// waits (see the module's docs): true on Linux.
pub(crate) const WRITES_WITHOUT_WAITING: bool =
    cfg!(all(target_os = "linux", not(syncws_portable_sockets)));

/// Whether the writer may resume a blocking write after its send timeout fired (see the
/// module's docs): false on Windows (and with `--cfg syncws_portable_sockets`, so that the
/// Windows path can be tested and measured on Linux).
pub(crate) const TIMED_OUT_WRITES_RESUME: bool = cfg!(not(any(windows, syncws_portable_sockets)));

/// Readies a new connection (accepted or connected) for the rest of the driver.
pub(crate) fn prepare(tcp: &TcpStream) {
    #[cfg(target_vendor = "apple")]
    if let Err(e) = socket2::SockRef::from(tcp).set_nosigpipe(true) {
        log::debug!("could not set SO_NOSIGPIPE: {e}");
    }
    #[cfg(not(target_vendor = "apple"))]
    let _ = tcp;
}

/// Shuts the connection down both ways and ends the blocking reads and writes other threads
/// are in on it (see the module's docs for Windows).
pub(crate) fn shut_down(tcp: &TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    #[cfg(windows)]
    cancel_pending_io(tcp);
}

/// `CancelIoEx` on the socket: every I/O operation pending on it, from any thread, ends with
/// `ERROR_OPERATION_ABORTED`.
#[cfg(windows)]
#[allow(unsafe_code)]
fn cancel_pending_io(tcp: &TcpStream) {
    use std::os::windows::io::AsRawSocket;
    // A SOCKET is a kernel handle (Winsock's base provider: std creates its sockets with
    // WSASocketW, and accept's are the same kind), which CancelIoEx takes.
    let handle = tcp.as_raw_socket() as usize as windows_sys::Win32::Foundation::HANDLE;
    // SAFETY: `handle` is `tcp`'s socket, open for as long as the borrow of `tcp` lasts, and
    // a null OVERLAPPED pointer asks for every operation on it, as the API allows; the call
    // reads and writes no memory of ours. It fails (returns 0) when nothing is pending, which
    // is no error here.
    unsafe {
        windows_sys::Win32::System::IO::CancelIoEx(handle, std::ptr::null());
    }
}

/// Writes what the socket takes now without waiting; returns the bytes written (0 when its
/// buffer is full). Called only where [`WRITES_WITHOUT_WAITING`] holds.
#[cfg(all(target_os = "linux", not(syncws_portable_sockets)))]
pub(crate) fn send_now(tcp: &TcpStream, buf: &[u8]) -> io::Result<usize> {
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

/// Never called here ([`WRITES_WITHOUT_WAITING`] is false): takes nothing, so a caller would
/// leave everything to the writer thread.
#[cfg(not(all(target_os = "linux", not(syncws_portable_sockets))))]
pub(crate) fn send_now(_tcp: &TcpStream, _buf: &[u8]) -> io::Result<usize> {
    Ok(0)
}

/// How long the portable path lets a refusal's write take: one that waits at all is dropped.
#[cfg(not(all(target_os = "linux", not(syncws_portable_sockets))))]
const REFUSAL_WRITE: Duration = Duration::from_millis(50);

/// Writes a short answer (a 503) to a connection the server has written nothing to, from a
/// thread that must not wait (the accept loop): best effort, what does not fit is dropped. The
/// caller shuts the connection down next.
pub(crate) fn send_refusal(tcp: &TcpStream, bytes: &[u8]) {
    #[cfg(all(target_os = "linux", not(syncws_portable_sockets)))]
    let _ = send_now(tcp, bytes);
    #[cfg(not(all(target_os = "linux", not(syncws_portable_sockets))))]
    {
        use std::io::Write;
        if tcp.set_write_timeout(Some(REFUSAL_WRITE)).is_ok() {
            let _ = (&*tcp).write(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_refusal_reaches_the_peer_and_a_prepared_socket_works() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        prepare(&server);
        send_refusal(&server, b"HTTP/1.1 503 x\r\n\r\n");
        shut_down(&server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 503 x\r\n\r\n");
    }

    #[test]
    fn send_now_never_waits_for_a_peer_that_does_not_read() {
        if !WRITES_WITHOUT_WAITING {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Until the buffers are full: then it takes nothing, at once.
        let chunk = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = send_now(&server, &chunk).unwrap();
            total += n;
            if n == 0 {
                break;
            }
            assert!(total < 1 << 30, "the buffers never filled");
        }
        assert!(total > 0);
    }
}

#[cfg(test)]
mod waking {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::Arc;

    /// What `cancel()` relies on, on every platform: a reader blocked on a connection that gets
    /// nothing is woken by `shut_down` from another thread (on Windows only through CancelIoEx).
    #[test]
    fn shut_down_wakes_a_thread_blocked_in_a_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Arc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let (_server, _) = listener.accept().unwrap();
        let (started, is_started) = crossbeam_channel::bounded(1);
        let (done, is_done) = crossbeam_channel::bounded(1);
        let reader = client.clone();
        std::thread::spawn(move || {
            let _ = started.send(());
            let r = (&*reader).read(&mut [0u8; 16]);
            let _ = done.send(r.map_err(|e| e.kind()));
        });
        is_started.recv().unwrap();
        // However long the reader takes to block: a read that starts after the shutdown ends
        // at once too.
        shut_down(&client);
        let ended = is_done.recv_timeout(std::time::Duration::from_secs(5));
        assert!(ended.is_ok(), "the blocked read was not woken");
    }
}
