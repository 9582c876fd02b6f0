//! A process-wide pool of parked socket threads, so that once warm a connect spawns none.
//!
//! Threads are pooled by role (`syncws-reader`, `syncws-writer`: the name a thread carries for
//! life) and stack size, and started by [`threads`] (on Linux two memory mappings each, not std's
//! four). A thread that finishes its socket waits for the next one for the
//! keep-alive of the socket it ran, then exits, so the pool shrinks back to nothing when the
//! process stops opening sockets. A keep-alive of zero means no pooling.
//!
//! Each waiting thread has a slot of its own, and the pool keeps the waiting ones in a stack
//! (the most recently parked first: its stack and caches are the warmest). A spawner pops a
//! slot and puts the job in it under the pool's lock; a thread whose keep-alive ran out looks
//! under that same lock: still on the stack, it leaves; popped, its job is already in its
//! slot. Nobody spins or yields: waiting threads sleep on their slot's condition variable.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::platform::threads;

/// A socket thread's job. It returns how long its thread should then wait for another job.
pub(crate) type Job = Box<dyn FnOnce() -> Duration + Send>;

/// What a pooled thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadRole {
    Reader,
    Writer,
    /// Runs name lookups (`connect/dns.rs`), which can block for as long as the system resolver likes.
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
    /// The waiting threads' slots, the most recently parked last.
    idle: Mutex<Vec<Arc<Slot>>>,
}

/// Where a waiting thread gets its next job.
#[derive(Default)]
struct Slot {
    job: Mutex<Option<Job>>,
    given: Condvar,
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
    let p = Arc::new(Pool {
        role,
        stack_size,
        idle: Mutex::new(Vec::new()),
    });
    pools.push(p.clone());
    p
}

/// Runs `job` on a parked thread of this role and stack size, or on a new one.
///
/// On error (the OS refused a thread) the job is handed back, so the caller can still report
/// the failure through it.
pub(crate) fn spawn(role: ThreadRole, stack_size: usize, job: Job) -> Result<(), (io::Error, Job)> {
    let pool = pool(role, stack_size);
    {
        let mut idle = pool.idle.lock();
        if let Some(slot) = idle.pop() {
            // Given under the pool's lock: a thread that gave up waiting looks there first.
            *slot.job.lock() = Some(job);
            slot.given.notify_one();
            return Ok(());
        }
    }
    let p = pool.clone();
    let slot = Arc::new(Mutex::new(Some(job)));
    let theirs = slot.clone();
    let main: threads::Main = Box::new(move || {
        let first = theirs.lock().take();
        drop(theirs);
        if let Some(job) = first {
            worker(&p, job);
        }
    });
    match threads::spawn(role.name(), stack_size, main) {
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
    let slot = Arc::new(Slot::default());
    let mut keep_alive = run(first);
    loop {
        // A parked thread keeps only the stack it needs to wait.
        threads::release_unused_stack();
        let Some(job) = wait_for_job(pool, &slot, keep_alive) else {
            return;
        };
        keep_alive = run(job);
    }
}

/// Waits up to `keep_alive` for a job; `None` once the thread should retire.
fn wait_for_job(pool: &Pool, slot: &Arc<Slot>, keep_alive: Duration) -> Option<Job> {
    if keep_alive.is_zero() {
        return None;
    }
    pool.idle.lock().push(slot.clone());
    // A keep-alive too long to add to now means for ever.
    let deadline = Instant::now().checked_add(keep_alive);
    let mut job = slot.job.lock();
    loop {
        if let Some(j) = job.take() {
            return Some(j);
        }
        match deadline {
            Some(d) => {
                if slot.given.wait_until(&mut job, d).timed_out() {
                    break;
                }
            }
            None => slot.given.wait(&mut job),
        }
    }
    drop(job);
    // Gave up: leave the stack, unless a spawner popped us (then the job is in the slot: it
    // was put there under the pool's lock, which we hold now).
    let mut idle = pool.idle.lock();
    if let Some(i) = idle.iter().position(|s| Arc::ptr_eq(s, slot)) {
        idle.swap_remove(i);
        return None;
    }
    drop(idle);
    slot.job.lock().take()
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
            while p.idle.lock().is_empty() && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        let p = pool(ThreadRole::Writer, stack);
        assert_eq!(ids.len(), 1, "one thread served all three");
        assert_eq!(p.idle.lock().len(), 1);
    }
}
