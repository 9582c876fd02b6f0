//! The test kit's in-memory factory: the code under test gets real `WebSocket`s, the test
//! drives their listeners on its own thread and reads back what the code sent, closed and
//! canceled, in order; `queue_size` behaves as documented; and `Client` is the same seam.

use std::sync::{Arc, Mutex};

use syncws::testing::{FakeFactory, Sent};
use syncws::{
    Client, EchoServer, Ended, Error, Event, Listener, Message, Request, Response, State,
    WebSocket, WebSocketFactory,
};

fn request(url: &str) -> Request {
    Request::builder(url).build().expect("a valid request")
}

/// Application code under test: a chat client that logs in on open, answers "ping" with
/// "pong", leaves with 1000 when told "bye", and records how the socket ended.
struct Chat {
    ended: Arc<Mutex<Vec<String>>>,
    ws: WebSocket,
}

impl Chat {
    fn join(factory: &dyn WebSocketFactory, url: &str) -> Chat {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let log = ended.clone();
        let listener = Listener::new()
            .on_open(|ws, response| {
                let proto = response.header("Sec-WebSocket-Protocol").unwrap_or("none");
                ws.send(format!("login as ann ({proto})"));
            })
            .on_message(|ws, m| match m {
                Message::Text(t) if t == "ping" => {
                    ws.send("pong");
                }
                Message::Text(t) if t == "bye" => {
                    let _ = ws.close(1000, Some("leaving"));
                }
                _ => {}
            })
            .on_ended(move |_, how| {
                log.lock().unwrap().push(match how {
                    Ended::Closed { code, .. } => format!("closed {code}"),
                    Ended::Failed { error, .. } => format!("failed: {error}"),
                    other => format!("{other:?}"),
                })
            });
        let ws = factory.new_web_socket(
            Request::builder(url)
                .subprotocol("chat.v1")
                .build()
                .expect("a valid request"),
            Box::new(listener),
        );
        Chat { ended, ws }
    }
}

#[test]
fn the_test_drives_the_listener_and_sees_every_send_and_close_in_order() {
    let fake = FakeFactory::new();
    let chat = Chat::join(&fake, "wss://chat.example/room");
    let socket = fake.next_socket().expect("the chat opened a socket");
    assert_eq!(socket.request().subprotocols(), ["chat.v1"]);
    assert_eq!(socket.state(), State::Connecting);
    assert!(socket.sent().is_empty(), "nothing before on_open");

    socket.open_with(
        Response::switching_protocols().with_header("Sec-WebSocket-Protocol", "chat.v1"),
    );
    socket.message("ping");
    socket.message(vec![0u8; 3]); // ignored by the chat
    socket.message("bye");
    assert_eq!(
        socket.sent(),
        vec![
            Sent::Message("login as ann (chat.v1)".into()),
            Sent::Message("pong".into()),
            Sent::Close {
                code: Some(1000),
                reason: "leaving".into()
            },
        ]
    );
    assert_eq!(chat.ws.state(), State::Closing);
    assert!(!chat.ws.send("after close"), "send after close is refused");
    socket.closing(Some(1000), "see you");
    assert!(
        socket.sent().is_empty(),
        "the chat already closed: no second close frame"
    );
    assert!(chat.ended.lock().unwrap().is_empty());
    socket.closed();
    assert_eq!(*chat.ended.lock().unwrap(), ["closed 1000"]);
    assert_eq!(chat.ws.state(), State::Closed);
    assert!(socket.is_ended());
    assert!(fake.next_socket().is_none());
}

#[test]
fn queue_size_counts_what_was_sent_and_not_yet_taken_and_the_limit_refuses() {
    let fake = FakeFactory::with_max_queue_size(10);
    let (listener, events) = syncws::channel();
    let ws = fake.new_web_socket(request("ws://h/"), Box::new(listener));
    let socket = fake.next_socket().unwrap();
    assert!(ws.send("12345"), "a send while connecting is queued");
    assert_eq!(ws.queue_size(), 5);
    socket.open();
    assert!(ws.send(vec![1u8, 2, 3, 4, 5]));
    assert_eq!(ws.queue_size(), 10);
    assert!(!ws.send("x"), "one byte over max_queue_size is refused");
    assert_eq!(
        ws.state(),
        State::Closing,
        "and, as documented, starts a close with 1001"
    );
    assert_eq!(
        socket.sent(),
        vec![
            Sent::Message("12345".into()),
            Sent::Message(Message::Binary(vec![1, 2, 3, 4, 5])),
            Sent::Close {
                code: Some(1001),
                reason: String::new()
            },
        ]
    );
    assert_eq!(ws.queue_size(), 0, "taken = written: the queue is empty");
    assert!(matches!(events.try_recv(), Ok(Event::Open(_))));
}

#[test]
fn cancel_is_recorded_and_silences_the_listener() {
    let fake = FakeFactory::new();
    let (listener, events) = syncws::channel();
    let ws = fake.new_web_socket(request("ws://h/"), Box::new(listener));
    let socket = fake.next_socket().unwrap();
    socket.open();
    ws.send("one");
    ws.cancel();
    assert_eq!(ws.state(), State::Canceled);
    socket.message("after the cancel");
    socket.closing(Some(1000), "");
    assert_eq!(
        socket.sent(),
        vec![Sent::Message("one".into()), Sent::Cancel]
    );
    let seen: Vec<Event> = events.try_iter().collect();
    assert!(matches!(seen[0], Event::Open(_)));
    assert!(
        seen[1..]
            .iter()
            .all(|e| !matches!(e, Event::Message(_) | Event::Closing { .. })),
        "no message or closing after cancel: {seen:?}"
    );
}

#[test]
fn a_refused_handshake_reaches_on_failure_with_the_response() {
    let fake = FakeFactory::new();
    let (listener, events) = syncws::channel();
    fake.new_web_socket(request("ws://h/"), Box::new(listener));
    let socket = fake.next_socket().unwrap();
    let refusal = Response::new(401, "Unauthorized").with_header("WWW-Authenticate", "Bearer");
    socket.fail(
        Error::UnexpectedEof, // what the error is, the test decides
        Some(refusal),
    );
    match events.try_recv() {
        Ok(Event::Ended(Ended::Failed {
            response: Some(r), ..
        })) => {
            assert_eq!(r.status(), 401);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
        other => panic!("expected a failure with the response, got {other:?}"),
    }
    // One terminal callback: later driving is ignored.
    socket.closed();
    socket.open();
    assert!(events.try_recv().is_err());
}

#[test]
fn a_panicking_callback_fails_the_socket_with_1011_as_on_the_reader_thread() {
    let fake = FakeFactory::new();
    let ended = Arc::new(Mutex::new(None));
    let seen = ended.clone();
    let listener = Listener::new()
        .on_message(|_, _| panic!("a bug in the application"))
        .on_ended(move |_, how| *seen.lock().unwrap() = Some(how));
    fake.new_web_socket(request("ws://h/"), Box::new(listener));
    let socket = fake.next_socket().unwrap();
    socket.open();
    socket.message("boom");
    assert_eq!(
        socket.sent(),
        vec![Sent::Close {
            code: Some(1011),
            reason: String::new()
        }]
    );
    assert!(socket.is_ended());
    assert!(
        matches!(&*ended.lock().unwrap(), Some(Ended::Failed { .. })),
        "{:?}",
        ended.lock().unwrap()
    );
}

#[test]
fn sockets_are_handed_out_in_the_order_they_were_made() {
    let fake = FakeFactory::new();
    for i in 0..3 {
        fake.new_web_socket(request(&format!("ws://h/{i}")), Box::new(Listener::new()));
    }
    assert_eq!(fake.socket_count(), 3);
    let paths: Vec<String> = std::iter::from_fn(|| fake.next_socket())
        .map(|s| s.request().url().path().to_owned())
        .collect();
    assert_eq!(paths, ["/0", "/1", "/2"]);
}

/// The same application code runs against a real client through the same trait object.
#[test]
fn client_is_a_web_socket_factory() {
    let server = EchoServer::start().expect("echo server");
    let factory: Arc<dyn WebSocketFactory> = Arc::new(Client::new());
    let (listener, events) = syncws::channel();
    let ws = factory.new_web_socket(request(&server.url()), Box::new(listener));
    ws.send("through the trait");
    let timeout = std::time::Duration::from_secs(10);
    assert!(matches!(events.recv_timeout(timeout), Ok(Event::Open(_))));
    match events.recv_timeout(timeout) {
        Ok(Event::Message(Message::Text(t))) => assert_eq!(t, "through the trait"),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.close(1000, None).expect("a valid close");
    assert!(matches!(
        events.recv_timeout(timeout),
        Ok(Event::Closing { .. })
    ));
}

/// As on a real reader thread, a callback that waits for its own socket to finish is told
/// "not finished" at once instead of waiting out its timeout for itself.
#[test]
fn wait_finished_inside_a_callback_returns_false_at_once() {
    use std::time::Duration;
    let fake = FakeFactory::new();
    let waited = Arc::new(Mutex::new(Vec::new()));
    let (w1, w2, w3, w4) = (
        waited.clone(),
        waited.clone(),
        waited.clone(),
        waited.clone(),
    );
    let wait = |ws: &WebSocket| ws.wait_finished(Duration::from_secs(30));
    let listener = Listener::new()
        .on_open(move |ws, _| w1.lock().unwrap().push(("open", wait(ws))))
        .on_message(move |ws, _| w2.lock().unwrap().push(("message", wait(ws))))
        .on_closing(move |ws, _, _| w3.lock().unwrap().push(("closing", wait(ws))))
        .on_ended(move |ws, _| w4.lock().unwrap().push(("ended", wait(ws))));
    let ws = fake.new_web_socket(request("ws://h/"), Box::new(listener));
    let socket = fake.next_socket().unwrap();
    // Driven on another thread, so that a wait that does not return fails the test in
    // good time (well before the 30 s it would wait) rather than stall it.
    let (done, driven) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        socket.open();
        socket.message("hi");
        socket.closing(Some(1000), "bye");
        socket.closed();
        let _ = done.send(());
    });
    driven
        .recv_timeout(Duration::from_secs(20))
        .expect("every callback's wait_finished returned at once");
    assert_eq!(
        *waited.lock().unwrap(),
        [
            ("open", false),
            ("message", false),
            ("closing", false),
            ("ended", false)
        ]
    );
    // Outside the callbacks, the socket has finished.
    assert!(ws.wait_finished(Duration::from_secs(1)));
}
