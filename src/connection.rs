//! The blocking API: connect and get an open socket or an error; receive the next message or
//! time out. A [`WebSocket`] whose reader hands its events to the caller's thread in batches
//! (`driver/handoff.rs`: one hand-off per read instead of one per message), bounded as
//! [`channel`](crate::channel) is; the same threads, limits and guarantees.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::driver::backlog::Backlog;
use crate::driver::callbacks::Callbacks;
use crate::driver::handoff::{self, INLINE_MAX, Received, RecvError};
use crate::ended::Ended;
use crate::error::Error;
use crate::listener::{DEFAULT_CHANNEL_LIMIT, EVENT_CHARGE, Event, charge};
use crate::message::Message;
use crate::request::Request;
use crate::response::Response;
use crate::websocket::{SendTimeoutError, WebSocket};

/// Connects to `url` with the default [`Client`] and blocks until the socket is open.
///
/// For scripts, command-line tools and integration tests. The wait is bounded by the client's
/// connect and read timeouts (10 s each by default). Use [`Client::connect`] for other settings
/// or a [`Request`] with headers and subprotocols.
///
/// ```
/// let server = syncws::EchoServer::start()?;
/// let mut conn = syncws::connect(&server.url())?;
/// conn.send("hello");
/// assert_eq!(conn.recv()?, syncws::Message::Text("hello".into()));
/// conn.close(1000, Some("bye"))?;
/// // After a clean close, `recv` says how it ended.
/// assert!(matches!(conn.recv(), Err(syncws::Error::Closed { code: 1000, .. })));
/// # Ok::<(), syncws::Error>(())
/// ```
pub fn connect(url: &str) -> Result<Connection, Error> {
    static DEFAULT: OnceLock<Client> = OnceLock::new();
    let request = Request::builder(url).build()?;
    DEFAULT.get_or_init(Client::new).connect(request)
}

impl Client {
    /// Connects and blocks until the socket is open (`Ok`) or the handshake failed (`Err`,
    /// the same error `on_failure` would get; for a refused upgrade
    /// [`Error::response`] is the server's answer). The connect and the handshake run on the
    /// calling thread; the open socket then gets its reader and writer threads.
    ///
    /// The wait is bounded by this client's connect and read timeouts, unless they are zero.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let client = syncws::Client::builder().ping_interval(Duration::from_secs(20)).build();
    /// let request = syncws::Request::builder("wss://example.com/feed")
    ///     .header("Authorization", "Bearer t")
    ///     .build()?;
    /// let mut conn = client.connect(request)?;
    /// while let Some(message) = conn.recv_timeout(Duration::from_secs(30))? {
    ///     println!("{message:?}");
    /// }
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn connect(&self, request: Request) -> Result<Connection, Error> {
        let backlog = Arc::new(Backlog::new(DEFAULT_CHANNEL_LIMIT));
        let (tx, events) = handoff::handoff(backlog.clone());
        let (ws, response) = self.connect_fed(request, backlog, Box::new(Feed(tx)))?;
        Ok(Connection {
            ws,
            events,
            response,
            ended: None,
        })
    }
}

/// An open web socket used by blocking calls: [`recv`](Self::recv) waits for the next message.
///
/// Made by [`connect`] or [`Client::connect`]. Messages are buffered up to 4 MiB
/// ([`DEFAULT_CHANNEL_LIMIT`], each message counted as its
/// payload plus [`EVENT_CHARGE`]); past that the socket stops
/// reading until `recv` catches up, so a fast peer cannot exhaust memory (see
/// [`channel`](crate::channel) for what a full buffer does to pings and to the peer's close).
/// Everything else is as for [`WebSocket`]: `send` and `close` never block, all queued messages
/// go out before the close frame, timeouts and protocol errors end the socket with an
/// [`Error`], which the next `recv` returns.
///
/// Dropping a `Connection` starts a graceful close with 1000 (if none was started): the queued
/// messages and the close frame still go out, on the socket's own threads. Clone
/// [`websocket`](Self::websocket) to send from other threads; the close on drop applies to it
/// too.
///
/// ```
/// use std::time::Duration;
/// let server = syncws::EchoServer::start()?;
/// let mut conn = syncws::connect(&server.url())?;
/// assert_eq!(conn.response().status(), 101);
/// assert_eq!(conn.recv_timeout(Duration::from_millis(50))?, None); // nothing sent yet
/// conn.send(vec![1u8, 2, 3]);
/// assert_eq!(conn.recv()?, syncws::Message::Binary(vec![1, 2, 3]));
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct Connection {
    ws: WebSocket,
    events: handoff::Receiver<Event>,
    response: Response,
    /// How the socket ended, once `recv` saw it: every later `recv` says the same.
    ended: Option<Ended>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("ws", &self.ws)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The server's response to the opening handshake.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The socket, for [`queue_size`](WebSocket::queue_size), [`state`](WebSocket::state), or
    /// sending from other threads (clone it).
    pub fn websocket(&self) -> &WebSocket {
        &self.ws
    }

    /// A snapshot of the connection's traffic, as [`WebSocket::stats`].
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// let server = syncws::EchoServer::start()?;
    /// let mut conn = syncws::connect(&server.url())?;
    /// conn.send(vec![0u8; 100]);
    /// conn.recv()?;
    /// assert_eq!(conn.stats().bytes_received, 100);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> crate::stats::Stats {
        self.ws.stats()
    }

    /// Queues a message, as [`WebSocket::send`]: false if the socket is closing or closed, or
    /// the send queue is full (which starts a close with 1001). Never blocks.
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.ws.send(message)
    }

    /// Queues a message, waiting up to `timeout` for room in the send queue, as
    /// [`WebSocket::send_timeout`]: never refuses a message for a full queue before the
    /// timeout, and never starts the 1001 close `send` starts then.
    pub fn send_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.ws.send_timeout(message, timeout)
    }

    /// Waits up to `timeout` until everything queued has been written, as
    /// [`WebSocket::wait_drained`].
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        self.ws.wait_drained(timeout)
    }

    /// Starts a graceful close, as [`WebSocket::close`]. Keep calling [`recv`](Self::recv) to
    /// read what the peer still sends and to learn how the close ended
    /// ([`Error::Closed`] when both sides completed it).
    pub fn close(&self, code: u16, reason: Option<&str>) -> Result<bool, Error> {
        self.ws.close(code, reason)
    }

    /// Waits for the next message.
    ///
    /// Once the socket has ended, returns [`Error::Closed`] with the peer's code and reason
    /// after a clean close, or the error that ended it; and the same on every later call.
    pub fn recv(&mut self) -> Result<Message, Error> {
        loop {
            // No deadline: `None` comes only from a timeout, so keep waiting.
            if let Some(m) = self.next(None)? {
                return Ok(m);
            }
        }
    }

    /// Waits up to `timeout` for the next message: `Ok(None)` if none came in time. Once the
    /// socket has ended, returns `Err` as [`recv`](Self::recv) does.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        let deadline = LazyDeadline::new(timeout);
        self.next(Some(deadline))
    }

    /// The next message, `Ok(None)` once `deadline` has passed, or how the socket ended.
    fn next(&mut self, mut deadline: Option<LazyDeadline>) -> Result<Option<Message>, Error> {
        loop {
            if let Some(ended) = &self.ended {
                return Err(error_of(ended));
            }
            match self
                .events
                .recv(|| deadline.as_mut().map(LazyDeadline::remaining))
                .map(event)
            {
                Ok(event) => {
                    if let Some(m) = self.take(event) {
                        return Ok(Some(m));
                    }
                }
                Err(RecvError::Timeout) => return Ok(None),
                Err(RecvError::Disconnected) => {
                    self.ended = Some(Ended::Failed {
                        error: Error::Canceled,
                        response: None,
                    });
                }
            }
        }
    }

    /// Handles one event: a message is returned, the end is remembered.
    fn take(&mut self, event: Event) -> Option<Message> {
        match event {
            Event::Message(m) => return Some(m),
            Event::Ended(ended) => self.ended = Some(ended),
            // Nothing else is handed over (see `Feed`).
            _ => {}
        }
        None
    }
}

/// The error every `recv` after the end returns: the same each time.
fn error_of(ended: &Ended) -> Error {
    match ended {
        Ended::Closed { code, reason, .. } => Error::Closed {
            code: *code,
            reason: reason.clone(),
        },
        Ended::Failed { error, .. } => error.clone(),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Ok(false) when a close was already started or the socket ended: nothing to do.
        let _ = self.ws.close(1000, None);
    }
}

/// The reader's side of a `Connection`: events go to the caller's thread in batches, one per
/// read of the reader (and at once for the open, the peer's close and the end).
struct Feed(handoff::Sender<Event>);

impl Feed {
    fn push(&mut self, event: Event) {
        let charge = charge(&event);
        self.0.push(event, charge);
    }
}

impl Callbacks for Feed {
    // No `open`: `Client::connect` upgraded on the caller's thread and has the response.
    fn message(&mut self, message: Message) {
        if message.len() <= INLINE_MAX {
            // Copied into the batch, and freed here; the caller's thread makes its own copy.
            let charge = message.len().saturating_add(EVENT_CHARGE);
            let text = matches!(message, Message::Text(_));
            self.0.push_bytes(text, message.as_bytes(), charge);
        } else {
            self.push(Event::Message(message));
        }
    }
    // No `closing` either: a `Connection` answers the peer's close itself and reports the
    // end that follows, so waking its caller for the close frame would be a wasted hand-off.
    fn ended(&mut self, ended: Ended) {
        self.push(Event::Ended(ended));
        self.0.flush();
    }
    fn flush(&mut self) {
        self.0.flush();
    }
}

/// A `recv_timeout` deadline whose clock is read only when the receive has to wait, and then
/// once: a message already waiting costs no clock read.
struct LazyDeadline {
    timeout: Duration,
    deadline: Option<Option<Instant>>,
}

impl LazyDeadline {
    fn new(timeout: Duration) -> Self {
        LazyDeadline {
            timeout,
            deadline: None,
        }
    }

    /// The time left: the whole timeout on the first call, then what remains of it.
    fn remaining(&mut self) -> Duration {
        match self.deadline {
            None => {
                // Set on the first wait, which the receiver starts at once.
                self.deadline = Some(Instant::now().checked_add(self.timeout));
                self.timeout
            }
            // A timeout too large to add to now means none.
            Some(None) => Duration::MAX,
            Some(Some(d)) => d.saturating_duration_since(Instant::now()),
        }
    }
}

/// An event as the caller's thread receives it: a small message is made here, from the
/// batch's bytes (valid UTF-8 for text: the decoder checked it).
fn event(received: Received<Event>) -> Event {
    match received {
        Received::Other(event) => event,
        Received::Bytes { text: false, bytes } => Event::Message(Message::Binary(bytes)),
        Received::Bytes { text: true, bytes } => match String::from_utf8(bytes) {
            Ok(s) => Event::Message(Message::Text(s)),
            // Cannot happen (the decoder validated it); a binary message says what came.
            Err(e) => Event::Message(Message::Binary(e.into_bytes())),
        },
    }
}
