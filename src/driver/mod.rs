//! Threads and sockets: the one place where the pure [`proto`](crate::proto) code meets I/O.
//!
//! Each socket has two OS threads, taken from a process-wide [`pool`]:
//! - the **reader** (`syncws-reader`) connects ([`connect`], client; through a proxy with
//!   [`tunnel`]) or upgrades ([`accept`], server), then reads frames through the decoder and runs every listener callback
//!   ([`reader`]);
//! - the **writer** (`syncws-writer`) drains the queues through the encoder and keeps the
//!   timers ([`writer`]).
//!
//! They share [`Shared`] ([`shared`]): an atomic send gate and counters, a mutex-guarded
//! state, the queues. [`transport`] is the byte pipe (plain TCP or TLS) both halves use over
//! one descriptor. See `docs/architecture.md`.

mod accept;
mod admission;
pub(crate) mod backlog;
pub(crate) mod callbacks;
mod clock;
mod connect;
pub(crate) mod dns;
#[cfg(feature = "testing")]
pub(crate) mod driven;
pub(crate) mod handoff;
mod head;
mod outbox;
mod platform;
mod pool;
mod proxy_header;
mod reader;
mod rest;
mod serve;
pub(crate) mod shared;
pub(crate) mod transport;
mod tunnel;
mod writer;

pub(crate) use accept::{accept_loop, listen};
pub(crate) use admission::Limits;
pub(crate) use connect::{TlsSource, connect_here, spawn_client};
pub(crate) use outbox::SendError;
pub(crate) use serve::{Admit, Forwarding, Handler, Serve};
pub(crate) use shared::Shared;
