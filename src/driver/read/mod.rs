//! Every read from an open socket, on its reader thread, and every listener callback.
//!
//! The reader runs on a pooled `syncws-reader` thread; [`connect`](super::connect) (client) or
//! [`serve`](super::serve) (server) hands it an upgraded connection. It owns the socket's
//! decoder, feeds the session what it reads (the peer's close, pongs, the end of the
//! connection) and acts on its decisions; the terminal callback is the session's verdict
//! ([`Session::end`](crate::proto::session::Session::end)).
//!
//! - [`open`]: the open connection starts (the session opened, the writer started, `on_open`);
//! - [`reading`]: the read loop (decode, hand over, pause for a full backlog or a rate);
//! - [`end`]: the socket ends (the failure close and its linger, the terminal callback);
//! - this file: the reader's state, and the one way it calls the listener ([`Reader::call`]).

mod end;
mod open;
mod reading;

pub(in crate::driver) use end::fail_unstarted;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use super::callbacks::Callbacks;
use super::socket::Socket;
use crate::config::Config;
use crate::error::Error;
use crate::panics;
use crate::proto::Role;
use crate::proto::decoder::Parts;
use crate::proto::deflate::{self, Inflater};
use crate::proto::rate::Bucket;
use crate::response::Response;
use crate::stats::Counts;

/// What the open socket's reader starts from.
pub(super) struct Started {
    response: Response,
    leftover: Vec<u8>,
    inflater: Option<Inflater>,
}

/// What the handshake left for the open socket.
pub(super) struct Opened {
    pub response: Response,
    pub leftover: Vec<u8>,
    pub deflate: Option<deflate::Params>,
}

pub(super) struct Reader {
    socket: Arc<Socket>,
    callbacks: Box<dyn Callbacks>,
    role: Role,
    max_message_size: u64,
    /// How messages received as streams are handed over, when the callbacks want parts.
    parts: Parts,
    /// `max_receive_rate`'s bucket, if there is a limit, and `counts.bytes` when it was last
    /// charged.
    bucket: Option<Bucket>,
    charged: u64,
    /// What was received, published to `socket.received` (messages as each is handed over,
    /// the rest once per read).
    counts: Counts,
}

impl Reader {
    pub(super) fn new(
        socket: Arc<Socket>,
        callbacks: Box<dyn Callbacks>,
        role: Role,
        config: &Config,
    ) -> Self {
        Reader {
            socket,
            callbacks,
            role,
            max_message_size: config.max_message_size,
            parts: config.parts(),
            bucket: (config.max_receive_rate).map(|rate| Bucket::new(rate, Instant::now())),
            charged: 0,
            counts: Counts::default(),
        }
    }

    pub(super) fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }

    /// Runs a callback other than the terminal one, turning a panic into an error. Returns
    /// `Ok(false)` without running it if the socket was canceled or failed: once `cancel()`
    /// has returned, no such callback is entered.
    pub(super) fn call(&mut self, f: impl FnOnce(&mut dyn Callbacks)) -> Result<bool, Error> {
        let socket = &*self.socket;
        if !socket.enter_callback() {
            return Ok(false);
        }
        let callbacks = &mut *self.callbacks;
        let result = catch_unwind(AssertUnwindSafe(|| {
            socket.gate.entered();
            f(callbacks)
        }));
        socket.gate.left();
        result
            .map(|()| true)
            .map_err(|p| Error::ListenerPanicked(panics::message(&*p)))
    }
}
