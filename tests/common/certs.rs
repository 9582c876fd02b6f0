//! Throwaway certificates (a CA and a leaf it issued), made with the openssl crate: no syncws
//! and no feature of it, so the CLI's tests (cli/tests) include this file too.
#![allow(dead_code)]

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
