//! The read loop: read, decode, hand each event to the session and the listener, and pause
//! (read nothing) while a pull-style listener's backlog is full or `max_receive_rate` says so.

use std::time::Instant;

use super::Reader;
use crate::driver::clock::deadline_after;
use crate::driver::transport::ReadHalf;
use crate::error::Error;
use crate::proto::decoder::{Decoder, Incoming};
use crate::proto::session::Cause;

/// The read buffer starts this small, so an idle socket holds little...
const READ_BUF_MIN: usize = 512;
/// ...and doubles up to this while reads keep filling it (a stream of data)...
const READ_BUF_MAX: usize = 64 * 1024;
/// ...and goes back to the minimum after this many short reads in a row.
const SHRINK_AFTER: u32 = 8;

impl Reader {
    /// Publishes what was received (statistics): plain stores, once per read.
    pub(in crate::driver) fn publish(&self, frames: u64) {
        self.socket.traffic.received.publish(self.counts, frames);
    }

    pub(super) fn read_loop(
        &mut self,
        read: &mut ReadHalf,
        leftover: Vec<u8>,
        decoder: &mut Decoder,
    ) -> Cause {
        let mut buf = leftover;
        let mut len = buf.len();
        let mut size = READ_BUF_MIN;
        let mut short_reads = 0u32;
        loop {
            // Whether large messages go to the callbacks in parts, for those starting now.
            decoder.set_parts(self.callbacks.wants_parts().then_some(self.parts));
            let mut pos = 0;
            // A message in parts may have more to hand over than the input holds (a
            // compressed one inflates a part at a time).
            while pos < len || decoder.has_pending() {
                let (used, event) = match decoder.decode(&buf[pos..len]) {
                    Ok(r) => r,
                    Err(e) => return self.fail_with_close_cause(read, e),
                };
                pos += used;
                let Some(event) = event else { continue };
                // A pong is counted by the session as it is handled: its frame is published
                // first, so a snapshot never has more pongs than frames. (Messages are
                // published with the read, below; control frames are few.)
                if !matches!(event, Incoming::Message(_)) {
                    self.publish(decoder.frames());
                }
                match self.handle(event) {
                    // A callback (or another thread) canceled or failed the socket: deliver
                    // nothing more, even what is already in the buffer.
                    Ok(false) if self.socket().has_failed() => return self.failed_elsewhere(read),
                    // A pull-style listener's bound is looked at after every event, not only
                    // before a read: one read of empty frames holds tens of thousands of them.
                    Ok(false) => {
                        if !self.wait_for_backlog() {
                            return Cause::Dropped(None);
                        }
                        // `max_receive_rate` (one test without a limit): the messages since the
                        // last charge are counted in `counts.bytes` already.
                        if self.bucket.is_some() && !self.rest_for_rate() {
                            return Cause::Dropped(None);
                        }
                    }
                    Ok(true) => return self.closing(read),
                    Err(e) => return self.fail_with_close_cause(read, e),
                }
            }
            if read.tls_output_pending {
                read.tls_output_pending = false;
                self.socket().outbox.flush_tls();
            }
            // The buffer follows the traffic: it doubles while reads fill it and drops back
            // to the minimum after a run of short reads, so an idle socket holds 512 bytes, not 64 KiB.
            if len == buf.len() && len >= size {
                size = (size * 2).min(READ_BUF_MAX);
                short_reads = 0;
            } else if len < READ_BUF_MIN {
                short_reads += 1;
                if short_reads >= SHRINK_AFTER {
                    size = READ_BUF_MIN;
                }
            } else {
                short_reads = 0;
            }
            if buf.len() < size {
                buf.resize(size, 0);
            } else if buf.len() > size {
                buf = vec![0; size];
            }
            // Counted before the application sees this read's events (a `stats()` after a
            // `recv` includes what it returned), which reach it before the reader blocks.
            self.publish(decoder.frames());
            self.callbacks.flush();
            // Another socket on the same channel may have filled it meanwhile.
            if !self.wait_for_backlog() {
                return Cause::Dropped(None);
            }
            len = match read.read(&mut buf) {
                Ok(0) => return Cause::Dropped(None),
                Ok(n) => {
                    self.socket().outbox.note_read();
                    self.counts.wire = self.counts.wire.wrapping_add(n as u64);
                    n
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Cause::Dropped(Some(Error::from(e))),
            };
        }
    }

    /// A pull-style listener whose application fell behind: decode and read nothing until it
    /// catches up, so TCP flow control holds the peer back. Returns false if the socket failed
    /// or was canceled meanwhile.
    pub(super) fn wait_for_backlog(&mut self) -> bool {
        // The field, not `socket()`: the callbacks are borrowed below.
        let socket = &*self.socket;
        let Some(backlog) = socket.pause.backlog.get() else {
            return true;
        };
        if !backlog.is_full() {
            return true;
        }
        // What the application has not been handed yet cannot make room.
        self.callbacks.flush();
        log::trace!("backlog full ({} bytes): reading paused", backlog.pending());
        socket
            .pause
            .during(|| backlog.wait_for_room(|| socket.has_failed()));
        !socket.has_failed()
    }

    /// `max_receive_rate`: charges the bucket for the message payload received since the last
    /// charge, and rests (reads nothing, so TCP holds the peer back) until it allows more.
    /// Returns false if the socket failed or was canceled meanwhile. Out of line: only sockets
    /// with a limit come here.
    #[cold]
    #[inline(never)]
    pub(super) fn rest_for_rate(&mut self) -> bool {
        let received = self.counts.bytes.wrapping_sub(self.charged);
        self.charged = self.counts.bytes;
        let Some(bucket) = &mut self.bucket else {
            return true;
        };
        let len = usize::try_from(received).unwrap_or(usize::MAX);
        let Some(rest) = bucket.charge(len, Instant::now()) else {
            return true;
        };
        let socket = &*self.socket;
        // What the application has not been handed yet is not held back by the rest.
        self.callbacks.flush();
        log::trace!("max_receive_rate: resting {rest:?}");
        let pause = &socket.pause;
        pause.during(|| {
            pause
                .rest
                .until(deadline_after(rest), || socket.has_failed())
        });
        !socket.has_failed()
    }

    /// Handles one decoded event; returns true once the peer's close has been handled.
    pub(in crate::driver) fn handle(&mut self, event: Incoming) -> Result<bool, Error> {
        // `call` looks for a cancel before every callback, not only after: a cancel from
        // another thread between two events must not be followed by the second one. The read
        // loop sees the failure once this returns.
        if self.socket().has_failed() {
            return Ok(false);
        }
        match event {
            Incoming::Message(m) => {
                self.counts.messages = self.counts.messages.wrapping_add(1);
                self.counts.bytes = self.counts.bytes.wrapping_add(m.len() as u64);
                // Published before the callback: `stats()` in `on_message` counts its message.
                self.socket.traffic.received.published_message(self.counts);
                self.call(|c| c.message(m))?;
                Ok(false)
            }
            Incoming::Part(part) => {
                if part.last {
                    self.counts.messages = self.counts.messages.wrapping_add(1);
                }
                self.counts.bytes = self.counts.bytes.wrapping_add(part.data.len() as u64);
                self.socket.traffic.received.published_message(self.counts);
                self.call(|c| c.part(part))?;
                Ok(false)
            }
            Incoming::Ping(payload) => {
                // Answered first, so the pong does not wait for the callback.
                self.socket().outbox.pong(payload.clone());
                self.call(|c| c.ping(&payload))?;
                Ok(false)
            }
            Incoming::Pong(payload) => {
                let rtt = self
                    .socket()
                    .with_session(|s| s.pong(&payload, Instant::now()));
                self.call(|c| c.pong(&payload, rtt))?;
                Ok(false)
            }
            Incoming::Close(frame) => {
                let (code, reason, answer) =
                    (frame.reported_code(), frame.reason.clone(), frame.code);
                let end_tcp = self.socket().with_session(|s| s.peer_closed(frame));
                if !self.call(|c| c.closing(code, &reason))? {
                    return Ok(false);
                }
                // Answer with the peer's code unless the application answered itself, or
                // answers when it is done writing (a byte stream's half-close).
                if self.callbacks.answers_peer_close() {
                    self.socket().answer_close(answer);
                }
                if end_tcp {
                    // Our close went out before the peer's arrived: this side ends TCP now,
                    // with close_notify under TLS.
                    self.socket().outbox.finish_output();
                }
                Ok(true)
            }
        }
    }
}
