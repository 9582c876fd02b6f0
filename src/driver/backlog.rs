//! Backpressure for pull-style listeners: payload delivered to the application and not yet
//! taken, bounded in bytes.
//!
//! A [`channel`](crate::channel)'s listener half adds each message's size, its receiver
//! subtracts it, and the reader of every socket using the channel waits for room before its
//! next read. While it waits nothing is read, so TCP flow control pushes back on the peer and
//! nothing is dropped; a cancel or failure wakes it.

use parking_lot::{Condvar, Mutex};

pub(crate) struct Backlog {
    pending: Mutex<State>,
    room: Condvar,
    limit: usize,
}

struct State {
    bytes: usize,
    /// The application dropped its receiver: nobody will make room, so nobody waits.
    abandoned: bool,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Backlog {
        Backlog {
            pending: Mutex::new(State {
                bytes: 0,
                abandoned: false,
            }),
            room: Condvar::new(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Payload bytes delivered and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.pending.lock().bytes
    }

    /// A message of `bytes` was delivered.
    pub(crate) fn add(&self, bytes: usize) {
        let mut p = self.pending.lock();
        p.bytes = p.bytes.saturating_add(bytes);
    }

    /// The application took a message of `bytes`.
    pub(crate) fn remove(&self, bytes: usize) {
        let mut p = self.pending.lock();
        let was_full = p.bytes >= self.limit;
        p.bytes = p.bytes.saturating_sub(bytes);
        if was_full && p.bytes < self.limit {
            self.room.notify_all();
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        let p = self.pending.lock();
        p.bytes >= self.limit && !p.abandoned
    }

    /// The receiver is gone: release every waiting reader, now and later.
    pub(crate) fn abandon(&self) {
        self.pending.lock().abandoned = true;
        self.room.notify_all();
    }

    /// Blocks while the backlog is full, until the application takes enough or `ending()`
    /// says the socket is ending (checked under the lock that [`wake`](Self::wake) takes, so a
    /// wake cannot be missed).
    pub(crate) fn wait_for_room(&self, ending: impl Fn() -> bool) {
        let mut p = self.pending.lock();
        while p.bytes >= self.limit && !p.abandoned && !ending() {
            self.room.wait(&mut p);
        }
    }

    /// Wakes every waiting reader to look at `ending()` again (a cancel, a failure).
    pub(crate) fn wake(&self) {
        let _guard = self.pending.lock();
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
