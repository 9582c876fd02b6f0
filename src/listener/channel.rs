//! [`channel`]: a socket's events as values, received on another thread ([`Events`]), with a
//! bound on what waits there unreceived.

use std::sync::Arc;

use super::WebSocketListener;
use crate::driver::backlog::Backlog;
use crate::ended::Ended;
use crate::error::Error;
use crate::message::Message;
use crate::response::Response;
use crate::websocket::WebSocket;

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
    /// The socket ended ([`WebSocketListener::on_ended`]): a clean close
    /// ([`WebSocketListener::on_closed`]) or a failure ([`WebSocketListener::on_failure`]).
    /// The last event.
    Ended(Ended),
    /// [`WebSocketListener::on_ping`]: the peer's ping, already answered. Only from a
    /// channel that asked ([`ChannelListener::with_ping_events`]).
    Ping(Vec<u8>),
    /// [`WebSocketListener::on_pong`]: a pong, with the round trip when it answers one of
    /// our pings. Only from a channel that asked ([`ChannelListener::with_ping_events`]).
    Pong {
        /// The pong's payload.
        payload: Vec<u8>,
        /// The round trip, when it answers one of our pings.
        rtt: Option<std::time::Duration>,
    },
}

impl Event {
    /// Whether this is the socket's last event ([`Event::Ended`]).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Ended(_))
    }
}

/// What every event waiting in a [`channel`] counts against its bound on top of its payload:
/// the memory a queued event takes whatever its size (its slot in the channel, the allocation
/// behind its payload). A few hundred bytes.
pub const EVENT_CHARGE: usize = std::mem::size_of::<Event>() + 64;

/// Default bound of [`channel`]: bytes of events delivered and not yet received (each event
/// counts its payload plus [`EVENT_CHARGE`]).
pub const DEFAULT_CHANNEL_LIMIT: usize = 4 * 1024 * 1024;

/// A listener that forwards every callback to a channel, for pull-style code and tests.
///
/// **Bounded in bytes, with backpressure.** The channel holds at most about
/// [`DEFAULT_CHANNEL_LIMIT`] (4 MiB; [`channel_with_limit`] sets another) of events that the
/// application has not received yet, each counted as its payload plus [`EVENT_CHARGE`] (what
/// any queued event costs in memory, so a peer flooding empty messages fills the bound too).
/// When it is full, the socket's reader stops decoding and reading: TCP flow control then
/// holds the peer back, and nothing is dropped. Receiving resumes it. The reader looks at the
/// bound after every event, so it is passed by at most one event: one message of up to
/// `max_message_size`.
///
/// While it is full:
/// - `send`, `close` and `cancel` work as usual; a cancel or a failure ends the wait at once.
/// - Nothing is read, so the peer's pings go unanswered until the application catches up (a
///   peer with a short pong timeout may drop the connection), and our own pong timeout is held
///   (a pong cannot be read either) and restarts once reading resumes.
/// - The peer's close frame is not read either: after `close()`, keep receiving until the
///   terminal event, or the close timer fails the socket with
///   [`Error::CloseTimeout`].
///
/// One channel may serve several sockets (clone the listener half); they share the bound.
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
pub fn channel() -> (ChannelListener, Events) {
    channel_with_limit(DEFAULT_CHANNEL_LIMIT)
}

/// [`channel`] with a bound of `bytes` (at least 1) of undelivered events, each counted as its
/// payload plus [`EVENT_CHARGE`].
pub fn channel_with_limit(bytes: usize) -> (ChannelListener, Events) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let backlog = Arc::new(Backlog::new(bytes));
    (
        ChannelListener {
            tx,
            backlog: backlog.clone(),
            wake: None,
            pings: false,
        },
        Events {
            rx,
            backlog: Arc::new(Receiving(backlog)),
        },
    )
}

/// [`channel`] for a GUI: `wake` is called after each event is queued, so the application's
/// event loop is woken when a socket has news, with no polling and no GUI code on the socket's
/// thread.
///
/// `wake` runs on the socket's reader thread: it must only *signal* the GUI thread — egui's
/// `Context::request_repaint`, winit's `EventLoopProxy::send_event`, GTK's
/// `MainContext::invoke`, a `Sender::send` — and return. The GUI thread then drains
/// [`Events::try_iter`] and updates its widgets itself. `wake` must not block (the reader
/// waits for it, so the socket does too) and should not panic (a panic fails the socket with
/// close 1011, as any listener callback's). The bound and the backpressure are [`channel`]'s.
/// See `docs/desktop.md`.
///
/// ```
/// use std::sync::mpsc;
/// # fn main() -> Result<(), syncws::Error> {
/// // A stand-in for a GUI event loop: it sleeps until it is woken.
/// let (wake_tx, wakes) = mpsc::channel::<()>();
/// let (listener, events) = syncws::channel_with_waker(move || {
///     let _ = wake_tx.send(());
/// });
/// let server = syncws::EchoServer::start()?;
/// let ws = syncws::Client::new().new_web_socket(syncws::Request::builder(&server.url()).build()?, listener);
/// ws.send("hello");
/// 'ui: while wakes.recv().is_ok() {
///     for event in events.try_iter() {
///         if let syncws::Event::Message(m) = event {
///             println!("show {m:?} in the window");
///             break 'ui;
///         }
///     }
/// }
/// # Ok(()) }
/// ```
pub fn channel_with_waker(wake: impl Fn() + Send + Sync + 'static) -> (ChannelListener, Events) {
    let (mut listener, events) = channel();
    listener.wake = Some(Arc::new(wake));
    (listener, events)
}

/// The listener half of [`channel`].
#[derive(Clone)]
pub struct ChannelListener {
    tx: crossbeam_channel::Sender<Event>,
    backlog: Arc<Backlog>,
    /// Called after each event is queued ([`channel_with_waker`]).
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Pings and pongs are delivered too ([`with_ping_events`](Self::with_ping_events)).
    pings: bool,
}

impl std::fmt::Debug for ChannelListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelListener")
            .field("limit", &self.backlog.limit())
            .finish_non_exhaustive()
    }
}

impl ChannelListener {
    /// Delivers pings and pongs too, as [`Event::Ping`] and [`Event::Pong`]. Off by default,
    /// so an application written before these events sees none.
    ///
    /// ```
    /// let (listener, events) = syncws::channel();
    /// let listener = listener.with_ping_events();
    /// # let _ = (listener, events);
    /// ```
    pub fn with_ping_events(mut self) -> Self {
        self.pings = true;
        self
    }

    /// Queues `event`, charging the backlog for it; nothing is charged if nobody receives any
    /// more, so no reader waits for ever.
    fn deliver(&self, event: Event) {
        let charge = charge(&event);
        self.backlog.add(charge);
        if self.tx.send(event).is_err() {
            self.backlog.remove(charge);
        } else if let Some(wake) = &self.wake {
            // After the send: whoever is woken finds the event there.
            wake();
        }
    }
}

/// What an event counts against the channel's bound: its payload plus a fixed cost, so that a
/// flood of empty messages fills the bound as surely as large ones do.
pub(crate) fn charge(event: &Event) -> usize {
    let payload = match event {
        Event::Message(m) => m.len(),
        Event::Ping(p) | Event::Pong { payload: p, .. } => p.len(),
        _ => 0,
    };
    payload.saturating_add(EVENT_CHARGE)
}

impl WebSocketListener for ChannelListener {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        // Before any message is read: from here on the reader waits for room.
        let _ = ws.socket.pause.backlog.set(self.backlog.clone());
        self.deliver(Event::Open(response.clone()));
    }
    fn on_message(&mut self, _ws: &WebSocket, message: Message) {
        self.deliver(Event::Message(message));
    }
    fn on_ping(&mut self, _ws: &WebSocket, payload: &[u8]) {
        if self.pings {
            self.deliver(Event::Ping(payload.to_vec()));
        }
    }
    fn on_pong(&mut self, _ws: &WebSocket, payload: &[u8], rtt: Option<std::time::Duration>) {
        if self.pings {
            self.deliver(Event::Pong {
                payload: payload.to_vec(),
                rtt,
            });
        }
    }
    fn on_closing(&mut self, _ws: &WebSocket, code: u16, reason: &str) {
        self.deliver(Event::Closing {
            code,
            reason: reason.to_owned(),
        });
    }
    // The terminal callbacks, not `on_ended`: a listener that wraps this one and forwards
    // them still delivers the end.
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        let by_peer = ws.socket.with_session(|s| s.closed_by_peer());
        self.deliver(Event::Ended(Ended::Closed {
            code,
            reason: reason.to_owned(),
            by_peer,
        }));
    }
    fn on_failure(&mut self, _ws: &WebSocket, error: Error, response: Option<&Response>) {
        self.deliver(Event::Ended(Ended::Failed {
            error,
            response: response.cloned().map(Box::new),
        }));
    }
}

/// The receiving half of [`channel`]: the socket's events, in order.
///
/// Receiving a message makes room for the reader (see [`channel`]). The error types are
/// `crossbeam_channel`'s, re-exported as [`crate::crossbeam_channel`].
#[derive(Clone)]
pub struct Events {
    rx: crossbeam_channel::Receiver<Event>,
    backlog: Arc<Receiving>,
}

/// Held by every clone of [`Events`]; when the last goes, readers stop waiting for room.
struct Receiving(Arc<Backlog>);

impl std::ops::Deref for Receiving {
    type Target = Backlog;
    fn deref(&self) -> &Backlog {
        &self.0
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("len", &self.rx.len())
            .field("pending_bytes", &self.backlog.pending())
            .field("limit", &self.backlog.limit())
            .finish()
    }
}

impl Events {
    fn taken(&self, event: Event) -> Event {
        self.backlog.remove(charge(&event));
        event
    }

    /// Waits for the next event; `Err` once every socket's listener half is gone and the
    /// channel is empty.
    pub fn recv(&self) -> Result<Event, crossbeam_channel::RecvError> {
        self.rx.recv().map(|e| self.taken(e))
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Event, crossbeam_channel::RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|e| self.taken(e))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Result<Event, crossbeam_channel::TryRecvError> {
        self.rx.try_recv().map(|e| self.taken(e))
    }

    /// Events as they come, until every listener half is gone.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// The events waiting now, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// How many events are waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes the waiting events count against the bound: their payload plus [`EVENT_CHARGE`]
    /// each.
    pub fn pending_bytes(&self) -> usize {
        self.backlog.pending()
    }
}
