//! The reader's rest under `max_receive_rate`: a sleep until a deadline that a cancel or a
//! failure cuts short (they call [`Rest::wake`]).

use std::time::Instant;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct Rest {
    /// Held by the resting reader while it checks and sleeps, and by a wake before it
    /// notifies, so a wake cannot fall between the check and the sleep.
    lock: Mutex<()>,
    cv: Condvar,
}

impl Rest {
    /// Sleeps until `deadline`, or until `ending()` holds (checked under the lock that
    /// [`wake`](Self::wake) takes).
    pub(crate) fn until(&self, deadline: Instant, ending: impl Fn() -> bool) {
        let mut guard = self.lock.lock();
        while !ending() {
            if self.cv.wait_until(&mut guard, deadline).timed_out() {
                return;
            }
        }
    }

    /// Wakes a resting reader to look at `ending()` again.
    pub(crate) fn wake(&self) {
        let _guard = self.lock.lock();
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_rest_ends_at_its_deadline_or_at_a_wake_once_ending() {
        let rest = Rest::default();
        let t0 = Instant::now();
        rest.until(t0 + Duration::from_millis(20), || false);
        assert!(t0.elapsed() >= Duration::from_millis(20));

        let rest = Arc::new(Rest::default());
        let ending = Arc::new(AtomicBool::new(false));
        let (r, e) = (rest.clone(), ending.clone());
        let t = std::thread::spawn(move || {
            r.until(Instant::now() + Duration::from_secs(3600), || {
                e.load(Ordering::SeqCst)
            })
        });
        ending.store(true, Ordering::SeqCst);
        rest.wake();
        t.join().unwrap();
    }
}
