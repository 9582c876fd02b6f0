//! An echo server for examples and tests.

use std::net::SocketAddr;

use super::accept::Accept;
use super::{Server, ServerBuilder};
use crate::error::Error;
use crate::listener::Listener;

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

    /// Its [`Server::stats`].
    pub fn stats(&self) -> crate::stats::ServerStats {
        self.server.stats()
    }
}
