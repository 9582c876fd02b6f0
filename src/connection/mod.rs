//! The blocking API: connect and get an open socket or an error; receive the next message or
//! time out. A [`WebSocket`] whose reader hands its events to the caller's thread in batches
//! (`driver/handoff.rs`: one hand-off per read instead of one per message), bounded as
//! [`channel`](crate::channel) is; the same threads, limits and guarantees.

mod feed;
mod stream;

pub use stream::MessageReader;
pub(crate) use stream::io_error;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::driver::backlog::Backlog;
use crate::driver::handoff::{self, RecvError};
use crate::ended::Ended;
use crate::error::Error;
use crate::listener::DEFAULT_CHANNEL_LIMIT;
use crate::message::{Message, MessageKind};
use crate::request::Request;
use crate::response::Response;
use crate::websocket::{SendTimeoutError, WebSocket};
use feed::{Feed, Handed, Modes, handed};

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
    let request = Request::builder(url).build()?;
    default_client().connect(request)
}

/// The client `connect` (and `ByteStream::connect`) use: made once, its threads pooled.
pub(crate) fn default_client() -> &'static Client {
    static DEFAULT: OnceLock<Client> = OnceLock::new();
    DEFAULT.get_or_init(Client::new)
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
        self.connect_connection(request, false)
    }

    /// `connect`, the connection a byte stream's (`byte_stream`) from its start.
    pub(crate) fn connect_connection(
        &self,
        request: Request,
        byte_stream: bool,
    ) -> Result<Connection, Error> {
        let (feed, half) = Connection::feed(self.streams_from_start(), byte_stream);
        let backlog = half.backlog.clone();
        let (ws, response) = self.connect_fed(request, backlog, Box::new(feed))?;
        Ok(half.into_connection(ws, response, self.max_message_size()))
    }
}

/// An open web socket used by blocking calls: [`recv`](Self::recv) waits for the next message.
///
/// Made by [`connect`] or [`Client::connect`]. Messages are buffered up to 4 MiB
/// ([`DEFAULT_CHANNEL_LIMIT`], each message counted as its
/// payload plus [`EVENT_CHARGE`](crate::EVENT_CHARGE)); past that the socket stops
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
    events: handoff::Receiver<Handed>,
    response: Response,
    /// How the socket ended, once `recv` saw it: every later `recv` says the same.
    ended: Option<Ended>,
    /// The largest message `recv` puts together from parts.
    max_message_size: u64,
    /// Shared with the reader: how this connection receives (parts, a byte stream).
    modes: Arc<Modes>,
    /// Dropping it closes the socket (a byte stream's halves close it themselves).
    close_on_drop: bool,
    /// A large message `recv_timeout` was putting together from parts when it timed out.
    assembling: Option<(MessageKind, Vec<u8>)>,
    /// A stream was dropped before its end: the rest of its parts are skipped.
    skipping: bool,
}

/// A `Connection` before its socket exists: the receiving half of the hand-off, whose
/// sending half ([`Feed`]) becomes the socket's callbacks.
pub(crate) struct Unconnected {
    events: handoff::Receiver<Handed>,
    backlog: Arc<Backlog>,
    modes: Arc<Modes>,
}

impl Unconnected {
    /// The `Connection` of the socket `ws`, opened with `response`.
    pub(crate) fn into_connection(
        self,
        ws: WebSocket,
        response: Response,
        max_message_size: u64,
    ) -> Connection {
        let _ = ws.socket.pause.backlog.set(self.backlog);
        Connection {
            ws,
            events: self.events,
            response,
            ended: None,
            max_message_size,
            modes: self.modes,
            close_on_drop: true,
            assembling: None,
            skipping: false,
        }
    }
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
    /// The two halves of a connection's hand-off: the socket's callbacks, and the rest.
    /// `parts`: large messages come in parts from the start; `byte_stream`: the connection
    /// of a byte stream from the start (before anything is read, so that a peer that writes
    /// and closes at once is heard as a byte stream's peer).
    pub(crate) fn feed(parts: bool, byte_stream: bool) -> (Feed, Unconnected) {
        let backlog = Arc::new(Backlog::new(DEFAULT_CHANNEL_LIMIT));
        let (tx, events) = handoff::handoff(backlog.clone());
        let modes = Arc::new(Modes::default());
        modes.parts.store(parts || byte_stream, Ordering::Relaxed);
        modes.half_close.store(byte_stream, Ordering::Relaxed);
        (
            Feed::new(tx, modes.clone()),
            Unconnected {
                events,
                backlog,
                modes,
            },
        )
    }

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

    /// Sends a ping with `payload` (at most 125 bytes) and waits up to `timeout` for its pong:
    /// the round trip, or `None` if it was not sent (payload too long, socket not open: see
    /// [`WebSocket::ping`]) or not answered in time. Messages arriving meanwhile wait for
    /// `recv` as usual; the automatic keepalive pings go on alongside. Use a payload of your
    /// own per call (a counter) when several threads ping at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let server = syncws::EchoServer::start()?;
    /// let conn = syncws::connect(&server.url())?;
    /// let rtt = conn.ping(&b"1"[..], Duration::from_secs(5)).expect("a pong");
    /// assert!(rtt < Duration::from_secs(5));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn ping(&self, payload: impl Into<Vec<u8>>, timeout: Duration) -> Option<Duration> {
        let payload = payload.into();
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.modes.pong_waiters.lock().push((payload.clone(), tx));
        let rtt = if self.ws.ping(payload.clone()) {
            rx.recv_timeout(timeout).ok()
        } else {
            None
        };
        if rtt.is_none() {
            let mut waiters = self.modes.pong_waiters.lock();
            if let Some(i) = waiters.iter().position(|(p, _)| *p == payload) {
                waiters.swap_remove(i);
            }
        }
        rtt
    }

    /// Sends what `source` yields as one message of `kind`, streamed a part at a time, as
    /// [`WebSocket::send_stream`]: blocks while the send queue is full, returns the bytes
    /// sent once the last part is queued.
    pub fn send_stream(&self, kind: MessageKind, source: impl std::io::Read) -> Result<u64, Error> {
        self.ws.send_stream(kind, source)
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

    /// The next message, `Ok(None)` once `deadline` has passed, or how the socket ended. A
    /// large message that came in parts (once a stream was asked for) is put together,
    /// within `max_message_size`.
    fn next(&mut self, mut deadline: Option<LazyDeadline>) -> Result<Option<Message>, Error> {
        loop {
            let part = match self.next_handed(deadline.as_mut())? {
                None => return Ok(None),
                Some(Handed::Message(m)) => return Ok(Some(m)),
                Some(Handed::Part(part)) => part,
                Some(Handed::Ended(_) | Handed::PeerClosed) => continue,
            };
            let kind = if part.text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            let (_, data) = self.assembling.get_or_insert((kind, Vec::new()));
            let size = (data.len() as u64).saturating_add(part.data.len() as u64);
            if size > self.max_message_size {
                // What `recv` would have refused whole: the socket fails as it would have.
                self.assembling = None;
                self.skipping = !part.last;
                self.ws.socket.fail_with_close(Error::MessageTooLarge {
                    size,
                    limit: self.max_message_size,
                });
                continue;
            }
            if data.is_empty() {
                *data = part.data;
            } else {
                data.extend_from_slice(&part.data);
            }
            if !part.last {
                continue;
            }
            let Some((kind, data)) = self.assembling.take() else {
                continue;
            };
            return Ok(Some(match kind {
                MessageKind::Binary => Message::Binary(data),
                // Each part ended on a whole character (the decoder saw to it).
                MessageKind::Text => match String::from_utf8(data) {
                    Ok(s) => Message::Text(s),
                    Err(e) => Message::Binary(e.into_bytes()),
                },
            }));
        }
    }

    /// The next thing handed over, parts of a dropped stream skipped: `Ok(None)` once
    /// `deadline` has passed; the end is remembered and returned as its error (as now on).
    fn next_handed(
        &mut self,
        mut deadline: Option<&mut LazyDeadline>,
    ) -> Result<Option<Handed>, Error> {
        loop {
            if let Some(ended) = &self.ended {
                return Err(error_of(ended));
            }
            let received = self
                .events
                .recv(|| deadline.as_mut().map(|d| d.remaining()))
                .map(handed);
            match received {
                Ok(Handed::Ended(ended)) => self.ended = Some(ended),
                // Only a byte stream takes it; `recv` waits for the end that follows.
                Ok(Handed::PeerClosed) if !self.modes.half_close.load(Ordering::Relaxed) => {}
                Ok(Handed::Part(p)) if self.skipping => self.skipping = !p.last,
                Ok(handed) => return Ok(Some(handed)),
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

    /// From now on large messages come in parts (for a stream); `recv` puts them together.
    fn want_parts(&self) {
        self.modes.parts.store(true, Ordering::Relaxed);
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
        if self.close_on_drop {
            let _ = self.ws.close(1000, None);
        }
    }
}

/// A `recv_timeout` deadline whose clock is read only when the receive has to wait, and then
/// once: a message already waiting costs no clock read.
pub(crate) struct LazyDeadline {
    timeout: Duration,
    deadline: Option<Option<Instant>>,
}

impl LazyDeadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        LazyDeadline {
            timeout,
            deadline: None,
        }
    }

    /// The time left: the whole timeout on the first call, then what remains of it.
    pub(crate) fn remaining(&mut self) -> Duration {
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
