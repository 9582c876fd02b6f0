//! Socket threads from `std::thread::Builder`: the path of [`threads`](super) where there is
//! no Linux one (Windows, macOS and the other Unixes).

use std::ffi::CStr;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::Mutex;

/// What a socket thread runs.
pub(crate) type Main = Box<dyn FnOnce() + Send>;

/// Starts a detached thread named `name` with a stack of at least `stack_size` bytes (std
/// raises it to the system's minimum and whole pages). On failure `main` is handed back.
pub(crate) fn spawn(
    name: &'static CStr,
    stack_size: usize,
    main: Main,
) -> Result<(), (io::Error, Main)> {
    // std drops the closure when it cannot start the thread; held here instead, it comes back.
    let slot = Arc::new(Mutex::new(Some(main)));
    let theirs = slot.clone();
    let name = name.to_string_lossy().into_owned();
    let thread_name = name.clone();
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(stack_size)
        .spawn(move || {
            let main = theirs.lock().take();
            drop(theirs);
            // As on the Linux path: a panic that escapes the job ends this thread with a log
            // line.
            if let Some(main) = main
                && catch_unwind(AssertUnwindSafe(main)).is_err()
            {
                log::error!("a {thread_name} thread panicked");
            }
        });
    match spawned {
        // Detached: the handle is dropped, the thread runs on.
        Ok(_handle) => Ok(()),
        Err(e) => match slot.lock().take() {
            Some(main) => Err((e, main)),
            None => Ok(()),
        },
    }
}

/// A no-op here: the pages a thread touched stay resident until it exits (std gives no
/// portable way to find a thread's stack bounds).
pub(crate) fn release_unused_stack() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_named_with_the_requested_stack() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let main: Main = Box::new(move || {
            let name = std::thread::current().name().map(str::to_owned);
            // 300 KiB on a 1 MiB stack (debug builds may hold the array twice).
            let big = std::hint::black_box([3u8; 300 * 1024]);
            let _ = tx.send((name, big.iter().map(|&b| u64::from(b)).sum::<u64>()));
        });
        assert!(spawn(c"syncws-test", 1024 * 1024, main).is_ok());
        let (name, sum) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(name.as_deref(), Some("syncws-test"));
        assert_eq!(sum, 3 * 300 * 1024);
    }

    #[test]
    fn a_panicking_main_ends_its_thread_only() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        assert!(spawn(c"syncws-test", 64 * 1024, Box::new(|| panic!("boom"))).is_ok());
        assert!(
            spawn(
                c"syncws-test",
                64 * 1024,
                Box::new(move || tx.send(()).unwrap())
            )
            .is_ok()
        );
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    }
}
