//! One deadline for a whole connect, however many redirects it follows.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::driver::clock::timeout_deadline;

/// The deadline of a whole connect, redirects included: `connect_timeout + handshake_timeout` from
/// its start (unbounded if either is zero, which means "none"). Each hop's TCP leg still has
/// `connect_timeout` and its TLS and upgrade `handshake_timeout`, each cut short by this.
pub(super) struct ChainDeadline {
    at: Instant,
    /// The sum, for the error when it is this deadline that passes.
    total: Duration,
}

impl ChainDeadline {
    pub(super) fn new(config: &Config) -> ChainDeadline {
        let (c, r) = (config.connect_timeout, config.handshake_timeout);
        let total = if c.is_zero() || r.is_zero() {
            Duration::ZERO
        } else {
            c.saturating_add(r)
        };
        ChainDeadline {
            at: timeout_deadline(total),
            total,
        }
    }

    /// A phase's deadline, `timeout` from now but no later than the chain's, and the timeout
    /// an error reports when it passes.
    pub(super) fn phase(&self, timeout: Duration) -> (Instant, Duration) {
        let own = timeout_deadline(timeout);
        if self.at < own {
            (self.at, self.total)
        } else {
            (own, timeout)
        }
    }
}
