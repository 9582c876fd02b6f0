//! The state a socket's handle, reader thread and writer thread share.
//!
//! `send` is the hot path, so what it touches is laid out for it:
//! - the **gate**, one atomic word on the senders' own cache line: a "no more sends" bit and
//!   the number of sends in flight. `send` enters it with one `fetch_add`, so it takes no lock,
//!   and `close` waits for the sends in flight to leave it before queuing the close frame, so a
//!   message whose `send` returned true is never queued behind the close frame;
//! - the queued bytes and messages, counted as "ever queued" (written by senders) minus "ever
//!   written" (written by the writer, once per batch), each on its own cache line, so the two
//!   threads do not bounce one line per message;
//! - the writer's "parked" flag, read by senders: they wake the writer only when it sleeps.
//!
//! The rest — the state enum, the close flags, the first failure — sits behind a
//! `parking_lot` mutex that only state changes take.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use crossbeam_utils::sync::{Parker, Unparker};
use parking_lot::{Condvar, Mutex};

use super::backlog::Backlog;
use super::dns::Abort;
use super::writer::WireSlot;
use crate::error::Error;
use crate::message::Message;
use crate::request::Request;
use crate::websocket::State;

/// The one close deadline of a socket: `close_timeout` after the close started, computed
/// once. `None` inside means the close may take for ever (no close timeout).
#[derive(Debug)]
pub(crate) struct CloseClock {
    timeout: Option<Duration>,
    deadline: OnceLock<Option<Instant>>,
}

impl CloseClock {
    /// `timeout`: zero or `None` mean none.
    pub(crate) fn new(timeout: Option<Duration>) -> CloseClock {
        CloseClock {
            timeout: timeout.filter(|t| !t.is_zero()),
            deadline: OnceLock::new(),
        }
    }

    /// The close starts at `now`, unless it started already.
    pub(crate) fn start(&self, now: Instant) {
        self.deadline
            .get_or_init(|| self.timeout.and_then(|t| now.checked_add(t)));
    }

    /// Whether the close has started, and its deadline (`None`: never).
    pub(crate) fn deadline(&self) -> Option<Option<Instant>> {
        self.deadline.get().copied()
    }

    /// Whether the close started and its deadline has passed.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline().flatten().is_some_and(|d| now >= d)
    }
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
    /// Our close frame has been written.
    pub close_written: bool,
    /// The peer's close frame has been read.
    pub peer_closed: bool,
    /// The first failure seen off the reader thread, for the reader to report.
    pub failure: Option<Error>,
    /// The connection, for `cancel` and the timers to shut it down (the same descriptor the
    /// reader and writer use).
    pub socket: Option<Arc<TcpStream>>,
}

impl Core {
    /// Shuts the TCP connection down both ways, which wakes a reader blocked in `read`.
    pub(crate) fn shutdown(&self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// `Shared::dispatch`: no callback in progress.
const IDLE: u8 = 0;
/// `Shared::dispatch`: the reader has committed to a callback and not yet entered it.
const DISPATCHING: u8 = 1;
/// `Shared::dispatch`: a callback is running.
const IN_CALLBACK: u8 = 2;
/// How long (in spin-loop hints: about a microsecond) `cancel` lets a callback that is
/// running get under way before it returns. A callback the reader committed to before the
/// cancel may be entered a few instructions after `cancel` saw it committed; this keeps an
/// observer that checks "did cancel return?" as its callback's first act from seeing one that
/// was in fact dispatched first. It is the only wait `cancel` has besides the dispatch window
/// itself, and it is bounded.
const CANCEL_GRACE_SPINS: u32 = 1024;

/// The gate's "no more sends" bit; the bits below count sends in flight.
const CLOSED: u64 = 1 << 63;

/// Counters the senders write.
#[derive(Debug, Default)]
struct SendSide {
    gate: AtomicU64,
    queued_bytes: AtomicU64,
    queued_messages: AtomicU64,
    /// The reader's read count when a sender last wrote inline.
    inline_at_read: AtomicU64,
}

/// Counters the writer writes.
#[derive(Debug, Default)]
struct WriteSide {
    written_bytes: AtomicU64,
    written_messages: AtomicU64,
}

pub(crate) struct Shared {
    pub request: Request,
    pub core: Mutex<Core>,
    send_side: CachePadded<SendSide>,
    write_side: CachePadded<WriteSide>,
    writer_parked: CachePadded<AtomicBool>,
    /// Reads done by the reader; written by it alone.
    reads: CachePadded<AtomicU64>,
    unparker: Unparker,
    /// The write side, once the connection is open, for inline writes.
    wire: OnceLock<Arc<WireSlot>>,
    pub max_queue_size: u64,
    /// Messages queued and not yet written: bounds the queue's memory when messages are tiny
    /// or empty, which `queue_size` (payload bytes, as OkHttp counts) does not see.
    pub max_queued_messages: u64,
    data_tx: Sender<Outgoing>,
    ctrl_tx: Sender<Control>,
    /// Pongs received that answer our latest ping, for the writer's pong timeout.
    pub pongs: AtomicU64,
    /// The payload of our latest ping (8 random bytes): only a pong that echoes it counts as
    /// an answer. An unsolicited pong (RFC 6455 §5.5.3 allows them, as a heartbeat) proves
    /// nothing about our pings: a peer sending one every few seconds and never answering
    /// must not hold its connection for ever.
    pub ping_token: AtomicU64,
    /// Pongs queued for the writer and not yet encoded. Bounded by `MAX_PENDING_PONGS`: a peer
    /// that floods pings while not reading our answers must not grow the control queue.
    pub pending_pongs: AtomicUsize,
    /// A `FlushTls` is queued and not yet handled: one is enough.
    pub tls_flush_queued: AtomicBool,
    /// A failure (or cancel) is recorded in `Core.failure`: the reader checks this after every
    /// callback without taking the lock.
    failed: AtomicBool,
    /// Where the reader is with a callback other than the terminal one: `IDLE`,
    /// `DISPATCHING` (it has looked for a cancel and found none, and is about to call it) or
    /// `IN_CALLBACK`. `cancel` waits out `DISPATCHING`, so that once it returns no callback
    /// but the terminal one is entered.
    dispatch: AtomicU8,
    ends: Mutex<Ends>,
    ends_cv: Condvar,
    reader_id: Mutex<Option<ThreadId>>,
    /// The close deadline, set once when the close starts: `close()`, the queue-overflow
    /// close, the answer to the peer's close or a failure close. The writer's timer and its
    /// blocking writes both go by it, so a close frame written late behind a slow peer cannot
    /// restart the clock.
    pub close_clock: Arc<CloseClock>,
    /// The pull-style listener's bound on undelivered payload, once it has attached it.
    pub backlog: OnceLock<Arc<Backlog>>,
    /// The reader is waiting for room in the backlog and reads nothing: pongs cannot arrive.
    pub reading_paused: AtomicBool,
    /// Fired by `cancel()`: ends a name lookup the connect is waiting for.
    pub abort: Abort,
    /// The TCP connection's (local, peer) addresses, once connected.
    pub addrs: OnceLock<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// How far the socket's threads are in ending.
struct Ends {
    /// The writer's job is running.
    writer_running: bool,
    /// The reader is done: terminal callback delivered, writer gone.
    finished: bool,
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

/// What the writer thread owns: the receiving ends of the queues and its parker.
pub(crate) struct Queues {
    pub data_rx: Receiver<Outgoing>,
    pub ctrl_rx: Receiver<Control>,
    pub parker: Parker,
}

/// Why `send` refused a message.
pub(crate) enum SendError {
    /// Closing, closed or failed.
    Closed,
    /// Over `max_queue_size` (or the message-count cap).
    Full,
}

impl Shared {
    pub(crate) fn new(
        request: Request,
        max_queue_size: u64,
        close_timeout: Option<Duration>,
    ) -> (Arc<Shared>, Queues) {
        let (data_tx, data_rx) = crossbeam_channel::unbounded();
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let parker = Parker::new();
        let shared = Arc::new(Shared {
            request,
            core: Mutex::new(Core {
                state: State::Connecting,
                close_written: false,
                peer_closed: false,
                failure: None,
                socket: None,
            }),
            send_side: CachePadded::new(SendSide {
                inline_at_read: AtomicU64::new(u64::MAX),
                ..SendSide::default()
            }),
            write_side: CachePadded::new(WriteSide::default()),
            writer_parked: CachePadded::new(AtomicBool::new(false)),
            reads: CachePadded::new(AtomicU64::new(0)),
            unparker: parker.unparker().clone(),
            wire: OnceLock::new(),
            max_queue_size,
            max_queued_messages: max_queued_messages(max_queue_size),
            data_tx,
            ctrl_tx,
            pongs: AtomicU64::new(0),
            ping_token: AtomicU64::new(0),
            pending_pongs: AtomicUsize::new(0),
            tls_flush_queued: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            dispatch: AtomicU8::new(IDLE),
            ends: Mutex::new(Ends {
                writer_running: false,
                finished: false,
            }),
            ends_cv: Condvar::new(),
            reader_id: Mutex::new(None),
            close_clock: Arc::new(CloseClock::new(close_timeout)),
            backlog: OnceLock::new(),
            reading_paused: AtomicBool::new(false),
            addrs: OnceLock::new(),
            abort: Abort::new(),
        });
        (
            shared,
            Queues {
                data_rx,
                ctrl_rx,
                parker,
            },
        )
    }

    /// Hands the socket its TCP connection: `cancel` shuts it down from now on, and its
    /// addresses are known.
    pub(crate) fn attach(&self, core: &mut Core, tcp: &Arc<TcpStream>) {
        if let (Ok(local), Ok(peer)) = (tcp.local_addr(), tcp.peer_addr()) {
            let _ = self.addrs.set((local, peer));
        }
        core.socket = Some(tcp.clone());
    }

    /// Payload bytes queued and not yet written.
    pub(crate) fn queue_size(&self) -> u64 {
        let queued = self.send_side.queued_bytes.load(Ordering::Acquire);
        let written = self.write_side.written_bytes.load(Ordering::Acquire);
        queued.saturating_sub(written)
    }

    /// Whether `send` is closed (our close is queued, or the socket failed or ended).
    pub(crate) fn send_closed(&self) -> bool {
        self.send_side.gate.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Closes the gate (no more sends); returns whether this call closed it.
    pub(crate) fn seal(&self) -> bool {
        self.send_side.gate.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
    }

    /// Waits until no `send` is between its check of the gate and its push. Sends in flight
    /// do a few atomic operations and a lock-free push, so this is a short spin.
    fn wait_for_sends_in_flight(&self) {
        let mut spins = 0u32;
        while self.send_side.gate.load(Ordering::Acquire) & !CLOSED != 0 {
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Queues a message, unless the gate is closed or the queue is full. Never blocks.
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        let side = &self.send_side;
        if side.gate.fetch_add(1, Ordering::Acquire) & CLOSED != 0 {
            side.gate.fetch_sub(1, Ordering::Release);
            return Err(SendError::Closed);
        }
        let len = message.len() as u64;
        // "Ever queued" minus "ever written": the counters only grow, so wrapping arithmetic
        // is exact.
        let bytes = side
            .queued_bytes
            .fetch_add(len, Ordering::Relaxed)
            .wrapping_add(len)
            .wrapping_sub(self.write_side.written_bytes.load(Ordering::Acquire));
        let count = side
            .queued_messages
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .wrapping_sub(self.write_side.written_messages.load(Ordering::Acquire));
        if bytes > self.max_queue_size || count > self.max_queued_messages {
            side.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            side.queued_messages.fetch_sub(1, Ordering::Relaxed);
            side.gate.fetch_sub(1, Ordering::Release);
            return Err(SendError::Full);
        }
        // Small and nothing queued ahead: encode it here, into the wire's buffer.
        let message = match self.wire.get() {
            Some(wire) => match wire.encode_direct(message) {
                Ok(()) => {
                    side.gate.fetch_sub(1, Ordering::Release);
                    self.after_push(true);
                    return Ok(());
                }
                Err(m) => m,
            },
            None => message,
        };
        let _ = self.data_tx.send(Outgoing::Message(message));
        side.gate.fetch_sub(1, Ordering::Release);
        self.after_push(true);
        Ok(())
    }

    /// The wire is set up: from now on senders may write inline.
    pub(crate) fn set_wire(&self, wire: Arc<WireSlot>) {
        let _ = self.wire.set(wire);
    }

    /// Ends our output in an orderly way: TLS close_notify (under TLS) and a TCP FIN. For the
    /// end of a clean close, where a bare `shutdown` would skip close_notify.
    pub(crate) fn finish_output(&self) {
        if let Some(slot) = self.wire.get() {
            slot.finish_output();
        }
    }

    /// Frees the write side (buffers, compressor, the connection handle) once the writer is
    /// gone, even if it never started.
    pub(crate) fn drop_wire(&self) {
        if let Some(slot) = self.wire.get() {
            slot.clear();
        }
    }

    /// The reader did a read (a reply may have arrived: the next send may go inline).
    pub(crate) fn note_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// After queuing: if the writer sleeps, write inline when allowed and possible, else wake
    /// it.
    ///
    /// Inline writes are tried at most once per read of the reader: a request/response
    /// exchange gets them on every request, while a burst of sends with nothing coming back
    /// gets one, then leaves the rest to the writer, which batches them into large writes.
    fn after_push(&self, inline: bool) {
        fence(Ordering::SeqCst);
        if !self.writer_parked.load(Ordering::Relaxed) {
            return;
        }
        if inline && self.try_inline() {
            return;
        }
        self.unparker.unpark();
    }

    /// Writes inline if allowed (at most once per read of the reader) and the link is free;
    /// returns whether nothing is left for the writer.
    fn try_inline(&self) -> bool {
        let reads = self.reads.load(Ordering::Relaxed);
        if self.send_side.inline_at_read.load(Ordering::Relaxed) == reads {
            return false;
        }
        let Some(slot) = self.wire.get() else {
            return false;
        };
        self.send_side
            .inline_at_read
            .store(reads, Ordering::Relaxed);
        slot.write_inline(self)
    }

    /// The socket ended cleanly: what is still counted as queued was never going to be
    /// written (the peer ended the connection after its close), so `queue_size` reads 0.
    pub(crate) fn settle_queue(&self) {
        let side = &self.send_side;
        self.write_side
            .written_bytes
            .store(side.queued_bytes.load(Ordering::Acquire), Ordering::Release);
        self.write_side.written_messages.store(
            side.queued_messages.load(Ordering::Acquire),
            Ordering::Release,
        );
    }

    /// The writer wrote `bytes` of payload in `messages` whole messages.
    pub(crate) fn written(&self, bytes: u64, messages: u64) {
        if bytes > 0 {
            self.write_side
                .written_bytes
                .fetch_add(bytes, Ordering::Release);
        }
        if messages > 0 {
            self.write_side
                .written_messages
                .fetch_add(messages, Ordering::Release);
        }
    }

    /// Parks the writer until woken or `deadline`, unless it has work: a control item, or a
    /// data item in `data` (`None` once our close is out). Pairs with `after_push`: the
    /// fences make sure either the writer sees the new item or the sender sees it parked.
    pub(crate) fn park_writer(
        &self,
        parker: &Parker,
        ctrl: &Receiver<Control>,
        data: Option<&Receiver<Outgoing>>,
        deadline: Option<std::time::Instant>,
    ) {
        self.writer_parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if ctrl.is_empty() && data.is_none_or(|d| d.is_empty()) {
            match deadline {
                Some(d) => parker.park_deadline(d),
                None => parker.park(),
            }
        }
        self.writer_parked.store(false, Ordering::Relaxed);
    }

    /// Queues a control item for the writer. A pong may be written inline.
    pub(crate) fn control(&self, item: Control) {
        let inline = matches!(item, Control::Pong(_));
        let _ = self.ctrl_tx.send(item);
        self.after_push(inline);
    }

    /// A pong arrived: counts it if it echoes our latest ping.
    pub(crate) fn pong_received(&self, payload: &[u8]) {
        let token = self.ping_token.load(Ordering::Acquire).to_be_bytes();
        if payload == token {
            self.pongs.fetch_add(1, Ordering::AcqRel);
        } else {
            log::trace!(
                "a pong that does not answer our ping ({} bytes): ignored",
                payload.len()
            );
        }
    }

    /// The payload for our next ping, remembered so its pong can be recognised.
    pub(crate) fn next_ping_token(&self) -> [u8; 8] {
        let mut token = [0u8; 8];
        crate::proto::mask::fill_random(&mut token);
        self.ping_token
            .store(u64::from_be_bytes(token), Ordering::Release);
        token
    }

    /// Queues a pong, unless `MAX_PENDING_PONGS` are already waiting.
    pub(crate) fn pong(&self, payload: Vec<u8>) {
        if self.pending_pongs.fetch_add(1, Ordering::AcqRel) < MAX_PENDING_PONGS {
            self.control(Control::Pong(payload));
        } else {
            self.pending_pongs.fetch_sub(1, Ordering::AcqRel);
            log::debug!("ping not answered: {MAX_PENDING_PONGS} pongs already waiting");
        }
    }

    /// Queues our close frame if none is queued yet. Returns whether this call queued it.
    pub(crate) fn enqueue_close(&self, code: Option<u16>, reason: &str) -> bool {
        if !self.seal() {
            return false;
        }
        self.wait_for_sends_in_flight();
        {
            let mut core = self.core.lock();
            if matches!(core.state, State::Closed | State::Canceled) {
                return false;
            }
            if core.state == State::Open {
                core.state = State::Closing;
            }
        }
        self.close_clock.start(Instant::now());
        let _ = self.data_tx.send(Outgoing::Close(code, reason.to_owned()));
        self.after_push(true);
        true
    }

    /// Fails the connection: after what is queued, a close frame with `code` and a FIN.
    pub(crate) fn enqueue_fail_close(&self, code: u16) {
        self.seal();
        self.wait_for_sends_in_flight();
        {
            let mut core = self.core.lock();
            if core.state != State::Canceled {
                core.state = State::Closing;
            }
        }
        self.close_clock.start(Instant::now());
        let _ = self.data_tx.send(Outgoing::FailClose(code));
        self.after_push(false);
    }

    /// Records `error` for the reader to report, unless something failed first, and wakes it
    /// by shutting the connection down.
    pub(crate) fn fail(&self, error: Error) {
        {
            let mut core = self.core.lock();
            if !matches!(core.state, State::Closed | State::Canceled) {
                self.record_failure(&mut core, error);
            }
            core.shutdown();
        }
        self.wake_paused_reader();
    }

    /// A reader waiting for room in the backlog must see a failure or cancel at once.
    fn wake_paused_reader(&self) {
        if let Some(b) = self.backlog.get() {
            b.wake();
        }
    }

    /// Closes the gate and keeps `error` for the reader unless a failure came first.
    fn record_failure(&self, core: &mut Core, error: Error) {
        self.seal();
        if core.failure.is_none() {
            core.failure = Some(error);
            self.failed.store(true, Ordering::Release);
        }
    }

    /// Whether a failure or cancel has been recorded for the reader to report.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// `cancel()`: the state is `Canceled` at once and the writer stops. Once this returns,
    /// no callback but the terminal one is entered (see [`enter_callback`](Self::enter_callback)).
    pub(crate) fn cancel(&self) {
        {
            let mut core = self.core.lock();
            if matches!(core.state, State::Closed | State::Canceled) {
                return;
            }
            self.record_failure(&mut core, Error::Canceled);
            core.state = State::Canceled;
            core.shutdown();
        }
        self.abort.fire();
        self.wake_paused_reader();
        self.control(Control::Stop);
        // Pairs with `enter_callback`: the reader either sees the failure before it commits
        // to a callback, or it has committed, and then this waits out the few instructions
        // until the callback is entered and a little longer (see `CANCEL_GRACE_SPINS`). On
        // the reader thread itself (a callback canceling its own socket) there is nothing to
        // wait for.
        fence(Ordering::SeqCst);
        if self.on_reader_thread() {
            return;
        }
        let mut spins = 0u32;
        loop {
            match self.dispatch.load(Ordering::SeqCst) {
                DISPATCHING => {}
                IN_CALLBACK if spins < CANCEL_GRACE_SPINS => {}
                _ => break,
            }
            if spins < CANCEL_GRACE_SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            spins = spins.saturating_add(1);
        }
    }

    /// The reader is about to run a callback other than the terminal one: returns false if a
    /// failure or cancel was recorded, and the callback must not run. On true the reader calls
    /// [`entered_callback`](Self::entered_callback) as the callback starts and
    /// [`left_callback`](Self::left_callback) when it returns.
    pub(crate) fn enter_callback(&self) -> bool {
        self.dispatch.store(DISPATCHING, Ordering::SeqCst);
        if self.failed.load(Ordering::SeqCst) {
            self.dispatch.store(IDLE, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The callback [`enter_callback`](Self::enter_callback) allowed is starting. Only the
    /// store-then-load in `enter_callback` (and its mirror in `cancel`) needs `SeqCst`: this
    /// and `left_callback` just tell a waiting `cancel` the window is over.
    pub(crate) fn entered_callback(&self) {
        self.dispatch.store(IN_CALLBACK, Ordering::Release);
    }

    /// The callback has returned (or panicked).
    pub(crate) fn left_callback(&self) {
        self.dispatch.store(IDLE, Ordering::Release);
    }

    /// Called first thing on the reader thread, before any callback can run: `wait_finished`
    /// must recognise a call from its own reader.
    pub(crate) fn enter_reader(&self) {
        *self.reader_id.lock() = Some(std::thread::current().id());
    }

    /// Whether the calling thread is this socket's reader.
    pub(crate) fn on_reader_thread(&self) -> bool {
        *self.reader_id.lock() == Some(std::thread::current().id())
    }

    /// Called by the reader as its very last act (after the terminal callback; the writer has
    /// exited).
    pub(crate) fn mark_finished(&self) {
        *self.reader_id.lock() = None;
        self.ends.lock().finished = true;
        self.ends_cv.notify_all();
    }

    /// The writer's job is about to start.
    pub(crate) fn writer_started(&self) {
        self.ends.lock().writer_running = true;
    }

    /// The writer's job has ended (or never started).
    pub(crate) fn writer_exited(&self) {
        self.ends.lock().writer_running = false;
        self.ends_cv.notify_all();
    }

    /// Waits until the writer's job has ended.
    pub(crate) fn wait_writer_exited(&self) {
        let mut ends = self.ends.lock();
        while ends.writer_running {
            self.ends_cv.wait(&mut ends);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.ends.lock().finished
    }

    /// Waits until finished or `deadline` (`None`: forever). Returns whether it finished.
    pub(crate) fn wait_finished(&self, deadline: Option<std::time::Instant>) -> bool {
        let mut ends = self.ends.lock();
        while !ends.finished {
            match deadline {
                Some(d) => {
                    if self.ends_cv.wait_until(&mut ends, d).timed_out() {
                        return ends.finished;
                    }
                }
                None => self.ends_cv.wait(&mut ends),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_clock_is_set_once_from_the_start_of_the_close() {
        let clock = CloseClock::new(Some(Duration::from_secs(2)));
        let t0 = Instant::now();
        assert_eq!(clock.deadline(), None);
        assert!(!clock.expired(t0 + Duration::from_secs(100)));
        clock.start(t0);
        // A later start (our close frame written late, the answer to the peer's close) does
        // not move it.
        clock.start(t0 + Duration::from_secs(1));
        assert_eq!(clock.deadline(), Some(Some(t0 + Duration::from_secs(2))));
        assert!(!clock.expired(t0 + Duration::from_millis(1999)));
        assert!(clock.expired(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn no_close_timeout_or_one_past_the_end_of_time_never_expires() {
        for timeout in [None, Some(Duration::ZERO), Some(Duration::MAX)] {
            let clock = CloseClock::new(timeout);
            let t0 = Instant::now();
            clock.start(t0);
            assert_eq!(clock.deadline(), Some(None), "{timeout:?}");
            assert!(!clock.expired(t0 + Duration::from_secs(1 << 30)));
        }
    }
}
