//! Every write to a socket, in one module. Its docs are the map: each way bytes reach a
//! connection is listed here, with the file that does it.
//!
//! **An open socket's frames** go through its [`Outbox`], in order, by one of two writers:
//! - the **writer thread** ([`writer`]): a loop of rounds ([`round`]: take what is staged and
//!   queued, encode it, write the batch with one blocking write on the [`link`]), the
//!   session's timers (pings, the pong timeout, the close deadline) and the end of the
//!   output (TLS close_notify, the FIN);
//! - a **sender, inline** ([`inline`]): a sender that finds the writer asleep writes the
//!   staged batch itself, without waiting, and leaves the rest to the writer.
//!
//! **The handshakes' heads** are written once, before the outbox exists, each by its
//! deadline, through [`handshake`]: the client's upgrade request (`connect/hop.rs`), the
//! server's 101 (`serve/upgrade.rs`) and its HTTP refusals (`serve/refusal.rs`), and the
//! 503 written at once, without waiting, to a connection the server gives no thread to.
//!
//! **Below the WebSocket**, two layers write their own bytes and nothing else: the TLS
//! handshake and its alerts (`transport/tls.rs`, through the TLS engine), and a proxy's
//! CONNECT request or SOCKS5 greeting (`connect/tunnel.rs`).
//!
//! How the outbox works:
//!
//! Everything senders, the reader (pongs) and the writer share is one [`Queue`] behind one
//! short lock, held for the moment it takes to queue an item or to encode a small message and
//! never across I/O or compression: `send` pays two atomic operations (the lock and the
//! unlock), and the gate, the limits, the queue and the writer's "parked" flag are decided
//! together, so no fences or in-flight counts are needed to keep a message from falling behind
//! the close frame or a wake-up from being lost.
//!
//! - **The gate** is `sealed`: a close, a failure, a cancel and the end set it under the
//!   lock, so a message whose `send` returned true was queued before the close frame.
//! - **The counters**: payload bytes and messages ever queued (written under the lock,
//!   mirrored into atomics) minus ever written (the writer's atomics, once per batch);
//!   `queue_size` reads the atomics without the lock.
//! - **Senders encode** ([`send`]). A small message sent while nothing is queued ahead of it is
//!   encoded by `send` itself into the staged batch (the caller's buffer is freed on the
//!   caller's thread); anything else (messages to compress, large ones, messages behind
//!   others, close frames, pongs) is queued and the writer encodes it.
//! - **The writer writes** ([`step`](Outbox::step)): it takes the staged batch, the queued
//!   items and the encoder out of the lock, encodes the items (compressing, a fragment at a
//!   time for large messages) without it, gives the encoder back and writes the batch with
//!   one blocking `write_all` on the link, while senders go on staging.
//! - **Waking**: the writer sleeps only after finding nothing to do under the lock, and says
//!   so there (`writer_parked`); whoever queues work then wakes it, once.
//! - **Inline writes** take the link with `try_lock`, at most once per read of the reader (so
//!   bursts are still batched by the writer), and only where a write can be kept from waiting
//!   (Linux, `MSG_DONTWAIT`; see `driver/platform/sockets.rs`): elsewhere the writer writes
//!   everything.

mod batch;
pub(crate) mod handshake;
mod inline;
mod link;
mod queue;
mod room;
mod round;
mod send;
mod stream;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::sync::{Parker, Unparker};

pub(crate) use batch::CloseMark;
use link::Link;
pub(crate) use link::Stop;
#[cfg(feature = "testing")]
pub(crate) use queue::Outgoing;
use queue::{Queue, Spare};
pub(crate) use stream::CloseSeal;
pub(crate) use writer::run as run_writer;

use crate::driver::transport::WriteHalf;
use crate::proto::encoder::{Encoder, Fit};

/// A sender that finds the writer asleep writes a staged batch this large itself; a writer
/// lingering in a bulk flow is woken once this much is staged.
const INLINE_BATCH: usize = 64 * 1024;
/// A write this large means a bulk flow: the next small batch lingers.
const BULK: usize = 32 * 1024;
/// How long a small batch lingers in a bulk flow, at most.
const LINGER: Duration = Duration::from_micros(50);
/// Idle buffers larger than this are freed once the writer has been idle for `BUFFER_LINGER`.
const IDLE_BUFFER: usize = 4 * 1024;
const BUFFER_LINGER: Duration = Duration::from_secs(1);

/// The most pongs waiting for the writer. RFC 6455 §5.5.3 lets an endpoint answer only some of
/// several pings; past this many unanswered ones, further pings are not answered until the
/// writer catches up.
pub(crate) const MAX_PENDING_PONGS: usize = 1024;

/// Why `send` refused a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Closing, closed or failed.
    Closed,
    /// Over `max_queue_size` (or the message-count cap).
    Full,
    /// Larger than `max_queue_size` on its own: it can never fit (`send_waiting` only).
    TooLarge,
    /// Still no room at the deadline (`send_waiting` only).
    Timeout,
}

/// Payload bytes and messages, counted since the socket was made.
#[derive(Debug, Default)]
struct Counts {
    bytes: AtomicU64,
    messages: AtomicU64,
}

impl Counts {
    fn load(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Acquire),
            self.messages.load(Ordering::Acquire),
        )
    }
}

/// The sending side's statistics (see [`Outbox::sent_stats`]).
pub(crate) struct SentStats {
    pub messages: u64,
    pub bytes: u64,
    pub frames: u64,
    pub pings: u64,
    pub wire: u64,
    pub high_water: u64,
}

/// What the writer thread owns, outside the outbox's locks: its parker, its spare queues, and
/// when it went idle.
pub(crate) struct WriterState {
    parker: Parker,
    spare: Spare,
    /// When the writer last went idle with big buffers.
    idle_since: Option<Instant>,
    /// The last batch written was large: a bulk flow (see `Outbox::linger`).
    bulk: bool,
}

/// What one round of the writer did.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The batch written ends with our close frame (or a failure close).
    pub close: CloseMark,
    /// Nothing is left to encode or write: the writer may park.
    pub idle: bool,
}

pub(crate) struct Outbox {
    // No cache-line padding: it cost 512 bytes a socket (and an over-aligned allocation),
    // and the lines it kept apart are written once per batch or per read, not per message.
    queue: Mutex<Queue>,
    /// The write half and the batch being written: `None` until the connection opens and
    /// after the end (which frees the buffers and the handle on the connection).
    link: parking_lot::Mutex<Option<Link>>,
    /// Ever queued: written under the queue's lock.
    queued: Counts,
    /// Ever written: written by whoever wrote a batch.
    written: Counts,
    /// Reads done by the reader; written by it alone.
    reads: AtomicU64,
    /// What `settle` counted as written that never was (statistics count only what was).
    settled: Counts,
    /// Frame bytes written (statistics), published after each write.
    wire_out: AtomicU64,
    /// How the connection takes prepared messages' shared frames, once it is open.
    fit: std::sync::OnceLock<Fit>,
    unparker: Unparker,
    max_queue_size: u64,
    /// Messages queued and not yet written: bounds the queue's memory when messages are tiny
    /// or empty, which `queue_size` (payload bytes, as OkHttp counts) does not see.
    max_queued_messages: u64,
    /// Senders waiting for room (`send_timeout`, `wait_drained`, a streamed message).
    room: room::Room,
    /// The largest payload of one outgoing frame: a streamed message's part size.
    fragment_size: usize,
    /// One streamed message at a time.
    stream_turn: parking_lot::Mutex<()>,
}

impl Outbox {
    pub(crate) fn new(max_queue_size: u64, fragment_size: usize) -> (Outbox, WriterState) {
        let parker = Parker::new();
        let outbox = Outbox {
            queue: Mutex::new(Queue {
                inline_at_read: u64::MAX,
                ..Queue::default()
            }),
            link: parking_lot::Mutex::new(None),
            queued: Counts::default(),
            written: Counts::default(),
            reads: AtomicU64::new(0),
            settled: Counts::default(),
            wire_out: AtomicU64::new(0),
            fit: std::sync::OnceLock::new(),
            unparker: parker.unparker().clone(),
            max_queue_size,
            max_queued_messages: crate::config::max_queued_messages(max_queue_size),
            room: room::Room::default(),
            fragment_size: fragment_size.max(1),
            stream_turn: parking_lot::Mutex::new(()),
        };
        let writer = WriterState {
            parker,
            spare: Spare::default(),
            idle_since: None,
            bulk: false,
        };
        (outbox, writer)
    }

    /// The queue, under its lock. A panic while it was held (there is no code that panics
    /// there) would leave it consistent: every change to it is a single step.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection is open: from now on the writer (and senders, inline) write to `io`.
    pub(crate) fn open(&self, io: WriteHalf, encoder: Encoder) {
        let _ = self.fit.set(encoder.fit());
        *self.link.lock() = Some(Link::new(io));
        self.queue().encoder = Some(encoder);
    }

    pub(crate) fn max_queue_size(&self) -> u64 {
        self.max_queue_size
    }

    /// Payload bytes and messages queued and not yet written. "Ever queued" minus "ever
    /// written": the counters only grow, so wrapping arithmetic is exact.
    fn queued(&self) -> (u64, u64) {
        let (qb, qm) = self.queued.load();
        let (wb, wm) = self.written.load();
        (qb.wrapping_sub(wb), qm.wrapping_sub(wm))
    }

    /// Payload bytes queued and not yet written.
    pub(crate) fn queue_size(&self) -> u64 {
        self.queued().0
    }

    /// Closes the gate (no more sends); returns whether this call closed it.
    pub(crate) fn seal(&self) -> bool {
        let sealed = {
            let mut q = self.queue();
            // A streamed message takes no more parts either.
            q.stream_open = false;
            !std::mem::replace(&mut q.sealed, true)
        };
        // No send succeeds any more, and a failure (which seals again) ends the wait for a
        // drain: waiters look again. Cheap when nobody waits.
        self.room.changed();
        sealed
    }

    fn is_sealed(&self) -> bool {
        self.queue().sealed
    }

    /// Whether a message of `len` bytes would fit under the queue's limits now.
    fn fits(&self, len: u64) -> bool {
        let (bytes, messages) = self.queued();
        bytes.saturating_add(len) <= self.max_queue_size && messages < self.max_queued_messages
    }

    /// The socket ended: whoever waits for room or a drain looks again (and gives up).
    pub(crate) fn wake_waiters(&self) {
        self.room.changed();
    }

    /// Whether the message numbered `number` ([`send_numbered`](Self::send_numbered)) was
    /// written: messages are written in the order they are numbered.
    pub(crate) fn is_written(&self, number: u64) -> bool {
        // At a clean end `settle` counts what was never written as written (queue_size goes
        // to 0) and keeps that count in `settled`: those are the last numbers, not written.
        // `written` first: a `settled` read after it is at least as new, so the difference
        // can only be too small (not written yet), never too large.
        let written = self.written.messages.load(Ordering::Acquire);
        let settled = self.settled.messages.load(Ordering::Acquire);
        // Wrapping: the counts start at 0 and only grow, by far less than 2^63 between looks.
        (written.wrapping_sub(settled).wrapping_sub(number) as i64) >= 0
    }

    /// Waits until the message numbered `number` is written (true), `ended` holds or
    /// `deadline` passes (false). The writer wakes it as it writes, the socket's end too.
    pub(crate) fn wait_written(
        &self,
        number: u64,
        deadline: Option<Instant>,
        ended: impl Fn() -> bool,
    ) -> bool {
        self.room
            .wait(deadline, || self.is_written(number) || ended());
        self.is_written(number)
    }

    /// Waits until everything queued has been written (true), the socket ended with bytes
    /// unwritten, or `deadline` passed (false).
    pub(crate) fn wait_drained(&self, deadline: Option<Instant>, ended: impl Fn() -> bool) -> bool {
        let drained = || self.queued() == (0, 0);
        self.room.wait(deadline, || drained() || ended());
        drained()
    }

    /// Takes everything queued for the data queue, as if written (`queue_size` drops): a
    /// driven socket's (`driven.rs`) record of what the application sent. Only for a socket
    /// that never opened a connection: nothing has been encoded.
    #[cfg(feature = "testing")]
    pub(crate) fn take_queued(&self) -> Vec<Outgoing> {
        let taken: Vec<Outgoing> = self.queue().data.drain(..).collect();
        let (bytes, messages) = taken.iter().fold((0u64, 0u64), |(b, m), item| match item {
            Outgoing::Message(message) => {
                (b.saturating_add(message.len() as u64), m.saturating_add(1))
            }
            Outgoing::Part { payload, first, .. } => (
                b.saturating_add(payload.len() as u64),
                m.saturating_add(u64::from(*first)),
            ),
            _ => (b, m),
        });
        self.written(bytes, messages);
        taken
    }

    /// The reader did a read (a reply may have arrived: the next send may go inline).
    pub(crate) fn note_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The socket ended cleanly: what is still counted as queued was never going to be
    /// written (the peer ended the connection after its close), so `queue_size` reads 0.
    pub(crate) fn settle(&self) {
        let (bytes, messages) = self.queued.load();
        let (wb, wm) = self.written.load();
        self.settled
            .bytes
            .fetch_add(bytes.wrapping_sub(wb), Ordering::Relaxed);
        self.settled
            .messages
            .fetch_add(messages.wrapping_sub(wm), Ordering::Relaxed);
        self.written.bytes.store(bytes, Ordering::Release);
        self.written.messages.store(messages, Ordering::Release);
        self.room.changed();
    }

    /// Publishes the link's count of frame bytes written (statistics; the link's lock is
    /// held, so the count only grows).
    fn wire_written(&self, link: &Link) {
        self.wire_out.store(link.wire, Ordering::Relaxed);
    }

    /// The sending side's statistics: messages and payload bytes written, frames encoded,
    /// frame bytes written, the queue's high-water mark.
    pub(crate) fn sent_stats(&self) -> SentStats {
        let (wb, wm) = self.written.load();
        let (sb, sm) = self.settled.load();
        let q = self.queue();
        SentStats {
            messages: wm.wrapping_sub(sm),
            bytes: wb.wrapping_sub(sb),
            frames: q.encoder.as_ref().map_or(q.frames_out, |e| e.frames()),
            pings: q.encoder.as_ref().map_or(q.pings_out, |e| e.pings()),
            wire: self.wire_out.load(Ordering::Relaxed),
            high_water: q.high_water,
        }
    }

    /// `bytes` of payload in `messages` whole messages were written.
    fn written(&self, bytes: u64, messages: u64) {
        if bytes > 0 {
            self.written.bytes.fetch_add(bytes, Ordering::Release);
        }
        if messages > 0 {
            self.written.messages.fetch_add(messages, Ordering::Release);
        }
        if bytes > 0 || messages > 0 {
            self.room.changed();
        }
    }
}
