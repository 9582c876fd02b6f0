//! A streamed message's way into the queue: one part at a time, each admitted under the
//! queue's limits as it comes (waiting for room, so a slow peer holds the sender back instead
//! of the file being buffered), with the data messages others send meanwhile held behind it
//! so its frames go out contiguous. Control frames still go between its parts.

use super::inline::Inline;
use super::queue::Outgoing;
use super::{Outbox, SendError};
use crate::proto::frame::OpCode;

/// What `close()` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CloseSeal {
    /// The gate was already closed (a close, a failure, the end): nothing to do.
    Already,
    /// A streamed message is being sent: the close is queued once it ends.
    Deferred,
    /// The gate is closed now: queue the close frame.
    Now,
}

impl Outbox {
    /// Closes the gate for `close()`. While a streamed message is being sent, its parts may
    /// still be queued and the close frame waits for its end ([`end_stream`](Self::end_stream)
    /// hands it back).
    pub(crate) fn seal_for_close(&self, code: Option<u16>, reason: &str) -> CloseSeal {
        let mut q = self.queue();
        if q.sealed {
            return CloseSeal::Already;
        }
        q.sealed = true;
        let seal = if q.streaming && q.stream_open {
            q.close_after_stream = Some((code, reason.to_owned()));
            CloseSeal::Deferred
        } else {
            CloseSeal::Now
        };
        drop(q);
        self.room.changed();
        seal
    }

    /// Takes the one streamed message a socket sends at a time; a second sender waits here
    /// until the first is done.
    pub(crate) fn stream_turn(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.stream_turn.lock()
    }

    /// Starts a streamed message (the caller holds [`stream_turn`](Self::stream_turn)).
    pub(crate) fn begin_stream(&self) -> Result<(), SendError> {
        let mut q = self.queue();
        if q.sealed {
            return Err(SendError::Closed);
        }
        q.streaming = true;
        q.stream_open = true;
        Ok(())
    }

    /// The size of a streamed message's parts: the fragment size, and at most half the
    /// queue, so a part always fits once the queue drains.
    pub(crate) fn part_size(&self) -> usize {
        let half = usize::try_from(self.max_queue_size / 2).unwrap_or(usize::MAX);
        self.fragment_size.min(half).max(1)
    }

    /// Queues one part, waiting for room under the queue's limits for as long as it takes:
    /// until there is room, or the stream can take no more (a failure, a cancel, the end:
    /// `Closed`). Its bytes count in `queue_size` from now on; the message counts once, with
    /// its first part.
    pub(crate) fn send_part(
        &self,
        opcode: OpCode,
        payload: Vec<u8>,
        first: bool,
        last: bool,
    ) -> Result<(), SendError> {
        let len = payload.len() as u64;
        let messages = u64::from(first);
        loop {
            {
                let mut q = self.queue();
                if !q.stream_open {
                    return Err(SendError::Closed);
                }
                let (written_bytes, written_messages) = self.written.load();
                let bytes = q.queued_bytes.wrapping_add(len).wrapping_sub(written_bytes);
                let count = q
                    .queued_messages
                    .wrapping_add(messages)
                    .wrapping_sub(written_messages);
                // A part on its own always goes in (it is at most half the queue).
                let alone = q.queued_bytes == written_bytes;
                if alone || (bytes <= self.max_queue_size && count <= self.max_queued_messages) {
                    if bytes > q.high_water {
                        q.high_water = bytes;
                    }
                    self.count_queued(&mut q, len, messages);
                    q.data.push_back(Outgoing::Part {
                        opcode,
                        payload,
                        first,
                        last,
                    });
                    self.queued_item(q, Inline::Never, false);
                    return Ok(());
                }
            }
            // No deadline: the writer makes room, or the socket's end closes the stream.
            self.room
                .wait(None, || self.stream_closed() || self.fits(len));
        }
    }

    fn stream_closed(&self) -> bool {
        !self.queue().stream_open
    }

    /// Ends the streamed message (after its last part, or abandoned): the messages held
    /// behind it join the queue, and a `close()` that came meanwhile is handed back for the
    /// caller to carry out.
    pub(crate) fn end_stream(&self) -> Option<(Option<u16>, String)> {
        let mut q = self.queue();
        q.streaming = false;
        q.stream_open = false;
        let close = q.close_after_stream.take();
        if q.held.is_empty() {
            return close;
        }
        let mut held = std::mem::take(&mut q.held);
        q.data.append(&mut held);
        q.held = held;
        self.queued_item(q, Inline::OncePerRead, false);
        close
    }
}
