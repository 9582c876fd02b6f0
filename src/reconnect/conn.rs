//! The listener a reconnecting socket puts in front of the application's, one per
//! connection, and what happens when a connection ends: the retry decision, the backoff wait
//! (on the ended connection's idle reader thread) and the next connection, or the one
//! terminal callback.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use super::policy::Retry;
use super::state::{Inner, Inside, Phase, Stop};
use crate::ended::Ended;
use crate::error::Error;
use crate::listener::WebSocketListener;
use crate::message::Message;
use crate::proto::backoff;
use crate::response::Response;
use crate::waiting::wait_until;
use crate::websocket::{State, WebSocket};

/// What a connection started on this thread reported before `new_web_socket` returned.
type SyncFailure = Option<Ended>;

thread_local! {
    /// `Some` while this thread is inside `new_web_socket`: a failure delivered synchronously
    /// (the OS refused a reader thread) is parked here instead of being handled in place, so
    /// that retrying it loops instead of recursing.
    static SPAWNING: RefCell<Option<SyncFailure>> = const { RefCell::new(None) };
}

pub(super) enum Spawn {
    Started,
    /// Not started: the application asked for the end, or dropped every handle.
    NotStarted,
    /// The connection failed before `new_web_socket` returned.
    Failed(WebSocket, Ended),
}

/// Opens the next connection unless the application has asked for the end meanwhile.
pub(super) fn spawn(inner: &Arc<Inner>) -> Spawn {
    // Held across `new_web_socket`, so a `cancel` sees either no connection yet (and this
    // sees its stop) or the new one in `current`.
    let mut st = inner.st.lock();
    if st.stop.is_some() || st.handles_gone {
        return Spawn::NotStarted;
    }
    st.phase = Phase::Connecting;
    SPAWNING.with(|s| *s.borrow_mut() = Some(None));
    let conn = Conn {
        inner: inner.clone(),
        opened: false,
        peer_closing: false,
        ours: false,
    };
    let ws = inner.client.new_web_socket(inner.request.clone(), conn);
    let failed = SPAWNING.with(|s| s.borrow_mut().take()).flatten();
    st.last = Some(ws.clone());
    match failed {
        None => {
            st.current = Some(ws);
            Spawn::Started
        }
        Some(cause) => Spawn::Failed(ws, cause),
    }
}

/// Our listener in front of the application's, one per connection.
struct Conn {
    inner: Arc<Inner>,
    /// The handshake succeeded.
    opened: bool,
    /// The server's close frame has arrived.
    peer_closing: bool,
    /// This side started a close (the application, through any handle of the connection,
    /// or the 1001 close of a send-queue overflow).
    ours: bool,
}

impl Conn {
    /// Runs an application callback, marking this thread as inside one of the socket's
    /// callbacks (for `wait_finished`), and notes a close it started.
    fn app(&mut self, ws: &WebSocket, f: impl FnOnce(&mut dyn WebSocketListener)) {
        let _inside = Inside::enter(&self.inner);
        if let Some(l) = self.inner.app.lock().as_mut() {
            f(l.as_mut());
        }
        // Closing before the server's close arrived: the application (through a handle of
        // this connection) or a full send queue closed it.
        if !self.peer_closing && ws.state() == State::Closing {
            self.ours = true;
        }
    }

    fn ended(&mut self, ws: &WebSocket, cause: Ended) {
        let ours = self.ours
            || match &cause {
                Ended::Closed { by_peer, .. } => !by_peer,
                // Our close frame went unanswered: only a close of ours has that timer (after
                // the server's close, the timer ends the connection cleanly).
                Ended::Failed {
                    error: Error::CloseTimeout(_) | Error::Canceled,
                    ..
                } => true,
                Ended::Failed { .. } => false,
            };
        let retry = !ours && worth_retrying(&cause, self.opened);
        after_end(&self.inner, ws, cause, retry, ws.queue_size());
    }
}

/// Whether an ending, taken alone, is worth another attempt. A close the server started is,
/// whatever its code.
fn worth_retrying(cause: &Ended, opened: bool) -> bool {
    match cause {
        Ended::Closed { .. } => true,
        Ended::Failed { error, response } => {
            backoff::retryable(error, response.as_deref().map(Response::status), opened)
        }
    }
}

impl WebSocketListener for Conn {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        self.opened = true;
        // The application's on_open first: what it sends (authentication, subscriptions)
        // goes out ahead of the messages held while disconnected.
        self.app(ws, |l| l.on_open(ws, response));
        let mut st = self.inner.st.lock();
        st.attempt = 0;
        if st.phase == Phase::Connecting {
            st.phase = Phase::Open;
        }
        let max = self.inner.client.max_queue_size();
        while let Some(m) = st.held.front() {
            let len = m.len() as u64;
            // Checked first so that a message the connection cannot take stays held for the
            // next one instead of being dropped by a refused send (which would also close
            // the connection with 1001).
            let full = ws.queue_size().saturating_add(len) > max;
            if full || ws.state() != State::Open {
                break;
            }
            let Some(m) = st.held.pop_front() else { break };
            st.held_bytes = st.held_bytes.saturating_sub(len);
            ws.send(m);
        }
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.app(ws, |l| l.on_message(ws, message));
    }

    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.peer_closing = true;
        self.app(ws, |l| l.on_closing(ws, code, reason));
    }

    fn on_ended(&mut self, ws: &WebSocket, ended: Ended) {
        let _inside = Inside::enter(&self.inner);
        let parked = SPAWNING.with(|s| match s.borrow_mut().as_mut() {
            Some(slot) => {
                *slot = Some(ended);
                None
            }
            None => Some(ended),
        });
        if let Some(cause) = parked {
            self.ended(ws, cause);
        }
    }
}

/// A connection ended. Runs on its reader thread, inside its terminal callback: the thread
/// is idle from here on, so the backoff wait happens on it, and the next connection gets
/// threads of its own from the pool.
fn after_end(
    inner: &Arc<Inner>,
    ws: &WebSocket,
    mut cause: Ended,
    mut retry: bool,
    mut unwritten: u64,
) {
    let mut ws = ws.clone();
    loop {
        let mut st = inner.st.lock();
        st.current = None;
        if st.stop.is_some() || !retry || st.handles_gone {
            drop(st);
            return finish(inner, &ws, cause);
        }
        let attempt = st.attempt.saturating_add(1);
        if !backoff::attempts_left(attempt, inner.policy.max_attempts) {
            drop(st);
            log::debug!("{}: max_attempts reached; giving up", url(inner));
            return finish(inner, &ws, cause);
        }
        let delay = backoff::delay(&inner.policy.backoff, attempt, random_unit());
        st.attempt = attempt;
        st.phase = Phase::Waiting;
        drop(st);
        log::info!(
            "{}: reconnecting in {delay:?} (attempt {attempt}) after: {cause}",
            url(inner)
        );
        let go_on = inner.policy.ask(&Retry {
            attempt,
            delay,
            cause: &cause,
            unwritten_bytes: unwritten,
        });
        if !go_on {
            return finish(inner, &ws, cause);
        }
        // A delay too long to add to the clock waits until told otherwise.
        let deadline = Instant::now().checked_add(delay);
        let mut st = inner.st.lock();
        wait_until(&inner.cv, &mut st, deadline, |st| {
            st.stop.is_some() || st.handles_gone
        });
        if let Some(stop) = st.stop.clone() {
            drop(st);
            return finish(inner, &ws, stop_ending(stop));
        }
        drop(st);
        match spawn(inner) {
            Spawn::Started => return,
            Spawn::NotStarted => {
                let stop = inner.st.lock().stop.clone();
                let ending = stop.map_or(cause, stop_ending);
                return finish(inner, &ws, ending);
            }
            Spawn::Failed(next, next_cause) => {
                retry = worth_retrying(&next_cause, false);
                ws = next;
                cause = next_cause;
                unwritten = 0;
            }
        }
    }
}

/// The URL for logs, without what may hold a secret (query, fragment, user info): reconnects are
/// logged at info level.
fn url(inner: &Inner) -> String {
    inner.request.shown_url()
}

/// What the terminal callback reports when the application ended a socket that had no
/// connection: its own close code and reason (there was no server to answer), or cancel.
fn stop_ending(stop: Stop) -> Ended {
    match stop {
        Stop::Close { code, reason } => Ended::Closed {
            code,
            reason,
            by_peer: false,
        },
        Stop::Cancel => Ended::Failed {
            error: Error::Canceled,
            response: None,
        },
    }
}

/// Delivers the one terminal callback, on the thread of connection `ws`, and drops the
/// application's listener.
pub(super) fn finish(inner: &Inner, ws: &WebSocket, ending: Ended) {
    {
        let mut st = inner.st.lock();
        st.phase = Phase::Finished;
        st.current = None;
    }
    log::debug!("{}: ended: {ending}", url(inner));
    let listener = inner.app.lock().take();
    if let Some(mut l) = listener {
        let delivered = catch_unwind(AssertUnwindSafe(|| l.on_ended(ws, ending)));
        if let Err(p) = delivered {
            log::error!(
                "terminal listener callback panicked: {}",
                crate::panics::message(&*p)
            );
        }
        // Whatever the listener holds (a channel's sender) goes before the socket counts as
        // finished.
        drop(catch_unwind(AssertUnwindSafe(move || drop(l))));
    }
    let mut st = inner.st.lock();
    st.held.clear();
    st.held_bytes = 0;
    st.finished = true;
    drop(st);
    inner.cv.notify_all();
}

/// A uniform number in `[0, 1)` for the jitter.
fn random_unit() -> f64 {
    match getrandom::u64() {
        // The top 53 bits: exactly representable.
        Ok(x) => (x >> 11) as f64 / (1u64 << 53) as f64,
        Err(e) => {
            log::debug!("no random number for the jitter ({e}); using the middle");
            0.5
        }
    }
}
