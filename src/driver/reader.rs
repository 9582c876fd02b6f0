//! The reader thread: connect, handshake, read loop, callbacks, and the socket's ending.

use std::any::Any;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::STACK_SIZE;
use super::transport::{self, ReadHalf, WriteHalf};
use super::writer::Writer;
use crate::config::Config;
use crate::decoder::{Decoder, Incoming, Role};
use crate::deflate::{self, Inflater};
use crate::error::Error;
use crate::handshake;
use crate::listener::WebSocketListener;
use crate::response::Response;
use crate::server::{Accept, ServerShared};
use crate::websocket::{Control, MAX_PENDING_PONGS, Outgoing, Queues, Shared, State, WebSocket};

/// How long a failing socket waits for the peer to close TCP after our close frame, so the
/// frame is not lost to a reset.
const FAIL_LINGER: Duration = Duration::from_secs(2);
/// Size of the read buffer. Reads fill it whole when data is waiting; it is the socket's one
/// fixed receive allocation.
const READ_BUF: usize = 16 * 1024;
/// HTTP heads up to this size are parsed after every read; longer ones once complete.
const EAGER_PARSE_BYTES: usize = 4096;

type BoxListener = Box<dyn WebSocketListener>;

/// Starts a client socket's reader thread, which connects and runs the socket.
pub(crate) fn spawn_client(
    ws: WebSocket,
    queues: Queues,
    config: Config,
    tls: Option<Result<native_tls::TlsConnector, String>>,
    listener: BoxListener,
) {
    let shared = ws.shared.clone();
    let spawned = thread::Builder::new()
        .name("syncws-reader".into())
        .stack_size(STACK_SIZE)
        .spawn(move || run_client(ws, queues, config, tls, listener));
    match spawned {
        Ok(h) => shared.set_reader(h),
        Err(e) => {
            log::error!("could not start the reader thread: {e}");
            shared.core.lock().state = State::Canceled;
            shared.mark_finished();
        }
    }
}

fn run_client(
    ws: WebSocket,
    queues: Queues,
    config: Config,
    tls: Option<Result<native_tls::TlsConnector, String>>,
    listener: BoxListener,
) {
    ws.shared.enter_reader();
    let mut reader = Reader::new(ws, listener, Role::Client, &config);
    match connect(&reader.ws, &config, tls) {
        Ok((read, write, open)) => reader.run_open(read, write, queues, &config, open),
        Err((error, response)) => reader.finish(Outcome::Failed(error, response)),
    }
}

/// A failed connect: the error, and the server's response if it got that far.
type ConnectError = (Error, Option<Box<Response>>);

/// Connects, runs TLS and the HTTP upgrade. Returns the split connection and what the
/// handshake left for the open socket.
fn connect(
    ws: &WebSocket,
    config: &Config,
    tls: Option<Result<native_tls::TlsConnector, String>>,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    let shared = &ws.shared;
    let request = &shared.request;
    let (host, port) = request.host_port().map_err(|e| (e, None))?;
    let tcp = connect_tcp(&host, port, config.connect_timeout).map_err(|e| (e, None))?;
    let _ = tcp.set_nodelay(true);
    {
        let mut core = shared.core.lock();
        if core.failure.is_some() {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
            return Err((Error::Canceled, None));
        }
        core.socket = tcp.try_clone().ok();
    }
    let deadline = Instant::now() + config.read_timeout;
    let on_timeout = || Error::ReadTimeout(config.read_timeout);
    let canceled = |e: Error| {
        // A cancel shuts the socket down under us: report the cancel, not the broken read.
        match shared.core.lock().failure.take() {
            Some(f) => f,
            None => e,
        }
    };
    let (mut read, mut write) = match tls {
        None => transport::plain(tcp).map_err(|e| (Error::Io(e), None))?,
        Some(Err(e)) => return Err((Error::Tls(e), None)),
        Some(Ok(connector)) => transport::tls_connect(tcp, &connector, &host, deadline, on_timeout)
            .map_err(|e| (canceled(e), None))?,
    };
    let key = handshake::new_key();
    write
        .write_all(&handshake::encode_request(
            request,
            &key,
            config.compression,
        ))
        .map_err(|e| (canceled(Error::Io(e)), None))?;
    let (mut response, leftover) = read_head(&mut read, deadline, handshake::parse_response)
        .map_err(|e| match e {
            HeadError::Parse(e) => (e, None),
            HeadError::Io(e) if is_timeout(&e) => (canceled(on_timeout()), None),
            HeadError::Io(e) => (canceled(Error::Io(e)), None),
            HeadError::Eof => (
                canceled(Error::HandshakeRejected(
                    "the server closed the connection before answering the upgrade".into(),
                )),
                None,
            ),
        })?;
    let deflate = match handshake::check_response(
        &mut response,
        &key,
        request.subprotocols(),
        config.compression,
    ) {
        Ok(d) => d,
        Err(e) => {
            if response.status != 101 {
                response.body = read_body(&mut read, leftover, deadline);
            }
            return Err((e, Some(Box::new(response))));
        }
    };
    let _ = read.tcp.set_read_timeout(None);
    let open = Opened {
        response,
        leftover,
        deflate,
    };
    Ok((read, write, open))
}

/// Why an HTTP head could not be read.
enum HeadError<E> {
    /// The head is malformed, too large, or refused by `parse`.
    Parse(E),
    Io(std::io::Error),
    /// The peer closed the connection first.
    Eof,
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads an HTTP head by `deadline` and parses it with `parse`; returns the parsed head and the
/// bytes read past it.
///
/// `parse` runs on every read while the head is short (so garbage is refused at once), and
/// past that only once a blank line (the end of a head) has arrived or the head has reached the
/// size cap: a peer trickling a long head a byte at a time costs one scan of each byte, not a
/// fresh parse of the whole head on every read.
fn read_head<T, E>(
    read: &mut ReadHalf,
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<(T, Vec<u8>), HeadError<E>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    let mut scanned: usize = 0;
    loop {
        let end_seen = buf[scanned.saturating_sub(2)..]
            .windows(2)
            .any(|w| w == b"\n\n")
            || buf[scanned.saturating_sub(3)..]
                .windows(3)
                .any(|w| w == b"\n\r\n");
        scanned = buf.len();
        if (end_seen || buf.len() <= EAGER_PARSE_BYTES || buf.len() > handshake::MAX_HEADER_BYTES)
            && let Some((head, len)) = parse(&buf).map_err(HeadError::Parse)?
        {
            return Ok((head, buf.split_off(len)));
        }
        let n = transport::set_deadline(&read.tcp, Some(deadline))
            .and_then(|()| read.read(&mut chunk))
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Answers an upgrade request with an HTTP error and closes the connection.
fn refuse(write: &mut WriteHalf, status: u16, reason: String) {
    let _ = write.write_all(&handshake::encode_refusal(&handshake::Refusal {
        status,
        reason,
    }));
    write.finish();
}

/// Keeps up to `MAX_BODY_BYTES` of a refused handshake's body, without waiting past `deadline`.
fn read_body(read: &mut ReadHalf, mut body: Vec<u8>, deadline: Instant) -> Vec<u8> {
    let mut chunk = [0u8; 1024];
    while body.len() < handshake::MAX_BODY_BYTES {
        // Short wait: the body, if any, normally came with the head.
        let d = deadline.min(Instant::now() + Duration::from_millis(200));
        match transport::set_deadline(&read.tcp, Some(d)).and_then(|()| read.read(&mut chunk)) {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    body.truncate(handshake::MAX_BODY_BYTES);
    body
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("resolving {host}: {e}"),
            ))
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => Error::ConnectTimeout(timeout),
        Some(e) => Error::Io(std::io::Error::new(
            e.kind(),
            format!("connecting to {host}:{port}: {e}"),
        )),
        None => Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )),
    })
}

/// Starts the thread that runs one accepted server connection.
pub(crate) fn spawn_server(tcp: TcpStream, server: Arc<ServerShared>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("syncws-reader".into())
        .stack_size(STACK_SIZE)
        .spawn(move || run_server(tcp, server))
        .map(|_| ())
}

fn run_server(tcp: TcpStream, server: Arc<ServerShared>) {
    let _guard = server.connection_guard();
    let config = server.config.clone();
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + config.read_timeout;
    let on_timeout = || Error::ReadTimeout(config.read_timeout);
    let halves = match &server.tls {
        None => transport::plain(tcp).map_err(Error::Io),
        Some(acceptor) => transport::tls_accept(tcp, acceptor, deadline, on_timeout),
    };
    let (mut read, mut write) = match halves {
        Ok(h) => h,
        Err(e) => {
            log::debug!("server handshake failed: {e}");
            return;
        }
    };
    let (hello, leftover) = match read_head(&mut read, deadline, handshake::parse_request) {
        Ok(head) => head,
        Err(HeadError::Parse(r)) => return refuse(&mut write, r.status, r.reason),
        Err(_) => return,
    };
    let scheme = if server.tls.is_some() { "wss" } else { "ws" };
    let url = url::Url::parse(&format!("{scheme}://{}{}", hello.host, hello.path))
        .or_else(|_| url::Url::parse(&format!("{scheme}://localhost{}", hello.path)));
    let Ok(url) = url else {
        return refuse(&mut write, 400, "Bad Request".into());
    };
    let request = crate::request::Request::from_parts(url, hello.headers, hello.protocols);
    let (listener, protocol) = match (server.handler)(&request) {
        Accept::Upgrade {
            listener,
            subprotocol,
        } => {
            let protocol = subprotocol.filter(|p| {
                let offered = request.subprotocols().contains(p);
                if !offered {
                    log::warn!("handler chose subprotocol {p} the client did not offer; ignored");
                }
                offered
            });
            (listener, protocol)
        }
        Accept::Reject { status, reason } => return refuse(&mut write, status, reason),
    };
    let extensions: Vec<&str> =
        handshake::header_values(request.headers(), "Sec-WebSocket-Extensions").collect();
    let deflate = if config.compression {
        deflate::negotiate(&extensions, &server.deflate)
    } else {
        None
    };
    let accept = handshake::encode_accept(
        &hello.key,
        protocol.as_deref(),
        deflate.as_ref().map(|(_, header)| header.as_str()),
    );
    if write.write_all(&accept).is_err() {
        return;
    }
    let _ = read.tcp.set_read_timeout(None);
    let (shared, queues) = Shared::new(request, config.max_queue_size);
    shared.core.lock().socket = read.tcp.try_clone().ok();
    shared.enter_reader();
    let ws = WebSocket { shared };
    server.track(&ws);
    let response = Response {
        status: 101,
        reason: "Switching Protocols".into(),
        headers: Vec::new(),
        subprotocol: protocol,
        body: Vec::new(),
    };
    let mut reader = Reader::new(ws, listener, Role::Server, &config);
    let open = Opened {
        response,
        leftover,
        deflate: deflate.map(|(params, _)| params),
    };
    reader.run_open(read, write, queues, &config, open);
}

/// What the handshake left for the open socket.
struct Opened {
    response: Response,
    leftover: Vec<u8>,
    deflate: Option<deflate::Params>,
}

/// How a socket ended.
enum Outcome {
    Closed(u16, String),
    Failed(Error, Option<Box<Response>>),
}

struct Reader {
    ws: WebSocket,
    listener: BoxListener,
    role: Role,
    max_message_size: u64,
    writer: Option<thread::JoinHandle<()>>,
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl Reader {
    fn new(ws: WebSocket, listener: BoxListener, role: Role, config: &Config) -> Self {
        Reader {
            ws,
            listener,
            role,
            max_message_size: config.max_message_size,
            writer: None,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.ws.shared
    }

    /// Runs a callback, turning a panic into an error.
    fn call(&mut self, f: impl FnOnce(&mut BoxListener, &WebSocket)) -> Result<(), Error> {
        let ws = &self.ws;
        let listener = &mut self.listener;
        catch_unwind(AssertUnwindSafe(|| f(listener, ws)))
            .map_err(|p| Error::ListenerPanicked(panic_message(p)))
    }

    fn run_open(
        &mut self,
        mut read: ReadHalf,
        write: WriteHalf,
        queues: Queues,
        config: &Config,
        open: Opened,
    ) {
        let Opened {
            response,
            leftover,
            deflate,
        } = open;
        {
            let mut core = self.shared().core.lock();
            if let Some(e) = core.failure.take() {
                drop(core);
                return self.finish(Outcome::Failed(e, None));
            }
            core.state = if core.close_enqueued {
                State::Closing
            } else {
                State::Open
            };
        }
        let writer = Writer::new(
            self.shared().clone(),
            write,
            queues,
            self.role,
            config,
            deflate.as_ref(),
        );
        match thread::Builder::new()
            .name("syncws-writer".into())
            .stack_size(STACK_SIZE)
            .spawn(move || writer.run())
        {
            Ok(h) => self.writer = Some(h),
            Err(e) => {
                return self.finish(Outcome::Failed(Error::Io(e), None));
            }
        }
        if let Err(e) = self.call(|l, ws| l.on_open(ws, &response)) {
            return self.fail_with_close(&mut read, e);
        }
        let inflater = deflate.as_ref().map(Inflater::new);
        let outcome = self.read_loop(&mut read, leftover, inflater);
        self.finish(outcome)
    }

    fn read_loop(
        &mut self,
        read: &mut ReadHalf,
        leftover: Vec<u8>,
        inflater: Option<Inflater>,
    ) -> Outcome {
        let mut decoder = Decoder::new(self.role, self.max_message_size, inflater);
        let mut buf = leftover;
        let mut len = buf.len();
        if buf.len() < READ_BUF {
            buf.resize(READ_BUF, 0);
        }
        loop {
            let mut pos = 0;
            while pos < len {
                let (used, event) = match decoder.decode(&buf[pos..len]) {
                    Ok(r) => r,
                    Err(e) => return self.fail_with_close_outcome(read, e),
                };
                pos += used;
                let Some(event) = event else { continue };
                match self.handle(event) {
                    // A callback (or another thread) canceled or failed the socket: deliver
                    // nothing more, even what is already in the buffer.
                    Ok(None) if self.shared().core.lock().failure.is_some() => {
                        return self.ended_without_close(None);
                    }
                    Ok(None) => {}
                    Ok(Some((code, reason))) => return self.closing(read, code, reason),
                    Err(e) => return self.fail_with_close_outcome(read, e),
                }
            }
            if read.tls_output_pending {
                read.tls_output_pending = false;
                if !self.shared().tls_flush_queued.swap(true, Ordering::AcqRel) {
                    let _ = self.shared().ctrl_tx.send(Control::FlushTls);
                }
            }
            len = match read.read(&mut buf) {
                Ok(0) => return self.ended_without_close(None),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return self.ended_without_close(Some(Error::Io(e))),
            };
        }
    }

    /// Handles one decoded event; returns the peer's close when it arrives.
    fn handle(&mut self, event: Incoming) -> Result<Option<(u16, String)>, Error> {
        match event {
            Incoming::Message(m) => {
                self.call(|l, ws| l.on_message(ws, m))?;
                Ok(None)
            }
            Incoming::Ping(payload) => {
                let shared = self.shared();
                if shared.pending_pongs.fetch_add(1, Ordering::AcqRel) < MAX_PENDING_PONGS {
                    let _ = shared.ctrl_tx.send(Control::Pong(payload));
                } else {
                    shared.pending_pongs.fetch_sub(1, Ordering::AcqRel);
                    log::debug!("ping not answered: {MAX_PENDING_PONGS} pongs already waiting");
                }
                Ok(None)
            }
            Incoming::Pong(_) => {
                self.shared().pongs.fetch_add(1, Ordering::AcqRel);
                Ok(None)
            }
            Incoming::Close(frame) => {
                let code = frame.reported_code();
                {
                    let mut core = self.shared().core.lock();
                    core.peer_closed = true;
                    if matches!(core.state, State::Open | State::Connecting) {
                        core.state = State::Closing;
                    }
                }
                self.call(|l, ws| l.on_closing(ws, code, &frame.reason))?;
                // Answer with the peer's code unless the application answered itself.
                self.shared().enqueue_close(frame.code, "");
                Ok(Some((code, frame.reason)))
            }
        }
    }

    /// After the peer's close: wait for the connection to end, then report `on_closed`.
    fn closing(&mut self, read: &mut ReadHalf, code: u16, reason: String) -> Outcome {
        {
            let core = self.shared().core.lock();
            if core.close_written && self.role == Role::Server {
                // Our close went out first; the writer saw no peer close yet, so finish here.
                core.socket
                    .as_ref()
                    .map(|s| s.shutdown(std::net::Shutdown::Write));
            }
        }
        // The writer's close timer bounds this wait; a cancel ends it at once.
        read.drain_until_eof(None);
        let failure = self.shared().core.lock().failure.take();
        match failure {
            None => Outcome::Closed(code, reason),
            Some(e) => Outcome::Failed(e, None),
        }
    }

    fn ended_without_close(&mut self, error: Option<Error>) -> Outcome {
        let recorded = self.shared().core.lock().failure.take();
        let error = recorded.or(error).unwrap_or(Error::UnexpectedEof);
        Outcome::Failed(error, None)
    }

    fn fail_with_close_outcome(&mut self, read: &mut ReadHalf, error: Error) -> Outcome {
        // Something else may have failed first (a cancel that cut the stream mid-frame).
        if let Some(first) = self.shared().core.lock().failure.take() {
            return Outcome::Failed(first, None);
        }
        log::debug!("failing connection: {error}");
        let code = error.close_code().unwrap_or(1011);
        {
            let mut core = self.shared().core.lock();
            core.close_enqueued = true;
            if core.state != State::Canceled {
                core.state = State::Closing;
            }
            // In the data queue, under the lock: behind every message already sent.
            let _ = self.shared().data_tx.send(Outgoing::FailClose(code));
        }
        read.drain_until_eof(Some(Instant::now() + FAIL_LINGER));
        Outcome::Failed(error, None)
    }

    fn fail_with_close(&mut self, read: &mut ReadHalf, error: Error) {
        let outcome = self.fail_with_close_outcome(read, error);
        self.finish(outcome)
    }

    /// Ends the socket: stops the writer, closes the connection, delivers the terminal callback.
    fn finish(&mut self, outcome: Outcome) {
        {
            let mut core = self.shared().core.lock();
            core.shutdown();
            core.close_enqueued = true;
            core.socket = None;
            core.state = match outcome {
                Outcome::Closed(..) => State::Closed,
                Outcome::Failed(..) => State::Canceled,
            };
            core.failure = None;
        }
        let _ = self.shared().ctrl_tx.send(Control::Stop);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let result = match outcome {
            Outcome::Closed(code, reason) => {
                log::debug!("closed {code} {reason:?}");
                self.call(|l, ws| l.on_closed(ws, code, &reason))
            }
            Outcome::Failed(error, response) => {
                log::debug!("failed: {error}");
                self.call(|l, ws| l.on_failure(ws, error, response.as_deref()))
            }
        };
        if let Err(e) = result {
            log::error!("terminal listener callback: {e}");
        }
        self.shared().mark_finished();
    }
}
