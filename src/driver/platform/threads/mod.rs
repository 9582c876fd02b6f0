//! Starting socket threads: detached, named (`syncws-reader`, `syncws-writer`, `syncws-dns`)
//! and with the stack size the socket asked for. The pool (`driver/pool.rs`) is the same on
//! every platform; only how a thread is started differs:
//!
//! - **Linux** ([`linux`]): `pthread_create` directly, two memory mappings per thread instead
//!   of std's four (the reason, measured, is in that module), and the stack pages a thread
//!   touched deep down given back before it waits (`madvise`).
//! - **Everywhere else** ([`portable`]): `std::thread::Builder` with the same names and stack
//!   sizes. std sets the OS thread name (`pthread_setname_np` on the thread itself on Apple,
//!   `SetThreadDescription` on Windows) and rounds the stack up to what the OS accepts. Touched
//!   stack pages stay resident until the thread exits.

#[cfg(target_os = "linux")]
mod linux;
// Compiled everywhere, so that its tests run on Linux too; used where there is no Linux path.
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable;

// Each path has the same three items (`Main`, what a socket thread runs, is the same type in
// both, declared in each so that neither imports this module back).
#[cfg(target_os = "linux")]
pub(crate) use linux::{Main, release_unused_stack, spawn};
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{Main, release_unused_stack, spawn};
