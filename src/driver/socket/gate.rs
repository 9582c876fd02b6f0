//! The callback gate: the fence that makes `cancel()` final. Once `cancel()` returns, no
//! callback but the terminal one is entered, even one the reader was about to call.
//!
//! The reader says where it is with a callback other than the terminal one (`IDLE`,
//! `DISPATCHING`: it has looked for a cancel and found none and is about to call, or
//! `IN_CALLBACK`); `cancel` records the failure, then waits out `DISPATCHING`. Both sides
//! store then load, sequentially consistent, so either the reader sees the cancel before it
//! commits, or `cancel` sees it committed and waits the few instructions until the callback is
//! entered. A callback already entered may still be running when `cancel` returns: `cancel`
//! never waits for application code.

#[cfg(feature = "testing")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicU8, Ordering, fence};
use std::thread::ThreadId;

use parking_lot::Mutex;

/// No callback in progress.
const IDLE: u8 = 0;
/// The reader has committed to a callback and not yet entered it.
const DISPATCHING: u8 = 1;
/// A callback is running.
const IN_CALLBACK: u8 = 2;
/// Spins before `cancel` yields its core while the reader is `DISPATCHING` (about a
/// microsecond): the window is a few instructions unless the reader thread is preempted in it.
const CANCEL_SPINS: u32 = 1024;

pub(crate) struct Gate {
    /// `IDLE`, `DISPATCHING` or `IN_CALLBACK`; written by the reader.
    dispatch: AtomicU8,
    /// The reader thread, once it runs: `cancel` from a callback (on the reader itself) has
    /// nothing to wait for, and `wait_finished` must recognise a call from its own reader.
    reader_id: Mutex<Option<ThreadId>>,
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
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            dispatch: AtomicU8::new(IDLE),
            reader_id: Mutex::new(None),
            #[cfg(feature = "testing")]
            entered: AtomicU64::new(0),
            #[cfg(feature = "testing")]
            entered_at_cancel: AtomicU64::new(u64::MAX),
        }
    }

    /// The reader is about to run a callback other than the terminal one: returns false if
    /// `has_failed()` (a failure or cancel was recorded), and the callback must not run. On true
    /// the reader calls [`entered`](Self::entered) as the callback starts and
    /// [`left`](Self::left) when it returns.
    pub(crate) fn enter(&self, has_failed: impl Fn() -> bool) -> bool {
        self.dispatch.store(DISPATCHING, Ordering::SeqCst);
        if has_failed() {
            self.dispatch.store(IDLE, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The callback [`enter`](Self::enter) allowed is starting. Only the store-then-load in
    /// `enter` (and its mirror in `fence_after_cancel`) needs `SeqCst`: this and `left` just
    /// tell a waiting `cancel` the window is over.
    pub(crate) fn entered(&self) {
        // Only the reader writes `entered`: no read-modify-write needed.
        #[cfg(feature = "testing")]
        self.entered.store(
            self.entered.load(Ordering::Relaxed).saturating_add(1),
            Ordering::Relaxed,
        );
        self.dispatch.store(IN_CALLBACK, Ordering::Release);
    }

    /// The callback has returned (or panicked).
    pub(crate) fn left(&self) {
        self.dispatch.store(IDLE, Ordering::Release);
    }

    /// `cancel`'s half, once the failure is recorded: waits out a reader that committed to a
    /// callback before it could see the cancel (unless this is the reader thread itself, a
    /// callback canceling its own socket).
    pub(crate) fn fence_after_cancel(&self) {
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

    /// Called first thing on the reader thread, before any callback can run.
    pub(crate) fn enter_reader(&self) {
        *self.reader_id.lock() = Some(std::thread::current().id());
    }

    /// The reader is done: no thread is this socket's reader any more.
    pub(crate) fn leave_reader(&self) {
        *self.reader_id.lock() = None;
    }

    /// Whether the calling thread is this socket's reader.
    pub(crate) fn on_reader_thread(&self) -> bool {
        *self.reader_id.lock() == Some(std::thread::current().id())
    }
}
