//! One hop of a client's connect (one URL; a redirect starts another), as named steps in the
//! order they happen:
//!
//! 1. [`tls_config`](Hop::tls_config): for a `wss` URL, the TLS configuration, before any
//!    traffic (no backend or no roots fails here);
//! 2. [`dial`](Hop::dial): the TCP leg, directly or through a proxy ([`tunnel`]),
//!    by the `connect_timeout`;
//! 3. [`tls`](Hop::tls): the TLS handshake, or the plain halves;
//! 4. [`send_request`](Hop::send_request): the upgrade request;
//! 5. [`read_answer`](Hop::read_answer): the server's answer, checked by the pure handshake
//!    code; a refusal keeps its body for the error.
//!
//! Steps 3 to 5 share one deadline, `handshake_timeout` from the end of the TCP leg; every
//! deadline is cut short by the whole chain's ([`ChainDeadline`]).

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::deadline::ChainDeadline;
use super::tunnel;
use crate::config::Config;
use crate::driver::head::{HeadError, read_head};
use crate::driver::read::Opened;
use crate::driver::socket::Socket;
use crate::driver::transport::{self, Connector, ReadHalf, WriteHalf, is_stall};
use crate::driver::write;
use crate::error::Error;
use crate::proto::handshake;
use crate::request::Request;
use crate::response::Response;

/// Gives a client socket its TLS configuration when it needs one (a redirect can lead to a
/// `wss` URL).
pub(crate) type TlsSource = Arc<dyn Fn() -> Result<Connector, String> + Send + Sync>;

/// A failed connect: the error, and the server's response if it got that far.
pub(super) type ConnectError = (Error, Option<Box<Response>>);

/// What one hop's steps share.
struct Hop<'a> {
    socket: &'a Arc<Socket>,
    request: &'a Request,
    config: &'a Config,
    chain: &'a ChainDeadline,
}

/// Connects, runs TLS and the HTTP upgrade for `request`. Returns the split connection and
/// what the handshake left for the open socket.
///
/// Never inlined: its locals must not stay on the stack under the read loop (a pooled
/// thread's touched stack pages stay resident).
#[inline(never)]
pub(super) fn connect(
    socket: &Arc<Socket>,
    request: &Request,
    config: &Config,
    tls: &TlsSource,
    chain: &ChainDeadline,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    let hop = Hop {
        socket,
        request,
        config,
        chain,
    };
    let connector = hop.tls_config(tls).map_err(|e| (e, None))?;
    let (host, port) = request.host_port().map_err(|e| (e, None))?;
    let tcp = hop.dial(&host, port).map_err(|e| (e, None))?;
    let (deadline, timeout) = chain.phase(config.handshake_timeout);
    let on_timeout = || Error::ReadTimeout(timeout);
    let (mut read, mut write) = hop
        .tls(tcp, connector, &host, deadline, on_timeout)
        .map_err(|e| (e, None))?;
    let key = hop
        .send_request(&mut write, deadline, on_timeout)
        .map_err(|e| (e, None))?;
    let open = hop.read_answer(&mut read, &key, deadline, on_timeout)?;
    Ok((read, write, open))
}

impl Hop<'_> {
    /// Step 1. A `wss` URL's TLS configuration, made before any traffic: one that cannot be
    /// made (no backend, no roots) fails the connect here.
    fn tls_config(&self, tls: &TlsSource) -> Result<Option<Connector>, Error> {
        self.request
            .is_tls()
            .then(|| tls())
            .transpose()
            .map_err(Error::Tls)
    }

    /// Step 2. The TCP leg, by `connect_timeout`, then attached to the socket so `cancel()`
    /// can shut it down (a socket canceled meanwhile ends here).
    fn dial(&self, host: &str, port: u16) -> Result<Arc<TcpStream>, Error> {
        let config = self.config;
        let (deadline, timeout) = self.chain.phase(config.connect_timeout);
        let dial = tunnel::Dial {
            proxy: &config.proxy,
            resolver: &config.resolver,
            abort: &self.socket.abort,
            deadline,
            timeout,
            attempt: config.connect_timeout,
        };
        let tcp = Arc::new(tunnel::open(host, port, self.request.is_tls(), &dial)?);
        let _ = tcp.set_nodelay(true);
        crate::config::apply_tcp_keepalive(&tcp, config.tcp_keepalive);
        if !self.socket.attach(&tcp, None) {
            return Err(Error::Canceled);
        }
        Ok(tcp)
    }

    /// Step 3. The TLS handshake with `host`, or the plain halves. A cancel shuts the socket
    /// down under it: the session reports the cancel, not the broken read, since the first
    /// failure recorded wins.
    fn tls(
        &self,
        tcp: Arc<TcpStream>,
        connector: Option<Connector>,
        host: &str,
        deadline: Instant,
        on_timeout: impl Fn() -> Error,
    ) -> Result<(ReadHalf, WriteHalf), Error> {
        match connector {
            None => Ok(transport::plain(tcp)),
            Some(connector) => transport::tls_connect(tcp, &connector, host, deadline, on_timeout),
        }
    }

    /// Step 4. The upgrade request, with a fresh key (returned, to check the answer by). By the
    /// deadline: a peer that accepts TCP and never reads must not hold the connect (the
    /// request's headers can be large).
    fn send_request(
        &self,
        write: &mut WriteHalf,
        deadline: Instant,
        on_timeout: impl Fn() -> Error,
    ) -> Result<String, Error> {
        let key = handshake::new_key();
        let bytes = handshake::encode_request(self.request, &key, self.config.compression);
        write::handshake::head(write, &bytes, deadline).map_err(|e| match e {
            e if is_stall(&e) => on_timeout(),
            e => Error::from(e),
        })?;
        Ok(key)
    }

    /// Step 5. The server's answer, by the deadline, checked against the request (the key,
    /// the subprotocols offered, the compression asked for). A refusal keeps what came of its
    /// body, and the response goes with the error: a redirect is followed from it.
    fn read_answer(
        &self,
        read: &mut ReadHalf,
        key: &str,
        deadline: Instant,
        on_timeout: impl Fn() -> Error,
    ) -> Result<Opened, ConnectError> {
        let (mut response, leftover) = read_head(read, deadline, handshake::parse_response)
            .map_err(|e| match e {
                HeadError::Parse(e) => (e, None),
                HeadError::Io(e) if is_stall(&e) => (on_timeout(), None),
                HeadError::Io(e) => (Error::from(e), None),
                HeadError::Eof { .. } => (
                    Error::rejected(
                        "the server closed the connection before answering the upgrade",
                    ),
                    None,
                ),
            })?;
        response.url = Some(self.request.url().clone());
        let checked = handshake::check_response(
            &mut response,
            key,
            self.request.subprotocols(),
            self.config.compression,
        );
        let deflate = match checked {
            Ok(deflate) => deflate,
            Err(e) => {
                if response.status != 101 {
                    response.body = read_body(read, leftover, deadline);
                }
                let error = e.with_response(Some(response.clone()));
                return Err((error, Some(Box::new(response))));
            }
        };
        let _ = read.tcp.set_read_timeout(None);
        Ok(Opened {
            response,
            leftover,
            deflate,
        })
    }
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
