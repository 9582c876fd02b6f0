//! The client role: settings and the factory for sockets.

use std::sync::{Arc, OnceLock};

use crate::config::{Config, socket_options};
use crate::driver;
use crate::driver::Shared;
use crate::driver::transport::{self, Connector};
use crate::listener::WebSocketListener;
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
        }
    }

    /// Starts connecting to `request` and returns at once.
    ///
    /// The connection, TLS and the handshake run on the socket's reader thread; `listener`
    /// hears how it goes (see [`WebSocketListener`] for the order of callbacks). Messages sent
    /// before the handshake completes go out right after it.
    pub fn new_web_socket(&self, request: Request, listener: impl WebSocketListener) -> WebSocket {
        let tls = request.is_tls().then(|| match &self.inner.tls {
            Some(c) => Ok(c.clone()),
            None => self
                .inner
                .default_tls
                .get_or_init(transport::default_connector)
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
    tls: Option<Connector>,
}

impl ClientBuilder {
    socket_options!();

    /// Timeout for the TCP connect, per resolved address. Default 10 s.
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.config.connect_timeout = timeout;
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
