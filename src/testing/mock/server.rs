//! The mock server: a listener on 127.0.0.1, one thread per connection playing the next
//! scripted response, and the record the test reads back.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::{After, Conn};
use super::record::{MockFrame, MockRequest};
use super::response::MockResponse;
use super::shared::{Inner, State};

/// A scriptable WebSocket server on 127.0.0.1, for tests (feature `testing`).
///
/// Each incoming connection takes the next [`MockResponse`] from the queue, in order, once its
/// request head has come (so a response enqueued just after the client started is in time): a
/// refusal, or an upgrade and a script of steps. The server records each request
/// ([`take_request`](Self::take_request)) and every frame each connection received
/// ([`received`](Self::received)). A script that does not go as written — an `expect_*` step
/// that got something else or nothing within its timeout, a malformed frame, a connection with
/// no response enqueued — fails the test on the test's thread, with a message naming the
/// connection, the step, what it expected and what it got: at [`verify`](Self::verify), or
/// when the server is dropped. Every wait has a timeout: a script cannot hang a test.
///
/// It speaks plain `ws://` (and `wss://`, with mutual TLS if asked, from `start_tls`, feature
/// `testing-tls`); any WebSocket client can use it.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use syncws::testing::{MockResponse, MockServer};
/// use syncws::{Event, Message};
///
/// let server = MockServer::start()?;
/// server.enqueue(
///     MockResponse::upgrade()
///         .expect_text("hello")
///         .send_text("hi there")
///         .close(1000, "done")
///         .expect_close(),
/// );
/// let (listener, events) = syncws::channel();
/// let ws = syncws::Client::new().new_web_socket(syncws::Request::builder(&server.url()).build()?, listener);
/// ws.send("hello");
/// let got: Vec<Event> = events.iter().take_while(|e| !e.is_terminal()).collect();
/// assert!(got.iter().any(|e| matches!(e, Event::Message(Message::Text(t)) if t == "hi there")));
/// server.verify(); // panics with the failed step, if any
/// # Ok(()) }
/// ```
pub struct MockServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    /// The client configuration that trusts a TLS mock (and carries its client certificate
    /// when it requires one).
    #[cfg(feature = "testing-tls")]
    client_tls: Option<super::tls::ClientSide>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts a server on 127.0.0.1 (a free port) with an empty queue.
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.url().starts_with("ws://127.0.0.1:"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start() -> std::io::Result<MockServer> {
        Self::start_with(None)
    }

    /// Starts a server that serves `wss` (feature `testing-tls`), with a CA and a certificate
    /// for `localhost` and 127.0.0.1 it makes for itself; [`client_tls_config`](Self::client_tls_config)
    /// is the rustls configuration that trusts it. A client that starts TLS gets TLS (also
    /// inside a [`tunnel`](MockResponse::tunnel)); one that does not is served plain.
    ///
    /// ```
    /// use syncws::testing::{MockResponse, MockServer};
    /// let mock = MockServer::start_tls()?;
    /// mock.enqueue(MockResponse::upgrade().send_text("secure"));
    /// let client = syncws::Client::builder()
    ///     .rustls_config(mock.client_tls_config())
    ///     .build();
    /// let mut conn = client.connect(syncws::Request::builder(&mock.url()).build()?)?;
    /// assert!(mock.url().starts_with("wss://"));
    /// assert_eq!(conn.recv()?.as_text(), Some("secure"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "testing-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing-tls")))]
    pub fn start_tls() -> std::io::Result<MockServer> {
        Self::start_with(Some(super::tls::make(false)?))
    }

    /// [`start_tls`](Self::start_tls), requiring a client certificate issued by the mock's
    /// own CA (mutual TLS, `require_client_auth`): [`client_tls_config`](Self::client_tls_config)
    /// carries one; a client without it fails the handshake (and the mock records a failure).
    ///
    /// ```
    /// use syncws::testing::{MockResponse, MockServer};
    /// let mock = MockServer::start_tls_with_client_auth()?;
    /// mock.enqueue(MockResponse::upgrade().send_text("who are you? ah, you"));
    /// let client = syncws::Client::builder().rustls_config(mock.client_tls_config()).build();
    /// let mut conn = client.connect(syncws::Request::builder(&mock.url()).build()?)?;
    /// assert_eq!(conn.recv()?.as_text(), Some("who are you? ah, you"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "testing-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing-tls")))]
    pub fn start_tls_with_client_auth() -> std::io::Result<MockServer> {
        Self::start_with(Some(super::tls::make(true)?))
    }

    /// The rustls client configuration that trusts this TLS mock's certificate (and presents
    /// the client certificate it requires, if it does). For a plain mock, one that trusts
    /// nothing.
    #[cfg(feature = "testing-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing-tls")))]
    pub fn client_tls_config(&self) -> Arc<rustls::ClientConfig> {
        match &self.client_tls {
            Some(c) => c.client.clone(),
            None => super::tls::trusting_nothing(),
        }
    }

    /// [`client_tls_config`](Self::client_tls_config) without the client certificate: it
    /// trusts the mock but presents nothing, for testing how a client meets a server that
    /// requires one ([`start_tls_with_client_auth`](Self::start_tls_with_client_auth)).
    #[cfg(feature = "testing-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing-tls")))]
    pub fn client_tls_config_without_certificate(&self) -> Arc<rustls::ClientConfig> {
        match &self.client_tls {
            Some(c) => c.anonymous.clone(),
            None => super::tls::trusting_nothing(),
        }
    }

    fn start_with(tls: Option<TlsSetup>) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        #[cfg(feature = "testing-tls")]
        let (server_tls, client_tls) = match tls {
            Some(t) => (Some(t.server), Some(t.client)),
            None => (None, None),
        };
        #[cfg(not(feature = "testing-tls"))]
        let _ = tls;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            #[cfg(feature = "testing-tls")]
            tls: server_tls,
        });
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let inner = inner.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name("mock-accept".into())
                .spawn(move || accept_loop(listener, inner, connections))?
        };
        Ok(MockServer {
            inner,
            addr,
            #[cfg(feature = "testing-tls")]
            client_tls,
            acceptor: Some(acceptor),
            connections,
        })
    }

    /// `ws://127.0.0.1:port/` (`wss://` for a TLS mock).
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.url().ends_with('/'));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn url(&self) -> String {
        self.url_for("/")
    }

    /// `ws://127.0.0.1:port` (`wss://` for a TLS mock) followed by `path_and_query` (which
    /// should start with `/`).
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.url_for("/chat?room=1").ends_with("/chat?room=1"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn url_for(&self, path_and_query: &str) -> String {
        format!("{}://{}{path_and_query}", self.scheme(), self.addr)
    }

    fn scheme(&self) -> &'static str {
        #[cfg(feature = "testing-tls")]
        if self.inner.tls.is_some() {
            return "wss";
        }
        "ws"
    }

    /// The address it listens on.
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.addr().ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds `response` to the queue: the next connection whose request head comes gets it.
    ///
    /// ```
    /// use syncws::testing::{MockResponse, MockServer};
    /// let server = MockServer::start()?;
    /// server.enqueue(MockResponse::refuse(503));
    /// server.enqueue(MockResponse::upgrade().send_text("second time lucky"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enqueue(&self, response: MockResponse) {
        self.inner.state().queue.push_back(response);
    }

    /// The response every connection gets once the queue is empty (by default there is none,
    /// and such a connection is answered 503 and fails the test): for a client that
    /// reconnects an unknown number of times.
    ///
    /// ```
    /// use syncws::testing::{MockResponse, MockServer};
    /// let server = MockServer::start()?;
    /// server.when_empty(MockResponse::refuse(503).header("Retry-After", "1"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn when_empty(&self, response: MockResponse) {
        self.inner.state().when_empty = Some(response);
    }

    /// The next request received that this has not handed out yet (in order), waiting up to
    /// `timeout` for it; `None` if none came.
    ///
    /// ```
    /// use std::time::Duration;
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.take_request(Duration::from_millis(10)).is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_request(&self, timeout: Duration) -> Option<MockRequest> {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.state();
        loop {
            if let Some(r) = state.requests.pop_front() {
                return Some(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How many connections it has accepted.
    ///
    /// ```
    /// assert_eq!(syncws::testing::MockServer::start()?.connection_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.inner.state().accepted
    }

    /// The frames connection `connection` (1 for the first) has received so far, in order;
    /// empty for one that does not exist.
    ///
    /// Payloads are recorded up to 64 MiB per connection (the largest message the mock
    /// takes): from the first data frame that would go past that, every frame is still
    /// recorded, in order, but data frames with an empty `payload`; control frames (pings,
    /// pongs, the close, 125 bytes at most) keep theirs, so a close code stays readable.
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.received(1).is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn received(&self, connection: usize) -> Vec<MockFrame> {
        let state = self.inner.state();
        connection
            .checked_sub(1)
            .and_then(|i| state.frames.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until every connection's script is over, and returns the failures not yet
    /// reported, one message each (`connection 1, step 2 (expect text "hello"): got text
    /// "bye"`). [`verify`](Self::verify) is this, then a panic.
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// assert!(server.failures().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn failures(&self) -> Vec<String> {
        let mut state = self.inner.state();
        while state.running > 0 {
            state = self
                .inner
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let new = state.failures[state.reported..].to_vec();
        state.reported = state.failures.len();
        new
    }

    /// Waits until every connection's script is over (each step has its timeout, so this is
    /// bounded) and panics, on the calling thread, if any did not go as written.
    ///
    /// ```
    /// let server = syncws::testing::MockServer::start()?;
    /// server.verify(); // no connection, nothing to fail
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn verify(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            panic!(
                "the mock server's script did not go as written:\n{}",
                failures.join("\n")
            );
        }
    }

    fn stop(&mut self) {
        let streams: Vec<TcpStream> = {
            let mut state = self.inner.state();
            state.stopping = true;
            state.streams.drain().map(|(_, s)| s).collect()
        };
        self.inner.changed.notify_all();
        for s in streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // Wake the acceptor: it sees `stopping` on its next connection.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let handles = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for MockServer {
    /// Waits for the scripts to end (unless the test is already panicking), shuts every
    /// connection down, and panics with the failures `verify` has not reported.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop();
            return;
        }
        let failures = self.failures();
        self.stop();
        if !failures.is_empty() {
            panic!(
                "the mock server's script did not go as written:\n{}",
                failures.join("\n")
            );
        }
    }
}

/// What a TLS mock is started with (nothing, without the feature).
#[cfg(feature = "testing-tls")]
type TlsSetup = super::tls::MockTls;
#[cfg(not(feature = "testing-tls"))]
type TlsSetup = std::convert::Infallible;

fn accept_loop(
    listener: TcpListener,
    inner: Arc<Inner>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    for stream in listener.incoming() {
        if inner.is_stopping() {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors (EMFILE) and the like: the error repeats at once, so
                // breathe before trying again rather than spin (`stop` is seen above).
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let n = {
            let mut state = inner.state();
            if state.stopping {
                return;
            }
            state.accepted += 1;
            let n = state.accepted;
            state.frames.push(Vec::new());
            state.recorded_bytes.push(Some(0));
            match stream.try_clone() {
                Ok(s) => {
                    state.streams.insert(n, s);
                }
                Err(e) => {
                    // Unregistered, `stop` could not shut it down: not served at all.
                    drop(state);
                    inner.fail(format!(
                        "connection {n}: could not keep a handle on its socket ({e}); not served"
                    ));
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    continue;
                }
            }
            state.running += 1;
            n
        };
        let shared = inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("mock-conn-{n}"))
            .spawn(move || {
                let inner = shared;
                let mut conn = Conn::new(n, stream, &inner);
                // The script may run the test's own code (`expect_text_where`): a panic there
                // is a failure of the script, reported like any other, and the script is over
                // all the same (or `verify` and the drop would wait for ever).
                let after = match catch_unwind(AssertUnwindSafe(|| conn.play())) {
                    Ok(after) => after,
                    Err(p) => {
                        inner.fail(format!(
                            "connection {n}: panicked: {}",
                            crate::panics::message(&*p)
                        ));
                        After::Done
                    }
                };
                script_over(&inner);
                match after {
                    After::Done => {}
                    After::Serve => conn.serve(),
                    After::Hold => {
                        let mut state = inner.state();
                        while !state.stopping {
                            state = inner
                                .changed
                                .wait(state)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                }
                inner.state().streams.remove(&n);
            });
        match spawned {
            Ok(h) => connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(h),
            Err(e) => {
                inner.state().streams.remove(&n);
                inner.fail(format!("connection {n}: could not start its thread ({e})"));
                script_over(&inner);
            }
        }
    }
}

fn script_over(inner: &Inner) {
    let mut state = inner.state();
    state.running = state.running.saturating_sub(1);
    drop(state);
    inner.changed.notify_all();
}
