//! The write side of a socket: the [`Wire`] (encoder, timers, output buffer, write half) and
//! the writer thread that drives it.
//!
//! The writer thread sleeps on a parker, not on the channels: senders push without a lock and
//! wake it only when it is parked (see [`Shared`]). Once awake it takes everything queued —
//! control items first, then data, a fragment at a time for large messages so a pong or close
//! frame never waits behind more than one batch — and writes the batch with one `write_all`.
//!
//! The `Wire` sits behind a mutex so that a thread that has just queued something while the
//! writer is parked can write it **inline**: it takes the lock with `try_lock`, drains the
//! queues through the encoder and writes with `MSG_DONTWAIT`, so it never blocks; whatever
//! the socket does not take (and anything expensive: a large or compressed message, a failure
//! close) is left for the writer thread, which it then wakes. That removes the thread hand-off
//! from a request/response round trip. [`Shared`] decides when to try (at most once per read
//! of the reader, so a burst of sends is still batched by the writer).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use crossbeam_utils::sync::Parker;
use parking_lot::Mutex;

use super::shared::{Control, Outgoing, Queues, Shared};
use super::transport::WriteHalf;
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::deflate;
use crate::proto::encoder::Encoder;
use crate::proto::frame::OpCode;
use crate::proto::timers::{Action, Timers};

/// Stop adding frames to a write once this much is buffered.
const BATCH_BYTES: usize = 256 * 1024;
/// An idle writer keeps an output buffer of at most this size; a larger one is freed.
const IDLE_BUFFER: usize = 4 * 1024;
/// An inline write encodes messages up to this size; larger ones are the writer's.
pub(crate) const INLINE_MAX: usize = 16 * 1024;

/// The wire of one socket; `None` once the writer has exited (which frees its buffers, the
/// compressor and its handle on the connection).
pub(crate) type WireSlot = Arc<Mutex<Option<Wire>>>;

pub(crate) struct Wire {
    io: WriteHalf,
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
    role: Role,
    encoder: Encoder,
    timers: Timers,
    out: Vec<u8>,
    /// Bytes of `out` already written by a non-blocking write.
    out_pos: usize,
    /// Payload bytes of whole data messages in `out`, reported to `queue_size` once written.
    out_payload: u64,
    /// Whole data messages in `out`.
    out_messages: u64,
    /// An item an inline write took but left for the writer thread.
    stash: Option<Outgoing>,
    write_timeout: Duration,
    /// Our close frame is encoded: nothing more may be sent but what is already in `out`.
    close_encoded: bool,
    /// A `FlushTls` asked for the TLS session's own output to be written.
    flush_requested: bool,
    /// The writer must exit (a stop, or a failure found by an inline write).
    exited: bool,
    /// Set when an inline write changed something the writer thread must look at (a timer).
    writer_needed: bool,
}

/// The writer is done: the socket is ending (stop, failure, or our part of the close is over).
pub(crate) struct Exit;

type Flow = Result<(), Exit>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On the writer thread: may block (up to the write timeout) and do anything.
    Writer,
    /// On a sending thread: never blocks, leaves expensive items to the writer.
    Inline,
}

impl Wire {
    pub(crate) fn new(
        io: WriteHalf,
        queues: &Queues,
        role: Role,
        config: &Config,
        deflate: Option<&deflate::Params>,
    ) -> Self {
        let _ = io.tcp.set_write_timeout(Some(config.write_timeout));
        Wire {
            io,
            data_rx: queues.data_rx.clone(),
            ctrl_rx: queues.ctrl_rx.clone(),
            role,
            encoder: Encoder::new(role, deflate, config.encoder()),
            timers: Timers::new(config.timers(), Instant::now()),
            out: Vec::new(),
            out_pos: 0,
            out_payload: 0,
            out_messages: 0,
            stash: None,
            write_timeout: config.write_timeout,
            close_encoded: false,
            flush_requested: false,
            exited: false,
            writer_needed: false,
        }
    }

    /// One round on the writer thread: take, write, run the timers.
    fn step(&mut self, shared: &Shared) -> Flow {
        if self.exited {
            return Err(Exit);
        }
        self.writer_needed = false;
        // Whatever was taken is written, even when taking it ends the writer.
        let taken = self.fill(shared, Mode::Writer);
        self.flush(shared)?;
        taken?;
        self.run_timers(shared)?;
        if self.idle() && self.out.is_empty() && self.out.capacity() > IDLE_BUFFER {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Writes what is queued without blocking. Returns whether the writer thread has nothing
    /// left to do (otherwise the caller wakes it).
    pub(crate) fn write_inline(&mut self, shared: &Shared) -> bool {
        if self.exited || self.stash.is_some() || self.encoder.in_progress() {
            return false;
        }
        if self.fill(shared, Mode::Inline).is_err() {
            self.exited = true;
            return false;
        }
        let complete = match self.write_out(shared, Mode::Inline) {
            Ok(done) => done,
            Err(Exit) => {
                self.exited = true;
                return false;
            }
        };
        if complete && self.close_encoded && !self.timers.closing() {
            self.close_written(shared);
            // The close timer started: the writer must sleep on the new deadline.
            self.writer_needed = true;
        }
        complete && !self.writer_needed && self.idle()
    }

    fn idle(&self) -> bool {
        self.ctrl_rx.is_empty()
            && (self.close_encoded
                || (self.data_rx.is_empty() && self.stash.is_none() && !self.encoder.in_progress()))
    }

    /// Encodes everything queued into `out`, control items first, until the batch is full.
    fn fill(&mut self, shared: &Shared, mode: Mode) -> Flow {
        loop {
            while let Ok(c) = self.ctrl_rx.try_recv() {
                self.take_control(shared, c)?;
            }
            if self.close_encoded || self.out.len() >= BATCH_BYTES {
                return Ok(());
            }
            if self.encoder.in_progress() {
                if mode == Mode::Inline {
                    return Ok(());
                }
                if let Some(len) = self.encoder.next_fragment(&mut self.out) {
                    self.out_payload += len;
                    self.out_messages += 1;
                }
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
            if mode == Mode::Inline && for_the_writer(&item) {
                self.stash = Some(item);
                return Ok(());
            }
            self.take_data(shared, item)?;
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
                if let Err(e) = self.encoder.start(m) {
                    shared.fail(e);
                    return Err(Exit);
                }
                if let Some(len) = self.encoder.next_fragment(&mut self.out) {
                    self.out_payload += len;
                    self.out_messages += 1;
                }
                Ok(())
            }
            Outgoing::Close(code, reason) => {
                self.encoder.close(&mut self.out, code, &reason);
                self.close_encoded = true;
                Ok(())
            }
            Outgoing::FailClose(code) => {
                // Messages the application queued before the failure go out first; then the
                // close frame and a FIN.
                self.encoder.close(&mut self.out, Some(code), "");
                self.close_encoded = true;
                if self.write_out(shared, Mode::Writer).is_ok() {
                    self.io.finish();
                }
                Err(Exit)
            }
        }
    }

    /// Writes the buffer (blocking); once the close frame is written, starts the close timer.
    fn flush(&mut self, shared: &Shared) -> Flow {
        self.write_out(shared, Mode::Writer)?;
        if self.close_encoded && !self.timers.closing() {
            self.close_written(shared);
        }
        Ok(())
    }

    fn close_written(&mut self, shared: &Shared) {
        let mut core = shared.core.lock();
        core.close_written = true;
        if core.peer_closed && self.role == Role::Server {
            // Both close frames are out: the server closes TCP first (RFC 6455 §7.1.1).
            drop(core);
            self.io.finish();
        }
        self.timers.close_sent(Instant::now());
    }

    /// Writes `out` from `out_pos` on. Returns whether everything is written (always, or an
    /// error, in writer mode).
    fn write_out(&mut self, shared: &Shared, mode: Mode) -> Result<bool, Exit> {
        let pending = &self.out[self.out_pos..];
        if pending.is_empty() && !self.flush_requested && !self.io.has_pending() {
            return Ok(true);
        }
        self.flush_requested = false;
        let result = match mode {
            Mode::Writer => self.io.write_all(pending).map(|()| pending.len()),
            Mode::Inline => self.io.write_nonblocking(pending),
        };
        match result {
            Ok(n) => {
                self.out_pos += n;
                if self.out_pos < self.out.len() || self.io.has_pending() {
                    return Ok(false);
                }
                self.out.clear();
                self.out_pos = 0;
                let bytes = std::mem::take(&mut self.out_payload);
                let messages = std::mem::take(&mut self.out_messages);
                shared.written(bytes, messages);
                Ok(true)
            }
            Err(e) => {
                self.out.clear();
                self.out_pos = 0;
                let peer_closed = shared.core.lock().peer_closed;
                if peer_closed {
                    shared.core.lock().shutdown();
                } else {
                    let error = match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            Error::WriteTimeout(self.write_timeout)
                        }
                        _ => Error::Io(e),
                    };
                    log::debug!("write failed: {error}");
                    shared.fail(error);
                }
                Err(Exit)
            }
        }
    }

    fn run_timers(&mut self, shared: &Shared) -> Flow {
        let Some(deadline) = self.timers.next_deadline() else {
            return Ok(());
        };
        let now = Instant::now();
        if now < deadline {
            return Ok(());
        }
        let pongs = shared.pongs.load(Ordering::Acquire);
        let peer_closed = shared.core.lock().peer_closed;
        while let Some(action) = self.timers.poll(now, pongs, peer_closed) {
            match action {
                Action::SendPing => {
                    if !self.close_encoded {
                        self.encoder.control(&mut self.out, OpCode::Ping, &[]);
                        self.flush(shared)?;
                    }
                }
                Action::Fail(e) => {
                    shared.fail(e.into());
                    return Err(Exit);
                }
                Action::CloseConnection => {
                    // The close handshake is complete; the peer just kept TCP open.
                    shared.core.lock().shutdown();
                    return Err(Exit);
                }
            }
        }
        Ok(())
    }
}

/// Items an inline write leaves to the writer thread: they may block or cost real CPU.
fn for_the_writer(item: &Outgoing) -> bool {
    match item {
        Outgoing::Message(m) => m.len() > INLINE_MAX,
        Outgoing::Close(..) => false,
        Outgoing::FailClose(_) => true,
    }
}

/// The writer thread's loop over a socket's wire.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    wire: WireSlot,
    parker: Parker,
    data_rx: Receiver<Outgoing>,
    ctrl_rx: Receiver<Control>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, wire: WireSlot, queues: Queues) -> Self {
        Writer {
            shared,
            wire,
            parker: queues.parker,
            data_rx: queues.data_rx,
            ctrl_rx: queues.ctrl_rx,
        }
    }

    pub(crate) fn run(self) {
        loop {
            let park = {
                let mut slot = self.wire.lock();
                let Some(wire) = slot.as_mut() else { break };
                if wire.step(&self.shared).is_err() {
                    *slot = None;
                    break;
                }
                wire.idle()
                    .then(|| (!wire.close_encoded, wire.timers.next_deadline()))
            };
            if let Some((watch_data, deadline)) = park {
                self.shared.park_writer(
                    &self.parker,
                    &self.ctrl_rx,
                    watch_data.then_some(&self.data_rx),
                    deadline,
                );
            }
        }
        log::debug!("writer for {} exits", self.shared.request.url());
    }
}

/// A message small enough to be written inline by its sender.
pub(crate) fn inline_candidate(message: &Message) -> bool {
    message.len() <= INLINE_MAX
}
