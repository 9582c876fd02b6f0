//! How the application hears about a socket: a trait, closures, or a channel of events.

use crate::error::Error;
use crate::message::Message;
use crate::response::Response;
use crate::websocket::WebSocket;

/// Receives a socket's events. Every method has a default that does nothing.
///
/// # Guarantees
/// - All callbacks of one socket run on that socket's reader thread, one at a time, in wire
///   order: `on_open` first (if the handshake succeeds), then messages, `on_closing` when the
///   peer's close frame arrives, then exactly one of `on_closed` or `on_failure`, and nothing
///   after it. Failures found by the writer thread, a timer or [`WebSocket::cancel`] are
///   reported from that same thread.
/// - Callbacks may call `send`, `close` and `cancel` on their own socket: none of them blocks.
/// - A slow callback delays reading on its own socket only (and so the peer's writes, through
///   TCP flow control); pings keep being answered once it returns.
/// - A panic in a callback is caught: the socket sends close 1011 and reports
///   [`Error::ListenerPanicked`] through `on_failure`. A panic in `on_closed` or `on_failure` is
///   logged and swallowed.
#[allow(unused_variables)]
pub trait WebSocketListener: Send + 'static {
    /// The handshake succeeded; messages may flow.
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {}
    /// A whole message arrived (fragments reassembled, text checked as UTF-8).
    fn on_message(&mut self, ws: &WebSocket, message: Message) {}
    /// The peer sent its close frame. Unless `close` was called already, the socket answers with
    /// the same code right after this returns; call `close` here to answer differently.
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {}
    /// Both close frames were exchanged and the connection is closed. Carries the peer's code
    /// and reason. Terminal.
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {}
    /// The socket failed: handshake error, network error, protocol violation by the peer,
    /// timeout, or cancel. `response` is the server's answer when the handshake got that far.
    /// Terminal.
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {}
}

type OpenFn = Box<dyn FnMut(&WebSocket, &Response) + Send>;
type MessageFn = Box<dyn FnMut(&WebSocket, Message) + Send>;
type CloseFn = Box<dyn FnMut(&WebSocket, u16, &str) + Send>;
type FailureFn = Box<dyn FnMut(&WebSocket, Error, Option<&Response>) + Send>;

/// A [`WebSocketListener`] made of closures; events without a closure are ignored.
///
/// ```no_run
/// let listener = syncws::Listener::new()
///     .on_open(|ws, _response| {
///         ws.send("hello");
///     })
///     .on_message(|ws, message| {
///         println!("got {message:?}");
///         let _ = ws.close(1000, None);
///     })
///     .on_failure(|_ws, error, _response| eprintln!("failed: {error}"));
/// # let _ = listener;
/// ```
#[derive(Default)]
pub struct Listener {
    open: Option<OpenFn>,
    message: Option<MessageFn>,
    closing: Option<CloseFn>,
    closed: Option<CloseFn>,
    failure: Option<FailureFn>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener that ignores everything until closures are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` in [`WebSocketListener::on_open`].
    pub fn on_open(mut self, f: impl FnMut(&WebSocket, &Response) + Send + 'static) -> Self {
        self.open = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_message`].
    pub fn on_message(mut self, f: impl FnMut(&WebSocket, Message) + Send + 'static) -> Self {
        self.message = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_closing`].
    pub fn on_closing(mut self, f: impl FnMut(&WebSocket, u16, &str) + Send + 'static) -> Self {
        self.closing = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_closed`].
    pub fn on_closed(mut self, f: impl FnMut(&WebSocket, u16, &str) + Send + 'static) -> Self {
        self.closed = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_failure`].
    pub fn on_failure(
        mut self,
        f: impl FnMut(&WebSocket, Error, Option<&Response>) + Send + 'static,
    ) -> Self {
        self.failure = Some(Box::new(f));
        self
    }
}

impl WebSocketListener for Listener {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        if let Some(f) = &mut self.open {
            f(ws, response)
        }
    }
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        if let Some(f) = &mut self.message {
            f(ws, message)
        }
    }
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        if let Some(f) = &mut self.closing {
            f(ws, code, reason)
        }
    }
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        if let Some(f) = &mut self.closed {
            f(ws, code, reason)
        }
    }
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {
        if let Some(f) = &mut self.failure {
            f(ws, error, response)
        }
    }
}

/// One listener callback, as delivered by [`channel`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// [`WebSocketListener::on_open`].
    Open(Response),
    /// [`WebSocketListener::on_message`].
    Message(Message),
    /// [`WebSocketListener::on_closing`].
    Closing {
        /// The peer's close code (1005 if it sent none).
        code: u16,
        /// The peer's close reason.
        reason: String,
    },
    /// [`WebSocketListener::on_closed`].
    Closed {
        /// The peer's close code (1005 if it sent none).
        code: u16,
        /// The peer's close reason.
        reason: String,
    },
    /// [`WebSocketListener::on_failure`].
    Failure {
        /// What went wrong.
        error: Error,
        /// The server's response, when the handshake got that far.
        response: Option<Response>,
    },
}

impl Event {
    /// Whether this is the socket's last event (`Closed` or `Failure`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Closed { .. } | Event::Failure { .. })
    }
}

/// A listener that forwards every callback to a channel, for pull-style code and tests.
///
/// The channel is unbounded: the reader thread never waits for the application, so pings are
/// answered and `cancel` is honoured even while nobody reads events. Memory is still bounded by
/// what the peer can send before the application reads, as with any receive buffer; read the
/// events promptly, or use a [`WebSocketListener`] to apply backpressure.
///
/// ```no_run
/// let server = syncws::EchoServer::start()?;
/// let (listener, events) = syncws::channel();
/// let request = syncws::Request::builder(&server.url()).build()?;
/// let ws = syncws::Client::new().new_web_socket(request, listener);
/// ws.send("ping");
/// for event in events.iter() {
///     println!("{event:?}");
///     if let syncws::Event::Message(_) = event {
///         let _ = ws.close(1000, None);
///     }
/// }
/// # Ok::<(), syncws::Error>(())
/// ```
pub fn channel() -> (ChannelListener, crossbeam_channel::Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ChannelListener { tx }, rx)
}

/// The listener half of [`channel`].
#[derive(Debug, Clone)]
pub struct ChannelListener {
    tx: crossbeam_channel::Sender<Event>,
}

impl WebSocketListener for ChannelListener {
    fn on_open(&mut self, _ws: &WebSocket, response: &Response) {
        let _ = self.tx.send(Event::Open(response.clone()));
    }
    fn on_message(&mut self, _ws: &WebSocket, message: Message) {
        let _ = self.tx.send(Event::Message(message));
    }
    fn on_closing(&mut self, _ws: &WebSocket, code: u16, reason: &str) {
        let _ = self.tx.send(Event::Closing {
            code,
            reason: reason.to_owned(),
        });
    }
    fn on_closed(&mut self, _ws: &WebSocket, code: u16, reason: &str) {
        let _ = self.tx.send(Event::Closed {
            code,
            reason: reason.to_owned(),
        });
    }
    fn on_failure(&mut self, _ws: &WebSocket, error: Error, response: Option<&Response>) {
        let _ = self.tx.send(Event::Failure {
            error,
            response: response.cloned(),
        });
    }
}
