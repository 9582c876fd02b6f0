//! The writer thread: drains the queues through the [`Encoder`] into as few writes as possible
//! and carries out what the [`Timers`] decide.
//!
//! It sleeps on a parker, not on the channels: senders push without a lock and wake it only
//! when it is parked (see [`Shared`]). Once awake it takes everything queued — control items
//! first, then data, a fragment at a time for large messages so a pong or close frame never
//! waits behind more than one batch — and writes the batch with one `write_all`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;

use super::shared::{Control, Outgoing, Queues, Shared};
use super::transport::WriteHalf;
use crate::config::Config;
use crate::error::Error;
use crate::proto::Role;
use crate::proto::deflate;
use crate::proto::encoder::Encoder;
use crate::proto::frame::OpCode;
use crate::proto::timers::{Action, Timers};

/// Stop adding frames to a write once this much is buffered.
const BATCH_BYTES: usize = 256 * 1024;
/// An idle writer keeps an output buffer of at most this size; a larger one is freed.
const IDLE_BUFFER: usize = 4 * 1024;

pub(crate) struct Writer {
    shared: Arc<Shared>,
    io: WriteHalf,
    queues: Queues,
    role: Role,
    encoder: Encoder,
    timers: Timers,
    out: Vec<u8>,
    /// Payload bytes of whole data messages in `out`, reported to `queue_size` once written.
    out_payload: u64,
    /// Whole data messages in `out`.
    out_messages: u64,
    write_timeout: Duration,
    /// Our close frame is encoded: nothing more may be sent but what is already in `out`.
    close_encoded: bool,
    /// A `FlushTls` asked for the TLS session's own output to be written.
    flush_requested: bool,
}

/// The writer is done: the socket is ending (stop, failure, or our part of the close is over).
struct Exit;

type Flow = Result<(), Exit>;

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        io: WriteHalf,
        queues: Queues,
        role: Role,
        config: &Config,
        deflate: Option<&deflate::Params>,
    ) -> Self {
        let _ = io.tcp.set_write_timeout(Some(config.write_timeout));
        Writer {
            shared,
            io,
            queues,
            role,
            encoder: Encoder::new(role, deflate, config.encoder()),
            timers: Timers::new(config.timers(), Instant::now()),
            out: Vec::new(),
            out_payload: 0,
            out_messages: 0,
            write_timeout: config.write_timeout,
            close_encoded: false,
            flush_requested: false,
        }
    }

    pub(crate) fn run(mut self) {
        while self.step().is_ok() {}
        log::debug!("writer for {} exits", self.shared.request.url());
    }

    fn step(&mut self) -> Flow {
        // Whatever was taken is written, even when taking it ends the writer.
        let taken = self.fill();
        self.flush()?;
        taken?;
        self.run_timers()?;
        if self.idle() {
            if self.out.capacity() > IDLE_BUFFER {
                self.out = Vec::new();
            }
            // Once our close is out, only control items (a stop) matter.
            let watch_data = !self.close_encoded;
            self.shared
                .park_writer(&self.queues, watch_data, self.timers.next_deadline());
        }
        Ok(())
    }

    fn idle(&self) -> bool {
        self.queues.ctrl_rx.is_empty()
            && (self.close_encoded
                || (self.queues.data_rx.is_empty() && !self.encoder.in_progress()))
    }

    /// Encodes everything queued into `out`, control items first, until the batch is full.
    fn fill(&mut self) -> Flow {
        loop {
            while let Ok(c) = self.queues.ctrl_rx.try_recv() {
                self.take_control(c)?;
            }
            if self.close_encoded || self.out.len() >= BATCH_BYTES {
                return Ok(());
            }
            if self.encoder.in_progress() {
                if let Some(len) = self.encoder.next_fragment(&mut self.out) {
                    self.out_payload += len;
                    self.out_messages += 1;
                }
                continue;
            }
            match self.queues.data_rx.try_recv() {
                Ok(d) => self.take_data(d)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Exit),
            }
        }
    }

    fn take_control(&mut self, item: Control) -> Flow {
        match item {
            Control::Stop => Err(Exit),
            Control::FlushTls => {
                // Cleared before the write, so TLS output produced after it asks again.
                self.shared.tls_flush_queued.store(false, Ordering::Release);
                self.flush_requested = true;
                Ok(())
            }
            Control::Pong(payload) => {
                self.shared.pending_pongs.fetch_sub(1, Ordering::AcqRel);
                if !self.close_encoded {
                    self.encoder.control(&mut self.out, OpCode::Pong, &payload);
                }
                Ok(())
            }
        }
    }

    fn take_data(&mut self, item: Outgoing) -> Flow {
        match item {
            Outgoing::Message(m) => {
                if let Err(e) = self.encoder.start(m) {
                    self.shared.fail(e);
                    return Err(Exit);
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
                if self.write_out().is_ok() {
                    self.io.finish();
                }
                Err(Exit)
            }
        }
    }

    /// Writes the buffer; once the close frame is written, starts the close timer.
    fn flush(&mut self) -> Flow {
        if !self.out.is_empty() || self.flush_requested {
            self.flush_requested = false;
            self.write_out()?;
        }
        if self.close_encoded && !self.timers.closing() {
            let mut core = self.shared.core.lock();
            core.close_written = true;
            if core.peer_closed && self.role == Role::Server {
                // Both close frames are out: the server closes TCP first (RFC 6455 §7.1.1).
                drop(core);
                self.io.finish();
            }
            self.timers.close_sent(Instant::now());
        }
        Ok(())
    }

    fn write_out(&mut self) -> Flow {
        let result = if self.out.is_empty() {
            self.io.flush_tls()
        } else {
            self.io.write_all(&self.out)
        };
        self.out.clear();
        let bytes = std::mem::take(&mut self.out_payload);
        let messages = std::mem::take(&mut self.out_messages);
        match result {
            Ok(()) => {
                self.shared.written(bytes, messages);
                Ok(())
            }
            Err(e) => {
                let peer_closed = self.shared.core.lock().peer_closed;
                if peer_closed {
                    self.shared.core.lock().shutdown();
                } else {
                    let error = match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            Error::WriteTimeout(self.write_timeout)
                        }
                        _ => Error::Io(e),
                    };
                    log::debug!("write failed: {error}");
                    self.shared.fail(error);
                }
                Err(Exit)
            }
        }
    }

    fn run_timers(&mut self) -> Flow {
        let Some(deadline) = self.timers.next_deadline() else {
            return Ok(());
        };
        let now = Instant::now();
        if now < deadline {
            return Ok(());
        }
        let pongs = self.shared.pongs.load(Ordering::Acquire);
        let peer_closed = self.shared.core.lock().peer_closed;
        while let Some(action) = self.timers.poll(now, pongs, peer_closed) {
            match action {
                Action::SendPing => {
                    if !self.close_encoded {
                        self.encoder.control(&mut self.out, OpCode::Ping, &[]);
                        self.flush()?;
                    }
                }
                Action::Fail(e) => {
                    self.shared.fail(e.into());
                    return Err(Exit);
                }
                Action::CloseConnection => {
                    // The close handshake is complete; the peer just kept TCP open.
                    self.shared.core.lock().shutdown();
                    return Err(Exit);
                }
            }
        }
        Ok(())
    }
}
