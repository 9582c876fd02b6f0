//! The socket: what its handle (`WebSocket`), its reader thread and its writer thread share,
//! as named parts, one per job:
//!
//! - [`lifecycle`]: the sans-I/O session and the TCP connection behind one lock, the one owner
//!   of the socket's state (every change goes through [`Lifecycle::with`]);
//! - [`outbox`](crate::driver::write::Outbox): the write side (the send gate, the queues, the
//!   encoder, the link), behind its own short lock (`driver/write/`);
//! - [`gate`]: the callback gate that makes `cancel()` final;
//! - [`ends`]: the rendezvous of the reader's and the writer's ends;
//! - [`pause`]: the reader's deliberate pauses (a full backlog, a rest under
//!   `max_receive_rate`);
//! - [`stats`]: the counts behind `WebSocket::stats`;
//! - [`abort`]: ends a name lookup the connect waits for (`connect/dns.rs`).
//!
//! The decoder is not here: it is the reader thread's alone (`reader.rs`).
//!
//! The methods below are the socket's events that touch several parts (a close, a failure,
//! a cancel): the session decides under the lifecycle lock, then the socket acts on the
//! decision (seals the outbox, queues a frame, shuts the connection down, wakes the reader)
//! once the lock is released. `send` never takes the lifecycle lock.

mod abort;
mod ends;
mod gate;
mod lifecycle;
mod pause;
mod rest;
mod stats;
mod stream;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::transport::is_stall;
use super::write::{CloseSeal, Outbox, SendError, WriterState};
use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::session::{Session, State};
use crate::request::Request;
pub(crate) use abort::Abort;
use ends::Ends;
use gate::Gate;
pub(crate) use lifecycle::Lifecycle;
use pause::Pause;
use stats::Traffic;

/// How long a failing socket waits for the peer to close TCP after our close frame, so the
/// frame is not lost to a reset.
pub(crate) const FAIL_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct Socket {
    pub request: Request,
    pub lifecycle: Lifecycle,
    pub outbox: Outbox,
    pub gate: Gate,
    ends: Ends,
    pub pause: Pause,
    pub traffic: Traffic,
    /// Fired by `cancel()`: ends a name lookup the connect is waiting for.
    pub abort: Abort,
    /// The TCP connection's (local, peer) addresses, once connected.
    pub addrs: OnceLock<(SocketAddr, SocketAddr)>,
    /// The application's value (`WebSocket::data`): the client's request's, or what the
    /// server's handler attached, set before the first callback.
    pub data: OnceLock<crate::request::SocketData>,
    /// What runs once when the socket ends, before its terminal callback (a topic forgetting
    /// it); `None` once they ran, so one added later is refused (see [`Socket::on_end`]).
    end_hooks: parking_lot::Mutex<Option<Vec<EndHook>>>,
}

/// Work for the socket's end: see [`Socket::on_end`].
pub(crate) type EndHook = Box<dyn FnOnce() + Send>;

impl Socket {
    /// A socket for `request`, not yet connected, and its writer's own state (for the writer
    /// thread, once the connection opens).
    pub(crate) fn new(request: Request, role: Role, config: &Config) -> (Arc<Socket>, WriterState) {
        let (outbox, writer_state) = Outbox::new(config.max_queue_size, config.fragment_size);
        let data = OnceLock::new();
        if let Some(d) = request.socket_data() {
            let _ = data.set(d.clone());
        }
        let socket = Arc::new(Socket {
            request,
            lifecycle: Lifecycle::new(Session::new(role, config.timers())),
            outbox,
            gate: Gate::new(),
            ends: Ends::default(),
            pause: Pause::default(),
            traffic: Traffic::default(),
            abort: Abort::new(),
            addrs: OnceLock::new(),
            data,
            end_hooks: parking_lot::Mutex::new(Some(Vec::new())),
        });
        (socket, writer_state)
    }

    /// Runs `f` on the session, under the lifecycle lock (see [`Lifecycle::with`]).
    /// Runs `register` with the socket's end-hook list still open, adding the hook it
    /// returns, if any: it runs once, when the socket ends. Returns false, without calling `register`,
    /// if the socket has ended already. The list stays locked while `register` runs, so
    /// whatever it sets up cannot be missed by an end that comes meanwhile.
    pub(crate) fn on_end(&self, register: impl FnOnce() -> Option<EndHook>) -> bool {
        let mut hooks = self.end_hooks.lock();
        match hooks.as_mut() {
            Some(list) => {
                list.extend(register());
                true
            }
            None => false,
        }
    }

    /// Runs the end hooks, once (outside the list's lock: a hook may take other locks).
    pub(crate) fn run_end_hooks(&self) {
        let hooks = self.end_hooks.lock().take();
        for hook in hooks.into_iter().flatten() {
            hook();
        }
    }

    pub(crate) fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        self.lifecycle.with_session(f)
    }

    pub(crate) fn state(&self) -> State {
        self.lifecycle.state()
    }

    /// Whether a failure or cancel has been recorded (or the socket ended).
    pub(crate) fn has_failed(&self) -> bool {
        self.lifecycle.has_failed()
    }

    /// Hands the socket its TCP connection: `cancel` shuts it down from now on, and its
    /// addresses are known: `peer` if given (the client a trusted proxy names), else the TCP
    /// peer. Returns false (and shuts it down) if the socket was canceled or failed meanwhile.
    pub(crate) fn attach(&self, tcp: &Arc<TcpStream>, peer: Option<SocketAddr>) -> bool {
        let peer = peer.map_or_else(|| tcp.peer_addr(), Ok);
        if let (Ok(local), Ok(peer)) = (tcp.local_addr(), peer) {
            let _ = self.addrs.set((local, peer));
        }
        self.lifecycle.with(|core| core.attach(tcp))
    }

    /// Takes the connection away: shut down, and the descriptor freed once the halves go.
    pub(crate) fn detach(&self) {
        self.lifecycle.with(|core| core.detach());
    }

    /// Shuts the connection down for good (the end of a close whose TCP the peer kept open).
    pub(crate) fn shut_down(&self) {
        self.lifecycle.with(|core| core.shut_down());
    }

    /// Queues a message. Never blocks, never takes the lifecycle lock.
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        self.outbox.send(message)
    }

    /// [`send`](Self::send), with the message's number, for a receipt.
    pub(crate) fn send_numbered(&self, message: Message) -> Result<u64, SendError> {
        self.outbox.send_numbered(message)
    }

    /// Queues our close frame if none is queued yet and the socket has not ended. Returns
    /// whether this call queued it. A message whose `send` returned true is never behind it.
    /// While a streamed message is being sent, the close frame waits for its last part (it
    /// returns true then: the close is on its way).
    pub(crate) fn close(&self, code: Option<u16>, reason: &str) -> bool {
        match self.outbox.seal_for_close(code, reason) {
            CloseSeal::Already => return false,
            CloseSeal::Deferred => return true,
            CloseSeal::Now => {}
        }
        self.queue_close(code, reason)
    }

    /// Answers the peer's close: at once, even during a streamed message (the peer takes no
    /// more data; the message is left unfinished, which a close frame may do).
    pub(crate) fn answer_close(&self, code: Option<u16>) -> bool {
        if !self.outbox.seal() {
            return false;
        }
        self.queue_close(code, "")
    }

    fn queue_close(&self, code: Option<u16>, reason: &str) -> bool {
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
        self.lifecycle.with(|core| {
            core.session.fail(error);
            core.shut_down();
        });
        self.outbox.seal();
        self.pause.wake();
    }

    /// The session recorded a failure (a timer's): no more sends, and the reader wakes (the
    /// connection shut down, a paused reader released) to report it.
    pub(crate) fn failed_here(&self) {
        self.shut_down();
        self.outbox.seal();
        self.pause.wake();
    }

    /// A write failed. After the peer's close that is the peer ending TCP while our answer was
    /// on its way, and not a failure: the connection is shut down and the reader ends the
    /// socket. Otherwise the socket fails with the close timeout (if the close deadline cut
    /// the write off), the write timeout (no progress) or the I/O error.
    pub(crate) fn write_failed(&self, e: std::io::Error, write_timeout: std::time::Duration) {
        let peer_closed = self.lifecycle.with(|core| {
            let closed = core.session.peer_has_closed();
            if closed {
                core.shut_down();
            }
            closed
        });
        if peer_closed {
            return;
        }
        let error = if !is_stall(&e) {
            Error::from(e)
        } else if self
            .lifecycle
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

    /// `cancel()`: the state is `Canceled` at once and the writer stops. Once this returns,
    /// no callback but the terminal one is entered (see [`Gate`]).
    pub(crate) fn cancel(&self) {
        let canceled = self.lifecycle.with(|core| {
            let canceled = core.session.cancel();
            if canceled {
                core.shut_down();
            }
            canceled
        });
        if !canceled {
            return;
        }
        self.outbox.seal();
        self.abort.fire();
        self.pause.wake();
        self.outbox.stop();
        self.gate.fence_after_cancel();
    }

    /// The reader is about to run a callback other than the terminal one: false if a failure
    /// or cancel was recorded, and the callback must not run (see [`Gate::enter`]).
    pub(crate) fn enter_callback(&self) -> bool {
        self.gate.enter(|| self.lifecycle.has_failed_seq_cst())
    }

    /// Called first thing on the reader thread, before any callback can run.
    pub(crate) fn enter_reader(&self) {
        self.gate.enter_reader();
    }

    /// Whether the calling thread is this socket's reader.
    pub(crate) fn on_reader_thread(&self) -> bool {
        self.gate.on_reader_thread()
    }

    /// The writer's job is about to start.
    pub(crate) fn writer_started(&self) {
        self.ends.writer_started();
    }

    /// The reader is done with the socket: terminal callback delivered, listener dropped.
    /// Whichever of the reader and the writer is done last finishes the socket.
    pub(crate) fn reader_done(&self) {
        self.gate.leave_reader();
        if self.ends.reader_done() {
            self.finish_up();
        }
    }

    /// After a failure close and its FIN, the writer gives the reader `linger` to see the
    /// peer close TCP (the reader lingers so itself when it failed the socket); a reader still
    /// blocked in a read after that (another thread failed the socket, and the peer keeps the
    /// connection open) is woken by shutting the connection down.
    pub(crate) fn linger_for_reader(&self, linger: std::time::Duration) {
        let deadline = crate::driver::clock::deadline_after(linger);
        if !self.ends.wait_reader_done(deadline) {
            self.shut_down();
        }
    }

    /// The writer's job has ended (or never started); see [`reader_done`](Self::reader_done).
    pub(crate) fn writer_exited(&self) {
        if self.ends.writer_exited() {
            self.finish_up();
        }
    }

    /// Both threads are done: the write side is freed (buffers, compressor, the handle on
    /// the connection) and the socket counts as finished.
    fn finish_up(&self) {
        self.outbox.clear();
        self.ends.finish();
        // A receipt waiting for a message that will never be written now knows it.
        self.outbox.wake_waiters();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.ends.is_finished()
    }

    /// Waits until finished or `deadline` (`None`: forever). Returns whether it finished.
    pub(crate) fn wait_finished(&self, deadline: Option<Instant>) -> bool {
        self.ends.wait_finished(deadline)
    }
}
