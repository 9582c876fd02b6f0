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

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::client::Client;
use crate::error::Error;
use crate::listener::WebSocketListener;
use crate::message::Message;
use crate::proto::backoff::{self, Backoff};
use crate::proto::close;
use crate::request::Request;
use crate::response::Response;
use crate::websocket::WebSocket;

/// Default [`Reconnect::initial_delay`]: a blip (a Wi-Fi hand-over, a server restart) is
/// bridged in well under a second.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// Default [`Reconnect::multiplier`]: the delay doubles with each attempt.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Default [`Reconnect::max_delay`]: reached after seven attempts (about 30 s of outage);
/// a server that comes back is found within 30 s, and 10,000 clients of a server that is
/// down make about 450 attempts a second between them (the mean delay is 22.5 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Default [`Reconnect::jitter`]: "equal jitter", half of each delay fixed and half random.
pub const DEFAULT_JITTER: f64 = 0.5;

type RetryFn = Box<dyn FnMut(&Retry<'_>) -> bool + Send>;

/// The reconnect policy: exponential backoff with jitter, a limit on attempts, and an
/// optional callback before each retry. Cheap to clone; builder-style setters.
///
/// The delay before attempt `n` (1 for the first retry of an outage) is
/// `base = min(max_delay, initial_delay × multiplier^(n−1))`, of which the `jitter` share is
/// random: with the default 0.5 it is uniform between `base / 2` and `base`.
///
/// | Setting | Default |
/// |---|---|
/// | [`initial_delay`](Self::initial_delay) | 500 ms |
/// | [`multiplier`](Self::multiplier) | 2.0 |
/// | [`max_delay`](Self::max_delay) | 30 s |
/// | [`jitter`](Self::jitter) | 0.5 (equal jitter) |
/// | [`max_attempts`](Self::max_attempts) | `u32::MAX` (never runs out) |
/// | [`on_retry`](Self::on_retry) | none (always retry) |
///
/// ```
/// use std::time::Duration;
/// let policy = syncws::Reconnect::new()
///     .initial_delay(Duration::from_millis(100))
///     .multiplier(1.5)
///     .max_delay(Duration::from_secs(10))
///     .max_attempts(20)
///     .jitter(1.0); // full jitter
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct Reconnect {
    backoff: Backoff,
    max_attempts: u32,
    on_retry: Option<Arc<Mutex<RetryFn>>>,
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("initial_delay", &self.backoff.initial)
            .field("multiplier", &self.backoff.multiplier)
            .field("max_delay", &self.backoff.max)
            .field("jitter", &self.backoff.jitter)
            .field("max_attempts", &self.max_attempts)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::new()
    }
}

impl Reconnect {
    /// The default policy (see the table above).
    pub fn new() -> Self {
        Reconnect {
            backoff: Backoff {
                initial: DEFAULT_INITIAL_DELAY,
                multiplier: DEFAULT_MULTIPLIER,
                max: DEFAULT_MAX_DELAY,
                jitter: DEFAULT_JITTER,
            },
            max_attempts: u32::MAX,
            on_retry: None,
        }
    }

    /// The delay before the first attempt of an outage, before jitter. Default 500 ms;
    /// `Duration::ZERO` retries at once, every time.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.backoff.initial = delay;
        self
    }

    /// Each attempt waits this many times longer than the one before. Default 2.0. Values
    /// below 1 (and NaN) count as 1: a constant delay.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.backoff.multiplier = backoff::sane_multiplier(multiplier);
        self
    }

    /// No delay is longer than this (jitter only shortens a delay). Default 30 s.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.backoff.max = delay;
        self
    }

    /// The share of each delay that is random, 0.0 (none) to 1.0 ("full jitter": anywhere
    /// from zero to the delay). Default 0.5 ("equal jitter"). Out-of-range values are clamped,
    /// NaN counts as 0.
    ///
    /// Jitter spreads the clients of a server that went down over the delay instead of having
    /// them all come back at the same instant. Equal jitter is the default rather than full
    /// jitter (which spreads them best) because it keeps half of every delay: no client, however
    /// unlucky its draws, retries a down server in a tight loop, and the delay still grows
    /// with every attempt for every client.
    pub fn jitter(mut self, share: f64) -> Self {
        self.backoff.jitter = backoff::sane_jitter(share);
        self
    }

    /// How many reconnection attempts one outage may take before the socket gives up, with
    /// the last attempt's error as its terminal `on_failure`. The count starts again once a
    /// connection opens. `0` never reconnects (the first end is the last). Default
    /// `u32::MAX`: at the default 30 s cap that is four thousand years.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Runs `f` before each retry, with the attempt number, the delay about to be waited and
    /// why the connection ended; returning false stops, and that cause becomes the socket's
    /// terminal callback. A panic in `f` counts as false.
    ///
    /// It runs on the ended connection's reader thread, never at the same time as the
    /// listener's callbacks, and may call the [`ReconnectingWebSocket`]'s methods (for
    /// example `send`, to queue something for the next connection). Clones of this policy
    /// share `f`.
    pub fn on_retry(mut self, f: impl FnMut(&Retry<'_>) -> bool + Send + 'static) -> Self {
        self.on_retry = Some(Arc::new(Mutex::new(Box::new(f))));
        self
    }

    /// Asks the retry callback; no callback means yes.
    fn ask(&self, retry: &Retry<'_>) -> bool {
        let Some(f) = &self.on_retry else {
            return true;
        };
        match catch_unwind(AssertUnwindSafe(|| (f.lock())(retry))) {
            Ok(go_on) => go_on,
            Err(p) => {
                log::error!(
                    "the on_retry callback panicked ({}); not retrying",
                    crate::driver::panic_message(&*p)
                );
                false
            }
        }
    }
}

/// How one connection ended: what [`Reconnect::on_retry`] is told, and what the terminal
/// callback reports when it is the last.
#[derive(Debug)]
#[non_exhaustive]
pub enum Disconnect {
    /// The connection failed (or never opened): the error, and the server's answer to the
    /// upgrade when one came (a refused handshake).
    Failed {
        /// What went wrong.
        error: Error,
        /// The server's response, when the handshake got that far.
        response: Option<Box<Response>>,
    },
    /// The server closed the connection with a close handshake.
    Closed {
        /// The server's close code (1005 if it sent none).
        code: u16,
        /// The server's close reason.
        reason: String,
    },
}

impl Disconnect {
    /// The error, for a failed connection.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Disconnect::Failed { error, .. } => Some(error),
            Disconnect::Closed { .. } => None,
        }
    }

    /// The server's answer to the upgrade, for a refused handshake.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Disconnect::Failed { response, .. } => response.as_deref(),
            Disconnect::Closed { .. } => None,
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Failed { error, .. } => write!(f, "{error}"),
            Disconnect::Closed { code, reason } => {
                write!(f, "the server closed the connection with {code} {reason:?}")
            }
        }
    }
}

/// What [`Reconnect::on_retry`] is told before a retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct Retry<'a> {
    /// 1 for the first retry of an outage, then 2, 3, ...; back to 1 once a connection opens.
    pub attempt: u32,
    /// How long the socket will wait before this attempt (jitter included).
    pub delay: Duration,
    /// Why the last connection (or attempt) ended.
    pub cause: &'a Disconnect,
    /// Payload bytes that were handed to the ended connection and never written to its socket:
    /// lost, and not sent again. (Bytes written but not yet read by the server when the
    /// connection broke may be lost too; no client can count those.)
    pub unwritten_bytes: u64,
}

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

struct Inner {
    client: Client,
    request: Request,
    policy: Reconnect,
    st: Mutex<St>,
    /// Wakes the backoff wait (close, cancel, handles dropped) and `wait_finished`.
    cv: Condvar,
    /// The application's listener; taken out for good after the terminal callback.
    app: Mutex<Option<Box<dyn WebSocketListener>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Open,
    Waiting,
    Finished,
}

/// The application asked for the end.
#[derive(Debug, Clone)]
enum Stop {
    Close { code: u16, reason: String },
    Cancel,
}

struct St {
    phase: Phase,
    /// The connection being set up or open.
    current: Option<WebSocket>,
    /// The most recent connection: its reader thread is the one running our code.
    last: Option<WebSocket>,
    /// Attempts made in the current outage.
    attempt: u32,
    held: VecDeque<Message>,
    held_bytes: u64,
    max_queue_size: u64,
    max_queued_messages: u64,
    stop: Option<Stop>,
    handles_gone: bool,
    /// The terminal callback has returned.
    finished: bool,
}

/// What a connection started on this thread reported before `new_web_socket` returned.
type SyncFailure = Option<Disconnect>;

thread_local! {
    /// `Some` while this thread is inside `new_web_socket`: a failure delivered synchronously
    /// (the OS refused a reader thread) is parked here instead of being handled in place, so
    /// that retrying it loops instead of recursing.
    static SPAWNING: RefCell<Option<SyncFailure>> = const { RefCell::new(None) };
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
                max_queue_size: 0,
                max_queued_messages: 0,
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

enum Spawn {
    Started,
    /// Not started: the application asked for the end, or dropped every handle.
    NotStarted,
    /// The connection failed before `new_web_socket` returned.
    Failed(WebSocket, Disconnect),
}

/// Opens the next connection unless the application has asked for the end meanwhile.
fn spawn(inner: &Arc<Inner>) -> Spawn {
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
        peer_started: false,
        ours: false,
    };
    let ws = inner.client.new_web_socket(inner.request.clone(), conn);
    let failed = SPAWNING.with(|s| s.borrow_mut().take()).flatten();
    st.max_queue_size = ws.shared.max_queue_size;
    st.max_queued_messages = ws.shared.max_queued_messages;
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
    /// The server's close frame came before this side had started a close.
    peer_started: bool,
    /// This side started a close (the application, through any handle of the connection,
    /// or the 1001 close of a send-queue overflow).
    ours: bool,
}

impl Conn {
    fn with_app(&self, f: impl FnOnce(&mut dyn WebSocketListener)) {
        if let Some(l) = self.inner.app.lock().as_mut() {
            f(l.as_mut());
        }
    }

    /// After an application callback: a closed send gate with no failure recorded means a
    /// close was started on this side.
    fn note_own_close(&mut self, ws: &WebSocket) {
        if ws.shared.send_closed() && !ws.shared.has_failed() {
            self.ours = true;
        }
    }

    fn ended(&mut self, ws: &WebSocket, cause: Disconnect) {
        let ours = self.ours
            || match &cause {
                Disconnect::Closed { .. } => !self.peer_started,
                // Our close frame went unanswered: only a close of ours has that timer.
                Disconnect::Failed {
                    error: Error::CloseTimeout(_),
                    ..
                } => !self.peer_started,
                Disconnect::Failed {
                    error: Error::Canceled,
                    ..
                } => true,
                Disconnect::Failed { .. } => false,
            };
        let retry = !ours && worth_retrying(&cause, self.opened);
        after_end(&self.inner, ws, cause, retry, ws.queue_size());
    }
}

/// Whether an ending, taken alone, is worth another attempt. A close the server started is,
/// whatever its code.
fn worth_retrying(cause: &Disconnect, opened: bool) -> bool {
    match cause {
        Disconnect::Closed { .. } => true,
        Disconnect::Failed { error, response } => {
            backoff::retryable(error, response.as_deref().map(Response::status), opened)
        }
    }
}

impl WebSocketListener for Conn {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        self.opened = true;
        // The application's on_open first: what it sends (authentication, subscriptions)
        // goes out ahead of the messages held while disconnected.
        self.with_app(|l| l.on_open(ws, response));
        self.note_own_close(ws);
        let mut st = self.inner.st.lock();
        st.attempt = 0;
        if st.phase == Phase::Connecting {
            st.phase = Phase::Open;
        }
        while let Some(m) = st.held.front() {
            let len = m.len() as u64;
            // Checked first so that a message the connection cannot take stays held for the
            // next one instead of being dropped by a refused send.
            let full = ws.queue_size().saturating_add(len) > st.max_queue_size;
            if full || ws.shared.send_closed() {
                break;
            }
            let Some(m) = st.held.pop_front() else { break };
            st.held_bytes = st.held_bytes.saturating_sub(len);
            ws.send(m);
        }
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.with_app(|l| l.on_message(ws, message));
        self.note_own_close(ws);
    }

    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        // Read before the application can answer: a gate already closed means our close
        // crossed the server's, or came first.
        self.peer_started = !self.ours && !ws.shared.send_closed();
        self.with_app(|l| l.on_closing(ws, code, reason));
    }

    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        let cause = Disconnect::Closed {
            code,
            reason: reason.to_owned(),
        };
        self.ended(ws, cause);
    }

    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {
        let cause = Disconnect::Failed {
            error,
            response: response.cloned().map(Box::new),
        };
        let parked = SPAWNING.with(|s| match s.borrow_mut().as_mut() {
            Some(slot) => {
                *slot = Some(cause);
                None
            }
            None => Some(cause),
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
    mut cause: Disconnect,
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
        while st.stop.is_none() && !st.handles_gone {
            match deadline {
                Some(d) => {
                    if inner.cv.wait_until(&mut st, d).timed_out() {
                        break;
                    }
                }
                None => inner.cv.wait(&mut st),
            }
        }
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
fn stop_ending(stop: Stop) -> Disconnect {
    match stop {
        Stop::Close { code, reason } => Disconnect::Closed { code, reason },
        Stop::Cancel => Disconnect::Failed {
            error: Error::Canceled,
            response: None,
        },
    }
}

/// Delivers the one terminal callback, on the thread of connection `ws`, and drops the
/// application's listener.
fn finish(inner: &Inner, ws: &WebSocket, ending: Disconnect) {
    {
        let mut st = inner.st.lock();
        st.phase = Phase::Finished;
        st.current = None;
    }
    log::debug!("{}: ended: {ending}", url(inner));
    let listener = inner.app.lock().take();
    if let Some(mut l) = listener {
        let delivered = catch_unwind(AssertUnwindSafe(|| match ending {
            Disconnect::Closed { code, reason } => l.on_closed(ws, code, &reason),
            Disconnect::Failed { error, response } => l.on_failure(ws, error, response.as_deref()),
        }));
        if let Err(p) = delivered {
            log::error!(
                "terminal listener callback panicked: {}",
                crate::driver::panic_message(&*p)
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
            && !ws.shared.send_closed()
        {
            return ws.send(message);
        }
        let len = message.len() as u64;
        let fits = st.held_bytes.saturating_add(len) <= st.max_queue_size
            && (st.held.len() as u64) < st.max_queued_messages;
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
        if st
            .last
            .as_ref()
            .is_some_and(|ws| ws.shared.on_reader_thread())
        {
            return st.finished;
        }
        let deadline = Instant::now().checked_add(timeout);
        while !st.finished {
            match deadline {
                Some(d) => {
                    if inner.cv.wait_until(&mut st, d).timed_out() {
                        return st.finished;
                    }
                }
                None => inner.cv.wait(&mut st),
            }
        }
        true
    }
}
