//! The blocking API: connect and get an open socket or an error; receive the next message or
//! time out. Built on the listener model (a [`channel`](crate::channel) under a
//! [`WebSocket`]), so it has the same threads, limits and guarantees.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::client::Client;
use crate::ended::Ended;
use crate::error::Error;
use crate::listener::{Event, Events, channel};
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
    /// [`Error::response`] is the server's answer).
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
        let (listener, events) = channel();
        let ws = self.new_web_socket(request, listener);
        loop {
            match events.recv() {
                Ok(Event::Open(response)) => {
                    return Ok(Connection {
                        ws,
                        events,
                        response,
                        ended: None,
                    });
                }
                Ok(Event::Ended(ended)) => return Err(ended.into_error()),
                // Nothing else comes before the open or the end.
                Ok(_) => {}
                Err(_) => return Err(Error::Canceled),
            }
        }
    }
}

/// An open web socket used by blocking calls: [`recv`](Self::recv) waits for the next message.
///
/// Made by [`connect`] or [`Client::connect`]. Messages are buffered up to 4 MiB
/// ([`DEFAULT_CHANNEL_LIMIT`](crate::DEFAULT_CHANNEL_LIMIT), each message counted as its
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
#[derive(Debug)]
pub struct Connection {
    ws: WebSocket,
    events: Events,
    response: Response,
    /// How the socket ended, once `recv` saw it: every later `recv` says the same.
    ended: Option<Ended>,
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
        // A timeout too large to add to now means none.
        self.next(Instant::now().checked_add(timeout))
    }

    /// The next message, `Ok(None)` once `deadline` has passed, or how the socket ended.
    fn next(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, Error> {
        loop {
            if let Some(ended) = &self.ended {
                return Err(error_of(ended));
            }
            let event = match deadline {
                Some(d) => self
                    .events
                    .recv_timeout(d.saturating_duration_since(Instant::now())),
                None => self
                    .events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match event {
                Ok(event) => {
                    if let Some(m) = self.take(event) {
                        return Ok(Some(m));
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
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
            // The socket answers the peer's close itself; the end follows.
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
