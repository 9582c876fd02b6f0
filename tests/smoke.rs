mod common;

use common::*;
use syncws::{Client, EchoServer, Event, Message, Request};

/// One message echoed, then a clean close.
fn echo_once(client: &Client, url: &str) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().unwrap(), listener);
    assert!(ws.send("hello"));
    assert!(matches!(next(&events), Event::Open(r) if r.status() == 101));
    match next(&events) {
        Event::Message(m) => assert_eq!(m, Message::Text("hello".into())),
        e => panic!("{e:?}"),
    }
    assert!(ws.close(1000, Some("bye")).unwrap());
    assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(&events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
}

#[test]
fn echo_over_ws() {
    let plain = EchoServer::start().unwrap();
    echo_once(&Client::new(), &plain.url());
}

/// With the build's TLS backend (tests/common/tls.rs).
#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn echo_over_wss() {
    let tls = test_tls();
    let secure = EchoServer::with_builder(tls.server()).unwrap();
    assert!(secure.url().starts_with("wss://"));
    echo_once(&tls.client().build(), &secure.url());
}
