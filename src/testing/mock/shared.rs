//! What the mock server's threads share: the queue of responses, the record of what came,
//! the failures, and the bookkeeping that lets `verify` and the drop wait for the scripts.

use std::collections::{HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::record::{MockFrame, MockRequest};
use super::response::MockResponse;
use crate::proto::frame::OpCode;

/// The largest frame or message the mock accepts from a client.
pub(super) const MAX_MESSAGE: u64 = 64 * 1024 * 1024;

/// How many payload bytes are recorded per connection (the largest message the mock takes):
/// past it, frames are still recorded, with an empty payload.
pub(super) const MAX_RECORDED_BYTES: u64 = MAX_MESSAGE;

/// What the server's threads share.
pub(crate) struct Inner {
    pub(super) state: Mutex<State>,
    /// Signalled on every change a waiter cares about: a request recorded, a script over, the
    /// server stopping.
    pub(super) changed: Condvar,
    /// What a TLS mock serves with (`MockServer::start_tls`).
    #[cfg(feature = "testing-tls")]
    pub(super) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(super) queue: VecDeque<MockResponse>,
    pub(super) when_empty: Option<MockResponse>,
    pub(super) requests: VecDeque<MockRequest>,
    /// Frames each connection received, by connection number - 1.
    pub(super) frames: Vec<Vec<MockFrame>>,
    /// Payload bytes recorded in `frames`, by connection number - 1; `None` once a frame did
    /// not fit under [`MAX_RECORDED_BYTES`] (from then on payloads are left out).
    pub(super) recorded_bytes: Vec<Option<u64>>,
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

    /// Records a frame connection `connection` received; a data frame's payload only while
    /// the connection's recorded payloads stay under [`MAX_RECORDED_BYTES`].
    pub(crate) fn record_frame(
        &self,
        connection: usize,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: &[u8],
    ) {
        let mut state = self.state();
        let Some(i) = connection.checked_sub(1) else {
            return;
        };
        let Some(recorded) = state.recorded_bytes.get_mut(i) else {
            return;
        };
        let payload = match *recorded {
            Some(bytes) if bytes + payload.len() as u64 <= MAX_RECORDED_BYTES => {
                *recorded = Some(bytes + payload.len() as u64);
                payload.to_vec()
            }
            // A control frame's payload is at most 125 bytes (the decoder enforces it): kept,
            // so a close code stays readable after a large upload.
            _ if opcode.is_control() => payload.to_vec(),
            _ => {
                *recorded = None;
                Vec::new()
            }
        };
        if let Some(frames) = state.frames.get_mut(i) {
            frames.push(MockFrame {
                opcode: opcode.bits(),
                fin,
                rsv1,
                payload,
            });
        }
    }

    /// The response for a connection whose request head has come: the queue's next, else the
    /// `when_empty` one.
    pub(crate) fn take_response(&self) -> Option<MockResponse> {
        let mut state = self.state();
        state.queue.pop_front().or_else(|| state.when_empty.clone())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.state().stopping
    }
}
