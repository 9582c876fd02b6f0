//! The client role: settings and the factory for sockets.

use std::sync::{Arc, OnceLock};

use crate::config::{Config, socket_options};
use crate::driver;
use crate::driver::Socket;
use crate::driver::backlog::Backlog;
use crate::driver::callbacks::Callbacks;
use crate::driver::transport::{self, Connector};
use crate::factory::WebSocketFactory;
use crate::listener::{Bound, WebSocketListener};
use crate::proxy::Proxy;
use crate::request::Request;
use crate::websocket::WebSocket;

/// Opens web sockets. Cheap to clone; clones share settings and the TLS configuration.
///
/// `wss` URLs use the TLS backend the crate was built with (`docs/tls.md`): the one given to
/// the builder (`ClientBuilder::tls_connector` for native-tls, `ClientBuilder::rustls_config`
/// for rustls), or else a default built on the first `wss` connect and kept for the client's
/// life: native-tls's when the `native-tls` feature is on (also when `rustls` is on too),
/// otherwise rustls with the platform's roots (or the Mozilla roots with
/// `rustls-webpki-roots`). With no TLS feature, a `wss` socket fails with
/// [`Error::Tls`](crate::Error::Tls) saying so.
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
    tls: Option<Connector>,
    default_tls: OnceLock<Result<Connector, String>>,
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
            proxy: None,
        }
    }

    /// Starts connecting to `request` and returns at once.
    ///
    /// The connection, TLS and the handshake run on the socket's reader thread; `listener`
    /// hears how it goes (see [`WebSocketListener`] for the order of callbacks). Messages sent
    /// before the handshake completes go out right after it.
    pub fn new_web_socket(&self, request: Request, listener: impl WebSocketListener) -> WebSocket {
        self.new_web_socket_boxed(request, Box::new(listener))
    }

    fn new_web_socket_boxed(
        &self,
        request: Request,
        listener: Box<dyn WebSocketListener>,
    ) -> WebSocket {
        let tls = self.tls_source();
        let (socket, writer_state) =
            Socket::new(request, crate::proto::Role::Client, &self.inner.config);
        let ws = WebSocket {
            socket: socket.clone(),
        };
        let callbacks = Bound::new(ws.clone(), listener);
        driver::spawn_client(
            socket,
            writer_state,
            self.inner.config.clone(),
            tls,
            callbacks,
        );
        ws
    }

    /// The TLS configuration, asked for by the connect for the URL it ends up at (a redirect
    /// can go to wss).
    fn tls_source(&self) -> driver::TlsSource {
        let inner = self.inner.clone();
        Arc::new(move || match &inner.tls {
            Some(c) => Ok(c.clone()),
            None => inner
                .default_tls
                .get_or_init(transport::default_connector)
                .clone(),
        })
    }

    /// Connects and upgrades on the calling thread, then hands the open socket to its
    /// threads; its reader calls `callbacks` directly (the blocking `Connection`'s batched
    /// hand-off), bounded by `backlog` from its first message. Returns the socket and the
    /// server's 101, or why it failed.
    pub(crate) fn connect_fed(
        &self,
        request: Request,
        backlog: Arc<Backlog>,
        callbacks: Box<dyn Callbacks>,
    ) -> Result<(WebSocket, crate::response::Response), crate::error::Error> {
        let (socket, writer_state) =
            Socket::new(request, crate::proto::Role::Client, &self.inner.config);
        let _ = socket.pause.backlog.set(backlog);
        let ws = WebSocket {
            socket: socket.clone(),
        };
        let response = driver::connect_here(
            socket,
            writer_state,
            self.inner.config.clone(),
            self.tls_source(),
            callbacks,
        )?;
        Ok((ws, response))
    }
}

impl Client {
    /// Whether its `Connection`s take large messages in parts from the start.
    pub(crate) fn streams_from_start(&self) -> bool {
        self.inner.config.streams_from_start()
    }

    /// The largest message a socket of this client takes whole (`max_message_size`).
    pub(crate) fn max_message_size(&self) -> u64 {
        self.inner.config.max_message_size
    }

    /// The most payload bytes a socket of this client queues (`max_queue_size`).
    pub(crate) fn max_queue_size(&self) -> u64 {
        self.inner.config.max_queue_size
    }
}

/// Settings for a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    config: Config,
    tls: Option<Connector>,
    proxy: Option<Proxy>,
}

impl ClientBuilder {
    socket_options!();

    /// Timeout for the way to the server: the name lookup and the TCP connect (each address
    /// tried gets at most this, all of them together too). Default 10 s.
    ///
    /// Through a proxy it bounds the whole way to the tunnel: the TCP connect to the proxy
    /// and the proxy's handshake (`CONNECT` or SOCKS5) together; a proxy that does not answer
    /// in time fails the socket with [`Error::ConnectTimeout`](crate::Error::ConnectTimeout).
    ///
    /// The whole connect, redirects included, ends within `connect_timeout + handshake_timeout`
    /// (20 s by default): each redirect's hop gets what is left of that, not a fresh
    /// budget.
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How host names are looked up. Default: the system's resolver (`getaddrinfo`).
    ///
    /// `resolve(host, port)` runs on a pooled thread of its own (`syncws-dns`), never on
    /// the caller's: a lookup can block for as long as the resolver likes, so the connect
    /// waits for it only until the connect timeout (then
    /// [`Error::ConnectTimeout`](crate::Error::ConnectTimeout)) and a
    /// [`cancel`](crate::WebSocket::cancel) ends the wait at once; a lookup still running
    /// then finishes on its thread. IP literals are not looked up. Through a `socks5h://` or
    /// HTTP proxy the proxy resolves the server's name, and this resolves only the proxy's.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// // Pin a name to an address (tests, split-horizon setups), the system for the rest.
    /// let client = syncws::Client::builder()
    ///     .dns_resolver(|host, port| match host {
    ///         "chat.internal" => Ok(vec![SocketAddr::from(([10, 0, 0, 7], port))]),
    ///         _ => std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect),
    ///     })
    ///     .build();
    /// # let _ = client;
    /// ```
    pub fn dns_resolver(
        mut self,
        resolve: impl Fn(&str, u16) -> std::io::Result<Vec<std::net::SocketAddr>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.config.resolver = crate::config::Resolver::new(resolve);
        self
    }

    /// How many redirects (301, 302, 303, 307, 308) of the upgrade request to follow before
    /// failing; 0 fails on the first. Default 10.
    ///
    /// `ws` to `wss` is followed, `wss` to `ws` is refused. When the redirect goes to another
    /// scheme, host or port, the credentials are dropped: `Authorization`,
    /// `Proxy-Authorization`, `Cookie` and every header marked with
    /// [`RequestBuilder::sensitive_header`](crate::RequestBuilder::sensitive_header). The URL
    /// that finally answered is [`Response::url`](crate::Response::url).
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.config.max_redirects = max;
        self
    }

    /// The native-tls configuration for `wss` URLs (feature `native-tls`, on by default).
    /// Default: the system's trust roots, with hostname verification. Replaces a
    /// `rustls_config` given before (feature `rustls`): the last TLS setting wins.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("ca.pem")?;
    /// let connector = syncws::native_tls::TlsConnector::builder()
    ///     .add_root_certificate(syncws::native_tls::Certificate::from_pem(&ca)?)
    ///     .build()?;
    /// let client = syncws::Client::builder().tls_connector(connector).build();
    /// # let _ = client; Ok(()) }
    /// ```
    #[cfg(feature = "native-tls")]
    pub fn tls_connector(mut self, connector: native_tls::TlsConnector) -> Self {
        self.tls = Some(Connector::Native(connector));
        self
    }

    /// The rustls configuration for `wss` URLs (feature `rustls`): roots, client certificate,
    /// protocol versions, crypto provider are all the config's. Default, when the
    /// `native-tls` feature is off: ring, TLS 1.2 and 1.3, the platform's roots (or the
    /// Mozilla roots with `rustls-webpki-roots`), no client certificate. Leave
    /// `alpn_protocols` empty (or `http/1.1`): the upgrade is HTTP/1.1. Replaces a
    /// `tls_connector` given before (feature `native-tls`): the last TLS setting wins.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use syncws::rustls;
    /// use rustls::pki_types::{CertificateDer, pem::PemObject};
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(CertificateDer::from_pem_file("ca.pem")?)?;
    /// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let client = syncws::Client::builder().rustls_config(Arc::new(config)).build();
    /// # let _ = client; Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn rustls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(Connector::Rustls(config));
        self
    }

    /// How sockets reach their servers. Default [`Proxy::from_env`], read when
    /// [`build`](Self::build) runs: `https_proxy` for `wss`, `http_proxy` for `ws`, then
    /// `all_proxy`, minus `no_proxy` and loopback servers (see `docs/proxies.md`).
    /// [`Proxy::none`] connects directly; [`Proxy::http`] and [`Proxy::socks5`] send every
    /// socket through that proxy, loopback servers included.
    ///
    /// ```no_run
    /// use syncws::{Client, Proxy};
    /// let client = Client::builder()
    ///     .proxy(Proxy::socks5("socks5h://127.0.0.1:1080")?)
    ///     .build();
    /// # drop(client);
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Builds the client. Without [`proxy`](Self::proxy), this is when the proxy environment
    /// variables are read; the client keeps what they said then.
    pub fn build(mut self) -> Client {
        self.config.proxy = self.proxy.unwrap_or_else(Proxy::from_env);
        Client {
            inner: Arc::new(Inner {
                config: self.config,
                tls: self.tls,
                default_tls: OnceLock::new(),
            }),
        }
    }
}

impl WebSocketFactory for Client {
    fn new_web_socket(&self, request: Request, listener: Box<dyn WebSocketListener>) -> WebSocket {
        self.new_web_socket_boxed(request, listener)
    }
}
