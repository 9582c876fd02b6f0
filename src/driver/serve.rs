//! The server role's engine: the accept loop, admission (how many connections may be in their
//! handshake and how many upgraded, in all and per address, and which to evict), the open
//! sockets, and stopping. The public `Server` (in `server/`) configures it and hands it the
//! application's handler, wrapped as a [`Handler`].

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::admission::{AddrKey, Admission, Evicted, Full, Limits, Place, Rekeyed};
use super::callbacks::Callbacks;
use super::clock::deadline_after;
use super::platform;
use super::shared::Shared;
use super::transport::Acceptor;
use crate::config::Config;
use crate::header::Header;
use crate::proto::forwarded::{ForwardedHeader, Trusted};
use crate::proto::handshake;
use crate::proto::session::State;
use crate::request::Request;
use crate::stats::ServerStats;

/// The application's accept handler, as the driver calls it.
pub(crate) type Handler = dyn Fn(&Request) -> Admit + Send + Sync;

/// Makes the callbacks of a socket the handler agreed to upgrade, once the socket exists.
pub(crate) type Bind = Box<dyn FnOnce(&Arc<Shared>) -> Box<dyn Callbacks> + Send>;

/// What the handler decided for one upgrade request.
pub(crate) enum Admit {
    /// Upgrade, confirming `subprotocol` if it is one the client offered, with `headers` added
    /// to the 101; `bind` makes the socket's callbacks.
    Upgrade {
        subprotocol: Option<String>,
        headers: Vec<Header>,
        bind: Bind,
    },
    /// Refuse with an HTTP status.
    Reject {
        status: u16,
        reason: String,
        headers: Vec<Header>,
    },
}

pub(crate) struct Serve {
    pub config: Config,
    /// What the pure handshake code decides upgrade requests by (scheme, origins, deflate).
    pub policy: handshake::Policy,
    pub tls: Option<Acceptor>,
    pub handler: Box<Handler>,
    stopping: AtomicBool,
    /// Connections still in TLS or the upgrade request, and established (upgraded) ones,
    /// counted in all and per address.
    admission: Mutex<Admission<Arc<Handshake>>>,
    /// Open sockets, for `stop` to close.
    sockets: Mutex<Vec<Arc<Shared>>>,
    stop_timeout: Duration,
    /// What `Server::stats` reports besides the admission's counts.
    pub counters: Counters,
    /// Which proxies are believed about the client's address, and how.
    pub forwarding: Forwarding,
}

/// Behind proxies: whose word about the client's address is taken, and in which form.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forwarding {
    pub trusted: Trusted,
    /// Connections from trusted proxies start with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
    /// The header (`X-Forwarded-For` or `Forwarded`) in which trusted proxies name the client.
    pub header: Option<ForwardedHeader>,
}

/// A server's running totals (statistics): relaxed atomics, one add per connection.
#[derive(Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub refused_cap: AtomicU64,
    pub refused_per_address: AtomicU64,
    pub refused_origin: AtomicU64,
    pub refused_bad_handshake: AtomicU64,
    pub refused_by_handler: AtomicU64,
    pub evicted: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The close reason sockets get when their server stops.
const STOP_REASON: &str = "server stopping";

/// How long `stop` waits, in all, for the sockets it had to cancel to finish.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// A connection's handshake as the server's bookkeeping holds it: its socket, to evict it.
/// Whether it is evicted or answered by its own thread is decided under the admission lock
/// ([`Admission::answering`]), so a client never gets both answers.
struct Handshake {
    tcp: Arc<TcpStream>,
}

/// A connection's place among those handshaking; dropping it frees the place. Held by the
/// connection's thread until it is done with the handshake (the refusal's linger included), so
/// `max_handshaking` bounds the threads in handshakes.
pub(crate) struct HandshakeTicket {
    server: Arc<Serve>,
    place: Place,
}

/// Why a handshake's move to its client's address failed.
pub(crate) enum Unmoved {
    /// The client's address is at `max_handshaking_per_ip` with only answering handshakes.
    Full(Full),
    /// It was evicted meanwhile (answered 503 and shut down).
    Evicted,
}

impl HandshakeTicket {
    /// Called once the request head is read, before anything is answered: false if the
    /// connection was evicted meanwhile (it has been answered 503 and shut down). From true on
    /// it can no longer be evicted, and still counts until the ticket is dropped.
    pub(crate) fn answering(&mut self) -> bool {
        self.server.admission.lock().answering(&mut self.place)
    }

    /// The client a trusted proxy named: from now on the handshake counts under its address,
    /// with its `max_handshaking_per_ip` (its oldest reading handshake evicted if it is at the
    /// cap).
    pub(crate) fn rekey(&mut self, client: SocketAddr) -> Result<(), Unmoved> {
        let to = AddrKey::of(client.ip());
        let rekeyed = self.server.admission.lock().rekey(self.place, to);
        match rekeyed {
            Rekeyed::Moved(place, evicted) => {
                self.place = place;
                for e in evicted {
                    self.server.evict(e);
                }
                Ok(())
            }
            Rekeyed::Full(full) => Err(Unmoved::Full(full)),
            Rekeyed::Gone => Err(Unmoved::Evicted),
        }
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.server.admission.lock().end(self.place);
    }
}

/// Counts an upgraded connection among the established ones until it ends.
pub(crate) struct ConnectionGuard(Arc<Serve>, AddrKey);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.admission.lock().release(self.1);
    }
}

/// A short 503 written without waiting (best effort: it goes into the socket buffer or not at
/// all), then a shutdown: for a connection the server will not give a thread to. Only on plain
/// connections: a TLS client would read it as garbage.
pub(crate) fn refuse_at_once(tcp: &TcpStream, tls: bool, why: Full) {
    if !tls {
        let refusal = handshake::Refusal {
            status: 503,
            reason: why.reason(),
        };
        let bytes = handshake::encode_refusal(&refusal, &[]);
        platform::sockets::send_refusal(tcp, &bytes);
    }
    platform::sockets::shut_down(tcp);
}

impl Serve {
    pub(crate) fn new(
        config: Config,
        policy: handshake::Policy,
        tls: Option<Acceptor>,
        handler: Box<Handler>,
        limits: Limits,
        stop_timeout: Duration,
        forwarding: Forwarding,
    ) -> Arc<Serve> {
        Arc::new(Serve {
            config,
            policy,
            tls,
            handler,
            stopping: AtomicBool::new(false),
            admission: Mutex::new(Admission::new(limits)),
            sockets: Mutex::new(Vec::new()),
            stop_timeout,
            counters: Counters::default(),
            forwarding,
        })
    }

    /// From now on the accept loop stops at its next connection, and sockets that open
    /// are closed with 1001 at once.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Takes a place among the handshaking connections for `tcp` from `peer`, evicting
    /// others as [`Admission::begin`] decides: a flood of connections that trickle or never
    /// send costs at most `max_handshaking` threads, and only ever evicts its own address's
    /// handshakes once that address holds the most, so clients from other addresses still get
    /// through. `None` when the cap it meets is held by handshakes that are all answering: the
    /// connection has been refused (a short 503) and gets no thread.
    pub(crate) fn begin_handshake(
        self: &Arc<Self>,
        tcp: Arc<TcpStream>,
        peer: SocketAddr,
    ) -> Option<HandshakeTicket> {
        let addr = AddrKey::of(peer.ip());
        let handshake = Arc::new(Handshake { tcp: tcp.clone() });
        let per_ip = !self.forwarding.trusted.contains(peer.ip());
        let (place, evicted) = self.admission.lock().begin(addr, handshake, per_ip);
        // The writes and shutdowns happen outside the lock.
        for e in evicted {
            self.evict(e);
        }
        match place {
            Ok(place) => Some(HandshakeTicket {
                server: self.clone(),
                place,
            }),
            Err(full) => {
                log::debug!("refusing a connection at once: {}", full.reason());
                Counters::add(match full {
                    Full::HandshakingPerIp(_) => &self.counters.refused_per_address,
                    _ => &self.counters.refused_cap,
                });
                refuse_at_once(&tcp, self.tls.is_some(), full);
                None
            }
        }
    }

    /// Ends an evicted handshake, which is still reading its request (the admission lock
    /// decided it, so its thread will not answer): a short 503 saying which cap it met if the
    /// connection is plain (over TLS the session is the thread's), then a shutdown, which ends
    /// the thread's blocking read.
    fn evict(&self, e: Evicted<Arc<Handshake>>) {
        let Evicted { conn, why } = e;
        log::debug!(
            "evicting a handshake ({:?}): {}",
            conn.tcp.peer_addr(),
            why.reason()
        );
        Counters::add(&self.counters.evicted);
        refuse_at_once(&conn.tcp, self.tls.is_some(), why);
    }

    /// Counts an upgrade from the ticket's address among the established connections, or
    /// says which cap is reached (the client is then answered 503).
    ///
    /// `client`: the address the connection counts against, the client's behind a trusted
    /// proxy (the ticket's is the proxy's).
    pub(crate) fn try_establish(
        self: &Arc<Self>,
        client: Option<SocketAddr>,
        ticket: &HandshakeTicket,
    ) -> Result<ConnectionGuard, Full> {
        let addr = client.map_or(ticket.place.addr, |c| AddrKey::of(c.ip()));
        self.admission.lock().establish(addr)?;
        Ok(ConnectionGuard(self.clone(), addr))
    }

    /// A snapshot of the server's connections.
    pub(crate) fn stats(&self) -> ServerStats {
        let (handshaking, open) = self.admission.lock().counts();
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            open: open as u64,
            handshaking: handshaking as u64,
            accepted: load(&c.accepted),
            refused_cap: load(&c.refused_cap),
            refused_per_address: load(&c.refused_per_address),
            refused_origin: load(&c.refused_origin),
            refused_bad_handshake: load(&c.refused_bad_handshake),
            refused_by_handler: load(&c.refused_by_handler),
            evicted: load(&c.evicted),
        }
    }

    /// Remembers an open socket so `stop` can end it.
    pub(crate) fn track(&self, shared: &Arc<Shared>) {
        let mut sockets = self.sockets.lock();
        sockets.retain(|s| !matches!(s.state(), State::Closed | State::Canceled));
        sockets.push(shared.clone());
        if self.stopping.load(Ordering::Acquire) {
            shared.close(Some(1001), STOP_REASON);
        }
    }

    /// Stops: the accept loop has ended; drops the connections still in their handshake and
    /// closes open sockets with 1001 behind what they have queued, waits `stop_timeout` for
    /// their close handshakes, then cancels the rest and gives them one second, in all, to
    /// finish.
    pub(crate) fn stop(&self) {
        let handshaking = self.admission.lock().take_handshaking();
        for h in handshaking {
            platform::sockets::shut_down(&h.tcp);
        }
        let sockets: Vec<Arc<Shared>> = std::mem::take(&mut *self.sockets.lock());
        for s in &sockets {
            s.close(Some(1001), STOP_REASON);
        }
        let deadline = deadline_after(self.stop_timeout);
        for s in &sockets {
            s.wait_finished(Some(deadline));
        }
        let late: Vec<&Arc<Shared>> = sockets.iter().filter(|s| !s.is_finished()).collect();
        if !late.is_empty() {
            log::debug!(
                "canceling {} sockets that did not close within the stop timeout",
                late.len()
            );
        }
        for s in &late {
            s.cancel();
        }
        // One deadline for all of them, not a second per socket in turn: a canceled socket
        // ends at once unless a callback of its is stuck, and many stuck ones must not add up.
        let deadline = deadline_after(CANCEL_GRACE);
        for s in &late {
            s.wait_finished(Some(deadline));
        }
    }
}
