//! The reader thread: the read loop, every listener callback, and the socket's ending.
//!
//! It runs on a pooled `syncws-reader` thread; [`connect`](super::connect) (client) or
//! [`accept`](super::accept) (server) hands it an upgraded connection. It feeds the session what
//! it reads (the peer's close, pongs, the end of the connection) and acts on its decisions; the
//! terminal callback is the session's verdict ([`Session::end`](crate::proto::session::Session::end)).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::callbacks::{Callbacks, NoCallbacks};
use super::clock::deadline_after;
use super::outbox::Inbox;
use super::pool::{self, Job, ThreadRole};
use super::shared::Shared;
use super::transport::{ReadHalf, WriteHalf};
use crate::config::Config;
use crate::error::Error;
use crate::panics;
use crate::proto::Role;
use crate::proto::decoder::{Decoder, Incoming};
use crate::proto::deflate::{self, Inflater};
use crate::proto::encoder::Encoder;
use crate::proto::rate::Bucket;
use crate::proto::session::Cause;
use crate::response::Response;
use crate::stats::Counts;

/// How long a failing socket waits for the peer to close TCP after our close frame, so the
/// frame is not lost to a reset.
const FAIL_LINGER: Duration = Duration::from_secs(2);
/// The read buffer starts this small, so an idle socket holds little...
const READ_BUF_MIN: usize = 512;
/// ...and doubles up to this while reads keep filling it (a stream of data)...
const READ_BUF_MAX: usize = 64 * 1024;
/// ...and goes back to the minimum after this many short reads in a row.
const SHRINK_AFTER: u32 = 8;

/// What the open socket's reader starts from.
pub(super) struct Started {
    response: Response,
    leftover: Vec<u8>,
    inflater: Option<Inflater>,
}

/// What the handshake left for the open socket.
pub(super) struct Opened {
    pub response: Response,
    pub leftover: Vec<u8>,
    pub deflate: Option<deflate::Params>,
}

pub(super) struct Reader {
    shared: Arc<Shared>,
    callbacks: Box<dyn Callbacks>,
    role: Role,
    max_message_size: u64,
    /// `max_receive_rate`'s bucket, if there is a limit, and `counts.bytes` when it was last
    /// charged.
    bucket: Option<Bucket>,
    charged: u64,
    /// What was received, published to `shared.received` (messages as each is handed over,
    /// the rest once per read).
    counts: Counts,
}

impl Reader {
    pub(super) fn new(
        shared: Arc<Shared>,
        callbacks: Box<dyn Callbacks>,
        role: Role,
        config: &Config,
    ) -> Self {
        Reader {
            shared,
            callbacks,
            role,
            max_message_size: config.max_message_size,
            bucket: (config.max_receive_rate).map(|rate| Bucket::new(rate, Instant::now())),
            charged: 0,
            counts: Counts::default(),
        }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs a callback other than the terminal one, turning a panic into an error. Returns
    /// `Ok(false)` without running it if the socket was canceled or failed: once `cancel()`
    /// has returned, no such callback is entered.
    pub(super) fn call(&mut self, f: impl FnOnce(&mut dyn Callbacks)) -> Result<bool, Error> {
        let shared = &*self.shared;
        if !shared.enter_callback() {
            return Ok(false);
        }
        let callbacks = &mut *self.callbacks;
        let result = catch_unwind(AssertUnwindSafe(|| {
            shared.entered_callback();
            f(callbacks)
        }));
        shared.left_callback();
        result
            .map(|()| true)
            .map_err(|p| Error::ListenerPanicked(panics::message(&*p)))
    }

    /// Starts the writer and runs the open socket to its end.
    pub(super) fn run_open(
        &mut self,
        read: ReadHalf,
        write: WriteHalf,
        inbox: Inbox,
        config: &Config,
        open: Opened,
    ) {
        if let Some(started) = self.start_open(&read, write, inbox, config, open) {
            self.read_open(read, started);
        }
    }

    /// The open connection's first half, on whichever thread upgraded it: the session is
    /// open, the write side set up, the writer started. `None` if the socket ended instead
    /// (then it is finished: a cancel came first, or the writer could not start).
    pub(super) fn start_open(
        &mut self,
        read: &ReadHalf,
        write: WriteHalf,
        inbox: Inbox,
        config: &Config,
        open: Opened,
    ) -> Option<Started> {
        let Opened {
            response,
            leftover,
            deflate,
        } = open;
        let tls = read.is_tls();
        if self
            .shared()
            .with_session(|s| s.opened(Instant::now(), tls))
            .is_err()
        {
            self.finish(Cause::Dropped(None));
            return None;
        }
        let _ = self.shared().opened_at.set(std::time::SystemTime::now());
        let encoder = Encoder::new(self.role, deflate.as_ref(), config.encoder());
        let write_timeout = config.write_timeout;
        // What the write watcher calls for a write stalled past its deadline (Windows): the
        // socket fails as a write that timed out would make it. Weak: the write half lives in
        // the socket.
        let weak = Arc::downgrade(self.shared());
        let on_stall = super::transport::OnStall(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.write_failed(std::io::ErrorKind::TimedOut.into(), write_timeout);
            }
        }));
        let write =
            super::transport::for_writer(write, config, &self.shared().close_deadline, on_stall);
        self.shared().outbox.open(write, encoder);
        let keep_alive = config.thread_keep_alive;
        let shared = self.shared().clone();
        shared.writer_started();
        let job: Job = Box::new(move || {
            super::writer::run(shared.clone(), inbox, write_timeout);
            shared.writer_exited();
            keep_alive
        });
        if let Err((e, job)) = pool::spawn(ThreadRole::Writer, config.thread_stack_size, job) {
            drop(job);
            self.shared().writer_exited();
            self.finish(Cause::Failed(Error::from(e), None));
            return None;
        }
        Some(Started {
            response,
            leftover,
            inflater: deflate.as_ref().map(Inflater::new),
        })
    }

    /// The open connection's second half, on the reader thread: `on_open`, then the read
    /// loop, then the end.
    pub(super) fn read_open(&mut self, mut read: ReadHalf, started: Started) {
        let Started {
            response,
            leftover,
            inflater,
        } = started;
        // `cancel()` is final: once it has returned, only the terminal callback runs.
        let opened = self.call(|c| c.open(&response));
        // Not kept for the socket's life: its headers are the application's to copy.
        drop(response);
        match opened {
            Ok(true) => {}
            Ok(false) => return self.finish(Cause::Dropped(None)),
            Err(e) => return self.fail_with_close(&mut read, e),
        }
        // The connect and handshake (TLS above all) ran deeper than the read loop will.
        super::platform::threads::release_unused_stack();
        let mut decoder = Decoder::new(self.role, self.max_message_size, inflater);
        self.counts.wire = leftover.len() as u64;
        let cause = self.read_loop(&mut read, leftover, &mut decoder);
        self.publish(decoder.frames());
        self.finish(cause)
    }

    /// Publishes what was received (statistics): plain stores, once per read.
    pub(super) fn publish(&self, frames: u64) {
        self.shared.received.publish(self.counts, frames);
    }

    fn read_loop(
        &mut self,
        read: &mut ReadHalf,
        leftover: Vec<u8>,
        decoder: &mut Decoder,
    ) -> Cause {
        let mut buf = leftover;
        let mut len = buf.len();
        let mut size = READ_BUF_MIN;
        let mut short_reads = 0u32;
        loop {
            let mut pos = 0;
            while pos < len {
                let (used, event) = match decoder.decode(&buf[pos..len]) {
                    Ok(r) => r,
                    Err(e) => return self.fail_with_close_cause(read, e),
                };
                pos += used;
                let Some(event) = event else { continue };
                // A pong is counted by the session as it is handled: its frame is published
                // first, so a snapshot never has more pongs than frames. (Messages are
                // published with the read, below; control frames are few.)
                if !matches!(event, Incoming::Message(_)) {
                    self.publish(decoder.frames());
                }
                match self.handle(event) {
                    // A callback (or another thread) canceled or failed the socket: deliver
                    // nothing more, even what is already in the buffer.
                    Ok(false) if self.shared().has_failed() => return Cause::Dropped(None),
                    // A pull-style listener's bound is looked at after every event, not only
                    // before a read: one read of empty frames holds tens of thousands of them.
                    Ok(false) => {
                        if !self.wait_for_backlog() {
                            return Cause::Dropped(None);
                        }
                        // `max_receive_rate` (one test without a limit): the messages since the
                        // last charge are counted in `counts.bytes` already.
                        if self.bucket.is_some() && !self.rest_for_rate() {
                            return Cause::Dropped(None);
                        }
                    }
                    Ok(true) => return self.closing(read),
                    Err(e) => return self.fail_with_close_cause(read, e),
                }
            }
            if read.tls_output_pending {
                read.tls_output_pending = false;
                self.shared().outbox.flush_tls();
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
            // Counted before the application sees this read's events (a `stats()` after a
            // `recv` includes what it returned), which reach it before the reader blocks.
            self.publish(decoder.frames());
            self.callbacks.flush();
            // Another socket on the same channel may have filled it meanwhile.
            if !self.wait_for_backlog() {
                return Cause::Dropped(None);
            }
            len = match read.read(&mut buf) {
                Ok(0) => return Cause::Dropped(None),
                Ok(n) => {
                    self.shared().outbox.note_read();
                    self.counts.wire = self.counts.wire.wrapping_add(n as u64);
                    n
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Cause::Dropped(Some(Error::from(e))),
            };
        }
    }

    /// A pull-style listener whose application fell behind: decode and read nothing until it
    /// catches up, so TCP flow control holds the peer back. Returns false if the socket failed
    /// or was canceled meanwhile.
    fn wait_for_backlog(&mut self) -> bool {
        // The field, not `shared()`: the callbacks are borrowed below.
        let shared = &*self.shared;
        let Some(backlog) = shared.backlog.get() else {
            return true;
        };
        if !backlog.is_full() {
            return true;
        }
        // What the application has not been handed yet cannot make room.
        self.callbacks.flush();
        shared.reading_paused.store(true, Ordering::Release);
        log::trace!("backlog full ({} bytes): reading paused", backlog.pending());
        backlog.wait_for_room(|| shared.has_failed());
        shared.reading_paused.store(false, Ordering::Release);
        !shared.has_failed()
    }

    /// `max_receive_rate`: charges the bucket for the message payload received since the last
    /// charge, and rests (reads nothing, so TCP holds the peer back) until it allows more.
    /// Returns false if the socket failed or was canceled meanwhile. Out of line: only sockets
    /// with a limit come here.
    #[cold]
    #[inline(never)]
    fn rest_for_rate(&mut self) -> bool {
        let received = self.counts.bytes.wrapping_sub(self.charged);
        self.charged = self.counts.bytes;
        let Some(bucket) = &mut self.bucket else {
            return true;
        };
        let len = usize::try_from(received).unwrap_or(usize::MAX);
        let Some(rest) = bucket.charge(len, Instant::now()) else {
            return true;
        };
        let shared = &*self.shared;
        // What the application has not been handed yet is not held back by the rest.
        self.callbacks.flush();
        shared.reading_paused.store(true, Ordering::Release);
        log::trace!("max_receive_rate: resting {rest:?}");
        shared
            .rest
            .until(deadline_after(rest), || shared.has_failed());
        shared.reading_paused.store(false, Ordering::Release);
        !shared.has_failed()
    }

    /// Handles one decoded event; returns true once the peer's close has been handled.
    pub(super) fn handle(&mut self, event: Incoming) -> Result<bool, Error> {
        // `call` looks for a cancel before every callback, not only after: a cancel from
        // another thread between two events must not be followed by the second one. The read
        // loop sees the failure once this returns.
        if self.shared().has_failed() {
            return Ok(false);
        }
        match event {
            Incoming::Message(m) => {
                self.counts.messages = self.counts.messages.wrapping_add(1);
                self.counts.bytes = self.counts.bytes.wrapping_add(m.len() as u64);
                // Published before the callback: `stats()` in `on_message` counts its message.
                self.shared.received.published_message(self.counts);
                self.call(|c| c.message(m))?;
                Ok(false)
            }
            Incoming::Ping(payload) => {
                self.shared().outbox.pong(payload);
                Ok(false)
            }
            Incoming::Pong(payload) => {
                self.shared()
                    .with_session(|s| s.pong(&payload, Instant::now()));
                Ok(false)
            }
            Incoming::Close(frame) => {
                let (code, reason, answer) =
                    (frame.reported_code(), frame.reason.clone(), frame.code);
                let end_tcp = self.shared().with_session(|s| s.peer_closed(frame));
                if !self.call(|c| c.closing(code, &reason))? {
                    return Ok(false);
                }
                // Answer with the peer's code unless the application answered itself.
                self.shared().close(answer, "");
                if end_tcp {
                    // Our close went out before the peer's arrived: this side ends TCP now,
                    // with close_notify under TLS.
                    self.shared().outbox.finish_output();
                }
                Ok(true)
            }
        }
    }

    /// After the peer's close: wait for the connection to end (the writer's close deadline
    /// bounds the wait; a cancel ends it at once), then end.
    fn closing(&mut self, read: &mut ReadHalf) -> Cause {
        read.drain_until_eof(None);
        Cause::PeerClosed
    }

    /// Fails the connection with a close frame behind what is queued, and lingers for the
    /// peer to close TCP, so the frame is not destroyed by a reset. Something else may have
    /// failed first (a cancel that cut the stream mid-frame): that is what is reported.
    fn fail_with_close_cause(&mut self, read: &mut ReadHalf, error: Error) -> Cause {
        log::debug!("failing connection: {error}");
        if self.shared().fail_with_close(error) {
            read.drain_until_eof(Some(deadline_after(FAIL_LINGER)));
        }
        Cause::Dropped(None)
    }

    fn fail_with_close(&mut self, read: &mut ReadHalf, error: Error) {
        let cause = self.fail_with_close_cause(read, error);
        self.finish(cause)
    }

    /// Ends the socket: the session decides how, the connection is closed, the writer
    /// stopped, the terminal callback delivered, the listener dropped.
    pub(super) fn finish(&mut self, cause: Cause) {
        let shared = self.shared.clone();
        shared.outbox.seal();
        let ended = shared.with_session(|s| s.end(cause));
        if ended.is_clean() {
            // An orderly end: close_notify under TLS (the server's FIN has already come, on
            // the client) before the connection is shut down for good. Whatever the peer did
            // not take after its close is gone with the connection: `queue_size()` is 0.
            shared.outbox.finish_output();
            shared.outbox.settle();
        }
        shared.outbox.wake_waiters();
        shared.detach();
        // The writer stops while the terminal callback runs: nothing can be sent any more
        // (the gate is sealed, the connection shut down), so it need not be waited for first.
        shared.outbox.stop();
        log::debug!("ended: {ended}");
        let callbacks = &mut *self.callbacks;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| callbacks.ended(ended))) {
            log::error!("terminal listener callback: {}", panics::message(&*p));
        }
        // The listener (and whatever it holds, such as a channel's sender) goes before the
        // socket counts as finished; the thread itself goes back to the pool. Its `Drop` is
        // application code: a panic there must not keep the socket from finishing, or
        // `wait_finished` and `Server::stop` would wait for ever.
        let callbacks = std::mem::replace(&mut self.callbacks, Box::new(NoCallbacks));
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(callbacks))) {
            log::error!("the listener's drop panicked: {}", panics::message(&*p));
        }
        // The writer, stopped above, finishes the socket if it is still on its way out.
        shared.reader_done();
    }
}

/// Ends a socket whose reader thread never started: the listener still hears exactly one
/// terminal callback, on the calling thread.
pub(super) fn fail_unstarted(
    shared: Arc<Shared>,
    callbacks: Box<dyn Callbacks>,
    role: Role,
    config: &Config,
    error: Error,
) {
    shared.enter_reader();
    let mut reader = Reader::new(shared, callbacks, role, config);
    reader.finish(Cause::Failed(error, None));
}
