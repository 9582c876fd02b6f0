//! The reconnect policy: exponential backoff with jitter, a limit on attempts, and what
//! [`Reconnect::on_retry`] is told before each retry.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::ended::Ended;
use crate::proto::backoff::{self, Backoff};

/// Default [`Reconnect::initial_delay`]: a blip (a Wi-Fi hand-over, a server restart) is
/// bridged in well under a second.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// Default [`Reconnect::multiplier`]: the delay doubles with each attempt.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Default [`Reconnect::max_delay`]: reached after seven attempts (about 30 s of outage);
/// a server that comes back is found within 30 s, and 10,000 clients of a server that is
/// down make about 450 attempts a second between them (the mean delay is 22.5 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Default [`Reconnect::jitter`]: "equal jitter", half of each delay fixed and half random.
pub const DEFAULT_JITTER: f64 = 0.5;

type RetryFn = Box<dyn FnMut(&Retry<'_>) -> bool + Send>;

/// The reconnect policy: exponential backoff with jitter, a limit on attempts, and an
/// optional callback before each retry. Cheap to clone; builder-style setters.
///
/// The delay before attempt `n` (1 for the first retry of an outage) is
/// `base = min(max_delay, initial_delay × multiplier^(n−1))`, of which the `jitter` share is
/// random: with the default 0.5 it is uniform between `base / 2` and `base`.
///
/// | Setting | Default |
/// |---|---|
/// | [`initial_delay`](Self::initial_delay) | 500 ms |
/// | [`multiplier`](Self::multiplier) | 2.0 |
/// | [`max_delay`](Self::max_delay) | 30 s |
/// | [`jitter`](Self::jitter) | 0.5 (equal jitter) |
/// | [`max_attempts`](Self::max_attempts) | `u32::MAX` (never runs out) |
/// | [`on_retry`](Self::on_retry) | none (always retry) |
///
/// ```
/// use std::time::Duration;
/// let policy = syncws::Reconnect::new()
///     .initial_delay(Duration::from_millis(100))
///     .multiplier(1.5)
///     .max_delay(Duration::from_secs(10))
///     .max_attempts(20)
///     .jitter(1.0); // full jitter
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct Reconnect {
    pub(super) backoff: Backoff,
    pub(super) max_attempts: u32,
    on_retry: Option<Arc<Mutex<RetryFn>>>,
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("initial_delay", &self.backoff.initial)
            .field("multiplier", &self.backoff.multiplier)
            .field("max_delay", &self.backoff.max)
            .field("jitter", &self.backoff.jitter)
            .field("max_attempts", &self.max_attempts)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::new()
    }
}

impl Reconnect {
    /// The default policy (see the table above).
    pub fn new() -> Self {
        Reconnect {
            backoff: Backoff {
                initial: DEFAULT_INITIAL_DELAY,
                multiplier: DEFAULT_MULTIPLIER,
                max: DEFAULT_MAX_DELAY,
                jitter: DEFAULT_JITTER,
            },
            max_attempts: u32::MAX,
            on_retry: None,
        }
    }

    /// The delay before the first attempt of an outage, before jitter. Default 500 ms;
    /// `Duration::ZERO` retries at once, every time.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.backoff.initial = delay;
        self
    }

    /// Each attempt waits this many times longer than the one before. Default 2.0. Values
    /// below 1 (and NaN) count as 1: a constant delay.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.backoff.multiplier = backoff::sane_multiplier(multiplier);
        self
    }

    /// No delay is longer than this (jitter only shortens a delay). Default 30 s.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.backoff.max = delay;
        self
    }

    /// The share of each delay that is random, 0.0 (none) to 1.0 ("full jitter": anywhere
    /// from zero to the delay). Default 0.5 ("equal jitter"). Out-of-range values are clamped,
    /// NaN counts as 0.
    ///
    /// Jitter spreads the clients of a server that went down over the delay instead of having
    /// them all come back at the same instant. Equal jitter is the default rather than full
    /// jitter (which spreads them best) because it keeps half of every delay: no client, however
    /// unlucky its draws, retries a down server in a tight loop, and the delay still grows
    /// with every attempt for every client.
    pub fn jitter(mut self, share: f64) -> Self {
        self.backoff.jitter = backoff::sane_jitter(share);
        self
    }

    /// How many reconnection attempts one outage may take before the socket gives up, with
    /// the last attempt's error as its terminal `on_failure`. The count starts again once a
    /// connection opens. `0` never reconnects (the first end is the last). Default
    /// `u32::MAX`: at the default 30 s cap that is four thousand years.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Runs `f` before each retry, with the attempt number, the delay about to be waited and
    /// why the connection ended; returning false stops, and that cause becomes the socket's
    /// terminal callback. A panic in `f` counts as false.
    ///
    /// It runs on the ended connection's reader thread, never at the same time as the
    /// listener's callbacks, and may call the [`ReconnectingWebSocket`](super::ReconnectingWebSocket)'s methods (for
    /// example `send`, to queue something for the next connection). Clones of this policy
    /// share `f`.
    pub fn on_retry(mut self, f: impl FnMut(&Retry<'_>) -> bool + Send + 'static) -> Self {
        self.on_retry = Some(Arc::new(Mutex::new(Box::new(f))));
        self
    }

    /// Asks the retry callback; no callback means yes.
    pub(super) fn ask(&self, retry: &Retry<'_>) -> bool {
        let Some(f) = &self.on_retry else {
            return true;
        };
        match catch_unwind(AssertUnwindSafe(|| (f.lock())(retry))) {
            Ok(go_on) => go_on,
            Err(p) => {
                log::error!(
                    "the on_retry callback panicked ({}); not retrying",
                    crate::panics::message(&*p)
                );
                false
            }
        }
    }
}

/// What [`Reconnect::on_retry`] is told before a retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct Retry<'a> {
    /// 1 for the first retry of an outage, then 2, 3, ...; back to 1 once a connection opens.
    pub attempt: u32,
    /// How long the socket will wait before this attempt (jitter included).
    pub delay: Duration,
    /// Why the last connection (or attempt) ended.
    pub cause: &'a Ended,
    /// Payload bytes that were handed to the ended connection and never written to its socket:
    /// lost, and not sent again. (Bytes written but not yet read by the server when the
    /// connection broke may be lost too; no client can count those.)
    pub unwritten_bytes: u64,
}
