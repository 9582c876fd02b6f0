//! A process-wide pool of parked socket threads, so that once warm a connect spawns none.
//!
//! Threads are pooled by role (`syncws-reader`, `syncws-writer`: the name a thread carries for
//! life) and stack size, and started by [`os_thread`] (two memory mappings each, not std's
//! four). A thread that finishes its socket waits for the next one for the
//! keep-alive of the socket it ran, then exits, so the pool shrinks back to nothing when the
//! process stops opening sockets. A keep-alive of zero means no pooling.
//!
//! Handing out work is race-free without a lock on the hot path: `idle` counts waiting threads
//! that have not been claimed. A spawner claims one by decrementing it and then sends the job;
//! a waiting thread whose keep-alive ran out retires only if it can decrement `idle` itself —
//! if it cannot, a spawner has claimed it and a job is on its way, so it takes that job.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::os_thread;

/// A socket thread's job. It returns how long its thread should then wait for another job.
pub(crate) type Job = Box<dyn FnOnce() -> Duration + Send>;

/// What a pooled thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadRole {
    Reader,
    Writer,
    /// Runs name lookups (`dns.rs`), which can block for as long as the system resolver likes.
    Resolver,
}

impl ThreadRole {
    fn name(self) -> &'static std::ffi::CStr {
        match self {
            ThreadRole::Reader => c"syncws-reader",
            ThreadRole::Writer => c"syncws-writer",
            ThreadRole::Resolver => c"syncws-dns",
        }
    }
}

struct Pool {
    role: ThreadRole,
    stack_size: usize,
    idle: AtomicUsize,
    tx: Sender<Job>,
    rx: Receiver<Job>,
}

fn pools() -> &'static Mutex<Vec<Arc<Pool>>> {
    static POOLS: OnceLock<Mutex<Vec<Arc<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(Vec::new()))
}

fn pool(role: ThreadRole, stack_size: usize) -> Arc<Pool> {
    let mut pools = pools().lock();
    if let Some(p) = pools
        .iter()
        .find(|p| p.role == role && p.stack_size == stack_size)
    {
        return p.clone();
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let p = Arc::new(Pool {
        role,
        stack_size,
        idle: AtomicUsize::new(0),
        tx,
        rx,
    });
    pools.push(p.clone());
    p
}

fn claim(idle: &AtomicUsize) -> bool {
    idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

/// Runs `job` on a parked thread of this role and stack size, or on a new one.
///
/// On error (the OS refused a thread) the job is handed back, so the caller can still report
/// the failure through it.
pub(crate) fn spawn(role: ThreadRole, stack_size: usize, job: Job) -> Result<(), (io::Error, Job)> {
    let pool = pool(role, stack_size);
    if claim(&pool.idle) {
        // A claimed thread is waiting, or about to wait, on the channel: it cannot retire.
        match pool.tx.send(job) {
            Ok(()) => return Ok(()),
            Err(e) => return Err((io::Error::other("socket thread pool is gone"), e.0)),
        }
    }
    let p = pool.clone();
    let slot = Arc::new(Mutex::new(Some(job)));
    let theirs = slot.clone();
    let main: os_thread::Main = Box::new(move || {
        let first = theirs.lock().take();
        drop(theirs);
        if let Some(job) = first {
            worker(&p, job);
        }
    });
    match os_thread::spawn(role.name(), stack_size, main) {
        Ok(()) => Ok(()),
        // The thread never ran: the job is still in the slot.
        Err((e, _main)) => match slot.lock().take() {
            Some(job) => Err((e, job)),
            None => Ok(()),
        },
    }
}

/// Runs a job; a panic that escapes it (application code the socket did not catch, such as a
/// panicking `Drop` of an accept handler's answer) is logged and costs the job, not the
/// pooled thread.
fn run(job: Job) -> Duration {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(keep_alive) => keep_alive,
        Err(p) => {
            log::error!(
                "a socket thread's job panicked: {}",
                crate::panics::message(&*p)
            );
            Duration::ZERO
        }
    }
}

fn worker(pool: &Pool, first: Job) {
    let mut keep_alive = run(first);
    loop {
        // A parked thread keeps only the stack it needs to wait.
        os_thread::release_unused_stack();
        pool.idle.fetch_add(1, Ordering::AcqRel);
        let job = match pool.rx.recv_timeout(keep_alive) {
            Ok(job) => job,
            Err(_) => {
                if claim(&pool.idle) {
                    return;
                }
                // Claimed just as we gave up: the job is in the channel or on its way.
                match pool.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        keep_alive = run(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_parked_thread_and_retires_it() {
        let stack = 128 * 1024 + 4096; // a pool of its own
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut ids = std::collections::HashSet::new();
        for _ in 0..3 {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                let _ = tx.send(std::thread::current().id());
                Duration::from_secs(5)
            });
            assert!(spawn(ThreadRole::Writer, stack, job).is_ok());
            // Wait for it to run and park again before the next.
            ids.insert(rx.recv_timeout(Duration::from_secs(5)).unwrap());
            let p = pool(ThreadRole::Writer, stack);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while p.idle.load(Ordering::Acquire) == 0 && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        let p = pool(ThreadRole::Writer, stack);
        assert_eq!(ids.len(), 1, "one thread served all three");
        assert_eq!(p.idle.load(Ordering::Acquire), 1);
    }
}
