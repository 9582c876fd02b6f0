//! `max_receive_rate`: a token bucket over received message payload. Plain data and
//! `Instant`s: the reader charges each message it delivers and rests as long as this says.
//!
//! The bucket starts full (`burst` bytes) and refills at `per_second`. A message is charged
//! whole after it is delivered, so one message may take the bucket into debt (a message larger
//! than the burst still gets through); the reader then reads nothing until the debt is paid,
//! and TCP flow control holds the peer back meanwhile. Over any time `t` the peer gets at most
//! `burst + per_second × t` bytes of messages through, plus one message.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How fast a peer may send: `per_second` bytes of message payload a second on average, in
/// bursts of up to `burst` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub per_second: u64,
    pub burst: u64,
}

/// The bucket of one socket.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: Rate,
    /// Bytes that may be received now; negative is a debt.
    tokens: i128,
    /// Refilled up to here.
    last: Instant,
    /// Refill below one byte, in byte-nanoseconds, carried to the next refill so that slow
    /// rates and frequent charges lose nothing.
    carry: u128,
}

impl Bucket {
    /// A full bucket; `rate.per_second` must not be 0 (no limit: no bucket).
    pub(crate) fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: i128::from(rate.burst),
            last: now,
            carry: 0,
        }
    }

    /// Charges a message of `bytes` received at `now`: how long to rest before reading on
    /// (`None`: read on now).
    pub(crate) fn charge(&mut self, bytes: usize, now: Instant) -> Option<Duration> {
        self.refill(now);
        let bytes = i128::try_from(bytes).unwrap_or(i128::MAX);
        self.tokens = self.tokens.saturating_sub(bytes);
        if self.tokens >= 0 {
            return None;
        }
        let per_second = u128::from(self.rate.per_second.max(1));
        let debt = self.tokens.unsigned_abs();
        let nanos = debt.saturating_mul(NANOS_PER_SEC).div_ceil(per_second);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = now;
        let earned = elapsed
            .saturating_mul(u128::from(self.rate.per_second))
            .saturating_add(self.carry);
        self.carry = earned % NANOS_PER_SEC;
        let bytes = i128::try_from(earned / NANOS_PER_SEC).unwrap_or(i128::MAX);
        self.tokens = self
            .tokens
            .saturating_add(bytes)
            .min(i128::from(self.rate.burst));
        if self.tokens == i128::from(self.rate.burst) {
            self.carry = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_second: u64, burst: u64) -> (Bucket, Instant) {
        let t0 = Instant::now();
        (Bucket::new(Rate { per_second, burst }, t0), t0)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let (mut b, t0) = bucket(1000, 3000);
        assert_eq!(b.charge(1000, t0), None);
        assert_eq!(b.charge(2000, t0), None);
        // Empty now: 500 bytes more are half a second's worth.
        assert_eq!(b.charge(500, t0), Some(Duration::from_millis(500)));
        // Rested: the debt is paid, and the bucket refills from there.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.charge(0, t1), None);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(b.charge(1000, t2), None);
        assert_eq!(b.charge(1, t2), Some(Duration::from_millis(1)));
    }

    #[test]
    fn it_refills_to_the_burst_and_no_further() {
        let (mut b, t0) = bucket(1000, 2000);
        assert_eq!(b.charge(2000, t0), None);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.charge(2000, later), None);
        assert_eq!(b.charge(1000, later), Some(Duration::from_secs(1)));
    }

    #[test]
    fn one_message_larger_than_the_burst_passes_and_is_paid_for_after() {
        let (mut b, t0) = bucket(1 << 20, 1 << 16);
        assert_eq!(
            b.charge(4 << 20, t0),
            Some(Duration::from_nanos(3_937_500_000))
        );
    }

    #[test]
    fn slow_rates_and_frequent_charges_lose_nothing() {
        // 3 bytes a second, looked at every 100 ms: 0.3 bytes a step is carried, not dropped.
        let (mut b, t0) = bucket(3, 1000);
        assert_eq!(b.charge(1000, t0), None);
        let mut now = t0;
        for _ in 0..100 {
            now += Duration::from_millis(100);
            assert_eq!(b.charge(0, now), None);
        }
        // Ten seconds earned 30 bytes, however often the bucket was looked at.
        assert_eq!(b.charge(30, now), None);
        assert_eq!(b.charge(1, now), Some(Duration::from_nanos(333_333_334)));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let (mut b, t0) = bucket(1, u64::MAX);
        assert_eq!(b.charge(usize::MAX, t0), None);
        assert_eq!(
            b.charge(usize::MAX, t0),
            Some(Duration::from_nanos(u64::MAX))
        );
        let (mut b, t0) = bucket(u64::MAX, 0);
        assert_eq!(b.charge(1, t0), Some(Duration::from_nanos(1)));
        assert_eq!(b.charge(0, t0 + Duration::from_secs(1 << 40)), None);
    }
}
