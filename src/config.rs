//! Per-socket settings shared by the client and server roles.

use std::time::Duration;

/// Settings every socket of a client or server runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub ping_interval: Option<Duration>,
    pub pong_timeout: Option<Duration>,
    pub close_timeout: Option<Duration>,
    pub max_queue_size: u64,
    pub max_message_size: u64,
    /// Offer (client) or accept (server) permessage-deflate.
    pub compression: bool,
    /// Messages smaller than this go out uncompressed.
    pub min_compress_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: None,
            close_timeout: Some(Duration::from_secs(60)),
            max_queue_size: 16 * 1024 * 1024,
            max_message_size: 64 * 1024 * 1024,
            compression: true,
            min_compress_size: 1024,
        }
    }
}

impl Config {
    /// How long a ping may go unanswered: the pong timeout, or one ping interval.
    pub(crate) fn effective_pong_timeout(&self) -> Option<Duration> {
        self.ping_interval.map(|i| self.pong_timeout.unwrap_or(i))
    }
}

/// Builder setters common to `ClientBuilder` and `ServerBuilder`.
macro_rules! socket_options {
    () => {
        /// Timeout for writing a frame; a peer that stops reading for this long fails the socket
        /// with [`Error::WriteTimeout`](crate::Error::WriteTimeout). Default 10 s.
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

        /// How long to wait, once our close frame is written, for the peer's close frame (and,
        /// on the client, for the server to close TCP). `None` waits forever. Default 60 s.
        pub fn close_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            self.config.close_timeout = timeout;
            self
        }

        /// The most payload bytes `send` may have queued; a send past it returns false and
        /// starts a graceful close with 1001. Default 16 MiB. The number of queued messages is
        /// also capped, at one per 64 bytes of this limit (at least 1024), so that floods of
        /// empty messages cannot grow memory either.
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

        /// How long the opening handshake may take once connected (the peer's HTTP head must
        /// arrive within it, however slowly it trickles). Default 10 s.
        pub fn read_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.read_timeout = timeout;
            self
        }
    };
}

pub(crate) use socket_options;
