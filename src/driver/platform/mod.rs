//! Where syncws differs per operating system: one module per concern, each with the path
//! for the platforms that have something better and a portable path beside it. Nothing
//! outside this module names a platform.
//!
//! - [`threads`]: how a socket thread is started (Linux: pthreads, two mappings per thread;
//!   elsewhere `std::thread::Builder`).
//! - [`sockets`]: writing without waiting and SIGPIPE (Linux: `MSG_DONTWAIT | MSG_NOSIGNAL`;
//!   Apple: `SO_NOSIGPIPE`, and the writer thread writes; Windows: the writer thread writes).
//!
//! What differs in what users see (file-descriptor limits, ephemeral ports, stack overflows)
//! is in `docs/deploying.md`.

pub(crate) mod sockets;
pub(crate) mod threads;
