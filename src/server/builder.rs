//! A server's settings ([`ServerBuilder`]), and the [`Server`] they bind.

use std::net::ToSocketAddrs;
use std::thread;
use std::time::Duration;

use super::Server;
use super::accept::Accept;
use crate::config::{Config, socket_options};
use crate::driver::transport::Acceptor;
use crate::driver::{self, Limits, Serve};
use crate::error::Error;
use crate::proto::forwarded::{ForwardedHeader, Trusted};
use crate::proto::{deflate, handshake};
use crate::request::Request;

/// Default of [`ServerBuilder::stop_timeout`].
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`ServerBuilder::max_connections`].
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of [`ServerBuilder::max_connections_per_ip`]: a quarter of all.
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default of [`ServerBuilder::max_handshaking`].
const DEFAULT_MAX_HANDSHAKING: usize = 256;
/// Default of [`ServerBuilder::max_handshaking_per_ip`]: an eighth of all.
const DEFAULT_MAX_HANDSHAKING_PER_IP: usize = 32;

/// Settings for a [`Server`]; see [`Server::builder`].
pub struct ServerBuilder {
    config: Config,
    deflate: deflate::ServerSettings,
    tls: Option<Acceptor>,
    limits: Limits,
    stop_timeout: Duration,
    /// As given; checked and normalised by `bind`.
    allowed_origins: Option<Vec<String>>,
    require_origin: bool,
    /// As given; parsed by `bind`.
    trusted_proxies: Vec<String>,
    proxy_protocol: bool,
    forwarded_header: Option<ForwardedHeader>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("deflate", &self.deflate)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("stop_timeout", &self.stop_timeout)
            .field("allowed_origins", &self.allowed_origins)
            .field("require_origin", &self.require_origin)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("proxy_protocol", &self.proxy_protocol)
            .field("forwarded_header", &self.forwarded_header)
            .finish()
    }
}

impl ServerBuilder {
    /// The defaults, as [`Server::builder`] gives them.
    pub(super) fn new() -> ServerBuilder {
        ServerBuilder {
            config: Config::server_default(),
            deflate: deflate::ServerSettings::default(),
            tls: None,
            limits: Limits {
                max_handshaking: DEFAULT_MAX_HANDSHAKING,
                max_handshaking_per_ip: DEFAULT_MAX_HANDSHAKING_PER_IP,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            },
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            allowed_origins: None,
            require_origin: false,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            forwarded_header: None,
        }
    }

    socket_options!();

    /// Serves `wss` with this native-tls identity (feature `native-tls`, on by default).
    /// native-tls cannot ask clients for certificates; for mutual TLS use `rustls` (feature
    /// `rustls`). Replaces a `rustls` config given before.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use syncws::native_tls::{Identity, TlsAcceptor};
    /// let identity = Identity::from_pkcs8(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
    /// let server = syncws::Server::builder()
    ///     .tls(TlsAcceptor::new(identity)?)
    ///     .bind("0.0.0.0:443", |_| syncws::Accept::upgrade(syncws::Listener::new()))?;
    /// # let _ = server; Ok(()) }
    /// ```
    #[cfg(feature = "native-tls")]
    pub fn tls(mut self, acceptor: native_tls::TlsAcceptor) -> Self {
        self.tls = Some(Acceptor::Native(acceptor));
        self
    }

    /// Serves `wss` with this rustls configuration (feature `rustls`): its certificate
    /// resolver, protocol versions and provider, and its client-certificate verifier, so
    /// mutual TLS is `rustls::server::WebPkiClientVerifier` away. Leave `alpn_protocols`
    /// empty (or `http/1.1`). Replaces a `tls` acceptor given before (feature `native-tls`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use syncws::rustls;
    /// use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    ///
    /// let chain = CertificateDer::pem_file_iter("cert.pem")?.collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_file("key.pem")?;
    /// let config = rustls::ServerConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_no_client_auth()
    /// .with_single_cert(chain, key)?;
    /// let server = syncws::Server::builder()
    ///     .rustls(Arc::new(config))
    ///     .bind("0.0.0.0:443", |_| syncws::Accept::upgrade(syncws::Listener::new()))?;
    /// # let _ = server; Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn rustls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(Acceptor::Rustls(config));
        self
    }

    /// Ask clients to reset their compression context after every message
    /// (`client_no_context_takeover`): less memory per socket, larger messages. Default off.
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.deflate.client_no_context_takeover = on;
        self
    }

    /// Reset our own compression context after every message (`server_no_context_takeover`).
    /// Default off; always on when a client asks for it.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.deflate.server_no_context_takeover = on;
        self
    }

    /// The largest LZ77 window (2^bits bytes, 8 to 15, clamped) the server compresses with.
    /// Default 15. At 8, which zlib cannot produce, the server sends uncompressed messages.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.deflate.server_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// The largest window (8 to 15, clamped) clients are asked to compress with, when they
    /// offer `client_max_window_bits`. Default 15.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.deflate.client_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// The most upgraded connections open at once. A client that completes its handshake
    /// while this many are open is answered `503 Service Unavailable: too many connections
    /// (max_connections 1024)`. Default 1024, which with the server's default limits bounds the
    /// worst case at about 3 GiB (the budget is worked out in `docs/robustness.md`). Values
    /// under 1 count as 1, as for every cap: a server that upgrades nobody is stopped instead.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n.max(1);
        self
    }

    /// The most upgraded connections open at once from one address (an IPv4 address, or an
    /// IPv6 /64, which one host usually has to itself). Past it the upgrade is answered
    /// `503 Service Unavailable: too many connections from this address
    /// (max_connections_per_ip 256)`, while other addresses still get in.
    ///
    /// Default 256, a quarter of [`max_connections`](Self::max_connections): one host can no
    /// longer hold every slot, while an office or a mobile carrier behind one NAT address (many
    /// users, one address) still gets a good share. Raise it for such clients if you know them;
    /// `usize::MAX` turns the per-address cap off. Values under 1 count as 1.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.limits.max_connections_per_ip = n.max(1);
        self
    }

    /// The most connections still in their handshake (TLS and the upgrade request), counted
    /// apart from established ones. When a new connection arrives with this many waiting, the
    /// oldest handshake of the address holding the most is dropped (answered
    /// `503 Service Unavailable: too many connections handshaking (max_handshaking 256)` on a
    /// plain connection, then shut down): a slowloris flood that trickles or never sends its
    /// request costs at most this many threads and buffers (64 KiB of head each), and a
    /// well-behaved client arriving during it still gets through. Default 256; values under 1
    /// count as 1.
    pub fn max_handshaking(mut self, n: usize) -> Self {
        self.limits.max_handshaking = n.max(1);
        self
    }

    /// The most connections from one address (IPv4 address or IPv6 /64) in their handshake at
    /// once. A new connection from an address with this many evicts that address's oldest
    /// handshake (answered `503 … (max_handshaking_per_ip 32)` on a plain connection): a
    /// sustained flood of fresh connections from one host only ever evicts its own, so
    /// handshakes from elsewhere are never pushed out by it.
    ///
    /// Default 32, an eighth of [`max_handshaking`](Self::max_handshaking): handshakes take a
    /// round trip or two, so even a busy NAT address rarely has this many under way at once,
    /// and a flood from one host holds at most 32 threads. `usize::MAX` turns the per-address
    /// cap off (then only `max_handshaking` applies). Values under 1 count as 1.
    pub fn max_handshaking_per_ip(mut self, n: usize) -> Self {
        self.limits.max_handshaking_per_ip = n.max(1);
        self
    }

    /// How long [`Server::stop`] (and dropping the server) waits for open sockets to complete
    /// their close handshake (with 1001, "going away") before it cancels those still open.
    /// Default 5 s.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Only pages from these origins may upgrade: a request whose `Origin` header is another
    /// one (or `null`, or more than one `Origin`) is answered `403 Forbidden: origin not
    /// allowed` before the handler runs. This is what stops cross-site WebSocket hijacking
    /// when cookies (or TLS client certificates, or HTTP authentication) authenticate the
    /// upgrade: a browser sends those with a WebSocket opened by any site's page, and tells
    /// the server which site it was only through `Origin` (`docs/connecting.md`).
    ///
    /// Each entry is an origin as browsers write it, `scheme://host[:port]`:
    /// `https://app.example`, `http://localhost:8080`. Entries are compared after lower-casing
    /// the scheme and host and dropping the scheme's default port, and so are requests'
    /// `Origin`s; an entry with a path (even `/`), user info or a non-ASCII host (write its
    /// punycode) makes [`bind`](Self::bind) fail with [`Error::InvalidUrl`] naming it.
    ///
    /// Requests without `Origin`, which non-browser clients send, are still allowed; see
    /// [`require_origin`](Self::require_origin). Default: unset, every origin is allowed (set
    /// it whenever cookies authenticate the upgrade). An empty list refuses every `Origin`.
    ///
    /// ```no_run
    /// use syncws::{Accept, Listener, Server};
    /// let server = Server::builder()
    ///     .allowed_origins(["https://app.example", "https://admin.app.example"])
    ///     .bind("0.0.0.0:9001", |_| Accept::upgrade(Listener::new()))?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let origins = origins.into_iter().map(|o| o.as_ref().to_owned());
        self.allowed_origins = Some(origins.collect());
        self
    }

    /// Refuse (`403 Forbidden: no Origin header`) upgrade requests without an `Origin`
    /// header. Browsers always send one; command-line tools and other servers' clients
    /// usually do not. Default false.
    pub fn require_origin(mut self, on: bool) -> Self {
        self.require_origin = on;
        self
    }

    /// The reverse proxies and load balancers in front of the server (addresses such as
    /// `10.0.0.5` or networks such as `10.0.0.0/8`): only they are believed about the client's
    /// address ([`proxy_protocol`](Self::proxy_protocol),
    /// [`forwarded_header`](Self::forwarded_header)). Their connections are exempt from
    /// [`max_handshaking_per_ip`](Self::max_handshaking_per_ip) (they carry many clients) until
    /// the client is known: from the PROXY header on, or once the request head names it, the
    /// handshake counts under the client's address. Default: none. A bad entry makes
    /// [`bind`](Self::bind) fail.
    ///
    /// ```
    /// let server = syncws::Server::builder()
    ///     .trusted_proxies(["127.0.0.1", "10.0.0.0/8"])
    ///     .proxy_protocol(true)
    ///     .bind("127.0.0.1:0", |_| syncws::Accept::upgrade(syncws::Listener::new()))?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.trusted_proxies = proxies.into_iter().map(|p| p.as_ref().to_owned()).collect();
        self
    }

    /// Connections from a [trusted proxy](Self::trusted_proxies) begin with a PROXY protocol
    /// header, v1 or v2 (HAProxy's `send-proxy`/`send-proxy-v2`, nginx's `proxy_protocol on`,
    /// cloud TCP load balancers): the client it names becomes the socket's
    /// [`peer_addr`](crate::WebSocket::peer_addr) and [`Request::peer_addr`](crate::Request::peer_addr),
    /// and the per-address limits count it. A trusted proxy's connection without a valid header
    /// (or one over 1 KiB) is closed; a header from any other peer is not read as one, and
    /// fails as a bad request (400). Default off; needs `trusted_proxies`.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Believe the client's address from `header` in requests from a
    /// [trusted proxy](Self::trusted_proxies): walking its hops from the right, the first that
    /// is not itself a trusted proxy becomes the client's (its port is unknown: 0). Name the
    /// header your proxy writes — [`ForwardedHeader::XForwardedFor`] for nginx's
    /// `$proxy_add_x_forwarded_for` and HAProxy's `option forwardfor` — and only that header is
    /// read: a proxy passes the other through as the client wrote it.
    ///
    /// What stands left of the client's hop is never read (a client may write anything there).
    /// A hop the walk must read that is not an address (garbage, `unknown`, an obfuscated
    /// name) refuses the request with `400 Bad Request`: it is never taken to come from the
    /// proxy. A request from a trusted proxy without the header keeps the proxy's address;
    /// from any other peer the header is ignored (anyone can write it). Default: none (no
    /// header is believed); needs `trusted_proxies`. See `docs/deploying.md`.
    ///
    /// ```
    /// use syncws::{Accept, ForwardedHeader, Listener, Server};
    /// let server = Server::builder()
    ///     .trusted_proxies(["127.0.0.1"])
    ///     .forwarded_header(ForwardedHeader::XForwardedFor)
    ///     .bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new()))?;
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = Some(header);
        self
    }

    /// Binds `addr` and starts accepting. `handler` runs on the connection's own thread for
    /// each valid upgrade request and decides whether to upgrade it. A panic in `handler` is
    /// caught: that client gets `500 Internal Server Error` and the server goes on.
    ///
    /// Fails with [`Error::InvalidUrl`] if an [`allowed_origins`](Self::allowed_origins) entry
    /// is not an origin, before anything is bound.
    pub fn bind<A, H>(self, addr: A, handler: H) -> Result<Server, Error>
    where
        A: ToSocketAddrs,
        H: Fn(&Request) -> Accept + Send + Sync + 'static,
    {
        let normalize = |o: &String| {
            handshake::normalize_origin(o).ok_or_else(|| {
                Error::InvalidUrl(format!(
                    "allowed_origins: {o:?} is not an origin (scheme://host[:port], no path)"
                ))
            })
        };
        let allowed = (self.allowed_origins.as_ref())
            .map(|origins| origins.iter().map(normalize).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let trusted = Trusted::parse(&self.trusted_proxies)
            .map_err(|e| Error::InvalidRequest(format!("trusted_proxies: {e}")))?;
        if (self.proxy_protocol || self.forwarded_header.is_some()) && trusted.is_empty() {
            return Err(Error::InvalidRequest(
                "proxy_protocol and forwarded_header need trusted_proxies: whose word to take"
                    .into(),
            ));
        }
        let forwarding = driver::Forwarding {
            trusted,
            proxy_protocol: self.proxy_protocol,
            header: self.forwarded_header,
        };
        let listener = driver::listen(addr)?;
        let addr = listener.local_addr()?;
        let deflate = deflate::ServerSettings {
            enabled: self.config.compression,
            ..self.deflate
        };
        let policy = handshake::Policy {
            tls: self.tls.is_some(),
            origins: handshake::OriginPolicy {
                allowed,
                required: self.require_origin,
            },
            deflate,
        };
        let handler: Box<driver::Handler> =
            Box::new(move |request| handler(request).into_decision());
        let serve = Serve::new(
            self.config,
            policy,
            self.tls,
            handler,
            self.limits,
            self.stop_timeout,
            forwarding,
        );
        let s = serve.clone();
        let accept_thread = thread::Builder::new()
            .name("syncws-accept".into())
            .spawn(move || driver::accept_loop(listener, s))?;
        Ok(Server::running(addr, serve, accept_thread))
    }
}
