//! The socket's end, on the reader thread: after the peer's close, after a failure (a close
//! frame and a linger, so it is not lost to a reset), and the terminal callback, which is the
//! session's verdict.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::Reader;
use crate::config::Config;
use crate::driver::callbacks::{Callbacks, NoCallbacks};
use crate::driver::clock::deadline_after;
use crate::driver::socket::{FAIL_LINGER, Socket};
use crate::driver::transport::ReadHalf;
use crate::error::Error;
use crate::panics;
use crate::proto::Role;
use crate::proto::session::Cause;

impl Reader {
    /// After the peer's close: wait for the connection to end (the writer's close deadline
    /// bounds the wait; a cancel ends it at once), then end.
    pub(super) fn closing(&mut self, read: &mut ReadHalf) -> Cause {
        read.drain_until_eof(None);
        Cause::PeerClosed
    }

    /// Fails the connection with a close frame behind what is queued, and lingers for the
    /// peer to close TCP, so the frame is not destroyed by a reset. Something else may have
    /// failed first (a cancel that cut the stream mid-frame): that is what is reported.
    pub(super) fn fail_with_close_cause(&mut self, read: &mut ReadHalf, error: Error) -> Cause {
        log::debug!("failing connection: {error}");
        if self.socket().fail_with_close(error) {
            read.drain_until_eof(Some(deadline_after(FAIL_LINGER)));
        }
        Cause::Dropped(None)
    }

    /// Another thread failed the socket (a cancel, a timer, a streamed send's source, a
    /// `Connection` refusing a message whole): if that queued a failure close, linger as
    /// [`fail_with_close_cause`](Self::fail_with_close_cause) does, so the writer gets the
    /// frame out before the connection is taken away.
    pub(super) fn failed_elsewhere(&mut self, read: &mut ReadHalf) -> Cause {
        if self.socket().with_session(|s| s.close_frame_pending()) {
            read.drain_until_eof(Some(deadline_after(FAIL_LINGER)));
        }
        Cause::Dropped(None)
    }

    pub(super) fn fail_with_close(&mut self, read: &mut ReadHalf, error: Error) {
        let cause = self.fail_with_close_cause(read, error);
        self.finish(cause)
    }

    /// Ends the socket: the session decides how, the connection is closed, the writer
    /// stopped, the terminal callback delivered, the listener dropped.
    pub(in crate::driver) fn finish(&mut self, cause: Cause) {
        let socket = self.socket.clone();
        socket.outbox.seal();
        let ended = socket.with_session(|s| s.end(cause));
        if ended.is_clean() {
            // An orderly end: close_notify under TLS (the server's FIN has already come, on
            // the client) before the connection is shut down for good. Whatever the peer did
            // not take after its close is gone with the connection: `queue_size()` is 0.
            socket.outbox.finish_output();
            socket.outbox.settle();
        }
        socket.outbox.wake_waiters();
        socket.detach();
        // Before the terminal callback: in it, the socket is in no topic any more.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| socket.run_end_hooks())) {
            log::error!("a socket's end hook: {}", panics::message(&*p));
        }
        // The writer stops while the terminal callback runs: nothing can be sent any more
        // (the gate is sealed, the connection shut down), so it need not be waited for first.
        socket.outbox.stop();
        log::debug!("ended: {ended}");
        let callbacks = &mut *self.callbacks;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| callbacks.ended(ended))) {
            log::error!("terminal listener callback: {}", panics::message(&*p));
        }
        // The listener (and whatever it holds, such as a channel's sender) goes before the
        // socket counts as finished; the thread itself goes back to the pool. Its `Drop` is
        // application code: a panic there must not keep the socket from finishing, or
        // `wait_finished` and `Server::stop` would wait for ever.
        let callbacks = std::mem::replace(&mut self.callbacks, Box::new(NoCallbacks));
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(callbacks))) {
            log::error!("the listener's drop panicked: {}", panics::message(&*p));
        }
        // The writer, stopped above, finishes the socket if it is still on its way out.
        socket.reader_done();
    }
}

/// Ends a socket whose reader thread never started: the listener still hears exactly one
/// terminal callback, on the calling thread.
pub(in crate::driver) fn fail_unstarted(
    socket: Arc<Socket>,
    callbacks: Box<dyn Callbacks>,
    role: Role,
    config: &Config,
    error: Error,
) {
    socket.enter_reader();
    let mut reader = Reader::new(socket, callbacks, role, config);
    reader.finish(Cause::Failed(error, None));
}
