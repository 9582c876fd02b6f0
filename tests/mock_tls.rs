//! The mock server serving `wss` with a certificate it makes, mutual TLS, and TLS inside a
//! CONNECT tunnel (feature `testing-tls`); over real sockets on 127.0.0.1.

mod common;

use common::EVENT_TIMEOUT;
use syncws::testing::{MockResponse, MockServer};
use syncws::{Client, Error, Proxy, Request};

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

/// A client given the mock's configuration connects over TLS; one that does not trust the
/// mock's CA fails the handshake (and the mock records it).
#[test]
fn a_tls_mock_is_trusted_through_the_configuration_it_hands_out() {
    let mock = MockServer::start_tls().unwrap();
    assert!(mock.url().starts_with("wss://127.0.0.1:"));
    mock.enqueue(
        MockResponse::upgrade()
            .expect_text("over TLS")
            .send_text("yes"),
    );
    let client = Client::builder()
        .rustls_config(mock.client_tls_config())
        .build();
    let mut conn = client.connect(request(&mock.url())).unwrap();
    conn.send("over TLS");
    assert_eq!(conn.recv().unwrap().as_text(), Some("yes"));
    drop(conn);
    mock.verify();

    let other = MockServer::start_tls().unwrap();
    let stranger = Client::builder()
        .rustls_config(other.client_tls_config())
        .build();
    match stranger.connect(request(&mock.url())) {
        Err(Error::Tls(_)) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    let failures = mock.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
}

/// Mutual TLS: the mock's client configuration carries the certificate it requires; without
/// it the handshake fails.
#[test]
fn a_mock_requiring_client_certificates_takes_only_its_own() {
    let mock = MockServer::start_tls_with_client_auth().unwrap();
    mock.enqueue(MockResponse::upgrade().send_text("hello, known client"));
    let client = Client::builder()
        .rustls_config(mock.client_tls_config())
        .build();
    let mut conn = client.connect(request(&mock.url())).unwrap();
    assert_eq!(conn.recv().unwrap().as_text(), Some("hello, known client"));
    drop(conn);
    mock.verify();

    let anonymous = Client::builder()
        .rustls_config(mock.client_tls_config_without_certificate())
        .build();
    // TLS 1.3: the client may finish its handshake before the server refuses its missing
    // certificate, so the refusal can arrive as the answer to the upgrade instead.
    let result = anonymous
        .connect(request(&mock.url()))
        .and_then(|mut c| c.recv_timeout(EVENT_TIMEOUT).map(|_| ()));
    assert!(result.is_err(), "a client without a certificate got in");
    assert_eq!(mock.failures().len(), 1);
}

/// TLS inside a CONNECT tunnel: the mock as the proxy in front of itself, serving `wss`.
#[test]
fn tls_goes_through_the_mocks_own_tunnel() {
    let mock = MockServer::start_tls().unwrap();
    mock.enqueue(MockResponse::tunnel());
    mock.enqueue(MockResponse::upgrade().send_text("tunnelled and encrypted"));
    let proxy = Proxy::http(&format!("http://{}", mock.addr())).unwrap();
    let client = Client::builder()
        .proxy(proxy)
        .rustls_config(mock.client_tls_config())
        .build();
    let mut conn = client.connect(request(&mock.url())).unwrap();
    assert_eq!(
        conn.recv().unwrap().as_text(),
        Some("tunnelled and encrypted")
    );
    assert_eq!(
        mock.take_request(EVENT_TIMEOUT).unwrap().method(),
        "CONNECT"
    );
}
