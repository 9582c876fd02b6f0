//! Deadlines from the caller's timeouts, for the blocking waits of the driver's threads.
//!
//! Every timeout knob accepts anything up to `Duration::MAX`, and zero means none: a deadline
//! that cannot be represented as an `Instant` becomes one decades away, which never fires.

use std::time::{Duration, Instant};

/// `now + d`, or a point decades away when that would overflow (a `Duration::MAX` timeout).
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The deadline of a caller's timeout: zero means none (a point decades away).
pub(crate) fn timeout_deadline(d: Duration) -> Instant {
    if d.is_zero() {
        deadline_after(Duration::MAX)
    } else {
        deadline_after(d)
    }
}
