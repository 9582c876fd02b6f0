//! A TLS session of either backend as plain memory (a `TlsEngine`), behind the lock both halves
//! share.

use std::io;

#[cfg(feature = "native-tls")]
use super::native;
#[cfg(feature = "rustls")]
use super::rustls;

/// A TLS session of either backend, as plain memory: ciphertext in and out, plaintext in and
/// out. None of its methods does I/O or blocks.
pub(super) enum TlsEngine {
    #[cfg(feature = "native-tls")]
    Native(native::NativeEngine),
    #[cfg(feature = "rustls")]
    Rustls(rustls::RustlsEngine),
}

// `match *self` with `ref mut` bindings, so that the matches are still valid (and empty) in a
// build with no backend, where `TlsEngine` has no variants.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, clippy::ptr_arg)
)]
impl TlsEngine {
    /// Takes ciphertext from the network; returns how much of it the session took (it may
    /// stop early once it has plaintext to hand out, or after the peer's close_notify).
    pub(super) fn feed(&mut self, cipher: &[u8]) -> io::Result<usize> {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref mut s) => s.feed(cipher),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref mut s) => s.feed(cipher),
        }
    }

    /// Plaintext received: `Ok(0)` after the peer's close_notify, `WouldBlock` when the
    /// session needs more ciphertext.
    pub(super) fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref mut s) => s.read_plain(buf),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref mut s) => s.read_plain(buf),
        }
    }

    /// Encrypts all of `plain`; the records wait for [`take_output`](Self::take_output).
    pub(super) fn write_plain(&mut self, plain: &[u8]) -> io::Result<()> {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref mut s) => s.write_plain(plain),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref mut s) => s.write_plain(plain),
        }
    }

    /// Appends all ciphertext waiting to go out to `out`.
    pub(super) fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref mut s) => s.take_output(out),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref mut s) => s.take_output(out),
        }
    }

    /// Whether ciphertext is waiting to go out (records, an alert, a key update).
    pub(super) fn has_output(&self) -> bool {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref s) => s.has_output(),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref s) => s.has_output(),
        }
    }

    /// Queues close_notify: we will send no more data.
    pub(super) fn close_notify(&mut self) {
        match *self {
            #[cfg(feature = "native-tls")]
            TlsEngine::Native(ref mut s) => s.close_notify(),
            #[cfg(feature = "rustls")]
            TlsEngine::Rustls(ref mut s) => s.close_notify(),
        }
    }
}
