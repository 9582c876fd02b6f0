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
mod connect;
pub(crate) mod dns;
mod head;
mod os_thread;
mod outbox;
mod pool;
mod reader;
mod serve;
pub(crate) mod shared;
pub(crate) mod transport;
mod tunnel;
mod writer;

use std::time::{Duration, Instant};

pub(crate) use admission::Limits;
pub(crate) use connect::spawn_client;
pub(crate) use outbox::SendError;
pub(crate) use serve::{Admit, Handler, Serve, accept_loop, listen};
pub(crate) use shared::Shared;

use crate::ended::Ended;
use crate::message::Message;
use crate::response::Response;

/// What the reader tells the application, in order: the open, each message, the peer's close,
/// and the end. The public listener sits behind it with the socket's handle
/// (`listener::Bound`), so the driver knows neither.
#[allow(unused_variables)]
pub(crate) trait Callbacks: Send {
    fn open(&mut self, response: &Response) {}
    fn message(&mut self, message: Message) {}
    fn closing(&mut self, code: u16, reason: &str) {}
    /// Once, last.
    fn ended(&mut self, ended: Ended) {}
}

/// The callbacks of a socket whose listener is gone.
pub(crate) struct NoCallbacks;

impl Callbacks for NoCallbacks {}

/// Gives a client socket its TLS configuration when it needs one.
pub(crate) type TlsSource =
    std::sync::Arc<dyn Fn() -> Result<transport::Connector, String> + Send + Sync>;

/// `now + d`, or a point decades away when that would overflow (a `Duration::MAX` timeout).
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The deadline of a caller's timeout: zero means none (a point decades away).
pub(crate) fn timeout_deadline(d: Duration) -> Instant {
    if d.is_zero() {
        deadline_after(Duration::MAX)
    } else {
        deadline_after(d)
    }
}

/// The text of a caught panic's payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
