//! A build without a TLS backend (`cargo test --no-default-features --test no_tls`): `wss`
//! URLs fail with a clear error, before any traffic, and plain `ws` still works.
#![cfg(not(any(feature = "native-tls", feature = "rustls")))]

mod common;

use std::net::TcpListener;

use common::*;
use syncws::{Client, EchoServer, Error, Event, Request, State};

#[test]
fn wss_fails_with_an_error_naming_the_missing_feature_and_connects_nowhere() {
    // Something listening where the URL points, so a connect attempt would be seen.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let (events_listener, events) = syncws::channel();
    let ws = Client::new().new_web_socket(Request::builder(&url).build().unwrap(), events_listener);
    match next(&events) {
        Event::Ended(syncws::Ended::Failed {
            error: Error::Tls(message),
            ..
        }) => {
            assert!(message.contains("no TLS backend"), "{message}");
            assert!(
                message.contains("`native-tls` or `rustls` feature"),
                "{message}"
            );
            let shown = Error::Tls(message).to_string();
            assert!(
                !shown.contains("certificate"),
                "no certificate hint for a build without TLS: {shown}"
            );
        }
        e => panic!("expected a TLS failure, got {e:?}"),
    }
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_exhausted(&events);
    assert!(
        listener.accept().is_err(),
        "the socket connected before failing"
    );
}

#[test]
fn ws_still_works_without_tls() {
    let server = EchoServer::start().unwrap();
    let (listener, events) = syncws::channel();
    let ws =
        Client::new().new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    expect_open_then_echo(&ws, &events);
}

fn expect_open_then_echo(ws: &syncws::WebSocket, events: &syncws::Events) {
    assert!(ws.send("plain"));
    assert!(matches!(next(events), Event::Open(_)));
    match next(events) {
        Event::Message(m) => assert_eq!(m, syncws::Message::Text("plain".into())),
        e => panic!("expected the echo, got {e:?}"),
    }
    assert!(ws.close(1000, None).unwrap());
    assert!(matches!(next(events), Event::Closing { code: 1000, .. }));
    assert!(matches!(
        next(events),
        Event::Ended(syncws::Ended::Closed { code: 1000, .. })
    ));
}
