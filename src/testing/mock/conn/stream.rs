//! The connection's byte stream: plain TCP, or TLS over it when the mock serves `wss`
//! (feature `testing-tls`), started when the client's first byte is a TLS handshake record, so
//! a `CONNECT` tunnel to the mock can carry TLS too.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

pub(crate) enum MockStream {
    Plain(TcpStream),
    #[cfg(feature = "testing-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl MockStream {
    /// The TCP connection under it (for socket options).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            MockStream::Plain(s) => s,
            #[cfg(feature = "testing-tls")]
            MockStream::Tls(s) => &s.sock,
        }
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(t)
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(t)
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp().set_nodelay(on)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The TCP stream, for a relay (plain connections only: a relay carries the client's
    /// bytes as they are).
    pub(crate) fn try_clone_plain(&self) -> Option<TcpStream> {
        match self {
            MockStream::Plain(s) => s.try_clone().ok(),
            #[cfg(feature = "testing-tls")]
            MockStream::Tls(_) => None,
        }
    }

    /// Ends our side: TLS's close_notify first, then TCP's.
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        #[cfg(feature = "testing-tls")]
        if let MockStream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.tcp().shutdown(how)
    }

    /// Starts TLS with `config` if the client's next byte opens a TLS handshake record
    /// (0x16); a plain client is served plain. Waits up to `timeout` for that byte.
    #[cfg(feature = "testing-tls")]
    pub(crate) fn start_tls_if_asked(
        &mut self,
        config: &std::sync::Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> io::Result<()> {
        let MockStream::Plain(tcp) = self else {
            return Ok(());
        };
        tcp.set_read_timeout(Some(timeout))?;
        let mut first = [0u8; 1];
        if tcp.peek(&mut first)? == 0 || first[0] != 0x16 {
            return Ok(());
        }
        let conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        let tcp = tcp.try_clone()?;
        *self = MockStream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
        Ok(())
    }
}

impl Read for MockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MockStream::Plain(s) => s.read(buf),
            #[cfg(feature = "testing-tls")]
            MockStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for MockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MockStream::Plain(s) => s.write(buf),
            #[cfg(feature = "testing-tls")]
            MockStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MockStream::Plain(s) => s.flush(),
            #[cfg(feature = "testing-tls")]
            MockStream::Tls(s) => s.flush(),
        }
    }
}
