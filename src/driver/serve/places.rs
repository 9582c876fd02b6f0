//! Who the server role lets in, and whom it lets go, so that one host cannot starve the others.
//!
//! Plain bookkeeping, no I/O: the server keeps a [`Places`] behind one lock, asks it for a
//! place on every accept and every upgrade, and shuts down (with a short 503) the handshakes it
//! says to evict. Addresses are counted per [`AddrKey`]: an IPv4 address, or an IPv6 /64.
//!
//! - **Handshakes** (TLS, the PROXY header, the upgrade request, then the handler and the
//!   answer): at most `max_handshaking` in all and `max_handshaking_per_ip` per address, each
//!   counted until its thread is done with it. A new connection whose address is at its own cap
//!   evicts that address's oldest handshake still reading; when all places are taken, the
//!   oldest reading handshake *of the address holding the most* is evicted. A sustained flood
//!   from one address so only ever evicts its own connections, while a handshake from anywhere
//!   else is left alone. A handshake that is answering is never evicted (its thread is busy
//!   anyway); a cap held only by such handshakes refuses the newcomer instead.
//! - **Behind a trusted proxy** its connections are counted under the proxy's address, exempt
//!   from the per-address cap, until the client is known ([`Places::rekey`]): then under the
//!   client's, with the client's cap.
//! - **Established connections**: at most `max_connections` in all and
//!   `max_connections_per_ip` per address; past either, the upgrade is refused with a
//!   [`Full`] that says which.
//!
//! Each call is O(log n) in the number of addresses handshaking (a hash map of per-address
//! queues, and a B-tree of per-address counts to find the address holding the most), plus, when
//! a handshake ends, a shift within its own address's queue (at most `max_handshaking_per_ip`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

/// What connections are counted by: an IPv4 address, or the /64 prefix of an IPv6 address.
///
/// A /64 because one host usually has a whole /64 to itself (SLAAC, privacy addresses): per
/// address, a single IPv6 host could open connections from as many addresses as it likes. An
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, from a dual-stack listener) counts as its IPv4
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum AddrKey {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6Prefix(u64),
}

impl AddrKey {
    /// The key `ip` is counted under.
    pub(crate) fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(v4),
                None => AddrKey::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// The server's caps; each at least 1 (the builder sees to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_handshaking: usize,
    pub max_handshaking_per_ip: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

/// Why a handshake was evicted, or an upgrade refused: which cap was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max_handshaking` handshakes in all.
    Handshaking(usize),
    /// `max_handshaking_per_ip` handshakes from this address.
    HandshakingPerIp(usize),
    /// `max_connections` established connections in all.
    Connections(usize),
    /// `max_connections_per_ip` established connections from this address.
    ConnectionsPerIp(usize),
}

impl Full {
    /// The reason phrase of the 503 that says so.
    pub(crate) fn reason(&self) -> String {
        match self {
            Full::Handshaking(n) => {
                format!(
                    "Service Unavailable: too many connections handshaking (max_handshaking {n})"
                )
            }
            Full::HandshakingPerIp(n) => format!(
                "Service Unavailable: too many connections handshaking from this address \
                 (max_handshaking_per_ip {n})"
            ),
            Full::Connections(n) => {
                format!("Service Unavailable: too many connections (max_connections {n})")
            }
            Full::ConnectionsPerIp(n) => format!(
                "Service Unavailable: too many connections from this address \
                 (max_connections_per_ip {n})"
            ),
        }
    }
}

/// A handshake the caller must end: the connection and the cap that evicted it.
#[derive(Debug)]
pub(crate) struct Evicted<T> {
    pub conn: T,
    pub why: Full,
}

/// How an address ranks for eviction: by its number of handshakes still reading (only those
/// can be evicted), then by the age of its oldest (a smaller id is older, so it is reversed to
/// sort last). With one handshake per address (a flood from many addresses) this is plain
/// oldest-first.
type Rank = (usize, Reverse<u64>, AddrKey);

/// One address's handshakes.
#[derive(Debug)]
struct PerAddr<T> {
    /// Still reading (TLS, the PROXY header, the request head), oldest first, with their ids
    /// (which only grow, so the queue is sorted by id): these can be evicted.
    reading: VecDeque<(u64, T)>,
    /// Answering (the handler, the 101 or a refusal and its linger): their threads are busy
    /// and are never evicted, but they count until their threads are free.
    answering: usize,
}

impl<T> PerAddr<T> {
    fn total(&self) -> usize {
        self.reading.len() + self.answering
    }
}

/// Where a handshake is, for [`Places::end`] and [`Places::rekey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub addr: AddrKey,
    pub id: u64,
    /// It has moved on to answering (see [`Places::answering`]).
    pub answering: bool,
}

/// What [`Places::rekey`] did.
#[derive(Debug)]
pub(crate) enum Rekeyed<T> {
    /// The handshake counts under the new address now, at this place; these were evicted to
    /// make room under that address's cap.
    Moved(Place, Vec<Evicted<T>>),
    /// The new address is at its cap with nothing to evict: the handshake stays where it was,
    /// and the caller refuses it.
    Full(Full),
    /// It was evicted meanwhile.
    Gone,
}

/// The handshaking and established connections of one server; `T` is what the caller needs to
/// evict a handshake (its socket).
///
/// Every handshake counts from its accept until its thread is done with it (refusal linger
/// included), so at most `max_handshaking` threads are ever in handshakes. Only those still
/// reading can be evicted; when every place is held by handshakes that are answering, a new
/// connection is refused instead.
#[derive(Debug)]
pub(crate) struct Places<T> {
    limits: Limits,
    next_id: u64,
    /// Handshakes in all, reading and answering.
    handshaking: usize,
    by_addr: HashMap<AddrKey, PerAddr<T>>,
    /// A [`Rank`] for every address with handshakes still reading: the last has the most, and
    /// of those, the oldest.
    by_count: BTreeSet<Rank>,
    /// Established connections in all, and per address (addresses with none are removed).
    established: usize,
    established_by_addr: HashMap<AddrKey, usize>,
}

impl<T> Places<T> {
    /// (handshakes in progress, established connections).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.handshaking, self.established)
    }

    pub(crate) fn new(limits: Limits) -> Places<T> {
        Places {
            limits,
            next_id: 0,
            handshaking: 0,
            by_addr: HashMap::new(),
            by_count: BTreeSet::new(),
            established: 0,
            established_by_addr: HashMap::new(),
        }
    }

    /// Takes a place for a new handshake from `addr`: its place, and the handshakes evicted to
    /// make room, which the caller ends. `Err` when the cap it meets has nothing to evict (every
    /// handshake there is answering): the caller refuses the new connection, and still ends the
    /// evicted ones.
    ///
    /// `per_ip`: whether the per-address cap applies; not to a trusted proxy, whose
    /// connections carry many clients (each is moved to its client's address with
    /// [`rekey`](Self::rekey) once known).
    pub(crate) fn begin(
        &mut self,
        addr: AddrKey,
        conn: T,
        per_ip: bool,
    ) -> (Result<Place, Full>, Vec<Evicted<T>>) {
        let mut evicted = Vec::new();
        // Its own address first: a flood from one address evicts only itself.
        if per_ip && let Err(full) = self.make_room_at(addr, &mut evicted) {
            return (Err(full), evicted);
        }
        // Then, if every place is taken, the address holding the most gives one up.
        while self.handshaking >= self.limits.max_handshaking {
            let Some(&(_, _, most)) = self.by_count.last() else {
                return (Err(Full::Handshaking(self.limits.max_handshaking)), evicted);
            };
            let why = Full::Handshaking(self.limits.max_handshaking);
            let Some(conn) = self.pop_oldest(most) else {
                return (Err(why), evicted);
            };
            evicted.push(Evicted { conn, why });
        }
        self.handshaking += 1;
        (Ok(self.push(addr, conn)), evicted)
    }

    /// Evicts `addr`'s oldest reading handshakes until it is under its own cap; `Err` if only
    /// answering ones are left and it is still at the cap.
    fn make_room_at(&mut self, addr: AddrKey, evicted: &mut Vec<Evicted<T>>) -> Result<(), Full> {
        let cap = self.limits.max_handshaking_per_ip;
        while self.by_addr.get(&addr).map_or(0, PerAddr::total) >= cap {
            let conn = self.pop_oldest(addr).ok_or(Full::HandshakingPerIp(cap))?;
            let why = Full::HandshakingPerIp(cap);
            evicted.push(Evicted { conn, why });
        }
        Ok(())
    }

    /// Queues a reading handshake under `addr` (already counted in `handshaking`).
    fn push(&mut self, addr: AddrKey, conn: T) -> Place {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let before = self.rank(addr);
        self.per_addr(addr).reading.push_back((id, conn));
        self.rerank(addr, before);
        Place {
            addr,
            id,
            answering: false,
        }
    }

    fn per_addr(&mut self, addr: AddrKey) -> &mut PerAddr<T> {
        self.by_addr.entry(addr).or_insert_with(|| PerAddr {
            reading: VecDeque::new(),
            answering: 0,
        })
    }

    /// Takes the reading handshake at `place` out of its queue, if it is still there (not
    /// evicted).
    fn take_reading(&mut self, place: Place) -> Option<T> {
        let before = self.rank(place.addr);
        let queue = &mut self.by_addr.get_mut(&place.addr)?.reading;
        let i = queue.binary_search_by_key(&place.id, |(id, _)| *id).ok()?;
        let (_, conn) = queue.remove(i)?;
        self.rerank(place.addr, before);
        Some(conn)
    }

    /// The handshake at `place` has read its request and its thread answers it now: it can no
    /// longer be evicted, and still counts. False if it was evicted first (it has been answered
    /// 503 and shut down): the thread answers nothing. The lock the caller holds decides
    /// between the two, so a client never gets both answers.
    pub(crate) fn answering(&mut self, place: &mut Place) -> bool {
        if place.answering {
            return true;
        }
        if self.take_reading(*place).is_none() {
            return false;
        }
        self.per_addr(place.addr).answering += 1;
        place.answering = true;
        true
    }

    /// Ends the handshake at `place` (upgraded, refused or failed, its thread done with it);
    /// nothing if it was evicted.
    pub(crate) fn end(&mut self, place: Place) {
        if place.answering {
            if let Some(per) = self.by_addr.get_mut(&place.addr) {
                per.answering = per.answering.saturating_sub(1);
                self.handshaking = self.handshaking.saturating_sub(1);
                self.forget_if_empty(place.addr);
            }
        } else if self.take_reading(place).is_some() {
            self.handshaking = self.handshaking.saturating_sub(1);
            self.forget_if_empty(place.addr);
        }
    }

    /// Moves the handshake at `place` to address `to` (the client a trusted proxy named),
    /// under `to`'s own cap: a full address evicts its oldest reading handshake, as a new
    /// connection from it would.
    pub(crate) fn rekey(&mut self, place: Place, to: AddrKey) -> Rekeyed<T> {
        if place.addr == to {
            return Rekeyed::Moved(place, Vec::new());
        }
        let mut evicted = Vec::new();
        if let Err(full) = self.make_room_at(to, &mut evicted) {
            // Whatever was evicted before the cap proved full stays evicted; their ends are
            // the caller's (a cap that only answering handshakes hold evicts none).
            debug_assert!(evicted.is_empty());
            return Rekeyed::Full(full);
        }
        if place.answering {
            match self.by_addr.get_mut(&place.addr) {
                Some(per) if per.answering > 0 => per.answering -= 1,
                _ => return Rekeyed::Gone,
            }
            self.forget_if_empty(place.addr);
            self.per_addr(to).answering += 1;
            let moved = Place { addr: to, ..place };
            return Rekeyed::Moved(moved, evicted);
        }
        match self.take_reading(place) {
            Some(conn) => {
                self.forget_if_empty(place.addr);
                Rekeyed::Moved(self.push(to, conn), evicted)
            }
            None => Rekeyed::Gone,
        }
    }

    /// Every handshake still reading, taken out (the server is stopping); the answering ones
    /// end with their threads.
    pub(crate) fn take_handshaking(&mut self) -> Vec<T> {
        self.by_count.clear();
        let mut taken = Vec::new();
        for per in self.by_addr.values_mut() {
            self.handshaking = self.handshaking.saturating_sub(per.reading.len());
            taken.extend(per.reading.drain(..).map(|(_, c)| c));
        }
        self.by_addr.retain(|_, per| per.answering > 0);
        taken
    }

    /// Counts an upgrade from `addr` among the established connections, or says which cap it
    /// would pass (the client is then answered 503).
    pub(crate) fn establish(&mut self, addr: AddrKey) -> Result<(), Full> {
        if self.established >= self.limits.max_connections {
            return Err(Full::Connections(self.limits.max_connections));
        }
        let mine = self.established_by_addr.entry(addr).or_insert(0);
        if *mine >= self.limits.max_connections_per_ip {
            return Err(Full::ConnectionsPerIp(self.limits.max_connections_per_ip));
        }
        *mine += 1;
        self.established += 1;
        Ok(())
    }

    /// An established connection from `addr` ended.
    pub(crate) fn release(&mut self, addr: AddrKey) {
        if let Some(mine) = self.established_by_addr.get_mut(&addr) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                self.established_by_addr.remove(&addr);
            }
            self.established = self.established.saturating_sub(1);
        }
    }

    #[cfg(test)]
    fn count(&self, addr: AddrKey) -> usize {
        self.by_addr.get(&addr).map_or(0, PerAddr::total)
    }

    /// Takes `addr`'s oldest reading handshake out (evicted: it no longer counts).
    fn pop_oldest(&mut self, addr: AddrKey) -> Option<T> {
        let before = self.rank(addr);
        let (_, conn) = self.by_addr.get_mut(&addr)?.reading.pop_front()?;
        self.handshaking = self.handshaking.saturating_sub(1);
        self.rerank(addr, before);
        self.forget_if_empty(addr);
        Some(conn)
    }

    /// `addr`'s rank now, if it has handshakes reading.
    fn rank(&self, addr: AddrKey) -> Option<Rank> {
        let queue = &self.by_addr.get(&addr)?.reading;
        let (oldest, _) = queue.front()?;
        Some((queue.len(), Reverse(*oldest), addr))
    }

    /// Moves `addr` in `by_count` from its rank `before` a change to its rank now.
    fn rerank(&mut self, addr: AddrKey, before: Option<Rank>) {
        if let Some(before) = before {
            self.by_count.remove(&before);
        }
        if let Some(now) = self.rank(addr) {
            self.by_count.insert(now);
        }
    }

    /// Forgets `addr` once it has no handshakes at all.
    fn forget_if_empty(&mut self, addr: AddrKey) {
        if self.by_addr.get(&addr).is_some_and(|per| per.total() == 0) {
            self.by_addr.remove(&addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> AddrKey {
        AddrKey::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn admission(handshaking: usize, per_ip: usize) -> Places<&'static str> {
        Places::new(Limits {
            max_handshaking: handshaking,
            max_handshaking_per_ip: per_ip,
            max_connections: 4,
            max_connections_per_ip: 2,
        })
    }

    fn evicted(e: Vec<Evicted<&'static str>>) -> Vec<(&'static str, Full)> {
        e.into_iter().map(|e| (e.conn, e.why)).collect()
    }

    /// Begins a handshake that must be admitted; returns its place and whom it evicted.
    fn begin(
        a: &mut Places<&'static str>,
        addr: AddrKey,
        conn: &'static str,
    ) -> (Place, Vec<(&'static str, Full)>) {
        let (place, e) = a.begin(addr, conn, true);
        (place.unwrap(), evicted(e))
    }

    #[test]
    fn an_address_at_its_cap_evicts_its_own_oldest() {
        let mut a = admission(10, 2);
        assert!(begin(&mut a, v4(1), "a1").1.is_empty());
        assert!(begin(&mut a, v4(2), "b1").1.is_empty());
        assert!(begin(&mut a, v4(1), "a2").1.is_empty());
        let (_, e) = begin(&mut a, v4(1), "a3");
        assert_eq!(e, [("a1", Full::HandshakingPerIp(2))]);
        let (_, e) = begin(&mut a, v4(1), "a4");
        assert_eq!(e, [("a2", Full::HandshakingPerIp(2))]);
        assert_eq!((a.handshaking, a.count(v4(1)), a.count(v4(2))), (3, 2, 1));
    }

    #[test]
    fn when_all_places_are_taken_the_address_holding_the_most_gives_one_up() {
        let mut a = admission(5, 10);
        // The other address's handshakes are the oldest: global oldest-first would evict b1.
        begin(&mut a, v4(2), "b1");
        begin(&mut a, v4(2), "b2");
        begin(&mut a, v4(1), "a1");
        begin(&mut a, v4(1), "a2");
        begin(&mut a, v4(1), "a3");
        let (_, e) = begin(&mut a, v4(3), "c1");
        assert_eq!(e, [("a1", Full::Handshaking(5))]);
        // Now 1 and 2 hold two each: the one with the older handshake gives it up (b1).
        let (_, e) = begin(&mut a, v4(4), "d1");
        assert_eq!(e, [("b1", Full::Handshaking(5))]);
        let (_, e) = begin(&mut a, v4(5), "e1");
        assert_eq!(e, [("a2", Full::Handshaking(5))]);
        // One each: plain oldest first (b2, then a3), never a newer one.
        let (_, e) = begin(&mut a, v4(6), "f1");
        assert_eq!(e, [("b2", Full::Handshaking(5))]);
        let (_, e) = begin(&mut a, v4(6), "f2");
        assert_eq!(e, [("a3", Full::Handshaking(5))]);
        assert_eq!(a.handshaking, 5);
    }

    #[test]
    fn an_ended_handshake_frees_its_place_and_an_evicted_one_is_ended_once() {
        let mut a = admission(2, 2);
        let (first, _) = begin(&mut a, v4(1), "a1");
        let (second, _) = begin(&mut a, v4(1), "a2");
        a.end(first);
        assert_eq!((a.handshaking, a.count(v4(1))), (1, 1));
        assert!(begin(&mut a, v4(2), "b1").1.is_empty());
        // a2 (older than b1) is evicted for c1; its later end changes nothing.
        let (_, e) = begin(&mut a, v4(3), "c1");
        assert_eq!(e, [("a2", Full::Handshaking(2))]);
        a.end(second);
        a.end(second);
        assert_eq!(a.handshaking, 2);
        assert!(!a.by_addr.contains_key(&v4(1)));
        assert_eq!(a.by_count.len(), 2);
        let mut left = a.take_handshaking();
        left.sort();
        assert_eq!(left, ["b1", "c1"]);
        assert_eq!((a.handshaking, a.by_count.len()), (0, 0));
    }

    #[test]
    fn an_answering_handshake_counts_until_it_ends_and_is_never_evicted() {
        let mut a = admission(2, 2);
        let (mut x, _) = begin(&mut a, v4(1), "x");
        let (mut y, _) = begin(&mut a, v4(2), "y");
        assert!(a.answering(&mut x));
        assert!(a.answering(&mut y));
        assert!(a.answering(&mut x), "asking twice changes nothing");
        // Every place is held by a thread that is answering: the newcomer is refused, and
        // nobody is evicted.
        let (place, e) = a.begin(v4(3), "z", true);
        assert_eq!(place, Err(Full::Handshaking(2)));
        assert!(e.is_empty());
        assert_eq!(a.handshaking, 2);
        a.end(x);
        assert_eq!(a.handshaking, 1);
        let (z, e) = begin(&mut a, v4(3), "z");
        assert!(e.is_empty());
        // The same per address: two answering from 2, a third from it is refused.
        let (mut y2, _) = begin(&mut a, v4(2), "y2");
        a.end(z);
        assert!(a.answering(&mut y2));
        let (place, e) = a.begin(v4(2), "y3", true);
        assert_eq!(place, Err(Full::HandshakingPerIp(2)));
        assert!(e.is_empty());
        a.end(y);
        a.end(y2);
        assert_eq!(
            (a.handshaking, a.by_addr.len(), a.by_count.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn an_evicted_handshake_cannot_start_answering() {
        let mut a = admission(1, 1);
        let (mut x, _) = begin(&mut a, v4(1), "x");
        let (_, e) = begin(&mut a, v4(2), "y");
        assert_eq!(e, [("x", Full::Handshaking(1))]);
        assert!(!a.answering(&mut x));
        a.end(x);
        assert_eq!(a.handshaking, 1);
    }

    #[test]
    fn a_rekeyed_handshake_counts_under_its_client_with_the_clients_cap() {
        let proxy = v4(100);
        let mut a = admission(10, 2);
        // Through the proxy (no per-address cap), three handshakes; each is moved to its client.
        let mut places = Vec::new();
        for conn in ["c1", "c2", "c3"] {
            let (p, e) = a.begin(proxy, conn, false);
            assert!(e.is_empty());
            places.push(p.unwrap());
        }
        let Rekeyed::Moved(c1, e) = a.rekey(places[0], v4(1)) else {
            panic!()
        };
        assert!(e.is_empty());
        let Rekeyed::Moved(_, e) = a.rekey(places[1], v4(1)) else {
            panic!()
        };
        assert!(e.is_empty());
        // The client's third evicts its own oldest, not the proxy's others.
        let Rekeyed::Moved(_, e) = a.rekey(places[2], v4(1)) else {
            panic!()
        };
        assert_eq!(evicted(e), [("c1", Full::HandshakingPerIp(2))]);
        assert!(matches!(a.rekey(c1, v4(2)), Rekeyed::Gone));
        assert_eq!((a.handshaking, a.count(proxy), a.count(v4(1))), (2, 0, 2));
        assert!(!a.by_addr.contains_key(&proxy));
    }

    #[test]
    fn an_answering_handshake_moves_too_and_a_full_client_keeps_it_where_it_was() {
        let proxy = v4(100);
        let mut a = admission(10, 1);
        let (p, _) = a.begin(proxy, "x", false);
        let mut x = p.unwrap();
        assert!(a.answering(&mut x));
        let Rekeyed::Moved(x, e) = a.rekey(x, v4(1)) else {
            panic!()
        };
        assert!(e.is_empty() && x.answering && x.addr == v4(1));
        assert_eq!((a.count(proxy), a.count(v4(1))), (0, 1));
        // Another through the proxy for the same client, also answering: the client is full
        // with nothing to evict; it stays the proxy's and is refused by the caller.
        let (p, _) = a.begin(proxy, "y", false);
        let mut y = p.unwrap();
        assert!(a.answering(&mut y));
        assert!(matches!(
            a.rekey(y, v4(1)),
            Rekeyed::Full(Full::HandshakingPerIp(1))
        ));
        a.end(y);
        a.end(x);
        assert_eq!((a.handshaking, a.by_addr.len()), (0, 0));
    }

    #[test]
    fn established_connections_are_capped_in_all_and_per_address() {
        let mut a = admission(10, 10);
        assert_eq!(a.establish(v4(1)), Ok(()));
        assert_eq!(a.establish(v4(1)), Ok(()));
        assert_eq!(a.establish(v4(1)), Err(Full::ConnectionsPerIp(2)));
        assert_eq!(a.establish(v4(2)), Ok(()));
        assert_eq!(a.establish(v4(3)), Ok(()));
        assert_eq!(a.establish(v4(4)), Err(Full::Connections(4)));
        a.release(v4(1));
        assert_eq!(a.establish(v4(1)), Ok(()));
        a.release(v4(2));
        a.release(v4(2)); // one too many: nothing to release
        assert_eq!(a.established, 3);
        assert!(!a.established_by_addr.contains_key(&v4(2)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| AddrKey::of(s.parse().unwrap());
        assert_eq!(
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_ne!(ip("192.0.2.1"), ip("192.0.2.2"));
    }

    #[test]
    fn the_reasons_name_the_cap() {
        assert_eq!(
            Full::ConnectionsPerIp(256).reason(),
            "Service Unavailable: too many connections from this address \
             (max_connections_per_ip 256)"
        );
        assert!(
            Full::Connections(1024)
                .reason()
                .ends_with("(max_connections 1024)")
        );
        assert!(
            Full::HandshakingPerIp(32)
                .reason()
                .ends_with("(max_handshaking_per_ip 32)")
        );
        assert!(
            Full::Handshaking(256)
                .reason()
                .ends_with("(max_handshaking 256)")
        );
    }
}
