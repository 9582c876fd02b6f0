//! The WebSocket protocol as plain data in, data out: no sockets, threads or locks.
//!
//! Everything here is unit-tested byte by byte. The [`driver`](crate::driver) feeds it bytes
//! read from the network and `Instant`s, and carries out what it returns.
//!
//! - [`frame`]: frame headers (RFC 6455 §5.2).
//! - [`mask`]: payload masking and mask keys (§5.3).
//! - [`utf8`]: incremental, fail-fast UTF-8 validation (§8.1).
//! - [`close`]: close codes and close payloads (§7.4).
//! - [`decoder`]: bytes → messages and control frames, with limits.
//! - [`encoder`]: messages and control frames → bytes (masking, deflate, fragmentation).
//! - [`deflate`]: permessage-deflate negotiation and codec (RFC 7692).
//! - [`handshake`]: the HTTP upgrade, both roles (§4).
//! - [`redirect`]: where a redirected upgrade goes next, and with which headers.
//! - [`backoff`]: the reconnect delays (exponential, capped, jittered) and which endings are
//!   retried.
//! - [`session`]: a socket's lifecycle (state, close handshake, who ends TCP, the first
//!   failure, the timers, how it ended) as a state machine.
//! - [`timers`]: the connection's ping, pong and close deadlines as a state machine.
//! - [`tunnel`]: proxy handshakes, HTTP `CONNECT` and SOCKS5.
//! - [`forwarded`]: who the client is behind a proxy (PROXY header, forwarded headers).
//! - [`rate`]: `max_receive_rate`'s token bucket.

pub(crate) mod backoff;
pub(crate) mod close;
pub(crate) mod decoder;
pub(crate) mod deflate;
pub(crate) mod encoder;
pub(crate) mod forwarded;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod mask;
pub(crate) mod rate;
pub(crate) mod redirect;
pub(crate) mod session;
pub(crate) mod timers;
pub(crate) mod tunnel;
pub(crate) mod utf8;

/// Which end of the connection we are; decides which frames are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection: our frames are masked, the peer's must not be.
    Client,
    /// We accepted it: the peer's frames must be masked, ours are not.
    Server,
}
