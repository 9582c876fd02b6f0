//! What senders, the reader and the writer share behind the outbox's one short lock: the
//! gate, the two queues, the encoder (while nobody has it out), the frames senders encoded
//! themselves, and whether the writer sleeps.
//!
//! The lock is held for the moment it takes to queue or to encode a small message, never
//! across I/O or compression: the writer takes the queued items and the encoder out, encodes
//! them without the lock, and gives the encoder back ([`Work`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::batch::{Batch, CloseMark};
use super::link::Stop;
use crate::message::Message;
use crate::proto::encoder::{Encoder, ZERO_COPY_MIN};
use crate::proto::frame::OpCode;

/// Filling stops once this much is in a batch.
pub(super) const BATCH_BYTES: usize = 256 * 1024;
/// `send` encodes messages up to this size itself; larger ones go to the writer.
pub(super) const DIRECT_MAX: usize = 64 * 1024;

/// What the data queue carries, strictly in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message(Message),
    /// A large message's payload, masked with `key` by its sender: only its header is
    /// encoded, and the payload is written from where it is.
    Masked {
        opcode: OpCode,
        payload: Vec<u8>,
        key: [u8; 4],
    },
    /// Our close frame; `None` for an empty payload (the answer to an empty close).
    Close(Option<u16>, String),
    /// Fail the connection: after what is queued, a close frame with this code and a FIN.
    FailClose(u16),
    /// A prepared message's whole frame, shared with the other sockets it goes to; `len`
    /// bytes of application payload.
    Prepared {
        frame: Arc<[u8]>,
        len: u64,
    },
    /// One part of a streamed message, one frame: the message's `opcode` (text or binary),
    /// whether it is its first part and its last.
    Part {
        opcode: OpCode,
        payload: Vec<u8>,
        first: bool,
        last: bool,
    },
}

/// What the control queue carries, ahead of the data queue.
#[derive(Debug)]
pub(crate) enum Control {
    Pong(Vec<u8>),
    /// A keepalive ping with this token.
    Ping([u8; 8]),
    /// The application's ping (`WebSocket::ping`), with its payload.
    AppPing(Vec<u8>),
    /// The TLS session produced bytes while reading (a key update, an alert): write them.
    FlushTls,
    /// The socket is ending: the writer exits.
    Stop,
}

#[derive(Default)]
pub(super) struct Queue {
    /// The gate: no more sends (a close, a failure, a cancel, the end).
    pub sealed: bool,
    pub data: VecDeque<Outgoing>,
    pub control: VecDeque<Control>,
    /// Pongs queued and not yet taken (bounded by `MAX_PENDING_PONGS`).
    pub pending_pongs: usize,
    /// Application pings in `control` (bounded like the pongs).
    pub pending_app_pings: usize,
    /// A `FlushTls` is queued and not yet taken: one is enough.
    pub tls_flush_queued: bool,
    /// The encoder while nobody has it out: `None` before the connection opens, while the
    /// writer encodes, and after the end.
    pub encoder: Option<Encoder>,
    /// Frames encoded under the lock (by senders, or an inline write), for the next write.
    pub staged: Batch,
    /// Our close frame (or a failure close) is encoded: no data may follow it.
    pub close_encoded: bool,
    /// The encoder's frame count when the writer last took it out (for statistics read
    /// while it is out).
    pub frames_out: u64,
    /// The encoder's ping count then, for the same reason.
    pub pings_out: u64,
    /// The largest `queue_size` a send has seen.
    pub high_water: u64,
    /// The write side is done: a stop reached an inline write, or the socket ended.
    pub broken: bool,
    /// The writer sleeps and nobody has woken it: whoever queues work wakes it (or writes
    /// inline, and then looks again). Set by the writer under this lock, so a wake-up is never
    /// lost.
    pub writer_parked: bool,
    /// The writer waits (briefly, in a bulk flow) for the staged batch to grow: wake it once
    /// it has (or for anything else queued). See `Outbox::linger`.
    pub writer_lingering: bool,
    /// The reader's read count when a sender last wrote inline.
    pub inline_at_read: u64,
    /// Payload bytes and messages ever queued (mirrored into atomics for `queue_size`).
    pub queued_bytes: u64,
    pub queued_messages: u64,
    /// A streamed message is being queued: data messages queued meanwhile wait in `held`,
    /// behind it, and nothing is staged, so its parts go out contiguous.
    pub streaming: bool,
    /// Its parts may still be queued: false once a failure, a cancel or the end sealed the
    /// gate (a `close()` only defers itself until the stream ends).
    pub stream_open: bool,
    pub held: VecDeque<Outgoing>,
    /// A `close()` that came during the stream: queued when it ends.
    pub close_after_stream: Option<(Option<u16>, String)>,
}

impl Queue {
    /// Whether `send` may encode a message of `len` bytes itself, now: as a prepared frame
    /// ([`takes_direct_frame`](Self::takes_direct_frame)), and it needs no compression.
    pub(super) fn takes_direct(&self, len: usize) -> bool {
        self.takes_direct_frame(len)
            && self
                .encoder
                .as_ref()
                .is_some_and(|e| !e.would_compress(len))
    }

    /// Whether a frame of `len` bytes may go into the staged batch now: the encoder is here
    /// and free, and nothing is queued ahead that must go first.
    pub(super) fn takes_direct_frame(&self, len: usize) -> bool {
        len <= DIRECT_MAX
            && !self.streaming
            && !self.close_encoded
            && !self.broken
            && self.control.is_empty()
            && self.data.is_empty()
            && self.encoder.as_ref().is_some_and(|e| !e.in_progress())
    }

    /// Copies a prepared frame (`len` bytes of payload) into the staged batch.
    pub(super) fn stage_frame(&mut self, frame: &[u8], len: u64) {
        if let Some(encoder) = self.encoder.as_mut() {
            encoder.counted_external_frame();
        }
        self.staged.bytes.extend_from_slice(frame);
        self.staged.counted(len);
    }

    /// Encodes `message` into the staged batch (`send`'s fast path, after `takes_direct`).
    /// It only borrows the message: the caller frees it after the lock.
    #[inline]
    pub(super) fn encode_direct(&mut self, message: &Message) {
        if let Some(encoder) = self.encoder.as_mut()
            && encoder.small(&mut self.staged.bytes, message)
        {
            self.staged.counted(message.len() as u64);
        }
    }

    /// Whether nothing is left to encode or stage.
    pub(super) fn idle(&self) -> bool {
        self.control.is_empty()
            && self.staged.is_empty()
            && (self.close_encoded
                || (self.data.is_empty() && self.encoder.as_ref().is_none_or(|e| !e.in_progress())))
    }

    /// A control item leaves the queue: its count or flag is freed.
    fn taken(&mut self, item: &Control) {
        match item {
            Control::Pong(_) => self.pending_pongs = self.pending_pongs.saturating_sub(1),
            Control::AppPing(_) => {
                self.pending_app_pings = self.pending_app_pings.saturating_sub(1);
            }
            // Cleared before the write, so TLS output produced after it asks again.
            Control::FlushTls => self.tls_flush_queued = false,
            Control::Ping(_) | Control::Stop => {}
        }
    }

    /// An inline write's encoding, under the lock: control items and light data items into
    /// the staged batch. What costs real CPU (compression, large messages, the rest of a
    /// fragmented one) or ends the socket (a failure close) stays queued for the writer.
    pub(super) fn fill_inline(&mut self) -> Result<(), Stop> {
        let Some(mut encoder) = self.encoder.take() else {
            return Ok(());
        };
        let r = self.fill_inline_with(&mut encoder);
        self.encoder = Some(encoder);
        r
    }

    fn fill_inline_with(&mut self, encoder: &mut Encoder) -> Result<(), Stop> {
        while let Some(c) = self.control.pop_front() {
            self.taken(&c);
            if matches!(c, Control::Stop) {
                self.broken = true;
                return Err(Stop::Ending);
            }
            encode_control(encoder, &mut self.staged, c, self.close_encoded);
        }
        while !self.close_encoded && !encoder.in_progress() && self.staged.bytes.len() < BATCH_BYTES
        {
            let light = match self.data.front() {
                // Below the zero-copy size: a staged batch carries no tail.
                Some(Outgoing::Message(m)) => {
                    m.len() < ZERO_COPY_MIN && !encoder.would_compress(m.len())
                }
                Some(Outgoing::Prepared { frame, .. }) => frame.len() < ZERO_COPY_MIN,
                Some(Outgoing::Close(..)) => true,
                Some(Outgoing::Masked { .. } | Outgoing::FailClose(_) | Outgoing::Part { .. })
                | None => false,
            };
            if !light {
                break;
            }
            if let Some(item) = self.data.pop_front() {
                encode_item(encoder, &mut self.staged, item, &mut self.close_encoded)?;
            }
        }
        Ok(())
    }

    /// The writer takes the queued items and the encoder out of the lock, to encode them
    /// without it; `spare` are its empty queues, swapped in (nothing is allocated). `None` if
    /// nothing is queued, or there is no encoder (not open yet, or the end).
    pub(super) fn take_work(&mut self, spare: &mut Spare) -> Option<Work> {
        let nothing_queued = self.control.is_empty()
            && self.data.is_empty()
            && self.encoder.as_ref().is_none_or(|e| !e.in_progress());
        if nothing_queued {
            // The encoder stays for senders to encode into the staged batch.
            return None;
        }
        let encoder = self.encoder.take()?;
        self.frames_out = encoder.frames();
        self.pings_out = encoder.pings();
        std::mem::swap(&mut self.control, &mut spare.control);
        let control = std::mem::take(&mut spare.control);
        for c in &control {
            self.taken(c);
        }
        std::mem::swap(&mut self.data, &mut spare.data);
        let data = std::mem::take(&mut spare.data);
        Some(Work {
            encoder,
            control,
            data,
            closed: self.close_encoded,
        })
    }

    /// The writer gives the encoder back, with the items it did not get to (they go first:
    /// they were queued before anything queued meanwhile).
    pub(super) fn give_back(&mut self, mut work: Work, spare: &mut Spare) {
        self.encoder = Some(work.encoder);
        self.close_encoded |= work.closed;
        if !work.data.is_empty() {
            work.data.append(&mut self.data);
            std::mem::swap(&mut self.data, &mut work.data);
        }
        work.control.clear();
        spare.control = work.control;
        work.data.clear();
        spare.data = work.data;
    }
}

/// The writer's empty queues, swapped with the shared ones each round.
#[derive(Default)]
pub(crate) struct Spare {
    control: VecDeque<Control>,
    data: VecDeque<Outgoing>,
}

/// What the writer took out of the lock: the encoder and the queued items.
pub(super) struct Work {
    encoder: Encoder,
    control: VecDeque<Control>,
    data: VecDeque<Outgoing>,
    /// Our close frame is encoded.
    closed: bool,
}

impl Work {
    /// Encodes control items, then data, into `batch` until it is full (or ends with a
    /// large message's payload, or our close frame). What was taken is in `batch` even when
    /// taking it ends the writer.
    pub(super) fn encode(&mut self, batch: &mut Batch) -> Result<(), Stop> {
        while let Some(c) = self.control.pop_front() {
            if matches!(c, Control::Stop) {
                self.data.clear();
                return Err(Stop::Ending);
            }
            encode_control(&mut self.encoder, batch, c, self.closed);
        }
        loop {
            // A tail must follow its header directly: nothing more until it is written.
            if self.closed || batch.has_tail() || batch.bytes.len() >= BATCH_BYTES {
                return Ok(());
            }
            if self.encoder.in_progress() {
                if let Some(len) = self.encoder.next_fragment(&mut batch.bytes) {
                    batch.counted(len);
                }
                continue;
            }
            let Some(item) = self.data.pop_front() else {
                return Ok(());
            };
            encode_item(&mut self.encoder, batch, item, &mut self.closed)?;
        }
    }
}

fn encode_control(encoder: &mut Encoder, batch: &mut Batch, item: Control, closed: bool) {
    match item {
        Control::FlushTls => batch.flush_tls = true,
        // Nothing follows our close frame.
        Control::Pong(_) | Control::Ping(_) | Control::AppPing(_) if closed => {}
        Control::Pong(payload) => encoder.control(&mut batch.bytes, OpCode::Pong, &payload),
        Control::Ping(token) => encoder.control(&mut batch.bytes, OpCode::Ping, &token),
        Control::AppPing(payload) => encoder.control(&mut batch.bytes, OpCode::Ping, &payload),
        Control::Stop => {}
    }
}

fn encode_item(
    encoder: &mut Encoder,
    batch: &mut Batch,
    item: Outgoing,
    closed: &mut bool,
) -> Result<(), Stop> {
    match item {
        Outgoing::Message(m) => {
            let m = match encoder.whole_frame(&mut batch.bytes, m) {
                Ok((payload, len)) => {
                    batch.set_tail(payload, len);
                    return Ok(());
                }
                Err(m) => m,
            };
            encoder.start(m).map_err(Stop::Encode)?;
            if let Some(len) = encoder.next_fragment(&mut batch.bytes) {
                batch.counted(len);
            }
        }
        Outgoing::Masked {
            opcode,
            payload,
            key,
        } => {
            let len = payload.len();
            encoder.premasked_header(&mut batch.bytes, opcode, len, key);
            batch.set_tail(payload, len as u64);
        }
        Outgoing::Prepared { frame, len } => {
            encoder.counted_external_frame();
            // As a message's: a small frame is copied into the batch, so a burst of them goes
            // out in one write; a large one is written from the shared memory.
            if frame.len() < ZERO_COPY_MIN {
                batch.bytes.extend_from_slice(&frame);
                batch.counted(len);
            } else {
                batch.set_shared_tail(frame, len);
            }
        }
        Outgoing::Part {
            opcode,
            payload,
            first,
            last,
        } => {
            let len = payload.len() as u64;
            let frame_payload = encoder
                .part(&mut batch.bytes, opcode, payload, first, last)
                .map_err(Stop::Encode)?;
            batch.set_part_tail(frame_payload, len, last);
        }
        Outgoing::Close(code, reason) => {
            encoder.close(&mut batch.bytes, code, &reason);
            batch.close = CloseMark::Close;
            *closed = true;
        }
        Outgoing::FailClose(code) => {
            // Messages the application queued before the failure go out first; then the
            // close frame and a FIN.
            encoder.close(&mut batch.bytes, Some(code), "");
            batch.close = CloseMark::FailClose;
            *closed = true;
        }
    }
    Ok(())
}
