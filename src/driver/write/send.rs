//! What senders, the reader and the writer's timers queue: messages (`send`, `send_prepared`,
//! `send_waiting`), our close frame, a failure close, pongs, pings, a TLS flush and the stop.
//! Each is admitted and queued under the queue's lock in one short step, then
//! [`queued_item`](Outbox::queued_item) decides who writes it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::inline::Inline;
use super::queue::{Control, Outgoing, Queue};
use super::{MAX_PENDING_PONGS, Outbox, SendError};
use crate::message::Message;
use crate::proto::encoder::Shared;
use crate::proto::frame::OpCode;
use crate::proto::mask;

impl Outbox {
    /// Queues a message, unless the gate is closed or the queue is full. Never blocks (the
    /// lock is only ever held for a short step).
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        self.try_send(message).map(drop).map_err(|(e, _)| e)
    }

    /// [`send`](Self::send), returning the message's number: the count of messages queued
    /// on this socket, it included. [`is_written`](Outbox::is_written) says when it was
    /// written (messages are written in the order they are numbered).
    pub(crate) fn send_numbered(&self, message: Message) -> Result<u64, SendError> {
        self.try_send(message).map_err(|(e, _)| e)
    }

    /// Takes a message of `len` bytes into the queue's count, under the lock, unless the
    /// gate is closed or it would go over the limits: the one admission of `send` and
    /// `send_prepared`.
    #[inline]
    fn admit(&self, q: &mut Queue, len: u64) -> Result<u64, SendError> {
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
        Ok(q.queued_messages)
    }

    /// `send`, giving the message back when it is refused; the message's number when not.
    fn try_send(&self, message: Message) -> Result<u64, (SendError, Message)> {
        let len = message.len() as u64;
        let mut q = self.queue();
        let number = match self.admit(&mut q, len) {
            Ok(n) => n,
            Err(e) => return Err((e, message)),
        };
        // A large message is masked here, on the sender's thread, where its bytes are warm,
        // and outside the lock: the writer, the busiest thread of a bulk sender, only writes.
        let key = q
            .encoder
            .as_mut()
            .and_then(|e| e.premask_key(message.len()));
        if let Some(key) = key {
            drop(q);
            return self.send_masked(message, key).map(|()| number);
        }
        if q.takes_direct(message.len()) {
            q.encode_direct(&message);
            self.queued_item(q, Inline::OncePerRead, true);
            // Freed after the lock, on the caller's thread.
            drop(message);
        } else if q.streaming {
            // Behind the streamed message: its parts stay contiguous.
            q.held.push_back(Outgoing::Message(message));
        } else {
            q.data.push_back(Outgoing::Message(message));
            self.queued_item(q, Inline::OncePerRead, false);
        }
        Ok(number)
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
        } else if q.streaming {
            q.held.push_back(Outgoing::Prepared { frame, len });
        } else {
            q.data.push_back(Outgoing::Prepared { frame, len });
            self.queued_item(q, Inline::OncePerRead, false);
        }
        Ok(())
    }

    /// Counts `bytes` in `messages` as queued (negative to take back a count), under the lock.
    pub(super) fn count_queued(&self, q: &mut Queue, bytes: u64, messages: u64) {
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
        let item = Outgoing::Masked {
            opcode,
            payload,
            key,
        };
        if q.streaming {
            q.held.push_back(item);
            return Ok(());
        }
        q.data.push_back(item);
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
                other => return other.map(drop),
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

    /// Queues the application's ping (`WebSocket::ping`), ahead of queued data as a keepalive
    /// ping is, and wakes the writer. False once our close frame is queued: nothing follows
    /// it. At most [`MAX_PENDING_PONGS`] of them wait at once (a loop of `ping` calls cannot
    /// grow the queue); past that it is refused too.
    pub(crate) fn app_ping(&self, payload: Vec<u8>) -> bool {
        let mut q = self.queue();
        if q.close_encoded || q.pending_app_pings >= MAX_PENDING_PONGS {
            return false;
        }
        q.pending_app_pings += 1;
        q.control.push_back(Control::AppPing(payload));
        self.queued_item(q, Inline::OncePerRead, false);
        true
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
}
