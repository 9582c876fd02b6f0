//! The server role, every piece of it in one folder: the public `Server` (in `server/`)
//! configures a [`Serve`] and hands it the application's handler, wrapped as a [`Handler`].
//!
//! A connection's way through, one file per step:
//! - [`listen`](mod@listen): the listening socket and the accept loop;
//! - [`places`]: admission as plain bookkeeping (how many connections may be in their
//!   handshake and how many upgraded, in all and per address, and which to evict);
//! - [`ticket`]: a connection's place in that bookkeeping, held by its thread, and evictions;
//! - [`upgrade`]: on the connection's own thread, its steps in order (PROXY header, TLS, the
//!   request, the forwarded header, the handler, the place among the open ones, the 101);
//! - [`refusal`]: every way a connection is turned away, what the client gets, what the
//!   statistics count it as;
//! - this file: the server's state, its statistics, its open sockets, and stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

mod listen;
mod places;
mod proxy_header;
mod refusal;
mod ticket;
mod upgrade;

pub(crate) use listen::{accept_loop, listen};
pub(crate) use places::Limits;

use places::Places;
use ticket::Handshake;

use super::callbacks::Callbacks;
use super::clock::deadline_after;
use super::platform;
use super::socket::Socket;
use super::transport::Acceptor;
use crate::config::Config;
use crate::header::Header;
use crate::proto::forwarded::{ForwardedHeader, Trusted};
use crate::proto::handshake;
use crate::proto::session::State;
use crate::request::Request;
use crate::stats::ServerStats;

/// The application's accept handler, as the driver calls it.
pub(crate) type Handler = dyn Fn(&Request) -> Decision + Send + Sync;

/// Makes the callbacks of a socket the handler agreed to upgrade, once the socket exists.
pub(crate) type Bind = Box<dyn FnOnce(Opening<'_>) -> Box<dyn Callbacks> + Send>;

/// What a socket's callbacks are made from: the socket, the 101 it was opened with, and the
/// server's settings.
pub(crate) struct Opening<'a> {
    pub socket: &'a Arc<Socket>,
    pub response: &'a crate::response::Response,
    pub config: &'a Config,
}

/// What the handler decided for one upgrade request.
pub(crate) enum Decision {
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
    places: Mutex<Places<Arc<Handshake>>>,
    /// Open sockets, for `stop` to close.
    sockets: Mutex<Vec<Arc<Socket>>>,
    stop_timeout: Duration,
    /// What `Server::stats` reports besides the places' counts.
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
            places: Mutex::new(Places::new(limits)),
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

    /// A snapshot of the server's connections.
    pub(crate) fn stats(&self) -> ServerStats {
        let (handshaking, open) = self.places.lock().counts();
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
    pub(crate) fn track(&self, socket: &Arc<Socket>) {
        let mut sockets = self.sockets.lock();
        sockets.retain(|s| !matches!(s.state(), State::Closed | State::Canceled));
        sockets.push(socket.clone());
        if self.stopping.load(Ordering::Acquire) {
            socket.close(Some(1001), STOP_REASON);
        }
    }

    /// Stops: the accept loop has ended; drops the connections still in their handshake and
    /// closes open sockets with 1001 behind what they have queued, waits `stop_timeout` for
    /// their close handshakes, then cancels the rest and gives them one second, in all, to
    /// finish.
    pub(crate) fn stop(&self) {
        let handshaking = self.places.lock().take_handshaking();
        for h in handshaking {
            platform::sockets::shut_down(&h.tcp);
        }
        let sockets: Vec<Arc<Socket>> = std::mem::take(&mut *self.sockets.lock());
        for s in &sockets {
            s.close(Some(1001), STOP_REASON);
        }
        let deadline = deadline_after(self.stop_timeout);
        for s in &sockets {
            s.wait_finished(Some(deadline));
        }
        let late: Vec<&Arc<Socket>> = sockets.iter().filter(|s| !s.is_finished()).collect();
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
