//! The reader thread: the read loop, every listener callback, and the socket's ending.
//!
//! It runs on a pooled `syncws-reader` thread; [`connect`](super::connect) (client) or
//! [`accept`](super::accept) (server) hands it an upgraded connection.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::pool::{self, Job, ThreadRole};
use super::shared::{Control, Queues, Shared};
use super::transport::{ReadHalf, WriteHalf};
use super::writer::{WireSlot, Writer};
use super::{connect, deadline_after, panic_message};
use crate::config::Config;
use crate::error::Error;
use crate::listener::{Listener, WebSocketListener};
use crate::proto::Role;
use crate::proto::decoder::{Decoder, Incoming};
use crate::proto::deflate::{self, Inflater};
use crate::response::Response;
use crate::websocket::{State, WebSocket};

/// How long a failing socket waits for the peer to close TCP after our close frame, so the
/// frame is not lost to a reset.
const FAIL_LINGER: Duration = Duration::from_secs(2);
/// The read buffer starts this small, so an idle socket holds little...
const READ_BUF_MIN: usize = 512;
/// ...and doubles up to this while reads keep filling it (a stream of data)...
const READ_BUF_MAX: usize = 64 * 1024;
/// ...and goes back to the minimum after this many short reads in a row.
const SHRINK_AFTER: u32 = 8;

pub(super) type BoxListener = Box<dyn WebSocketListener>;

/// What a client socket's reader thread starts with.
struct ClientStart {
    ws: WebSocket,
    queues: Queues,
    config: Config,
    tls: super::TlsSource,
    listener: BoxListener,
}

/// Starts a client socket on a pooled reader thread, which connects and runs it.
///
/// If no thread can be had (the OS refuses one), the listener still hears exactly one
/// `on_failure`, delivered on the calling thread before this returns.
pub(crate) fn spawn_client(
    ws: WebSocket,
    queues: Queues,
    config: Config,
    tls: super::TlsSource,
    listener: BoxListener,
) {
    let stack = config.thread_stack_size;
    // The start is kept where this thread can take it back if the job never runs.
    let slot = Arc::new(parking_lot::Mutex::new(Some(ClientStart {
        ws,
        queues,
        config,
        tls,
        listener,
    })));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let Some(start) = theirs.lock().take() else {
            return Duration::ZERO;
        };
        drop(theirs);
        let keep_alive = start.config.thread_keep_alive;
        connect::run_client(
            start.ws,
            start.queues,
            start.config,
            start.tls,
            start.listener,
        );
        keep_alive
    });
    if let Err((e, job)) = pool::spawn(ThreadRole::Reader, stack, job) {
        drop(job);
        let start = slot.lock().take();
        if let Some(start) = start {
            log::error!("could not start the reader thread: {e}");
            let error = Error::io(
                e.kind(),
                format!("could not start the socket's reader thread: {e}"),
            );
            start.ws.shared.enter_reader();
            let mut reader = Reader::new(start.ws, start.listener, Role::Client, &start.config);
            reader.finish(Outcome::Failed(error, None));
        }
    }
}

/// What the handshake left for the open socket.
pub(super) struct Opened {
    pub response: Response,
    pub leftover: Vec<u8>,
    pub deflate: Option<deflate::Params>,
}

/// How a socket ended.
pub(super) enum Outcome {
    Closed(u16, String),
    Failed(Error, Option<Box<Response>>),
}

pub(super) struct Reader {
    pub ws: WebSocket,
    listener: BoxListener,
    role: Role,
    max_message_size: u64,
}

impl Reader {
    pub(super) fn new(ws: WebSocket, listener: BoxListener, role: Role, config: &Config) -> Self {
        Reader {
            ws,
            listener,
            role,
            max_message_size: config.max_message_size,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.ws.shared
    }

    /// Runs a callback other than the terminal one, turning a panic into an error. Returns
    /// `Ok(false)` without running it if the socket was canceled or failed: once `cancel()`
    /// has returned, no such callback is entered.
    fn call(&mut self, f: impl FnOnce(&mut BoxListener, &WebSocket)) -> Result<bool, Error> {
        let shared = &*self.ws.shared;
        if !shared.enter_callback() {
            return Ok(false);
        }
        let ws = &self.ws;
        let listener = &mut self.listener;
        let result = catch_unwind(AssertUnwindSafe(|| {
            shared.entered_callback();
            f(listener, ws)
        }));
        shared.left_callback();
        result
            .map(|()| true)
            .map_err(|p| Error::ListenerPanicked(panic_message(&*p)))
    }

    /// Runs the terminal callback; a panic in it is logged (nothing is left to report it to).
    fn call_terminal(&mut self, f: impl FnOnce(&mut BoxListener, &WebSocket)) {
        let ws = &self.ws;
        let listener = &mut self.listener;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(listener, ws))) {
            log::error!("terminal listener callback: {}", panic_message(&*p));
        }
    }

    pub(super) fn run_open(
        &mut self,
        mut read: ReadHalf,
        write: WriteHalf,
        queues: Queues,
        config: &Config,
        open: Opened,
    ) {
        let Opened {
            response,
            leftover,
            deflate,
        } = open;
        {
            let mut core = self.shared().core.lock();
            if let Some(e) = core.failure.take() {
                drop(core);
                return self.finish(Outcome::Failed(e, None));
            }
            core.state = if self.ws.shared.send_closed() {
                State::Closing
            } else {
                State::Open
            };
        }
        let wire = WireSlot::new(
            write,
            self.shared(),
            &queues,
            self.role,
            config,
            deflate.as_ref(),
        );
        self.shared().set_wire(wire.clone());
        let writer = Writer::new(self.shared().clone(), wire, queues);
        let keep_alive = config.thread_keep_alive;
        let shared = self.shared().clone();
        shared.writer_started();
        let job: Job = Box::new(move || {
            writer.run();
            shared.writer_exited();
            keep_alive
        });
        if let Err((e, job)) = pool::spawn(ThreadRole::Writer, config.thread_stack_size, job) {
            drop(job);
            self.shared().writer_exited();
            return self.finish(Outcome::Failed(Error::from(e), None));
        }
        // `cancel()` is final: once it has returned, only the terminal callback runs.
        let opened = self.call(|l, ws| l.on_open(ws, &response));
        // Not kept for the socket's life: its headers are the application's to copy.
        drop(response);
        match opened {
            Ok(true) => {}
            Ok(false) => {
                let outcome = self.ended_without_close(None);
                return self.finish(outcome);
            }
            Err(e) => return self.fail_with_close(&mut read, e),
        }
        let inflater = deflate.as_ref().map(Inflater::new);
        // The connect and handshake (TLS above all) ran deeper than the read loop will.
        super::os_thread::release_unused_stack();
        let outcome = self.read_loop(&mut read, leftover, inflater);
        self.finish(outcome)
    }

    fn read_loop(
        &mut self,
        read: &mut ReadHalf,
        leftover: Vec<u8>,
        inflater: Option<Inflater>,
    ) -> Outcome {
        let mut decoder = Decoder::new(self.role, self.max_message_size, inflater);
        let mut buf = leftover;
        let mut len = buf.len();
        let mut size = READ_BUF_MIN;
        let mut short_reads = 0u32;
        loop {
            let mut pos = 0;
            while pos < len {
                let (used, event) = match decoder.decode(&buf[pos..len]) {
                    Ok(r) => r,
                    Err(e) => return self.fail_with_close_outcome(read, e),
                };
                pos += used;
                let Some(event) = event else { continue };
                match self.handle(event) {
                    // A callback (or another thread) canceled or failed the socket: deliver
                    // nothing more, even what is already in the buffer.
                    Ok(None) if self.shared().has_failed() => {
                        return self.ended_without_close(None);
                    }
                    // A pull-style listener's bound is looked at after every event, not only
                    // before a read: one read of empty frames holds tens of thousands of them.
                    Ok(None) => {
                        if !self.wait_for_backlog() {
                            return self.ended_without_close(None);
                        }
                    }
                    Ok(Some((code, reason))) => return self.closing(read, code, reason),
                    Err(e) => return self.fail_with_close_outcome(read, e),
                }
            }
            if read.tls_output_pending {
                read.tls_output_pending = false;
                if !self.shared().tls_flush_queued.swap(true, Ordering::AcqRel) {
                    self.shared().control(Control::FlushTls);
                }
            }
            // The buffer follows the traffic: it doubles while reads fill it and drops back
            // to the minimum after a run of short reads, so an idle socket holds 512 bytes, not 64 KiB.
            if len == buf.len() && len >= size {
                size = (size * 2).min(READ_BUF_MAX);
                short_reads = 0;
            } else if len < READ_BUF_MIN {
                short_reads += 1;
                if short_reads >= SHRINK_AFTER {
                    size = READ_BUF_MIN;
                }
            } else {
                short_reads = 0;
            }
            if buf.len() < size {
                buf.resize(size, 0);
            } else if buf.len() > size {
                buf = vec![0; size];
            }
            // Another socket on the same channel may have filled it meanwhile.
            if !self.wait_for_backlog() {
                return self.ended_without_close(None);
            }
            len = match read.read(&mut buf) {
                Ok(0) => return self.ended_without_close(None),
                Ok(n) => {
                    self.shared().note_read();
                    n
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return self.ended_without_close(Some(Error::from(e))),
            };
        }
    }

    /// A pull-style listener whose application fell behind: decode and read nothing until it
    /// catches up, so TCP flow control holds the peer back. Returns false if the socket failed
    /// or was canceled meanwhile.
    fn wait_for_backlog(&self) -> bool {
        let shared = self.shared();
        let Some(backlog) = shared.backlog.get() else {
            return true;
        };
        if !backlog.is_full() {
            return true;
        }
        shared.reading_paused.store(true, Ordering::Release);
        log::trace!("backlog full ({} bytes): reading paused", backlog.pending());
        backlog.wait_for_room(|| shared.has_failed());
        shared.reading_paused.store(false, Ordering::Release);
        !shared.has_failed()
    }

    /// Handles one decoded event; returns the peer's close when it arrives.
    fn handle(&mut self, event: Incoming) -> Result<Option<(u16, String)>, Error> {
        // `call` looks for a cancel before every callback, not only after: a cancel from
        // another thread between two events must not be followed by the second one. The read
        // loop sees the failure once this returns.
        if self.shared().has_failed() {
            return Ok(None);
        }
        match event {
            Incoming::Message(m) => {
                self.call(|l, ws| l.on_message(ws, m))?;
                Ok(None)
            }
            Incoming::Ping(payload) => {
                self.shared().pong(payload);
                Ok(None)
            }
            Incoming::Pong(payload) => {
                self.shared().pong_received(&payload);
                Ok(None)
            }
            Incoming::Close(frame) => {
                let code = frame.reported_code();
                {
                    let mut core = self.shared().core.lock();
                    core.peer_closed = true;
                    if matches!(core.state, State::Open | State::Connecting) {
                        core.state = State::Closing;
                    }
                }
                if !self.call(|l, ws| l.on_closing(ws, code, &frame.reason))? {
                    return Ok(None);
                }
                // Answer with the peer's code unless the application answered itself.
                self.shared().enqueue_close(frame.code, "");
                Ok(Some((code, frame.reason)))
            }
        }
    }

    /// After the peer's close: wait for the connection to end, then report `on_closed`.
    fn closing(&mut self, read: &mut ReadHalf, code: u16, reason: String) -> Outcome {
        let close_written = self.shared().core.lock().close_written;
        if close_written && super::writer::ends_first(self.role, read.is_tls()) {
            // Our close went out first; the writer saw no peer close yet, so finish here,
            // with close_notify under TLS.
            self.shared().finish_output();
        }
        // The writer's close timer bounds this wait; a cancel ends it at once.
        read.drain_until_eof(None);
        let failure = self.shared().core.lock().failure.take();
        match failure {
            None => Outcome::Closed(code, reason),
            Some(e) => Outcome::Failed(e, None),
        }
    }

    fn ended_without_close(&mut self, error: Option<Error>) -> Outcome {
        let recorded = self.shared().core.lock().failure.take();
        let error = recorded.or(error).unwrap_or(Error::UnexpectedEof);
        Outcome::Failed(error, None)
    }

    fn fail_with_close_outcome(&mut self, read: &mut ReadHalf, error: Error) -> Outcome {
        // Something else may have failed first (a cancel that cut the stream mid-frame).
        if let Some(first) = self.shared().core.lock().failure.take() {
            return Outcome::Failed(first, None);
        }
        log::debug!("failing connection: {error}");
        let code = error.close_code().unwrap_or(1011);
        // In the data queue: behind every message already sent.
        self.shared().enqueue_fail_close(code);
        read.drain_until_eof(Some(deadline_after(FAIL_LINGER)));
        Outcome::Failed(error, None)
    }

    fn fail_with_close(&mut self, read: &mut ReadHalf, error: Error) {
        let outcome = self.fail_with_close_outcome(read, error);
        self.finish(outcome)
    }

    /// Ends the socket: stops the writer, closes the connection, delivers the terminal callback.
    pub(super) fn finish(&mut self, outcome: Outcome) {
        if matches!(outcome, Outcome::Closed(..)) {
            // An orderly end: close_notify under TLS (the server's FIN has already come, on
            // the client) before the connection is shut down for good.
            self.shared().finish_output();
        }
        self.shared().seal();
        let outcome = {
            let mut core = self.shared().core.lock();
            // A cancel (or failure) recorded since the outcome was decided wins over a clean
            // close: a `cancel()` that returned before this lock was taken left the state
            // `Canceled`, and the terminal callback must say so. One that comes after it finds
            // the socket `Closed` and does nothing.
            let outcome = match (outcome, core.failure.take()) {
                (Outcome::Closed(..), Some(e)) => Outcome::Failed(e, None),
                (outcome, _) => outcome,
            };
            core.shutdown();
            core.socket = None;
            core.state = match outcome {
                Outcome::Closed(..) => State::Closed,
                Outcome::Failed(..) => State::Canceled,
            };
            outcome
        };
        if matches!(outcome, Outcome::Closed(..)) {
            // Whatever the peer did not take after its close is gone with the connection;
            // after a clean close `queue_size()` is 0, as the application expects.
            self.shared().settle_queue();
        }
        // The writer stops while the terminal callback runs: nothing can be sent any more
        // (the gate is sealed, the connection shut down), so it need not be waited for first.
        self.shared().control(Control::Stop);
        match outcome {
            Outcome::Closed(code, reason) => {
                log::debug!("closed {code} {reason:?}");
                self.call_terminal(|l, ws| l.on_closed(ws, code, &reason));
            }
            Outcome::Failed(error, response) => {
                log::debug!("failed: {error}");
                self.call_terminal(|l, ws| l.on_failure(ws, error, response.as_deref()));
            }
        }
        self.shared().wait_writer_exited();
        self.shared().drop_wire();
        // The listener (and whatever it holds, such as a channel's sender) goes before the
        // socket counts as finished; the thread itself goes back to the pool. Its `Drop` is
        // application code: a panic there must not keep the socket from finishing, or
        // `wait_finished` and `Server::stop` would wait for ever.
        let listener = std::mem::replace(&mut self.listener, Box::new(Listener::new()));
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(listener))) {
            log::error!("the listener's drop panicked: {}", panic_message(&*p));
        }
        self.shared().mark_finished();
    }
}
