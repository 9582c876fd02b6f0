//! A connection's place among the server's handshakes and open connections, as its thread
//! holds it: taken on accept ([`Serve::begin_handshake`]), moved to the client's address once
//! a trusted proxy names it ([`HandshakeTicket::rekey`]), given up when the thread is done with
//! the handshake, and exchanged for a [`ConnectionGuard`] on upgrade. Evictions (decided by
//! [`Places`](super::places::Places)) are carried out here.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use super::places::{AddrKey, Evicted, Full, Place, Rekeyed};
use super::refusal;
use super::{Counters, Serve};

/// A connection's handshake as the server's bookkeeping holds it: its socket, to evict it.
/// Whether it is evicted or answered by its own thread is decided under the admission lock
/// ([`Places::answering`](super::places::Places::answering)), so a client never gets both answers.
pub(super) struct Handshake {
    pub(super) tcp: Arc<TcpStream>,
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
        self.server.places.lock().answering(&mut self.place)
    }

    /// The client a trusted proxy named: from now on the handshake counts under its address,
    /// with its `max_handshaking_per_ip` (its oldest reading handshake evicted if it is at the
    /// cap).
    pub(crate) fn rekey(&mut self, client: SocketAddr) -> Result<(), Unmoved> {
        let to = AddrKey::of(client.ip());
        let rekeyed = self.server.places.lock().rekey(self.place, to);
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
        self.server.places.lock().end(self.place);
    }
}

/// Counts an upgraded connection among the established ones until it ends.
pub(crate) struct ConnectionGuard(Arc<Serve>, AddrKey);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.places.lock().release(self.1);
    }
}

impl Serve {
    /// Takes a place among the handshaking connections for `tcp` from `peer`, evicting
    /// others as [`Places::begin`](super::places::Places::begin) decides: a flood of connections that trickle or never
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
        let (place, evicted) = self.places.lock().begin(addr, handshake, per_ip);
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
                Counters::add(refusal::full_counter(full, &self.counters));
                refusal::refuse_at_once(&tcp, self.tls.is_some(), full);
                None
            }
        }
    }

    /// Ends an evicted handshake, which is still reading its request (the admission lock
    /// decided it, so its thread will not answer): a short 503 saying which cap it met if the
    /// connection is plain (over TLS the session is the thread's), then a shutdown, which ends
    /// the thread's blocking read.
    pub(super) fn evict(&self, e: Evicted<Arc<Handshake>>) {
        let Evicted { conn, why } = e;
        log::debug!(
            "evicting a handshake ({:?}): {}",
            conn.tcp.peer_addr(),
            why.reason()
        );
        Counters::add(&self.counters.evicted);
        refusal::refuse_at_once(&conn.tcp, self.tls.is_some(), why);
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
        self.places.lock().establish(addr)?;
        Ok(ConnectionGuard(self.clone(), addr))
    }
}
