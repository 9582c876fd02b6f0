//! A socket's write side, in one place: the send gate, the queues, the counters behind
//! `queue_size`, the encoder and the batch being written.
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
//! - **Senders encode.** A small message sent while nothing is queued ahead of it is encoded
//!   by `send` itself into the staged batch (the caller's buffer is freed on the caller's
//!   thread); anything else (messages to compress, large ones, messages behind others, close
//!   frames, pongs) is queued and the writer encodes it.
//! - **The writer writes** ([`step`](Outbox::step)): it takes the staged batch, the queued
//!   items and the encoder out of the lock, encodes the items (compressing, a fragment at a
//!   time for large messages) without it, gives the encoder back and writes the batch with
//!   one blocking `write_all` on the link, while senders go on staging.
//! - **Waking**: the writer sleeps only after finding nothing to do under the lock, and says
//!   so there (`writer_parked`); whoever queues work then wakes it, once.
//! - **Inline writes.** A sender that finds the writer asleep may write itself: `try_lock` on
//!   the link, take the staged batch, write with `MSG_DONTWAIT`. What the socket does not take
//!   waits in the link's batch for the writer, which is then woken. That removes the thread
//!   hand-off from a request/response round trip; it is tried at most once per read of the
//!   reader, so bursts are still batched by the writer. Only where a write can be kept from
//!   waiting (Linux, `MSG_DONTWAIT`; see `driver/platform/sockets.rs`): elsewhere the writer
//!   writes everything.

mod batch;
mod link;
mod queue;
mod room;
mod round;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::sync::{Parker, Unparker};

pub(crate) use batch::CloseMark;
pub(crate) use link::Stop;
use link::{Link, Mode};
pub(crate) use queue::{Control, Outgoing};
use queue::{Queue, Spare};

use crate::driver::platform;
use crate::driver::transport::WriteHalf;
use crate::message::Message;
use crate::proto::encoder::{Encoder, Fit, Shared};
use crate::proto::frame::OpCode;
use crate::proto::mask;

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

/// What the writer thread owns: its parker, its spare queues, and when it went idle.
pub(crate) struct Inbox {
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
    /// Senders waiting for room (`send_timeout`, `wait_drained`).
    room: room::Room,
}

/// Whether the thread that queued an item may write it itself when the writer sleeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inline {
    /// Never: wake the writer (the item costs real CPU, or ends the socket).
    Never,
    /// At most once per read of the reader (or when a batch is staged): a request/response
    /// exchange gets an inline write on every request, while a burst of sends with nothing
    /// coming back gets one, then the writer batches the rest.
    OncePerRead,
    /// Always: a broadcast touches every socket once, and a wake per socket is most of its
    /// cost.
    Always,
}

/// What queuing an item asks of the writer.
enum Wake {
    /// It is busy (or not started): it will see the item.
    No,
    /// It sleeps: wake it.
    Writer,
    /// It sleeps, and this thread may write inline instead (and wake it for what is left).
    Inline,
}

impl Outbox {
    pub(crate) fn new(max_queue_size: u64) -> (Outbox, Inbox) {
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
        };
        let inbox = Inbox {
            parker,
            spare: Spare::default(),
            idle_since: None,
            bulk: false,
        };
        (outbox, inbox)
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
        let sealed = !std::mem::replace(&mut self.queue().sealed, true);
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

    /// Queues a message, unless the gate is closed or the queue is full. Never blocks (the
    /// lock is only ever held for a short step).
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        self.try_send(message).map_err(|(e, _)| e)
    }

    /// Takes a message of `len` bytes into the queue's count, under the lock, unless the
    /// gate is closed or it would go over the limits: the one admission of `send` and
    /// `send_prepared`.
    #[inline]
    fn admit(&self, q: &mut Queue, len: u64) -> Result<(), SendError> {
        if q.sealed {
            return Err(SendError::Closed);
        }
        let (written_bytes, written_messages) = self.written.load();
        let bytes = q.queued_bytes.wrapping_add(len).wrapping_sub(written_bytes);
        let count = q
            .queued_messages
            .wrapping_add(1)
            .wrapping_sub(written_messages);
        if bytes > self.max_queue_size || count > self.max_queued_messages {
            return Err(SendError::Full);
        }
        if bytes > q.high_water {
            q.high_water = bytes;
        }
        self.count_queued(q, len, 1);
        Ok(())
    }

    /// `send`, giving the message back when it is refused.
    fn try_send(&self, message: Message) -> Result<(), (SendError, Message)> {
        let len = message.len() as u64;
        let mut q = self.queue();
        if let Err(e) = self.admit(&mut q, len) {
            return Err((e, message));
        }
        // A large message is masked here, on the sender's thread, where its bytes are warm,
        // and outside the lock: the writer, the busiest thread of a bulk sender, only writes.
        let key = q
            .encoder
            .as_mut()
            .and_then(|e| e.premask_key(message.len()));
        if let Some(key) = key {
            drop(q);
            return self.send_masked(message, key);
        }
        if q.takes_direct(message.len()) {
            q.encode_direct(&message);
            self.queued_item(q, Inline::OncePerRead, true);
            // Freed after the lock, on the caller's thread.
            drop(message);
        } else {
            q.data.push_back(Outgoing::Message(message));
            self.queued_item(q, Inline::OncePerRead, false);
        }
        Ok(())
    }

    /// Queues a prepared message: its shared frame when this connection's encoding would give
    /// those very bytes (`frame` makes or finds it), else the message itself, encoded here
    /// like any other. The same limits and gate as `send`.
    pub(crate) fn send_prepared(
        &self,
        message: &Message,
        frame: &dyn Fn(Shared) -> Option<Arc<[u8]>>,
    ) -> Result<(), SendError> {
        let len = message.len();
        let shared = self.fit.get().map_or(Shared::PerSocket, |f| f.choose(len));
        let Some(frame) = (shared != Shared::PerSocket)
            .then(|| frame(shared))
            .flatten()
        else {
            return self.send(message.clone());
        };
        let len = len as u64;
        let mut q = self.queue();
        self.admit(&mut q, len)?;
        if q.takes_direct_frame(frame.len()) {
            // A frame up to `DIRECT_MAX` goes into the staged batch (a copy costs less than a
            // wake) and out inline, from the broadcasting thread, if the writer sleeps: no
            // thread is woken per socket.
            q.stage_frame(&frame, len);
            self.queued_item(q, Inline::Always, true);
        } else {
            q.data.push_back(Outgoing::Prepared { frame, len });
            self.queued_item(q, Inline::OncePerRead, false);
        }
        Ok(())
    }

    /// Counts `bytes` in `messages` as queued (negative to take back a count), under the lock.
    fn count_queued(&self, q: &mut Queue, bytes: u64, messages: u64) {
        q.queued_bytes = q.queued_bytes.wrapping_add(bytes);
        q.queued_messages = q.queued_messages.wrapping_add(messages);
        self.queued.bytes.store(q.queued_bytes, Ordering::Release);
        self.queued
            .messages
            .store(q.queued_messages, Ordering::Release);
    }

    /// The second half of `try_send` for a large message (already counted as queued): masks
    /// it without the lock, then queues it, unless the gate closed meanwhile (then it is
    /// unmasked and given back, and its count taken back: a close queued in between must not
    /// be followed by it).
    fn send_masked(&self, message: Message, key: [u8; 4]) -> Result<(), (SendError, Message)> {
        let (opcode, mut payload, text) = match message {
            Message::Text(s) => (OpCode::Text, s.into_bytes(), true),
            Message::Binary(b) => (OpCode::Binary, b, false),
        };
        mask::apply(&mut payload, key, 0);
        let len = payload.len() as u64;
        let mut q = self.queue();
        if q.sealed {
            self.count_queued(&mut q, len.wrapping_neg(), 1u64.wrapping_neg());
            drop(q);
            mask::apply(&mut payload, key, 0);
            let message = match (text, String::from_utf8(payload)) {
                (true, Ok(s)) => Message::Text(s),
                // Unmasked, it is the text it was; a binary message is a binary message.
                (_, Ok(s)) => Message::Binary(s.into_bytes()),
                (_, Err(e)) => Message::Binary(e.into_bytes()),
            };
            return Err((SendError::Closed, message));
        }
        q.data.push_back(Outgoing::Masked {
            opcode,
            payload,
            key,
        });
        self.queued_item(q, Inline::OncePerRead, false);
        Ok(())
    }

    /// Queues a message, waiting up to `timeout` while it does not fit under the queue's
    /// limits instead of refusing it (so it never starts the 1001 close `send` starts). Gives
    /// the message back if the socket is closing or ended, if it can never fit, or at the
    /// timeout.
    pub(crate) fn send_waiting(
        &self,
        mut message: Message,
        timeout: Duration,
    ) -> Result<(), (SendError, Message)> {
        let len = message.len() as u64;
        if len > self.max_queue_size {
            return Err((SendError::TooLarge, message));
        }
        // The clock is read only once the queue is full: a sender that never waits pays
        // nothing for the timeout.
        let mut deadline = None;
        loop {
            match self.try_send(message) {
                Err((SendError::Full, m)) => message = m,
                other => return other,
            }
            // A timeout too large to add to now means none.
            let deadline = *deadline.get_or_insert_with(|| Instant::now().checked_add(timeout));
            if !self
                .room
                .wait(deadline, || self.is_sealed() || self.fits(len))
            {
                return Err((SendError::Timeout, message));
            }
        }
    }

    /// The socket ended: whoever waits for room or a drain looks again (and gives up).
    pub(crate) fn wake_waiters(&self) {
        self.room.changed();
    }

    /// Waits until everything queued has been written (true), the socket ended with bytes
    /// unwritten, or `deadline` passed (false).
    pub(crate) fn wait_drained(&self, deadline: Option<Instant>, ended: impl Fn() -> bool) -> bool {
        let drained = || self.queued() == (0, 0);
        self.room.wait(deadline, || drained() || ended());
        drained()
    }

    /// Queues our close frame (after the session agreed to it).
    pub(crate) fn push_close(&self, code: Option<u16>, reason: &str) {
        let mut q = self.queue();
        q.data.push_back(Outgoing::Close(code, reason.to_owned()));
        self.queued_item(q, Inline::OncePerRead, false);
    }

    /// Queues a failure close: after what is queued, a close frame with `code` and a FIN.
    pub(crate) fn push_fail_close(&self, code: u16) {
        let mut q = self.queue();
        q.data.push_back(Outgoing::FailClose(code));
        self.queued_item(q, Inline::Never, false);
    }

    /// Queues a pong, unless `MAX_PENDING_PONGS` are already waiting. May be written inline.
    pub(crate) fn pong(&self, payload: Vec<u8>) {
        let mut q = self.queue();
        if q.pending_pongs >= MAX_PENDING_PONGS {
            drop(q);
            log::debug!("ping not answered: {MAX_PENDING_PONGS} pongs already waiting");
            return;
        }
        q.pending_pongs += 1;
        q.control.push_back(Control::Pong(payload));
        self.queued_item(q, Inline::OncePerRead, false);
    }

    /// Queues a keepalive ping carrying `token`, ahead of queued data (the writer's own
    /// timers ask for it, so nobody needs waking).
    pub(crate) fn ping(&self, token: [u8; 8]) {
        let mut q = self.queue();
        if !q.close_encoded {
            q.control.push_back(Control::Ping(token));
        }
    }

    /// The TLS session produced output while reading: the writer writes it, once however
    /// often this is asked before it does.
    pub(crate) fn flush_tls(&self) {
        let mut q = self.queue();
        if !std::mem::replace(&mut q.tls_flush_queued, true) {
            q.control.push_back(Control::FlushTls);
            self.queued_item(q, Inline::Never, false);
        }
    }

    /// The socket is ending: the writer exits at its next look.
    pub(crate) fn stop(&self) {
        let mut q = self.queue();
        q.control.push_back(Control::Stop);
        self.queued_item(q, Inline::Never, false);
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

    /// After queuing an item (with `q` still locked; `staged`: the sender encoded it into
    /// the staged batch itself): wakes the writer if it sleeps or lingers, or writes inline
    /// when `inline` allows it.
    fn queued_item(&self, mut q: MutexGuard<'_, Queue>, inline: Inline, staged: bool) {
        let wake = if !q.writer_parked {
            if q.writer_lingering && (!staged || q.staged.bytes.len() >= INLINE_BATCH) {
                q.writer_lingering = false;
                Wake::Writer
            } else {
                Wake::No
            }
        } else {
            q.writer_parked = false;
            let reads = self.reads.load(Ordering::Relaxed);
            match inline {
                // Where a write cannot be kept from waiting, the writer writes everything.
                _ if !platform::sockets::WRITES_WITHOUT_WAITING => Wake::Writer,
                Inline::Never => Wake::Writer,
                Inline::Always => Wake::Inline,
                Inline::OncePerRead if q.inline_at_read != reads => {
                    q.inline_at_read = reads;
                    Wake::Inline
                }
                Inline::OncePerRead if q.staged.bytes.len() >= INLINE_BATCH => Wake::Inline,
                Inline::OncePerRead => Wake::Writer,
            }
        };
        match wake {
            Wake::No => {}
            Wake::Writer => {
                drop(q);
                self.unparker.unpark();
            }
            Wake::Inline => {
                if !self.write_inline(q) {
                    self.unparker.unpark();
                }
            }
        }
    }

    /// Writes what is staged and queued (but heavy) inline, without blocking; returns whether
    /// the sleeping writer can go on sleeping (nothing is left for it, and it was marked
    /// asleep again under the lock, so the next item wakes it). The caller cleared
    /// `writer_parked`: until this returns, no other thread wakes the writer, and this one
    /// looks again for what they queued meanwhile.
    fn write_inline(&self, mut q: MutexGuard<'_, Queue>) -> bool {
        // The link before the queue is the order; `try_lock` while holding the queue cannot
        // wait for a thread that waits for us.
        let Some(mut link_guard) = self.link.try_lock() else {
            return false;
        };
        let Some(link) = link_guard.as_mut() else {
            return false;
        };
        if q.broken || q.fill_inline().is_err() {
            return false;
        }
        link.batch.absorb(&mut q.staged);
        drop(q);
        let written = link.write(Mode::Inline);
        self.wire_written(link);
        let done = match written {
            Ok(Some(done)) => done,
            Ok(None) | Err(_) => return false,
        };
        self.written(done.payload, done.messages);
        // The close frame's bookkeeping and a failure are the writer's.
        if link.has_news() {
            return false;
        }
        let mut q = self.queue();
        if q.idle() && !q.broken {
            q.writer_parked = true;
            true
        } else {
            false
        }
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
