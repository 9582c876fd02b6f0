//! The running [`Server`]: its address, its statistics, and stopping.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::ServerBuilder;
use super::accept::Accept;
use crate::driver::Serve;
use crate::error::Error;
use crate::request::Request;

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
    serve: Arc<Serve>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// The server [`ServerBuilder::bind`] started: listening on `addr`, accepting on
    /// `accept_thread`.
    pub(super) fn running(
        addr: SocketAddr,
        serve: Arc<Serve>,
        accept_thread: JoinHandle<()>,
    ) -> Server {
        Server {
            addr,
            serve,
            accept_thread: Some(accept_thread),
        }
    }

    /// Starts configuring a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
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

    /// A snapshot of the server's connections: open, accepted, in their handshake, and the
    /// refusals by reason (the caps, the origin check, bad handshakes, the handler, eviction).
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// use syncws::{Accept, Server};
    /// let server = Server::builder().bind("127.0.0.1:0", |_| Accept::reject(401, "no"))?;
    /// let _ = syncws::connect(&server.url());
    /// assert_eq!(server.stats().refused_by_handler, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> crate::stats::ServerStats {
        self.serve.stats()
    }

    /// The `ws://` (or `wss://`) URL of the server, with `localhost` for a loopback address.
    pub fn url(&self) -> String {
        let scheme = if self.serve.tls.is_some() {
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
        self.serve.begin_stopping();
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
        self.serve.stop();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
