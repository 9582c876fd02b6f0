//! The writer thread: a loop over the socket's [`Outbox`](super::outbox::Outbox) and its
//! session's timers.
//!
//! Each round it writes a batch ([`Outbox::step`](super::outbox::Outbox::step)), tells the
//! session when our close frame is on the wire, runs the timers the session owns (pings, the
//! pong timeout, the close deadline) and carries out what they decide, then parks until a
//! sender wakes it or the next deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outbox::{CloseMark, Inbox, Stop};
use super::shared::Shared;
use crate::proto::session::Action;

/// Runs the writer of `shared` until the socket ends.
pub(crate) fn run(shared: Arc<Shared>, mut inbox: Inbox, write_timeout: Duration) {
    let outbox = &shared.outbox;
    loop {
        let progress = match outbox.step(&mut inbox) {
            Ok(p) => p,
            Err(Stop::Ending) => break,
            Err(Stop::Write(e)) => {
                shared.write_failed(e, write_timeout);
                break;
            }
            Err(Stop::Encode(e)) => {
                shared.fail(e);
                break;
            }
        };
        match progress.close {
            CloseMark::None => {}
            CloseMark::Close => {
                if shared.with_session(|s| s.close_written()) {
                    // The peer's close came first: this side ends TCP now (RFC 6455 §7.1.1).
                    outbox.finish_output();
                }
            }
            CloseMark::FailClose => {
                // After a failure close, a FIN: the reader lingers for the peer's.
                outbox.finish_output();
                break;
            }
        }
        let Ok((deadline, pinged)) = run_timers(&shared) else {
            break;
        };
        // A ping just staged goes out with the next round.
        if progress.idle && !pinged {
            let deadline = [deadline, outbox.shrink_deadline(&inbox)]
                .into_iter()
                .flatten()
                .min();
            outbox.park(&inbox, deadline);
        }
    }
    outbox.clear();
    log::debug!("writer for {} exits", shared.request.shown_url());
}

/// The socket is ending: the writer stops.
struct Exit;

/// Runs the session's timers up to now and carries out what they decide. Returns the next
/// deadline, and whether a ping was staged.
fn run_timers(shared: &Shared) -> Result<(Option<Instant>, bool), Exit> {
    let now = Instant::now();
    let paused = shared
        .reading_paused
        .load(std::sync::atomic::Ordering::Acquire);
    let mut pinged = false;
    loop {
        let action = shared.with_session(|s| {
            if s.next_deadline().is_none_or(|d| now < d) {
                return None;
            }
            s.poll(now, paused)
        });
        match action {
            None => return Ok((shared.with_session(|s| s.next_deadline()), pinged)),
            Some(Action::SendPing) => {
                let mut token = [0u8; 8];
                crate::proto::mask::fill_random(&mut token);
                shared.with_session(|s| s.ping_sent(token, now));
                // Written with the next round, ahead of any data.
                shared.outbox.ping(token);
                pinged = true;
            }
            Some(Action::Fail) => {
                // The session recorded the failure; the reader reports it once it sees the
                // connection shut down.
                shared.failed_here();
                return Err(Exit);
            }
            Some(Action::EndTcp) => {
                // The close handshake is complete; the peer just kept TCP open. Close it in
                // order (close_notify under TLS), then for good.
                shared.outbox.finish_output();
                shared.shutdown();
                return Err(Exit);
            }
        }
    }
}
