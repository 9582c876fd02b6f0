//! The connection's deadlines as a sans-I/O state machine: keepalive pings, the pong timeout
//! and the close timer.
//!
//! Events go in (`closing`, the number of pongs seen, the peer's close), time goes in as
//! `Instant`s, and [`Action`]s come out; the writer thread carries them out and sleeps until
//! [`next_deadline`](Timers::next_deadline). Nothing here reads a clock, so every path is
//! unit-tested with made-up instants.
//!
//! Deadlines that would overflow `Instant` (a `Duration::MAX` timeout) mean "never".

use std::time::{Duration, Instant};

use crate::error::Error;

/// The timer settings of one socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerConfig {
    /// Send a ping this often; `None` for no keepalive.
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered (when pings are on).
    pub pong_timeout: Duration,
    /// How long, from the start of the close, the queued data, our close frame and the peer's
    /// close may take; `None` waits forever.
    pub close_timeout: Option<Duration>,
}

/// What the driver must do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write a ping frame.
    SendPing,
    /// Fail the socket with this error.
    Fail(TimerError),
    /// The close handshake is complete but the peer keeps TCP open: close it ourselves.
    CloseConnection,
}

/// The failures a timer can report.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum TimerError {
    PongTimeout { timeout: Duration, successful: u64 },
    CloseTimeout(Duration),
}

impl From<TimerError> for Error {
    fn from(e: TimerError) -> Error {
        match e {
            TimerError::PongTimeout {
                timeout,
                successful,
            } => Error::PongTimeout {
                timeout,
                successful,
            },
            TimerError::CloseTimeout(t) => Error::CloseTimeout(t),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Timers {
    config: TimerConfig,
    next_ping: Option<Instant>,
    /// A ping is out: its deadline, and how many pongs had been seen when it was sent.
    awaiting_pong: Option<(Instant, u64)>,
    answered: u64,
    close_deadline: Option<Instant>,
    close_started: bool,
}

impl Timers {
    /// The socket opened at `now`.
    pub(crate) fn new(config: TimerConfig, now: Instant) -> Self {
        Timers {
            config,
            next_ping: config.ping_interval.and_then(|i| now.checked_add(i)),
            awaiting_pong: None,
            answered: 0,
            close_deadline: None,
            close_started: false,
        }
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.next_ping,
            self.awaiting_pong.map(|(d, _)| d),
            self.close_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The socket started closing (`close()` was called, or the peer's close is being
    /// answered; the frame may still be queued behind data): keepalive stops and the close
    /// timer runs to `deadline`, which the driver computed once, from the start of the close
    /// (`None`: never). Later calls change nothing, so a close frame written late cannot
    /// restart the clock.
    pub(crate) fn closing(&mut self, deadline: Option<Instant>) {
        if self.close_started {
            return;
        }
        self.close_started = true;
        self.next_ping = None;
        self.awaiting_pong = None;
        self.close_deadline = deadline;
    }

    /// The driver cannot read at `now` (the application's channel is full), so no pong can be
    /// seen: the pong timeout is held, starting afresh from `now`, until reading resumes.
    pub(crate) fn hold_pong_timeout(&mut self, now: Instant) {
        if let Some((deadline, _)) = &mut self.awaiting_pong
            && let Some(later) = now.checked_add(self.config.pong_timeout)
        {
            *deadline = later.max(*deadline);
        }
    }

    /// Whether the close timer is running.
    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        self.close_started
    }

    /// Advances to `now`. `pongs` is the number of pongs received so far; `peer_closed` whether
    /// the peer's close frame has arrived. Call again until it returns `None`.
    pub(crate) fn poll(&mut self, now: Instant, pongs: u64, peer_closed: bool) -> Option<Action> {
        if let Some((deadline, before)) = self.awaiting_pong {
            if pongs > before {
                self.awaiting_pong = None;
                self.answered += 1;
            } else if now >= deadline {
                self.awaiting_pong = None;
                self.next_ping = None;
                return Some(Action::Fail(TimerError::PongTimeout {
                    timeout: self.config.pong_timeout,
                    successful: self.answered,
                }));
            }
        }
        if let (Some(at), Some(interval)) = (self.next_ping, self.config.ping_interval)
            && now >= at
        {
            self.next_ping = now.checked_add(interval);
            if self.awaiting_pong.is_none() {
                // A deadline past the end of time: the pong timeout never fires.
                let deadline = now.checked_add(self.config.pong_timeout);
                if let Some(d) = deadline {
                    self.awaiting_pong = Some((d, pongs));
                }
                return Some(Action::SendPing);
            }
        }
        if let Some(d) = self.close_deadline
            && now >= d
        {
            self.close_deadline = None;
            return Some(if peer_closed {
                Action::CloseConnection
            } else {
                Action::Fail(TimerError::CloseTimeout(
                    self.config.close_timeout.unwrap_or_default(),
                ))
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timers(ping: Option<u64>, pong: u64, close: Option<u64>) -> (Timers, Instant) {
        let t0 = Instant::now();
        let config = TimerConfig {
            ping_interval: ping.map(Duration::from_secs),
            pong_timeout: Duration::from_secs(pong),
            close_timeout: close.map(Duration::from_secs),
        };
        (Timers::new(config, t0), t0)
    }

    #[test]
    fn nothing_to_do_without_pings_or_close() {
        let (mut t, t0) = timers(None, 10, Some(60));
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.poll(t0 + 1000 * S, 0, false), None);
    }

    #[test]
    fn pings_on_schedule_and_counts_answers() {
        let (mut t, t0) = timers(Some(5), 5, None);
        assert_eq!(t.next_deadline(), Some(t0 + 5 * S));
        assert_eq!(t.poll(t0 + 4 * S, 0, false), None);
        assert_eq!(t.poll(t0 + 5 * S, 0, false), Some(Action::SendPing));
        assert_eq!(t.poll(t0 + 5 * S, 0, false), None);
        // The pong arrives; the next ping goes out on schedule.
        assert_eq!(t.poll(t0 + 10 * S, 1, false), Some(Action::SendPing));
        // No pong this time: fails at the pong timeout, reporting one success.
        assert_eq!(
            t.poll(t0 + 15 * S, 1, false),
            Some(Action::Fail(TimerError::PongTimeout {
                timeout: 5 * S,
                successful: 1
            }))
        );
    }

    #[test]
    fn close_timer_runs_from_the_start_of_the_close_and_stops_pings() {
        let (mut t, t0) = timers(Some(5), 5, Some(60));
        // The driver computed the deadline once, from the start of the close at 1 s.
        t.closing(Some(t0 + 61 * S));
        // A second call (the frame written late) does not restart it.
        t.closing(Some(t0 + 90 * S));
        assert!(t.is_closing());
        assert_eq!(t.next_deadline(), Some(t0 + 61 * S));
        assert_eq!(t.poll(t0 + 60 * S, 0, false), None);
        assert_eq!(
            t.poll(t0 + 61 * S, 0, false),
            Some(Action::Fail(TimerError::CloseTimeout(60 * S)))
        );
        assert_eq!(t.poll(t0 + 62 * S, 0, false), None);
    }

    #[test]
    fn close_timer_after_peer_close_closes_the_connection() {
        let (mut t, t0) = timers(None, 5, Some(2));
        t.closing(Some(t0 + 2 * S));
        assert_eq!(t.poll(t0 + 2 * S, 0, true), Some(Action::CloseConnection));
    }

    #[test]
    fn huge_durations_never_fire_and_never_overflow() {
        let t0 = Instant::now();
        let config = TimerConfig {
            ping_interval: Some(Duration::MAX),
            pong_timeout: Duration::MAX,
            close_timeout: Some(Duration::MAX),
        };
        let mut t = Timers::new(config, t0);
        assert_eq!(t.next_deadline(), None);
        // A close deadline past the end of time is none.
        t.closing(None);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.poll(t0 + 1000 * S, 0, false), None);
    }

    #[test]
    fn a_held_pong_timeout_restarts_from_the_hold() {
        let t0 = Instant::now();
        let mut t = Timers::new(
            TimerConfig {
                ping_interval: Some(S * 5),
                pong_timeout: S * 5,
                close_timeout: None,
            },
            t0,
        );
        assert_eq!(t.poll(t0 + 5 * S, 0, false), Some(Action::SendPing));
        // Reading paused from 7 s to 15 s: no pong can be seen, and none fails the socket.
        t.hold_pong_timeout(t0 + 7 * S);
        assert_eq!(t.poll(t0 + 10 * S, 0, false), None);
        t.hold_pong_timeout(t0 + 11 * S);
        assert_eq!(t.poll(t0 + 15 * S, 0, false), None);
        // Reading resumed at 15 s and the pong that waited in the socket is read.
        assert_eq!(t.poll(t0 + 16 * S, 1, false), None);
        assert_eq!(t.next_deadline(), Some(t0 + 20 * S));
    }
}
