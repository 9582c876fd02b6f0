//! Test support shared by the integration tests: event recording and a throwaway TLS identity.
#![allow(dead_code)]

pub mod echo;
pub mod raw;

use std::time::Duration;

use syncws::Event;

/// How long a test waits for one event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the next event or panics with a clear message after `EVENT_TIMEOUT`.
pub fn next(events: &syncws::Events) -> Event {
    events
        .recv_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|_| panic!("no event within {EVENT_TIMEOUT:?}"))
}

/// Polls `cond` until it holds or `EVENT_TIMEOUT` passes: for effects with no event to wait
/// on, such as a thread exiting or the kernel closing a descriptor.
pub fn eventually(cond: impl FnMut() -> bool) -> bool {
    eventually_within(EVENT_TIMEOUT, cond)
}

/// [`eventually`] with another bound.
pub fn eventually_within(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that no further event arrives (the channel disconnects once the socket is gone).
pub fn assert_exhausted(events: &syncws::Events) {
    match events.recv_timeout(Duration::from_millis(200)) {
        Err(_) => {}
        Ok(e) => panic!("unexpected extra event {e:?}"),
    }
}

/// A self-signed certificate for `localhost`/127.0.0.1, made fresh for the test run.
pub struct TestTls {
    pub acceptor: native_tls::TlsAcceptor,
    /// A connector that trusts exactly this certificate.
    pub connector: native_tls::TlsConnector,
}

pub fn test_tls() -> TestTls {
    let now = unix_now();
    let (cert_pem, key_pem) = self_signed("localhost", now - 60, now + 2 * 86_400);
    tls_pair(&cert_pem, &key_pem)
}

/// A certificate for `localhost` that expired yesterday (its acceptor, and a connector that
/// trusts it as a root, so that only the dates are wrong).
pub fn expired_test_tls() -> TestTls {
    let now = unix_now();
    let (cert_pem, key_pem) = self_signed("localhost", now - 2 * 86_400, now - 86_400);
    tls_pair(&cert_pem, &key_pem)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn tls_pair(cert_pem: &[u8], key_pem: &[u8]) -> TestTls {
    let identity = native_tls::Identity::from_pkcs8(cert_pem, key_pem).expect("identity");
    let acceptor = native_tls::TlsAcceptor::new(identity).expect("acceptor");
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(cert_pem).expect("cert"))
        .build()
        .expect("connector");
    TestTls {
        acceptor,
        connector,
    }
}

/// A self-signed CA certificate for `cn` (also its DNS name; and 127.0.0.1), valid between
/// the two Unix times: `(certificate PEM, PKCS#8 key PEM)`.
pub fn self_signed(cn: &str, not_before: i64, not_after: i64) -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};

    let rsa = Rsa::generate(2048).expect("rsa");
    let key = PKey::from_rsa(rsa).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("x509");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(not_before).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::from_unix(not_after).expect("t"))
        .expect("na");
    b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    let san = SubjectAlternativeName::new()
        .dns(cn)
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .expect("san");
    b.append_extension(san).expect("san");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = b.build();
    (
        cert.to_pem().expect("pem"),
        key.private_key_to_pem_pkcs8().expect("key pem"),
    )
}

/// Descriptors of this process that are TCP connections (not listeners) to or from `port`:
/// counts exactly one connection's sockets, whatever other tests leave closing meanwhile.
pub fn connection_fds_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] == "0A" {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port) {
                inodes.insert(f[9].to_owned());
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let t = target.to_string_lossy();
            t.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
        .count()
}
