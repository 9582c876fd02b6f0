//! The mock serving `wss` (feature `testing-tls`): a CA and certificates it makes with rcgen,
//! the server's rustls configuration, and the client configuration that trusts it (with a
//! client certificate of its own when the mock requires one).

use std::io;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What a TLS mock serves with, and what its tests connect with.
pub(crate) struct MockTls {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: ClientSide,
}

/// The client configurations that trust a TLS mock: with its client certificate (when it
/// requires one), and without.
pub(crate) struct ClientSide {
    pub(crate) client: Arc<rustls::ClientConfig>,
    pub(crate) anonymous: Arc<rustls::ClientConfig>,
}

fn io_error(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("mock TLS: {what}: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate for `names` issued by `issuer`, and its key.
fn leaf(
    names: Vec<String>,
    cn: &str,
    issuer: &Issuer<'_, KeyPair>,
) -> io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let key = KeyPair::generate().map_err(|e| io_error("key", e))?;
    let mut params = CertificateParams::new(names).map_err(|e| io_error("names", e))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| io_error("certificate", e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// A fresh CA, a server certificate for `localhost` and 127.0.0.1, and, with `client_auth`, a
/// client certificate the server requires.
pub(crate) fn make(client_auth: bool) -> io::Result<MockTls> {
    let ca_key = KeyPair::generate().map_err(|e| io_error("CA key", e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| io_error("CA", e))?;
    ca.distinguished_name
        .push(DnType::CommonName, "syncws MockServer CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| io_error("CA", e))?;
    let ca_der = ca_cert.der().clone();
    let issuer = Issuer::new(ca, ca_key);
    let (server_cert, server_key) = leaf(
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        "localhost",
        &issuer,
    )?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.clone()).map_err(|e| io_error("root", e))?;
    let roots = Arc::new(roots);

    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| io_error("versions", e))?;
    let server = if client_auth {
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| io_error("client verifier", e))?;
        server.with_client_cert_verifier(verifier)
    } else {
        server.with_no_client_auth()
    };
    let server = server
        .with_single_cert(vec![server_cert, ca_der.clone()], server_key)
        .map_err(|e| io_error("server certificate", e))?;

    let client_builder = || {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates((*roots).clone()))
            .map_err(|e| io_error("versions", e))
    };
    let anonymous = Arc::new(client_builder()?.with_no_client_auth());
    let client = if client_auth {
        let (cert, key) = leaf(Vec::new(), "syncws MockServer client", &issuer)?;
        Arc::new(
            client_builder()?
                .with_client_auth_cert(vec![cert, ca_der], key)
                .map_err(|e| io_error("client certificate", e))?,
        )
    } else {
        anonymous.clone()
    };
    Ok(MockTls {
        server: Arc::new(server),
        client: ClientSide { client, anonymous },
    })
}

/// A client configuration that trusts no certificate (a plain mock's `client_tls_config`).
pub(crate) fn trusting_nothing() -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // ring supports every default protocol version: this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3");
    Arc::new(
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}
