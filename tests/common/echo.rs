//! Echo round trips through whatever a client is set up with (a proxy, TLS), for the proxy
//! tests: the server side is the crate's own `EchoServer`.

use syncws::{Client, EchoServer, Error, Event, Message, Request, Server};

use super::{EVENT_TIMEOUT, TestTls, assert_exhausted, next};

/// An echo server that takes the 1 MiB message of [`messages`] (the server role's defaults
/// stop at 1 MiB), over TLS when `tls` is given.
pub fn echo_server(tls: Option<&TestTls>) -> EchoServer {
    let builder = match tls {
        Some(tls) => tls.server(),
        None => Server::builder(),
    };
    let builder = builder
        .max_message_size(4 * 1024 * 1024)
        .max_queue_size(8 * 1024 * 1024);
    EchoServer::with_builder(builder).expect("echo server")
}

/// A few messages of both kinds, one of them 1 MiB, each different from the others.
pub fn messages() -> Vec<Message> {
    let big: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    vec![
        Message::from("hello through the proxy"),
        Message::from(vec![0u8, 1, 2, 255]),
        Message::from(big),
        Message::from("x".repeat(70_000)),
        Message::from("bye"),
    ]
}

/// Opens `url` with `client`, sends [`messages`], expects each echoed in order, closes
/// cleanly.
pub fn round_trip(client: &Client, url: &str) {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().expect("request"), listener);
    match next(&events) {
        Event::Open(r) => assert_eq!(r.status(), 101),
        e => panic!("{url}: expected Open, got {e:?}"),
    }
    let sent = messages();
    for m in &sent {
        assert!(ws.send(m.clone()), "send refused");
    }
    for m in &sent {
        match next(&events) {
            Event::Message(got) => assert!(
                got == *m,
                "{url}: echo of a {}-byte message differs",
                m.len()
            ),
            e => panic!("{url}: expected an echo, got {e:?}"),
        }
    }
    assert!(ws.close(1000, None).expect("close"));
    match next(&events) {
        Event::Closing { code, .. } => assert_eq!(code, 1000),
        e => panic!("{url}: expected Closing, got {e:?}"),
    }
    match next(&events) {
        Event::Ended(syncws::Ended::Closed { code, .. }) => assert_eq!(code, 1000),
        e => panic!("{url}: expected Closed, got {e:?}"),
    }
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
}

/// Opens `url` with `client` and returns the error the socket fails with (it must fail
/// before opening).
pub fn failure(client: &Client, url: &str) -> Error {
    let (listener, events) = syncws::channel();
    let ws = client.new_web_socket(Request::builder(url).build().expect("request"), listener);
    let error = match next(&events) {
        Event::Ended(syncws::Ended::Failed { error, response }) => {
            assert!(
                response.is_none(),
                "{url}: a proxy failure has no server response"
            );
            error
        }
        e => panic!("{url}: expected Failure, got {e:?}"),
    };
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_exhausted(&events);
    error
}
