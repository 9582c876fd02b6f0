//! A socket with no connection and no threads, driven step by step by its caller: what the
//! test kit's fake (`testing::fake`) is made of.
//!
//! It is the real socket (the session, the outbox, the listener behind the callback gate)
//! with the reader thread's part played by the caller: each step runs the listener's callback
//! on the caller's thread, under the same rules as the reader's (nothing after a cancel, a
//! panic fails the socket with 1011). What the application sends stays in the outbox's queue
//! (so `queue_size` counts it) until the caller takes it.

use std::sync::Arc;
use std::time::Instant;

use super::callbacks::Callbacks;
use super::read::Reader;
use super::socket::Socket;
use super::write::Outgoing;
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::close::CloseFrame;
use crate::proto::decoder::Incoming;
use crate::proto::frame::OpCode;
use crate::proto::session::{Cause, State};
use crate::response::Response;

/// What the application did to a driven socket, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Did {
    Send(Message),
    /// `close` (or the answer to the peer's close); a failure close carries its code.
    Close(Option<u16>, String),
    Cancel,
}

pub(crate) struct Driven {
    reader: Reader,
    /// Taken from the outbox, not yet handed to the caller.
    log: Vec<Did>,
    cancel_logged: bool,
    /// A streamed message's parts so far (text?, payload).
    streamed: Option<(bool, Vec<u8>)>,
}

impl Driven {
    pub(crate) fn new(socket: Arc<Socket>, callbacks: Box<dyn Callbacks>, config: &Config) -> Self {
        Driven {
            reader: Reader::new(socket, callbacks, Role::Client, config),
            log: Vec::new(),
            cancel_logged: false,
            streamed: None,
        }
    }

    fn socket(&self) -> &Arc<Socket> {
        self.reader.socket()
    }

    /// Moves what the application queued (and a cancel) into the log.
    fn collect(&mut self) {
        for item in self.socket().outbox.take_queued() {
            self.log.push(match item {
                Outgoing::Message(m) => Did::Send(m),
                // Only an open connection's outbox (`Outbox::open`, which gives it an encoder
                // and a fit) masks or shares frames; a socket with no connection is never
                // opened so: prepared messages reach it as plain messages, nothing is masked.
                Outgoing::Masked { .. } | Outgoing::Prepared { .. } => {
                    unreachable!("a driven socket has no encoder to mask or share frames")
                }
                Outgoing::Close(code, reason) => Did::Close(code, reason),
                Outgoing::FailClose(code) => Did::Close(Some(code), String::new()),
                // A streamed message is recorded whole, once its last part is in.
                Outgoing::Part {
                    opcode,
                    payload,
                    first,
                    last,
                } => {
                    if first {
                        self.streamed = Some((opcode == OpCode::Text, Vec::new()));
                    }
                    let Some((text, mut data)) = self.streamed.take() else {
                        continue;
                    };
                    data.extend_from_slice(&payload);
                    if !last {
                        self.streamed = Some((text, data));
                        continue;
                    }
                    Did::Send(match (text, String::from_utf8(data)) {
                        (true, Ok(s)) => Message::Text(s),
                        (_, Ok(s)) => Message::Binary(s.into_bytes()),
                        (_, Err(e)) => Message::Binary(e.into_bytes()),
                    })
                }
            });
        }
        if !self.cancel_logged && self.socket().with_session(|s| s.was_canceled()) {
            self.cancel_logged = true;
            self.log.push(Did::Cancel);
        }
    }

    /// Everything the application did since the last call, in order.
    pub(crate) fn take(&mut self) -> Vec<Did> {
        self.collect();
        std::mem::take(&mut self.log)
    }

    pub(crate) fn state(&self) -> State {
        self.socket().state()
    }

    /// The handshake succeeded with `response`: `on_open`.
    pub(crate) fn open(&mut self, response: &Response) {
        if self.is_ended() {
            return;
        }
        self.enter_reader();
        if self
            .socket()
            .with_session(|s| s.opened(Instant::now(), false))
            .is_err()
        {
            return self.end(Cause::Dropped(None));
        }
        let _ = self
            .socket()
            .traffic
            .opened_at
            .set(std::time::SystemTime::now());
        match self.reader.call(|c| c.open(response)) {
            Ok(_) => {}
            Err(e) => self.fail_with_close(e),
        }
    }

    /// A message arrived: `on_message`.
    pub(crate) fn message(&mut self, message: Message) {
        self.incoming(Incoming::Message(message));
    }

    /// The peer's close frame arrived: `on_closing`, then the socket answers (unless the
    /// listener closed in it).
    pub(crate) fn closing(&mut self, code: Option<u16>, reason: &str) {
        self.incoming(Incoming::Close(CloseFrame {
            code,
            reason: reason.to_owned(),
        }));
    }

    fn incoming(&mut self, event: Incoming) {
        if self.is_ended() || self.state() == State::Connecting {
            return;
        }
        self.enter_reader();
        let handled = self.reader.handle(event);
        self.reader.publish(0);
        if let Err(e) = handled {
            self.fail_with_close(e);
        }
    }

    /// A callback failed (it panicked): close 1011 is queued, and the socket ends.
    fn fail_with_close(&mut self, error: Error) {
        self.socket().fail_with_close(error);
        self.end(Cause::Dropped(None));
    }

    /// The connection ended cleanly after the close handshake (or, without the peer's close,
    /// with `UnexpectedEof`): the terminal callback.
    pub(crate) fn closed(&mut self) {
        self.end(Cause::PeerClosed);
    }

    /// The connection failed with `error` (and the server's `response`, for a refused
    /// handshake): the terminal callback.
    pub(crate) fn fail(&mut self, error: Error, response: Option<Response>) {
        self.end(Cause::Failed(error, response.map(Box::new)));
    }

    fn end(&mut self, cause: Cause) {
        if self.is_ended() {
            return;
        }
        self.enter_reader();
        // What was queued is the application's record; the end frees the queue.
        self.collect();
        self.reader.finish(cause);
    }

    /// Whether the socket has ended: its terminal callback delivered. With no writer, the
    /// reader's end (`Reader::finish`, run once, by `end`) finishes the socket there and then.
    pub(crate) fn is_ended(&self) -> bool {
        self.socket().is_finished()
    }

    /// The caller's thread plays the reader's part from here on: a callback's `wait_finished`
    /// returns at once, as on a reader thread (the reader's end clears it).
    fn enter_reader(&self) {
        self.socket().enter_reader();
    }
}
