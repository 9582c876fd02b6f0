//! The server role: accept upgrades, one reader and one writer thread per connection.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

use crate::admission::{AddrKey, Admission, Evicted, Full, Limits};
use crate::config::{Config, socket_options};
use crate::driver;
use crate::driver::transport::Acceptor;
use crate::error::Error;
use crate::header::Header;
use crate::listener::{Listener, WebSocketListener};
use crate::proto::{deflate, handshake};
use crate::request::Request;
use crate::websocket::WebSocket;

/// A server handler's answer to an upgrade request: upgrade (with a listener) or refuse (with
/// an HTTP status), plus any headers to add to the answer.
///
/// When a cookie authenticates the upgrade, as below, also set
/// [`ServerBuilder::allowed_origins`]: browsers send cookies with WebSockets that any site's
/// pages open (cross-site WebSocket hijacking, `docs/connecting.md`).
///
/// ```
/// use syncws::{Accept, Listener, Request};
/// fn handle(request: &Request) -> Accept {
///     if request.header("Authorization") != Some("Bearer secret") {
///         return Accept::reject(401, "Unauthorized")
///             .header("WWW-Authenticate", "Bearer realm=\"chat\"");
///     }
///     Accept::upgrade(Listener::new()).header("Set-Cookie", "session=1; HttpOnly")
/// }
/// # let _ = handle;
/// ```
pub struct Accept {
    pub(crate) answer: Answer,
    pub(crate) headers: Vec<Header>,
}

pub(crate) enum Answer {
    Upgrade {
        subprotocol: Option<String>,
        listener: Box<dyn WebSocketListener>,
    },
    Reject {
        status: u16,
        reason: String,
    },
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = match &self.answer {
            Answer::Upgrade { subprotocol, .. } => {
                let mut d = f.debug_struct("Upgrade");
                d.field("subprotocol", subprotocol);
                d
            }
            Answer::Reject { status, reason } => {
                let mut d = f.debug_struct("Reject");
                d.field("status", status).field("reason", reason);
                d
            }
        };
        d.field("headers", &self.headers).finish_non_exhaustive()
    }
}

impl Accept {
    /// Upgrade with no subprotocol; `listener` hears the socket's events, as for a client
    /// socket.
    pub fn upgrade(listener: impl WebSocketListener) -> Accept {
        Accept::answer(Answer::Upgrade {
            subprotocol: None,
            listener: Box::new(listener),
        })
    }

    /// Upgrade, confirming `subprotocol`; it must be one the client offered (another is
    /// ignored, with a warning in the log).
    pub fn upgrade_with(subprotocol: &str, listener: impl WebSocketListener) -> Accept {
        Accept::answer(Answer::Upgrade {
            subprotocol: Some(subprotocol.to_owned()),
            listener: Box::new(listener),
        })
    }

    /// Refuse the upgrade with an HTTP status (e.g. 401, 403, 404) and reason phrase.
    pub fn reject(status: u16, reason: &str) -> Accept {
        Accept::answer(Answer::Reject {
            status,
            reason: reason.to_owned(),
        })
    }

    fn answer(answer: Answer) -> Accept {
        Accept {
            answer,
            headers: Vec::new(),
        }
    }

    /// Adds a header to the answer: `Set-Cookie` on an upgrade, `WWW-Authenticate` on a 401,
    /// `Retry-After` on a 503...
    ///
    /// Headers the server writes itself (`Upgrade`, `Connection`, `Sec-WebSocket-*`,
    /// `Content-Length`, `Transfer-Encoding`) and invalid ones (a name that is not a token, a
    /// value with CR, LF or another control byte: header injection) are left out, with a
    /// warning in the log: the handler's answer still goes out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Accept {
        let h = Header::new(name.into(), value.into());
        if let Some(why) = crate::header::invalid(h.name(), h.value()) {
            log::warn!("accept handler: {why}; header left out");
        } else if crate::header::written_by_syncws(h.name()) {
            log::warn!(
                "accept handler: header {} is written by syncws itself; left out",
                h.name()
            );
        } else {
            self.headers.push(h);
        }
        self
    }

    /// The headers added with [`header`](Self::header).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

type Handler = dyn Fn(&Request) -> Accept + Send + Sync;

pub(crate) struct ServerShared {
    pub config: Config,
    /// What the pure handshake code decides upgrade requests by (scheme, origins, deflate).
    pub policy: handshake::Policy,
    pub tls: Option<Acceptor>,
    pub handler: Box<Handler>,
    stopping: AtomicBool,
    /// Connections still in TLS or the upgrade request, and established (upgraded) ones,
    /// counted in all and per address.
    admission: Mutex<Admission<Arc<Handshake>>>,
    sockets: Mutex<Vec<WebSocket>>,
    stop_timeout: Duration,
}

/// The close reason sockets get when their server stops.
const STOP_REASON: &str = "server stopping";

/// How long `stop` waits, in all, for the sockets it had to cancel to finish.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

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

/// A connection's handshake as the server's bookkeeping holds it: its socket, to evict it, and
/// how far it got.
struct Handshake {
    tcp: Arc<TcpStream>,
    /// `READING` (TLS and the request head), then `ANSWERING` (the handler and the answer), or
    /// `EVICTED`: one compare-and-swap decides whether the evicting accept loop or the
    /// connection's own thread writes the answer, so a client never gets both.
    stage: AtomicU8,
}

const READING: u8 = 0;
const ANSWERING: u8 = 1;
const EVICTED: u8 = 2;

/// A connection's place among those handshaking; dropping it frees the place.
pub(crate) struct HandshakeTicket {
    server: Arc<ServerShared>,
    addr: AddrKey,
    id: u64,
    handshake: Arc<Handshake>,
}

impl HandshakeTicket {
    /// Called once the request head is read, before anything is answered: false if the
    /// connection was evicted meanwhile (it has been answered 503 and shut down).
    pub(crate) fn answering(&self) -> bool {
        let stage = &self.handshake.stage;
        stage
            .compare_exchange(READING, ANSWERING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.server.admission.lock().end(self.addr, self.id);
    }
}

/// Counts an upgraded connection among the established ones until it ends.
pub(crate) struct ConnectionGuard(Arc<ServerShared>, AddrKey);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.admission.lock().release(self.1);
    }
}

impl ServerShared {
    /// Takes a place among the handshaking connections for `tcp` from `peer`, evicting
    /// others as [`Admission::begin`] decides: a flood of connections that trickle or never
    /// send costs at most `max_handshaking` threads, and only ever evicts its own address's
    /// handshakes once that address holds the most, so clients from other addresses still get
    /// through.
    fn begin_handshake(self: &Arc<Self>, tcp: Arc<TcpStream>, peer: SocketAddr) -> HandshakeTicket {
        let addr = AddrKey::of(peer.ip());
        let handshake = Arc::new(Handshake {
            tcp,
            stage: AtomicU8::new(READING),
        });
        let (id, evicted) = self.admission.lock().begin(addr, handshake.clone());
        // The writes and shutdowns happen outside the lock.
        for e in evicted {
            self.evict(e);
        }
        HandshakeTicket {
            server: self.clone(),
            addr,
            id,
            handshake,
        }
    }

    /// Ends an evicted handshake: a short 503 saying which cap it met, if its own thread has
    /// not started answering and the connection is plain (over TLS the session is the
    /// thread's), written without waiting (best effort: it goes into the socket buffer or
    /// not at all), then a shutdown, which ends the thread's blocking read.
    fn evict(&self, e: Evicted<Arc<Handshake>>) {
        let Evicted { conn, why } = e;
        log::debug!(
            "evicting a handshake ({:?}): {}",
            conn.tcp.peer_addr(),
            why.reason()
        );
        let mine = conn
            .stage
            .compare_exchange(READING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if mine && self.tls.is_none() {
            let refusal = handshake::Refusal {
                status: 503,
                reason: why.reason(),
            };
            let bytes = handshake::encode_refusal(&refusal, &[]);
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            let _ = socket2::SockRef::from(&*conn.tcp).send_with_flags(&bytes, flags);
        }
        let _ = conn.tcp.shutdown(std::net::Shutdown::Both);
    }

    /// Counts an upgrade from the ticket's address among the established connections, or
    /// says which cap is reached (the client is then answered 503).
    pub(crate) fn try_establish(
        self: &Arc<Self>,
        ticket: &HandshakeTicket,
    ) -> Result<ConnectionGuard, Full> {
        self.admission.lock().establish(ticket.addr)?;
        Ok(ConnectionGuard(self.clone(), ticket.addr))
    }

    /// Remembers an open socket so `stop` can end it.
    pub(crate) fn track(&self, ws: &WebSocket) {
        let mut sockets = self.sockets.lock();
        sockets.retain(|s| !matches!(s.state(), crate::State::Closed | crate::State::Canceled));
        sockets.push(ws.clone());
        if self.stopping.load(Ordering::Acquire) {
            let _ = ws.close(1001, Some(STOP_REASON));
        }
    }
}

/// A listening web socket server. Stops (and cancels its open sockets) when dropped.
///
/// ```no_run
/// use syncws::{Accept, Listener, Server};
/// let server = Server::builder().bind("127.0.0.1:0", |request| {
///     if request.url().path() != "/chat" {
///         return Accept::reject(404, "Not Found");
///     }
///     Accept::upgrade(Listener::new().on_message(|ws, message| {
///         ws.send(message);
///     }))
/// })?;
/// println!("listening on {}", server.url());
/// # Ok::<(), syncws::Error>(())
/// ```
pub struct Server {
    addr: SocketAddr,
    shared: Arc<ServerShared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

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
            .finish()
    }
}

impl ServerBuilder {
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
    pub fn rustls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
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
    /// worst case at about 3 GiB (the budget is worked out in `docs/robustness.md`).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n;
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

    /// How long a client has, once connected, to finish TLS and send its whole upgrade
    /// request, however slowly it trickles; the same setting as `read_timeout`. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
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
        let listener = listen(addr)?;
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
        let shared = Arc::new(ServerShared {
            config: self.config,
            policy,
            tls: self.tls,
            handler: Box::new(handler),
            stopping: AtomicBool::new(false),
            admission: Mutex::new(Admission::new(self.limits)),
            sockets: Mutex::new(Vec::new()),
            stop_timeout: self.stop_timeout,
        });
        let s = shared.clone();
        let accept_thread = thread::Builder::new()
            .name("syncws-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(Server {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }
}

/// Connections the kernel completes and queues for the accept loop. std's 128 overflows under a
/// flood of connects, and then the kernel drops SYNs from everyone, well-behaved clients
/// included, who wait a second or more to retry. The kernel caps it at `net.core.somaxconn`
/// (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: i32 = 1024;

/// `TcpListener::bind`, with [`LISTEN_BACKLOG`]: the first of `addr`'s addresses that binds.
fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let listener = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .and_then(|s| {
            // As std does on Unix: a restarted server can bind while old connections linger.
            #[cfg(unix)]
            s.set_reuse_address(true)?;
            s.bind(&addr.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(s)
        });
        match listener {
            Ok(s) => return Ok(s.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>) {
    loop {
        let conn = listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        let (tcp, peer) = match conn {
            Ok(t) => t,
            Err(e) => {
                log::warn!("accept failed: {e}");
                // Out of descriptors and the like: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let tcp = Arc::new(tcp);
        let ticket = shared.begin_handshake(tcp.clone(), peer);
        if let Err(e) = driver::spawn_server(tcp, ticket, shared.clone()) {
            log::error!("could not start a connection thread: {e}");
        }
    }
}

impl Server {
    /// Starts configuring a server.
    pub fn builder() -> ServerBuilder {
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
        }
    }

    /// Binds `addr` with default settings; see [`ServerBuilder::bind`].
    pub fn bind<A, H>(addr: A, handler: H) -> Result<Server, Error>
    where
        A: ToSocketAddrs,
        H: Fn(&Request) -> Accept + Send + Sync + 'static,
    {
        Server::builder().bind(addr, handler)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` (or `wss://`) URL of the server, with `localhost` for a loopback address.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        if self.addr.ip().is_loopback() {
            format!("{scheme}://localhost:{}/", self.addr.port())
        } else {
            format!("{scheme}://{}/", self.addr)
        }
    }

    /// Stops the server: stops accepting, drops the connections still in their handshake,
    /// and closes every open socket with 1001 ("going away", reason `server stopping`) behind
    /// what is queued on it. Waits up to [`stop_timeout`](ServerBuilder::stop_timeout) (5 s by
    /// default) for the close handshakes, then cancels the sockets still open (their listeners
    /// get `on_failure(Error::Canceled)`) and returns once they have ended (up to 1 s more).
    ///
    /// Dropping the server does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(handle) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = handle.join();
        let handshaking = self.shared.admission.lock().take_handshaking();
        for h in handshaking {
            let _ = h.tcp.shutdown(std::net::Shutdown::Both);
        }
        let sockets: Vec<WebSocket> = std::mem::take(&mut *self.shared.sockets.lock());
        for ws in &sockets {
            let _ = ws.close(1001, Some(STOP_REASON));
        }
        let deadline = crate::driver::deadline_after(self.shared.stop_timeout);
        for ws in &sockets {
            ws.shared.wait_finished(Some(deadline));
        }
        let late: Vec<&WebSocket> = sockets
            .iter()
            .filter(|ws| !ws.shared.is_finished())
            .collect();
        if !late.is_empty() {
            log::debug!(
                "canceling {} sockets that did not close within the stop timeout",
                late.len()
            );
        }
        for ws in &late {
            ws.cancel();
        }
        // One deadline for all of them, not a second per socket in turn: a canceled socket
        // ends at once unless a callback of its is stuck, and many stuck ones must not add up.
        let deadline = crate::driver::deadline_after(CANCEL_GRACE);
        for ws in &late {
            ws.shared.wait_finished(Some(deadline));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An echo server on 127.0.0.1 with a free port: every message comes back unchanged.
///
/// For examples, tests and your own integration tests. Stops when dropped. It has the server
/// role's defaults, 1 MiB messages and a 1 MiB send queue among them; pass a builder to
/// [`with_builder`](Self::with_builder) to echo larger messages.
///
/// ```
/// let server = syncws::EchoServer::start()?;
/// assert!(server.url().starts_with("ws://localhost:"));
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Debug)]
pub struct EchoServer {
    server: Server,
}

impl EchoServer {
    /// Starts the echo server.
    pub fn start() -> Result<EchoServer, Error> {
        Self::with_builder(Server::builder())
    }

    /// Starts the echo server with custom settings (TLS, limits).
    pub fn with_builder(builder: ServerBuilder) -> Result<EchoServer, Error> {
        let server = builder.bind("127.0.0.1:0", |request| {
            let listener = Listener::new().on_message(|ws, message| {
                ws.send(message);
            });
            match request.subprotocols().first() {
                Some(p) => Accept::upgrade_with(p, listener),
                None => Accept::upgrade(listener),
            }
        })?;
        Ok(EchoServer { server })
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}
