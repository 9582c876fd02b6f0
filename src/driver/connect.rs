//! The client role's way in: TCP connect, TLS, and the HTTP upgrade.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::head::{HeadError, is_timeout, read_head};
use super::reader::{BoxListener, Opened, Outcome, Reader};
use super::shared::Queues;
use super::timeout_deadline;
use super::transport::{self, Connector, ReadHalf, WriteHalf};
use crate::config::Config;
use crate::error::Error;
use crate::proto::Role;
use crate::proto::handshake;
use crate::response::Response;
use crate::websocket::WebSocket;

pub(super) fn run_client(
    ws: WebSocket,
    queues: Queues,
    config: Config,
    tls: Option<Result<Connector, String>>,
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
///
/// Never inlined: its locals must not stay on the stack under the read loop (a pooled
/// thread's touched stack pages stay resident).
#[inline(never)]
fn connect(
    ws: &WebSocket,
    config: &Config,
    tls: Option<Result<Connector, String>>,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    let shared = &ws.shared;
    let request = &shared.request;
    // A TLS configuration that could not be made (no backend, no roots) fails before any
    // traffic.
    let tls = tls.transpose().map_err(|e| (Error::Tls(e), None))?;
    let (host, port) = request.host_port().map_err(|e| (e, None))?;
    let tcp = Arc::new(connect_tcp(&host, port, config.connect_timeout).map_err(|e| (e, None))?);
    let _ = tcp.set_nodelay(true);
    crate::config::apply_tcp_keepalive(&tcp, config.tcp_keepalive);
    {
        let mut core = shared.core.lock();
        if core.failure.is_some() {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
            return Err((Error::Canceled, None));
        }
        core.socket = Some(tcp.clone());
    }
    let deadline = timeout_deadline(config.read_timeout);
    let on_timeout = || Error::ReadTimeout(config.read_timeout);
    let canceled = |e: Error| {
        // A cancel shuts the socket down under us: report the cancel, not the broken read.
        match shared.core.lock().failure.take() {
            Some(f) => f,
            None => e,
        }
    };
    let (mut read, mut write) = match tls {
        None => transport::plain(tcp),
        Some(connector) => transport::tls_connect(tcp, &connector, &host, deadline, on_timeout)
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
        // Zero means no timeout (std refuses a zero one).
        let connected = if timeout.is_zero() {
            TcpStream::connect(addr)
        } else {
            TcpStream::connect_timeout(&addr, timeout)
        };
        match connected {
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
