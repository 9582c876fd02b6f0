//! When the reader reads nothing on purpose: a pull-style listener's backlog is full (the
//! application fell behind), or it rests under `max_receive_rate`. TCP flow control then holds
//! the peer back; pongs cannot arrive meanwhile, which the writer's pong timer must know.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::rest::Rest;
use crate::driver::backlog::Backlog;

#[derive(Default)]
pub(crate) struct Pause {
    /// The pull-style listener's bound on undelivered events, once it has attached it.
    pub backlog: OnceLock<Arc<Backlog>>,
    /// Where the reader rests under `max_receive_rate`.
    pub rest: Rest,
    /// The reader is waiting for room in the backlog, or resting.
    paused: AtomicBool,
}

impl Pause {
    /// Runs `wait` (a wait for room, a rest) with the reader marked paused.
    pub(crate) fn during<R>(&self, wait: impl FnOnce() -> R) -> R {
        self.paused.store(true, Ordering::Release);
        let r = wait();
        self.paused.store(false, Ordering::Release);
        r
    }

    /// Whether the reader is paused (and pongs cannot arrive).
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// A failure or cancel: a paused reader must see it at once.
    pub(crate) fn wake(&self) {
        if let Some(b) = self.backlog.get() {
            b.wake();
        }
        self.rest.wake();
    }
}
