//! The client's TCP leg: to the server directly, or to a proxy and through its tunnel.
//!
//! [`open`] returns a `TcpStream` on which the next byte read is the server's: TLS and the
//! upgrade ([`hop`](super::hop)) run over it exactly as over a direct connection. Through a proxy the
//! whole leg — TCP connect to the proxy and its handshake — must finish within the connect
//! timeout.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::dns::{self, LookupError};
use crate::config::Resolver;
use crate::driver::head::{HeadError, read_head};
use crate::driver::socket::Abort;
use crate::driver::transport::is_stall;
use crate::error::Error;
use crate::proto::handshake::MAX_HEADER_BYTES;
use crate::proto::tunnel::{self, AnswerError, Method, Reply, SocksError, SocksTarget};
use crate::proxy::{Endpoint, Proxy, Scheme};

/// How the TCP leg is made and how long it may take.
pub(super) struct Dial<'a> {
    pub proxy: &'a Proxy,
    pub resolver: &'a Resolver,
    /// Fired by `cancel()`: a name lookup in progress ends at once.
    pub abort: &'a Abort,
    /// When the whole leg (lookups, TCP connects, the proxy's handshake) must be done.
    pub deadline: Instant,
    /// What the error reports when the deadline passes.
    pub timeout: Duration,
    /// Each TCP connect attempt's own bound (zero: none but the deadline).
    pub attempt: Duration,
}

/// Connects to `host:port` (`tls`: a `wss` URL), through `dial.proxy` if it says so.
pub(super) fn open(host: &str, port: u16, tls: bool, dial: &Dial) -> Result<TcpStream, Error> {
    let Some(endpoint) = dial.proxy.route(host, port, tls)? else {
        return connect_tcp(host, port, dial);
    };
    log::debug!("connecting to {host}:{port} through {endpoint}");
    let leg = Leg { endpoint, dial };
    let tcp = match endpoint.scheme {
        Scheme::Http => leg.http_connect(host, port),
        Scheme::Socks5h => match host.parse::<IpAddr>() {
            Ok(ip) => leg
                .socks(SocksTarget::Ip(ip), host, port)
                .map_err(Error::from),
            Err(_) => leg
                .socks(SocksTarget::Name(host), host, port)
                .map_err(Error::from),
        },
        Scheme::Socks5 => leg.socks_resolved(host, port),
    }?;
    // Hand the stream over as a direct connect would: no timeouts left on it.
    let _ = tcp.set_read_timeout(None);
    let _ = tcp.set_write_timeout(None);
    Ok(tcp)
}

/// One connection attempt through a proxy, bounded by the dial's deadline.
struct Leg<'a> {
    endpoint: &'a Endpoint,
    dial: &'a Dial<'a>,
}

impl Leg<'_> {
    fn fail(&self, what: impl std::fmt::Display) -> Error {
        Error::Proxy(format!("proxy {} {what}", self.endpoint))
    }

    fn connect(&self) -> Result<TcpStream, Error> {
        let tcp =
            connect_tcp(&self.endpoint.host, self.endpoint.port, self.dial).map_err(
                |e| match e {
                    Error::Io(e) => self.fail(format_args!("could not be reached: {e}")),
                    other => other,
                },
            )?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Sets the socket's timeouts to what is left of the leg.
    fn arm(&self, tcp: &TcpStream) -> Result<(), Error> {
        let left = self.dial.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::ConnectTimeout(self.dial.timeout));
        }
        tcp.set_read_timeout(Some(left))
            .and_then(|()| tcp.set_write_timeout(Some(left)))
            .map_err(|e| self.fail(format_args!("connection failed: {e}")))
    }

    fn io_error(&self, e: io::Error, during: &str) -> Error {
        if is_stall(&e) {
            log::debug!("proxy {} did not finish {during} in time", self.endpoint);
            Error::ConnectTimeout(self.dial.timeout)
        } else {
            self.fail(format_args!("connection failed during {during}: {e}"))
        }
    }

    fn send(&self, tcp: &mut TcpStream, bytes: &[u8], during: &str) -> Result<(), Error> {
        self.arm(tcp)?;
        tcp.write_all(bytes).map_err(|e| self.io_error(e, during))
    }

    /// One read of at most `buf.len()` bytes; 0 is the end of the connection.
    fn recv(&self, tcp: &mut TcpStream, buf: &mut [u8], during: &str) -> Result<usize, Error> {
        self.arm(tcp)?;
        loop {
            match tcp.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|e| self.io_error(e, during)),
            }
        }
    }

    fn http_connect(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let mut tcp = self.connect()?;
        let auth = self.endpoint.auth.as_ref();
        let request = tunnel::encode_connect(
            host,
            port,
            auth.map(|a| (a.user.as_str(), a.password.as_str())),
        );
        self.send(&mut tcp, &request, "CONNECT")?;
        let head = read_head(&mut &tcp, self.dial.deadline, tunnel::parse_connect_answer);
        let (answer, rest) = head.map_err(|e| match e {
            HeadError::Parse(AnswerError::NotHttp) => {
                self.fail("answered CONNECT with something that is not HTTP")
            }
            HeadError::Parse(AnswerError::TooLarge) => self.fail(format_args!(
                "answered CONNECT with a head over {} KiB or {} header lines",
                MAX_HEADER_BYTES / 1024,
                tunnel::MAX_HEADERS
            )),
            HeadError::Io(e) => self.io_error(e, "CONNECT"),
            HeadError::Eof { partial: false } => {
                self.fail("closed the connection before answering CONNECT")
            }
            HeadError::Eof { partial: true } => {
                self.fail("closed the connection in the middle of its answer to CONNECT")
            }
        })?;
        let target = tunnel::authority(host, port);
        if !answer.is_success() {
            // 407 is the proxy's "who are you"; tinyproxy 1.11 answers a CONNECT without
            // (good) credentials with 401 instead.
            let hint = match (answer.status, auth.is_some()) {
                (401 | 407, true) => " (check the proxy's user name and password)",
                (401 | 407, false) => {
                    " (the proxy wants a user name and password: put them in the proxy URL, \
                     http://user:password@host:port)"
                }
                _ => "",
            };
            return Err(self.fail(format_args!(
                "refused the tunnel to {target}: {} {}{hint}",
                answer.status, answer.reason
            )));
        }
        if !rest.is_empty() {
            // The server speaks only after our request (upgrade or TLS ClientHello): anything
            // here did not come from it.
            return Err(self.fail(format_args!(
                "sent {} bytes after its answer to CONNECT, before the tunnel was used",
                rest.len()
            )));
        }
        log::debug!(
            "proxy {} opened a tunnel to {target}: {} {}",
            self.endpoint,
            answer.status,
            answer.reason
        );
        Ok(tcp)
    }

    /// socks5: resolves `host` here and tries each address through a fresh proxy connection
    /// while the proxy says the destination cannot be reached, as a direct connect tries each.
    fn socks_resolved(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let addrs = resolve(host, port, self.dial)?;
        let mut last = None;
        for addr in addrs {
            match self.socks(SocksTarget::Ip(addr.ip()), host, port) {
                Ok(tcp) => return Ok(tcp),
                Err(Retry::Next(e)) => last = Some(e),
                Err(Retry::Stop(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address(host)))
    }

    fn socks(&self, target: SocksTarget<'_>, host: &str, port: u16) -> Result<TcpStream, Retry> {
        let socks_fail = |e: SocksError| {
            let shown = match target {
                SocksTarget::Ip(ip) => tunnel::authority(&ip.to_string(), port),
                SocksTarget::Name(_) => tunnel::authority(host, port),
            };
            let error = Error::Proxy(match &e {
                SocksError::Reply(_) => {
                    format!(
                        "SOCKS5 proxy {}: {e} (connecting to {shown})",
                        self.endpoint
                    )
                }
                _ => format!("SOCKS5 proxy {} {e}", self.endpoint),
            });
            if e.is_destination_unreachable() {
                Retry::Next(error)
            } else {
                Retry::Stop(error)
            }
        };
        let mut tcp = self.connect()?;
        let auth = self.endpoint.auth.as_ref();
        let during = "the SOCKS5 handshake";
        self.send(&mut tcp, &tunnel::socks_greeting(auth.is_some()), during)?;
        let answer = self.recv_exact::<2>(&mut tcp)?;
        match (
            tunnel::parse_method(answer, auth.is_some()).map_err(socks_fail)?,
            auth,
        ) {
            (Method::None, _) => {}
            (Method::Password, Some(auth)) => {
                let request = tunnel::socks_auth(&auth.user, &auth.password).map_err(socks_fail)?;
                self.send(&mut tcp, &request, during)?;
                tunnel::parse_auth_answer(self.recv_exact::<2>(&mut tcp)?).map_err(socks_fail)?;
            }
            // parse_method returns Password only when it was offered.
            (Method::Password, None) => return Err(socks_fail(SocksError::UnofferedMethod(2))),
        }
        let request = tunnel::socks_connect(target, port).map_err(socks_fail)?;
        self.send(&mut tcp, &request, during)?;
        // The reply's length depends on its address type: read no further than it.
        let mut reply = Vec::with_capacity(32);
        loop {
            match tunnel::parse_reply(&reply).map_err(socks_fail)? {
                Reply::Done(_) => break,
                Reply::Need(total) => {
                    let have = reply.len();
                    reply.resize(total, 0);
                    let n = self.recv(&mut tcp, &mut reply[have..], during)?;
                    reply.truncate(have + n);
                    if n == 0 {
                        return Err(Retry::Stop(self.closed_during_socks()));
                    }
                }
            }
        }
        log::debug!(
            "SOCKS5 proxy {} opened a tunnel to {host}:{port}",
            self.endpoint
        );
        Ok(tcp)
    }

    fn recv_exact<const N: usize>(&self, tcp: &mut TcpStream) -> Result<[u8; N], Error> {
        let mut buf = [0u8; N];
        let mut have = 0;
        while have < N {
            let n = self.recv(tcp, &mut buf[have..], "the SOCKS5 handshake")?;
            if n == 0 {
                return Err(self.closed_during_socks());
            }
            have += n;
        }
        Ok(buf)
    }

    fn closed_during_socks(&self) -> Error {
        Error::Proxy(format!(
            "SOCKS5 proxy {} closed the connection during the SOCKS5 handshake",
            self.endpoint
        ))
    }
}

/// A failed SOCKS5 attempt: worth trying the next address, or not.
enum Retry {
    Next(Error),
    Stop(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Self {
        Retry::Stop(e)
    }
}

impl From<Retry> for Error {
    fn from(r: Retry) -> Self {
        match r {
            Retry::Next(e) | Retry::Stop(e) => e,
        }
    }
}

/// Looks `host` up, within the dial's deadline; a cancel ends the wait at once.
fn resolve(host: &str, port: u16, dial: &Dial) -> Result<Vec<SocketAddr>, Error> {
    dns::lookup(dial.resolver, host, port, dial.deadline, dial.abort).map_err(|e| match e {
        LookupError::Failed(e) => e,
        LookupError::TimedOut => Error::ConnectTimeout(dial.timeout),
        LookupError::Aborted => Error::Canceled,
    })
}

fn no_address(host: &str) -> Error {
    Error::io(
        io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    )
}

/// TCP connect to each address `host` resolves to in turn: each attempt gets the dial's
/// attempt bound (zero: none), and all of them together, the lookup included, must end by its
/// deadline.
fn connect_tcp(host: &str, port: u16, dial: &Dial) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in resolve(host, port, dial)? {
        let left = dial.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::ConnectTimeout(dial.timeout));
        }
        let attempt = if dial.attempt.is_zero() {
            left
        } else {
            left.min(dial.attempt)
        };
        match TcpStream::connect_timeout(&addr, attempt) {
            Ok(s) => {
                crate::driver::platform::sockets::prepare(&s);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Error::ConnectTimeout(dial.timeout),
        Some(e) => Error::io(e.kind(), format!("connecting to {host}:{port}: {e}")),
        None => no_address(host),
    })
}
