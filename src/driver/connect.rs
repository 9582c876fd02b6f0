//! The client role's way in: TCP connect (direct or through a proxy: `tunnel.rs`), TLS, and
//! the HTTP upgrade.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::callbacks::Callbacks;
use super::clock::timeout_deadline;
use super::head::{HeadError, read_head};
use super::outbox::Inbox;
use super::pool::{self, Job, ThreadRole};
use super::reader::{Opened, Reader, fail_unstarted};
use super::shared::Shared;
use super::transport::{self, Connector, ReadHalf, WriteHalf, is_stall};
use super::tunnel;
use crate::config::Config;
use crate::error::Error;
use crate::proto::Role;
use crate::proto::session::Cause;
use crate::proto::{handshake, redirect};
use crate::request::Request;
use crate::response::Response;

/// Gives a client socket its TLS configuration when it needs one (a redirect can lead to a
/// `wss` URL).
pub(crate) type TlsSource = Arc<dyn Fn() -> Result<Connector, String> + Send + Sync>;

/// What a client socket's reader thread starts with.
struct ClientStart {
    shared: Arc<Shared>,
    inbox: Inbox,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
}

/// Starts a client socket on a pooled reader thread, which connects and runs it.
///
/// If no thread can be had (the OS refuses one), the listener still hears exactly one
/// `on_failure`, delivered on the calling thread before this returns.
pub(crate) fn spawn_client(
    shared: Arc<Shared>,
    inbox: Inbox,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
) {
    let stack = config.thread_stack_size;
    // The start is kept where this thread can take it back if the job never runs.
    let slot = Arc::new(parking_lot::Mutex::new(Some(ClientStart {
        shared,
        inbox,
        config,
        tls,
        callbacks,
    })));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let Some(start) = theirs.lock().take() else {
            return Duration::ZERO;
        };
        drop(theirs);
        let keep_alive = start.config.thread_keep_alive;
        run_client(start);
        keep_alive
    });
    if let Err((e, job)) = pool::spawn(ThreadRole::Reader, stack, job) {
        drop(job);
        let start = slot.lock().take();
        if let Some(start) = start {
            log::error!("could not start the reader thread: {e}");
            let error = Error::io(
                e.kind(),
                format!("could not start the socket's reader thread: {e}"),
            );
            fail_unstarted(
                start.shared,
                start.callbacks,
                Role::Client,
                &start.config,
                error,
            );
        }
    }
}

/// Connects and upgrades on the calling thread (the blocking `Client::connect`), then hands
/// the open connection to a pooled reader thread. Returns the server's 101, or why the
/// socket failed (it is finished then: its callbacks heard the end).
///
/// A blocking caller waits for the handshake anyway; doing it here spares two thread
/// hand-offs (waking the reader, and the reader waking the caller with the open) per connect.
pub(crate) fn connect_here(
    shared: Arc<Shared>,
    inbox: Inbox,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
) -> Result<Response, Error> {
    let mut reader = Reader::new(shared.clone(), callbacks, Role::Client, &config);
    let (read, write, open) = match connect_following(&shared, &config, &tls) {
        Ok(opened) => opened,
        Err((error, response)) => {
            let error = error.with_response(response.as_deref().cloned());
            reader.finish(Cause::Failed(error.clone(), response));
            return Err(error);
        }
    };
    let response = open.response.clone();
    let Some(started) = reader.start_open(&read, write, inbox, &config, open) else {
        // Nobody else holds the socket yet, so nothing canceled it: the OS refused the
        // writer's thread (the socket's callbacks heard the same).
        return Err(Error::io(
            std::io::ErrorKind::Other,
            "could not start the socket's writer thread",
        ));
    };
    let keep_alive = config.thread_keep_alive;
    let slot = Arc::new(parking_lot::Mutex::new(Some((reader, read, started))));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let Some((mut reader, read, started)) = theirs.lock().take() else {
            return Duration::ZERO;
        };
        drop(theirs);
        reader.shared().enter_reader();
        reader.read_open(read, started);
        keep_alive
    });
    if let Err((e, job)) = pool::spawn(ThreadRole::Reader, config.thread_stack_size, job) {
        drop(job);
        let error = Error::io(
            e.kind(),
            format!("could not start the socket's reader thread: {e}"),
        );
        if let Some((mut reader, _read, _started)) = slot.lock().take() {
            reader.shared().fail(error.clone());
            reader.finish(Cause::Failed(error.clone(), None));
        }
        return Err(error);
    }
    Ok(response)
}

fn run_client(start: ClientStart) {
    let ClientStart {
        shared,
        inbox,
        config,
        tls,
        callbacks,
    } = start;
    shared.enter_reader();
    let mut reader = Reader::new(shared, callbacks, Role::Client, &config);
    match connect_following(reader.shared(), &config, &tls) {
        Ok((read, write, open)) => reader.run_open(read, write, inbox, &config, open),
        Err((error, response)) => reader.finish(Cause::Failed(error, response)),
    }
}

/// Connects, following up to `max_redirects` redirects of the upgrade.
///
/// Never inlined: its locals (the request, TLS, the handshake's buffers) would otherwise stay
/// reserved in the frame of the reader's whole life, and a touched stack page stays resident
/// (an idle socket's reader kept 12 KiB of stack instead of 8).
#[inline(never)]
fn connect_following(
    shared: &Arc<Shared>,
    config: &Config,
    tls: &TlsSource,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    let mut request = shared.request.clone();
    let mut redirects = 0u32;
    // One deadline for the whole chain, however many redirects it follows.
    let chain = ChainDeadline::new(config);
    loop {
        let (error, response) = match connect(shared, &request, config, tls, &chain) {
            Err((error, Some(response))) if redirect::is_redirect(response.status) => {
                (error, response)
            }
            done => return done,
        };
        if config.max_redirects == 0 {
            // Not following: the 3xx is the error it always was.
            return Err((error, Some(response)));
        }
        let refused = |e: Error, response: Box<Response>| {
            (e.with_response(Some((*response).clone())), Some(response))
        };
        if redirects >= config.max_redirects {
            let e = Error::rejected(format!(
                "{} {} to {:?} after {redirects} redirects: more than max_redirects allows",
                response.status,
                response.reason,
                crate::redact::url(response.header("Location").unwrap_or(""))
            ));
            return Err(refused(e, response));
        }
        match redirect::follow(&request, &response) {
            Ok(next) => {
                log::debug!(
                    "following {} from {} to {}",
                    response.status,
                    request.shown_url(),
                    next.shown_url()
                );
                redirects += 1;
                request = next;
            }
            Err(e) => return Err(refused(e, response)),
        }
    }
}

/// A failed connect: the error, and the server's response if it got that far.
type ConnectError = (Error, Option<Box<Response>>);

/// The deadline of a whole connect, redirects included: `connect_timeout + read_timeout` from
/// its start (unbounded if either is zero, which means "none"). Each hop's TCP leg still has
/// `connect_timeout` and its TLS and upgrade `read_timeout`, each cut short by this.
struct ChainDeadline {
    at: Instant,
    /// The sum, for the error when it is this deadline that passes.
    total: Duration,
}

impl ChainDeadline {
    fn new(config: &Config) -> ChainDeadline {
        let (c, r) = (config.connect_timeout, config.read_timeout);
        let total = if c.is_zero() || r.is_zero() {
            Duration::ZERO
        } else {
            c.saturating_add(r)
        };
        ChainDeadline {
            at: timeout_deadline(total),
            total,
        }
    }

    /// A phase's deadline, `timeout` from now but no later than the chain's, and the timeout
    /// an error reports when it passes.
    fn phase(&self, timeout: Duration) -> (Instant, Duration) {
        let own = timeout_deadline(timeout);
        if self.at < own {
            (self.at, self.total)
        } else {
            (own, timeout)
        }
    }
}

/// Connects, runs TLS and the HTTP upgrade. Returns the split connection and what the
/// handshake left for the open socket.
///
/// Never inlined: its locals must not stay on the stack under the read loop (a pooled
/// thread's touched stack pages stay resident).
#[inline(never)]
fn connect(
    shared: &Arc<Shared>,
    request: &Request,
    config: &Config,
    tls: &TlsSource,
    chain: &ChainDeadline,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    // A TLS configuration that could not be made (no backend, no roots) fails before any
    // traffic.
    let tls: Option<Connector> = request
        .is_tls()
        .then(|| tls())
        .transpose()
        .map_err(|e| (Error::Tls(e), None))?;
    let (host, port) = request.host_port().map_err(|e| (e, None))?;
    let (deadline, timeout) = chain.phase(config.connect_timeout);
    let dial = tunnel::Dial {
        proxy: &config.proxy,
        resolver: &config.resolver,
        abort: &shared.abort,
        deadline,
        timeout,
        attempt: config.connect_timeout,
    };
    let tcp = tunnel::open(&host, port, request.is_tls(), &dial);
    let tcp = Arc::new(tcp.map_err(|e| (e, None))?);
    let _ = tcp.set_nodelay(true);
    crate::config::apply_tcp_keepalive(&tcp, config.tcp_keepalive);
    if !shared.attach(&tcp, None) {
        return Err((Error::Canceled, None));
    }
    // TLS, the request's write, the answer's read: all by one deadline.
    let (deadline, timeout) = chain.phase(config.read_timeout);
    let on_timeout = || Error::ReadTimeout(timeout);
    // A cancel shuts the socket down under us: the session reports the cancel, not the
    // broken read, since the first failure recorded wins.
    let (mut read, mut write) = match tls {
        None => transport::plain(tcp),
        Some(connector) => transport::tls_connect(tcp, &connector, &host, deadline, on_timeout)
            .map_err(|e| (e, None))?,
    };
    let key = handshake::new_key();
    // A peer that accepts TCP and never reads must not hold the connect: the request (its
    // headers can be large) is written by the deadline too.
    write
        .write_all_by(
            &handshake::encode_request(request, &key, config.compression),
            deadline,
        )
        .map_err(|e| match e {
            e if is_stall(&e) => (on_timeout(), None),
            e => (Error::from(e), None),
        })?;
    let (mut response, leftover) = read_head(&mut read, deadline, handshake::parse_response)
        .map_err(|e| match e {
            HeadError::Parse(e) => (e, None),
            HeadError::Io(e) if is_stall(&e) => (on_timeout(), None),
            HeadError::Io(e) => (Error::from(e), None),
            HeadError::Eof { .. } => (
                Error::rejected("the server closed the connection before answering the upgrade"),
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
            response.url = Some(request.url().clone());
            if response.status != 101 {
                response.body = read_body(&mut read, leftover, deadline);
            }
            let error = e.with_response(Some(response.clone()));
            return Err((error, Some(Box::new(response))));
        }
    };
    let _ = read.tcp.set_read_timeout(None);
    response.url = Some(request.url().clone());
    let open = Opened {
        response,
        leftover,
        deflate,
    };
    Ok((read, write, open))
}

/// Keeps up to `MAX_BODY_BYTES` of a refused handshake's body, without waiting past `deadline`.
#[inline(never)]
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
