//! Why a connection was not upgraded ([`Refused`]), and what that means: the answer the
//! client gets (if any), how it is written, and what the server's statistics count it as. Each
//! refusal is counted once, by its reason, never by its status.

use std::net::TcpStream;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::Counters;
use super::places::Full;
use crate::driver::clock::deadline_after;
use crate::driver::platform;
use crate::driver::transport::{self, ReadHalf, WriteHalf};
use crate::driver::write;
use crate::error::Error;
use crate::header::Header;
use crate::proto::handshake::{self, Refusal, RefusalKind};

/// How long a refused connection is read (and what arrives thrown away) before it is closed.
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why a connection was not upgraded.
#[derive(Debug)]
pub(super) enum Refused {
    /// Evicted while it was still reading: answered (503) and counted by the evicting thread.
    Evicted,
    /// A trusted proxy's connection without a valid PROXY header: closed without an answer.
    ProxyHeader(String),
    /// The client's address is at `max_handshaking_per_ip`, every handshake there answering,
    /// when the PROXY header named it: a 503 written at once (before TLS: plain only).
    AddressFull(Full),
    /// The TLS handshake failed.
    Tls(Error),
    /// No whole request head came (a timeout, the client closed, a read error): no answer.
    NoRequest,
    /// The request is not a valid upgrade, or its origin is not allowed: the 4xx says which.
    Request(Refusal),
    /// The trusted proxy's forwarded header does not name the client: 400.
    Forwarded(String),
    /// The application's handler refused, with its status, reason and headers.
    Handler {
        status: u16,
        reason: String,
        headers: Vec<Header>,
    },
    /// The application's handler panicked: 500.
    HandlerPanicked,
    /// A cap on handshakes or open connections, in all or for the client's address: 503.
    Full(Full),
    /// The 101 could not be written (the client went away): already counted as accepted.
    SwitchFailed,
}

impl Refused {
    /// The statistic this refusal counts in, if the connection's own thread counts it.
    pub(super) fn counter<'c>(&self, c: &'c Counters) -> Option<&'c AtomicU64> {
        match self {
            Refused::Evicted | Refused::SwitchFailed => None,
            Refused::ProxyHeader(_) | Refused::Tls(_) | Refused::NoRequest => {
                Some(&c.refused_bad_handshake)
            }
            Refused::Forwarded(_) => Some(&c.refused_bad_handshake),
            Refused::Request(r) => Some(match r.kind {
                RefusalKind::Origin => &c.refused_origin,
                RefusalKind::Request => &c.refused_bad_handshake,
            }),
            Refused::Handler { .. } | Refused::HandlerPanicked => Some(&c.refused_by_handler),
            Refused::AddressFull(_) => Some(&c.refused_per_address),
            Refused::Full(full) => Some(full_counter(*full, c)),
        }
    }

    /// The HTTP answer, for the refusals that get one once the request could be read.
    fn answer(self) -> Option<(Refusal, Vec<Header>)> {
        let refusal = |status, reason| Refusal {
            status,
            reason,
            kind: RefusalKind::Request,
        };
        match self {
            Refused::Request(r) => Some((r, Vec::new())),
            Refused::Forwarded(why) => Some((refusal(400, format!("Bad Request: {why}")), vec![])),
            Refused::Handler {
                status,
                reason,
                headers,
            } => Some((refusal(status, reason), headers)),
            Refused::HandlerPanicked => {
                Some((refusal(500, "Internal Server Error".into()), Vec::new()))
            }
            Refused::Full(full) => Some((refusal(503, full.reason()), Vec::new())),
            _ => None,
        }
    }

    /// What the log says of it: a full server is worth a warning, the rest is routine.
    pub(super) fn log(&self, peer: Option<std::net::SocketAddr>) {
        match self {
            Refused::Full(Full::Connections(_)) => {
                log::warn!("refusing an upgrade: max_connections are open")
            }
            // Logged where they happen (a panic as an error), or by the evicting thread.
            Refused::HandlerPanicked | Refused::Evicted | Refused::SwitchFailed => {}
            Refused::ProxyHeader(why) => {
                log::debug!("refusing a connection from a trusted proxy {peer:?}: {why}")
            }
            Refused::AddressFull(full) | Refused::Full(full) => {
                log::debug!("refusing a connection from {peer:?}: {}", full.reason())
            }
            Refused::Tls(e) => log::debug!("TLS handshake with {peer:?} failed: {e}"),
            Refused::NoRequest => log::debug!("no upgrade request from {peer:?}"),
            Refused::Request(r) => {
                log::debug!(
                    "refusing a request from {peer:?}: {} {}",
                    r.status,
                    r.reason
                )
            }
            Refused::Forwarded(why) => {
                log::debug!("refusing a request from a trusted proxy {peer:?}: {why}")
            }
            Refused::Handler { status, .. } => {
                log::debug!("the handler refused {peer:?} with {status}")
            }
        }
    }
}

/// The statistic a cap counts in: per address, or in all.
pub(super) fn full_counter(full: Full, c: &Counters) -> &AtomicU64 {
    match full {
        Full::ConnectionsPerIp(_) | Full::HandshakingPerIp(_) => &c.refused_per_address,
        Full::Connections(_) | Full::Handshaking(_) => &c.refused_cap,
    }
}

/// Ends a refused connection as `refused` says. With the request's halves (the request was
/// read, or the TLS handshake done), an HTTP answer with the linger; before them, on the bare
/// connection `tcp`.
pub(super) fn end(
    refused: Refused,
    tcp: &TcpStream,
    halves: Option<(&mut ReadHalf, &mut WriteHalf)>,
    tls: bool,
) {
    match refused {
        Refused::AddressFull(full) => refuse_at_once(tcp, tls, full),
        Refused::ProxyHeader(_) => platform::sockets::shut_down(tcp),
        // A TLS refusal (a certificate the server does not take): its alert is on its way, and
        // the client's last records may be unread. Closing now would reset the connection, and
        // a client that reads after the reset (always on Windows) loses the alert that says
        // why: linger as an HTTP refusal does.
        Refused::Tls(Error::Tls(_)) => {
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            transport::drain_until_eof(tcp, Some(deadline_after(REFUSAL_LINGER)));
        }
        other => {
            if let (Some((read, write)), Some((refusal, headers))) = (halves, other.answer()) {
                answer(read, write, &refusal, &headers);
            }
        }
    }
}

/// Answers an upgrade request with an HTTP error and closes the connection.
///
/// The close lingers: closing a socket with unread input makes the kernel send a reset, which
/// can destroy the answer before the client reads it (a client still sending a huge or endless
/// head, say). So what the client goes on sending is read and dropped, until it closes or for
/// at most `REFUSAL_LINGER`.
fn answer(read: &mut ReadHalf, write: &mut WriteHalf, refusal: &Refusal, headers: &[Header]) {
    // A client that does not read gets the linger to take the answer, and no more.
    let until = deadline_after(REFUSAL_LINGER);
    let head = handshake::encode_refusal(refusal, headers);
    write::handshake::refusal(write, &head, until);
    read.drain_until_eof(Some(until));
}

/// A short 503 written without waiting (best effort: it goes into the socket buffer or not at
/// all), then a shutdown: for a connection the server will not give a thread to. Only on plain
/// connections: a TLS client would read it as garbage.
pub(super) fn refuse_at_once(tcp: &TcpStream, tls: bool, why: Full) {
    if tls {
        platform::sockets::shut_down(tcp);
        return;
    }
    let refusal = Refusal {
        status: 503,
        reason: why.reason(),
        kind: RefusalKind::Request,
    };
    write::handshake::at_once(tcp, &handshake::encode_refusal(&refusal, &[]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn counted(refused: Refused) -> (u64, u64, u64) {
        let c = Counters::default();
        if let Some(counter) = refused.counter(&c) {
            Counters::add(counter);
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            load(&c.refused_origin),
            load(&c.refused_bad_handshake),
            load(&c.refused_by_handler),
        )
    }

    /// A refusal is counted by its reason, never by its status: a 403 that is not about the
    /// origin is a bad handshake (the count once tested `status == 403`).
    #[test]
    fn refusals_are_counted_by_their_kind_not_their_status() {
        let refusal = |kind| Refusal {
            status: 403,
            reason: "Forbidden".into(),
            kind,
        };
        assert_eq!(
            counted(Refused::Request(refusal(RefusalKind::Origin))),
            (1, 0, 0)
        );
        assert_eq!(
            counted(Refused::Request(refusal(RefusalKind::Request))),
            (0, 1, 0)
        );
        let handler = Refused::Handler {
            status: 403,
            reason: "Forbidden".into(),
            headers: Vec::new(),
        };
        assert_eq!(counted(handler), (0, 0, 1));
        assert_eq!(counted(Refused::Evicted), (0, 0, 0));
    }
}
