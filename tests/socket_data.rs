//! Per-socket application data: a value the server's handler attaches at the upgrade
//! (`Accept::data`) or the client's request carries (`RequestBuilder::data`), read from every
//! callback's `&WebSocket` with `WebSocket::data`; over real sockets on 127.0.0.1.

mod common;

use std::sync::Mutex;
use std::sync::mpsc;

use common::EVENT_TIMEOUT;
use syncws::{Accept, Client, Listener, Request, Server};

#[derive(Debug, PartialEq)]
struct User {
    name: String,
}

/// The handler names the user from the request; every callback of that socket sees it, and
/// another socket sees its own.
#[test]
fn a_value_attached_at_the_upgrade_reaches_every_callback() {
    let (tx, seen) = mpsc::channel::<(&'static str, String)>();
    let tx = Mutex::new(tx);
    let server = Server::bind("127.0.0.1:0", move |request| {
        let name = request.header("X-User").unwrap_or("nobody").to_owned();
        let (open_tx, msg_tx, end_tx) = {
            let tx = tx.lock().unwrap();
            (tx.clone(), tx.clone(), tx.clone())
        };
        let user = |ws: &syncws::WebSocket| ws.data::<User>().map(|u| u.name.clone());
        Accept::upgrade(
            Listener::new()
                .on_open(move |ws, _| {
                    let _ = open_tx.send(("open", user(ws).unwrap_or_default()));
                })
                .on_message(move |ws, _| {
                    let _ = msg_tx.send(("message", user(ws).unwrap_or_default()));
                    ws.send(user(ws).unwrap_or_default());
                })
                .on_ended(move |ws, _| {
                    let _ = end_tx.send(("ended", user(ws).unwrap_or_default()));
                }),
        )
        .data(User { name })
    })
    .unwrap();
    for name in ["ada", "grace"] {
        let request = Request::builder(&server.url())
            .header("X-User", name)
            .build()
            .unwrap();
        let mut conn = Client::new().connect(request).unwrap();
        conn.send("hello");
        assert_eq!(conn.recv().unwrap().as_text(), Some(name));
        conn.close(1000, None).unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(seen.recv_timeout(EVENT_TIMEOUT).expect("callbacks"));
        }
        assert_eq!(
            got,
            vec![
                ("open", name.to_owned()),
                ("message", name.to_owned()),
                ("ended", name.to_owned())
            ]
        );
    }
}

/// A blocking server connection (`Accept::connection`) has it too.
#[test]
fn a_server_connection_has_the_value_too() {
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::connection(|mut conn| {
            let name = conn
                .websocket()
                .data::<User>()
                .map(|u| u.name.clone())
                .unwrap_or_default();
            while let Ok(_m) = conn.recv() {
                conn.send(name.clone());
            }
        })
        .data(User {
            name: "linus".into(),
        })
    })
    .unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    conn.send("who am i");
    assert_eq!(conn.recv().unwrap().as_text(), Some("linus"));
}

/// The client's request carries one for its socket's callbacks; asking for another type, or
/// a socket without one, gives `None`.
#[test]
fn a_clients_request_carries_a_value_for_its_callbacks() {
    let server = syncws::EchoServer::start().unwrap();
    let (tx, seen) = mpsc::channel();
    let listener = Listener::new().on_open(move |ws, _| {
        let _ = tx.send((
            ws.data::<User>().map(|u| u.name.clone()),
            ws.data::<String>().is_some(),
        ));
    });
    let request = Request::builder(&server.url())
        .data(User {
            name: "client".into(),
        })
        .build()
        .unwrap();
    let ws = Client::new().new_web_socket(request, listener);
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        (Some("client".to_owned()), false)
    );
    ws.cancel();
    let plain = syncws::connect(&server.url()).unwrap();
    assert!(plain.websocket().data::<User>().is_none());
}
