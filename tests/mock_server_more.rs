//! The mock server's request checks (`expect_header`), slow and cut heads (`headers_delay`,
//! `head_in_pieces`) and its CONNECT tunnel (`MockResponse::tunnel`), over real sockets on
//! 127.0.0.1.

mod common;

use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::testing::{MockResponse, MockServer};
use syncws::{Client, Error, Proxy, Request};

fn request(url: &str) -> Request {
    Request::builder(url).build().unwrap()
}

/// A header check that holds lets the upgrade through; one that fails is a recorded failure
/// and a 400 for the client.
#[test]
fn expect_header_checks_the_upgrade_request() {
    let mock = MockServer::start().unwrap();
    mock.enqueue(
        MockResponse::upgrade()
            .expect_header("Authorization", "Bearer one")
            .send_text("in"),
    );
    let request = Request::builder(&mock.url())
        .header("Authorization", "Bearer one")
        .build()
        .unwrap();
    let mut conn = Client::new().connect(request).unwrap();
    assert_eq!(conn.recv().unwrap().as_text(), Some("in"));
    drop(conn);
    assert!(mock.failures().is_empty(), "{:?}", mock.failures());

    let mock = MockServer::start().unwrap();
    mock.enqueue(
        MockResponse::upgrade()
            .expect_header_where("X-Version", "is 2", |v| v == "2")
            .send_text("never"),
    );
    let request = Request::builder(&mock.url())
        .header("X-Version", "1")
        .build()
        .unwrap();
    match Client::new().connect(request) {
        Err(Error::HandshakeRejected {
            response: Some(r), ..
        }) if r.status() == 400 => {}
        other => panic!("expected a 400, got {other:?}"),
    }
    let failures = mock.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("X-Version is 2") && failures[0].contains("\"1\""),
        "{failures:?}"
    );
}

/// A head that comes late runs into the client's handshake timeout; one that comes in many
/// pieces is put together.
#[test]
fn a_slow_or_cut_head_is_what_the_client_meets() {
    let mock = MockServer::start().unwrap();
    mock.enqueue(MockResponse::upgrade().headers_delay(Duration::from_secs(1)));
    let impatient = Client::builder()
        .handshake_timeout(Duration::from_millis(200))
        .build();
    match impatient.connect(request(&mock.url())) {
        Err(Error::ReadTimeout(_) | Error::ConnectTimeout(_)) => {}
        other => panic!("expected the handshake timeout, got {other:?}"),
    }

    let mock = MockServer::start().unwrap();
    mock.enqueue(
        MockResponse::upgrade()
            .header("X-Long", &"x".repeat(300))
            .head_in_pieces(25)
            .send_text("whole"),
    );
    let mut conn = Client::new().connect(request(&mock.url())).unwrap();
    assert_eq!(conn.recv().unwrap().as_text(), Some("whole"));
    assert_eq!(conn.response().header("X-Long").map(str::len), Some(300));
}

/// The mock as the proxy in front of itself: CONNECT answered, then the script in the
/// tunnel; the proxy's credentials are checked on the CONNECT.
#[test]
fn a_tunnel_to_the_mock_itself_plays_the_next_response() {
    let mock = MockServer::start().unwrap();
    mock.enqueue(MockResponse::tunnel().expect_header("Proxy-Authorization", "Basic dTpw"));
    mock.enqueue(
        MockResponse::upgrade()
            .expect_text("hello")
            .send_text("through the tunnel"),
    );
    let proxy = Proxy::http(&format!("http://u:p@{}", mock.addr())).unwrap();
    let client = Client::builder().proxy(proxy).build();
    let mut conn = client.connect(request(&mock.url())).unwrap();
    conn.send("hello");
    assert_eq!(conn.recv().unwrap().as_text(), Some("through the tunnel"));
    let connect = mock.take_request(EVENT_TIMEOUT).expect("the CONNECT");
    assert_eq!(connect.method(), "CONNECT");
    assert_eq!(connect.target(), mock.addr().to_string());
    let upgrade = mock
        .take_request(EVENT_TIMEOUT)
        .expect("the upgrade, in the tunnel");
    assert_eq!(upgrade.method(), "GET");
}

/// The mock as a proxy in front of another server: the bytes are relayed both ways.
#[test]
fn a_tunnel_to_another_server_relays_both_ways() {
    let echo = syncws::EchoServer::start().unwrap();
    let mock = MockServer::start().unwrap();
    mock.enqueue(MockResponse::tunnel());
    let proxy = Proxy::http(&format!("http://{}", mock.addr())).unwrap();
    let client = Client::builder().proxy(proxy).build();
    let mut conn = client.connect(request(&echo.url())).unwrap();
    for i in 0..10 {
        conn.send(format!("echo {i}"));
        assert_eq!(
            conn.recv().unwrap().as_text(),
            Some(format!("echo {i}").as_str())
        );
    }
    conn.close(1000, None).unwrap();
}
