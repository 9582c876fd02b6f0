//! Threads and sockets: the one place where the pure [`proto`](crate::proto) code meets I/O.
//! It feeds the protocol logic bytes, events and `Instant`s, and carries out what it decides.
//!
//! A socket ([`socket::Socket`]) has two OS threads, taken from a process-wide [`pool`]:
//! - the **reader** (`syncws-reader`) connects ([`connect`], client) or upgrades
//!   ([`serve`], server), then reads frames through the decoder and runs every listener
//!   callback ([`read`]);
//! - the **writer** (`syncws-writer`) writes what senders queue and keeps the timers
//!   ([`write`](mod@write), which lists every write to a connection).
//!
//! [`transport`] is the byte pipe (plain TCP or TLS) both threads use over one descriptor;
//! [`platform`] holds what differs between operating systems. See `docs/architecture.md`.

pub(crate) mod backlog;
pub(crate) mod callbacks;
mod clock;
mod connect;
#[cfg(feature = "testing")]
pub(crate) mod driven;
pub(crate) mod handoff;
mod head;
mod platform;
mod pool;
mod read;
mod serve;
pub(crate) mod socket;
pub(crate) mod transport;
mod write;

/// For the mock server's tunnel: the addresses a target has without a lookup.
#[cfg(feature = "testing")]
pub(crate) use connect::without_lookup;
pub(crate) use connect::{TlsSource, connect_here, spawn_client};
pub(crate) use serve::{
    Decision, Forwarding, Handler, Limits, Opening, Serve, accept_loop, listen,
};
pub(crate) use socket::{EndHook, Socket};
pub(crate) use write::SendError;
