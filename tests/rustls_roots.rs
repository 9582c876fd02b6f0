//! The default rustls client's roots: the platform's, through rustls-native-certs, which reads
//! `SSL_CERT_FILE` when it is set. The environment is the process's, so each test runs its
//! check in a child process (this test binary again, `--exact` that test) with the variable
//! set, instead of changing it under the other tests of a running binary.
//!
//! Only where rustls is the default client and its roots are the platform's:
//! `cargo test --no-default-features --features rustls --test rustls_roots`.
#![cfg(all(
    feature = "rustls",
    not(feature = "native-tls"),
    not(feature = "rustls-webpki-roots")
))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use syncws::{Client, EchoServer, Error, Event, Message, Request};

/// Set in the child: the URL it connects to.
const CHILD_URL: &str = "SYNCWS_ROOTS_TEST_URL";

/// Runs this binary's test `name` alone in a child with `SSL_CERT_FILE=cert_file` and
/// `CHILD_URL=url`; panics with its output unless exactly that one test ran and passed.
fn run_child(name: &str, cert_file: &Path, url: &str) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--test-threads=1"])
        .env("SSL_CERT_FILE", cert_file)
        .env_remove("SSL_CERT_DIR")
        .env(CHILD_URL, url)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file of its own for this test run.
fn scratch_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("syncws-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

#[test]
fn default_rustls_client_trusts_the_roots_the_platform_lists() {
    let Some(url) = std::env::var_os(CHILD_URL) else {
        // Parent: a server whose CA only SSL_CERT_FILE lists.
        let tls = test_tls();
        let server = EchoServer::with_builder(tls.server()).unwrap();
        let ca = scratch_file("platform-roots.pem", &tls.ca);
        run_child(
            "default_rustls_client_trusts_the_roots_the_platform_lists",
            &ca,
            &server.url(),
        );
        let _ = std::fs::remove_file(ca);
        return;
    };
    let (listener, events) = syncws::channel();
    let ws = Client::new().new_web_socket(
        Request::builder(url.to_str().unwrap()).build().unwrap(),
        listener,
    );
    assert!(ws.send("trusted"));
    match next(&events) {
        Event::Open(_) => {}
        e => panic!("expected Open with the platform's roots, got {e:?}"),
    }
    match next(&events) {
        Event::Message(m) => assert_eq!(m, Message::Text("trusted".into())),
        e => panic!("expected the echo, got {e:?}"),
    }
    ws.cancel();
}

#[test]
fn default_rustls_client_with_no_platform_roots_fails_before_connecting() {
    let Some(url) = std::env::var_os(CHILD_URL) else {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("wss://127.0.0.1:{}/", listener.local_addr().unwrap().port());
        let empty = scratch_file("no-roots.pem", b"");
        run_child(
            "default_rustls_client_with_no_platform_roots_fails_before_connecting",
            &empty,
            &url,
        );
        let _ = std::fs::remove_file(empty);
        assert!(
            listener.accept().is_err(),
            "the socket connected although it had no roots to check the server with"
        );
        return;
    };
    let (listener, events) = syncws::channel();
    let _ws = Client::new().new_web_socket(
        Request::builder(url.to_str().unwrap()).build().unwrap(),
        listener,
    );
    match next(&events) {
        Event::Ended(syncws::Ended::Failed {
            error: Error::Tls(message),
            ..
        }) => {
            assert!(message.contains("no root certificates"), "{message}");
            assert!(message.contains("rustls-webpki-roots"), "{message}");
        }
        e => panic!("expected a TLS failure, got {e:?}"),
    }
}
