//! Socket threads started with `pthread_create` directly: the Linux path of [`threads`](super).
//!
//! A thread from `std::thread` costs four memory mappings: its stack and guard page, and the
//! alternate signal stack (and its guard page) that std sets up on every thread to report stack
//! overflows. A process may have `vm.max_map_count` mappings, 65,530 by default, so std threads
//! cap a process at about 16,000 threads: 8,000 sockets at two threads each, short of the
//! 10,000 this crate promises. A pthread made here costs two mappings (measured: 4.15 per std
//! thread, 2 per pthread, with 200 threads of 256 KiB each).
//!
//! The price: without the alternate signal stack, a stack overflow in a socket thread (in a
//! listener callback, say) kills the process with SIGSEGV instead of printing "has overflowed
//! its stack" and aborting. Either way the process ends; `thread_stack_size` is the knob.
//!
//! Everything else std needs works on such threads: thread-locals and their destructors,
//! `thread::current()`, `catch_unwind`, parking.
#![allow(unsafe_code)]
// Every `unsafe` block below calls glibc's (or musl's) pthread, sysconf and madvise as Linux
// defines them; this module is compiled for `target_os = "linux"` only.

use std::ffi::CStr;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

/// What a socket thread runs.
pub(crate) type Main = Box<dyn FnOnce() + Send>;

/// The closure and the name, handed to the new thread through one pointer.
struct Start {
    name: &'static CStr,
    main: Main,
}

/// Starts a detached thread named `name` (at most 15 bytes) with a stack of `stack_size`
/// bytes. On failure `main` is handed back.
pub(crate) fn spawn(
    name: &'static CStr,
    stack_size: usize,
    main: Main,
) -> Result<(), (io::Error, Main)> {
    let start = Box::into_raw(Box::new(Start { name, main }));
    let stack_size = stack_request(stack_size, stack_min(), page_size());
    // SAFETY: `attr` is initialised by pthread_attr_init before any other use and destroyed
    // once; `start` is a valid pointer from Box::into_raw, whose ownership passes to the new
    // thread when pthread_create succeeds (it is reclaimed below when it fails).
    let result = unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        let mut r = libc::pthread_attr_init(attr.as_mut_ptr());
        if r == 0 {
            r = libc::pthread_attr_setstacksize(attr.as_mut_ptr(), stack_size);
            if r == 0 {
                r = libc::pthread_attr_setdetachstate(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_CREATE_DETACHED,
                );
            }
            if r == 0 {
                let mut thread: libc::pthread_t = 0;
                r = libc::pthread_create(&mut thread, attr.as_ptr(), trampoline, start.cast());
            }
            libc::pthread_attr_destroy(attr.as_mut_ptr());
        }
        r
    };
    if result == 0 {
        return Ok(());
    }
    // SAFETY: the thread was not created, so `start` is still ours, and reclaimed once.
    let start = unsafe { Box::from_raw(start) };
    Err((io::Error::from_raw_os_error(result), start.main))
}

thread_local! {
    /// The lowest address of this thread's stack, for threads started here (0 elsewhere).
    static STACK_LOW: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Returns to the OS the stack pages below the caller's frame that this thread touched
/// earlier (a deep TLS handshake, a deep callback). Every page a thread ever touched stays
/// resident otherwise, and pooled threads live on: measured, this takes the reader thread of
/// an idle plain socket from 12 KiB of resident stack to 8. A no-op on other threads.
#[inline(never)]
pub(crate) fn release_unused_stack() {
    let low = STACK_LOW.with(|l| l.get());
    if low == 0 {
        return;
    }
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let Some((start, len)) = release_range(low, here, page_size()) else {
        return;
    };
    // SAFETY: `release_range` returns a range of whole pages of the real page size, from
    // `low` (this thread's stack bottom, page-aligned, as pthread_getattr_np reported at
    // start) up to a page boundary at least `MARGIN` bytes below this frame. The stack grows
    // down, so every live frame is above the range, and because the length is a whole number
    // of pages madvise does not round it up into them (it would on a 16 or 64 KiB page
    // kernel if the range were cut at 4 KiB). A signal handler cannot be running on the range
    // either: signals are delivered when the syscall returns. MADV_DONTNEED on private
    // anonymous memory only drops the pages; the next touch maps a zeroed page, which unused
    // stack may be.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

/// Bytes left in use below the caller's frame when the stack is released: the madvise call
/// itself (a libc stub and the syscall) and the red zone run there.
const MARGIN: usize = 1024;

/// The whole pages of `[low, here - MARGIN)`, as (start, length), or `None` when there is not
/// one. `page` must be a power of two; `low` is page-aligned (a stack's bottom is).
fn release_range(low: usize, here: usize, page: usize) -> Option<(usize, usize)> {
    debug_assert!(page.is_power_of_two());
    let end = here.checked_sub(MARGIN)? & !(page - 1);
    let len = end.checked_sub(low)?;
    (len > 0 && low.is_multiple_of(page)).then_some((low, len))
}

/// The stack size to ask pthread for: at least the system's minimum, rounded up to whole
/// pages (some systems refuse other sizes), and the minimum itself if rounding overflows.
fn stack_request(requested: usize, min: usize, page: usize) -> usize {
    let size = requested.max(min);
    size.checked_next_multiple_of(page).unwrap_or(min)
}

/// The page size of this system (4 KiB on most x86-64, 16 KiB on Apple silicon and some
/// aarch64 kernels, 64 KiB on ppc64le and aarch64 `-64k` kernels), read once.
fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// The smallest stack pthread accepts here: `sysconf(_SC_THREAD_STACK_MIN)` (glibc 2.34 and
/// later compute it at run time), at least the compile-time `PTHREAD_STACK_MIN`.
fn stack_min() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let n = unsafe { libc::sysconf(libc::_SC_THREAD_STACK_MIN) };
    usize::try_from(n).unwrap_or(0).max(libc::PTHREAD_STACK_MIN)
}

/// This thread's stack bottom, from pthread_getattr_np.
fn stack_low() -> usize {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: pthread_getattr_np initialises `attr` on success, which is then read and
    // destroyed once; on failure nothing is read.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return 0;
        }
        let r = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if r != 0 {
            return 0;
        }
    }
    addr as usize
}

extern "C" fn trampoline(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the pointer `spawn` made with Box::into_raw and gave this thread alone.
    let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
    let Start { name, main } = *start;
    // SAFETY: `name` is a NUL-terminated string of at most 16 bytes, as Linux requires.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), name.as_ptr());
    }
    STACK_LOW.with(|l| l.set(stack_low()));
    // A panic must not unwind into C. Socket code catches listener panics itself; anything
    // else ends this thread with a log line, as it would end a std thread.
    if catch_unwind(AssertUnwindSafe(main)).is_err() {
        log::error!("a {} thread panicked", name.to_string_lossy());
    }
    std::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 1024;

    #[test]
    fn the_released_range_is_whole_pages_of_the_real_size_below_the_frame() {
        for page in [4 * K, 16 * K, 64 * K] {
            let low = 0x7f00_0000_0000 & !(64 * K - 1);
            // A frame at every offset across two pages above a deep stack.
            for offset in (0..2 * page).step_by(8) {
                let here = low + 256 * K + offset;
                let (start, len) = release_range(low, here, page).expect("pages to release");
                assert_eq!(start, low);
                assert_eq!(
                    len % page,
                    0,
                    "page {page}: length {len} is not whole pages"
                );
                // madvise acts on [start, start + len): it must stay below the margin.
                assert!(start + len <= here - MARGIN, "page {page}, here {here:#x}");
                // And it releases everything up to the last whole page under the margin.
                assert!(start + len + page > here - MARGIN);
            }
        }
        // Nothing to release: the frame is within the first page (plus the margin).
        assert_eq!(release_range(64 * K, 64 * K + 500, 4 * K), None);
        assert_eq!(release_range(64 * K, 64 * K + 60 * K, 64 * K), None);
        // A bottom that is not page-aligned (never seen) releases nothing rather than guess.
        assert_eq!(release_range(64 * K + 8, 256 * K, 4 * K), None);
        // No underflow near address zero.
        assert_eq!(release_range(0, 100, 4 * K), None);
    }

    #[test]
    fn stack_sizes_are_at_least_the_minimum_and_whole_pages() {
        assert_eq!(stack_request(256 * K, 16 * K, 4 * K), 256 * K);
        assert_eq!(stack_request(100 * K + 1, 16 * K, 64 * K), 128 * K);
        assert_eq!(stack_request(1, 128 * K, 64 * K), 128 * K);
        assert_eq!(stack_request(usize::MAX, 16 * K, 4 * K), 16 * K);
        assert!(page_size().is_power_of_two());
        assert!(stack_min() >= libc::PTHREAD_STACK_MIN);
    }

    #[test]
    fn runs_named_with_the_requested_stack() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let main: Main = Box::new(move || {
            let tid = std::fs::read_link("/proc/thread-self").unwrap();
            let comm = std::fs::read_to_string(format!(
                "/proc/self/task/{}/comm",
                tid.file_name().unwrap().to_str().unwrap()
            ))
            .unwrap();
            // 300 KiB on a 1 MiB stack (debug builds may hold the array twice).
            let big = std::hint::black_box([3u8; 300 * 1024]);
            let _ = tx.send((
                comm.trim_end().to_owned(),
                big.iter().map(|&b| u64::from(b)).sum::<u64>(),
            ));
        });
        assert!(spawn(c"syncws-test", 1024 * 1024, main).is_ok());
        let (comm, sum) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(comm, "syncws-test");
        assert_eq!(sum, 3 * 300 * 1024);
    }

    /// Resident KiB of the mapping that holds `addr` (this thread's stack).
    fn resident_kib_at(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
            if inside && let Some(v) = line.strip_prefix("Rss:") {
                return v.trim().trim_end_matches(" kB").trim().parse().unwrap();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[inline(never)]
    fn touch_deep(kib: usize) -> u8 {
        let mut block = [0u8; 1024];
        block[0] = kib as u8;
        let block = std::hint::black_box(block);
        if kib == 0 {
            block[0]
        } else {
            touch_deep(kib - 1).wrapping_add(block[0])
        }
    }

    #[test]
    fn releases_the_stack_a_deep_call_touched() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let main: Main = Box::new(move || {
            let marker = 0u8;
            let here = std::hint::black_box(&marker) as *const u8 as usize;
            std::hint::black_box(touch_deep(100));
            let deep = resident_kib_at(here);
            release_unused_stack();
            let after = resident_kib_at(here);
            let _ = tx.send((deep, after));
        });
        assert!(spawn(c"syncws-test", 512 * 1024, main).is_ok());
        let (deep, after) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert!(deep >= 100, "the deep call touched {deep} KiB");
        assert!(after + 64 < deep, "{deep} KiB before, {after} KiB after");
    }
}
