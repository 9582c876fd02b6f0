//! TLS: the configurations a client connects and a server accepts with, the default one, and
//! the handshake of either backend, after which the connection is split into its halves.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

#[cfg(any(feature = "native-tls", feature = "rustls"))]
use super::engine::TlsEngine;
use super::halves::{ReadHalf, WriteHalf, split_tls};
#[cfg(feature = "native-tls")]
use super::native;
#[cfg(feature = "rustls")]
use super::rustls;
use crate::error::Error;

/// Why a `wss` URL fails in a build without a TLS backend.
#[cfg(not(any(feature = "native-tls", feature = "rustls")))]
const NO_BACKEND: &str = "this build of syncws has no TLS backend: enable the `native-tls` or `rustls` feature of syncws";

/// The TLS configuration a client socket connects with.
#[derive(Clone, Debug)]
pub(crate) enum Connector {
    /// A native-tls connector (the platform's TLS library).
    #[cfg(feature = "native-tls")]
    Native(native_tls::TlsConnector),
    /// A rustls client configuration.
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ClientConfig>),
}

/// The TLS configuration a server accepts with.
#[derive(Clone)]
pub(crate) enum Acceptor {
    /// A native-tls acceptor (the platform's TLS library).
    #[cfg(feature = "native-tls")]
    Native(native_tls::TlsAcceptor),
    /// A rustls server configuration.
    #[cfg(feature = "rustls")]
    Rustls(Arc<::rustls::ServerConfig>),
}

/// The connector of a client that was given none: native-tls when that backend is built
/// (it is the default feature), else rustls with its default roots.
pub(crate) fn default_connector() -> Result<Connector, String> {
    #[cfg(feature = "native-tls")]
    {
        native_tls::TlsConnector::new()
            .map(Connector::Native)
            .map_err(|e| e.to_string())
    }
    #[cfg(all(feature = "rustls", not(feature = "native-tls")))]
    {
        rustls::default_client_config().map(Connector::Rustls)
    }
    #[cfg(not(any(feature = "native-tls", feature = "rustls")))]
    {
        Err(NO_BACKEND.to_owned())
    }
}

/// Runs the client side of TLS for `domain`, to completion or `deadline`, then splits the
/// connection.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, unreachable_code)
)]
pub(crate) fn tls_connect(
    tcp: Arc<TcpStream>,
    connector: &Connector,
    domain: &str,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let (session, leftover) = match *connector {
        #[cfg(feature = "native-tls")]
        Connector::Native(ref c) => native::connect(&tcp, c, domain, deadline, &on_timeout)
            .map(|(s, rest)| (TlsEngine::Native(s), rest))?,
        #[cfg(feature = "rustls")]
        Connector::Rustls(ref c) => rustls::connect(&tcp, c, domain, deadline, &on_timeout)
            .map(|(s, rest)| (TlsEngine::Rustls(s), rest))?,
    };
    Ok(split_tls(tcp, session, leftover))
}

/// Runs the server side of TLS, to completion or `deadline`, then splits the connection.
#[cfg_attr(
    not(any(feature = "native-tls", feature = "rustls")),
    allow(unused_variables, unreachable_code)
)]
pub(crate) fn tls_accept(
    tcp: Arc<TcpStream>,
    acceptor: &Acceptor,
    deadline: Instant,
    on_timeout: impl Fn() -> Error,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let (session, leftover) = match *acceptor {
        #[cfg(feature = "native-tls")]
        Acceptor::Native(ref a) => native::accept(&tcp, a, deadline, &on_timeout)
            .map(|(s, rest)| (TlsEngine::Native(s), rest))?,
        #[cfg(feature = "rustls")]
        Acceptor::Rustls(ref c) => rustls::accept(&tcp, c, deadline, &on_timeout)
            .map(|(s, rest)| (TlsEngine::Rustls(s), rest))?,
    };
    Ok(split_tls(tcp, session, leftover))
}
