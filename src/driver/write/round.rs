//! The writer thread's side of the outbox: one round of encoding and writing, parking until
//! there is work, freeing idle buffers, and the end of the write side.

use std::time::{Duration, Instant};

use super::link::{Link, Mode, Stop};
use super::{
    BUFFER_LINGER, BULK, CloseMark, IDLE_BUFFER, INLINE_BATCH, LINGER, Outbox, Progress,
    WriterState,
};

impl Outbox {
    /// One round of the writer: takes what senders staged and what is queued, encodes the
    /// queued items (up to 256 KiB) without the queue's lock, and writes the batch, blocking.
    /// What was taken is written even when taking it ends the writer.
    pub(crate) fn step(&self, writer_state: &mut WriterState) -> Result<Progress, Stop> {
        if writer_state.bulk {
            self.linger(writer_state);
        }
        let mut link_guard = self.link.lock();
        let link = link_guard.as_mut().ok_or(Stop::Ending)?;
        let work = {
            let mut q = self.queue();
            if q.broken {
                // An inline write found the socket ending; its error, if any, is the link's.
                drop(q);
                let r = link.write(Mode::Writer);
                self.wire_written(link);
                r?;
                return Err(Stop::Ending);
            }
            link.batch.absorb(&mut q.staged);
            if link.batch.has_tail() {
                // A large payload is still being written: nothing goes behind it yet.
                None
            } else {
                q.take_work(&mut writer_state.spare)
            }
        };
        let filled = match work {
            Some(mut work) => {
                let filled = work.encode(&mut link.batch);
                self.queue().give_back(work, &mut writer_state.spare);
                filled
            }
            None => Ok(()),
        };
        writer_state.bulk = link.batch.pending().0.len() >= BULK;
        let written = link.write(Mode::Writer);
        self.wire_written(link);
        let close = match written? {
            Some(done) => {
                self.written(done.payload, done.messages);
                done.close
            }
            None => CloseMark::None,
        };
        if close == CloseMark::FailClose {
            return Ok(Progress { close, idle: false });
        }
        filled?;
        let idle = self.queue().idle() && link.idle();
        if idle {
            // Big buffers go once the socket has been idle for a while, not at every pause of
            // a busy one (a 1 MiB buffer freed between two messages is mapped and faulted in
            // again for the next).
            self.shrink_when_idle(writer_state, link);
        } else {
            writer_state.idle_since = None;
        }
        Ok(Progress { close, idle })
    }

    /// In a bulk flow (the last write was large), a small staged batch waits up to `LINGER`
    /// for more before it is written, as TCP_CORK would: the sender keeps staging (waking
    /// the writer once `INLINE_BATCH` is staged, or at once for anything else it queues), and
    /// the peer gets a few large writes instead of many small ones, each of which wakes its
    /// reader. Only in a bulk flow: a message after a pause, or a request in a round trip,
    /// goes out at once.
    fn linger(&self, writer_state: &WriterState) {
        {
            let mut q = self.queue();
            let small = !q.staged.is_empty() && q.staged.bytes.len() < INLINE_BATCH;
            if !small || !q.control.is_empty() || !q.data.is_empty() || q.broken {
                return;
            }
            q.writer_lingering = true;
        }
        writer_state.parker.park_timeout(LINGER);
        self.queue().writer_lingering = false;
    }

    fn shrink_when_idle(&self, writer_state: &mut WriterState, link: &mut Link) {
        let mut q = self.queue();
        if q.staged.capacity() <= IDLE_BUFFER && link.capacity() <= IDLE_BUFFER {
            writer_state.idle_since = None;
            return;
        }
        let now = Instant::now();
        let since = *writer_state.idle_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= BUFFER_LINGER {
            q.staged.shrink(IDLE_BUFFER);
            link.shrink(IDLE_BUFFER);
            writer_state.idle_since = None;
        }
    }

    /// When the writer should look again to free its idle buffers, if it holds big ones.
    pub(crate) fn shrink_deadline(&self, writer_state: &WriterState) -> Option<Instant> {
        writer_state
            .idle_since
            .and_then(|since| since.checked_add(BUFFER_LINGER))
    }

    /// Parks the writer until woken or `deadline`, unless it has work. It says it sleeps
    /// under the queue's lock, after looking for work there, so whoever queues an item after
    /// that look sees it asleep and wakes it.
    pub(crate) fn park(&self, writer_state: &WriterState, deadline: Option<Instant>) {
        {
            let mut q = self.queue();
            if !q.idle() || q.broken {
                return;
            }
            q.writer_parked = true;
        }
        match deadline {
            Some(d) => writer_state.parker.park_deadline(d),
            None => writer_state.parker.park(),
        }
        self.queue().writer_parked = false;
    }

    /// Ends our output in an orderly way: TLS close_notify (under TLS) and a TCP FIN. For the
    /// end of a clean close, where a bare `shutdown` would skip close_notify. Unless the
    /// writer is busy writing: the close is over by then, so a writer still in a write means
    /// a peer that does not read, and waiting for it would hang the reader.
    pub(crate) fn finish_output(&self) {
        if let Some(mut guard) = self.link.try_lock_for(Duration::from_millis(100))
            && let Some(link) = guard.as_mut()
        {
            link.io.finish();
        }
    }

    /// Frees the write side (buffers, compressor, the handle on the connection) once the
    /// writer is gone, even if it never started.
    pub(crate) fn clear(&self) {
        *self.link.lock() = None;
        let mut q = self.queue();
        q.broken = true;
        q.encoder = None;
        q.staged = Default::default();
        q.data.clear();
        q.control.clear();
    }
}
