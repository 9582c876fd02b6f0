//! Waiting on a condition variable until something holds or a deadline passes: how a caller
//! waits for a socket to finish, and a reconnecting socket for its backoff to end.

use std::time::Instant;

use parking_lot::{Condvar, MutexGuard};

/// Waits on `cv` (with `guard` locked) until `done` holds or `deadline` passes (`None`:
/// for ever). Returns whether `done` holds.
pub(crate) fn wait_until<T>(
    cv: &Condvar,
    guard: &mut MutexGuard<'_, T>,
    deadline: Option<Instant>,
    done: impl Fn(&T) -> bool,
) -> bool {
    while !done(guard) {
        match deadline {
            Some(d) => {
                if cv.wait_until(guard, d).timed_out() {
                    return done(guard);
                }
            }
            None => cv.wait(guard),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn returns_when_done_or_at_the_deadline() {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let other = pair.clone();
        let t = std::thread::spawn(move || {
            *other.0.lock() = true;
            other.1.notify_all();
        });
        let mut g = pair.0.lock();
        assert!(wait_until(&pair.1, &mut g, None, |done| *done));
        drop(g);
        t.join().unwrap();
        let never = Mutex::new(false);
        let t0 = Instant::now();
        let soon = t0 + Duration::from_millis(20);
        assert!(!wait_until(
            &Condvar::new(),
            &mut never.lock(),
            Some(soon),
            |d| *d
        ));
        assert!(Instant::now() >= soon);
    }
}
