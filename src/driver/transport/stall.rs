//! When a blocking write gives up on a peer that does not read ([`Stall`]): after the write
//! timeout without progress, or once the close deadline has passed.
//!
//! Where a write that timed out can be resumed (Unix), the writer's blocking writes wait in
//! [`WRITE_SLICE`]s and look at the `Stall` between them (`halves.rs`). Where it cannot
//! (Windows: see `platform::sockets`), writes block without a socket timeout, and this module
//! watches them instead: one process-wide thread (`syncws-watch`, started on the first watched
//! write) looks at the writes in progress every [`TICK`], and when one has made no progress for
//! its write timeout, or its socket's close deadline has passed, it calls the socket's
//! [`OnStall`], which fails the socket: that shuts the connection down and cancels the write.
//!
//! A registration is a lock and a push, its end a lock and a swap-remove; the thread sleeps
//! while nothing is watched.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// One blocking write call waits at most this long (the socket's send timeout) before the
/// writer looks at its deadlines again.
pub(crate) const WRITE_SLICE: Duration = Duration::from_millis(500);

/// The close deadline as the writer's blocking writes see it: set once, when the close starts
/// (the session decides it; `None` inside: never).
pub(crate) type CloseDeadline = Arc<OnceLock<Option<Instant>>>;

/// When a blocking write stops waiting for a peer that does not read: after `write_timeout` with
/// no byte accepted (progress, not calls: a peer that reads a byte now and then keeps it going),
/// or once the socket's close deadline, which runs from `close()`, has passed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stall {
    pub write_timeout: Option<Duration>,
    pub close_deadline: Option<CloseDeadline>,
    /// Where writes cannot wait in slices (Windows), what the write watcher calls when a
    /// write has stalled past a deadline (`watch.rs`).
    pub on_stall: Option<OnStall>,
}

impl Stall {
    /// Whether the close deadline has passed.
    pub(crate) fn close_expired(&self, now: Instant) -> bool {
        self.close_deadline
            .as_ref()
            .and_then(|d| d.get().copied().flatten())
            .is_some_and(|d| now >= d)
    }

    pub(crate) fn give_up(&self, last_progress: Instant) -> bool {
        self.gives_up(last_progress, Instant::now())
    }

    /// Whether a write whose last progress was at `last_progress` has stalled for good at
    /// `now`: past its write timeout, or past the close deadline.
    pub(crate) fn gives_up(&self, last_progress: Instant, now: Instant) -> bool {
        self.write_timeout
            .is_some_and(|t| now.saturating_duration_since(last_progress) >= t)
            || self.close_expired(now)
    }
}

/// How often the watching thread looks at the writes in progress.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// What a stalled write's socket does about it (fails with the write or close timeout).
#[derive(Clone)]
pub(crate) struct OnStall(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for OnStall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStall")
    }
}

struct Entry {
    id: u64,
    /// The write's last progress.
    since: Instant,
    stall: Stall,
    /// Its `OnStall` was called: once only.
    fired: bool,
}

#[derive(Default)]
struct Registry {
    entries: Vec<Entry>,
    next_id: u64,
    /// The watching thread runs (or could not be started: then nothing is watched).
    started: bool,
}

struct Watch {
    registry: Mutex<Registry>,
    changed: Condvar,
}

fn watch() -> &'static Watch {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    WATCH.get_or_init(|| Watch {
        registry: Mutex::new(Registry::default()),
        changed: Condvar::new(),
    })
}

/// A write being watched; dropping it ends the watch.
pub(crate) struct Watched(u64);

impl Drop for Watched {
    fn drop(&mut self) {
        let mut r = watch().registry.lock();
        if let Some(i) = r.entries.iter().position(|e| e.id == self.0) {
            r.entries.swap_remove(i);
        }
    }
}

/// Watches a write whose last progress was at `since`, under `stall`'s deadlines. `None` when
/// `stall` has no deadline or nothing to call: there is nothing to watch for.
pub(crate) fn watched(stall: &Stall, since: Instant) -> Option<Watched> {
    stall.on_stall.as_ref()?;
    if stall.write_timeout.is_none() && stall.close_deadline.is_none() {
        return None;
    }
    let w = watch();
    let mut r = w.registry.lock();
    if !r.started {
        r.started = true;
        let spawned = std::thread::Builder::new()
            .name("syncws-watch".into())
            .stack_size(64 * 1024)
            .spawn(|| run(watch()));
        if let Err(e) = spawned {
            log::error!("could not start the write watcher: {e}; stalled writes wait for the peer");
            return None;
        }
    }
    let id = r.next_id;
    r.next_id = r.next_id.wrapping_add(1);
    r.entries.push(Entry {
        id,
        since,
        stall: stall.clone(),
        fired: false,
    });
    drop(r);
    w.changed.notify_one();
    Some(Watched(id))
}

fn run(w: &Watch) {
    let mut r = w.registry.lock();
    loop {
        if r.entries.is_empty() {
            w.changed.wait(&mut r);
            continue;
        }
        w.changed.wait_for(&mut r, TICK);
        let now = Instant::now();
        let stalled: Vec<OnStall> = r
            .entries
            .iter_mut()
            .filter(|e| !e.fired && e.stall.gives_up(e.since, now))
            .filter_map(|e| {
                e.fired = true;
                e.stall.on_stall.clone()
            })
            .collect();
        if stalled.is_empty() {
            continue;
        }
        // Called without the lock: failing a socket takes its own locks, and its writer
        // deregisters when the cancelled write returns.
        drop(r);
        for on_stall in stalled {
            (on_stall.0)();
        }
        r = w.registry.lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn stall(write_timeout: Option<Duration>, fired: &Arc<AtomicUsize>) -> Stall {
        let fired = fired.clone();
        Stall {
            write_timeout,
            close_deadline: None,
            on_stall: Some(OnStall(Arc::new(move || {
                fired.fetch_add(1, Ordering::SeqCst);
            }))),
        }
    }

    #[test]
    fn a_stalled_write_is_reported_once_and_an_ended_one_never() {
        let fired = Arc::new(AtomicUsize::new(0));
        let quiet = Arc::new(AtomicUsize::new(0));
        let stalled = watched(
            &stall(Some(Duration::from_millis(50)), &fired),
            Instant::now(),
        );
        let done = watched(
            &stall(Some(Duration::from_millis(50)), &quiet),
            Instant::now(),
        );
        // This one made progress in time: its watch ends.
        drop(done);
        let deadline = Instant::now() + Duration::from_secs(10);
        while fired.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(TICK);
        }
        // Another tick or two: still once.
        std::thread::sleep(3 * TICK);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(quiet.load(Ordering::SeqCst), 0);
        let id = stalled.as_ref().map(|w| w.0);
        drop(stalled);
        assert!(
            watch()
                .registry
                .lock()
                .entries
                .iter()
                .all(|e| Some(e.id) != id)
        );
    }

    #[test]
    fn nothing_to_watch_without_a_deadline() {
        let fired = Arc::new(AtomicUsize::new(0));
        assert!(watched(&stall(None, &fired), Instant::now()).is_none());
        let no_callback = Stall {
            write_timeout: Some(Duration::from_millis(1)),
            ..Stall::default()
        };
        assert!(watched(&no_callback, Instant::now()).is_none());
    }
}
