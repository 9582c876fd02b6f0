//! The writer thread: a loop over the socket's [`Outbox`](super::Outbox) and its session's timers.
//!
//! Each round it writes a batch ([`Outbox::step`](super::Outbox::step)), tells the
//! session when our close frame is on the wire, runs the timers the session owns (pings, the
//! pong timeout, the close deadline) and carries out what they decide, then parks until a
//! sender wakes it or the next deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CloseMark, Stop, WriterState};
use crate::driver::socket::{FAIL_LINGER, Socket};
use crate::proto::session::Action;

/// Runs the writer of `socket` until the socket ends.
pub(crate) fn run(socket: Arc<Socket>, mut writer_state: WriterState, write_timeout: Duration) {
    let outbox = &socket.outbox;
    loop {
        let progress = match outbox.step(&mut writer_state) {
            Ok(p) => p,
            Err(Stop::Ending) => break,
            Err(Stop::Write(e)) => {
                socket.write_failed(e, write_timeout);
                break;
            }
            Err(Stop::Encode(e)) => {
                socket.fail(e);
                break;
            }
        };
        match progress.close {
            CloseMark::None => {}
            CloseMark::Close => {
                if socket.with_session(|s| s.close_written()) {
                    // The peer's close came first: this side ends TCP now (RFC 6455 §7.1.1).
                    outbox.finish_output();
                }
            }
            CloseMark::FailClose => {
                // After a failure close, a FIN: the reader lingers for the peer's, within
                // the same bound whichever thread failed the socket.
                outbox.finish_output();
                socket.linger_for_reader(FAIL_LINGER);
                break;
            }
        }
        let Ok((deadline, pinged)) = run_timers(&socket) else {
            break;
        };
        // A ping just staged goes out with the next round.
        if progress.idle && !pinged {
            let deadline = [deadline, outbox.shrink_deadline(&writer_state)]
                .into_iter()
                .flatten()
                .min();
            outbox.park(&writer_state, deadline);
        }
    }
    outbox.clear();
    log::debug!("writer for {} exits", socket.request.shown_url());
}

/// The socket is ending: the writer stops.
struct Exit;

/// Runs the session's timers up to now and carries out what they decide. Returns the next
/// deadline, and whether a ping was staged.
fn run_timers(socket: &Socket) -> Result<(Option<Instant>, bool), Exit> {
    let now = Instant::now();
    let paused = socket.pause.is_paused();
    let mut pinged = false;
    loop {
        let action = socket.with_session(|s| {
            if s.next_deadline().is_none_or(|d| now < d) {
                return None;
            }
            s.poll(now, paused)
        });
        match action {
            None => return Ok((socket.with_session(|s| s.next_deadline()), pinged)),
            Some(Action::SendPing) => {
                let mut token = [0u8; 8];
                crate::proto::mask::fill_random(&mut token);
                socket.with_session(|s| s.ping_sent(token, now));
                // Written with the next round, ahead of any data.
                socket.outbox.ping(token);
                pinged = true;
            }
            Some(Action::Fail) => {
                // The session recorded the failure; the reader reports it once it sees the
                // connection shut down.
                socket.failed_here();
                return Err(Exit);
            }
            Some(Action::EndTcp) => {
                // The close handshake is complete; the peer just kept TCP open. Close it in
                // order (close_notify under TLS), then for good.
                socket.outbox.finish_output();
                socket.shut_down();
                return Err(Exit);
            }
        }
    }
}
