//! One accepted connection's way to an open socket, on its own pooled thread, as named steps
//! in the order they happen:
//!
//! 1. [`proxy_header`](Conn::proxy_header): from a trusted proxy that sends one, the PROXY
//!    header names the client (it precedes TLS);
//! 2. [`tls`](Conn::tls): the TLS handshake, or the plain halves;
//! 3. [`request`](Conn::request): the upgrade request's head, read and checked by the pure
//!    handshake code; from here the connection can no longer be evicted;
//! 4. [`forwarded`](Conn::forwarded): from a trusted proxy, the header that names the client;
//! 5. [`handler`](Conn::handler): the application's decision;
//! 6. [`establish`](Conn::establish): a place among the open connections;
//! 7. [`switch`](Conn::switch): the 101, and the socket its read loop runs.
//!
//! Each step either moves on or says why the connection is turned away ([`Refused`]); one
//! place, [`Conn::refuse`], counts and answers every refusal.

use std::net::{SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use super::refusal::{self, Refused};
use super::ticket::{ConnectionGuard, HandshakeTicket, Unmoved};
use super::{Bind, Counters, Decision, Opening, Serve, proxy_header};
use crate::driver::clock::timeout_deadline;
use crate::driver::head::{HeadError, read_head};
use crate::driver::pool::{self, Job, ThreadRole};
use crate::driver::read::{Opened, Reader};
use crate::driver::socket::Socket;
use crate::driver::transport::{self, ReadHalf, WriteHalf};
use crate::driver::write::{self, WriterState};
use crate::error::Error;
use crate::header::Header;
use crate::proto::Role;
use crate::proto::{forwarded, handshake};
use crate::request::Request;
use crate::response::Response;

/// Runs one accepted connection on a pooled reader thread.
///
/// `ticket` is its place among the handshaking connections, given up once it is upgraded.
pub(super) fn spawn(
    tcp: Arc<TcpStream>,
    ticket: HandshakeTicket,
    server: Arc<Serve>,
) -> std::io::Result<()> {
    let keep_alive = server.config.thread_keep_alive;
    let stack = server.config.thread_stack_size;
    let job: Job = Box::new(move || {
        run(tcp, ticket, server);
        keep_alive
    });
    pool::spawn(ThreadRole::Reader, stack, job).map_err(|(e, _)| e)
}

fn run(tcp: Arc<TcpStream>, mut ticket: HandshakeTicket, server: Arc<Serve>) {
    let upgraded = upgrade(tcp, &mut ticket, &server);
    // The handshake is over: its place goes to the next connection.
    drop(ticket);
    if let Some(u) = upgraded {
        let mut reader = u.reader;
        reader.run_open(u.read, u.write, u.writer_state, &server.config, u.open);
        drop(u.established);
    }
}

/// An upgraded connection, ready for its read loop.
struct Upgraded {
    reader: Reader,
    read: ReadHalf,
    write: WriteHalf,
    writer_state: WriterState,
    open: Opened,
    /// Counts it among the established connections until the read loop ends.
    established: ConnectionGuard,
}

/// What the steps so far know of a connection.
struct Conn<'a> {
    server: &'a Arc<Serve>,
    tcp: Arc<TcpStream>,
    ticket: &'a mut HandshakeTicket,
    /// The handshake's deadline, for every step (`handshake_timeout` from the accept).
    deadline: Instant,
    /// The client's address: the TCP peer's, or the one a trusted proxy named.
    client: Option<SocketAddr>,
}

/// The steps in order; `None` when the connection was turned away (answered, counted and
/// closed by [`Conn::refuse`]). Never inlined, so its locals are off the stack under the read
/// loop.
#[inline(never)]
fn upgrade(
    tcp: Arc<TcpStream>,
    ticket: &mut HandshakeTicket,
    server: &Arc<Serve>,
) -> Option<Upgraded> {
    let _ = tcp.set_nodelay(true);
    crate::config::apply_tcp_keepalive(&tcp, server.config.tcp_keepalive);
    let mut conn = Conn {
        server,
        client: tcp.peer_addr().ok(),
        tcp,
        ticket,
        deadline: timeout_deadline(server.config.handshake_timeout),
    };
    if let Err(refused) = conn.proxy_header() {
        conn.refuse(refused, None);
        return None;
    }
    let (mut read, mut write) = match conn.tls() {
        Ok(halves) => halves,
        Err(refused) => {
            conn.refuse(refused, None);
            return None;
        }
    };
    match conn.upgrade_request(&mut read, &mut write) {
        Ok(switched) => Some(Upgraded {
            reader: switched.reader,
            read,
            write,
            writer_state: switched.writer_state,
            open: switched.open,
            established: switched.established,
        }),
        Err(refused) => {
            conn.refuse(refused, Some((&mut read, &mut write)));
            None
        }
    }
}

/// The 101 an upgrade is answered with: its bytes, what the socket opens with, and how its
/// callbacks are made.
struct Answer {
    bytes: Vec<u8>,
    open: Opened,
    bind: Bind,
}

/// What [`Conn::switch`] makes: the socket, without its halves.
struct Switched {
    reader: Reader,
    writer_state: WriterState,
    open: Opened,
    established: ConnectionGuard,
}

impl Conn<'_> {
    /// Whether the connection comes from a proxy whose word about the client is taken.
    fn comes_through_trusted_proxy(&self) -> bool {
        let trusted = &self.server.forwarding.trusted;
        self.client.is_some_and(|c| trusted.contains(c.ip()))
    }

    /// Step 1. Behind a trusted proxy that sends a PROXY header, the client is who it names:
    /// its handshake counts under that address from here, with that address's cap.
    fn proxy_header(&mut self) -> Result<(), Refused> {
        if !self.server.forwarding.proxy_protocol || !self.comes_through_trusted_proxy() {
            return Ok(());
        }
        match proxy_header::read(&self.tcp, self.deadline) {
            Ok(Some(client)) => {
                self.client = Some(client);
                self.ticket.rekey(client).map_err(|unmoved| match unmoved {
                    Unmoved::Evicted => Refused::Evicted,
                    Unmoved::Full(full) => Refused::AddressFull(full),
                })
            }
            // The proxy's own connection (a health check): it keeps its address.
            Ok(None) => Ok(()),
            Err(why) => Err(Refused::ProxyHeader(why)),
        }
    }

    /// Step 2. The TLS handshake (by the deadline), or the plain connection's halves.
    fn tls(&self) -> Result<(ReadHalf, WriteHalf), Refused> {
        let tcp = self.tcp.clone();
        match &self.server.tls {
            None => Ok(transport::plain(tcp)),
            Some(acceptor) => {
                let timeout = self.server.config.handshake_timeout;
                transport::tls_accept(tcp, acceptor, self.deadline, || Error::ReadTimeout(timeout))
                    .map_err(Refused::Tls)
            }
        }
    }

    /// Steps 3 to 7, once the halves exist: a refusal from here on can be answered in HTTP.
    fn upgrade_request(
        &mut self,
        read: &mut ReadHalf,
        write: &mut WriteHalf,
    ) -> Result<Switched, Refused> {
        let (hello, leftover) = self.request(read)?;
        let handshake::ClientHello {
            url,
            headers,
            protocols,
            terms,
        } = hello;
        self.forwarded(&headers)?;
        let request = Request::from_parts(url, headers, protocols, self.client);
        let (subprotocol, headers, bind) = self.handler(&request)?;
        let established = self.establish()?;
        let handshake::Accepted {
            response,
            protocol,
            deflate,
        } = handshake::accept(&terms, request.subprotocols(), subprotocol, &headers);
        let answer = Answer {
            bytes: response,
            open: Opened {
                response: Response {
                    status: 101,
                    reason: "Switching Protocols".into(),
                    headers: Vec::new(),
                    subprotocol: protocol,
                    body: Vec::new(),
                    url: Some(request.url().clone()),
                },
                leftover,
                deflate,
            },
            bind,
        };
        self.switch(read, write, request, answer, established)
    }

    /// Step 3. The upgrade request's head, by the deadline, checked by the pure handshake
    /// code (method, version, headers, origin, extensions). Once it is read the connection
    /// moves on to answering, unless it was evicted meanwhile.
    fn request(
        &mut self,
        read: &mut ReadHalf,
    ) -> Result<(handshake::ClientHello, Vec<u8>), Refused> {
        let policy = &self.server.policy;
        let head = read_head(read, self.deadline, |head| {
            handshake::parse_request(head, policy)
        });
        // Evicted while the head was read: the evicting thread answered 503 and shut the socket.
        if !self.ticket.answering() {
            return Err(Refused::Evicted);
        }
        head.map_err(|e| match e {
            HeadError::Parse(refusal) => Refused::Request(refusal),
            _ => Refused::NoRequest,
        })
    }

    /// Step 4. The forwarded header counts only when the hop that sent it is a trusted proxy
    /// (after a PROXY header the hop is the client it named: its headers are ignored). The
    /// client it names is who the rest of the handshake counts under.
    fn forwarded(&mut self, headers: &[Header]) -> Result<(), Refused> {
        let forwarding = &self.server.forwarding;
        let Some(which) = forwarding.header else {
            return Ok(());
        };
        if !self.comes_through_trusted_proxy() {
            return Ok(());
        }
        match forwarded::client_from_headers(headers, which, &forwarding.trusted) {
            Ok(Some(ip)) => {
                let client = SocketAddr::new(ip, 0);
                self.client = Some(client);
                self.ticket.rekey(client).map_err(|unmoved| match unmoved {
                    Unmoved::Full(full) => Refused::Full(full),
                    Unmoved::Evicted => Refused::Evicted,
                })
            }
            Ok(None) => Ok(()),
            Err(why) => Err(Refused::Forwarded(why.to_string())),
        }
    }

    /// Step 5. The application's handler. It is application code: a panic in it answers this
    /// client with 500 and leaves the server (and this pooled thread) running.
    fn handler(&self, request: &Request) -> Result<(Option<String>, Vec<Header>, Bind), Refused> {
        let decision = catch_unwind(AssertUnwindSafe(|| (self.server.handler)(request)));
        match decision {
            Ok(Decision::Upgrade {
                subprotocol,
                headers,
                bind,
            }) => Ok((subprotocol, headers, bind)),
            Ok(Decision::Reject {
                status,
                reason,
                headers,
            }) => Err(Refused::Handler {
                status,
                reason,
                headers,
            }),
            Err(panic) => {
                log::error!(
                    "the accept handler panicked: {}",
                    crate::panics::message(&*panic)
                );
                Err(Refused::HandlerPanicked)
            }
        }
    }

    /// Step 6. A place among the established connections, in all and for the client's
    /// address (the client's behind a trusted proxy, not the proxy's).
    fn establish(&self) -> Result<ConnectionGuard, Refused> {
        self.server
            .try_establish(self.client, self.ticket)
            .map_err(Refused::Full)
    }

    /// Step 7. The 101, by the handshake deadline (a client that never reads cannot hold
    /// this thread with a large answer: the handler's headers), then the socket.
    fn switch(
        &self,
        read: &mut ReadHalf,
        write: &mut WriteHalf,
        request: Request,
        answer: Answer,
        established: ConnectionGuard,
    ) -> Result<Switched, Refused> {
        // Counted before the 101 is written, as `open` is (a client that has read it sees
        // itself counted).
        Counters::add(&self.server.counters.accepted);
        if write::handshake::head(write, &answer.bytes, self.deadline).is_err() {
            return Err(Refused::SwitchFailed);
        }
        let _ = read.tcp.set_read_timeout(None);
        let config = &self.server.config;
        let (socket, writer_state) = Socket::new(request, Role::Server, config);
        // The client's address, not a proxy's, for `WebSocket::peer_addr`.
        socket.attach(&read.tcp, self.client);
        socket.enter_reader();
        self.server.track(&socket);
        let callbacks = (answer.bind)(Opening {
            socket: &socket,
            response: &answer.open.response,
            config,
        });
        let reader = Reader::new(socket, callbacks, Role::Server, config);
        Ok(Switched {
            reader,
            writer_state,
            open: answer.open,
            established,
        })
    }

    /// Turns the connection away as `refused` says, counted once. An evicted handshake was
    /// counted and answered by the thread that evicted it; whether this thread or an evicting
    /// one answers is decided under the places' lock ([`HandshakeTicket::answering`]), so a
    /// client never gets two answers and a refusal is never counted twice.
    fn refuse(&mut self, refused: Refused, halves: Option<(&mut ReadHalf, &mut WriteHalf)>) {
        if matches!(refused, Refused::Evicted) || !self.ticket.answering() {
            return;
        }
        refused.log(self.client);
        if let Some(counter) = refused.counter(&self.server.counters) {
            Counters::add(counter);
        }
        refusal::end(refused, &self.tcp, halves, self.server.tls.is_some());
    }
}
