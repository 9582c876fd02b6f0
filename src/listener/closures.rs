//! [`Listener`]: a [`WebSocketListener`] made of closures.

use std::time::Duration;

use super::WebSocketListener;
use crate::ended::Ended;
use crate::error::Error;
use crate::message::{Message, MessagePart};
use crate::response::Response;
use crate::websocket::WebSocket;

type OpenFn = Box<dyn FnMut(&WebSocket, &Response) + Send>;
type MessageFn = Box<dyn FnMut(&WebSocket, Message) + Send>;
type CloseFn = Box<dyn FnMut(&WebSocket, u16, &str) + Send>;
type FailureFn = Box<dyn FnMut(&WebSocket, Error, Option<&Response>) + Send>;
type PartFn = Box<dyn FnMut(&WebSocket, MessagePart) + Send>;
type EndedFn = Box<dyn FnMut(&WebSocket, Ended) + Send>;
type PingFn = Box<dyn FnMut(&WebSocket, &[u8]) + Send>;
type PongFn = Box<dyn FnMut(&WebSocket, &[u8], Option<Duration>) + Send>;

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
    part: Option<PartFn>,
    ping: Option<PingFn>,
    pong: Option<PongFn>,
    closing: Option<CloseFn>,
    closed: Option<CloseFn>,
    failure: Option<FailureFn>,
    ended: Option<EndedFn>,
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

    /// Runs `f` in [`WebSocketListener::on_message_part`]: with it, large messages come in
    /// parts ([`WebSocketListener::receives_parts`] is true), smaller ones whole through
    /// `on_message`.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// let mut file = std::fs::File::create("upload.bin")?;
    /// let listener = syncws::Listener::new().on_message_part(move |_ws, part| {
    ///     file.write_all(part.data()).expect("disk");
    /// });
    /// # let _ = listener;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_message_part(
        mut self,
        f: impl FnMut(&WebSocket, MessagePart) + Send + 'static,
    ) -> Self {
        self.part = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_ping`]: the peer's pings (already answered).
    pub fn on_ping(mut self, f: impl FnMut(&WebSocket, &[u8]) + Send + 'static) -> Self {
        self.ping = Some(Box::new(f));
        self
    }

    /// Runs `f` in [`WebSocketListener::on_pong`]: pongs, with the round trip when one
    /// answers our ping ([`WebSocket::ping`] or a keepalive).
    pub fn on_pong(
        mut self,
        f: impl FnMut(&WebSocket, &[u8], Option<Duration>) + Send + 'static,
    ) -> Self {
        self.pong = Some(Box::new(f));
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

impl Listener {
    /// Runs `f` in [`WebSocketListener::on_ended`], instead of the `on_closed` and
    /// `on_failure` closures: the end as one value.
    pub fn on_ended(mut self, f: impl FnMut(&WebSocket, Ended) + Send + 'static) -> Self {
        self.ended = Some(Box::new(f));
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
    fn receives_parts(&self) -> bool {
        self.part.is_some()
    }
    fn on_message_part(&mut self, ws: &WebSocket, part: MessagePart) {
        if let Some(f) = &mut self.part {
            f(ws, part)
        }
    }
    fn on_ping(&mut self, ws: &WebSocket, payload: &[u8]) {
        if let Some(f) = &mut self.ping {
            f(ws, payload)
        }
    }
    fn on_pong(&mut self, ws: &WebSocket, payload: &[u8], rtt: Option<Duration>) {
        if let Some(f) = &mut self.pong {
            f(ws, payload, rtt)
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
    fn on_ended(&mut self, ws: &WebSocket, ended: Ended) {
        match &mut self.ended {
            Some(f) => f(ws, ended),
            None => match ended {
                Ended::Closed { code, reason, .. } => self.on_closed(ws, code, &reason),
                Ended::Failed { error, response } => {
                    self.on_failure(ws, error, response.as_deref())
                }
            },
        }
    }
}
