//! The writer thread: drains the queues into as few writes as possible, sends pings, keeps the
//! close and pong timers.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, select};

use super::transport::WriteHalf;
use crate::close;
use crate::config::Config;
use crate::decoder::Role;
use crate::deflate::{self, Deflater};
use crate::error::Error;
use crate::frame::{self, OpCode};
use crate::mask::MaskSource;
use crate::message::Message;
use crate::websocket::{Control, Outgoing, Queues, Shared, State};

/// Stop adding frames to a write once this much is buffered.
const BATCH_BYTES: usize = 256 * 1024;
/// An idle writer keeps buffers of at most this size; larger ones are freed.
const IDLE_BUFFER: usize = 16 * 1024;

pub(crate) struct Writer {
    shared: Arc<Shared>,
    io: WriteHalf,
    queues: Queues,
    role: Role,
    masks: MaskSource,
    out: Vec<u8>,
    /// Payload bytes of data messages in `out`, subtracted from `queue_size` once written.
    out_payload: u64,
    /// Data messages in `out`, subtracted from `queued_messages` once written.
    out_messages: u64,
    ping_interval: Option<Duration>,
    pong_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    write_timeout: Duration,
    next_ping: Option<Instant>,
    /// A ping is out: when it was sent and how many pongs had arrived before it.
    awaiting_pong: Option<(Instant, u64)>,
    answered_pings: u64,
    close_deadline: Option<Instant>,
    close_written: bool,
    /// Present when permessage-deflate is in use and we can compress at the agreed window.
    deflater: Option<Deflater>,
    min_compress_size: usize,
    /// Reused buffer for one compressed payload.
    compressed: Vec<u8>,
    /// Stands in for the data queue once our close frame is written.
    no_data: Receiver<Outgoing>,
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
            masks: MaskSource::new(),
            out: Vec::new(),
            out_payload: 0,
            out_messages: 0,
            ping_interval: config.ping_interval,
            pong_timeout: config.effective_pong_timeout(),
            close_timeout: config.close_timeout,
            write_timeout: config.write_timeout,
            next_ping: config.ping_interval.map(|i| Instant::now() + i),
            awaiting_pong: None,
            answered_pings: 0,
            close_deadline: None,
            close_written: false,
            deflater: deflate.and_then(Deflater::new),
            min_compress_size: config.min_compress_size,
            compressed: Vec::new(),
            no_data: crossbeam_channel::never(),
        }
    }

    fn shrink_buffers(&mut self) {
        if self.out.capacity() > IDLE_BUFFER {
            self.out = Vec::new();
        }
        if self.compressed.capacity() > IDLE_BUFFER {
            self.compressed = Vec::new();
        }
    }

    pub(crate) fn run(mut self) {
        while self.step().is_ok() {}
        log::debug!("writer for {} exits", self.shared.request.url());
    }

    fn next_deadline(&self) -> Option<Instant> {
        let pong = self
            .awaiting_pong
            .zip(self.pong_timeout)
            .map(|((sent, _), t)| sent + t);
        [self.next_ping, pong, self.close_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn step(&mut self) -> Flow {
        let timeout = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        if self.queues.data_rx.is_empty() && self.queues.ctrl_rx.is_empty() {
            // About to wait: an idle socket keeps only small buffers. Shrinking here rather
            // than after every write keeps a busy socket from reallocating per batch.
            self.shrink_buffers();
        }
        // Once our close frame is out nothing more may be sent, so stop taking data.
        let data_rx = if self.close_written {
            &self.no_data
        } else {
            &self.queues.data_rx
        };
        let first = select! {
            recv(self.queues.ctrl_rx) -> c => Some(Item::Control(c.map_err(|_| Exit)?)),
            recv(data_rx) -> d => Some(Item::Data(d.map_err(|_| Exit)?)),
            default(timeout) => None,
        };
        if let Some(item) = first {
            // Whatever was taken is written, even when taking it ends the writer.
            let taken = self.take_all(item);
            self.flush()?;
            taken?;
        }
        self.timers()
    }

    /// Takes `first` and everything else queued: control items first (even when the wake-up
    /// happened to pick the data queue), then data until the batch is full.
    fn take_all(&mut self, first: Item) -> Flow {
        if let Item::Data(_) = first {
            self.drain_control()?;
        }
        self.take(first)?;
        loop {
            self.drain_control()?;
            if self.close_written || self.out.len() >= BATCH_BYTES {
                return Ok(());
            }
            match self.queues.data_rx.try_recv() {
                Ok(d) => self.take(Item::Data(d))?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Exit),
            }
        }
    }

    fn drain_control(&mut self) -> Flow {
        while let Ok(c) = self.queues.ctrl_rx.try_recv() {
            self.take(Item::Control(c))?;
        }
        Ok(())
    }

    fn mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(self.masks.next_key()),
            Role::Server => None,
        }
    }

    fn frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        log::debug!("frame out: {opcode:?} len={}", payload.len());
        frame::encode(&mut self.out, opcode, false, payload, mask);
    }

    /// Encodes one item into the output buffer.
    fn take(&mut self, item: Item) -> Flow {
        match item {
            Item::Control(Control::Stop) => Err(Exit),
            Item::Control(Control::FlushTls) => {
                // Cleared before the write, so TLS output produced after it asks again.
                self.shared.tls_flush_queued.store(false, Ordering::Release);
                Ok(())
            }
            Item::Control(Control::Pong(payload)) => {
                self.shared.pending_pongs.fetch_sub(1, Ordering::AcqRel);
                if !self.close_written {
                    self.frame(OpCode::Pong, &payload);
                }
                Ok(())
            }
            Item::Data(Outgoing::FailClose(code)) => {
                // Messages the application queued before the failure go out first; then the
                // close frame and a FIN.
                if !self.close_written {
                    self.frame(OpCode::Close, &close::payload(Some(code), ""));
                    self.close_written = true;
                }
                if self.write_out().is_ok() {
                    self.io.finish();
                }
                Err(Exit)
            }
            Item::Data(Outgoing::Message(m)) => {
                let (op, bytes) = match &m {
                    Message::Text(s) => (OpCode::Text, s.as_bytes()),
                    Message::Binary(b) => (OpCode::Binary, b.as_slice()),
                };
                let mask = self.mask();
                self.out_payload += bytes.len() as u64;
                self.out_messages += 1;
                if let Some(d) = &mut self.deflater
                    && bytes.len() >= self.min_compress_size
                {
                    if let Err(e) = d.compress(bytes, &mut self.compressed) {
                        self.shared.core.lock().fail(e);
                        return Err(Exit);
                    }
                    log::debug!(
                        "frame out: {op:?} len={} deflated from {}",
                        self.compressed.len(),
                        bytes.len()
                    );
                    frame::encode(&mut self.out, op, true, &self.compressed, mask);
                } else {
                    log::debug!("frame out: {op:?} len={}", bytes.len());
                    frame::encode(&mut self.out, op, false, bytes, mask);
                }
                Ok(())
            }
            Item::Data(Outgoing::Close(code, reason)) => {
                self.frame(OpCode::Close, &close::payload(code, &reason));
                self.close_written = true;
                self.next_ping = None;
                self.awaiting_pong = None;
                Ok(())
            }
        }
    }

    /// Writes the buffer; once the close frame is written, starts the close timer.
    fn flush(&mut self) -> Flow {
        self.write_out()?;
        if self.close_written && self.close_deadline.is_none() {
            let mut core = self.shared.core.lock();
            core.close_written = true;
            if core.peer_closed && self.role == Role::Server {
                // Both close frames are out: the server closes TCP first (RFC 6455 §7.1.1).
                drop(core);
                self.io.finish();
            }
            self.close_deadline = Some(
                self.close_timeout
                    .map(|t| Instant::now() + t)
                    .unwrap_or_else(far_future),
            );
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
        match result {
            Ok(()) => {
                let n = std::mem::take(&mut self.out_payload);
                self.shared.queue_size.fetch_sub(n, Ordering::AcqRel);
                let m = std::mem::take(&mut self.out_messages);
                self.shared.queued_messages.fetch_sub(m, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.out_payload = 0;
                self.out_messages = 0;
                let mut core = self.shared.core.lock();
                if !core.peer_closed {
                    let error = match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            Error::WriteTimeout(self.write_timeout)
                        }
                        _ => Error::Io(e),
                    };
                    log::debug!("write failed: {error}");
                    core.fail(error);
                } else {
                    core.shutdown();
                }
                Err(Exit)
            }
        }
    }

    fn timers(&mut self) -> Flow {
        let now = Instant::now();
        if let Some((sent, pongs_before)) = self.awaiting_pong {
            if self.shared.pongs.load(Ordering::Acquire) > pongs_before {
                self.awaiting_pong = None;
                self.answered_pings += 1;
            } else if self.pong_timeout.is_some_and(|t| now >= sent + t) {
                let timeout = self.pong_timeout.unwrap_or_default();
                self.shared.core.lock().fail(Error::PongTimeout {
                    timeout,
                    successful: self.answered_pings,
                });
                return Err(Exit);
            }
        }
        if let (Some(at), Some(interval)) = (self.next_ping, self.ping_interval)
            && now >= at
            && !self.close_written
        {
            self.next_ping = Some(now + interval);
            if self.awaiting_pong.is_none() {
                self.awaiting_pong = Some((now, self.shared.pongs.load(Ordering::Acquire)));
                self.frame(OpCode::Ping, &[]);
                self.flush()?;
            }
        }
        if self.close_deadline.is_some_and(|d| now >= d) {
            let mut core = self.shared.core.lock();
            if core.peer_closed {
                // The close handshake is complete; the peer just kept TCP open. Close it.
                core.shutdown();
            } else if core.state != State::Closed {
                let t = self.close_timeout.unwrap_or_default();
                core.fail(Error::CloseTimeout(t));
            }
            return Err(Exit);
        }
        Ok(())
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

enum Item {
    Control(Control),
    Data(Outgoing),
}
