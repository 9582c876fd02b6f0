//! An in-memory [`WebSocketFactory`] for unit tests without sockets.
//!
//! The sockets it makes are real `WebSocket`s (the same session, queue and listener rules)
//! with no connection and no threads: the test plays the network. It drives the listener
//! (open, messages, the peer's close, the end) on its own thread, deterministically, and reads
//! back every `send`, `close` and `cancel` the code under test made, in order.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::Config;
use crate::driver::Socket;
use crate::driver::driven::{Did, Driven};
use crate::error::Error;
use crate::factory::WebSocketFactory;
use crate::listener::{Bound, WebSocketListener};
use crate::message::Message;
use crate::proto::Role;
use crate::request::Request;
use crate::response::Response;
use crate::websocket::{State, WebSocket};

/// A [`WebSocketFactory`] whose sockets live in memory; the test drives them through
/// [`FakeSocket`].
///
/// Hand it to the code under test where it expects a factory, then take the sockets it made
/// with [`next_socket`](Self::next_socket) (in the order they were made).
///
/// ```
/// use std::sync::Arc;
/// use syncws::testing::{FakeFactory, Sent};
/// use syncws::{Message, Request, WebSocketFactory};
///
/// // The code under test: it opens a socket, says hello once open, and echoes in upper case.
/// fn start(factory: &dyn WebSocketFactory) {
///     let listener = syncws::Listener::new()
///         .on_open(|ws, _| {
///             ws.send("hello");
///         })
///         .on_message(|ws, m| {
///             if let Message::Text(t) = m {
///                 ws.send(t.to_uppercase());
///             }
///         });
///     let request = Request::builder("wss://example.com/feed").build().unwrap();
///     factory.new_web_socket(request, Box::new(listener));
/// }
///
/// let fake = FakeFactory::new();
/// start(&fake);
/// let socket = fake.next_socket().expect("the code opened a socket");
/// assert_eq!(socket.request().url().as_str(), "wss://example.com/feed");
/// socket.open();
/// socket.message("ping me");
/// assert_eq!(
///     socket.sent(),
///     vec![Sent::Message("hello".into()), Sent::Message("PING ME".into())]
/// );
/// ```
#[derive(Clone, Default)]
pub struct FakeFactory {
    made: Arc<Mutex<Made>>,
    config: Config,
}

#[derive(Default)]
struct Made {
    sockets: Vec<FakeSocket>,
    /// How many `next_socket` has handed out.
    taken: usize,
}

impl std::fmt::Debug for FakeFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFactory")
            .field("sockets", &self.made().sockets.len())
            .finish()
    }
}

impl FakeFactory {
    /// A factory with the client's default settings (the 16 MiB `max_queue_size` among them).
    ///
    /// ```
    /// let fake = syncws::testing::FakeFactory::new();
    /// assert_eq!(fake.socket_count(), 0);
    /// ```
    pub fn new() -> FakeFactory {
        FakeFactory::default()
    }

    /// A factory whose sockets have `max_queue_size` bytes of send queue (to test what the
    /// code under test does when `send` refuses).
    ///
    /// ```
    /// use syncws::testing::{FakeFactory, Sent};
    /// use syncws::WebSocketFactory;
    /// let fake = FakeFactory::with_max_queue_size(4);
    /// let request = syncws::Request::builder("ws://example.com/").build().unwrap();
    /// let ws = fake.new_web_socket(request, Box::new(syncws::Listener::new()));
    /// fake.next_socket().unwrap().open();
    /// assert!(ws.send("four"));
    /// assert!(!ws.send("more"), "over the limit: refused, and a close with 1001 is queued");
    /// ```
    pub fn with_max_queue_size(bytes: u64) -> FakeFactory {
        let config = Config {
            max_queue_size: bytes,
            ..Config::default()
        };
        FakeFactory {
            made: Arc::default(),
            config,
        }
    }

    fn made(&self) -> MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next socket the code under test made that this has not handed out yet, in the
    /// order they were made; `None` if there is none (the code made no new socket).
    ///
    /// ```
    /// use syncws::WebSocketFactory;
    /// let fake = syncws::testing::FakeFactory::new();
    /// assert!(fake.next_socket().is_none());
    /// let request = syncws::Request::builder("ws://example.com/").build().unwrap();
    /// fake.new_web_socket(request, Box::new(syncws::Listener::new()));
    /// assert!(fake.next_socket().is_some());
    /// assert!(fake.next_socket().is_none());
    /// ```
    pub fn next_socket(&self) -> Option<FakeSocket> {
        let mut made = self.made();
        let socket = made.sockets.get(made.taken).cloned()?;
        made.taken += 1;
        Some(socket)
    }

    /// Every socket made so far, in order.
    ///
    /// ```
    /// let fake = syncws::testing::FakeFactory::new();
    /// assert!(fake.sockets().is_empty());
    /// ```
    pub fn sockets(&self) -> Vec<FakeSocket> {
        self.made().sockets.clone()
    }

    /// How many sockets were made.
    ///
    /// ```
    /// assert_eq!(syncws::testing::FakeFactory::new().socket_count(), 0);
    /// ```
    pub fn socket_count(&self) -> usize {
        self.made().sockets.len()
    }
}

impl WebSocketFactory for FakeFactory {
    fn new_web_socket(&self, request: Request, listener: Box<dyn WebSocketListener>) -> WebSocket {
        let (socket, _writer_state) = Socket::new(request, Role::Client, &self.config);
        let ws = WebSocket {
            socket: socket.clone(),
        };
        let callbacks = Bound::new(ws.clone(), listener);
        let socket = FakeSocket {
            ws: ws.clone(),
            driven: Arc::new(Mutex::new(Driven::new(socket, callbacks, &self.config))),
        };
        self.made().sockets.push(socket);
        ws
    }
}

/// What the code under test did to a [`FakeSocket`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// `send` (that returned true).
    Message(Message),
    /// `close(code, reason)`, or the socket's own answer to the peer's close (the peer's code,
    /// or `None` for an empty close), or a failure close (1011 after a listener panicked).
    Close {
        /// The close code; `None` for an empty close frame.
        code: Option<u16>,
        /// The reason.
        reason: String,
    },
    /// `cancel()`.
    Cancel,
}

/// One socket of a [`FakeFactory`]: the test's side of it.
///
/// Each driving method runs the listener's callback on the calling thread before it returns,
/// under the same rules as the real reader thread: `on_open` first, nothing after a `cancel`,
/// one terminal callback, a panic fails the socket with close 1011. Call them from the test,
/// not from inside the listener.
///
/// Everything the code under test sends stays queued (and counted by
/// [`queue_size`](WebSocket::queue_size)) until [`sent`](Self::sent) takes it, as if written
/// then: so a test can fill the queue and see `send` refuse.
#[derive(Clone)]
pub struct FakeSocket {
    ws: WebSocket,
    driven: Arc<Mutex<Driven>>,
}

impl std::fmt::Debug for FakeSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSocket").field("ws", &self.ws).finish()
    }
}

impl FakeSocket {
    fn driven(&self) -> MutexGuard<'_, Driven> {
        self.driven.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request the code under test opened it with.
    ///
    /// ```
    /// use syncws::WebSocketFactory;
    /// let fake = syncws::testing::FakeFactory::new();
    /// let request = syncws::Request::builder("ws://example.com/chat")
    ///     .subprotocol("chat.v2")
    ///     .build()?;
    /// fake.new_web_socket(request, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// assert_eq!(socket.request().url().as_str(), "ws://example.com/chat");
    /// assert_eq!(socket.request().subprotocols(), ["chat.v2"]);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn request(&self) -> &crate::Request {
        self.ws.request()
    }

    /// The socket as the code under test holds it.
    ///
    /// ```
    /// let fake = syncws::testing::FakeFactory::new();
    /// # use syncws::WebSocketFactory;
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// assert_eq!(socket.websocket().state(), syncws::State::Connecting);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn websocket(&self) -> &WebSocket {
        &self.ws
    }

    /// The socket's state (as [`WebSocket::state`]).
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// socket.open();
    /// assert_eq!(socket.state(), syncws::State::Open);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn state(&self) -> State {
        self.ws.state()
    }

    /// The handshake succeeded with a plain `101 Switching Protocols`: `on_open`.
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// socket.open();
    /// assert!(socket.websocket().send("now it flows"));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn open(&self) {
        self.open_with(Response::switching_protocols());
    }

    /// The handshake succeeded with `response` (a chosen subprotocol, headers): `on_open`.
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// let response = syncws::Response::switching_protocols().with_header("Sec-WebSocket-Protocol", "chat.v2");
    /// socket.open_with(response);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn open_with(&self, response: Response) {
        self.driven().open(&response);
    }

    /// A message arrived from the peer: `on_message`.
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// let fake = syncws::testing::FakeFactory::new();
    /// let (listener, events) = syncws::channel();
    /// fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(listener));
    /// let socket = fake.next_socket().unwrap();
    /// socket.open();
    /// socket.message(vec![1u8, 2, 3]);
    /// assert!(matches!(events.try_recv(), Ok(syncws::Event::Open(_))));
    /// assert!(matches!(events.try_recv(), Ok(syncws::Event::Message(syncws::Message::Binary(b))) if b == [1, 2, 3]));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn message(&self, message: impl Into<Message>) {
        self.driven().message(message.into());
    }

    /// The peer's close frame arrived (`code` `None`: an empty close): `on_closing`, after
    /// which the socket answers with the same code unless the listener called `close`.
    ///
    /// ```
    /// use syncws::testing::Sent;
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// socket.open();
    /// socket.closing(Some(1001), "going away");
    /// assert_eq!(socket.sent(), vec![Sent::Close { code: Some(1001), reason: String::new() }]);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn closing(&self, code: Option<u16>, reason: &str) {
        self.driven().closing(code, reason);
    }

    /// The connection ended after the close handshake: the terminal callback (`on_closed`
    /// with the peer's code; a failure with `UnexpectedEof` if the peer never closed, or
    /// `Canceled` after a cancel).
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// let fake = syncws::testing::FakeFactory::new();
    /// let (listener, events) = syncws::channel();
    /// fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(listener));
    /// let socket = fake.next_socket().unwrap();
    /// socket.open();
    /// socket.closing(Some(1000), "done");
    /// socket.closed();
    /// assert_eq!(socket.state(), syncws::State::Closed);
    /// let ended = events.try_iter().last();
    /// assert!(matches!(ended, Some(syncws::Event::Ended(syncws::Ended::Closed { code: 1000, .. }))));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn closed(&self) {
        self.driven().closed();
    }

    /// The connection failed with `error` (a refused handshake: give the server's
    /// `response`): the terminal callback, `on_failure`.
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// let fake = syncws::testing::FakeFactory::new();
    /// let (listener, events) = syncws::channel();
    /// fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(listener));
    /// let socket = fake.next_socket().unwrap();
    /// socket.fail(syncws::Error::UnexpectedEof, None);
    /// assert_eq!(socket.state(), syncws::State::Canceled);
    /// assert!(matches!(events.try_recv(), Ok(syncws::Event::Ended(syncws::Ended::Failed { .. }))));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn fail(&self, error: Error, response: Option<Response>) {
        self.driven().fail(error, response);
    }

    /// Everything the code under test did since the last call, in order: messages sent,
    /// closes (its own and the socket's answers) and a cancel. Taking them counts the
    /// messages as written: [`queue_size`](WebSocket::queue_size) drops by their size.
    ///
    /// ```
    /// use syncws::testing::Sent;
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// let ws = socket.websocket();
    /// ws.send("queued while connecting");
    /// assert_eq!(ws.queue_size(), 23);
    /// ws.cancel();
    /// assert_eq!(
    ///     socket.sent(),
    ///     vec![Sent::Message("queued while connecting".into()), Sent::Cancel]
    /// );
    /// assert_eq!(ws.queue_size(), 0);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn sent(&self) -> Vec<Sent> {
        self.driven()
            .take()
            .into_iter()
            .map(|did| match did {
                Did::Send(m) => Sent::Message(m),
                Did::Close(code, reason) => Sent::Close { code, reason },
                Did::Cancel => Sent::Cancel,
            })
            .collect()
    }

    /// Whether the socket has ended (its terminal callback was delivered).
    ///
    /// ```
    /// # use syncws::WebSocketFactory;
    /// # let fake = syncws::testing::FakeFactory::new();
    /// # fake.new_web_socket(syncws::Request::builder("ws://h/").build()?, Box::new(syncws::Listener::new()));
    /// let socket = fake.next_socket().unwrap();
    /// assert!(!socket.is_ended());
    /// socket.fail(syncws::Error::UnexpectedEof, None);
    /// assert!(socket.is_ended());
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn is_ended(&self) -> bool {
        self.driven().is_ended()
    }
}
