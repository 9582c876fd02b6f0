//! Reconnect policy as data: the delay before each attempt, and which endings are worth
//! another attempt. No clock, no random source, no I/O: the caller passes the attempt number
//! and a random number in `[0, 1)`, and gets a `Duration` back.

use std::time::Duration;

use crate::error::Error;

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    /// The delay before the first attempt (before jitter).
    pub initial: Duration,
    /// Each attempt's delay is the previous one's times this (at least 1).
    pub multiplier: f64,
    /// No delay exceeds this (the cap is applied before jitter, so jitter only shortens).
    pub max: Duration,
    /// Which share of each delay is random, 0 (none) to 1 ("full jitter"); 0.5 is "equal
    /// jitter": half the delay is fixed, the other half drawn at random.
    pub jitter: f64,
}

/// Sanitises a multiplier: below 1 (delays that shrink), NaN or negative count as 1.
pub(crate) fn sane_multiplier(m: f64) -> f64 {
    if m >= 1.0 { m } else { 1.0 }
}

/// Sanitises a jitter factor into `[0, 1]`; NaN counts as 0.
pub(crate) fn sane_jitter(j: f64) -> f64 {
    if j.is_nan() { 0.0 } else { j.clamp(0.0, 1.0) }
}

/// The delay before attempt `attempt` (1 for the first retry of an outage; 0 counts as 1).
///
/// `base = min(max, initial * multiplier^(attempt - 1))`, then
/// `delay = base * (1 - jitter * random_unit)`: with jitter 0.5 the delay is uniform in
/// `(base / 2, base]`. `random_unit` outside `[0, 1]` (or NaN) is clamped, so no input can
/// make this panic or return more than `max`.
pub(crate) fn delay(policy: &Backoff, attempt: u32, random_unit: f64) -> Duration {
    let base = base_delay(policy, attempt);
    let unit = if random_unit.is_nan() {
        0.0
    } else {
        random_unit.clamp(0.0, 1.0)
    };
    let factor = 1.0 - sane_jitter(policy.jitter) * unit;
    if factor >= 1.0 {
        return base;
    }
    // `factor` is in [0, 1), so the product is finite and below `base`; `try_from` guards the
    // rounding of very large durations anyway.
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).map_or(base, |d| d.min(base))
}

/// The delay before jitter: grows by the multiplier, never past `max`.
fn base_delay(policy: &Backoff, attempt: u32) -> Duration {
    if policy.initial.is_zero() {
        // Also avoids 0 * infinity = NaN below.
        return Duration::ZERO;
    }
    let cap = policy.max;
    let exponent = attempt.saturating_sub(1);
    // powi with a huge exponent is +infinity, never a panic; the cap takes care of it.
    let growth =
        sane_multiplier(policy.multiplier).powi(i32::try_from(exponent).unwrap_or(i32::MAX));
    let secs = policy.initial.as_secs_f64() * growth;
    if !secs.is_finite() || secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
}

/// Whether attempt number `next` (1-based, within one outage) may still be made.
pub(crate) fn attempts_left(next: u32, max_attempts: u32) -> bool {
    next <= max_attempts
}

/// Whether a connection that failed with `error` is worth another attempt, judged by the
/// error alone (the application's own close or cancel is decided by the caller).
///
/// - `status`: the HTTP status of the server's answer to the upgrade, if one came.
/// - `opened`: whether this connection got through its handshake before it failed.
///
/// Retried: network failures and timeouts, the peer breaking the protocol (every
/// [`ProtocolError`](crate::ProtocolError), invalid UTF-8, an oversized message: a garbled
/// stream belongs to one connection), a handshake the server ended without an answer, and
/// answers that say "later": 5xx, 408 and 429.
/// Not retried: other answers (4xx: the same request will be refused again; 3xx, 200 or a
/// 101 with bad headers: the server is not a web socket endpoint for this request), a TLS
/// handshake that failed (an untrusted, expired or misnamed certificate does not fix itself
/// between attempts) except when the server hung up in the middle of it, the application's
/// own listener panicking, and cancel.
pub(crate) fn retryable(error: &Error, status: Option<u16>, opened: bool) -> bool {
    match error {
        Error::Io(_)
        | Error::ConnectTimeout(_)
        | Error::ReadTimeout(_)
        | Error::WriteTimeout(_)
        | Error::UnexpectedEof
        | Error::PongTimeout { .. }
        | Error::CloseTimeout(_)
        | Error::Protocol(_)
        | Error::InvalidUtf8
        | Error::MessageTooLarge { .. } => true,
        // An unreachable proxy, or one that dropped or garbled the tunnel, is the network
        // going away. A proxy refusing our credentials is retried too, at the backoff's pace:
        // `on_retry` sees the error and can stop.
        Error::Proxy(_) => true,
        Error::HandshakeRejected { .. } => match status {
            // The server hung up before answering, or answered something unreadable.
            None => true,
            Some(s) => (500..=599).contains(&s) || s == 408 || s == 429,
        },
        // After the handshake a TLS error is a broken session, not a certificate; during it,
        // only the server hanging up (the driver's wording) is a server going away.
        Error::Tls(message) => opened || message.contains(TLS_PEER_CLOSED),
        Error::InvalidUrl(_)
        | Error::InvalidRequest(_)
        | Error::InvalidCloseCode(_)
        | Error::ReasonTooLong(_)
        | Error::ListenerPanicked(_)
        // The application's own source failed: a new connection would not mend it.
        | Error::MessageSource(_)
        | Error::Canceled
        | Error::Http(_)
        | Error::Closed { .. } => false,
    }
}

/// How the driver words a TLS handshake the server hung up on (`driver/transport.rs`);
/// `tests/reconnect.rs` runs into it for real, so a change of wording fails a test.
const TLS_PEER_CLOSED: &str = "closed the connection during the TLS handshake";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProtocolError;

    const MS: Duration = Duration::from_millis(1);

    fn policy(initial_ms: u64, multiplier: f64, max_ms: u64, jitter: f64) -> Backoff {
        Backoff {
            initial: MS * initial_ms as u32,
            multiplier,
            max: MS * max_ms as u32,
            jitter,
        }
    }

    #[test]
    fn grows_by_the_multiplier_without_jitter() {
        let p = policy(100, 2.0, 1_000_000, 0.0);
        let got: Vec<u128> = (1..=5).map(|a| delay(&p, a, 0.7).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600]);
        let p = policy(100, 1.5, 1_000_000, 0.0);
        assert_eq!(delay(&p, 3, 0.0), MS * 225);
    }

    #[test]
    fn attempt_zero_counts_as_the_first() {
        let p = policy(100, 2.0, 1_000_000, 0.0);
        assert_eq!(delay(&p, 0, 0.0), delay(&p, 1, 0.0));
    }

    #[test]
    fn the_cap_holds_from_where_growth_reaches_it() {
        let p = policy(100, 2.0, 500, 0.0);
        let got: Vec<u128> = (1..=6).map(|a| delay(&p, a, 0.0).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500, 500]);
        // An initial delay above the cap is capped too.
        assert_eq!(delay(&policy(900, 2.0, 500, 0.0), 1, 0.0), MS * 500);
    }

    #[test]
    fn jitter_stays_within_its_share_of_the_delay() {
        let p = policy(1000, 2.0, 60_000, 0.5);
        for attempt in 1..=8 {
            let base = delay(&policy(1000, 2.0, 60_000, 0.0), attempt, 0.0);
            for i in 0..=100 {
                let unit = f64::from(i) / 100.0;
                let d = delay(&p, attempt, unit);
                assert!(d <= base, "attempt {attempt} unit {unit}: {d:?} > {base:?}");
                assert!(d >= base / 2, "attempt {attempt} unit {unit}: {d:?} < half");
            }
            assert_eq!(delay(&p, attempt, 0.0), base);
            assert_eq!(delay(&p, attempt, 1.0), base / 2);
        }
        // Full jitter reaches down to zero, never above the base.
        let full = policy(1000, 2.0, 60_000, 1.0);
        assert_eq!(delay(&full, 1, 1.0), Duration::ZERO);
        assert_eq!(delay(&full, 1, 0.25), MS * 750);
    }

    #[test]
    fn out_of_range_inputs_are_clamped() {
        let p = policy(1000, 2.0, 60_000, 0.5);
        assert_eq!(delay(&p, 1, -3.0), MS * 1000);
        assert_eq!(delay(&p, 1, 7.0), MS * 500);
        assert_eq!(delay(&p, 1, f64::NAN), MS * 1000);
        // Jitter factors outside [0, 1] (or NaN) are clamped the same way.
        assert_eq!(
            delay(&policy(1000, 2.0, 60_000, 9.0), 1, 1.0),
            Duration::ZERO
        );
        assert_eq!(delay(&policy(1000, 2.0, 60_000, -1.0), 1, 1.0), MS * 1000);
        assert_eq!(
            delay(&policy(1000, 2.0, 60_000, f64::NAN), 1, 1.0),
            MS * 1000
        );
        // Shrinking, negative and NaN multipliers count as 1: a constant delay.
        for m in [0.5, -2.0, f64::NAN, 0.0] {
            assert_eq!(delay(&policy(300, m, 60_000, 0.0), 9, 0.0), MS * 300, "{m}");
        }
    }

    #[test]
    fn huge_multipliers_attempts_and_caps_do_not_overflow() {
        let cap = Duration::from_secs(30);
        for m in [2.0, 1e10, 1e308, f64::INFINITY, f64::MAX] {
            let p = Backoff {
                initial: Duration::from_secs(1),
                multiplier: m,
                max: cap,
                jitter: 0.5,
            };
            for attempt in [64, 1_000, u32::MAX] {
                let d = delay(&p, attempt, 0.0);
                assert_eq!(d, cap, "multiplier {m} attempt {attempt}");
                assert!(delay(&p, attempt, 0.999) <= cap);
            }
        }
        // No cap at all: Duration::MAX, whatever grows.
        let p = Backoff {
            initial: Duration::MAX,
            multiplier: f64::MAX,
            max: Duration::MAX,
            jitter: 0.5,
        };
        assert_eq!(delay(&p, u32::MAX, 0.0), Duration::MAX);
        let half = delay(&p, u32::MAX, 1.0);
        assert!(
            half <= Duration::MAX && half >= Duration::MAX / 3,
            "{half:?}"
        );
        let p = Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::MAX,
            jitter: 0.0,
        };
        assert_eq!(delay(&p, 11, 0.0), Duration::from_secs(1024));
        assert_eq!(delay(&p, u32::MAX, 0.0), Duration::MAX);
    }

    #[test]
    fn zero_initial_delay_is_zero_every_time() {
        for m in [1.0, 2.0, f64::INFINITY] {
            let p = Backoff {
                initial: Duration::ZERO,
                multiplier: m,
                max: Duration::from_secs(30),
                jitter: 0.5,
            };
            for attempt in [1, 2, 1_000, u32::MAX] {
                assert_eq!(delay(&p, attempt, 0.3), Duration::ZERO);
            }
        }
        // A zero cap too.
        assert_eq!(delay(&policy(100, 2.0, 0, 0.5), 3, 0.5), Duration::ZERO);
    }

    #[test]
    fn attempts_are_counted_up_to_the_maximum() {
        assert!(attempts_left(1, 1));
        assert!(!attempts_left(2, 1));
        assert!(!attempts_left(1, 0));
        assert!(attempts_left(u32::MAX, u32::MAX));
    }

    fn rejected(status: u16) -> bool {
        retryable(&Error::rejected("x"), Some(status), false)
    }

    #[test]
    fn server_errors_and_try_later_answers_are_retried_other_answers_not() {
        for s in [500, 502, 503, 504, 599, 408, 429] {
            assert!(rejected(s), "{s}");
        }
        for s in [
            400, 401, 403, 404, 410, 426, 499, 101, 200, 301, 302, 600, 0,
        ] {
            assert!(!rejected(s), "{s}");
        }
        // No answer at all (the server hung up, or the answer was unreadable).
        assert!(retryable(&Error::rejected("closed"), None, false));
    }

    #[test]
    fn network_failures_timeouts_and_peer_violations_are_retried() {
        let io = || Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for e in [
            io(),
            Error::ConnectTimeout(MS),
            Error::ReadTimeout(MS),
            Error::WriteTimeout(MS),
            Error::UnexpectedEof,
            Error::PongTimeout {
                timeout: MS,
                successful: 3,
            },
            Error::CloseTimeout(MS),
            Error::Protocol(ProtocolError::UnknownOpcode { opcode: 3 }),
            Error::Protocol(ProtocolError::InvalidCompressedData {
                message: "invalid block type".into(),
            }),
            Error::InvalidUtf8,
            Error::MessageTooLarge { size: 9, limit: 1 },
        ] {
            assert!(retryable(&e, None, true), "{e}");
            assert!(retryable(&e, None, false), "{e}");
        }
    }

    #[test]
    fn tls_failures_are_retried_only_after_the_handshake_or_when_the_server_hung_up() {
        let cert = Error::Tls("certificate verify failed".into());
        assert!(!retryable(&cert, None, false));
        assert!(retryable(&cert, None, true));
        let hung_up = Error::Tls("the peer closed the connection during the TLS handshake".into());
        assert!(retryable(&hung_up, None, false));
    }

    #[test]
    fn the_applications_own_mistakes_and_cancel_are_not_retried() {
        for e in [
            Error::InvalidUrl("x".into()),
            Error::InvalidRequest("x".into()),
            Error::InvalidCloseCode(1005),
            Error::ReasonTooLong(200),
            Error::ListenerPanicked("boom".into()),
            Error::Canceled,
        ] {
            assert!(!retryable(&e, None, true), "{e}");
            assert!(!retryable(&e, None, false), "{e}");
        }
    }
}
