//! # syncws
//!
//! A WebSocket client and server for programs that are not async: desktop apps, command-line
//! tools, test suites. It follows OkHttp's model — a non-blocking [`WebSocket`] handle
//! (`send`, `close`, `cancel`, `queue_size`) plus a [`WebSocketListener`] whose callbacks
//! report open, message, closing, closed and failure — with no async runtime: each socket owns
//! a reader thread and a writer thread.
//!
//! ```no_run
//! use syncws::{Client, EchoServer, Listener, Request};
//!
//! let server = EchoServer::start()?;
//! let request = Request::builder(&server.url()).build()?;
//! let ws = Client::new().new_web_socket(
//!     request,
//!     Listener::new()
//!         .on_message(|ws, message| {
//!             println!("echo: {message:?}");
//!             let _ = ws.close(1000, Some("done"));
//!         })
//!         .on_closed(|_, code, reason| println!("closed {code} {reason}")),
//! );
//! ws.send("hello");
//! ws.wait_finished(std::time::Duration::from_secs(10));
//! # Ok::<(), syncws::Error>(())
//! ```
//!
//! ## Guarantees
//! 1. All callbacks of a socket run on one thread, one at a time, in wire order; exactly one
//!    terminal callback (`on_closed` or `on_failure`) ends the sequence.
//! 2. Callbacks may call `send`, `close` and `cancel` on their own socket.
//! 3. `send`, `close`, `cancel` and `queue_size` never block. Messages queued while connecting
//!    go out after the handshake; everything queued before `close` is written before the close
//!    frame.
//! 4. A `send` that would push `queue_size` past `max_queue_size` returns false and starts a
//!    graceful close with 1001.
//! 5. `close` validates its code and reason and returns `Err` for bad ones, never panics.
//! 6. When the peer closes first the socket answers with a close frame itself.
//! 7. Close, pong and write timeouts fail the socket with a specific [`Error`]; a panicking
//!    callback is caught, answered with close 1011 and reported as
//!    [`Error::ListenerPanicked`].
//! 8. When a socket ends, its connection is closed and both of its threads are released to a
//!    process-wide pool (they exit after `thread_keep_alive` without another socket).
//!
//! Bad input from the network never panics and never grows memory without bound: protocol
//! violations are answered with a close frame (1002, 1007 for bad UTF-8, 1009 for oversized
//! messages) before the connection is dropped.
//!
//! ## TLS
//! `wss` uses the backend chosen by Cargo feature: `native-tls` (the default: the platform's
//! library and trust store) or `rustls` (ring crypto; the platform's roots, or the Mozilla
//! roots with `rustls-webpki-roots`), configured with `ClientBuilder::tls_connector` /
//! `ServerBuilder::tls` or `ClientBuilder::rustls_config` / `ServerBuilder::rustls`. With both
//! built, a client given no configuration uses native-tls. With neither, `wss` sockets fail
//! with [`Error::Tls`] saying so. See `docs/tls.md`.
//!
//! ## Layout
//! Protocol logic is pure data in, data out (`proto`): frame parsing, the decoder and encoder,
//! masking, UTF-8 validation, permessage-deflate, the handshake, close-code rules and the
//! timers as a state machine. Threads and sockets live only in `driver`; the public API is at
//! the top. See `docs/architecture.md`.
#![deny(missing_docs)]
// docs.rs builds with nightly rustdoc and `--cfg docsrs` (`[package.metadata.docs.rs]`): there
// each feature-gated item says which feature it needs. `.ci/run` builds the docs the same way.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The one exception, with its measured reason, is `driver/platform/threads/linux.rs` (and the
// socket flags of `driver/platform/sockets.rs`, through socket2 and libc's safe wrappers).
#![deny(unsafe_code)]

mod byte_stream;
mod client;
mod config;
mod connection;
mod driver;
mod ended;
mod error;
mod factory;
// `--cfg fuzzing`, which cargo-fuzz sets when it builds the targets in `fuzz/` (h2 does the
// same): no dependent can switch it on through a feature.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz;
mod header;
#[cfg(feature = "http")]
mod http_types;
mod listener;
mod message;
mod panics;
mod prepared;
mod proto;
mod proxy;
mod receipt;
mod reconnect;
mod redact;
mod request;
mod response;
mod server;
mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod topics;
mod waiting;
mod websocket;

pub use byte_stream::{ByteReader, ByteStream, ByteWriter, MAX_WRITE};
pub use client::{Client, ClientBuilder};
pub use connection::{Connection, MessageReader, connect};
pub use ended::Ended;
pub use error::{Error, ProtocolError};
pub use factory::WebSocketFactory;
pub use header::Header;
pub use listener::{
    ChannelListener, DEFAULT_CHANNEL_LIMIT, EVENT_CHARGE, Event, Events, Listener,
    WebSocketListener, channel, channel_with_limit, channel_with_waker,
};
pub use message::{Message, MessageKind, MessagePart};
pub use prepared::{Delivery, Prepared, WhenFull};
pub use proto::forwarded::ForwardedHeader;
pub use proxy::Proxy;
pub use receipt::{Receipt, WriteStatus};
pub use reconnect::{
    DEFAULT_INITIAL_DELAY, DEFAULT_JITTER, DEFAULT_MAX_DELAY, DEFAULT_MULTIPLIER, Reconnect,
    ReconnectState, ReconnectingWebSocket, Retry,
};
pub use redact::url as redact_url;
pub use request::{Request, RequestBuilder};
pub use response::Response;
pub use server::{Accept, EchoServer, Server, ServerBuilder};
pub use stats::{ServerStats, Stats};
pub use topics::Topics;
pub use websocket::{SendTimeoutError, State, WebSocket};

// The README's recipes are compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// So are the streams guide's (docs/streams.md).
#[doc = include_str!("../docs/streams.md")]
#[cfg(doctest)]
pub struct StreamsDoctests;

// So are the test kit's (docs/testing.md).
#[doc = include_str!("../docs/testing.md")]
#[cfg(all(doctest, feature = "testing"))]
pub struct TestingDoctests;

/// Re-exported for the error types of [`Events`]' receive methods.
pub use crossbeam_channel;
/// Re-exported for the `http` feature's conversions.
#[cfg(feature = "http")]
pub use http;
/// Re-exported so callers can name the types of [`ClientBuilder::tls_connector`] and
/// [`ServerBuilder::tls`] (feature `native-tls`).
#[cfg(feature = "native-tls")]
pub use native_tls;
/// Re-exported so callers can build the configs of [`ClientBuilder::rustls_config`] and
/// [`ServerBuilder::rustls`] (feature `rustls`) with the same rustls version syncws uses.
#[cfg(feature = "rustls")]
pub use rustls;
