//! Statistics: a socket's traffic ([`Stats`]) and a server's connections ([`ServerStats`]).
//!
//! The counters cost no lock where messages flow: the reader publishes its message counts as
//! it hands each message over (so `stats()` in `on_message` counts it) and its wire bytes and
//! frames once per read (relaxed stores), the writing side once per write; the queue's high-water mark is
//! kept under the queue's lock, which `send` holds anyway. A snapshot takes the queue's and
//! the session's locks for a moment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A snapshot of one socket's traffic, from [`WebSocket::stats`](crate::WebSocket::stats),
/// [`Connection::stats`](crate::Connection::stats) or a reconnecting socket's current
/// connection.
///
/// "Bytes" are message payloads as the application sees them (text as UTF-8, before
/// compression); "wire bytes" are whole frames as written and read (headers, masks,
/// compressed payloads; under TLS, before encryption), so `wire_bytes_sent as f64 /
/// bytes_sent as f64` is what compression and framing cost or saved. Counters only grow.
///
/// ```
/// # fn main() -> Result<(), syncws::Error> {
/// let server = syncws::EchoServer::start()?;
/// let mut conn = syncws::connect(&server.url())?;
/// conn.send("hello");
/// let _echo = conn.recv()?;
/// let stats = conn.stats();
/// assert_eq!((stats.messages_sent, stats.bytes_sent), (1, 5));
/// assert_eq!((stats.messages_received, stats.bytes_received), (1, 5));
/// assert!(stats.wire_bytes_sent >= 5 + 6, "a header and a mask key per client frame");
/// assert!(stats.opened_at.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Whole messages written to the connection.
    pub messages_sent: u64,
    /// Their payload bytes.
    pub bytes_sent: u64,
    /// Whole messages received (delivered or on their way to the listener).
    pub messages_received: u64,
    /// Their payload bytes (after decompression).
    pub bytes_received: u64,
    /// Frame bytes written (data and control frames, headers included).
    pub wire_bytes_sent: u64,
    /// Frame bytes read.
    pub wire_bytes_received: u64,
    /// Frames encoded to be written (data fragments and control frames).
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// The largest [`queue_size`](crate::WebSocket::queue_size) a `send` has seen.
    pub queue_high_water: u64,
    /// Pings this side sent (`ping_interval`), counted as they are encoded, with
    /// `frames_sent` (so never more than it in a snapshot).
    pub pings_sent: u64,
    /// Pongs that answered them.
    pub pongs_received: u64,
    /// The round trip from our last answered ping to its pong.
    pub last_rtt: Option<Duration>,
    /// When the handshake completed; `None` before (or if it never did).
    pub opened_at: Option<SystemTime>,
}

/// A snapshot of a server's connections, from [`Server::stats`](crate::Server::stats).
///
/// ```
/// # fn main() -> Result<(), syncws::Error> {
/// let server = syncws::EchoServer::start()?;
/// let conn = syncws::connect(&server.url())?;
/// let stats = server.stats();
/// assert_eq!(stats.accepted, 1);
/// # drop(conn);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections upgraded and not yet ended.
    pub open: u64,
    /// Connections upgraded since the start (counted as the `101` is written).
    pub accepted: u64,
    /// TCP connections whose handshake is in progress.
    pub handshaking: u64,
    /// Refused because `max_connections` were open (503).
    pub refused_cap: u64,
    /// Refused because their address had `max_connections_per_ip` (503).
    pub refused_per_address: u64,
    /// Refused for their `Origin` (403).
    pub refused_origin: u64,
    /// Closed for a bad handshake: malformed, not an upgrade, too large or too slow.
    pub refused_bad_handshake: u64,
    /// Refused by the application's handler (its `Reject`, or 500 after it panicked).
    pub refused_by_handler: u64,
    /// Handshakes closed, while still reading their request, to make room for new
    /// connections (`max_handshaking`, `max_handshaking_per_ip`).
    pub evicted: u64,
}

/// The receiving side's counters, published by the reader once per read.
#[derive(Default)]
pub(crate) struct Received {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub wire: AtomicU64,
    pub frames: AtomicU64,
}

/// The reader's own counts, published to [`Received`] with plain stores.
#[derive(Default, Clone, Copy)]
pub(crate) struct Counts {
    pub messages: u64,
    pub bytes: u64,
    pub wire: u64,
}

impl Received {
    /// A message's counts, as it is handed to the application.
    pub(crate) fn published_message(&self, counts: Counts) {
        self.messages.store(counts.messages, Ordering::Relaxed);
        self.bytes.store(counts.bytes, Ordering::Relaxed);
    }

    /// A read's counts: the wire bytes and frames (the messages are published as they go).
    pub(crate) fn publish(&self, counts: Counts, frames: u64) {
        self.wire.store(counts.wire, Ordering::Relaxed);
        self.frames.store(frames, Ordering::Relaxed);
    }
}
