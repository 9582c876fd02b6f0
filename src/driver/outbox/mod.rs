//! A socket's write side, in one place: the send gate, the queues, the counters behind
//! `queue_size`, the encoder and the batch being written.
//!
//! `send` is the hot path, so what it touches is laid out for it:
//! - the **gate**, one atomic word on the senders' own cache line: a "no more sends" bit and
//!   the number of sends in flight. `send` enters it with one `fetch_add`, so it takes no lock,
//!   and a close waits for the sends in flight to leave it before queuing the close frame, so a
//!   message whose `send` returned true is never queued behind the close frame;
//! - the queued bytes and messages, counted as "ever queued" (written by senders) minus "ever
//!   written" (written by the writer, once per batch), each on its own cache line, so the two
//!   threads do not bounce one line per message;
//! - the writer's "parked" flag: senders wake the writer only when it sleeps.
//!
//! **Senders encode.** A small message sent while nothing is queued ahead of it is encoded by
//! `send` itself into the staged batch (a few tens of nanoseconds, and the caller's buffer is
//! freed on the caller's thread); anything else (messages to compress, large ones, messages
//! behind others, close frames, pongs) goes through the queues and the writer encodes it.
//!
//! **The writer writes.** Woken only when parked, it drains the control queue first, then
//! data, a fragment at a time for large messages, takes the staged batch (swapping buffers,
//! so nothing is copied) and writes it with one `write_all` while senders go on encoding into
//! the other buffer ([`step`](Outbox::step)).
//!
//! **Inline writes.** A sender that finds the writer parked may write itself: `try_lock` on
//! the link, take the staged batch, write with `MSG_DONTWAIT`. What the socket does not take
//! waits in the link's batch for the writer, which is then woken. That removes the thread
//! hand-off from a request/response round trip; it is tried at most once per read of the
//! reader, so bursts are still batched by the writer.

mod room;
mod round;
mod wire;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use crossbeam_utils::sync::{Parker, Unparker};
use parking_lot::Mutex;

pub(crate) use wire::{CloseMark, Control, Outgoing, Stop};
use wire::{DIRECT_MAX, Encoding, Link, Mode};

use crate::driver::transport::WriteHalf;
use crate::message::Message;
use crate::proto::encoder::Encoder;

/// The gate's "no more sends" bit; the bits below count sends in flight.
const CLOSED: u64 = 1 << 63;
/// The longest `send` waits for the encoding half before queuing the message instead.
const DIRECT_WAIT: Duration = Duration::from_micros(20);
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

/// The two halves, once the connection is open. Each is `None` once the socket has ended,
/// which frees the buffers, the compressor and the handle on the connection.
struct Wire {
    encoding: Mutex<Option<Encoding>>,
    link: Mutex<Option<Link>>,
}

/// What the writer thread owns: the queues' receiving ends and its parker.
pub(crate) struct Inbox {
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
    parker: Parker,
    /// When the writer last went idle with big buffers.
    idle_since: Option<Instant>,
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
    send_side: CachePadded<SendSide>,
    write_side: CachePadded<WriteSide>,
    writer_parked: CachePadded<AtomicBool>,
    /// Reads done by the reader; written by it alone.
    reads: CachePadded<AtomicU64>,
    unparker: Unparker,
    data_tx: Sender<Outgoing>,
    ctrl_tx: Sender<Control>,
    wire: OnceLock<Wire>,
    max_queue_size: u64,
    /// Messages queued and not yet written: bounds the queue's memory when messages are tiny
    /// or empty, which `queue_size` (payload bytes, as OkHttp counts) does not see.
    max_queued_messages: u64,
    /// Pongs queued for the writer and not yet encoded. Bounded by `MAX_PENDING_PONGS`: a peer
    /// that floods pings while not reading our answers must not grow the control queue.
    pending_pongs: AtomicUsize,
    /// A `FlushTls` is queued and not yet handled: one is enough.
    tls_flush_queued: AtomicBool,
    /// Senders waiting for room (`send_timeout`, `wait_drained`).
    room: room::Room,
}

impl Outbox {
    pub(crate) fn new(max_queue_size: u64) -> (Outbox, Inbox) {
        let (data_tx, data_rx) = crossbeam_channel::unbounded();
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let parker = Parker::new();
        let outbox = Outbox {
            send_side: CachePadded::new(SendSide {
                inline_at_read: AtomicU64::new(u64::MAX),
                ..SendSide::default()
            }),
            write_side: CachePadded::new(WriteSide::default()),
            writer_parked: CachePadded::new(AtomicBool::new(false)),
            reads: CachePadded::new(AtomicU64::new(0)),
            unparker: parker.unparker().clone(),
            data_tx,
            ctrl_tx,
            wire: OnceLock::new(),
            max_queue_size,
            max_queued_messages: crate::config::max_queued_messages(max_queue_size),
            pending_pongs: AtomicUsize::new(0),
            tls_flush_queued: AtomicBool::new(false),
            room: room::Room::default(),
        };
        let inbox = Inbox {
            data_rx,
            ctrl_rx,
            parker,
            idle_since: None,
        };
        (outbox, inbox)
    }

    /// The connection is open: from now on the writer (and senders, inline) write to `io`.
    pub(crate) fn open(&self, inbox: &Inbox, io: WriteHalf, encoder: Encoder) {
        let encoding = Encoding::new(inbox.data_rx.clone(), inbox.ctrl_rx.clone(), encoder);
        let _ = self.wire.set(Wire {
            encoding: Mutex::new(Some(encoding)),
            link: Mutex::new(Some(Link::new(io))),
        });
    }

    pub(crate) fn max_queue_size(&self) -> u64 {
        self.max_queue_size
    }

    /// Payload bytes queued and not yet written.
    pub(crate) fn queue_size(&self) -> u64 {
        let queued = self.send_side.queued_bytes.load(Ordering::Acquire);
        let written = self.write_side.written_bytes.load(Ordering::Acquire);
        queued.saturating_sub(written)
    }

    /// Closes the gate (no more sends); returns whether this call closed it.
    pub(crate) fn seal(&self) -> bool {
        let sealed = self.send_side.gate.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0;
        // No send succeeds any more, and a failure (which seals again) ends the wait for a
        // drain: waiters look again. Cheap when nobody waits.
        self.room.changed();
        sealed
    }

    fn is_sealed(&self) -> bool {
        self.send_side.gate.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Whether a message of `len` bytes would fit under the queue's limits now.
    fn fits(&self, len: u64) -> bool {
        let (bytes, messages) = self.queued();
        bytes.saturating_add(len) <= self.max_queue_size && messages < self.max_queued_messages
    }

    /// Payload bytes and messages queued and not yet written.
    fn queued(&self) -> (u64, u64) {
        let side = &self.send_side;
        let bytes = side.queued_bytes.load(Ordering::Acquire);
        let messages = side.queued_messages.load(Ordering::Acquire);
        let written_bytes = self.write_side.written_bytes.load(Ordering::Acquire);
        let written_messages = self.write_side.written_messages.load(Ordering::Acquire);
        (
            bytes.wrapping_sub(written_bytes),
            messages.wrapping_sub(written_messages),
        )
    }

    /// Queues a message, waiting until `deadline` while it does not fit under the queue's
    /// limits instead of refusing it (so it never starts the 1001 close `send` starts). Gives
    /// the message back if the socket is closing or ended, if it can never fit, or at the
    /// deadline.
    pub(crate) fn send_waiting(
        &self,
        mut message: Message,
        deadline: Option<Instant>,
    ) -> Result<(), (SendError, Message)> {
        let len = message.len() as u64;
        if len > self.max_queue_size {
            return Err((SendError::TooLarge, message));
        }
        loop {
            match self.try_send(message) {
                Err((SendError::Full, m)) => message = m,
                other => return other,
            }
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

    /// Waits until no `send` is between its check of the gate and its push. Sends in flight
    /// do a few atomic operations and a lock-free push, so this is a short spin.
    pub(crate) fn wait_for_sends_in_flight(&self) {
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
        self.try_send(message).map_err(|(e, _)| e)
    }

    /// `send`, giving the message back when it is refused.
    fn try_send(&self, message: Message) -> Result<(), (SendError, Message)> {
        let side = &self.send_side;
        if side.gate.fetch_add(1, Ordering::Acquire) & CLOSED != 0 {
            side.gate.fetch_sub(1, Ordering::Release);
            return Err((SendError::Closed, message));
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
            return Err((SendError::Full, message));
        }
        // Small and nothing queued ahead: encode it here, into the staged batch.
        let message = match self.encode_direct(message) {
            Ok(()) => {
                side.gate.fetch_sub(1, Ordering::Release);
                self.after_push(true);
                return Ok(());
            }
            Err(m) => m,
        };
        let _ = self.data_tx.send(Outgoing::Message(message));
        side.gate.fetch_sub(1, Ordering::Release);
        self.after_push(true);
        Ok(())
    }

    /// `send`'s fast path: encodes `message` into the staged batch if nothing is queued ahead
    /// of it and it needs no compression; otherwise hands it back for the queue.
    fn encode_direct(&self, message: Message) -> Result<(), Message> {
        if message.len() > DIRECT_MAX {
            return Err(message);
        }
        let Some(wire) = self.wire.get() else {
            return Err(message);
        };
        // The writer holds the encoding half for a buffer swap (well under a microsecond),
        // which `send` waits out; but it also holds it while it compresses a large queued
        // message, and `send` does not wait for that: past a few microseconds the message
        // takes the queue.
        let Some(mut guard) = wire.encoding.try_lock_for(DIRECT_WAIT) else {
            return Err(message);
        };
        match guard.as_mut() {
            Some(encoding) if encoding.takes_direct(message.len()) => {
                encoding.encode_direct(message);
                Ok(())
            }
            _ => Err(message),
        }
    }

    /// Queues our close frame (after the session agreed to it).
    pub(crate) fn push_close(&self, code: Option<u16>, reason: &str) {
        let _ = self.data_tx.send(Outgoing::Close(code, reason.to_owned()));
        self.after_push(true);
    }

    /// Queues a failure close: after what is queued, a close frame with `code` and a FIN.
    pub(crate) fn push_fail_close(&self, code: u16) {
        let _ = self.data_tx.send(Outgoing::FailClose(code));
        self.after_push(false);
    }

    /// Queues a pong, unless `MAX_PENDING_PONGS` are already waiting. May be written inline.
    pub(crate) fn pong(&self, payload: Vec<u8>) {
        if self.pending_pongs.fetch_add(1, Ordering::AcqRel) < MAX_PENDING_PONGS {
            let _ = self.ctrl_tx.send(Control::Pong(payload));
            self.after_push(true);
        } else {
            self.pending_pongs.fetch_sub(1, Ordering::AcqRel);
            log::debug!("ping not answered: {MAX_PENDING_PONGS} pongs already waiting");
        }
    }

    /// The TLS session produced output while reading: the writer writes it, once however
    /// often this is asked before it does.
    pub(crate) fn flush_tls(&self) {
        if !self.tls_flush_queued.swap(true, Ordering::AcqRel) {
            let _ = self.ctrl_tx.send(Control::FlushTls);
            self.after_push(false);
        }
    }

    /// The socket is ending: the writer exits at its next look.
    pub(crate) fn stop(&self) {
        let _ = self.ctrl_tx.send(Control::Stop);
        self.after_push(false);
    }

    /// The reader did a read (a reply may have arrived: the next send may go inline).
    pub(crate) fn note_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The socket ended cleanly: what is still counted as queued was never going to be
    /// written (the peer ended the connection after its close), so `queue_size` reads 0.
    pub(crate) fn settle(&self) {
        let side = &self.send_side;
        self.write_side
            .written_bytes
            .store(side.queued_bytes.load(Ordering::Acquire), Ordering::Release);
        self.write_side.written_messages.store(
            side.queued_messages.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.room.changed();
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
        let Some(wire) = self.wire.get() else {
            return false;
        };
        self.send_side
            .inline_at_read
            .store(reads, Ordering::Relaxed);
        let Some(mut link_guard) = wire.link.try_lock() else {
            return false;
        };
        let Some(link) = link_guard.as_mut() else {
            return false;
        };
        let more = {
            let mut guard = wire.encoding.lock();
            let Some(encoding) = guard.as_mut() else {
                return false;
            };
            if encoding.broken {
                return false;
            }
            let filled = encoding.fill(Mode::Inline, |c| self.taken(c));
            link.take_staged(encoding);
            if filled.is_err() {
                encoding.broken = true;
                return false;
            }
            // What it left (a stashed item, fragments to go) is the writer's.
            !encoding.idle()
        };
        match link.write(Mode::Inline) {
            Ok(Some(done)) => {
                self.written(done.payload, done.messages);
                // The close frame's bookkeeping is the writer's.
                !more && !link.close_to_report()
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// A control item was taken off the queue: its count or flag is freed.
    fn taken(&self, item: &Control) {
        match item {
            Control::Pong(_) => {
                self.pending_pongs.fetch_sub(1, Ordering::AcqRel);
            }
            // Cleared before the write, so TLS output produced after it asks again.
            Control::FlushTls => self.tls_flush_queued.store(false, Ordering::Release),
            Control::Stop => {}
        }
    }

    /// The writer wrote `bytes` of payload in `messages` whole messages.
    fn written(&self, bytes: u64, messages: u64) {
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
        if bytes > 0 || messages > 0 {
            self.room.changed();
        }
    }
}
