//! What a reconnecting socket keeps between its connections: where it is, the connection of
//! the moment, the messages held while disconnected, and whether the application asked for
//! the end.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::policy::Reconnect;
use crate::client::Client;
use crate::listener::WebSocketListener;
use crate::message::Message;
use crate::request::Request;
use crate::websocket::WebSocket;

pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) request: Request,
    pub(super) policy: Reconnect,
    pub(super) st: Mutex<St>,
    /// Wakes the backoff wait (close, cancel, handles dropped) and `wait_finished`.
    pub(super) cv: Condvar,
    /// The application's listener; taken out for good after the terminal callback.
    pub(super) app: Mutex<Option<Box<dyn WebSocketListener>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Open,
    Waiting,
    Finished,
}

/// The application asked for the end.
#[derive(Debug, Clone)]
pub(super) enum Stop {
    Close { code: u16, reason: String },
    Cancel,
}

pub(super) struct St {
    pub(super) phase: Phase,
    /// The connection being set up or open.
    pub(super) current: Option<WebSocket>,
    /// The most recent connection: its reader thread is the one running our code.
    pub(super) last: Option<WebSocket>,
    /// Attempts made in the current outage.
    pub(super) attempt: u32,
    pub(super) held: VecDeque<Message>,
    pub(super) held_bytes: u64,
    pub(super) stop: Option<Stop>,
    pub(super) handles_gone: bool,
    /// The terminal callback has returned.
    pub(super) finished: bool,
}

thread_local! {
    /// The reconnecting socket whose callback this thread is running, if any (its `Inner`'s
    /// address): `wait_finished` called from one returns at once instead of waiting for
    /// itself.
    static INSIDE: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as inside a callback of `inner`'s socket, until dropped.
pub(super) struct Inside {
    before: usize,
}

impl Inside {
    pub(super) fn enter(inner: &Arc<Inner>) -> Inside {
        let here = Arc::as_ptr(inner) as usize;
        Inside {
            before: INSIDE.with(|i| i.replace(here)),
        }
    }

    pub(super) fn is(inner: &Inner) -> bool {
        INSIDE.with(|i| i.get() == std::ptr::from_ref(inner) as usize)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|i| i.set(self.before));
    }
}
