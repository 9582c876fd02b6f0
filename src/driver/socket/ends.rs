//! The rendezvous of a socket's ends: its reader and its writer each say when they are done,
//! and whichever is done last finishes the socket, so neither waits for the other. Whoever
//! waits for the socket to finish (`stop`, `wait_finished`) waits here.

use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::waiting::wait_until;

#[derive(Default)]
pub(crate) struct Ends {
    state: Mutex<State>,
    finished_cv: Condvar,
}

#[derive(Default)]
struct State {
    /// The writer's job is running.
    writer_running: bool,
    /// The reader is done: terminal callback delivered, listener dropped.
    reader_done: bool,
    /// Both are done, and the write side is freed.
    finished: bool,
}

impl Ends {
    /// The writer's job is about to start.
    pub(crate) fn writer_started(&self) {
        self.state.lock().writer_running = true;
    }

    /// The reader is done; returns whether it is the last, to finish the socket.
    pub(crate) fn reader_done(&self) -> bool {
        let mut state = self.state.lock();
        state.reader_done = true;
        // A writer lingering for the reader (`wait_reader_done`) looks again.
        self.finished_cv.notify_all();
        !state.writer_running
    }

    /// Waits until the reader is done or `deadline`. Returns whether it is done.
    pub(crate) fn wait_reader_done(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock();
        wait_until(&self.finished_cv, &mut state, Some(deadline), |s| {
            s.reader_done
        })
    }

    /// The writer's job has ended (or never started); returns whether it is the last, to
    /// finish the socket.
    pub(crate) fn writer_exited(&self) -> bool {
        let mut state = self.state.lock();
        state.writer_running = false;
        state.reader_done
    }

    /// The socket is finished: wakes whoever waits for it.
    pub(crate) fn finish(&self) {
        self.state.lock().finished = true;
        self.finished_cv.notify_all();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.lock().finished
    }

    /// Waits until finished or `deadline` (`None`: forever). Returns whether it finished.
    pub(crate) fn wait_finished(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        wait_until(&self.finished_cv, &mut state, deadline, |s| s.finished)
    }
}
