//! What the mock server's threads share: the queue of responses, the record of what came,
//! the failures, and the bookkeeping that lets `verify` and the drop wait for the scripts.

use std::collections::{HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::record::{MockFrame, MockRequest};
use super::script::MockResponse;

/// What the server's threads share.
pub(crate) struct Inner {
    pub(super) state: Mutex<State>,
    /// Signalled on every change a waiter cares about: a request recorded, a script over, the
    /// server stopping.
    pub(super) changed: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    pub(super) queue: VecDeque<MockResponse>,
    pub(super) when_empty: Option<MockResponse>,
    pub(super) requests: VecDeque<MockRequest>,
    /// Frames each connection received, by connection number - 1.
    pub(super) frames: Vec<Vec<MockFrame>>,
    pub(super) failures: Vec<String>,
    /// How many failures `verify` (or the drop) has already reported.
    pub(super) reported: usize,
    /// Connections whose script has not finished.
    pub(super) running: usize,
    pub(super) accepted: usize,
    pub(super) stopping: bool,
    /// Each live connection's socket, to shut it down when the server stops.
    pub(super) streams: HashMap<usize, TcpStream>,
}

impl Inner {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn fail(&self, message: String) {
        self.state().failures.push(message);
        self.changed.notify_all();
    }

    pub(crate) fn record_request(&self, request: MockRequest) {
        self.state().requests.push_back(request);
        self.changed.notify_all();
    }

    pub(crate) fn record_frame(&self, connection: usize, frame: MockFrame) {
        if let Some(frames) = self.state().frames.get_mut(connection - 1) {
            frames.push(frame);
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.state().stopping
    }
}
