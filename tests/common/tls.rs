//! Throwaway certificates, and syncws clients and servers configured with them for whichever
//! TLS backend this build has: native-tls when its feature is on (the default, and the
//! client's default when both are), else rustls. The TLS tests use only these, so each of them
//! means the same under `cargo test` and `cargo test --no-default-features --features rustls`.
//!
//! Certificates come as a CA and a leaf it issued: webpki (rustls) refuses a CA certificate
//! used as a server's own certificate, so a lone self-signed one would not do for both.

use syncws::{Client, ClientBuilder, Server, ServerBuilder};

/// A certificate for one name (a DNS name and 127.0.0.1) and the CA that issued it.
#[derive(Clone)]
pub struct TestTls {
    /// The issuing CA's certificate (PEM): what a client or server trusts.
    pub ca: Vec<u8>,
    /// The leaf certificate, then the CA's (PEM): what the holder presents.
    pub chain: Vec<u8>,
    /// The leaf's PKCS#8 private key (PEM).
    pub key: Vec<u8>,
}

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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A fresh CA, valid now, and a leaf for `cn` (also its DNS name; and 127.0.0.1) it issued,
/// valid between the two Unix times. P-256 keys: quick to make, and both backends take them.
pub fn issue(cn: &str, not_before: i64, not_after: i64) -> TestTls {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};

    let new_key = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        PKey::from_ec_key(EcKey::generate(&group).expect("ec key")).expect("pkey")
    };
    let now = unix_now();
    let ca_key = new_key();
    // A name of its own: a client that trusts another test CA must see an unknown issuer, not
    // a known one whose signature does not match.
    let mut tag = [0u8; 8];
    openssl::rand::rand_bytes(&mut tag).expect("rand");
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let ca_name = name(&format!("syncws test CA {tag} for {cn}"));
    let mut b = builder(&ca_name, &ca_name, &ca_key, now - 86_400, now + 2 * 86_400);
    b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    b.sign(&ca_key, openssl::hash::MessageDigest::sha256())
        .expect("sign ca");
    let ca = b.build();

    let key = new_key();
    let mut b = builder(&name(cn), &ca_name, &key, not_before, not_after);
    b.append_extension(BasicConstraints::new().build().expect("bc"))
        .expect("bc");
    let san = SubjectAlternativeName::new()
        .dns(cn)
        .ip("127.0.0.1")
        .build(&b.x509v3_context(Some(&ca), None))
        .expect("san");
    b.append_extension(san).expect("san");
    b.sign(&ca_key, openssl::hash::MessageDigest::sha256())
        .expect("sign leaf");
    let leaf = b.build();

    let ca_pem = ca.to_pem().expect("pem");
    let mut chain = leaf.to_pem().expect("pem");
    chain.extend_from_slice(&ca_pem);
    TestTls {
        ca: ca_pem,
        chain,
        key: key.private_key_to_pem_pkcs8().expect("key pem"),
    }
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    name.build()
}

fn builder(
    subject: &openssl::x509::X509Name,
    issuer: &openssl::x509::X509Name,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    not_before: i64,
    not_after: i64,
) -> openssl::x509::X509Builder {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    let mut b = openssl::x509::X509::builder().expect("x509");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(subject).expect("subject");
    b.set_issuer_name(issuer).expect("issuer");
    b.set_pubkey(key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(not_before).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::from_unix(not_after).expect("t"))
        .expect("na");
    b
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
#[cfg(feature = "rustls")]
pub fn rustls_client_config(
    ca_pem: &[u8],
    identity: Option<&TestTls>,
) -> std::sync::Arc<syncws::rustls::ClientConfig> {
    use syncws::rustls;
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
#[cfg(feature = "rustls")]
pub fn rustls_server_config(
    tls: &TestTls,
    client_ca: Option<&[u8]>,
) -> std::sync::Arc<syncws::rustls::ServerConfig> {
    use syncws::rustls;
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

#[cfg(feature = "rustls")]
fn provider() -> std::sync::Arc<syncws::rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(syncws::rustls::crypto::ring::default_provider())
}

#[cfg(feature = "rustls")]
fn certs(pem: &[u8]) -> Vec<syncws::rustls::pki_types::CertificateDer<'static>> {
    use syncws::rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM")
}

#[cfg(feature = "rustls")]
fn private_key(pem: &[u8]) -> syncws::rustls::pki_types::PrivateKeyDer<'static> {
    use syncws::rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    PrivateKeyDer::from_pem_slice(pem).expect("key PEM")
}
