//! The writer thread's side of the outbox: one round of encoding and writing, parking until
//! there is work, freeing idle buffers, and the end of the write side.

use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use super::wire::{CloseMark, Encoding, Link, Mode, Stop};
use super::{BUFFER_LINGER, IDLE_BUFFER, Inbox, Outbox, Progress};

impl Outbox {
    /// One round of the writer: encodes what is queued into a batch (up to 256 KiB) and
    /// writes it, blocking. What was taken is written even when taking it ends the writer.
    pub(crate) fn step(&self, inbox: &mut Inbox) -> Result<Progress, Stop> {
        let wire = self.wire.get().ok_or(Stop::Ending)?;
        let mut link_guard = wire.link.lock();
        let link = link_guard.as_mut().ok_or(Stop::Ending)?;
        let filled = {
            let mut guard = wire.encoding.lock();
            let encoding = guard.as_mut().ok_or(Stop::Ending)?;
            if encoding.broken {
                // An inline write found the socket ending; its error, if any, is the link's.
                drop(guard);
                link.write(Mode::Writer)?;
                return Err(Stop::Ending);
            }
            let filled = encoding.fill(Mode::Writer, |c| self.taken(c));
            link.take_staged(encoding);
            filled
        };
        let done = link.write(Mode::Writer)?;
        let close = match done {
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
        let idle = {
            let guard = wire.encoding.lock();
            guard.as_ref().is_none_or(Encoding::idle) && link.idle()
        };
        if idle {
            // Big buffers go once the socket has been idle for a while, not at every pause of
            // a busy one (a 1 MiB buffer freed between two messages is mapped and faulted in
            // again for the next).
            self.shrink_when_idle(inbox, link);
        } else {
            inbox.idle_since = None;
        }
        Ok(Progress { close, idle })
    }

    fn shrink_when_idle(&self, inbox: &mut Inbox, link: &mut Link) {
        let Some(wire) = self.wire.get() else {
            return;
        };
        let mut guard = wire.encoding.lock();
        let Some(encoding) = guard.as_mut() else {
            return;
        };
        if encoding.staged.capacity() <= IDLE_BUFFER && link.capacity() <= IDLE_BUFFER {
            inbox.idle_since = None;
            return;
        }
        let now = Instant::now();
        let since = *inbox.idle_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= BUFFER_LINGER {
            encoding.staged.shrink(IDLE_BUFFER);
            link.shrink(IDLE_BUFFER);
            inbox.idle_since = None;
        }
    }

    /// When the writer should look again to free its idle buffers, if it holds big ones.
    pub(crate) fn shrink_deadline(&self, inbox: &Inbox) -> Option<Instant> {
        inbox
            .idle_since
            .and_then(|since| since.checked_add(BUFFER_LINGER))
    }

    /// Encodes a ping with `payload`, to go out with the writer's next round.
    pub(crate) fn ping(&self, payload: &[u8]) {
        if let Some(wire) = self.wire.get()
            && let Some(encoding) = wire.encoding.lock().as_mut()
        {
            encoding.ping(payload);
        }
    }

    /// Whether no sender has encoded a message into the staged batch (they do that under the
    /// encoding lock, and look at `writer_parked` after it).
    fn nothing_staged(&self) -> bool {
        self.wire
            .get()
            .and_then(|w| w.encoding.lock().as_ref().map(|e| e.staged.is_empty()))
            .unwrap_or(true)
    }

    /// Whether our close frame is encoded (only control items matter to the writer then).
    fn closed(&self) -> bool {
        self.wire
            .get()
            .and_then(|w| w.encoding.lock().as_ref().map(|e| e.closed))
            .unwrap_or(true)
    }

    /// Parks the writer until woken or `deadline`, unless it has work: a control item, a
    /// data item (unless our close is out), or a message a sender encoded itself. Pairs with
    /// `after_push`: the fences make sure either the writer sees the new item or the sender
    /// sees it parked.
    pub(crate) fn park(&self, inbox: &Inbox, deadline: Option<Instant>) {
        let watch_data = !self.closed();
        self.writer_parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if inbox.ctrl_rx.is_empty()
            && (!watch_data || inbox.data_rx.is_empty())
            && self.nothing_staged()
        {
            match deadline {
                Some(d) => inbox.parker.park_deadline(d),
                None => inbox.parker.park(),
            }
        }
        self.writer_parked.store(false, Ordering::Relaxed);
    }

    /// Ends our output in an orderly way: TLS close_notify (under TLS) and a TCP FIN. For the
    /// end of a clean close, where a bare `shutdown` would skip close_notify. Unless the
    /// writer is busy writing: the close is over by then, so a writer still in a write means
    /// a peer that does not read, and waiting for it would hang the reader.
    pub(crate) fn finish_output(&self) {
        if let Some(wire) = self.wire.get()
            && let Some(mut guard) = wire.link.try_lock_for(Duration::from_millis(100))
            && let Some(link) = guard.as_mut()
        {
            link.io.finish();
        }
    }

    /// Frees the write side (buffers, compressor, the handle on the connection) once the
    /// writer is gone, even if it never started.
    pub(crate) fn clear(&self) {
        if let Some(wire) = self.wire.get() {
            *wire.link.lock() = None;
            *wire.encoding.lock() = None;
        }
    }
}
