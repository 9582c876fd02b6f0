//! A socket's lifecycle as a sans-I/O state machine: its state, the close handshake, who ends
//! TCP, the first failure, the timers, and how the socket ended.
//!
//! The driver owns one `Session` per socket, behind the socket's state lock, and feeds it what
//! happens: the handshake is done, our close is queued or written, the peer's close arrived, a
//! pong came, a failure or a cancel, the end of the connection, and the time (`Instant`s, for
//! the timers). The session answers with decisions: the deadline of the close, whether to end
//! TCP now (RFC 6455 §7.1.1), a ping to send or a failure from a timer ([`Action`]), when to
//! look again ([`next_deadline`](Session::next_deadline)), and in the end, once, how the
//! socket ended ([`Ended`]). It does no I/O, takes no lock and reads no clock, so every
//! interleaving the threads can produce is a unit test with made-up instants below.
//!
//! ```text
//!  Connecting ──opened──▶ Open ──close() or peer close──▶ Closing ──end(Closed)──▶ Closed
//!      │                   │                                │
//!      └── failure / cancel / end(Failed) ──────────────────┴────────────────────▶ Canceled
//! ```

use std::time::{Duration, Instant};

use super::Role;
use super::close::CloseFrame;
use super::timers::{Action as TimerAction, TimerConfig, Timers};
use crate::ended::Ended;
use crate::error::Error;
use crate::response::Response;

/// Where a socket is in its life (OkHttp's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The handshake is in progress; messages may be queued already.
    Connecting,
    /// The handshake succeeded; messages flow both ways.
    Open,
    /// A close frame was sent or received; queued messages still go out, `send` refuses new
    /// ones once our close is queued.
    Closing,
    /// Both close frames were exchanged and the connection is closed.
    Closed,
    /// The socket failed or was canceled; queued messages may not have been sent.
    Canceled,
}

/// What a timer asks the driver to do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write a ping, then report its payload with [`Session::ping_sent`].
    SendPing,
    /// A timer failed the socket (pong or close timeout): the failure is recorded; shut the
    /// connection down so the reader sees it.
    Fail,
    /// The close handshake is complete but the peer keeps TCP open: end it ourselves (in
    /// order, close_notify under TLS, then for good).
    EndTcp,
}

/// Why the reader is ending the socket; [`Session::end`] turns it into the terminal
/// [`Ended`].
#[derive(Debug)]
pub(crate) enum Cause {
    /// The peer's close arrived and the connection then ended.
    PeerClosed,
    /// The connection ended (EOF, or a read error) without a close frame from the peer.
    Dropped(Option<Error>),
    /// The socket failed on the reader's side: the handshake, a protocol violation, a
    /// panicking listener.
    Failed(Error, Option<Box<Response>>),
}

/// How far our close frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OurClose {
    None,
    /// Queued behind what was sent before it.
    Queued,
    /// On the wire.
    Written,
}

/// Application pings awaiting their pong that a session remembers (older ones are forgotten).
pub(crate) const MAX_APP_PINGS: usize = 16;

/// One socket's lifecycle.
#[derive(Debug)]
pub(crate) struct Session {
    role: Role,
    /// Whether the connection is TLS (known once open), which decides who ends TCP.
    tls: bool,
    state: State,
    ours: OurClose,
    /// The peer's close frame, once read.
    peer: Option<CloseFrame>,
    /// Whether the peer's close came before ours was queued.
    peer_first: bool,
    /// The first failure (or cancel), until [`end`](Self::end) reports it.
    failure: Option<Error>,
    /// The close deadline, decided once when the close starts: `None` until then,
    /// `Some(None)` for a close that may take for ever.
    close_deadline: Option<Option<Instant>>,
    /// TCP's end has been decided (so it is decided once).
    tcp_ending: bool,
    config: TimerConfig,
    /// The keepalive and close timers, from the moment the socket opens.
    timers: Option<Timers>,
    /// The payload of our latest ping and when it was sent: only a pong that echoes it is an
    /// answer, and the time between them is a round trip.
    ping_token: Option<([u8; 8], Instant)>,
    /// The round trip the latest answer took. (Pings sent are counted by the encoder, with
    /// their frames.)
    last_rtt: Option<std::time::Duration>,
    /// Pongs that answered our pings.
    pongs: u64,
    /// The application's own pings (`WebSocket::ping`) not answered yet, oldest first, at
    /// most [`MAX_APP_PINGS`]: a pong that echoes one gives its round trip.
    app_pings: std::collections::VecDeque<(Vec<u8>, Instant)>,
    /// `cancel()` was called while the socket was live.
    canceled: bool,
}

impl Session {
    /// A socket that is connecting.
    pub(crate) fn new(role: Role, config: TimerConfig) -> Session {
        Session {
            role,
            tls: false,
            state: State::Connecting,
            ours: OurClose::None,
            peer: None,
            peer_first: false,
            failure: None,
            close_deadline: None,
            tcp_ending: false,
            config,
            timers: None,
            ping_token: None,
            last_rtt: None,
            pongs: 0,
            app_pings: std::collections::VecDeque::new(),
            canceled: false,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Whether the socket has ended (its terminal outcome is decided) or a failure or cancel
    /// is recorded: no callback but the terminal one may run.
    pub(crate) fn is_failing(&self) -> bool {
        self.failure.is_some() || matches!(self.state, State::Closed | State::Canceled)
    }

    /// The handshake succeeded at `now`, over TLS or not. `Err` if a failure or cancel came
    /// first: the reader then ends the socket.
    pub(crate) fn opened(&mut self, now: Instant, tls: bool) -> Result<(), ()> {
        if self.is_failing() {
            return Err(());
        }
        self.tls = tls;
        self.state = if self.ours == OurClose::None {
            State::Open
        } else {
            State::Closing
        };
        let mut timers = Timers::new(self.config, now);
        if let Some(deadline) = self.close_deadline {
            timers.closing(deadline);
        }
        self.timers = Some(timers);
        Ok(())
    }

    /// Our close frame is being queued at `now`: `close()`, the 1001 close of a full send
    /// queue, or our answer to the peer's close. Returns the close deadline (`None` inside:
    /// never), or `None` if the socket has ended and nothing may be queued. The deadline is
    /// decided by the first close only.
    pub(crate) fn close(&mut self, now: Instant) -> Option<Option<Instant>> {
        if matches!(self.state, State::Closed | State::Canceled) {
            return None;
        }
        if self.ours == OurClose::None {
            self.ours = OurClose::Queued;
            self.peer_first = self.peer.is_some();
        }
        if self.state == State::Open {
            self.state = State::Closing;
        }
        Some(self.start_close_clock(now))
    }

    /// The reader found a violation (`error`) to fail the connection with a close frame:
    /// returns the code to send and records the failure, or `None` if another failure came
    /// first (it is the one reported, and no close frame is sent).
    pub(crate) fn fail_with_close(&mut self, error: Error, now: Instant) -> Option<u16> {
        if self.is_failing() {
            return None;
        }
        let code = error.close_code().unwrap_or(1011);
        self.failure = Some(error);
        self.state = State::Closing;
        self.ours = OurClose::Queued;
        self.start_close_clock(now);
        Some(code)
    }

    fn start_close_clock(&mut self, now: Instant) -> Option<Instant> {
        let timeout = self.config.close_timeout;
        let deadline = *self
            .close_deadline
            .get_or_insert_with(|| timeout.and_then(|t| now.checked_add(t)));
        if let Some(timers) = &mut self.timers {
            timers.closing(deadline);
        }
        deadline
    }

    /// The close timeout in force, for the error a close cut off by it reports.
    pub(crate) fn close_timeout(&self) -> Option<std::time::Duration> {
        self.config.close_timeout
    }

    /// The close deadline, once the close has started (`Some(None)`: never).
    pub(crate) fn close_deadline(&self) -> Option<Option<Instant>> {
        self.close_deadline
    }

    /// A failure found off the reader (a write, a timer): records it unless one came first or
    /// the socket has ended. Returns whether it was recorded; the driver then shuts the
    /// connection down so the reader sees it.
    pub(crate) fn fail(&mut self, error: Error) -> bool {
        if self.is_failing() {
            return false;
        }
        self.failure = Some(error);
        true
    }

    /// `cancel()`: the socket is `Canceled` at once, unless it has ended. Returns whether this
    /// call canceled it.
    pub(crate) fn cancel(&mut self) -> bool {
        if matches!(self.state, State::Closed | State::Canceled) {
            return false;
        }
        if self.failure.is_none() {
            self.failure = Some(Error::Canceled);
        }
        self.state = State::Canceled;
        self.canceled = true;
        true
    }

    /// A failure close is queued or on the wire (`fail_with_close`, from any thread): the
    /// connection should stay up a moment for it to reach the peer.
    pub(crate) fn close_frame_pending(&self) -> bool {
        self.failure.is_some() && self.ours != OurClose::None && self.state != State::Canceled
    }

    /// The first failure recorded (a cancel included), if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.failure.clone()
    }

    /// Whether `cancel()` ended (or is ending) the socket.
    #[cfg(feature = "testing")]
    pub(crate) fn was_canceled(&self) -> bool {
        self.canceled
    }

    /// The peer's close frame arrived. Returns whether to end TCP now: our close is already
    /// on the wire and this side ends first.
    pub(crate) fn peer_closed(&mut self, frame: CloseFrame) -> bool {
        self.peer = Some(frame);
        if matches!(self.state, State::Open | State::Connecting) {
            self.state = State::Closing;
        }
        self.ours == OurClose::Written && self.end_tcp_once()
    }

    /// Whether the peer sent the first close frame (before ours was queued).
    pub(crate) fn closed_by_peer(&self) -> bool {
        self.peer.is_some() && (self.peer_first || self.ours == OurClose::None)
    }

    /// Whether the peer's close frame has arrived.
    pub(crate) fn peer_has_closed(&self) -> bool {
        self.peer.is_some()
    }

    /// Our close frame is on the wire. Returns whether to end TCP now: the peer's close came
    /// first and this side ends first.
    pub(crate) fn close_written(&mut self) -> bool {
        self.ours = OurClose::Written;
        self.peer.is_some() && self.end_tcp_once()
    }

    /// Whether this side ends TCP once both close frames are out, at most once. The server
    /// does (RFC 6455 §7.1.1). Under TLS the client does too, with close_notify: TLS cannot
    /// half-close, so TLS servers (Python `websockets`, for one) wait for the client to end
    /// the session, and a client that waited for them would wait out their close timeout.
    /// The RFC lets the client close "at any time after sending and receiving a close
    /// message".
    fn end_tcp_once(&mut self) -> bool {
        let ends_first = self.role == Role::Server || self.tls;
        if !ends_first || self.tcp_ending {
            return false;
        }
        self.tcp_ending = true;
        true
    }

    /// A pong arrived at `now`: it answers a ping of ours only if it echoes its payload (then
    /// the time since that ping is a round trip, returned). Our keepalive ping's answer also
    /// counts for the keepalive; an application ping's answer only gives its round trip. An
    /// unsolicited pong (RFC 6455 §5.5.3 allows them, as a heartbeat) proves nothing.
    pub(crate) fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        if let Some((token, sent)) = self.ping_token
            && payload == token
        {
            let rtt = now.saturating_duration_since(sent);
            self.pongs = self.pongs.saturating_add(1);
            self.last_rtt = Some(rtt);
            // One answer per ping: a repeated pong measures nothing.
            self.ping_token = None;
            return Some(rtt);
        }
        let i = self.app_pings.iter().position(|(p, _)| p == payload)?;
        let (_, sent) = self.app_pings.remove(i)?;
        let rtt = now.saturating_duration_since(sent);
        self.pongs = self.pongs.saturating_add(1);
        self.last_rtt = Some(rtt);
        Some(rtt)
    }

    /// The application sent a ping with `payload` at `now` (`WebSocket::ping`): its pong will
    /// give a round trip. Past [`MAX_APP_PINGS`] unanswered, the oldest is forgotten (its pong
    /// then comes without one), so a peer that never answers costs nothing that grows.
    pub(crate) fn app_ping_sent(&mut self, payload: Vec<u8>, now: Instant) {
        if self.app_pings.len() >= MAX_APP_PINGS {
            self.app_pings.pop_front();
        }
        self.app_pings.push_back((payload, now));
    }

    /// The ping [`Action::SendPing`] asked for carries `token`, sent at `now`.
    pub(crate) fn ping_sent(&mut self, token: [u8; 8], now: Instant) {
        self.ping_token = Some((token, now));
    }

    /// Pongs that answered our pings, and the last round trip.
    pub(crate) fn pong_stats(&self) -> (u64, Option<std::time::Duration>) {
        (self.pongs, self.last_rtt)
    }

    /// Advances the timers to `now`; `reading_paused`: the reader reads nothing (a full
    /// pull-API channel), so no pong can arrive and the pong timeout is held. Call again until
    /// it returns `None`.
    pub(crate) fn poll(&mut self, now: Instant, reading_paused: bool) -> Option<Action> {
        let peer_closed = self.peer.is_some();
        let timers = self.timers.as_mut()?;
        if reading_paused {
            timers.hold_pong_timeout(now);
        }
        match timers.poll(now, self.pongs, peer_closed)? {
            TimerAction::SendPing => {
                if self.ours == OurClose::None {
                    Some(Action::SendPing)
                } else {
                    // Our close is queued: nothing may follow it.
                    None
                }
            }
            TimerAction::Fail(e) => {
                self.fail(e.into());
                Some(Action::Fail)
            }
            TimerAction::CloseConnection => {
                self.tcp_ending = true;
                Some(Action::EndTcp)
            }
        }
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.as_ref().and_then(Timers::next_deadline)
    }

    /// Ends the socket, once: decides how it ended. The first failure recorded (a cancel
    /// included) wins over `cause`, so a cancel that came before this call is reported even if
    /// the reader had seen a clean close; a cancel after it finds the socket ended.
    pub(crate) fn end(&mut self, cause: Cause) -> Ended {
        // Kept: a streamed send that ends with the socket says why (`failure`).
        let recorded = self.failure.clone();
        let ended = match (cause, recorded) {
            (_, Some(error)) => Ended::Failed {
                error,
                response: None,
            },
            (Cause::PeerClosed, None) => match &self.peer {
                Some(frame) => Ended::Closed {
                    code: frame.reported_code(),
                    reason: frame.reason.clone(),
                    by_peer: self.closed_by_peer(),
                },
                None => Ended::Failed {
                    error: Error::UnexpectedEof,
                    response: None,
                },
            },
            (Cause::Dropped(error), None) => Ended::Failed {
                error: error.unwrap_or(Error::UnexpectedEof),
                response: None,
            },
            (Cause::Failed(error, response), None) => Ended::Failed { error, response },
        };
        self.state = if ended.is_clean() {
            State::Closed
        } else {
            State::Canceled
        };
        self.timers = None;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    fn config(ping: Option<u64>, pong: u64, close: Option<u64>) -> TimerConfig {
        TimerConfig {
            ping_interval: ping.map(Duration::from_secs),
            pong_timeout: Duration::from_secs(pong),
            close_timeout: close.map(Duration::from_secs),
        }
    }

    fn open(role: Role, tls: bool) -> (Session, Instant) {
        let t0 = Instant::now();
        let mut s = Session::new(role, config(None, 5, Some(60)));
        assert_eq!(s.state(), State::Connecting);
        s.opened(t0, tls).unwrap();
        assert_eq!(s.state(), State::Open);
        (s, t0)
    }

    fn frame(code: u16, reason: &str) -> CloseFrame {
        CloseFrame {
            code: Some(code),
            reason: reason.into(),
        }
    }

    #[test]
    fn we_close_first_the_client_waits_for_the_server_to_end_tcp() {
        let (mut s, t0) = open(Role::Client, false);
        assert_eq!(s.close(t0), Some(Some(t0 + 60 * S)));
        assert_eq!(s.state(), State::Closing);
        assert!(!s.close_written(), "nothing to end yet");
        // The server's answer: a plain client leaves the end of TCP to the server.
        assert!(!s.peer_closed(frame(1000, "bye")));
        let ended = s.end(Cause::PeerClosed);
        assert!(matches!(
            ended,
            Ended::Closed { code: 1000, ref reason, by_peer: false } if reason == "bye"
        ));
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn the_server_and_a_tls_client_end_tcp_once_both_closes_are_out() {
        for (role, tls) in [(Role::Server, false), (Role::Client, true)] {
            // Our close first, the peer's after.
            let (mut s, t0) = open(role, tls);
            s.close(t0);
            assert!(!s.close_written());
            assert!(s.peer_closed(frame(1000, "")), "{role:?} tls {tls}");
            // The peer's close first, our answer after.
            let (mut s, t0) = open(role, tls);
            assert!(!s.peer_closed(frame(1001, "")));
            s.close(t0);
            assert!(s.close_written(), "{role:?} tls {tls}");
            // Decided once: the timer's end of TCP after it does nothing more.
            assert!(!s.close_written());
            let ended = s.end(Cause::PeerClosed);
            assert!(matches!(
                ended,
                Ended::Closed {
                    code: 1001,
                    by_peer: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn the_close_deadline_is_decided_once_from_the_start_of_the_close() {
        let (mut s, t0) = open(Role::Client, false);
        assert_eq!(s.close_deadline(), None);
        s.close(t0 + S);
        // Our answer to the peer's close, or a frame written late: the deadline stays.
        s.close(t0 + 30 * S);
        assert!(!s.close_written());
        assert_eq!(s.close_deadline(), Some(Some(t0 + 61 * S)));
        assert_eq!(s.next_deadline(), Some(t0 + 61 * S));
        assert_eq!(s.poll(t0 + 60 * S, false), None);
        assert_eq!(s.poll(t0 + 61 * S, false), Some(Action::Fail));
        let ended = s.end(Cause::Dropped(None));
        assert!(matches!(
            ended,
            Ended::Failed { error: Error::CloseTimeout(t), .. } if t == 60 * S
        ));
    }

    #[test]
    fn a_close_queued_while_connecting_starts_the_clock_before_the_timers_exist() {
        let t0 = Instant::now();
        let mut s = Session::new(Role::Client, config(Some(5), 5, Some(10)));
        assert_eq!(s.close(t0), Some(Some(t0 + 10 * S)));
        assert_eq!(s.state(), State::Connecting);
        s.opened(t0 + 3 * S, false).unwrap();
        assert_eq!(s.state(), State::Closing);
        // No keepalive once closing; the deadline counts from the close, not the open.
        assert_eq!(s.next_deadline(), Some(t0 + 10 * S));
    }

    #[test]
    fn after_the_peers_close_the_close_timer_ends_tcp_and_the_close_is_clean() {
        let (mut s, t0) = open(Role::Client, false);
        s.peer_closed(frame(1000, ""));
        s.close(t0);
        assert!(!s.close_written());
        // The server keeps TCP open past the close timeout: the client ends it itself.
        assert_eq!(s.poll(t0 + 60 * S, false), Some(Action::EndTcp));
        assert!(matches!(s.end(Cause::PeerClosed), Ended::Closed { .. }));
    }

    #[test]
    fn a_cancel_before_the_end_wins_over_a_clean_close_and_one_after_it_is_a_no_op() {
        let (mut s, t0) = open(Role::Client, false);
        s.close(t0);
        s.close_written();
        s.peer_closed(frame(1000, ""));
        assert!(s.cancel());
        assert_eq!(s.state(), State::Canceled);
        assert!(s.is_failing());
        assert!(matches!(
            s.end(Cause::PeerClosed),
            Ended::Failed {
                error: Error::Canceled,
                ..
            }
        ));
        // And once ended cleanly, a cancel changes nothing.
        let (mut s, t0) = open(Role::Client, false);
        s.close(t0);
        s.peer_closed(frame(1000, ""));
        assert!(s.end(Cause::PeerClosed).is_clean());
        assert!(!s.cancel());
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.close(t0), None, "nothing may be queued once ended");
    }

    #[test]
    fn the_first_failure_is_the_one_reported() {
        let (mut s, t0) = open(Role::Server, false);
        assert!(s.fail(Error::WriteTimeout(S)));
        assert!(!s.fail(Error::UnexpectedEof));
        assert_eq!(s.fail_with_close(Error::InvalidUtf8, t0), None);
        assert!(matches!(
            s.end(Cause::Dropped(Some(Error::UnexpectedEof))),
            Ended::Failed {
                error: Error::WriteTimeout(_),
                ..
            }
        ));
        // A violation with nothing before it: its close code, and it is what is reported.
        let (mut s, t0) = open(Role::Server, false);
        assert_eq!(s.fail_with_close(Error::InvalidUtf8, t0), Some(1007));
        assert_eq!(s.state(), State::Closing);
        assert_eq!(s.close_deadline(), Some(Some(t0 + 60 * S)));
        assert!(
            s.opened(t0, false).is_err(),
            "a failing socket does not open"
        );
        assert!(matches!(
            s.end(Cause::Dropped(None)),
            Ended::Failed {
                error: Error::InvalidUtf8,
                ..
            }
        ));
        assert_eq!(s.state(), State::Canceled);
    }

    #[test]
    fn a_dropped_connection_is_an_unexpected_eof_unless_the_read_said_why() {
        let (mut s, _) = open(Role::Client, false);
        assert!(matches!(
            s.end(Cause::Dropped(None)),
            Ended::Failed {
                error: Error::UnexpectedEof,
                ..
            }
        ));
        let (mut s, _) = open(Role::Client, false);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            s.end(Cause::Dropped(Some(Error::from(io)))),
            Ended::Failed {
                error: Error::Io(_),
                ..
            }
        ));
    }

    #[test]
    fn only_a_pong_that_echoes_our_ping_is_an_answer() {
        let t0 = Instant::now();
        let mut s = Session::new(Role::Server, config(Some(5), 5, None));
        s.opened(t0, false).unwrap();
        // An unsolicited pong before any ping, and one with the wrong payload, do not count.
        assert!(s.pong(&[], t0).is_none());
        assert_eq!(s.poll(t0 + 5 * S, false), Some(Action::SendPing));
        s.ping_sent([1, 2, 3, 4, 5, 6, 7, 8], t0);
        assert!(s.pong(&[], t0).is_none());
        assert!(s.pong(&[8, 7, 6, 5, 4, 3, 2, 1], t0).is_none());
        assert_eq!(s.poll(t0 + 10 * S, false), Some(Action::Fail));
        assert!(matches!(
            s.end(Cause::Dropped(None)),
            Ended::Failed {
                error: Error::PongTimeout { successful: 0, .. },
                ..
            }
        ));
        // The echo answers it; the next ping goes out on schedule.
        let mut s = Session::new(Role::Server, config(Some(5), 5, None));
        s.opened(t0, false).unwrap();
        assert_eq!(s.poll(t0 + 5 * S, false), Some(Action::SendPing));
        s.ping_sent([9; 8], t0 + 5 * S);
        let ms = Duration::from_millis(1);
        assert!(s.pong(&[9; 8], t0 + 5 * S + 200 * ms).is_some());
        // One answer per ping: a repeat neither counts nor measures.
        assert!(s.pong(&[9; 8], t0 + 5 * S + 900 * ms).is_none());
        assert_eq!(s.pong_stats(), (1, Some(200 * ms)));
        assert_eq!(s.poll(t0 + 10 * S, false), Some(Action::SendPing));
    }

    #[test]
    fn an_application_pings_pong_gives_its_round_trip_and_few_are_remembered() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut s = Session::new(Role::Client, config(None, 10, None));
        s.app_ping_sent(b"one".to_vec(), t0);
        s.app_ping_sent(b"two".to_vec(), t0 + 5 * ms);
        // Answers in any order, each once; an unknown payload gives nothing.
        assert_eq!(s.pong(b"two", t0 + 7 * ms), Some(2 * ms));
        assert_eq!(s.pong(b"two", t0 + 8 * ms), None);
        assert_eq!(s.pong(b"zzz", t0 + 8 * ms), None);
        assert_eq!(s.pong(b"one", t0 + 9 * ms), Some(9 * ms));
        assert_eq!(s.pong_stats(), (2, Some(9 * ms)));
        // A peer that never answers: only the newest MAX_APP_PINGS are remembered.
        for i in 0..MAX_APP_PINGS + 5 {
            s.app_ping_sent(i.to_string().into_bytes(), t0);
        }
        assert_eq!(s.app_pings.len(), MAX_APP_PINGS);
        assert_eq!(s.pong(b"0", t0), None);
        assert!(
            s.pong((MAX_APP_PINGS + 4).to_string().as_bytes(), t0)
                .is_some()
        );
    }

    #[test]
    fn no_ping_once_our_close_is_queued_and_the_pong_timeout_is_held_while_reading_pauses() {
        let t0 = Instant::now();
        let mut s = Session::new(Role::Client, config(Some(5), 5, None));
        s.opened(t0, false).unwrap();
        assert_eq!(s.poll(t0 + 5 * S, false), Some(Action::SendPing));
        s.ping_sent([1; 8], t0);
        // Reading is paused from 7 s: the pong cannot be read, the timeout waits.
        assert_eq!(s.poll(t0 + 10 * S, true), None);
        // The pong is read once reading resumes; the ping slot that passed meanwhile is not
        // made up, the next goes out an interval later.
        assert!(s.pong(&[1; 8], t0).is_some());
        assert_eq!(s.poll(t0 + 10 * S, false), None);
        assert_eq!(s.poll(t0 + 15 * S, false), Some(Action::SendPing));
        s.ping_sent([2; 8], t0);
        s.close(t0 + 16 * S);
        assert_eq!(s.poll(t0 + 100 * S, false), None);
    }
}
