//! Waiting for room in the send queue: `send_timeout` waits until a message fits,
//! `wait_drained` until the queue is empty.
//!
//! The writer (or an inline writer) makes room each time it writes a batch, and the gate's
//! closing ends every wait. Neither may pay for waiters that are not there: a waiter announces
//! itself in an atomic count before it looks at the queue, and whoever makes room looks at the
//! count after updating the queue's counters, with a SeqCst fence on both sides, so either the
//! waiter sees the room or the writer sees the waiter (the same pairing as the writer's
//! `parked` flag).

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
pub(super) struct Room {
    waiting: AtomicUsize,
    /// Held by a waiter between its last look and its sleep, and by a wake before it
    /// notifies, so a wake cannot fall between the two.
    lock: Mutex<()>,
    changed: Condvar,
}

impl Room {
    /// The queue shrank or the gate closed: wakes the waiters, if any.
    pub(super) fn changed(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            let _guard = self.lock.lock();
            self.changed.notify_all();
        }
    }

    /// Waits until `ready` holds (true) or `deadline` passes (`None`: no deadline), whichever
    /// comes first; returns whether `ready` held.
    pub(super) fn wait(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) -> bool {
        if ready() {
            return true;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let mut guard = self.lock.lock();
        let done = crate::waiting::wait_until(&self.changed, &mut guard, deadline, |_| ready());
        drop(guard);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn a_waiter_wakes_when_room_is_made_and_gives_up_at_its_deadline() {
        let room = Arc::new(Room::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (r, f) = (room.clone(), flag.clone());
        let waiter = std::thread::spawn(move || r.wait(None, || f.load(Ordering::Acquire)));
        // The waiter is registered or has not looked yet: either way the change reaches it.
        flag.store(true, Ordering::Release);
        room.changed();
        assert!(waiter.join().unwrap());
        assert_eq!(room.waiting.load(Ordering::Relaxed), 0);

        let t0 = Instant::now();
        let soon = t0 + Duration::from_millis(20);
        assert!(!room.wait(Some(soon), || false));
        assert!(Instant::now() >= soon);
        assert_eq!(room.waiting.load(Ordering::Relaxed), 0);
    }
}
