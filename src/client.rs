//! The client role: settings and the factory for sockets.

use std::sync::{Arc, OnceLock};

use crate::config::{Config, socket_options};
use crate::driver;
use crate::driver::Shared;
use crate::listener::WebSocketListener;
use crate::request::Request;
use crate::websocket::WebSocket;

/// Opens web sockets. Cheap to clone; clones share settings and the TLS configuration.
///
/// ```no_run
/// use std::time::Duration;
/// let client = syncws::Client::builder()
///     .ping_interval(Duration::from_secs(20))
///     .build();
/// let request = syncws::Request::builder("wss://example.com/chat").build()?;
/// let ws = client.new_web_socket(request, syncws::Listener::new());
/// ws.send("hello");
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    tls: Option<native_tls::TlsConnector>,
    default_tls: OnceLock<Result<native_tls::TlsConnector, String>>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with the default settings.
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            config: Config::default(),
            tls: None,
        }
    }

    /// Starts connecting to `request` and returns at once.
    ///
    /// The connection, TLS and the handshake run on the socket's reader thread; `listener`
    /// hears how it goes (see [`WebSocketListener`] for the order of callbacks). Messages sent
    /// before the handshake completes go out right after it.
    pub fn new_web_socket(&self, request: Request, listener: impl WebSocketListener) -> WebSocket {
        // Asked for by the connect, for the URL it ends up at (a redirect can go to wss).
        let inner = self.inner.clone();
        let tls: driver::TlsSource = Arc::new(move || match &inner.tls {
            Some(c) => Ok(c.clone()),
            None => inner
                .default_tls
                .get_or_init(|| native_tls::TlsConnector::new().map_err(|e| e.to_string()))
                .clone(),
        });
        let (shared, queues) = Shared::new(request, self.inner.config.max_queue_size);
        let ws = WebSocket { shared };
        driver::spawn_client(
            ws.clone(),
            queues,
            self.inner.config.clone(),
            tls,
            Box::new(listener),
        );
        ws
    }
}

/// Settings for a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    config: Config,
    tls: Option<native_tls::TlsConnector>,
}

impl ClientBuilder {
    socket_options!();

    /// Timeout for the TCP connect, per resolved address. Default 10 s.
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How many redirects (301, 302, 303, 307, 308) of the upgrade request to follow before
    /// failing; 0 fails on the first. Default 10.
    ///
    /// `ws` to `wss` is followed, `wss` to `ws` is refused; `Authorization` and `Cookie` are
    /// dropped when the redirect goes to another scheme, host or port. The URL that finally
    /// answered is [`Response::url`](crate::Response::url).
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.config.max_redirects = max;
        self
    }

    /// The TLS configuration for `wss` URLs. Default: the system's trust roots, with hostname
    /// verification.
    pub fn tls_connector(mut self, connector: native_tls::TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                config: self.config,
                tls: self.tls,
                default_tls: OnceLock::new(),
            }),
        }
    }
}
