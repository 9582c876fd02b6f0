//! Per-socket settings shared by the client and server roles.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::proto::encoder::EncoderConfig;
use crate::proto::rate::Rate;
use crate::proto::timers::TimerConfig;
use crate::proxy::Proxy;

type ResolveFn = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Resolves a host name and port to socket addresses. The default asks the system
/// (`getaddrinfo`); [`ClientBuilder::dns_resolver`](crate::ClientBuilder::dns_resolver) sets
/// another. The driver runs it on a thread of its own (`driver/connect/dns.rs`).
#[derive(Clone)]
pub(crate) struct Resolver(Arc<ResolveFn>);

impl Resolver {
    /// The system's resolver.
    pub(crate) fn system() -> Resolver {
        Resolver(Arc::new(|host, port| {
            Ok((host, port).to_socket_addrs()?.collect())
        }))
    }

    pub(crate) fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        (self.0)(host, port)
    }

    pub(crate) fn new(
        f: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Resolver {
        Resolver(Arc::new(f))
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// Settings every socket of a client or server runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub connect_timeout: Duration,
    /// TLS, the upgrade request and its answer, from the TCP connection on.
    pub handshake_timeout: Duration,
    pub write_timeout: Duration,
    pub ping_interval: Option<Duration>,
    pub pong_timeout: Option<Duration>,
    pub close_timeout: Option<Duration>,
    pub max_queue_size: u64,
    pub max_message_size: u64,
    /// The largest message received as a stream (`None`: `max_message_size`).
    pub max_streamed_message_size: Option<u64>,
    /// Offer (client) or accept (server) permessage-deflate.
    pub compression: bool,
    /// Messages smaller than this go out uncompressed.
    pub min_compress_size: usize,
    /// zlib level for permessage-deflate.
    pub compression_level: u32,
    /// Outgoing messages larger than this go out as several frames.
    pub fragment_size: usize,
    /// Stack size of the socket's reader and writer threads.
    pub thread_stack_size: usize,
    /// How long a socket thread, once its socket ended, waits in the pool for another socket.
    pub thread_keep_alive: Duration,
    /// Idle time before TCP keepalive probes start; `None` leaves the OS default (off).
    pub tcp_keepalive: Option<Duration>,
    /// Redirects of the upgrade a client follows (0: none).
    pub max_redirects: u32,
    /// How the client role reaches servers (the server role ignores it).
    pub proxy: Proxy,
    /// How the client role looks names up (the server role ignores it).
    pub resolver: Resolver,
    /// How fast the peer may send messages (`None`: as fast as it likes).
    pub max_receive_rate: Option<Rate>,
}

/// Default stack size of socket threads. Callbacks run on the reader thread, so this is what
/// application code in `on_message` gets: 256 KiB is plenty for ordinary code (the main
/// thread's is 8 MiB; Rust's spawned threads default to 2 MiB) and costs only the pages a
/// thread touches, about 8-12 KiB for ours. A stack overflow aborts the whole process, so raise
/// it (`thread_stack_size`) for deep recursion or big arrays on the stack in callbacks.
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: None,
            close_timeout: Some(Duration::from_secs(60)),
            max_queue_size: 16 * 1024 * 1024,
            max_message_size: 64 * 1024 * 1024,
            max_streamed_message_size: None,
            compression: true,
            min_compress_size: 1024,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            fragment_size: 1024 * 1024,
            thread_stack_size: DEFAULT_STACK_SIZE,
            thread_keep_alive: Duration::from_secs(10),
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            proxy: Proxy::none(),
            resolver: Resolver::system(),
            max_receive_rate: None,
        }
    }
}

/// The most messages a socket queues: one per 64 bytes of `max_queue_size`, at least 1024
/// (262,144 for the default 16 MiB), so a flood of empty messages is bounded too.
pub(crate) fn max_queued_messages(max_queue_size: u64) -> u64 {
    (max_queue_size / 64).max(1024)
}

/// Redirects a client follows by default: as many as OkHttp and browsers' fetch (20 for
/// fetch) allow for a loop to show, with room for ordinary chains.
pub(crate) const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// TCP keepalive: probes start after this much silence on the connection...
pub(crate) const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// ...and go every this often, this many times, before the OS drops the connection: a peer
/// that vanished (a NAT mapping gone, a machine off) is noticed after about 90 s.
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Sets TCP keepalive on a connection as configured. Failures are logged, not fatal: a
/// connection without keepalive still works.
pub(crate) fn apply_tcp_keepalive(tcp: &std::net::TcpStream, idle: Option<Duration>) {
    let Some(idle) = idle.filter(|d| !d.is_zero()) else {
        return;
    };
    // The kernel takes whole seconds up to i32::MAX; clamp rather than fail on huge values.
    let idle = idle.clamp(Duration::from_secs(1), Duration::from_secs(i32::MAX as u64));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(TCP_KEEPALIVE_INTERVAL.min(idle))
        .with_retries(TCP_KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        log::debug!("could not set TCP keepalive: {e}");
    }
}

impl Config {
    /// The server role's defaults: the client's, with limits sized for many untrusted peers
    /// (see `docs/robustness.md` for the memory budget they add up to) and pings on, so that
    /// dead and silent peers free their slot.
    pub(crate) fn server_default() -> Self {
        Config {
            ping_interval: Some(SERVER_PING_INTERVAL),
            max_message_size: SERVER_MAX_MESSAGE_SIZE,
            max_queue_size: SERVER_MAX_QUEUE_SIZE,
            ..Config::default()
        }
    }
}

/// The server pings every peer this often, and drops one whose pong does not come back within
/// the same time: a silent or vanished client holds its slot for at most a minute.
pub(crate) const SERVER_PING_INTERVAL: Duration = Duration::from_secs(30);
/// The server's largest incoming message (Python `websockets` uses the same).
pub(crate) const SERVER_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;
/// The server's send queue limit per connection.
pub(crate) const SERVER_MAX_QUEUE_SIZE: u64 = 1024 * 1024;

/// A message received as a stream is handed over in parts of about this size.
pub(crate) const PART_SIZE: usize = 64 * 1024;

impl Config {
    /// Whether a `Connection` takes large messages in parts from its start, not only from
    /// its first `recv_stream`: when streams may be larger than whole messages, the first
    /// message must not be refused whole for its size.
    pub(crate) fn streams_from_start(&self) -> bool {
        self.max_streamed_message_size
            .is_some_and(|s| s > self.max_message_size)
    }

    /// How the decoder hands over messages received as streams.
    pub(crate) fn parts(&self) -> crate::proto::decoder::Parts {
        crate::proto::decoder::Parts {
            size: PART_SIZE,
            max_message_size: self
                .max_streamed_message_size
                .unwrap_or(self.max_message_size),
        }
    }
}

/// Default zlib level; see `docs/compression.md` for the measurement behind it.
pub(crate) const DEFAULT_COMPRESSION_LEVEL: u32 = 3;

impl Config {
    /// The timer settings: the pong timeout is one ping interval unless set. A zero pong or
    /// close timeout means none (the deadline is never reached).
    pub(crate) fn timers(&self) -> TimerConfig {
        let pong = self.pong_timeout.or(self.ping_interval).unwrap_or_default();
        TimerConfig {
            ping_interval: self.ping_interval,
            pong_timeout: if pong.is_zero() { Duration::MAX } else { pong },
            close_timeout: self.close_timeout.filter(|t| !t.is_zero()),
        }
    }

    /// The socket option for the write timeout: `None` (block) for zero.
    pub(crate) fn write_timeout_option(&self) -> Option<Duration> {
        (!self.write_timeout.is_zero()).then_some(self.write_timeout)
    }

    pub(crate) fn encoder(&self) -> EncoderConfig {
        EncoderConfig {
            min_compress_size: self.min_compress_size,
            fragment_size: self.fragment_size,
            compression_level: self.compression_level,
        }
    }
}

/// Builder setters common to `ClientBuilder` and `ServerBuilder`.
macro_rules! socket_options {
    () => {
        /// Timeout for writing a frame; a peer that stops reading for this long fails the socket
        /// with [`Error::WriteTimeout`](crate::Error::WriteTimeout). Default 10 s.
        ///
        /// For every timeout of this builder, `Duration::ZERO` means no timeout and any
        /// duration up to `Duration::MAX` is accepted (one too long to add to the clock never
        /// fires); none of them can make a socket thread panic.
        pub fn write_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.write_timeout = timeout;
            self
        }

        /// Sends a ping this often once the socket is open; `Duration::ZERO` turns pings off.
        /// Default off.
        pub fn ping_interval(mut self, interval: std::time::Duration) -> Self {
            self.config.ping_interval = (!interval.is_zero()).then_some(interval);
            self
        }

        /// How long a ping may go unanswered before the socket fails with
        /// [`Error::PongTimeout`](crate::Error::PongTimeout). Default: one ping interval.
        pub fn pong_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.pong_timeout = Some(timeout);
            self
        }

        /// How long a close may take from its start (`close()`, the queue-overflow close, or
        /// the answer to the peer's close) until the connection is closed: writing what was
        /// queued before it, our close frame, the peer's close frame and (on the client) the
        /// server closing TCP. A peer that reads too slowly to take the queue in this time
        /// fails the socket with [`Error::CloseTimeout`](crate::Error::CloseTimeout).
        /// `None` (or zero) waits forever. Default 60 s.
        pub fn close_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            self.config.close_timeout = timeout;
            self
        }

        /// The most payload bytes `send` may have queued; a send past it returns false and
        /// starts a graceful close with 1001. Default 16 MiB. The number of queued messages is
        /// also capped, at one per 64 bytes of this limit (at least 1024), so that floods of
        /// empty messages cannot grow memory either.
        /// [`WebSocket::send_timeout`](crate::WebSocket::send_timeout) waits for room under
        /// this limit instead.
        pub fn max_queue_size(mut self, bytes: u64) -> Self {
            self.config.max_queue_size = bytes;
            self
        }

        /// The largest incoming message accepted; a bigger one fails the socket with close
        /// 1009 before its payload is buffered. Default 64 MiB.
        pub fn max_message_size(mut self, bytes: u64) -> Self {
            self.config.max_message_size = bytes;
            self
        }

        /// The largest incoming message received as a stream
        /// ([`Connection::recv_stream`](crate::Connection::recv_stream),
        /// [`WebSocketListener::on_message_part`](crate::WebSocketListener::on_message_part),
        /// a [`ByteStream`](crate::ByteStream)); a bigger one fails the socket with close 1009
        /// once it passes the limit. Default: `max_message_size`. A stream's memory is one part
        /// (64 KiB) whatever its size, so this may be raised far above `max_message_size`, or
        /// lifted with `u64::MAX`; what it still answers is a peer that sends one message for
        /// ever (a disk filled by an application that writes streams to files).
        pub fn max_streamed_message_size(mut self, bytes: u64) -> Self {
            self.config.max_streamed_message_size = Some(bytes);
            self
        }

        /// Whether to use permessage-deflate (RFC 7692) when the peer agrees. Default on.
        /// With it off the client offers nothing and the server declines every offer.
        pub fn compression(mut self, enabled: bool) -> Self {
            self.config.compression = enabled;
            self
        }

        /// Messages smaller than this many bytes are sent uncompressed even when compression
        /// is in use: deflate gains little on them and costs CPU. Default 1024 (OkHttp's).
        pub fn min_compress_size(mut self, bytes: usize) -> Self {
            self.config.min_compress_size = bytes;
            self
        }

        /// zlib's compression level for permessage-deflate, 0 (store only) to 9 (smallest);
        /// larger values count as 9. Default 3: within 12% of level 6's wire size at 1.4
        /// times its speed (measured in `docs/compression.md`, which has every level).
        pub fn compression_level(mut self, level: u32) -> Self {
            self.config.compression_level = level.min(9);
            self
        }

        /// Outgoing messages larger than this many payload bytes are sent as several frames,
        /// so that pongs and the close frame can go out between them instead of waiting
        /// behind a whole 16 MiB message. Default 1 MiB: smaller fragments cost receivers
        /// (measured against tungstenite's server, 64 KiB fragments halved the throughput of
        /// 1 MiB messages; see `docs/benchmarks.md`). Values under 1 count as 1.
        pub fn fragment_size(mut self, bytes: usize) -> Self {
            self.config.fragment_size = bytes.max(1);
            self
        }

        /// Stack size of each socket's reader and writer threads. Listener callbacks run on
        /// the reader thread, so this is the stack your `on_message` gets. Default 256 KiB,
        /// of which a socket touches (and so costs in memory) only a few pages. A stack
        /// overflow aborts the process: raise this for deep recursion or large arrays on the
        /// stack in callbacks. Values under 64 KiB count as 64 KiB; the size is then raised to
        /// the system's minimum thread stack if that is larger, and rounded up to whole pages.
        pub fn thread_stack_size(mut self, bytes: usize) -> Self {
            self.config.thread_stack_size = bytes.max(64 * 1024);
            self
        }

        /// Socket threads come from a process-wide pool: when a socket ends, its two threads
        /// wait this long for a later socket before they exit, so that a connect costs no
        /// thread spawn once warm. Default 10 s; `Duration::ZERO` lets them exit at once.
        pub fn thread_keep_alive(mut self, keep_alive: std::time::Duration) -> Self {
            self.config.thread_keep_alive = keep_alive;
            self
        }

        /// TCP keepalive: after this much silence the OS probes the peer (every 10 s, 3
        /// times) and drops the connection if nothing answers, so a peer that vanished without
        /// a FIN (a NAT mapping that expired, a machine switched off) frees its socket even
        /// when WebSocket pings are off. Default 60 s; `None` (or zero) leaves keepalive off.
        pub fn tcp_keepalive(mut self, idle: Option<std::time::Duration>) -> Self {
            self.config.tcp_keepalive = idle;
            self
        }

        /// Reads at most `bytes_per_second` of message payload a second from the peer, on
        /// average, in bursts of up to `burst` bytes: a peer that sends faster is held back by
        /// TCP flow control (this socket's reader rests, nothing is dropped and nobody is
        /// closed). Each message is charged whole once delivered, so one message larger than
        /// the burst still gets through, and the reader then rests until it is paid for.
        /// While it rests the peer's pings and close wait, as with a full
        /// [`channel`](crate::channel), and our pong timeout is held.
        ///
        /// What it answers: one fast sender whose messages the application passes on to
        /// many slower peers (a chat room's broadcast, [`Prepared::send_to`](crate::Prepared::send_to)),
        /// which would otherwise fill every receiver's send queue. With it, a receiver that
        /// reads faster than the senders' rates added up keeps up. `bytes_per_second` 0 (the
        /// default) means no limit; see `docs/deploying.md` for the broadcast pattern.
        ///
        /// ```
        /// let server = syncws::Server::builder()
        ///     .max_message_size(64 * 1024)
        ///     .max_receive_rate(64 * 1024, 256 * 1024); // 64 KiB/s, bursts of 256 KiB
        /// # let _ = server;
        /// ```
        pub fn max_receive_rate(mut self, bytes_per_second: u64, burst: u64) -> Self {
            self.config.max_receive_rate =
                (bytes_per_second > 0).then_some(crate::proto::rate::Rate {
                    per_second: bytes_per_second,
                    burst,
                });
            self
        }

        /// How long the opening handshake may take once connected: TLS, writing the upgrade
        /// request or answer (a peer that never reads cannot hold it), and the peer's HTTP
        /// head, however slowly it trickles; past it the socket fails with
        /// [`Error::ReadTimeout`](crate::Error::ReadTimeout) (a server drops the connection).
        /// Default 10 s.
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.handshake_timeout = timeout;
            self
        }

        /// The former name of [`handshake_timeout`](Self::handshake_timeout): it bounds the
        /// opening handshake, not reads in general (after the handshake there is no read
        /// timeout; pings find dead peers).
        #[deprecated(since = "0.2.0", note = "renamed `handshake_timeout`")]
        pub fn read_timeout(self, timeout: std::time::Duration) -> Self {
            self.handshake_timeout(timeout)
        }
    };
}

pub(crate) use socket_options;
