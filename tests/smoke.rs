mod common;

use common::*;
use syncws::{Client, EchoServer, Event, Message, Request, Server};

#[test]
fn echo_over_ws_and_wss() {
    let tls = test_tls();
    let plain = EchoServer::start().unwrap();
    let secure = EchoServer::with_builder(Server::builder().tls(tls.acceptor.clone())).unwrap();
    let client = Client::builder()
        .tls_connector(tls.connector.clone())
        .build();
    for url in [plain.url(), secure.url()] {
        let (listener, events) = syncws::channel();
        let ws = client.new_web_socket(Request::builder(&url).build().unwrap(), listener);
        assert!(ws.send("hello"));
        assert!(matches!(next(&events), Event::Open(r) if r.status() == 101));
        match next(&events) {
            Event::Message(m) => assert_eq!(m, Message::Text("hello".into())),
            e => panic!("{e:?}"),
        }
        assert!(ws.close(1000, Some("bye")).unwrap());
        assert!(matches!(next(&events), Event::Closing { code: 1000, .. }));
        assert!(matches!(next(&events), Event::Closed { code: 1000, .. }));
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        assert_exhausted(&events);
    }
}
