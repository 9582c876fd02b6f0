//! The public handle of a socket; the state it shares with its threads is in the driver.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{SendError, Socket};
use crate::error::Error;
use crate::message::{Message, MessageKind};
use crate::proto::close;
use crate::request::Request;

pub use crate::proto::session::State;

/// A web socket: a cheap, cloneable, thread-safe handle.
///
/// Created by [`Client::new_web_socket`](crate::Client::new_web_socket) (client role) or handed
/// to a server's listener. No method blocks except [`wait_finished`](Self::wait_finished).
///
/// - [`send`](Self::send) queues a message; messages sent while connecting go out right after
///   the handshake, in order.
/// - [`close`](Self::close) queues a close frame behind every message queued before it; all of
///   them are written first.
/// - [`cancel`](Self::cancel) drops the connection at once, discarding queued messages.
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) socket: Arc<Socket>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("url", &self.socket.request.shown_url())
            .field("state", &self.state())
            .field("queue_size", &self.queue_size())
            .finish()
    }
}

impl WebSocket {
    /// The request this socket was opened with (for a server socket: the client's request).
    pub fn request(&self) -> &Request {
        &self.socket.request
    }

    /// The address of the other end of the TCP connection, once it is connected: the server's
    /// (or, through a proxy, the proxy's) for a client socket, the client's for a server one.
    /// `None` while connecting; still known after the socket ended.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.socket.addrs.get().map(|&(_, peer)| peer)
    }

    /// The local address of the TCP connection, once it is connected.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.socket.addrs.get().map(|&(local, _)| local)
    }

    /// Whether `other` is a handle on this same socket (handles are clones): to find a
    /// socket in a list, such as a chat room's when it leaves.
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// # let server = syncws::EchoServer::start()?;
    /// # let conn = syncws::connect(&server.url())?;
    /// let ws = conn.websocket();
    /// assert!(ws.same_socket(&ws.clone()));
    /// # Ok(()) }
    /// ```
    pub fn same_socket(&self, other: &WebSocket) -> bool {
        std::sync::Arc::ptr_eq(&self.socket, &other.socket)
    }

    /// The application's value attached to this socket, if it is a `T`: on the server what
    /// the handler gave [`Accept::data`](crate::Accept::data), on the client what the request
    /// carried ([`RequestBuilder::data`](crate::RequestBuilder::data)). Every clone of the
    /// handle and every callback sees the same value, for the socket's whole life; for
    /// state that changes, attach a `Mutex` or an atomic.
    ///
    /// ```
    /// struct Room(&'static str);
    /// let server = syncws::EchoServer::start()?;
    /// let request = syncws::Request::builder(&server.url()).data(Room("lobby")).build()?;
    /// let conn = syncws::Client::new().connect(request)?;
    /// assert_eq!(conn.websocket().data::<Room>().map(|r| r.0), Some("lobby"));
    /// assert!(conn.websocket().data::<String>().is_none(), "another type: none");
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn data<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.socket.data.get()?.downcast_ref::<T>()
    }

    /// The socket's identity, for registries keyed by socket (topics).
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.socket) as usize
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.socket.state()
    }

    /// A snapshot of the socket's traffic: messages, payload and wire bytes and frames each
    /// way, the send queue's high-water mark, pings, the last round-trip time, when it opened.
    /// Cheap enough to call often (two short locks, no lock on the send or receive path).
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// let server = syncws::EchoServer::start()?;
    /// let (listener, events) = syncws::channel();
    /// let ws = syncws::Client::new().new_web_socket(syncws::Request::builder(&server.url()).build()?, listener);
    /// ws.send("ping me");
    /// # for e in events.iter() { if matches!(e, syncws::Event::Message(_)) { break; } }
    /// // Counted once written: the echo can come back before the writer has counted it.
    /// assert!(ws.wait_drained(std::time::Duration::from_secs(10)));
    /// let stats = ws.stats();
    /// assert_eq!(stats.messages_sent, 1);
    /// println!("{} bytes on the wire for {} of payload", stats.wire_bytes_sent, stats.bytes_sent);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> crate::stats::Stats {
        self.socket.stats()
    }

    /// Payload bytes queued by `send` and not yet written to the socket (text counted as UTF-8
    /// bytes; framing not included). After a failure it may stay non-zero: those bytes were lost.
    pub fn queue_size(&self) -> u64 {
        self.socket.outbox.queue_size()
    }

    /// Sends a ping with `payload` (at most 125 bytes, RFC 6455 §5.5) now: ahead of queued
    /// data, as the automatic keepalive pings go, which keep working alongside. Its pong comes
    /// to [`WebSocketListener::on_pong`](crate::WebSocketListener::on_pong) with the round
    /// trip (and counts in [`stats`](Self::stats)' `pongs_received` and `last_rtt`). Use a
    /// payload of your own (a counter, a timestamp) to tell your pings' pongs apart.
    ///
    /// Returns false, sending nothing, if the payload is longer than 125 bytes, the socket is
    /// not open (connecting, or its close frame already written), or 1024 of its pings wait in
    /// the queue already (a peer that reads nothing cannot make a loop of pings grow memory).
    /// Of pings not answered yet the newest 16 are remembered for their round trip; an older
    /// one's pong still comes, without it. Never blocks.
    ///
    /// ```
    /// use std::time::Duration;
    /// let server = syncws::EchoServer::start()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let listener = syncws::Listener::new()
    ///     .on_open(|ws, _| {
    ///         ws.ping(&b"42"[..]);
    ///     })
    ///     .on_pong(move |_ws, payload, rtt| {
    ///         let _ = tx.send((payload.to_vec(), rtt));
    ///     });
    /// let request = syncws::Request::builder(&server.url()).build()?;
    /// let ws = syncws::Client::new().new_web_socket(request, listener);
    /// let (payload, rtt) = rx.recv_timeout(Duration::from_secs(5)).expect("a pong");
    /// assert_eq!(payload, b"42");
    /// assert!(rtt.is_some());
    /// # ws.cancel();
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn ping(&self, payload: impl Into<Vec<u8>>) -> bool {
        let payload = payload.into();
        // RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
        if payload.len() > 125 || self.state() != State::Open {
            return false;
        }
        self.socket
            .with_session(|s| s.app_ping_sent(payload.clone(), Instant::now()));
        self.socket.outbox.app_ping(payload)
    }

    /// Queues a message: `&str`/`String` as text, `Vec<u8>`/`&[u8]` as binary.
    ///
    /// Returns false, without queuing, once `close` was called, after the socket failed or
    /// closed, or when the message would push [`queue_size`](Self::queue_size) over the
    /// configured `max_queue_size` (or the queue already holds one message per 64 bytes of
    /// that limit, which bounds floods of tiny messages); then the socket also starts a graceful
    /// close
    /// with 1001. Never blocks.
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.queued(self.socket.send(message.into()))
    }

    /// What the non-blocking sends (`send`, `send_prepared`) make of the admission: a full
    /// queue starts a graceful close with 1001 (a peer too slow to keep up).
    pub(crate) fn queued(&self, admitted: Result<(), SendError>) -> bool {
        match admitted {
            Ok(()) => true,
            Err(SendError::Closed | SendError::TooLarge | SendError::Timeout) => false,
            Err(SendError::Full) => {
                log::warn!(
                    "send queue would exceed {} bytes; closing with 1001",
                    self.socket.outbox.max_queue_size()
                );
                self.socket.close(Some(1001), "");
                false
            }
        }
    }

    /// Queues a message, waiting up to `timeout` for room in the send queue instead of
    /// refusing it: the way for a bulk sender to go as fast as the peer reads.
    ///
    /// Where [`send`](Self::send) refuses a message that would push
    /// [`queue_size`](Self::queue_size) over `max_queue_size` (and closes with 1001), this
    /// waits while it does not fit, and never starts that close. It gives the message back in
    /// the error if the socket is closing or ended ([`SendTimeoutError::Closed`]), if the
    /// message is larger than `max_queue_size` on its own and so can never fit
    /// ([`SendTimeoutError::TooLarge`]; `send` would close the socket with 1001), or if there
    /// was still no room after `timeout` ([`SendTimeoutError::Timeout`]). A message that fits
    /// goes in at once, exactly as with `send`. `Duration::MAX` waits for as long as it takes.
    ///
    /// It blocks the calling thread, so do not call it from a listener callback with a long
    /// timeout: callbacks run on the socket's reader thread, which reads nothing while it
    /// waits (a peer that stops reading until it is read from would then hold it until the
    /// timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// let server = syncws::EchoServer::start()?;
    /// let mut conn = syncws::connect(&server.url())?;
    /// let ws = conn.websocket();
    /// for i in 0..1000u32 {
    ///     ws.send_timeout(i.to_be_bytes().to_vec(), Duration::from_secs(10))
    ///         .expect("the echo server reads");
    /// }
    /// assert!(ws.wait_drained(Duration::from_secs(10)));
    /// # for _ in 0..1000 { conn.recv()?; }
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn send_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        match self.socket.outbox.send_waiting(message.into(), timeout) {
            Ok(()) => Ok(()),
            Err((SendError::TooLarge, m)) => Err(SendTimeoutError::TooLarge(m)),
            Err((SendError::Timeout | SendError::Full, m)) => Err(SendTimeoutError::Timeout(m)),
            Err((SendError::Closed, m)) => Err(SendTimeoutError::Closed(m)),
        }
    }

    /// Sends what `source` yields, to its end, as one message of `kind`, without holding it
    /// whole: it is read a part at a time (the fragment size, at most half of
    /// `max_queue_size`) and each part goes out as one frame. Returns the bytes sent once the
    /// last part is queued (as [`send`](Self::send) returns once a message is queued;
    /// [`wait_drained`](Self::wait_drained) says when it is written).
    ///
    /// - **Backpressure**: each part counts in [`queue_size`](Self::queue_size) as it is
    ///   read, and the next is read only once the queue has room for it, so a slow peer holds
    ///   the reading back and memory stays at a few parts, whatever the size of the source.
    /// - **Contiguous**: the message's frames go out with no other data message between
    ///   them; messages other threads send meanwhile are queued behind it. Pings and pongs
    ///   still go between its frames (RFC 6455 §5.4). One streamed message at a time: a
    ///   second `send_stream` on the same socket waits for the first.
    /// - **Compression**: with permessage-deflate, the message is compressed as one,
    ///   across its frames.
    /// - [`cancel`](Self::cancel) (or a failure) ends it at once: the call returns the
    ///   socket's error. [`close`](Self::close) from another thread waits for it: the close
    ///   frame goes behind its last part (the state stays `Open` until then).
    /// - **A failing source**: an error from `source` (or, for text, bytes that are not UTF-8)
    ///   is returned as [`Error::MessageSource`]. If nothing of the message was queued yet,
    ///   the socket is untouched; otherwise it fails with close 1011, because a message
    ///   cannot be taken back once its first frame is out and a truncated one would be
    ///   delivered as if whole.
    ///
    /// It blocks the calling thread for as long as the source takes and the queue is full,
    /// so do not call it from a listener callback: callbacks run on the socket's reader
    /// thread. A text message's parts are checked as UTF-8 as they are read.
    ///
    /// ```
    /// use syncws::MessageKind;
    /// let server = syncws::EchoServer::start()?;
    /// let mut conn = syncws::connect(&server.url())?;
    /// let file: &[u8] = &[7u8; 100_000]; // a `File` works the same
    /// let sent = conn.websocket().send_stream(MessageKind::Binary, file)?;
    /// assert_eq!(sent, 100_000);
    /// assert_eq!(conn.recv()?.len(), 100_000);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn send_stream(&self, kind: MessageKind, mut source: impl Read) -> Result<u64, Error> {
        self.socket
            .send_stream(kind == MessageKind::Text, &mut source)
    }

    /// Waits up to `timeout` until everything queued has been written to the connection
    /// ([`queue_size`](Self::queue_size) is 0): true once it is, false at the timeout or if
    /// the socket failed first (what was still queued is lost).
    ///
    /// "Written" means handed to the operating system, not received by the peer. After a
    /// clean close it is true: what the peer did not take after its close frame is discarded,
    /// as `queue_size` says. Like [`send_timeout`](Self::send_timeout), do not call it from a
    /// callback with a long timeout.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let socket = &self.socket;
        socket.outbox.wait_drained(deadline, || socket.has_failed())
    }

    /// Starts a graceful close: queues a close frame with `code` and `reason` behind every
    /// message already queued.
    ///
    /// Returns `Ok(true)` if this call started the close, `Ok(false)` if a close was already
    /// started or the socket is finished. Codes outside 1000–4999, the reserved 1004–1006 and
    /// 1015–2999, and reasons over 123 UTF-8 bytes are refused with `Err`.
    ///
    /// Once our close frame is written the peer has the close timeout to answer; otherwise the
    /// socket fails with [`Error::CloseTimeout`].
    pub fn close(&self, code: u16, reason: Option<&str>) -> Result<bool, Error> {
        let reason = reason.unwrap_or("");
        close::validate(code, reason)?;
        Ok(self.socket.close(Some(code), reason))
    }

    /// Drops the connection now, discarding queued messages. The listener gets
    /// `on_failure(Error::Canceled)` unless the socket had already finished. Never blocks; also
    /// interrupts a handshake in progress (once the TCP connect returns).
    ///
    /// Once it returns, no callback but the terminal one is entered. A callback already
    /// running is not waited for (`cancel` never waits for application code); to know the
    /// listener is done, call [`wait_finished`](Self::wait_finished) from outside it.
    pub fn cancel(&self) {
        self.socket.cancel();
    }

    /// Blocks until the socket has finished (its terminal callback delivered, its listener
    /// dropped and both of its threads released to the pool) or `timeout` passed. Returns
    /// whether it finished.
    ///
    /// Called from one of the socket's own callbacks it returns false at once instead of
    /// waiting for itself.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        if self.socket.on_reader_thread() {
            return self.socket.is_finished();
        }
        // A timeout too large to add to now means "forever".
        self.socket
            .wait_finished(Instant::now().checked_add(timeout))
    }
}

/// Why [`WebSocket::send_timeout`] did not queue a message; each variant gives the message back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendTimeoutError {
    /// There was still no room in the send queue at the timeout. The socket is open; try
    /// again, or give up on the peer.
    Timeout(Message),
    /// The socket is closing or has ended: nothing more can be sent on it.
    Closed(Message),
    /// The message is larger than `max_queue_size` on its own, so it can never be queued.
    /// Raise [`ClientBuilder::max_queue_size`](crate::ClientBuilder::max_queue_size) or
    /// split the message.
    TooLarge(Message),
}

impl SendTimeoutError {
    /// The message that was not queued.
    pub fn into_message(self) -> Message {
        match self {
            SendTimeoutError::Timeout(m)
            | SendTimeoutError::Closed(m)
            | SendTimeoutError::TooLarge(m) => m,
        }
    }
}

impl std::fmt::Display for SendTimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendTimeoutError::Timeout(m) => write!(
                f,
                "no room in the send queue for a {}-byte message before the timeout: the peer \
                 reads slower than messages are sent",
                m.len()
            ),
            SendTimeoutError::Closed(_) => {
                write!(
                    f,
                    "the socket is closing or closed: the message was not sent"
                )
            }
            SendTimeoutError::TooLarge(m) => write!(
                f,
                "a {}-byte message can never fit in the send queue: it is larger than \
                 max_queue_size",
                m.len()
            ),
        }
    }
}

impl std::error::Error for SendTimeoutError {}
