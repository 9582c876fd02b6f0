//! The public handle and the state it shares with the socket's two threads.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::close;
use crate::error::Error;
use crate::message::Message;
use crate::request::Request;

/// Where a socket is in its life (OkHttp's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The handshake is in progress; messages may be queued already.
    Connecting,
    /// The handshake succeeded; messages flow both ways.
    Open,
    /// A close frame was sent or received; queued messages still go out, `send` refuses new
    /// ones once our close is queued.
    Closing,
    /// Both close frames were exchanged and the connection is closed.
    Closed,
    /// The socket failed or was canceled; queued messages may not have been sent.
    Canceled,
}

/// What the writer thread takes from the data queue, strictly in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message(Message),
    /// Our close frame; `None` for an empty payload (the answer to an empty close).
    Close(Option<u16>, String),
    /// Fail the connection: after what is queued, send a close frame with this code and a FIN.
    FailClose(u16),
}

/// What the writer thread takes ahead of the data queue.
#[derive(Debug)]
pub(crate) enum Control {
    Pong(Vec<u8>),
    /// The TLS session produced bytes while reading (a key update, an alert): write them.
    FlushTls,
    /// The reader is done: exit.
    Stop,
}

/// The mutable part of a socket, behind one lock.
#[derive(Debug)]
pub(crate) struct Core {
    pub state: State,
    /// Our close frame is queued (or the socket no longer accepts messages).
    pub close_enqueued: bool,
    /// Our close frame has been written.
    pub close_written: bool,
    /// The peer's close frame has been read.
    pub peer_closed: bool,
    /// The first failure seen off the reader thread, for the reader to report.
    pub failure: Option<Error>,
    /// The TCP socket, for `cancel` and the timers to shut it down.
    pub socket: Option<TcpStream>,
}

impl Core {
    /// Shuts the TCP connection down both ways, which wakes a reader blocked in `read`.
    pub(crate) fn shutdown(&self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Records `error` for the reader to report, unless something failed first, and wakes it.
    pub(crate) fn fail(&mut self, error: Error) {
        if self.failure.is_none() && !matches!(self.state, State::Closed | State::Canceled) {
            self.failure = Some(error);
        }
        self.close_enqueued = true;
        self.shutdown();
    }
}

pub(crate) struct Shared {
    pub request: Request,
    pub core: Mutex<Core>,
    pub queue_size: AtomicU64,
    pub max_queue_size: u64,
    /// Messages queued and not yet written: bounds the queue's memory when messages are tiny
    /// or empty, which `queue_size` (payload bytes, as OkHttp counts) does not see.
    pub queued_messages: AtomicU64,
    pub max_queued_messages: u64,
    pub data_tx: Sender<Outgoing>,
    pub ctrl_tx: Sender<Control>,
    /// Pongs received, for the writer's pong timeout.
    pub pongs: AtomicU64,
    /// Pongs queued for the writer and not yet encoded. Bounded by `MAX_PENDING_PONGS`: a peer
    /// that floods pings while not reading our answers must not grow the control queue.
    pub pending_pongs: AtomicUsize,
    /// A `FlushTls` is queued and not yet handled: one is enough.
    pub tls_flush_queued: AtomicBool,
    finished: Mutex<bool>,
    finished_cv: Condvar,
    reader: Mutex<Option<JoinHandle<()>>>,
    reader_id: Mutex<Option<ThreadId>>,
}

/// The most pongs waiting for the writer. RFC 6455 §5.5.3 lets an endpoint answer only some of
/// several pings; past this many unanswered ones, further pings are not answered until the
/// writer catches up.
pub(crate) const MAX_PENDING_PONGS: usize = 1024;

/// The most messages a socket queues: one per 64 bytes of `max_queue_size`, at least 1024
/// (262,144 for the default 16 MiB), so a flood of empty messages is bounded too.
pub(crate) fn max_queued_messages(max_queue_size: u64) -> u64 {
    (max_queue_size / 64).max(1024)
}

/// The receiving ends of a socket's queues, handed to its writer thread.
pub(crate) struct Queues {
    pub data_rx: Receiver<Outgoing>,
    pub ctrl_rx: Receiver<Control>,
}

impl Shared {
    pub(crate) fn new(request: Request, max_queue_size: u64) -> (Arc<Shared>, Queues) {
        let (data_tx, data_rx) = crossbeam_channel::unbounded();
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            request,
            core: Mutex::new(Core {
                state: State::Connecting,
                close_enqueued: false,
                close_written: false,
                peer_closed: false,
                failure: None,
                socket: None,
            }),
            queue_size: AtomicU64::new(0),
            max_queue_size,
            queued_messages: AtomicU64::new(0),
            max_queued_messages: max_queued_messages(max_queue_size),
            data_tx,
            ctrl_tx,
            pongs: AtomicU64::new(0),
            pending_pongs: AtomicUsize::new(0),
            tls_flush_queued: AtomicBool::new(false),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            reader: Mutex::new(None),
            reader_id: Mutex::new(None),
        });
        (shared, Queues { data_rx, ctrl_rx })
    }

    /// Called first thing on the reader thread, before any callback can run: `wait_finished`
    /// must recognise a call from its own reader even if the spawner has not stored the handle.
    pub(crate) fn enter_reader(&self) {
        *self.reader_id.lock() = Some(std::thread::current().id());
    }

    pub(crate) fn set_reader(&self, handle: JoinHandle<()>) {
        *self.reader.lock() = Some(handle);
    }

    /// Called by the reader as its very last act.
    pub(crate) fn mark_finished(&self) {
        *self.finished.lock() = true;
        self.finished_cv.notify_all();
    }

    /// Queues our close frame if none is queued yet. Returns whether this call queued it.
    pub(crate) fn enqueue_close(&self, code: Option<u16>, reason: &str) -> bool {
        let mut core = self.core.lock();
        if core.close_enqueued || matches!(core.state, State::Closed | State::Canceled) {
            return false;
        }
        core.close_enqueued = true;
        if core.state == State::Open {
            core.state = State::Closing;
        }
        let _ = self.data_tx.send(Outgoing::Close(code, reason.to_owned()));
        true
    }
}

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
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("url", &self.shared.request.url().as_str())
            .field("state", &self.state())
            .field("queue_size", &self.queue_size())
            .finish()
    }
}

impl WebSocket {
    /// The request this socket was opened with (for a server socket: the client's request).
    pub fn request(&self) -> &Request {
        &self.shared.request
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.core.lock().state
    }

    /// Payload bytes queued by `send` and not yet written to the socket (text counted as UTF-8
    /// bytes; framing not included). After a failure it may stay non-zero: those bytes were lost.
    pub fn queue_size(&self) -> u64 {
        self.shared.queue_size.load(Ordering::Acquire)
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
        let message = message.into();
        let len = message.len() as u64;
        let overflow = {
            let core = self.shared.core.lock();
            if core.close_enqueued
                || core.failure.is_some()
                || matches!(core.state, State::Closed | State::Canceled)
            {
                return false;
            }
            let queued = self.shared.queue_size.load(Ordering::Acquire);
            let count = self.shared.queued_messages.load(Ordering::Acquire);
            if queued.saturating_add(len) > self.shared.max_queue_size
                || count >= self.shared.max_queued_messages
            {
                true
            } else {
                self.shared.queue_size.fetch_add(len, Ordering::AcqRel);
                self.shared.queued_messages.fetch_add(1, Ordering::AcqRel);
                let _ = self.shared.data_tx.send(Outgoing::Message(message));
                false
            }
        };
        if overflow {
            log::warn!(
                "send queue would exceed {} bytes; closing with 1001",
                self.shared.max_queue_size
            );
            self.shared.enqueue_close(Some(1001), "");
            return false;
        }
        true
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
        Ok(self.shared.enqueue_close(Some(code), reason))
    }

    /// Drops the connection now, discarding queued messages. The listener gets
    /// `on_failure(Error::Canceled)` unless the socket had already finished. Never blocks; also
    /// interrupts a handshake in progress (once the TCP connect returns).
    pub fn cancel(&self) {
        let mut core = self.shared.core.lock();
        if matches!(core.state, State::Closed | State::Canceled) {
            return;
        }
        core.fail(Error::Canceled);
        core.state = State::Canceled;
        drop(core);
        let _ = self.shared.ctrl_tx.send(Control::Stop);
    }

    /// Blocks until the socket has finished (its terminal callback delivered and its threads
    /// gone) or `timeout` passed. Returns whether it finished.
    ///
    /// Called from one of the socket's own callbacks it returns false at once instead of
    /// waiting for itself.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        if *self.shared.reader_id.lock() == Some(std::thread::current().id()) {
            return *self.shared.finished.lock();
        }
        let deadline = Instant::now() + timeout;
        {
            let mut done = self.shared.finished.lock();
            while !*done {
                if self
                    .shared
                    .finished_cv
                    .wait_until(&mut done, deadline)
                    .timed_out()
                {
                    return *done;
                }
            }
        }
        // The reader marks itself finished as its last act; join so it is really gone.
        let handle = self.shared.reader.lock().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        true
    }
}
