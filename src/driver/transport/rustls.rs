//! The rustls backend: a `rustls::Connection` driven directly. rustls is sans-I/O (`read_tls`
//! and `write_tls` move ciphertext, `reader()` and `writer()` plaintext), so no in-memory
//! transport is needed.
//!
//! The crypto provider is always ring, named explicitly (`builder_with_provider`), so the
//! default configuration does not depend on a process-wide provider being installed, nor
//! panic when another crate in the program enables a second one.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::error::Error;

/// A rustls session. Boxed: a `Connection` is over 1 KiB, and the session enum would be that
/// size for native-tls sessions too.
pub(super) struct RustlsEngine(Box<Connection>);

/// A rustls error as the `io::Error` a read or a write of the session returns.
fn io_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl RustlsEngine {
    fn new(mut conn: Connection) -> RustlsEngine {
        // The writer takes the records out right after each encryption, so rustls's own cap
        // (64 KiB, after which `writer()` accepts nothing) would only split a write in two;
        // the amount is bounded by what the writer hands over, as with native-tls.
        conn.set_buffer_limit(None);
        RustlsEngine(Box::new(conn))
    }

    /// Feeds `cipher` record by record (rustls takes at most 4 KiB a call), and stops as soon
    /// as there is plaintext to hand out: rustls refuses input while 16 KiB of plaintext wait.
    pub(super) fn feed(&mut self, cipher: &[u8]) -> io::Result<usize> {
        let mut used = 0;
        while used < cipher.len() {
            let mut rest = &cipher[used..];
            let n = self.0.read_tls(&mut rest)?;
            if n == 0 {
                // After the peer's close_notify rustls takes nothing more.
                break;
            }
            used += n;
            let state = self.0.process_new_packets().map_err(io_error)?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                break;
            }
        }
        Ok(used)
    }

    /// rustls's reader gives `Ok(0)` after close_notify and `WouldBlock` when it needs input.
    /// TCP's EOF is never fed to it (the read half reports that itself), so its
    /// `UnexpectedEof` does not arise.
    pub(super) fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.reader().read(buf)
    }

    pub(super) fn write_plain(&mut self, plain: &[u8]) -> io::Result<()> {
        self.0.writer().write_all(plain)
    }

    pub(super) fn take_output(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.0.wants_write() {
            if self.0.write_tls(out)? == 0 {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn has_output(&self) -> bool {
        self.0.wants_write()
    }

    pub(super) fn close_notify(&mut self) {
        self.0.send_close_notify();
    }
}

/// The default client configuration: ring, the safe default protocol versions (TLS 1.2 and
/// 1.3), no client certificate, and the roots of [`default_roots`]. Unused when native-tls is
/// built too: it is then the default.
#[cfg_attr(feature = "native-tls", allow(dead_code))]
pub(super) fn default_client_config() -> Result<Arc<ClientConfig>, String> {
    let roots = default_roots()?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The Mozilla root bundle compiled in (feature `rustls-webpki-roots`).
#[cfg(feature = "rustls-webpki-roots")]
fn default_roots() -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(roots)
}

/// The platform's root certificates, through rustls-native-certs (on Linux the system's CA
/// bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`). Certificates that fail to load or parse are
/// logged and skipped; none at all is an error, since every connection would fail.
#[cfg(not(feature = "rustls-webpki-roots"))]
fn default_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::warn!("loading the platform's root certificates: {e}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        log::warn!(
            "skipped {ignored} of the platform's root certificates that rustls cannot parse"
        );
    }
    log::debug!("rustls trusts {added} root certificates from the platform");
    if roots.is_empty() {
        return Err(
            "rustls found no root certificates on this system: install its CA bundle \
             (ca-certificates), point SSL_CERT_FILE at one, enable syncws's \
             `rustls-webpki-roots` feature, or pass a ClientConfig with \
             ClientBuilder::rustls_config"
                .into(),
        );
    }
    Ok(roots)
}

/// Runs the client side of a rustls handshake for `domain` (a DNS name or an IP address).
pub(super) fn connect(
    tcp: &TcpStream,
    config: &Arc<ClientConfig>,
    domain: &str,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(RustlsEngine, Vec<u8>), Error> {
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| Error::Tls(format!("{domain:?} is not a valid TLS server name: {e}")))?;
    let conn =
        ClientConnection::new(config.clone(), name).map_err(|e| Error::Tls(e.to_string()))?;
    finish_handshake(tcp, RustlsEngine::new(conn.into()), deadline, on_timeout)
}

/// Runs the server side of a rustls handshake.
pub(super) fn accept(
    tcp: &TcpStream,
    config: &Arc<ServerConfig>,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(RustlsEngine, Vec<u8>), Error> {
    let conn = ServerConnection::new(config.clone()).map_err(|e| Error::Tls(e.to_string()))?;
    finish_handshake(tcp, RustlsEngine::new(conn.into()), deadline, on_timeout)
}

/// Writes whatever the session has to send, by the handshake's deadline.
fn write_out(
    tcp: &TcpStream,
    session: &mut RustlsEngine,
    out: &mut Vec<u8>,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(), Error> {
    out.clear();
    session.take_output(out).map_err(Error::from)?;
    super::handshake::handshake_write(tcp, out, deadline, on_timeout)
}

/// Drives the handshake until rustls is no longer handshaking, or `deadline`: its records
/// out, the peer's in. Ciphertext read past the handshake (the client's first request may
/// share a segment with its Finished) is returned for the read half.
fn finish_handshake(
    tcp: &TcpStream,
    mut session: RustlsEngine,
    deadline: Instant,
    on_timeout: &dyn Fn() -> Error,
) -> Result<(RustlsEngine, Vec<u8>), Error> {
    let mut raw = vec![0u8; super::handshake::READ_CHUNK];
    let mut out = Vec::new();
    loop {
        write_out(tcp, &mut session, &mut out, deadline, on_timeout)?;
        if !session.0.is_handshaking() {
            break;
        }
        let n = super::handshake::handshake_read(tcp, &mut raw, deadline, on_timeout)?;
        let mut pos = 0;
        while pos < n && session.0.is_handshaking() {
            let mut rest = &raw[pos..n];
            let used = session.0.read_tls(&mut rest).map_err(Error::from)?;
            if used == 0 {
                break;
            }
            pos += used;
            if let Err(e) = session.0.process_new_packets() {
                // rustls has queued an alert saying why: let the peer see it.
                let _ = write_out(tcp, &mut session, &mut out, deadline, on_timeout);
                return Err(Error::Tls(e.to_string()));
            }
        }
        if !session.0.is_handshaking() {
            write_out(tcp, &mut session, &mut out, deadline, on_timeout)?;
            return Ok((session, raw[pos..n].to_vec()));
        }
    }
    Ok((session, Vec::new()))
}
