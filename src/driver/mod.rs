//! Threads and sockets: the one place where the pure protocol code meets I/O.
//!
//! Each socket has two OS threads:
//! - the **reader** (`syncws-reader`) connects, runs the handshake, then reads frames through
//!   the [`Decoder`](crate::decoder::Decoder) and runs every listener callback;
//! - the **writer** (`syncws-writer`) drains the queues, sends pings and keeps the timers.
//!
//! They share [`Shared`](crate::websocket::Shared): a mutex-guarded state, the queue-size
//! counter and the channels. See `docs/architecture.md`.

mod reader;
pub(crate) mod transport;
mod writer;

pub(crate) use reader::{spawn_client, spawn_server};

/// Stack size of the socket threads: they keep their buffers on the heap.
const STACK_SIZE: usize = 256 * 1024;
