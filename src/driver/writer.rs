//! The write side of a socket and the writer thread that drives it.
//!
//! Two halves, each behind its own mutex, in one [`WireSlot`]:
//! - the [`Wire`]: what turns messages into bytes — the queues' receiving ends, the encoder,
//!   the timers — and `out`, the bytes encoded and not yet handed to the link. It is held only
//!   for the moment it takes to encode, never across I/O;
//! - the [`Link`]: the write half of the connection and the batch being written. It is held
//!   across the (blocking) write, and always taken before the wire, so bytes reach the socket
//!   in the order they were taken from `out`.
//!
//! **Senders encode.** A small message sent while nothing is queued ahead of it is encoded by
//! `send` itself, straight into `out` (a few tens of nanoseconds, and the caller's buffer is
//! freed on the caller's thread); anything else — messages to compress, large ones, messages
//! behind others, close frames, pongs — goes through the queues and the writer encodes it.
//!
//! **The writer writes.** Woken (only when parked, see [`Shared`]) it drains the control queue
//! first, then data, a fragment at a time for large messages, takes `out` (swapping buffers,
//! so nothing is copied) and writes the batch with one `write_all` while senders go on
//! encoding into the other buffer. It runs the [`Timers`] and carries out what they decide.
//!
//! **Inline writes.** A sender that finds the writer parked may write itself: `try_lock` on the
//! link, take `out`, write with `MSG_DONTWAIT`. What the socket does not take waits in the
//! link's batch for the writer, which is then woken. That removes the thread hand-off from a
//! request/response round trip; [`Shared`] tries it at most once per read, so bursts are still
//! batched by the writer.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use crossbeam_utils::sync::Parker;
use parking_lot::Mutex;

use super::shared::{Control, Outgoing, Queues, Shared};
use super::transport::{Stall, WRITE_SLICE, WriteHalf};
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::deflate;
use crate::proto::encoder::Encoder;
use crate::proto::frame::OpCode;
use crate::proto::timers::{Action, Timers};

/// The writer stops encoding queued items into one batch once this much is buffered.
const BATCH_BYTES: usize = 256 * 1024;
/// Idle buffers larger than this are freed once the writer has been idle for `BUFFER_LINGER`.
const IDLE_BUFFER: usize = 4 * 1024;
const BUFFER_LINGER: Duration = Duration::from_secs(1);
/// `send` encodes messages up to this size itself; larger ones go to the writer.
const DIRECT_MAX: usize = 64 * 1024;
/// The longest `send` waits for the wire before queuing the message instead.
const DIRECT_WAIT: Duration = Duration::from_micros(20);

/// Both halves of a socket's write side. Each is `None` once the writer has exited, which
/// frees the buffers, the compressor and the handle on the connection.
pub(crate) struct WireSlot {
    wire: Mutex<Option<Wire>>,
    link: Mutex<Option<Link>>,
}

pub(crate) struct Wire {
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
    encoder: Encoder,
    timers: Timers,
    /// Encoded bytes not yet taken by the link.
    out: Vec<u8>,
    /// Payload bytes and count of the whole messages in `out`, for `queue_size`.
    out_payload: u64,
    out_messages: u64,
    /// An item an inline write took from the queue but left for the writer thread.
    stash: Option<Outgoing>,
    /// The payload of a large message, masked in place, to be written right after `out`.
    tail: Option<Vec<u8>>,
    /// Our close frame is encoded: nothing more may be sent.
    close_encoded: bool,
    /// ...and it is a failure close: after writing it, send a FIN and exit.
    fail_close: bool,
    /// The close frame is in `out` (not yet handed to the link).
    close_in_out: bool,
    /// A `FlushTls` asked for the TLS session's own output to be written.
    flush_requested: bool,
    /// The writer must exit (a stop, or a failure found off the writer thread).
    exited: bool,
}

pub(crate) struct Link {
    io: WriteHalf,
    role: Role,
    /// Bytes taken from the wire, written from `pos` on, then `tail` from `tail_pos` on.
    batch: Vec<u8>,
    pos: usize,
    tail: Option<Vec<u8>>,
    tail_pos: usize,
    payload: u64,
    messages: u64,
    /// The batch holds our close frame (bookkeeping once it is written).
    close_in_batch: bool,
    /// The batch ends with a failure close (a FIN once it is written).
    fail_in_batch: bool,
    flush_requested: bool,
    write_timeout: Duration,
    /// For the error a write cut off by the close deadline reports.
    close_timeout: Duration,
}

/// The writer is done: the socket is ending (stop, failure, or our part of the close is over).
pub(crate) struct Exit;

type Flow = Result<(), Exit>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On the writer thread: may do anything.
    Writer,
    /// On a sending thread: leaves expensive or blocking items to the writer.
    Inline,
}

impl WireSlot {
    pub(crate) fn new(
        mut io: WriteHalf,
        shared: &Shared,
        queues: &Queues,
        role: Role,
        config: &Config,
        deflate: Option<&deflate::Params>,
    ) -> Arc<WireSlot> {
        // A blocking write waits a slice at a time, so that the close timer is looked at even
        // while a peer that reads slowly keeps the write going.
        let slice = config
            .write_timeout_option()
            .map_or(WRITE_SLICE, |t| t.min(WRITE_SLICE));
        let _ = io.tcp.set_write_timeout(Some(slice));
        let timers = config.timers();
        io.stall = Stall {
            write_timeout: config.write_timeout_option(),
            close_clock: Some(shared.close_clock.clone()),
        };
        let wire = Wire {
            data_rx: queues.data_rx.clone(),
            ctrl_rx: queues.ctrl_rx.clone(),
            encoder: Encoder::new(role, deflate, config.encoder()),
            timers: Timers::new(config.timers(), Instant::now()),
            out: Vec::new(),
            out_payload: 0,
            out_messages: 0,
            stash: None,
            tail: None,
            close_encoded: false,
            fail_close: false,
            close_in_out: false,
            flush_requested: false,
            exited: false,
        };
        let link = Link {
            io,
            role,
            batch: Vec::new(),
            pos: 0,
            tail: None,
            tail_pos: 0,
            payload: 0,
            messages: 0,
            close_in_batch: false,
            fail_in_batch: false,
            flush_requested: false,
            write_timeout: config.write_timeout,
            close_timeout: timers.close_timeout.unwrap_or_default(),
        };
        Arc::new(WireSlot {
            wire: Mutex::new(Some(wire)),
            link: Mutex::new(Some(link)),
        })
    }

    /// Sends close_notify (under TLS) and a FIN, unless the writer is busy writing: the close
    /// is over by then, so a writer still in a write means a peer that does not read, and
    /// waiting for it would hang the reader.
    pub(crate) fn finish_output(&self) {
        if let Some(mut guard) = self.link.try_lock_for(Duration::from_millis(100))
            && let Some(link) = guard.as_mut()
        {
            link.io.finish();
        }
    }

    /// Frees both halves.
    pub(crate) fn clear(&self) {
        *self.link.lock() = None;
        *self.wire.lock() = None;
    }

    /// `send`'s fast path: encodes `message` into `out` if nothing is queued ahead of it and it
    /// needs no compression; otherwise hands it back for the queue.
    pub(crate) fn encode_direct(&self, message: Message) -> Result<(), Message> {
        if message.len() > DIRECT_MAX {
            return Err(message);
        }
        // The writer holds the wire for a buffer swap (well under a microsecond), which `send`
        // waits out; but it also holds it while it compresses a large queued message, and
        // `send` does not wait for that: past a few microseconds the message takes the queue.
        let Some(mut guard) = self.wire.try_lock_for(DIRECT_WAIT) else {
            return Err(message);
        };
        let Some(wire) = guard.as_mut() else {
            return Err(message);
        };
        // Anything queued (a pong too: control frames go first) must be encoded before it.
        if wire.exited
            || wire.close_encoded
            || wire.tail.is_some()
            || wire.stash.is_some()
            || wire.encoder.in_progress()
            || !wire.ctrl_rx.is_empty()
            || !wire.data_rx.is_empty()
            || wire.encoder.would_compress(message.len())
        {
            return Err(message);
        }
        let len = message.len() as u64;
        match wire.encoder.message(&mut wire.out, message) {
            Ok(()) => {
                wire.out_payload += len;
                wire.out_messages += 1;
            }
            // Only compression can fail, and this message is not compressed.
            Err(e) => log::error!("encoding failed: {e}"),
        }
        Ok(())
    }

    /// Writes what is encoded or queued without blocking. Returns whether all of it went out
    /// and the writer thread has nothing to do for it (otherwise the caller wakes the writer).
    pub(crate) fn write_inline(&self, shared: &Shared) -> bool {
        let Some(mut link_guard) = self.link.try_lock() else {
            return false;
        };
        let Some(link) = link_guard.as_mut() else {
            return false;
        };
        let more = {
            let mut wire_guard = self.wire.lock();
            let Some(wire) = wire_guard.as_mut() else {
                return false;
            };
            if wire.exited {
                return false;
            }
            if wire.fill(shared, Mode::Inline).is_err() {
                wire.exited = true;
                wire.hand_over(link);
                return false;
            }
            wire.hand_over(link);
            // What it left (a stashed item, fragments to go) is the writer's.
            !wire.idle()
        };
        match link.write(shared, Mode::Inline) {
            // The close frame's bookkeeping (timer, server FIN) is the writer's too.
            Ok(done) => done && !more && !link.close_in_batch,
            Err(Exit) => {
                if let Some(wire) = self.wire.lock().as_mut() {
                    wire.exited = true;
                }
                false
            }
        }
    }
}

impl Wire {
    fn idle(&self) -> bool {
        self.ctrl_rx.is_empty()
            && self.out.is_empty()
            && self.tail.is_none()
            && !self.flush_requested
            && (self.close_encoded
                || (self.data_rx.is_empty() && self.stash.is_none() && !self.encoder.in_progress()))
    }

    /// Encodes queued items into `out`, control items first, until the batch is full.
    fn fill(&mut self, shared: &Shared, mode: Mode) -> Flow {
        loop {
            while let Ok(c) = self.ctrl_rx.try_recv() {
                self.take_control(shared, c)?;
            }
            // A tail must follow `out` directly: nothing more until the link has taken it.
            if self.close_encoded || self.tail.is_some() || self.out.len() >= BATCH_BYTES {
                return Ok(());
            }
            if self.encoder.in_progress() {
                if mode == Mode::Inline {
                    return Ok(());
                }
                self.next_fragment();
                continue;
            }
            let item = match self.stash.take() {
                Some(item) => item,
                None => match self.data_rx.try_recv() {
                    Ok(d) => d,
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) => return Err(Exit),
                },
            };
            if mode == Mode::Inline && self.for_the_writer(&item) {
                self.stash = Some(item);
                return Ok(());
            }
            self.take_data(shared, item)?;
        }
    }

    /// Items an inline write leaves to the writer thread: they cost real CPU or end the socket.
    fn for_the_writer(&self, item: &Outgoing) -> bool {
        match item {
            Outgoing::Message(m) => m.len() > DIRECT_MAX || self.encoder.would_compress(m.len()),
            Outgoing::Close(..) => false,
            Outgoing::FailClose(_) => true,
        }
    }

    fn next_fragment(&mut self) {
        if let Some(len) = self.encoder.next_fragment(&mut self.out) {
            self.out_payload += len;
            self.out_messages += 1;
        }
    }

    fn take_control(&mut self, shared: &Shared, item: Control) -> Flow {
        match item {
            Control::Stop => Err(Exit),
            Control::FlushTls => {
                // Cleared before the write, so TLS output produced after it asks again.
                shared.tls_flush_queued.store(false, Ordering::Release);
                self.flush_requested = true;
                Ok(())
            }
            Control::Pong(payload) => {
                shared.pending_pongs.fetch_sub(1, Ordering::AcqRel);
                if !self.close_encoded {
                    self.encoder.control(&mut self.out, OpCode::Pong, &payload);
                }
                Ok(())
            }
        }
    }

    fn take_data(&mut self, shared: &Shared, item: Outgoing) -> Flow {
        match item {
            Outgoing::Message(m) => {
                let m = match self.encoder.whole_frame(&mut self.out, m) {
                    Ok((payload, len)) => {
                        self.tail = Some(payload);
                        self.out_payload += len;
                        self.out_messages += 1;
                        return Ok(());
                    }
                    Err(m) => m,
                };
                if let Err(e) = self.encoder.start(m) {
                    shared.fail(e);
                    return Err(Exit);
                }
                self.next_fragment();
            }
            Outgoing::Close(code, reason) => {
                self.encoder.close(&mut self.out, code, &reason);
                self.close_encoded = true;
                self.close_in_out = true;
            }
            Outgoing::FailClose(code) => {
                // Messages the application queued before the failure go out first; then the
                // close frame and a FIN.
                self.encoder.close(&mut self.out, Some(code), "");
                self.close_encoded = true;
                self.close_in_out = true;
                self.fail_close = true;
            }
        }
        Ok(())
    }

    /// Moves `out` to the end of the link's batch (a swap when the batch is empty).
    fn hand_over(&mut self, link: &mut Link) {
        if link.tail.is_some() {
            // The link is still writing a tail: new bytes wait in `out` until it is done.
            return;
        }
        if link.batch.len() == link.pos {
            link.batch.clear();
            link.pos = 0;
            std::mem::swap(&mut link.batch, &mut self.out);
        } else {
            link.batch.extend_from_slice(&self.out);
            self.out.clear();
        }
        link.payload += std::mem::take(&mut self.out_payload);
        link.messages += std::mem::take(&mut self.out_messages);
        link.flush_requested |= std::mem::take(&mut self.flush_requested);
        if std::mem::take(&mut self.close_in_out) {
            link.close_in_batch = true;
            link.fail_in_batch = self.fail_close;
        }
        link.tail = self.tail.take();
        link.tail_pos = 0;
    }
}

impl Link {
    /// Everything taken is on the wire: report it to `queue_size`.
    fn batch_written(&mut self, shared: &Shared) -> Result<bool, Exit> {
        self.batch.clear();
        self.pos = 0;
        self.tail = None;
        self.tail_pos = 0;
        let bytes = std::mem::take(&mut self.payload);
        let messages = std::mem::take(&mut self.messages);
        shared.written(bytes, messages);
        Ok(true)
    }

    /// Writes the batch. Returns whether all of it is written (always, or an error, in writer
    /// mode).
    fn write(&mut self, shared: &Shared, mode: Mode) -> Result<bool, Exit> {
        let pending = &self.batch[self.pos..];
        let tail = self
            .tail
            .as_deref()
            .map_or(&[][..], |t| &t[self.tail_pos..]);
        if pending.is_empty() && tail.is_empty() && !self.flush_requested && !self.io.has_pending()
        {
            return self.batch_written(shared);
        }
        self.flush_requested = false;
        let result = match mode {
            Mode::Writer => self
                .io
                .write_all_two(pending, tail)
                .map(|()| pending.len() + tail.len()),
            // Inline writes never carry a tail (large messages are the writer's).
            Mode::Inline => self.io.write_nonblocking(pending),
        };
        match result {
            Ok(mut n) => {
                let from_batch = n.min(self.batch.len() - self.pos);
                self.pos += from_batch;
                n -= from_batch;
                self.tail_pos += n;
                let tail_left = self.tail.as_ref().is_some_and(|t| self.tail_pos < t.len());
                if self.pos < self.batch.len() || tail_left || self.io.has_pending() {
                    return Ok(false);
                }
                self.batch_written(shared)
            }
            Err(e) => {
                self.batch.clear();
                self.pos = 0;
                self.tail = None;
                let peer_closed = {
                    let core = shared.core.lock();
                    if core.peer_closed {
                        core.shutdown();
                    }
                    core.peer_closed
                };
                if !peer_closed {
                    let error = match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            if self.io.stall.close_expired(Instant::now()) {
                                Error::CloseTimeout(self.close_timeout)
                            } else {
                                Error::WriteTimeout(self.write_timeout)
                            }
                        }
                        _ => Error::from(e),
                    };
                    log::debug!("write failed: {error}");
                    shared.fail(error);
                }
                Err(Exit)
            }
        }
    }
}

/// The writer thread's loop over a socket's write side.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    slot: Arc<WireSlot>,
    parker: Parker,
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
    /// When the writer last went idle with big buffers.
    idle_since: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, slot: Arc<WireSlot>, queues: Queues) -> Self {
        Writer {
            shared,
            slot,
            parker: queues.parker,
            data_rx: queues.data_rx,
            ctrl_rx: queues.ctrl_rx,
            idle_since: None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            match self.step() {
                Ok(None) => {}
                Ok(Some((watch_data, deadline))) => self.shared.park_writer(
                    &self.parker,
                    &self.ctrl_rx,
                    watch_data.then_some(&self.data_rx),
                    deadline,
                ),
                Err(Exit) => break,
            }
        }
        self.slot.clear();
        log::debug!("writer for {} exits", self.shared.request.shown_url());
    }

    /// One round: take from the wire, write, run the timers. Returns what to park on when
    /// there is nothing left to do.
    #[allow(clippy::type_complexity)]
    fn step(&mut self) -> Result<Option<(bool, Option<Instant>)>, Exit> {
        let shared = &*self.shared;
        let mut link_guard = self.slot.link.lock();
        let link = link_guard.as_mut().ok_or(Exit)?;
        let taken = {
            let mut wire_guard = self.slot.wire.lock();
            let wire = wire_guard.as_mut().ok_or(Exit)?;
            if wire.exited {
                return Err(Exit);
            }
            // Whatever was taken is written, even when taking it ends the writer.
            let taken = wire.fill(shared, Mode::Writer);
            wire.hand_over(link);
            taken
        };
        link.write(shared, Mode::Writer)?;
        if link.fail_in_batch {
            link.io.finish();
            return Err(Exit);
        }
        taken?;
        let mut wire_guard = self.slot.wire.lock();
        let wire = wire_guard.as_mut().ok_or(Exit)?;
        // The close timer runs to the one deadline set when the close started, whenever the
        // frame itself gets written.
        if let Some(deadline) = shared.close_clock.deadline() {
            wire.timers.closing(deadline);
        }
        if std::mem::take(&mut link.close_in_batch) {
            close_written(shared, link);
        }
        run_timers(shared, wire, link)?;
        if !wire.idle() || !link.batch.is_empty() {
            self.idle_since = None;
            return Ok(None);
        }
        let mut deadline = wire.timers.next_deadline();
        if wire.out.capacity() > IDLE_BUFFER || link.batch.capacity() > IDLE_BUFFER {
            // Big buffers go once the socket has been idle for a while, not at every pause of
            // a busy one (a 1 MiB buffer freed between two messages is mapped and faulted in
            // again for the next).
            let now = Instant::now();
            let since = *self.idle_since.get_or_insert(now);
            let free_at = since.checked_add(BUFFER_LINGER).unwrap_or(since);
            if now >= free_at {
                wire.out = Vec::new();
                link.batch = Vec::new();
                self.idle_since = None;
            } else {
                deadline = Some(deadline.map_or(free_at, |d| d.min(free_at)));
            }
        }
        // Once our close is out, only control items (a stop) matter.
        Ok(Some((!wire.close_encoded, deadline)))
    }
}

/// Our close frame is on the wire: record it, and in the server role close TCP if the peer's
/// close came first (RFC 6455 §7.1.1).
fn close_written(shared: &Shared, link: &mut Link) {
    let mut core = shared.core.lock();
    core.close_written = true;
    if core.peer_closed && ends_first(link.role, link.io.is_tls()) {
        drop(core);
        link.io.finish();
    }
}

/// Whether we end the connection once both close frames are out. The server does (RFC 6455
/// §7.1.1). Under TLS the client does too, with close_notify: TLS cannot half-close, so TLS
/// servers (Python `websockets`, for one) wait for the client to end the session, and a client
/// that waited for them would wait out their close timeout. The RFC lets the client close
/// "at any time after sending and receiving a close message".
pub(crate) fn ends_first(role: Role, tls: bool) -> bool {
    role == Role::Server || tls
}

fn run_timers(shared: &Shared, wire: &mut Wire, link: &mut Link) -> Flow {
    let Some(deadline) = wire.timers.next_deadline() else {
        return Ok(());
    };
    let now = Instant::now();
    if now < deadline {
        return Ok(());
    }
    if shared.reading_paused.load(Ordering::Acquire) {
        wire.timers.hold_pong_timeout(now);
    }
    let pongs = shared.pongs.load(Ordering::Acquire);
    let peer_closed = shared.core.lock().peer_closed;
    while let Some(action) = wire.timers.poll(now, pongs, peer_closed) {
        match action {
            Action::SendPing => {
                if !wire.close_encoded {
                    // Written on the next round, ahead of nothing: `out` was just taken.
                    let token = shared.next_ping_token();
                    wire.encoder.control(&mut wire.out, OpCode::Ping, &token);
                }
            }
            Action::Fail(e) => {
                shared.fail(e.into());
                return Err(Exit);
            }
            Action::CloseConnection => {
                // The close handshake is complete; the peer just kept TCP open. Close it in
                // order (close_notify under TLS), then for good.
                link.io.finish();
                shared.core.lock().shutdown();
                return Err(Exit);
            }
        }
    }
    Ok(())
}
