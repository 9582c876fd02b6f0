//! The listening socket, and the loop that accepts its connections: each takes a place among
//! the handshakes (or is refused at once) and gets a pooled thread for its [`upgrade`].

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::Serve;
use super::upgrade;
use crate::driver::platform;

/// Connections the kernel completes and queues for the accept loop. std's 128 overflows under a
/// flood of connects, and then the kernel drops SYNs from everyone, well-behaved clients
/// included, who wait a second or more to retry. The kernel caps it at `net.core.somaxconn`
/// (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: i32 = 1024;

/// `TcpListener::bind`, with [`LISTEN_BACKLOG`]: the first of `addr`'s addresses that binds.
pub(crate) fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
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

/// Accepts connections until the server stops, each handed to a pooled reader thread.
pub(crate) fn accept_loop(listener: TcpListener, server: Arc<Serve>) {
    loop {
        let conn = listener.accept();
        if server.is_stopping() {
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
        platform::sockets::prepare(&tcp);
        let tcp = Arc::new(tcp);
        // `None`: refused at once, every place held by a handshake that is answering.
        let Some(ticket) = server.begin_handshake(tcp.clone(), peer) else {
            continue;
        };
        if let Err(e) = upgrade::spawn(tcp, ticket, server.clone()) {
            log::error!("could not start a connection thread: {e}");
        }
    }
}
