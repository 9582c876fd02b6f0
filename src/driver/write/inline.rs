//! Who writes a queued item: the writer thread, woken if it sleeps, or the sender itself,
//! inline. A sender that finds the writer asleep may write what is staged with a write that
//! does not wait (`MSG_DONTWAIT`); what the socket does not take waits in the link for the
//! writer, which is then woken. Only where a write can be kept from waiting
//! ([`WRITES_WITHOUT_WAITING`](crate::driver::platform::sockets::WRITES_WITHOUT_WAITING)).

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use super::link::Mode;
use super::queue::Queue;
use super::{INLINE_BATCH, Outbox};
use crate::driver::platform;

/// Whether the thread that queued an item may write it itself when the writer sleeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Inline {
    /// Never: wake the writer (the item costs real CPU, or ends the socket).
    Never,
    /// At most once per read of the reader (or when a batch is staged): a request/response
    /// exchange gets an inline write on every request, while a burst of sends with nothing
    /// coming back gets one, then the writer batches the rest.
    OncePerRead,
    /// Always: a broadcast touches every socket once, and a wake per socket is most of its
    /// cost.
    Always,
}

/// What queuing an item asks of the writer.
enum Wake {
    /// It is busy (or not started): it will see the item.
    No,
    /// It sleeps: wake it.
    Writer,
    /// It sleeps, and this thread may write inline instead (and wake it for what is left).
    Inline,
}

impl Outbox {
    /// After queuing an item (with `q` still locked; `staged`: the sender encoded it into
    /// the staged batch itself): wakes the writer if it sleeps or lingers, or writes inline
    /// when `inline` allows it.
    pub(super) fn queued_item(&self, mut q: MutexGuard<'_, Queue>, inline: Inline, staged: bool) {
        let wake = if !q.writer_parked {
            if q.writer_lingering && (!staged || q.staged.bytes.len() >= INLINE_BATCH) {
                q.writer_lingering = false;
                Wake::Writer
            } else {
                Wake::No
            }
        } else {
            q.writer_parked = false;
            let reads = self.reads.load(Ordering::Relaxed);
            match inline {
                // Where a write cannot be kept from waiting, the writer writes everything.
                _ if !platform::sockets::WRITES_WITHOUT_WAITING => Wake::Writer,
                Inline::Never => Wake::Writer,
                Inline::Always => Wake::Inline,
                Inline::OncePerRead if q.inline_at_read != reads => {
                    q.inline_at_read = reads;
                    Wake::Inline
                }
                Inline::OncePerRead if q.staged.bytes.len() >= INLINE_BATCH => Wake::Inline,
                Inline::OncePerRead => Wake::Writer,
            }
        };
        match wake {
            Wake::No => {}
            Wake::Writer => {
                drop(q);
                self.unparker.unpark();
            }
            Wake::Inline => {
                if !self.write_inline(q) {
                    self.unparker.unpark();
                }
            }
        }
    }

    /// Writes what is staged and queued (but heavy) inline, without blocking; returns whether
    /// the sleeping writer can go on sleeping (nothing is left for it, and it was marked
    /// asleep again under the lock, so the next item wakes it). The caller cleared
    /// `writer_parked`: until this returns, no other thread wakes the writer, and this one
    /// looks again for what they queued meanwhile.
    fn write_inline(&self, mut q: MutexGuard<'_, Queue>) -> bool {
        // The link before the queue is the order; `try_lock` while holding the queue cannot
        // wait for a thread that waits for us.
        let Some(mut link_guard) = self.link.try_lock() else {
            return false;
        };
        let Some(link) = link_guard.as_mut() else {
            return false;
        };
        if q.broken || q.fill_inline().is_err() {
            return false;
        }
        link.batch.absorb(&mut q.staged);
        drop(q);
        let written = link.write(Mode::Inline);
        self.wire_written(link);
        let done = match written {
            Ok(Some(done)) => done,
            Ok(None) | Err(_) => return false,
        };
        self.written(done.payload, done.messages);
        // The close frame's bookkeeping and a failure are the writer's.
        if link.has_news() {
            return false;
        }
        let mut q = self.queue();
        if q.idle() && !q.broken {
            q.writer_parked = true;
            true
        } else {
            false
        }
    }
}
