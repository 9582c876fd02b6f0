//! The socket's lifecycle: the sans-I/O [`Session`] and the TCP connection, behind one lock,
//! and the two mirrors of what the session decided that other threads read without the lock
//! (whether it is failing, and the close deadline).
//!
//! The session is the one owner of the socket's state: every change to it goes through
//! [`Lifecycle::with`], which keeps the mirrors true before the lock is released. The caller
//! acts on what the session decided (queues a frame, shuts the connection down, calls back)
//! after.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::driver::platform;
use crate::driver::transport::CloseDeadline;
use crate::proto::session::{Session, State};

/// What the lifecycle lock guards.
#[derive(Debug)]
pub(crate) struct Core {
    pub session: Session,
    /// The connection, for `cancel`, a failure and the timers to shut it down (the same
    /// descriptor the reader and writer use).
    socket: Option<Arc<TcpStream>>,
}

impl Core {
    /// Shuts the TCP connection down both ways, which wakes a reader blocked in `read`.
    pub(crate) fn shut_down(&self) {
        if let Some(s) = &self.socket {
            platform::sockets::shut_down(s);
        }
    }

    /// Hands the lifecycle its connection, unless the session is failing (then the
    /// connection is shut down at once): returns whether it was taken.
    pub(crate) fn attach(&mut self, tcp: &Arc<TcpStream>) -> bool {
        if self.session.is_failing() {
            platform::sockets::shut_down(tcp);
            return false;
        }
        self.socket = Some(tcp.clone());
        true
    }

    /// Shuts the connection down and lets go of it: the descriptor is freed once the halves go.
    pub(crate) fn detach(&mut self) {
        self.shut_down();
        self.socket = None;
    }
}

pub(crate) struct Lifecycle {
    core: Mutex<Core>,
    /// A failure (or cancel) is recorded, or the socket ended: the session's `is_failing`,
    /// which the reader looks at before every callback without the lock.
    failed: AtomicBool,
    /// The session's close deadline, for the writer's blocking writes (which do not take the
    /// lock): they give up once it passes.
    pub close_deadline: CloseDeadline,
}

impl Lifecycle {
    pub(crate) fn new(session: Session) -> Lifecycle {
        Lifecycle {
            core: Mutex::new(Core {
                session,
                socket: None,
            }),
            failed: AtomicBool::new(false),
            close_deadline: CloseDeadline::default(),
        }
    }

    /// Runs `f` on the session and the connection, under the lock, and brings the mirrors up
    /// to date with what it decided before the lock is released.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        let mut core = self.core.lock();
        let r = f(&mut core);
        if core.session.is_failing() {
            // SeqCst: pairs with the callback gate's store-then-load (see `gate.rs`).
            self.failed.store(true, Ordering::SeqCst);
        }
        if let Some(deadline) = core.session.close_deadline() {
            let _ = self.close_deadline.set(deadline);
        }
        r
    }

    /// [`with`](Self::with), on the session alone.
    pub(crate) fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        self.with(|core| f(&mut core.session))
    }

    pub(crate) fn state(&self) -> State {
        self.core.lock().session.state()
    }

    /// Whether a failure or cancel has been recorded (or the socket ended).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// [`has_failed`](Self::has_failed), sequentially consistent: for the callback gate,
    /// whose store-then-load must not be reordered with `cancel`'s.
    pub(crate) fn has_failed_seq_cst(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}
