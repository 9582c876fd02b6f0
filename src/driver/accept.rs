//! The server role's way in: the accept loop, then for each connection TLS, the upgrade
//! request and the handler's answer.

use super::admission::Full;
use super::clock::{deadline_after, timeout_deadline};
use super::head::{HeadError, read_head};
use super::outbox::Inbox;
use super::platform;
use super::pool::{self, Job, ThreadRole};
use super::reader::{Opened, Reader};
use super::serve::{
    Admit, ConnectionGuard, Counters, HandshakeTicket, Serve, Unmoved, refuse_at_once,
};
use super::shared::Shared;
use super::transport::{self, ReadHalf, WriteHalf};
use crate::error::Error;
use crate::header::Header;
use crate::proto::Role;
use crate::proto::{forwarded, handshake};
use crate::response::Response;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How long a refused connection is read (and what arrives thrown away) before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Answers an upgrade request with an HTTP error and closes the connection.
///
/// The close lingers: closing a socket with unread input makes the kernel send a reset, which
/// can destroy the answer before the client reads it (a client still sending a huge or endless
/// head, say). So what the client goes on sending is read and dropped, until it closes or for
/// at most `REFUSAL_LINGER`.
fn refuse(
    read: &mut ReadHalf,
    write: &mut WriteHalf,
    status: u16,
    reason: String,
    headers: &[Header],
) {
    let refusal = handshake::Refusal { status, reason };
    // A client that does not read gets the linger to take the answer, and no more.
    let until = deadline_after(REFUSAL_LINGER);
    let _ = write.write_all_by(&handshake::encode_refusal(&refusal, headers), until);
    write.finish_by(until);
    read.drain_until_eof(Some(until));
}

/// Runs one accepted server connection on a pooled reader thread.
///
/// `ticket` is its place among the handshaking connections, given up once it is upgraded.
fn spawn_server(
    tcp: Arc<TcpStream>,
    ticket: HandshakeTicket,
    server: Arc<Serve>,
) -> std::io::Result<()> {
    let keep_alive = server.config.thread_keep_alive;
    let stack = server.config.thread_stack_size;
    let job: Job = Box::new(move || {
        run_server(tcp, ticket, server);
        keep_alive
    });
    pool::spawn(ThreadRole::Reader, stack, job).map_err(|(e, _)| e)
}

fn run_server(tcp: Arc<TcpStream>, ticket: HandshakeTicket, server: Arc<Serve>) {
    let mut ticket = ticket;
    let upgraded = upgrade(tcp, &mut ticket, &server);
    drop(ticket);
    if let Some(u) = upgraded {
        let config = server.config.clone();
        let mut reader = u.reader;
        reader.run_open(u.read, u.write, u.inbox, &config, u.open);
        drop(u.established);
    }
}

/// An upgraded connection, ready for its read loop.
struct Upgraded {
    reader: Reader,
    read: ReadHalf,
    write: WriteHalf,
    inbox: Inbox,
    open: Opened,
    /// Counts it among the established connections until the read loop ends.
    established: ConnectionGuard,
}

/// TLS, the upgrade request and the handler's answer; `None` when the connection was refused
/// or failed. Never inlined, so its locals are off the stack under the read loop.
#[inline(never)]
fn upgrade(
    tcp: Arc<TcpStream>,
    ticket: &mut HandshakeTicket,
    server: &Arc<Serve>,
) -> Option<Upgraded> {
    let config = server.config.clone();
    let _ = tcp.set_nodelay(true);
    crate::config::apply_tcp_keepalive(&tcp, config.tcp_keepalive);
    let deadline = timeout_deadline(config.read_timeout);
    let on_timeout = || Error::ReadTimeout(config.read_timeout);
    // Behind a trusted proxy the client is who its PROXY header says (read before TLS, which
    // the header precedes), else the TCP peer.
    let mut peer_addr = tcp.peer_addr().ok();
    let forwarding = &server.forwarding;
    let from_proxy = peer_addr.is_some_and(|p| forwarding.trusted.contains(p.ip()));
    if forwarding.proxy_protocol && from_proxy {
        match super::proxy_header::read(&tcp, deadline) {
            Ok(Some(client)) => {
                peer_addr = Some(client);
                // The client is known before TLS and the head: its handshake counts under its
                // own address from here, with that address's cap.
                match ticket.rekey(client) {
                    Ok(()) => {}
                    Err(Unmoved::Evicted) => return None,
                    Err(Unmoved::Full(full)) => {
                        log::debug!("refusing a proxied client: {}", full.reason());
                        Counters::add(&server.counters.refused_per_address);
                        refuse_at_once(&tcp, server.tls.is_some(), full);
                        return None;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::debug!("refusing a connection from a trusted proxy: {e}");
                // An evicted handshake is counted as evicted, not again here.
                if ticket.answering() {
                    Counters::add(&server.counters.refused_bad_handshake);
                }
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                return None;
            }
        }
    }
    let raw = tcp.clone();
    let halves = match &server.tls {
        None => Ok(transport::plain(tcp)),
        Some(acceptor) => transport::tls_accept(tcp, acceptor, deadline, on_timeout),
    };
    let (mut read, mut write) = match halves {
        Ok(h) => h,
        Err(e) => {
            log::debug!("server handshake failed: {e}");
            // An evicted handshake is counted as evicted, not again here.
            if ticket.answering() {
                Counters::add(&server.counters.refused_bad_handshake);
                // A TLS refusal (a certificate the server does not take): its alert is on its
                // way, and the client's last records may be unread. Closing now would reset
                // the connection, and a client that reads after the reset (always on Windows)
                // loses the alert that says why: linger as an HTTP refusal does.
                if matches!(e, Error::Tls(_)) {
                    let _ = raw.shutdown(std::net::Shutdown::Write);
                    transport::drain_until_eof(&raw, Some(deadline_after(REFUSAL_LINGER)));
                }
            }
            return None;
        }
    };
    let parse = |head: &[u8]| handshake::parse_request(head, &server.policy);
    let head = read_head(&mut read, deadline, parse);
    // Evicted while the head was read: the accept loop answered 503 and shut the socket.
    if !ticket.answering() {
        return None;
    }
    let (hello, leftover) = match head {
        Ok(head) => head,
        Err(HeadError::Parse(r)) => {
            let counter = if r.status == 403 {
                &server.counters.refused_origin
            } else {
                &server.counters.refused_bad_handshake
            };
            Counters::add(counter);
            refuse(&mut read, &mut write, r.status, r.reason, &[]);
            return None;
        }
        Err(_) => {
            Counters::add(&server.counters.refused_bad_handshake);
            return None;
        }
    };
    let handshake::ClientHello {
        url,
        headers: request_headers,
        protocols,
        terms,
    } = hello;
    // The forwarded header counts only when the hop that sent it is a trusted proxy (after a
    // PROXY header, the hop is the client it named: its headers are ignored).
    if let Some(which) = forwarding.header
        && let Some(hop) = peer_addr
        && forwarding.trusted.contains(hop.ip())
    {
        match forwarded::client_from_headers(&request_headers, which, &forwarding.trusted) {
            Ok(Some(ip)) => {
                let client = SocketAddr::new(ip, 0);
                peer_addr = Some(client);
                // The rest of its handshake (the handler, the answer) counts under the client.
                if let Err(Unmoved::Full(full)) = ticket.rekey(client) {
                    Counters::add(&server.counters.refused_per_address);
                    log::debug!("refusing a forwarded client: {}", full.reason());
                    refuse(&mut read, &mut write, 503, full.reason(), &[]);
                    return None;
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::debug!("refusing a request from a trusted proxy: {e}");
                Counters::add(&server.counters.refused_bad_handshake);
                let reason = format!("Bad Request: {e}");
                refuse(&mut read, &mut write, 400, reason, &[]);
                return None;
            }
        }
    }
    let request = crate::request::Request::from_parts(url, request_headers, protocols, peer_addr);
    // The handler is application code: a panic in it answers this client with 500 and
    // leaves the server (and this pooled thread) running.
    let answer = catch_unwind(AssertUnwindSafe(|| (server.handler)(&request)));
    let answer = match answer {
        Ok(answer) => answer,
        Err(p) => {
            log::error!(
                "the accept handler panicked: {}",
                crate::panics::message(&*p)
            );
            Counters::add(&server.counters.refused_by_handler);
            refuse(
                &mut read,
                &mut write,
                500,
                "Internal Server Error".into(),
                &[],
            );
            return None;
        }
    };
    let (subprotocol, headers, bind) = match answer {
        Admit::Upgrade {
            subprotocol,
            headers,
            bind,
        } => (subprotocol, headers, bind),
        Admit::Reject {
            status,
            reason,
            headers,
        } => {
            Counters::add(&server.counters.refused_by_handler);
            refuse(&mut read, &mut write, status, reason, &headers);
            return None;
        }
    };
    let established = match server.try_establish(peer_addr, ticket) {
        Ok(established) => established,
        Err(full) => {
            let counter = match full {
                Full::ConnectionsPerIp(_) | Full::HandshakingPerIp(_) => {
                    &server.counters.refused_per_address
                }
                Full::Connections(_) | Full::Handshaking(_) => &server.counters.refused_cap,
            };
            Counters::add(counter);
            // A host at its own cap is routine under load; the server full is worth a warning.
            if matches!(full, Full::Connections(_)) {
                log::warn!("refusing an upgrade: max_connections are open");
            } else {
                log::debug!("refusing an upgrade from {peer_addr:?}: {}", full.reason());
            }
            refuse(&mut read, &mut write, 503, full.reason(), &[]);
            return None;
        }
    };
    let handshake::Accepted {
        response: accept,
        protocol,
        deflate,
    } = handshake::accept(&terms, request.subprotocols(), subprotocol, &headers);
    // By the handshake deadline: a client that never reads cannot hold this thread with a
    // large answer (the handler's headers).
    // Counted before the 101 is written, as `open` is (a client that has read it sees itself
    // counted).
    Counters::add(&server.counters.accepted);
    if write.write_all_by(&accept, deadline).is_err() {
        return None;
    }
    let _ = read.tcp.set_read_timeout(None);
    let (shared, inbox) = Shared::new(request, Role::Server, &config);
    // The client's address, not a proxy's, for `WebSocket::peer_addr`.
    shared.attach(&read.tcp, peer_addr);
    shared.enter_reader();
    server.track(&shared);
    let response = Response {
        status: 101,
        reason: "Switching Protocols".into(),
        headers: Vec::new(),
        subprotocol: protocol,
        body: Vec::new(),
        url: Some(shared.request.url().clone()),
    };
    let callbacks = bind(&shared);
    let reader = Reader::new(shared, callbacks, Role::Server, &config);
    let open = Opened {
        response,
        leftover,
        deflate,
    };
    Some(Upgraded {
        reader,
        read,
        write,
        inbox,
        open,
        established,
    })
}

/// Connections the kernel completes and queues for the accept loop. std's 128 overflows under a
/// flood of connects, and then the kernel drops SYNs from everyone, well-behaved clients
/// included, who wait a second or more to retry. The kernel caps it at `net.core.somaxconn`
/// (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: i32 = 1024;

/// `TcpListener::bind`, with [`LISTEN_BACKLOG`]: the first of `addr`'s addresses that binds.
pub(crate) fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let listener = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .and_then(|s| {
            // As std does on Unix: a restarted server can bind while old connections linger.
            #[cfg(unix)]
            s.set_reuse_address(true)?;
            s.bind(&addr.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(s)
        });
        match listener {
            Ok(s) => return Ok(s.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// Accepts connections until the server stops, each handed to a pooled reader thread.
pub(crate) fn accept_loop(listener: TcpListener, shared: Arc<Serve>) {
    loop {
        let conn = listener.accept();
        if shared.is_stopping() {
            break;
        }
        let (tcp, peer) = match conn {
            Ok(t) => t,
            Err(e) => {
                log::warn!("accept failed: {e}");
                // Out of descriptors and the like: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        platform::sockets::prepare(&tcp);
        let tcp = Arc::new(tcp);
        // `None`: refused at once, every place held by a handshake that is answering.
        let Some(ticket) = shared.begin_handshake(tcp.clone(), peer) else {
            continue;
        };
        if let Err(e) = spawn_server(tcp, ticket, shared.clone()) {
            log::error!("could not start a connection thread: {e}");
        }
    }
}
