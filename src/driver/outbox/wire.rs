//! From queued items to bytes on the socket: the encoding half (queues → encoder → a staged
//! [`Batch`]) and the link (the write half and the batch being written).
//!
//! Two halves, each behind its own mutex (in [`Outbox`](super::Outbox)):
//! - [`Encoding`]: the queues' receiving ends, the encoder and the staged batch. It is held only
//!   for the moment it takes to encode, never across I/O;
//! - [`Link`]: the write half of the connection and the batch being written. It is held across
//!   the (blocking) write, and always taken before the encoding half, so bytes reach the socket
//!   in the order they were staged.
//!
//! Filling and writing return errors; what a failure means for the socket (a failure to report,
//! or the peer's close already in) is for the caller to decide with the session.

use std::io;

use crossbeam_channel::{Receiver, TryRecvError};

use crate::driver::transport::WriteHalf;
use crate::error::Error;
use crate::message::Message;
use crate::proto::encoder::Encoder;
use crate::proto::frame::OpCode;

/// Filling stops once this much is staged.
pub(super) const BATCH_BYTES: usize = 256 * 1024;
/// `send` encodes messages up to this size itself; larger ones go to the writer.
pub(super) const DIRECT_MAX: usize = 64 * 1024;

/// What the data queue carries, strictly in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message(Message),
    /// Our close frame; `None` for an empty payload (the answer to an empty close).
    Close(Option<u16>, String),
    /// Fail the connection: after what is queued, a close frame with this code and a FIN.
    FailClose(u16),
}

/// What the control queue carries, ahead of the data queue.
#[derive(Debug)]
pub(crate) enum Control {
    Pong(Vec<u8>),
    /// The TLS session produced bytes while reading (a key update, an alert): write them.
    FlushTls,
    /// The socket is ending: the writer exits.
    Stop,
}

/// Which close frame a batch ends with, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CloseMark {
    #[default]
    None,
    /// Our close frame: once written, the session hears of it.
    Close,
    /// A failure close: once written, our side of TCP ends.
    FailClose,
}

/// Bytes on their way to the socket, and what they account for.
#[derive(Debug, Default)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    /// Written up to here.
    pos: usize,
    /// The payload of a large message, masked in place, to write right after `bytes`
    /// (without copying it into them).
    tail: Option<Vec<u8>>,
    tail_pos: usize,
    /// Payload bytes and whole messages in it, for `queue_size`.
    payload: u64,
    messages: u64,
    close: CloseMark,
    /// The TLS session has output of its own to write with it.
    flush_tls: bool,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.tail.is_none() && !self.flush_tls && self.payload == 0
    }

    /// Moves everything `staged` holds to the end of this batch: a swap when this one is
    /// empty, so nothing is copied. Nothing moves while this batch still writes a tail (the
    /// tail must follow its frame header directly).
    fn absorb(&mut self, staged: &mut Batch) {
        if self.tail.is_some() {
            return;
        }
        if self.pos == self.bytes.len() {
            self.bytes.clear();
            self.pos = 0;
            std::mem::swap(&mut self.bytes, &mut staged.bytes);
        } else {
            self.bytes.extend_from_slice(&staged.bytes);
            staged.bytes.clear();
        }
        self.tail = staged.tail.take();
        self.tail_pos = 0;
        self.payload += std::mem::take(&mut staged.payload);
        self.messages += std::mem::take(&mut staged.messages);
        self.flush_tls |= std::mem::take(&mut staged.flush_tls);
        if staged.close != CloseMark::None {
            self.close = std::mem::take(&mut staged.close);
        }
    }

    fn pending(&self) -> (&[u8], &[u8]) {
        let tail = self
            .tail
            .as_deref()
            .map_or(&[][..], |t| &t[self.tail_pos..]);
        (&self.bytes[self.pos..], tail)
    }

    fn advance(&mut self, mut n: usize) {
        let from_bytes = n.min(self.bytes.len() - self.pos);
        self.pos += from_bytes;
        n -= from_bytes;
        self.tail_pos += n;
    }

    fn written_out(&self) -> bool {
        self.pos == self.bytes.len() && self.tail.as_ref().is_none_or(|t| self.tail_pos == t.len())
    }

    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Frees the buffer if it is empty and larger than `keep` bytes.
    pub(super) fn shrink(&mut self, keep: usize) {
        if self.bytes.capacity() > keep && self.pos == self.bytes.len() && self.tail.is_none() {
            self.bytes = Vec::new();
            self.pos = 0;
        }
    }

    /// The batch is on the wire: what it accounted for, and it is empty again (its buffer
    /// kept for the next).
    fn take_done(&mut self) -> Done {
        self.bytes.clear();
        self.pos = 0;
        self.tail = None;
        self.tail_pos = 0;
        self.flush_tls = false;
        Done {
            payload: std::mem::take(&mut self.payload),
            messages: std::mem::take(&mut self.messages),
            close: std::mem::take(&mut self.close),
        }
    }
}

/// What a written batch accounted for.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub payload: u64,
    pub messages: u64,
    pub close: CloseMark,
}

/// Why filling or writing stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The socket is ending (a stop, or the queue is gone).
    Ending,
    /// A message could not be encoded (compression failed).
    Encode(Error),
    /// The connection refused a write (or a blocking one gave up): for the session to judge.
    Write(io::Error),
}

/// Who is filling: the writer thread may do anything; a sender writing inline leaves what
/// costs real CPU (compression, big copies) or ends the socket to the writer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Writer,
    Inline,
}

/// The encoding half.
pub(super) struct Encoding {
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
    pub encoder: Encoder,
    pub staged: Batch,
    /// An item an inline write took from the queue but left for the writer thread.
    stash: Option<Outgoing>,
    /// Our close frame is encoded: nothing may follow it but what the TLS session sends.
    pub closed: bool,
    /// The writer is done with this socket (a stop, or an inline write found it ending).
    pub broken: bool,
}

impl Encoding {
    pub(super) fn new(
        data_rx: Receiver<Outgoing>,
        ctrl_rx: Receiver<Control>,
        encoder: Encoder,
    ) -> Self {
        Encoding {
            data_rx,
            ctrl_rx,
            encoder,
            staged: Batch::default(),
            stash: None,
            closed: false,
            broken: false,
        }
    }

    /// Whether nothing is left to encode or stage.
    pub(super) fn idle(&self) -> bool {
        self.ctrl_rx.is_empty()
            && self.staged.is_empty()
            && (self.closed
                || (self.data_rx.is_empty() && self.stash.is_none() && !self.encoder.in_progress()))
    }

    /// Whether `send` may encode a message of `len` bytes itself, now: nothing is queued or
    /// staged ahead of it that must go first, and it needs no compression.
    pub(super) fn takes_direct(&self, len: usize) -> bool {
        !self.broken
            && !self.closed
            && self.staged.tail.is_none()
            && self.stash.is_none()
            && !self.encoder.in_progress()
            && self.ctrl_rx.is_empty()
            && self.data_rx.is_empty()
            && !self.encoder.would_compress(len)
    }

    /// Encodes `message` into the staged batch (`send`'s fast path, after `takes_direct`).
    pub(super) fn encode_direct(&mut self, message: Message) {
        let len = message.len() as u64;
        match self.encoder.message(&mut self.staged.bytes, message) {
            Ok(()) => {
                self.staged.payload += len;
                self.staged.messages += 1;
            }
            // Only compression can fail, and this message is not compressed.
            Err(e) => log::error!("encoding failed: {e}"),
        }
    }

    /// Encodes a ping with `payload` ahead of whatever is queued.
    pub(super) fn ping(&mut self, payload: &[u8]) {
        if !self.closed {
            self.encoder
                .control(&mut self.staged.bytes, OpCode::Ping, payload);
        }
    }

    /// Encodes queued items into the staged batch, control items first, until it is full.
    /// `taken` hears of each control item taken off its queue.
    pub(super) fn fill(&mut self, mode: Mode, mut taken: impl FnMut(&Control)) -> Result<(), Stop> {
        loop {
            while let Ok(c) = self.ctrl_rx.try_recv() {
                taken(&c);
                match c {
                    Control::Stop => return Err(Stop::Ending),
                    Control::FlushTls => self.staged.flush_tls = true,
                    Control::Pong(payload) => {
                        if !self.closed {
                            self.encoder
                                .control(&mut self.staged.bytes, OpCode::Pong, &payload);
                        }
                    }
                }
            }
            // A tail must follow its header directly: nothing more until the link has it.
            if self.closed || self.staged.tail.is_some() || self.staged.bytes.len() >= BATCH_BYTES {
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
                    Err(TryRecvError::Disconnected) => return Err(Stop::Ending),
                },
            };
            if mode == Mode::Inline && self.for_the_writer(&item) {
                self.stash = Some(item);
                return Ok(());
            }
            self.take(item)?;
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
        if let Some(len) = self.encoder.next_fragment(&mut self.staged.bytes) {
            self.staged.payload += len;
            self.staged.messages += 1;
        }
    }

    fn take(&mut self, item: Outgoing) -> Result<(), Stop> {
        let staged = &mut self.staged;
        match item {
            Outgoing::Message(m) => {
                let m = match self.encoder.whole_frame(&mut staged.bytes, m) {
                    Ok((payload, len)) => {
                        staged.tail = Some(payload);
                        staged.payload += len;
                        staged.messages += 1;
                        return Ok(());
                    }
                    Err(m) => m,
                };
                self.encoder.start(m).map_err(Stop::Encode)?;
                self.next_fragment();
            }
            Outgoing::Close(code, reason) => {
                self.encoder.close(&mut staged.bytes, code, &reason);
                staged.close = CloseMark::Close;
                self.closed = true;
            }
            Outgoing::FailClose(code) => {
                // Messages the application queued before the failure go out first; then the
                // close frame and a FIN.
                self.encoder.close(&mut staged.bytes, Some(code), "");
                staged.close = CloseMark::FailClose;
                self.closed = true;
            }
        }
        Ok(())
    }
}

/// The link: the write half and the batch being written.
pub(super) struct Link {
    pub io: WriteHalf,
    pub batch: Batch,
    /// A failed inline write's error, for the writer thread to report.
    failed: Option<io::Error>,
    /// A close frame an inline write got onto the wire, for the writer thread to report (what
    /// follows it, the session's bookkeeping and the end of TCP, is the writer's).
    close_written: CloseMark,
}

impl Link {
    pub(super) fn new(io: WriteHalf) -> Link {
        Link {
            io,
            batch: Batch::default(),
            failed: None,
            close_written: CloseMark::None,
        }
    }

    /// Takes what the encoding half has staged.
    pub(super) fn take_staged(&mut self, encoding: &mut Encoding) {
        self.batch.absorb(&mut encoding.staged);
    }

    /// Whether the link has nothing to write.
    pub(super) fn idle(&self) -> bool {
        self.batch.is_empty() && !self.io.has_pending()
    }

    /// Writes the batch: all of it, blocking (in slices, see `transport::Stall`), on the
    /// writer thread; what the socket takes at once, inline. Returns what the batch accounted
    /// for once all of it is on the wire, `None` while some is left.
    pub(super) fn write(&mut self, mode: Mode) -> Result<Option<Done>, Stop> {
        if self.failed.is_some() {
            return match (mode, self.failed.take()) {
                (Mode::Writer, Some(e)) => Err(Stop::Write(e)),
                // Left for the writer thread.
                (_, e) => {
                    self.failed = e;
                    Ok(None)
                }
            };
        }
        let flush_tls = std::mem::take(&mut self.batch.flush_tls);
        let (pending, tail) = self.batch.pending();
        if pending.is_empty() && tail.is_empty() && !flush_tls && !self.io.has_pending() {
            return Ok(Some(self.done(mode)));
        }
        let result = match mode {
            Mode::Writer => self
                .io
                .write_all_two(pending, tail)
                .map(|()| pending.len() + tail.len()),
            // Inline writes never carry a tail (large messages are the writer's).
            Mode::Inline => self.io.write_nonblocking(pending),
        };
        match result {
            Ok(n) => {
                self.batch.advance(n);
                if self.batch.written_out() && !self.io.has_pending() {
                    Ok(Some(self.done(mode)))
                } else {
                    Ok(None)
                }
            }
            Err(e) => {
                self.batch = Batch::default();
                if mode == Mode::Inline {
                    // The writer reports it, with the session's view of what it means.
                    self.failed = Some(e);
                    return Ok(None);
                }
                Err(Stop::Write(e))
            }
        }
    }

    /// The batch is written: what it accounted for. A close frame written inline is kept for
    /// the writer thread, which reports it with its next write.
    fn done(&mut self, mode: Mode) -> Done {
        let mut done = self.batch.take_done();
        match mode {
            Mode::Inline => {
                if done.close != CloseMark::None {
                    self.close_written = std::mem::take(&mut done.close);
                }
            }
            Mode::Writer => {
                if done.close == CloseMark::None {
                    done.close = std::mem::take(&mut self.close_written);
                }
            }
        }
        done
    }

    /// Whether a close frame written inline waits for the writer to report it.
    pub(super) fn close_to_report(&self) -> bool {
        self.close_written != CloseMark::None
    }

    /// Frees the batch's buffer if it is empty and larger than `keep` bytes.
    pub(super) fn shrink(&mut self, keep: usize) {
        self.batch.shrink(keep);
    }

    pub(super) fn capacity(&self) -> usize {
        self.batch.capacity()
    }
}
