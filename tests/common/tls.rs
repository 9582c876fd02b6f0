//! Throwaway certificates, and syncws clients and servers configured with them for whichever
//! TLS backend this build has: native-tls when its feature is on (the default, and the
//! client's default when both are), else rustls. The TLS tests use only these, so each of them
//! means the same under `cargo test` and `cargo test --no-default-features --features rustls`.
//!
//! Certificates come as a CA and a leaf it issued: webpki (rustls) refuses a CA certificate
//! used as a server's own certificate, so a lone self-signed one would not do for both.
//!
//! The rustls configs are made with the tests' own rustls (a dev-dependency, the same crate
//! syncws's `rustls` feature uses), so the raw TLS peers of tests/tls.rs have them in every
//! build.

pub use super::certs::{TestTls, issue, unix_now};
use syncws::{Client, ClientBuilder, Server, ServerBuilder};

impl TestTls {
    /// A server builder serving TLS with this certificate.
    pub fn server(&self) -> ServerBuilder {
        server_tls(self)
    }

    /// A client builder trusting this certificate's CA (and nothing else).
    pub fn client(&self) -> ClientBuilder {
        client_trusting(&self.ca)
    }
}

/// A certificate for `localhost`, valid now.
pub fn test_tls() -> TestTls {
    let now = unix_now();
    issue("localhost", now - 60, now + 2 * 86_400)
}

/// A certificate for `localhost` that expired yesterday, issued by a CA that is valid now, so
/// that only the leaf's dates are wrong.
pub fn expired_test_tls() -> TestTls {
    let now = unix_now();
    issue("localhost", now - 2 * 86_400, now - 86_400)
}

/// A client builder that trusts exactly `ca_pem`.
pub fn client_trusting(ca_pem: &[u8]) -> ClientBuilder {
    client_with(ca_pem, None)
}

/// A client builder that trusts `ca_pem` and presents `identity`'s certificate when asked.
pub fn client_with_identity(ca_pem: &[u8], identity: &TestTls) -> ClientBuilder {
    client_with(ca_pem, Some(identity))
}

#[cfg(feature = "native-tls")]
fn client_with(ca_pem: &[u8], identity: Option<&TestTls>) -> ClientBuilder {
    use syncws::native_tls;
    let mut b = native_tls::TlsConnector::builder();
    b.add_root_certificate(native_tls::Certificate::from_pem(ca_pem).expect("ca"));
    if let Some(id) = identity {
        b.identity(native_tls::Identity::from_pkcs8(&id.chain, &id.key).expect("identity"));
    }
    Client::builder().tls_connector(b.build().expect("connector"))
}

#[cfg(not(feature = "native-tls"))]
fn client_with(ca_pem: &[u8], identity: Option<&TestTls>) -> ClientBuilder {
    Client::builder().rustls_config(rustls_client_config(ca_pem, identity))
}

/// A server builder serving TLS with `tls`'s certificate.
#[cfg(feature = "native-tls")]
pub fn server_tls(tls: &TestTls) -> ServerBuilder {
    use syncws::native_tls;
    let identity = native_tls::Identity::from_pkcs8(&tls.chain, &tls.key).expect("identity");
    Server::builder().tls(native_tls::TlsAcceptor::new(identity).expect("acceptor"))
}

/// A server builder serving TLS with `tls`'s certificate.
#[cfg(not(feature = "native-tls"))]
pub fn server_tls(tls: &TestTls) -> ServerBuilder {
    Server::builder().rustls(rustls_server_config(tls, None))
}

/// A rustls client config (ring) trusting exactly `ca_pem`, with `identity` as its client
/// certificate if given.
pub fn rustls_client_config(
    ca_pem: &[u8],
    identity: Option<&TestTls>,
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem) {
        roots.add(cert).expect("root");
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => b
            .with_client_auth_cert(certs(&id.chain), private_key(&id.key))
            .expect("client identity"),
        None => b.with_no_client_auth(),
    };
    std::sync::Arc::new(config)
}

/// A rustls server config (ring) presenting `tls`'s certificate; with `client_ca`, it
/// requires a client certificate issued by that CA.
pub fn rustls_server_config(
    tls: &TestTls,
    client_ca: Option<&[u8]>,
) -> std::sync::Arc<rustls::ServerConfig> {
    let b = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca) {
                roots.add(cert).expect("client root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            b.with_client_cert_verifier(verifier)
        }
        None => b.with_no_client_auth(),
    };
    std::sync::Arc::new(
        b.with_single_cert(certs(&tls.chain), private_key(&tls.key))
            .expect("server certificate"),
    )
}

fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

pub fn certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM")
}

pub fn private_key(pem: &[u8]) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    PrivateKeyDer::from_pem_slice(pem).expect("key PEM")
}
