//! Topics: `subscribe`, `unsubscribe`, `publish` (one framing for every subscriber), a
//! socket leaving its topics when it ends, and use from callbacks on many threads at once;
//! over real sockets on 127.0.0.1 against syncws's server.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::{Accept, Connection, Listener, Message, Server, Topics, WhenFull};

/// A server whose sockets subscribe to the topics their path names (`/a+b`), and publish
/// every text `topic:payload` they send to that topic, from their reader thread.
fn server(topics: &Topics) -> Server {
    let topics = topics.clone();
    Server::bind("127.0.0.1:0", move |request| {
        let names: Vec<String> = request
            .url()
            .path()
            .trim_start_matches('/')
            .split('+')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let (subscribe, publish) = (topics.clone(), topics.clone());
        Accept::upgrade(
            Listener::new()
                .on_open(move |ws, _| {
                    for n in &names {
                        // False only for a socket that ended already (the churn below).
                        subscribe.subscribe(ws, n);
                    }
                    // Told when subscribed, so tests know when to publish.
                    ws.send("subscribed");
                })
                .on_message(move |_ws, m| {
                    if let Message::Text(t) = m
                        && let Some((topic, payload)) = t.split_once(':')
                    {
                        publish.publish(topic, payload.to_owned(), WhenFull::Close(1008));
                    }
                }),
        )
    })
    .unwrap()
}

fn join(server: &Server, path: &str) -> Connection {
    let mut conn = syncws::connect(&format!("{}{path}", server.url())).unwrap();
    assert_eq!(
        conn.recv_timeout(EVENT_TIMEOUT)
            .unwrap()
            .and_then(|m| m.as_text().map(str::to_owned)),
        Some("subscribed".to_owned())
    );
    conn
}

fn next_text(conn: &mut Connection) -> Option<String> {
    conn.recv_timeout(Duration::from_millis(300))
        .unwrap()
        .and_then(|m| m.as_text().map(str::to_owned))
}

/// A publish reaches every subscriber of its topic and nobody else; after `unsubscribe`,
/// no more.
#[test]
fn a_publish_reaches_the_topics_subscribers_only() {
    let topics = Topics::new();
    let server = server(&topics);
    let mut a = join(&server, "/news+sport");
    let mut b = join(&server, "/news");
    let mut c = join(&server, "/weather");
    assert_eq!(topics.subscribers("news"), 2);
    let d = topics.publish("news", "extra", WhenFull::Skip);
    assert_eq!((d.sent, d.skipped, d.closed, d.ended), (2, 0, 0, 0));
    assert_eq!(next_text(&mut a).as_deref(), Some("extra"));
    assert_eq!(next_text(&mut b).as_deref(), Some("extra"));
    assert_eq!(next_text(&mut c), None, "not a subscriber");
    // Published from a socket's own callback, to another topic.
    c.send("sport:goal");
    assert_eq!(next_text(&mut a).as_deref(), Some("goal"));
    assert_eq!(next_text(&mut b), None);
    assert_eq!(topics.publish("nobody", "x", WhenFull::Skip).sent, 0);
}

/// Unsubscribing stops delivery, and says whether there was anything to undo.
#[test]
fn unsubscribe_stops_delivery() {
    let topics = Topics::new();
    let (tx, subscribed) = mpsc::channel();
    let registry = topics.clone();
    let server = Server::bind("127.0.0.1:0", move |_| {
        let (registry, tx) = (registry.clone(), tx.clone());
        Accept::upgrade(Listener::new().on_open(move |ws, _| {
            assert!(registry.subscribe(ws, "t"));
            assert!(!registry.subscribe(ws, "t"), "once is enough");
            let _ = tx.send(ws.clone());
        }))
    })
    .unwrap();
    let mut conn = syncws::connect(&server.url()).unwrap();
    let ws = subscribed.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(topics.topics_of(&ws), vec!["t".to_owned()]);
    assert_eq!(topics.publish("t", "one", WhenFull::Skip).sent, 1);
    assert_eq!(next_text(&mut conn).as_deref(), Some("one"));
    assert!(topics.unsubscribe(&ws, "t"));
    assert!(!topics.unsubscribe(&ws, "t"));
    assert_eq!(topics.subscribers("t"), 0);
    assert_eq!(topics.publish("t", "two", WhenFull::Skip).sent, 0);
    assert_eq!(next_text(&mut conn), None);
}

/// A socket leaves its topics when it ends, before its terminal callback; an ended socket
/// cannot subscribe.
#[test]
fn a_socket_leaves_its_topics_when_it_ends() {
    let topics = Topics::new();
    let (tx, ended) = mpsc::channel();
    let registry = topics.clone();
    let server = Server::bind("127.0.0.1:0", move |_| {
        let (on_open, on_end, tx) = (registry.clone(), registry.clone(), tx.clone());
        Accept::upgrade(
            Listener::new()
                .on_open(move |ws, _| {
                    on_open.subscribe(ws, "a");
                    on_open.subscribe(ws, "b");
                    ws.send("subscribed");
                })
                .on_ended(move |ws, _| {
                    // In the terminal callback the socket is in no topic any more.
                    let _ = tx.send((on_end.topics_of(ws).len(), ws.clone()));
                }),
        )
    })
    .unwrap();
    let conn = join(&server, "/");
    assert_eq!((topics.subscribers("a"), topics.subscribers("b")), (1, 1));
    conn.close(1000, None).unwrap();
    let (left, ws) = ended.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(left, 0);
    assert_eq!((topics.subscribers("a"), topics.subscribers("b")), (0, 0));
    assert!(
        !topics.subscribe(&ws, "a"),
        "an ended socket subscribes to nothing"
    );
    assert_eq!(topics.subscribers("a"), 0);
}

/// Many sockets publishing from their callbacks at once, while others join and leave:
/// every subscriber gets every message.
#[test]
fn publishing_from_many_callbacks_at_once_reaches_everyone() {
    let topics = Topics::new();
    let server = server(&topics);
    let mut members: Vec<Connection> = (0..6).map(|_| join(&server, "/room")).collect();
    let churn = {
        let url = server.url();
        std::thread::spawn(move || {
            for _ in 0..20 {
                let conn = syncws::connect(&format!("{url}/room")).unwrap();
                drop(conn);
            }
        })
    };
    const EACH: usize = 20;
    for (i, m) in members.iter().enumerate() {
        for j in 0..EACH {
            m.send(format!("room:{i}-{j}"));
        }
    }
    for m in &mut members {
        let mut got = 0;
        while got < 6 * EACH {
            match m.recv_timeout(EVENT_TIMEOUT).unwrap() {
                Some(Message::Text(t)) if t == "subscribed" => {}
                Some(Message::Text(_)) => got += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    churn.join().unwrap();
}
