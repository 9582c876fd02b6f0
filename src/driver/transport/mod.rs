//! The byte pipe under a socket: plain TCP, or a TLS session that both threads share.
//!
//! A blocking TLS stream cannot be shared by a reader and a writer thread: the reader would
//! hold it (and any lock around it) while waiting for data, and the writer could not send. So
//! the threads do the TCP I/O themselves, outside any lock, and hold the session's lock
//! ([`TlsEngine`](engine::TlsEngine)) only for the moment it takes to encrypt or decrypt:
//!
//! ```text
//!   reader thread                                   writer thread
//!   tcp.read(raw) ──▶ lock{ session.feed(raw);       lock{ session.write_plain(plain);
//!                          session.read_plain() }         session.take_output() } ──▶ tcp.write_all
//! ```
//!
//! Each backend is one module: `native.rs` runs a `native_tls` session over an in-memory
//! transport (`Pipe`), `rustls.rs` drives a `rustls::Connection`, which is sans-I/O already.
//! With no TLS feature there is no session type at all, and a `wss` URL fails before it
//! connects (`client.rs`).

mod engine;
mod halves;
#[cfg(any(feature = "native-tls", feature = "rustls"))]
mod handshake;
#[cfg(feature = "native-tls")]
mod native;
#[cfg(feature = "rustls")]
mod rustls;
mod stall;
mod tcp;
mod tls;

pub(crate) use halves::{ReadHalf, WriteHalf, drain_until_eof, for_writer, plain, set_deadline};
pub(crate) use stall::{CloseDeadline, OnStall};
pub(crate) use tcp::is_stall;
pub(crate) use tls::{Acceptor, Connector, default_connector, tls_accept, tls_connect};
