//! The writes of a handshake, before a socket's outbox exists: an HTTP head (the client's
//! request, the server's 101 or refusal) written whole by a deadline, the end of a refused
//! connection's output, and the 503 a server writes at once to a connection it gives no thread
//! to.

use std::io;
use std::net::TcpStream;
use std::time::Instant;

use crate::driver::platform;
use crate::driver::transport::WriteHalf;

/// Writes `head` whole, by `deadline`: a peer that accepts TCP and never reads cannot hold the
/// thread, however large the head (the request's headers, the handler's). A stall at the
/// deadline is an error [`is_stall`](crate::driver::transport::is_stall) recognises.
pub(crate) fn head(write: &mut WriteHalf, head: &[u8], deadline: Instant) -> io::Result<()> {
    write.write_all_by(head, deadline)
}

/// Writes a refusal's `head`, then ends the output (close_notify under TLS, a FIN), all by
/// `deadline`; best effort, the connection is being closed anyway.
pub(crate) fn refusal(write: &mut WriteHalf, head: &[u8], deadline: Instant) {
    let _ = write.write_all_by(head, deadline);
    write.finish_by(deadline);
}

/// Writes `head` (a short 503) without waiting, from a thread that must not wait (the accept
/// loop, an evicting thread), then shuts the connection down: what does not fit in the socket's
/// buffer is dropped.
pub(crate) fn at_once(tcp: &TcpStream, head: &[u8]) {
    platform::sockets::send_refusal(tcp, head);
    platform::sockets::shut_down(tcp);
}
