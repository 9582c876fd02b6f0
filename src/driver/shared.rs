//! What a socket's handle, reader thread and writer thread share: the session (the lifecycle,
//! behind one lock), the write side ([`Outbox`], lock-free on the hot path), and how far the
//! threads are in ending.
//!
//! Every change of the socket's lifecycle goes through [`Shared::with_session`]: the
//! [`Session`] decides, the caller acts on the decision once the lock is released. The session
//! is taken only by state changes (open, close, a pong, a failure, a timer, the end), never by
//! `send`.

use std::net::{SocketAddr, TcpStream};
#[cfg(feature = "testing")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::backlog::Backlog;
use super::dns::Abort;
use super::outbox::{Inbox, Outbox, SendError};
use super::platform;
use super::rest::Rest;
use super::transport::{CloseDeadline, is_stall};
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::session::{Session, State};
use crate::request::Request;
use crate::stats::{Received, Stats};
use crate::waiting::wait_until;

/// The lifecycle and the connection, behind one lock.
#[derive(Debug)]
pub(crate) struct Core {
    pub session: Session,
    /// The connection, for `cancel` and the timers to shut it down (the same descriptor the
    /// reader and writer use).
    socket: Option<Arc<TcpStream>>,
}

impl Core {
    /// Shuts the TCP connection down both ways, which wakes a reader blocked in `read`.
    fn shutdown(&self) {
        if let Some(s) = &self.socket {
            platform::sockets::shut_down(s);
        }
    }
}

/// `Shared::dispatch`: no callback in progress.
const IDLE: u8 = 0;
/// `Shared::dispatch`: the reader has committed to a callback and not yet entered it.
const DISPATCHING: u8 = 1;
/// `Shared::dispatch`: a callback is running.
const IN_CALLBACK: u8 = 2;
/// Spins before `cancel` yields its core while the reader is `DISPATCHING` (about a
/// microsecond): the window is a few instructions unless the reader thread is preempted in it.
const CANCEL_SPINS: u32 = 1024;

pub(crate) struct Shared {
    pub request: Request,
    core: Mutex<Core>,
    pub outbox: Outbox,
    /// A failure (or cancel) is recorded, or the socket ended: a mirror of the session's
    /// `is_failing`, which the reader looks at before every callback without the lock.
    failed: AtomicBool,
    /// Where the reader is with a callback other than the terminal one: `IDLE`,
    /// `DISPATCHING` (it has looked for a cancel and found none, and is about to call it) or
    /// `IN_CALLBACK`. `cancel` waits out `DISPATCHING`, so that once it returns no callback
    /// but the terminal one is entered.
    dispatch: AtomicU8,
    /// How many callbacks other than the terminal one the reader has entered; written by the
    /// reader only, before it marks itself `IN_CALLBACK`. Kept for the finality tests only.
    #[cfg(feature = "testing")]
    entered: AtomicU64,
    /// `entered` as `cancel()` saw it when it returned (`u64::MAX` until then): every callback
    /// the listener sees beyond this many is one entered after `cancel()` returned. What the
    /// finality tests check, exactly (an observer's own "did cancel return?" test at the top of
    /// a callback cannot tell a callback entered just before `cancel` returned, whose thread
    /// was then preempted, from one entered after).
    #[cfg(feature = "testing")]
    entered_at_cancel: AtomicU64,
    ends: Mutex<Ends>,
    ends_cv: Condvar,
    reader_id: Mutex<Option<ThreadId>>,
    /// The session's close deadline, published for the writer's blocking writes (which do not
    /// take the lock): they give up once it passes.
    pub close_deadline: CloseDeadline,
    /// The pull-style listener's bound on undelivered events, once it has attached it.
    pub backlog: OnceLock<Arc<Backlog>>,
    /// The reader is waiting for room in the backlog, or resting under `max_receive_rate`, and
    /// reads nothing: pongs cannot arrive.
    pub reading_paused: AtomicBool,
    /// Where the reader rests under `max_receive_rate`.
    pub rest: Rest,
    /// Fired by `cancel()`: ends a name lookup the connect is waiting for.
    pub abort: Abort,
    /// The TCP connection's (local, peer) addresses, once connected.
    pub addrs: OnceLock<(SocketAddr, SocketAddr)>,
    /// What the reader received (statistics).
    pub received: Received,
    /// When the handshake completed (statistics).
    pub opened_at: OnceLock<SystemTime>,
}

/// How far the socket's threads are in ending.
struct Ends {
    /// The writer's job is running.
    writer_running: bool,
    /// The reader is done: terminal callback delivered, listener dropped.
    reader_done: bool,
    /// Both are done, and the write side is freed.
    finished: bool,
}

impl Shared {
    pub(crate) fn new(request: Request, role: Role, config: &Config) -> (Arc<Shared>, Inbox) {
        let (outbox, inbox) = Outbox::new(config.max_queue_size);
        let shared = Arc::new(Shared {
            request,
            core: Mutex::new(Core {
                session: Session::new(role, config.timers()),
                socket: None,
            }),
            outbox,
            failed: AtomicBool::new(false),
            dispatch: AtomicU8::new(IDLE),
            #[cfg(feature = "testing")]
            entered: AtomicU64::new(0),
            #[cfg(feature = "testing")]
            entered_at_cancel: AtomicU64::new(u64::MAX),
            ends: Mutex::new(Ends {
                writer_running: false,
                reader_done: false,
                finished: false,
            }),
            ends_cv: Condvar::new(),
            reader_id: Mutex::new(None),
            close_deadline: CloseDeadline::default(),
            backlog: OnceLock::new(),
            reading_paused: AtomicBool::new(false),
            rest: Rest::default(),
            abort: Abort::new(),
            addrs: OnceLock::new(),
            received: Received::default(),
            opened_at: OnceLock::new(),
        });
        (shared, inbox)
    }

    /// A snapshot of the socket's traffic.
    pub(crate) fn stats(&self) -> Stats {
        let sent = self.outbox.sent_stats();
        let (pongs, rtt) = self.with_session(|s| s.pong_stats());
        let r = &self.received;
        Stats {
            messages_sent: sent.messages,
            bytes_sent: sent.bytes,
            messages_received: r.messages.load(Ordering::Relaxed),
            bytes_received: r.bytes.load(Ordering::Relaxed),
            wire_bytes_sent: sent.wire,
            wire_bytes_received: r.wire.load(Ordering::Relaxed),
            frames_sent: sent.frames,
            frames_received: r.frames.load(Ordering::Relaxed),
            queue_high_water: sent.high_water,
            pings_sent: sent.pings,
            pongs_received: pongs,
            last_rtt: rtt,
            opened_at: self.opened_at.get().copied(),
        }
    }

    /// Runs `f` on the session, under the lock, and keeps the lock-free mirrors (the failed
    /// flag, the close deadline) up to date with what it decided.
    pub(crate) fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let mut core = self.core.lock();
        let r = f(&mut core.session);
        if core.session.is_failing() {
            self.failed.store(true, Ordering::SeqCst);
        }
        if let Some(deadline) = core.session.close_deadline() {
            let _ = self.close_deadline.set(deadline);
        }
        r
    }

    /// Hands the socket its TCP connection: `cancel` shuts it down from now on, and its
    /// addresses are known: `peer` if given (the client a trusted proxy names), else the TCP
    /// peer. Returns false (and shuts it down) if the socket was canceled or failed meanwhile.
    pub(crate) fn attach(&self, tcp: &Arc<TcpStream>, peer: Option<SocketAddr>) -> bool {
        let peer = peer.map_or_else(|| tcp.peer_addr(), Ok);
        if let (Ok(local), Ok(peer)) = (tcp.local_addr(), peer) {
            let _ = self.addrs.set((local, peer));
        }
        let mut core = self.core.lock();
        if core.session.is_failing() {
            platform::sockets::shut_down(tcp);
            return false;
        }
        core.socket = Some(tcp.clone());
        true
    }

    pub(crate) fn state(&self) -> State {
        self.core.lock().session.state()
    }

    /// Queues a message. Never blocks.
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        self.outbox.send(message)
    }

    /// Queues our close frame if none is queued yet and the socket has not ended. Returns
    /// whether this call queued it. A message whose `send` returned true is never behind it.
    pub(crate) fn close(&self, code: Option<u16>, reason: &str) -> bool {
        if !self.outbox.seal() {
            return false;
        }
        if self.with_session(|s| s.close(Instant::now())).is_none() {
            return false;
        }
        self.outbox.push_close(code, reason);
        true
    }

    /// Fails the connection with a close frame (a protocol violation, a panicking listener):
    /// after what is queued, a close frame with the error's code and a FIN. Returns false if
    /// another failure came first: it is the one reported, and no frame is sent.
    pub(crate) fn fail_with_close(&self, error: Error) -> bool {
        self.outbox.seal();
        match self.with_session(|s| s.fail_with_close(error, Instant::now())) {
            Some(code) => {
                self.outbox.push_fail_close(code);
                true
            }
            None => false,
        }
    }

    /// Records `error` for the reader to report, unless something failed first, and wakes it
    /// by shutting the connection down.
    pub(crate) fn fail(&self, error: Error) {
        {
            let mut core = self.core.lock();
            core.session.fail(error);
            if core.session.is_failing() {
                self.failed.store(true, Ordering::SeqCst);
            }
            core.shutdown();
        }
        self.outbox.seal();
        self.wake_paused_reader();
    }

    /// The session recorded a failure (a timer's): no more sends, and the reader wakes (the
    /// connection shut down, a paused reader released) to report it.
    pub(crate) fn failed_here(&self) {
        self.core.lock().shutdown();
        self.outbox.seal();
        self.wake_paused_reader();
    }

    /// A write failed. After the peer's close that is the peer ending TCP while our answer was
    /// on its way, and not a failure: the connection is shut down and the reader ends the
    /// socket. Otherwise the socket fails with the close timeout (if the close deadline cut
    /// the write off), the write timeout (no progress) or the I/O error.
    pub(crate) fn write_failed(&self, e: std::io::Error, write_timeout: std::time::Duration) {
        let peer_closed = {
            let core = self.core.lock();
            if core.session.peer_has_closed() {
                core.shutdown();
            }
            core.session.peer_has_closed()
        };
        if peer_closed {
            return;
        }
        let error = if !is_stall(&e) {
            Error::from(e)
        } else if self
            .close_deadline
            .get()
            .copied()
            .flatten()
            .is_some_and(|d| Instant::now() >= d)
        {
            Error::CloseTimeout(self.with_session(|s| s.close_timeout()).unwrap_or_default())
        } else {
            Error::WriteTimeout(write_timeout)
        };
        log::debug!("write failed: {error}");
        self.fail(error);
    }

    /// Shuts the connection down for good (the end of a close whose TCP the peer kept open).
    pub(crate) fn shutdown(&self) {
        self.core.lock().shutdown();
    }

    /// Takes the connection away: shut down, and the descriptor freed once the halves go.
    pub(crate) fn detach(&self) {
        let mut core = self.core.lock();
        core.shutdown();
        core.socket = None;
    }

    /// A reader waiting for room in the backlog, or resting, must see a failure or cancel at
    /// once.
    fn wake_paused_reader(&self) {
        if let Some(b) = self.backlog.get() {
            b.wake();
        }
        self.rest.wake();
    }

    /// Whether a failure or cancel has been recorded (or the socket ended).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// `cancel()`: the state is `Canceled` at once and the writer stops. Once this returns,
    /// no callback but the terminal one is entered (see [`enter_callback`](Self::enter_callback)).
    pub(crate) fn cancel(&self) {
        {
            let mut core = self.core.lock();
            if !core.session.cancel() {
                return;
            }
            self.failed.store(true, Ordering::SeqCst);
            core.shutdown();
        }
        self.outbox.seal();
        self.abort.fire();
        self.wake_paused_reader();
        self.outbox.stop();
        // Pairs with `enter_callback`: the reader either sees the failure before it commits
        // to a callback, or it has committed, and then this waits out the few instructions
        // until the callback is entered. A callback already entered may still be running when
        // this returns: `cancel` never waits for application code. On the reader thread itself
        // (a callback canceling its own socket) there is nothing to wait for.
        fence(Ordering::SeqCst);
        if !self.on_reader_thread() {
            let mut spins = 0u32;
            while self.dispatch.load(Ordering::SeqCst) == DISPATCHING {
                if spins < CANCEL_SPINS {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    // Lets a preempted reader thread run, on this core if it is waiting for it.
                    std::thread::yield_now();
                }
            }
        }
        // Not `DISPATCHING`, so `entered` counts every callback that will ever be entered.
        #[cfg(feature = "testing")]
        self.entered_at_cancel
            .store(self.entered.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// How many callbacks other than the terminal one had been entered when `cancel()`
    /// returned, if it ran (and found the socket not yet ended). For the finality tests.
    #[cfg(feature = "testing")]
    pub(crate) fn entered_at_cancel(&self) -> Option<u64> {
        match self.entered_at_cancel.load(Ordering::SeqCst) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    /// The reader is about to run a callback other than the terminal one: returns false if a
    /// failure or cancel was recorded, and the callback must not run. On true the reader calls
    /// [`entered_callback`](Self::entered_callback) as the callback starts and
    /// [`left_callback`](Self::left_callback) when it returns.
    pub(crate) fn enter_callback(&self) -> bool {
        self.dispatch.store(DISPATCHING, Ordering::SeqCst);
        if self.failed.load(Ordering::SeqCst) {
            self.dispatch.store(IDLE, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The callback [`enter_callback`](Self::enter_callback) allowed is starting. Only the
    /// store-then-load in `enter_callback` (and its mirror in `cancel`) needs `SeqCst`: this
    /// and `left_callback` just tell a waiting `cancel` the window is over.
    pub(crate) fn entered_callback(&self) {
        // Only the reader writes `entered`: no read-modify-write needed.
        #[cfg(feature = "testing")]
        self.entered.store(
            self.entered.load(Ordering::Relaxed).saturating_add(1),
            Ordering::Relaxed,
        );
        self.dispatch.store(IN_CALLBACK, Ordering::Release);
    }

    /// The callback has returned (or panicked).
    pub(crate) fn left_callback(&self) {
        self.dispatch.store(IDLE, Ordering::Release);
    }

    /// Called first thing on the reader thread, before any callback can run: `wait_finished`
    /// must recognise a call from its own reader.
    pub(crate) fn enter_reader(&self) {
        *self.reader_id.lock() = Some(std::thread::current().id());
    }

    /// Whether the calling thread is this socket's reader.
    pub(crate) fn on_reader_thread(&self) -> bool {
        *self.reader_id.lock() == Some(std::thread::current().id())
    }

    /// The writer's job is about to start.
    pub(crate) fn writer_started(&self) {
        self.ends.lock().writer_running = true;
    }

    /// The reader is done with the socket: terminal callback delivered, listener dropped.
    /// Whichever of the reader and the writer is done last finishes the socket, so neither
    /// waits for the other.
    pub(crate) fn reader_done(&self) {
        *self.reader_id.lock() = None;
        let last = {
            let mut ends = self.ends.lock();
            ends.reader_done = true;
            !ends.writer_running
        };
        if last {
            self.finish_up();
        }
    }

    /// The writer's job has ended (or never started); see [`reader_done`](Self::reader_done).
    pub(crate) fn writer_exited(&self) {
        let last = {
            let mut ends = self.ends.lock();
            ends.writer_running = false;
            ends.reader_done
        };
        if last {
            self.finish_up();
        }
    }

    /// Both threads are done: the write side is freed (buffers, compressor, the handle on
    /// the connection) and the socket counts as finished.
    fn finish_up(&self) {
        self.outbox.clear();
        self.ends.lock().finished = true;
        self.ends_cv.notify_all();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.ends.lock().finished
    }

    /// Waits until finished or `deadline` (`None`: forever). Returns whether it finished.
    pub(crate) fn wait_finished(&self, deadline: Option<Instant>) -> bool {
        let mut ends = self.ends.lock();
        wait_until(&self.ends_cv, &mut ends, deadline, |e| e.finished)
    }
}
