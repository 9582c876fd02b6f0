//! Who the server role lets in, and whom it lets go, so that one host cannot starve the others
//! (issue Hardening II, item 4).
//!
//! Plain bookkeeping, no I/O: the server keeps an [`Admission`] behind one lock, asks it for a
//! place on every accept and every upgrade, and shuts down (with a short 503) the handshakes it
//! says to evict. Addresses are counted per [`AddrKey`]: an IPv4 address, or an IPv6 /64.
//!
//! - **Handshakes** (TLS and the upgrade request): at most `max_handshaking` in all and
//!   `max_handshaking_per_ip` per address. A new connection whose address is at its own cap
//!   evicts that address's oldest handshake; when all places are taken, the oldest handshake
//!   *of the address holding the most* is evicted. A sustained flood from one address so only
//!   ever evicts its own connections, while a handshake from anywhere else is left alone.
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

/// How an address ranks for eviction: by its number of handshakes, then by the age of its
/// oldest (a smaller id is older, so it is reversed to sort last). With one handshake per
/// address (a flood from many addresses) this is plain oldest-first.
type Rank = (usize, Reverse<u64>, AddrKey);

/// The handshaking and established connections of one server; `T` is what the caller needs to
/// evict a handshake (its socket).
#[derive(Debug)]
pub(crate) struct Admission<T> {
    limits: Limits,
    next_id: u64,
    /// Handshakes in all.
    handshaking: usize,
    /// Per address, its handshakes oldest first, with their ids (which only grow, so each
    /// queue is sorted by id).
    by_addr: HashMap<AddrKey, VecDeque<(u64, T)>>,
    /// A [`Rank`] for every address in `by_addr`: the last holds the most handshakes, and of
    /// those, the oldest one.
    by_count: BTreeSet<Rank>,
    /// Established connections in all, and per address (addresses with none are removed).
    established: usize,
    established_by_addr: HashMap<AddrKey, usize>,
}

impl<T> Admission<T> {
    /// (handshakes in progress, established connections).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.handshaking, self.established)
    }

    pub(crate) fn new(limits: Limits) -> Admission<T> {
        Admission {
            limits,
            next_id: 0,
            handshaking: 0,
            by_addr: HashMap::new(),
            by_count: BTreeSet::new(),
            established: 0,
            established_by_addr: HashMap::new(),
        }
    }

    /// Takes a place for a new handshake from `addr`; returns its id (for [`end`](Self::end))
    /// and the handshakes evicted to make room, which the caller shuts down.
    ///
    /// `per_ip`: whether the per-address cap applies; not to a trusted proxy, whose
    /// connections carry many clients (their own addresses are only known from its PROXY
    /// header, and are capped once established).
    pub(crate) fn begin(&mut self, addr: AddrKey, conn: T, per_ip: bool) -> (u64, Vec<Evicted<T>>) {
        let mut evicted = Vec::new();
        // Its own address first: a flood from one address evicts only itself.
        while per_ip && self.count(addr) >= self.limits.max_handshaking_per_ip {
            let Some(conn) = self.pop_oldest(addr) else {
                break;
            };
            let why = Full::HandshakingPerIp(self.limits.max_handshaking_per_ip);
            evicted.push(Evicted { conn, why });
        }
        // Then, if every place is taken, the address holding the most gives one up.
        while self.handshaking >= self.limits.max_handshaking {
            let Some(&(_, _, most)) = self.by_count.last() else {
                break;
            };
            let Some(conn) = self.pop_oldest(most) else {
                break;
            };
            let why = Full::Handshaking(self.limits.max_handshaking);
            evicted.push(Evicted { conn, why });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let before = self.rank(addr);
        self.by_addr.entry(addr).or_default().push_back((id, conn));
        self.rerank(addr, before);
        self.handshaking += 1;
        (id, evicted)
    }

    /// Ends handshake `id` of `addr` (upgraded, refused or failed); nothing if it was evicted.
    pub(crate) fn end(&mut self, addr: AddrKey, id: u64) {
        let before = self.rank(addr);
        let Some(queue) = self.by_addr.get_mut(&addr) else {
            return;
        };
        let Ok(i) = queue.binary_search_by_key(&id, |(id, _)| *id) else {
            return;
        };
        queue.remove(i);
        self.handshaking = self.handshaking.saturating_sub(1);
        self.rerank(addr, before);
    }

    /// Every handshake still going, taken out (the server is stopping).
    pub(crate) fn take_handshaking(&mut self) -> Vec<T> {
        self.by_count.clear();
        self.handshaking = 0;
        let queues = std::mem::take(&mut self.by_addr);
        queues.into_values().flatten().map(|(_, c)| c).collect()
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

    fn count(&self, addr: AddrKey) -> usize {
        self.by_addr.get(&addr).map_or(0, VecDeque::len)
    }

    /// Takes `addr`'s oldest handshake out.
    fn pop_oldest(&mut self, addr: AddrKey) -> Option<T> {
        let before = self.rank(addr);
        let (_, conn) = self.by_addr.get_mut(&addr)?.pop_front()?;
        self.handshaking = self.handshaking.saturating_sub(1);
        self.rerank(addr, before);
        Some(conn)
    }

    /// `addr`'s rank now, if it has handshakes.
    fn rank(&self, addr: AddrKey) -> Option<Rank> {
        let queue = self.by_addr.get(&addr)?;
        let (oldest, _) = queue.front()?;
        Some((queue.len(), Reverse(*oldest), addr))
    }

    /// Moves `addr` in `by_count` from its rank `before` a change to its rank now; forgets it
    /// once it has no handshakes.
    fn rerank(&mut self, addr: AddrKey, before: Option<Rank>) {
        if let Some(before) = before {
            self.by_count.remove(&before);
        }
        match self.rank(addr) {
            Some(now) => {
                self.by_count.insert(now);
            }
            None => {
                self.by_addr.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> AddrKey {
        AddrKey::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn admission(handshaking: usize, per_ip: usize) -> Admission<&'static str> {
        Admission::new(Limits {
            max_handshaking: handshaking,
            max_handshaking_per_ip: per_ip,
            max_connections: 4,
            max_connections_per_ip: 2,
        })
    }

    fn evicted(e: Vec<Evicted<&'static str>>) -> Vec<(&'static str, Full)> {
        e.into_iter().map(|e| (e.conn, e.why)).collect()
    }

    #[test]
    fn an_address_at_its_cap_evicts_its_own_oldest() {
        let mut a = admission(10, 2);
        assert!(a.begin(v4(1), "a1", true).1.is_empty());
        assert!(a.begin(v4(2), "b1", true).1.is_empty());
        assert!(a.begin(v4(1), "a2", true).1.is_empty());
        let (_, e) = a.begin(v4(1), "a3", true);
        assert_eq!(evicted(e), [("a1", Full::HandshakingPerIp(2))]);
        let (_, e) = a.begin(v4(1), "a4", true);
        assert_eq!(evicted(e), [("a2", Full::HandshakingPerIp(2))]);
        assert_eq!((a.handshaking, a.count(v4(1)), a.count(v4(2))), (3, 2, 1));
    }

    #[test]
    fn when_all_places_are_taken_the_address_holding_the_most_gives_one_up() {
        let mut a = admission(5, 10);
        // The other address's handshakes are the oldest: global oldest-first would evict b1.
        a.begin(v4(2), "b1", true);
        a.begin(v4(2), "b2", true);
        a.begin(v4(1), "a1", true);
        a.begin(v4(1), "a2", true);
        a.begin(v4(1), "a3", true);
        let (_, e) = a.begin(v4(3), "c1", true);
        assert_eq!(evicted(e), [("a1", Full::Handshaking(5))]);
        // Now 1 and 2 hold two each: the one with the older handshake gives it up (b1).
        let (_, e) = a.begin(v4(4), "d1", true);
        assert_eq!(evicted(e), [("b1", Full::Handshaking(5))]);
        let (_, e) = a.begin(v4(5), "e1", true);
        assert_eq!(evicted(e), [("a2", Full::Handshaking(5))]);
        // One each: plain oldest first (b2, then a3), never a newer one.
        let (_, e) = a.begin(v4(6), "f1", true);
        assert_eq!(evicted(e), [("b2", Full::Handshaking(5))]);
        let (_, e) = a.begin(v4(6), "f2", true);
        assert_eq!(evicted(e), [("a3", Full::Handshaking(5))]);
        assert_eq!(a.handshaking, 5);
    }

    #[test]
    fn an_ended_handshake_frees_its_place_and_an_evicted_one_is_ended_once() {
        let mut a = admission(2, 2);
        let (first, _) = a.begin(v4(1), "a1", true);
        let (second, _) = a.begin(v4(1), "a2", true);
        a.end(v4(1), first);
        assert_eq!((a.handshaking, a.count(v4(1))), (1, 1));
        assert!(a.begin(v4(2), "b1", true).1.is_empty());
        // a2 (older than b1) is evicted for c1; its later end changes nothing.
        let (_, e) = a.begin(v4(3), "c1", true);
        assert_eq!(evicted(e), [("a2", Full::Handshaking(2))]);
        a.end(v4(1), second);
        a.end(v4(1), second);
        assert_eq!(a.handshaking, 2);
        assert!(!a.by_addr.contains_key(&v4(1)));
        assert_eq!(a.by_count.len(), 2);
        let mut left = a.take_handshaking();
        left.sort();
        assert_eq!(left, ["b1", "c1"]);
        assert_eq!((a.handshaking, a.by_count.len()), (0, 0));
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
