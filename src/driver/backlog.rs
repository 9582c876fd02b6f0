//! Backpressure for pull-style listeners: events delivered to the application and not yet
//! taken, bounded in bytes.
//!
//! A [`channel`](crate::channel)'s listener half adds each event's charge, its receiver
//! subtracts it, and the reader of every socket using the channel waits for room before it
//! decodes its next frame. While it waits nothing is read, so TCP flow control pushes back on
//! the peer and nothing is dropped; a cancel or failure wakes it.
//!
//! **What an event is charged** is the listener's to say (`listener::EVENT_CHARGE`): its
//! payload plus a fixed amount for what every queued event costs whatever its size. Without
//! the fixed part a peer streaming empty frames (`82 00`, two bytes each) would be charged
//! nothing and grow the queue without bound.
//!
//! The count is an atomic, so the reader's check after every event and the application's
//! receive take no lock; the mutex and condvar are only for a reader that has to wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

pub(crate) struct Backlog {
    /// Bytes charged for events delivered and not yet taken.
    pending: AtomicUsize,
    /// The application dropped its receiver: nobody will make room, so nobody waits.
    abandoned: AtomicBool,
    /// Held by a waiting reader while it checks and sleeps, and by a wake before it notifies,
    /// so a wake cannot fall between a reader's check and its sleep.
    lock: Mutex<()>,
    room: Condvar,
    limit: usize,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Backlog {
        Backlog {
            pending: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
            lock: Mutex::new(()),
            room: Condvar::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged for the events delivered and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// An event charged `bytes` was delivered.
    pub(crate) fn add(&self, bytes: usize) {
        // Saturating: a sum past usize::MAX would need more memory than there is.
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_add(bytes))
            });
    }

    /// The application took an event charged `bytes`.
    pub(crate) fn remove(&self, bytes: usize) {
        let before = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(bytes))
            })
            .unwrap_or(0);
        if before >= self.limit && before.saturating_sub(bytes) < self.limit {
            self.wake();
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.pending() >= self.limit && !self.abandoned.load(Ordering::Acquire)
    }

    /// The receiver is gone: release every waiting reader, now and later.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        self.wake();
    }

    /// Blocks while the backlog is full, until the application takes enough or `ending()`
    /// says the socket is ending (checked under the lock that [`wake`](Self::wake) takes, so a
    /// wake cannot be missed).
    pub(crate) fn wait_for_room(&self, ending: impl Fn() -> bool) {
        let mut guard = self.lock.lock();
        while self.is_full() && !ending() {
            self.room.wait(&mut guard);
        }
    }

    /// Wakes every waiting reader to look at the count and `ending()` again (room was made,
    /// a cancel, a failure).
    pub(crate) fn wake(&self) {
        let _guard = self.lock.lock();
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn full_at_the_limit_and_room_below_it() {
        let b = Backlog::new(10);
        b.add(9);
        assert!(!b.is_full());
        b.add(1);
        assert!(b.is_full());
        b.remove(1);
        assert!(!b.is_full());
        assert_eq!(b.pending(), 9);
        b.remove(100);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn a_waiting_reader_resumes_on_room_or_on_ending() {
        let b = Arc::new(Backlog::new(4));
        b.add(8);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            b2.wait_for_room(|| false);
            tx.send(()).unwrap();
        });
        b.remove(4);
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(50))
                .is_err()
        );
        b.remove(1);
        rx.recv().unwrap();
        t.join().unwrap();

        b.add(10);
        let ending = Arc::new(AtomicBool::new(false));
        let (b2, e2) = (b.clone(), ending.clone());
        let t = std::thread::spawn(move || b2.wait_for_room(|| e2.load(Ordering::SeqCst)));
        ending.store(true, Ordering::SeqCst);
        b.wake();
        t.join().unwrap();
    }
}
