//! Throwaway certificates (a CA and a leaf it issued), made with rcgen: portable (no OpenSSL),
//! and no syncws nor any feature of it, so the CLI's tests (cli/tests) include this file too.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).expect("a representable time")
}

/// Eight random bytes, from the OS (through the key generator: a fresh key's bytes are).
fn random_tag() -> String {
    let key = KeyPair::generate().expect("key");
    let der = key.serialize_der();
    der[der.len() - 8..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh CA, valid now, and a leaf for `cn` (also its DNS name; and 127.0.0.1) it issued,
/// valid between the two Unix times. P-256 keys: quick to make, and every backend takes them.
pub fn issue(cn: &str, not_before: i64, not_after: i64) -> TestTls {
    let now = unix_now();
    // A name of its own: a client that trusts another test CA must see an unknown issuer, not
    // a known one whose signature does not match.
    let tag = random_tag();
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("syncws test CA {tag} for {cn}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = at(now - 86_400);
    ca.not_after = at(now + 2 * 86_400);
    ca.serial_number = Some(SerialNumber::from_slice(tag.as_bytes()));
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");

    let key = KeyPair::generate().expect("key");
    let mut leaf =
        CertificateParams::new(vec![cn.to_owned(), "127.0.0.1".to_owned()]).expect("params");
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.not_before = at(not_before);
    leaf.not_after = at(not_after);
    leaf.serial_number = Some(SerialNumber::from_slice(random_tag().as_bytes()));
    let issuer = Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&key, &issuer).expect("leaf certificate");

    let ca_pem = ca_cert.pem().into_bytes();
    let mut chain = leaf_cert.pem().into_bytes();
    chain.extend_from_slice(&ca_pem);
    TestTls {
        ca: ca_pem,
        chain,
        key: key.serialize_pem().into_bytes(),
    }
}
