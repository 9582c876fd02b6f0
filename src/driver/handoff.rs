//! A batched hand-off of events from a socket's reader thread to one application thread: the
//! blocking [`Connection`](crate::Connection)'s way in.
//!
//! A channel with one send and one wake-up per message costs the reader a push and often a
//! futex wake, and the application a futex wait, for every message; and a message allocated
//! on the reader's thread and freed on the application's costs both threads the allocator's
//! cross-thread path (its lock, a cold cache) every time. Here:
//!
//! - the reader collects the events of one read in a [`Batch`] and hands it over at once
//!   ([`Sender::flush`]: one lock, at most one wake-up) before it blocks in its next read, or
//!   sooner once the batch is charged `FLUSH_BYTES`;
//! - a small message's payload is copied into the batch's one byte buffer (and the reader
//!   frees its own copy, on its own thread), and the application's thread makes the message
//!   from it: each message is allocated and freed on the same thread;
//! - the receiver takes the whole batch and pops from it without synchronisation until it is
//!   empty, then hands the emptied buffers back for the reader's next batch (one spare), so a
//!   steady stream allocates no batches at all. Before it sleeps it spins briefly (`SPIN`) on
//!   one atomic, since the next batch is usually a read away.
//!
//! The bound on memory is the [`Backlog`]: the sender charges each batch as it hands it over,
//! and the receiver gives the charges back once it has taken a batch's events (or
//! `FLUSH_BYTES` of them); the reader waits for room before it reads again (`reader.rs`). A
//! batch being collected is at most `FLUSH_BYTES` over the bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::backlog::Backlog;

/// The sender hands its batch over once it is charged this much, even within one read.
pub(crate) const FLUSH_BYTES: usize = 64 * 1024;
/// Payloads up to this size travel in the batch's byte buffer; larger ones as they are (one
/// cross-thread free is nothing next to the copies they would cost).
pub(crate) const INLINE_MAX: usize = 2 * 1024;
/// How many times the receiver looks for a batch before it sleeps.
const SPIN: u32 = 200;

/// One event in a batch.
enum Item<T> {
    /// A payload of `len` bytes in the batch's buffer; `text` says it is valid UTF-8.
    Bytes {
        text: bool,
        len: usize,
        charge: usize,
    },
    /// Anything else, as it is, boxed: events other than small messages are rare (the
    /// open, large messages, the end), and a small item keeps an idle socket's batches small.
    Other(Box<(T, usize)>),
}

/// Events in order, the bytes of the small payloads, and what they are charged.
struct Batch<T> {
    items: VecDeque<Item<T>>,
    bytes: Vec<u8>,
    /// The receiver has taken the bytes up to here.
    pos: usize,
    /// What its events are charged, in all.
    charge: usize,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: VecDeque::new(),
            bytes: Vec::new(),
            pos: 0,
            charge: 0,
        }
    }
}

impl<T> Batch<T> {
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn append(&mut self, other: &mut Batch<T>) {
        self.items.append(&mut other.items);
        self.bytes.extend_from_slice(&other.bytes[other.pos..]);
        self.charge = self.charge.saturating_add(other.charge);
        other.clear();
    }

    fn clear(&mut self) {
        self.items.clear();
        self.bytes.clear();
        self.pos = 0;
        self.charge = 0;
    }
}

/// What the receiver gets: a small payload to make a message of, or an event as it was sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received<T> {
    Bytes { text: bool, bytes: Vec<u8> },
    Other(T),
}

struct State<T> {
    /// Handed over and not yet taken.
    pending: Batch<T>,
    /// Emptied buffers, for the sender's next batch.
    spare: Option<Batch<T>>,
    /// The receiver sleeps on `ready`: a flush wakes it.
    receiver_waiting: bool,
    /// The sender is gone: nothing more will come.
    disconnected: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Something is pending (looked at without the lock while spinning).
    nonempty: AtomicBool,
    backlog: Arc<Backlog>,
}

/// The reader's half.
pub(crate) struct Sender<T> {
    inner: Arc<Inner<T>>,
    batch: Batch<T>,
}

/// The application's half.
pub(crate) struct Receiver<T> {
    inner: Arc<Inner<T>>,
    local: Batch<T>,
    /// Charges of the events taken from `local` and not yet given back to the backlog: given
    /// back once `local` is empty or `FLUSH_BYTES` were taken, so the count the reader looks
    /// at after every event changes once per batch, not once per event.
    taken: usize,
}

/// Why [`Receiver::recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    Timeout,
    Disconnected,
}

/// A hand-off bounded by `backlog`.
pub(crate) fn handoff<T>(backlog: Arc<Backlog>) -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            pending: Batch::default(),
            spare: None,
            receiver_waiting: false,
            disconnected: false,
        }),
        ready: Condvar::new(),
        nonempty: AtomicBool::new(false),
        backlog,
    });
    (
        Sender {
            inner: inner.clone(),
            batch: Batch::default(),
        },
        Receiver {
            inner,
            local: Batch::default(),
            taken: 0,
        },
    )
}

impl<T> Sender<T> {
    /// Adds `event`, charged `charge` bytes, to the batch.
    pub(crate) fn push(&mut self, event: T, charge: usize) {
        self.batch
            .items
            .push_back(Item::Other(Box::new((event, charge))));
        self.charged(charge);
    }

    /// Adds a small payload (at most `INLINE_MAX` bytes), charged `charge` bytes, to the
    /// batch: the caller frees its own copy.
    pub(crate) fn push_bytes(&mut self, text: bool, payload: &[u8], charge: usize) {
        self.batch.bytes.extend_from_slice(payload);
        self.batch.items.push_back(Item::Bytes {
            text,
            len: payload.len(),
            charge,
        });
        self.charged(charge);
    }

    fn charged(&mut self, charge: usize) {
        self.batch.charge = self.batch.charge.saturating_add(charge);
        if self.batch.charge >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Hands the batch over: one lock, and one wake-up if the receiver sleeps.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.inner.backlog.add(self.batch.charge);
        let mut state = self.inner.state.lock();
        if state.pending.is_empty() {
            // Ours becomes the pending batch; the spare (or nothing) becomes ours.
            let mine = state.spare.take().unwrap_or_default();
            state.pending = std::mem::replace(&mut self.batch, mine);
        } else {
            state.pending.append(&mut self.batch);
        }
        self.inner.nonempty.store(true, Ordering::Release);
        if state.receiver_waiting {
            self.inner.ready.notify_one();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.flush();
        let mut state = self.inner.state.lock();
        state.disconnected = true;
        self.inner.nonempty.store(true, Ordering::Release);
        self.inner.ready.notify_one();
    }
}

impl<T> Receiver<T> {
    /// The next event, waiting up to `timeout()` (`None`: for ever). `timeout` is asked only
    /// if there is nothing to take, so a caller with a deadline reads the clock only then.
    pub(crate) fn recv(
        &mut self,
        mut timeout: impl FnMut() -> Option<Duration>,
    ) -> Result<Received<T>, RecvError> {
        loop {
            if let Some(item) = self.local.items.pop_front() {
                let (received, charge) = match item {
                    Item::Bytes { text, len, charge } => {
                        let end = self
                            .local
                            .pos
                            .saturating_add(len)
                            .min(self.local.bytes.len());
                        let bytes = self.local.bytes[self.local.pos..end].to_vec();
                        self.local.pos = end;
                        (Received::Bytes { text, bytes }, charge)
                    }
                    Item::Other(other) => {
                        let (event, charge) = *other;
                        (Received::Other(event), charge)
                    }
                };
                self.taken = self.taken.saturating_add(charge);
                if self.taken >= FLUSH_BYTES || self.local.is_empty() {
                    self.inner.backlog.remove(std::mem::take(&mut self.taken));
                }
                return Ok(received);
            }
            self.refill(timeout())?;
        }
    }

    /// Takes the pending batch, waiting for one if there is none; the emptied local buffers
    /// become the sender's spare.
    fn refill(&mut self, timeout: Option<Duration>) -> Result<(), RecvError> {
        for _ in 0..SPIN {
            if self.inner.nonempty.load(Ordering::Acquire) {
                break;
            }
            std::hint::spin_loop();
        }
        // A timeout too large to add to now means none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.inner.state.lock();
        loop {
            if !state.pending.is_empty() {
                self.local.clear();
                std::mem::swap(&mut state.pending, &mut self.local);
                // Our emptied buffers (pending now) become the sender's next batch.
                let emptied = std::mem::take(&mut state.pending);
                state.spare = Some(emptied);
                self.inner.nonempty.store(false, Ordering::Release);
                return Ok(());
            }
            if state.disconnected {
                return Err(RecvError::Disconnected);
            }
            state.receiver_waiting = true;
            let timed_out = match deadline {
                Some(d) => self.inner.ready.wait_until(&mut state, d).timed_out(),
                None => {
                    self.inner.ready.wait(&mut state);
                    false
                }
            };
            state.receiver_waiting = false;
            if timed_out && state.pending.is_empty() && !state.disconnected {
                return Err(RecvError::Timeout);
            }
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Nobody will make room any more: the reader must not wait for it.
        self.inner.backlog.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other<T>(r: Result<Received<T>, RecvError>) -> T {
        match r {
            Ok(Received::Other(t)) => t,
            Ok(Received::Bytes { .. }) => panic!("bytes, not an event"),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn events_and_payloads_arrive_in_order_once_flushed_and_the_end_is_seen() {
        let backlog = Arc::new(Backlog::new(1 << 20));
        let (mut tx, mut rx) = handoff::<u32>(backlog.clone());
        tx.push(1, 10);
        tx.push_bytes(true, b"hello", 15);
        tx.push_bytes(false, &[1, 2, 3], 13);
        tx.push(2, 10);
        let soon = Some(Duration::from_millis(10));
        assert_eq!(rx.recv(|| soon), Err(RecvError::Timeout), "not flushed yet");
        tx.flush();
        assert_eq!(backlog.pending(), 48);
        assert_eq!(other(rx.recv(|| None)), 1);
        assert_eq!(
            rx.recv(|| None),
            Ok(Received::Bytes {
                text: true,
                bytes: b"hello".to_vec()
            })
        );
        assert_eq!(
            rx.recv(|| None),
            Ok(Received::Bytes {
                text: false,
                bytes: vec![1, 2, 3]
            })
        );
        assert_eq!(backlog.pending(), 48, "the batch is not used up yet");
        assert_eq!(other(rx.recv(|| None)), 2);
        assert_eq!(backlog.pending(), 0, "given back once the batch is used up");
        tx.push(3, 10);
        drop(tx);
        assert_eq!(other(rx.recv(|| None)), 3, "dropping the sender flushes");
        assert_eq!(rx.recv(|| None), Err(RecvError::Disconnected));
        assert_eq!(backlog.pending(), 0);
    }

    #[test]
    fn a_large_batch_is_handed_over_before_the_read_ends_and_given_back_in_slices() {
        let backlog = Arc::new(Backlog::new(1 << 30));
        let (mut tx, mut rx) = handoff::<usize>(backlog.clone());
        for i in 0..4 {
            tx.push(i, FLUSH_BYTES / 4);
        }
        // No flush: the fourth push reached FLUSH_BYTES.
        assert_eq!(other(rx.recv(|| Some(Duration::from_secs(10)))), 0);
        assert_eq!(backlog.pending(), FLUSH_BYTES);
        for i in 1..4 {
            assert_eq!(other(rx.recv(|| None)), i);
        }
        assert_eq!(backlog.pending(), 0);
        // Given back in slices while a long batch is being taken.
        for i in 0..8 {
            tx.push(i, FLUSH_BYTES / 4);
        }
        tx.flush();
        assert_eq!(backlog.pending(), 2 * FLUSH_BYTES);
        for i in 0..4 {
            assert_eq!(other(rx.recv(|| None)), i);
        }
        assert_eq!(backlog.pending(), FLUSH_BYTES, "the first slice is back");
    }

    #[test]
    fn the_receivers_emptied_buffers_go_back_to_the_sender() {
        let backlog = Arc::new(Backlog::new(1 << 20));
        let (mut tx, mut rx) = handoff::<u8>(backlog);
        tx.push_bytes(false, &[7; 100], 100);
        tx.flush();
        assert!(matches!(rx.recv(|| None), Ok(Received::Bytes { .. })));
        tx.push_bytes(false, &[8; 100], 100);
        tx.flush();
        assert!(matches!(rx.recv(|| None), Ok(Received::Bytes { .. })));
        // Taking the second batch gave the first one's buffer back; the next flush hands it
        // to the sender for its next batch.
        tx.push_bytes(false, &[9; 100], 100);
        tx.flush();
        assert!(
            tx.batch.bytes.capacity() >= 100,
            "the sender holds a recycled buffer"
        );
        match rx.recv(|| None) {
            Ok(Received::Bytes { bytes, .. }) => assert_eq!(bytes, vec![9; 100]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sleeping_receiver_is_woken_by_a_flush_from_another_thread() {
        let backlog = Arc::new(Backlog::new(1 << 20));
        let (mut tx, mut rx) = handoff::<&'static str>(backlog);
        let t = std::thread::spawn(move || other(rx.recv(|| None)));
        tx.push("hello", 1);
        tx.flush();
        assert_eq!(t.join().unwrap(), "hello");
    }
}
