//! An opt-in reconnecting web socket, built on the public client API: each connection is an
//! ordinary [`WebSocket`] from [`Client::new_web_socket`], and a listener of ours in front of
//! the application's decides, when one ends, whether to open the next.
//!
//! ```no_run
//! use std::time::Duration;
//! use syncws::{Client, Listener, Reconnect, Request};
//!
//! let policy = Reconnect::new()
//!     .initial_delay(Duration::from_millis(500))
//!     .max_delay(Duration::from_secs(30))
//!     .on_retry(|retry| {
//!         eprintln!("reconnect #{} in {:?}: {}", retry.attempt, retry.delay, retry.cause);
//!         true // false stops here, with this cause as the end
//!     });
//! let request = Request::builder("wss://example.com/feed").build()?;
//! let ws = Client::new().reconnecting(
//!     request,
//!     policy,
//!     Listener::new()
//!         // Once per connection: re-authenticate or resubscribe here.
//!         .on_open(|ws, _response| { ws.send(r#"{"subscribe":"prices"}"#); })
//!         .on_message(|_ws, message| println!("{message:?}"))
//!         // Exactly one of these, when the reconnecting socket ends for good.
//!         .on_closed(|_ws, code, reason| println!("closed {code} {reason}"))
//!         .on_failure(|_ws, error, _response| eprintln!("gave up: {error}")),
//! );
//! ws.send("held while disconnected, sent after the next on_open");
//! // ... later:
//! let _ = ws.close(1000, Some("bye"));
//! ws.wait_finished(Duration::from_secs(10));
//! # Ok::<(), syncws::Error>(())
//! ```
//!
//! See `docs/reconnect.md` for the policy, what is retried, the delivery of messages and
//! where the waiting happens.

mod conn;
mod policy;
mod state;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use conn::{Spawn, finish, spawn};
pub use policy::{
    DEFAULT_INITIAL_DELAY, DEFAULT_JITTER, DEFAULT_MAX_DELAY, DEFAULT_MULTIPLIER, Reconnect, Retry,
};
use state::{Inner, Inside, Phase, St, Stop};

use crate::client::Client;
use crate::error::Error;
use crate::listener::WebSocketListener;
use crate::message::Message;
use crate::proto::close;
use crate::request::Request;
use crate::waiting::wait_until;
use crate::websocket::{State, WebSocket};

/// Where a [`ReconnectingWebSocket`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReconnectState {
    /// A connection is being set up: `attempt` 0 is the first connection, then the number of
    /// the retry within the current outage.
    Connecting {
        /// The attempt being made.
        attempt: u32,
    },
    /// A connection is open: `send` writes to it.
    Open,
    /// Waiting out the backoff before `attempt`.
    Waiting {
        /// The attempt that comes next.
        attempt: u32,
    },
    /// `close` or `cancel` was called; the terminal callback has not run yet.
    Closing,
    /// Ended for good: the terminal callback has run or is running.
    Finished,
}

/// A web socket that reconnects: a cheap, cloneable, thread-safe handle, made by
/// [`Client::reconnecting`].
///
/// - [`send`](Self::send) writes to the open connection, or holds the message (bounded by
///   the client's `max_queue_size`) until the next one opens; held messages go out in order
///   right after that connection's `on_open` returns.
/// - [`close`](Self::close) and [`cancel`](Self::cancel) end it for good: no more
///   connections.
/// - Delivery is at most once: what was handed to a connection that then broke is not sent
///   again ([`Retry::unwritten_bytes`] counts what certainly did not go out).
///
/// Keep a handle for as long as it should reconnect: when the last one is dropped, the
/// current connection runs on (the listener still has it), but is not replaced when it ends,
/// and a backoff wait in progress ends at once, with the cause that started it as the
/// terminal callback.
#[derive(Clone)]
pub struct ReconnectingWebSocket {
    token: Arc<Token>,
}

/// Held by every application handle; the last one dropped tells the socket.
struct Token {
    inner: Arc<Inner>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.inner.st.lock().handles_gone = true;
        self.inner.cv.notify_all();
    }
}

impl Client {
    /// Opens a web socket that reconnects with `policy` when its connection ends for a
    /// reason worth retrying; see [`ReconnectingWebSocket`] and `docs/reconnect.md`.
    ///
    /// `listener` hears `on_open` once per connection, every message, `on_closing` when a
    /// server starts a close, and exactly one terminal callback (`on_closed` or `on_failure`)
    /// for the reconnecting socket as a whole: after [`close`](ReconnectingWebSocket::close) or
    /// [`cancel`](ReconnectingWebSocket::cancel), after an end that is not retried (a 4xx
    /// answer, a certificate the client refuses, a close this side started), when
    /// `max_attempts` run out (the last attempt's error) or when
    /// [`on_retry`](Reconnect::on_retry) returns false. Ends that will be retried are told to
    /// `on_retry` instead. The `&WebSocket` each callback gets is the connection of the moment;
    /// closing or canceling it ends the reconnecting socket as well.
    ///
    /// Returns at once; the first connection is set up on its own thread like any other.
    pub fn reconnecting(
        &self,
        request: Request,
        policy: Reconnect,
        listener: impl WebSocketListener,
    ) -> ReconnectingWebSocket {
        let inner = Arc::new(Inner {
            client: self.clone(),
            request,
            policy,
            st: Mutex::new(St {
                phase: Phase::Connecting,
                current: None,
                last: None,
                attempt: 0,
                held: VecDeque::new(),
                held_bytes: 0,
                stop: None,
                handles_gone: false,
                finished: false,
            }),
            cv: Condvar::new(),
            app: Mutex::new(Some(Box::new(listener))),
        });
        match spawn(&inner) {
            Spawn::Started | Spawn::NotStarted => {}
            // No thread for the very first connection: reported on this thread, like
            // `new_web_socket` does, and not retried (that would wait here).
            Spawn::Failed(ws, cause) => finish(&inner, &ws, cause),
        }
        ReconnectingWebSocket {
            token: Arc::new(Token { inner }),
        }
    }
}

impl fmt::Debug for ReconnectingWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingWebSocket")
            .field("url", &self.request().shown_url())
            .field("state", &self.state())
            .field("queue_size", &self.queue_size())
            .finish()
    }
}

impl ReconnectingWebSocket {
    fn inner(&self) -> &Inner {
        &self.token.inner
    }

    /// The request every connection is opened with.
    pub fn request(&self) -> &Request {
        &self.inner().request
    }

    /// Where the socket is.
    pub fn state(&self) -> ReconnectState {
        let st = self.inner().st.lock();
        match st.phase {
            Phase::Finished => ReconnectState::Finished,
            _ if st.stop.is_some() => ReconnectState::Closing,
            Phase::Connecting => ReconnectState::Connecting {
                attempt: st.attempt,
            },
            Phase::Open => ReconnectState::Open,
            Phase::Waiting => ReconnectState::Waiting {
                attempt: st.attempt,
            },
        }
    }

    /// Whether a connection is open now.
    pub fn is_open(&self) -> bool {
        self.state() == ReconnectState::Open
    }

    /// The connection being set up or open, if any (none while waiting or after the end).
    pub fn current(&self) -> Option<WebSocket> {
        self.inner().st.lock().current.clone()
    }

    /// A snapshot of the current connection's traffic ([`WebSocket::stats`]); `None` while
    /// there is no connection (waiting to retry, or after the end). Each connection counts
    /// from zero.
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// let server = syncws::EchoServer::start()?;
    /// let request = syncws::Request::builder(&server.url()).build()?;
    /// let rs = syncws::Client::new().reconnecting(request, syncws::Reconnect::default(), syncws::Listener::new());
    /// if let Some(stats) = rs.stats() {
    ///     println!("{} messages out on this connection", stats.messages_sent);
    /// }
    /// rs.cancel();
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Option<crate::stats::Stats> {
        self.current().map(|ws| ws.stats())
    }

    /// Payload bytes not yet written: those held while disconnected plus those queued on the
    /// current connection.
    pub fn queue_size(&self) -> u64 {
        let st = self.inner().st.lock();
        let on_connection = st.current.as_ref().map_or(0, WebSocket::queue_size);
        st.held_bytes.saturating_add(on_connection)
    }

    /// Sends a message: `&str`/`String` as text, `Vec<u8>`/`&[u8]` as binary. Never blocks.
    ///
    /// While a connection is open this is [`WebSocket::send`] on it (a send over
    /// `max_queue_size` returns false and starts a close with 1001, which ends the
    /// reconnecting socket like any close of this side). Otherwise (connecting, waiting,
    /// or the connection is going down) the message is held, in order, and written right
    /// after the next connection's `on_open` returns; held messages are bounded by the
    /// client's `max_queue_size` in payload bytes (and its cap on queued messages), and a
    /// send past that returns false without queuing, and without closing anything.
    ///
    /// Returns false after `close` or `cancel`, and once the socket has ended.
    pub fn send(&self, message: impl Into<Message>) -> bool {
        let message = message.into();
        let mut st = self.inner().st.lock();
        if st.stop.is_some() || st.phase == Phase::Finished {
            return false;
        }
        if st.phase == Phase::Open
            && let Some(ws) = &st.current
            && ws.state() == State::Open
        {
            return ws.send(message);
        }
        let len = message.len() as u64;
        let max = self.inner().client.max_queue_size();
        let fits = st.held_bytes.saturating_add(len) <= max
            && (st.held.len() as u64) < crate::config::max_queued_messages(max);
        if !fits {
            return false;
        }
        st.held_bytes += len;
        st.held.push_back(message);
        true
    }

    /// Ends the reconnecting socket for good, gracefully. Returns `Ok(true)` if this call
    /// started the end, `Ok(false)` if it had already begun or the socket has ended; codes
    /// and reasons are checked as by [`WebSocket::close`].
    ///
    /// - A connection is open: it is closed with `code` and `reason` after what is queued on
    ///   it; its end (`on_closed` with the server's answer, or `on_failure`) is the terminal
    ///   callback.
    /// - A connection is being set up: the held messages and the close are handed to it, as
    ///   for a [`WebSocket`] closed while connecting; what that connection then does is the
    ///   terminal callback (`on_failure` if it cannot connect: it is not retried).
    /// - Waiting between attempts: the socket ends at once, held messages are dropped, and the
    ///   terminal callback is `on_closed` with this `code` and `reason` (no server was there
    ///   to answer).
    pub fn close(&self, code: u16, reason: Option<&str>) -> Result<bool, Error> {
        let reason = reason.unwrap_or("");
        close::validate(code, reason)?;
        let mut st = self.inner().st.lock();
        if st.stop.is_some() || st.phase == Phase::Finished {
            return Ok(false);
        }
        st.stop = Some(Stop::Close {
            code,
            reason: reason.to_owned(),
        });
        if let Some(ws) = st.current.clone() {
            if st.phase == Phase::Connecting {
                while let Some(m) = st.held.pop_front() {
                    ws.send(m);
                }
                st.held_bytes = 0;
            }
            // Validated above; Ok(false) when the connection is closing already.
            let _ = ws.close(code, Some(reason));
        }
        drop(st);
        self.inner().cv.notify_all();
        Ok(true)
    }

    /// Ends the reconnecting socket now: the current connection is canceled, a backoff wait
    /// ends at once, held messages are dropped, and the listener gets
    /// `on_failure(Error::Canceled)`. Never blocks. (An `on_retry` for a connection that
    /// ended just before may still run; its answer no longer counts.)
    pub fn cancel(&self) {
        let mut st = self.inner().st.lock();
        if st.phase == Phase::Finished || matches!(st.stop, Some(Stop::Cancel)) {
            return;
        }
        st.stop = Some(Stop::Cancel);
        if let Some(ws) = &st.current {
            ws.cancel();
        }
        drop(st);
        self.inner().cv.notify_all();
    }

    /// Blocks until the terminal callback has returned or `timeout` passed; returns whether
    /// it has. Called from one of the socket's own callbacks it returns at once.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let inner = self.inner();
        let mut st = inner.st.lock();
        if Inside::is(inner) {
            return st.finished;
        }
        // A timeout too large to add to now means "forever".
        let deadline = Instant::now().checked_add(timeout);
        wait_until(&inner.cv, &mut st, deadline, |st| st.finished)
    }
}
