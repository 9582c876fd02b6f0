//! The reconnecting web socket against servers that drop, refuse or are not there, on
//! purpose: what is retried, what is not, the backoff's attempts, held messages, and the one
//! terminal callback.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded, unbounded};
use syncws::{
    Accept, ChannelListener, Client, Error, Event, Events, Listener, Message, Reconnect,
    ReconnectState, Request, Response, Server, WebSocket, WebSocketListener,
};

use common::{EVENT_TIMEOUT, next};

/// Short delays: 20, 40, 80, 80, ... ms before jitter.
fn fast() -> Reconnect {
    Reconnect::new()
        .initial_delay(Duration::from_millis(20))
        .multiplier(2.0)
        .max_delay(Duration::from_millis(80))
}

/// A delay no test waits out: an end within `EVENT_TIMEOUT` proves the wait was cut short.
fn slow() -> Reconnect {
    Reconnect::new()
        .initial_delay(Duration::from_secs(600))
        .max_delay(Duration::from_secs(600))
}

/// What one `on_retry` call saw.
#[derive(Debug)]
struct Seen {
    attempt: u32,
    delay: Duration,
    status: Option<u16>,
    closed: Option<u16>,
    error: Option<String>,
}

fn seen(retry: &syncws::Retry<'_>) -> Seen {
    Seen {
        attempt: retry.attempt,
        delay: retry.delay,
        status: retry.cause.response().map(Response::status),
        closed: match retry.cause {
            syncws::Ended::Closed { code, .. } => Some(*code),
            _ => None,
        },
        error: retry.cause.error().map(|e| format!("{e:?}")),
    }
}

/// `policy` with an `on_retry` that reports every call and says yes.
fn recording(policy: Reconnect) -> (Reconnect, Receiver<Seen>) {
    let (tx, rx) = unbounded();
    let policy = policy.on_retry(move |retry| {
        let _ = tx.send(seen(retry));
        true
    });
    (policy, rx)
}

fn next_retry(retries: &Receiver<Seen>) -> Seen {
    retries
        .recv_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|_| panic!("no retry within {EVENT_TIMEOUT:?}"))
}

/// A server whose handler gets the number (from 1) of each upgrade request it sees.
fn counting_server(
    handler: impl Fn(usize) -> Accept + Send + Sync + 'static,
) -> (Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let server = Server::bind("127.0.0.1:0", move |_: &Request| {
        handler(seen.fetch_add(1, Ordering::SeqCst) + 1)
    })
    .expect("bind");
    (server, count)
}

/// A server-side listener that echoes and, after `k` messages, does `end` to its socket.
fn echo_then(k: usize, end: fn(&WebSocket)) -> Listener {
    let mut n = 0;
    Listener::new().on_message(move |ws, m| {
        ws.send(m);
        n += 1;
        if n == k {
            end(ws);
        }
    })
}

fn echo() -> Listener {
    Listener::new().on_message(|ws, m| {
        ws.send(m);
    })
}

fn request(url: &str) -> Request {
    Request::builder(url).build().expect("request")
}

/// A loopback port with nothing listening on it.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A server that is "down": it accepts TCP connections and closes them at once, counting them.
fn hang_up_server() -> (u16, Arc<AtomicUsize>) {
    hang_up_server_after(false)
}

/// [`hang_up_server`]; with `read_first` it reads what the client sends first (its TLS hello),
/// so that closing sends a FIN, not a reset.
fn hang_up_server_after(read_first: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            if let (true, Ok(mut s)) = (read_first, stream) {
                let _ = s.set_read_timeout(Some(EVENT_TIMEOUT));
                let _ = std::io::Read::read(&mut s, &mut [0u8; 4096]);
            }
        }
    });
    (port, count)
}

fn expect_open(events: &Events) {
    match next(events) {
        Event::Open(r) => assert_eq!(r.status(), 101),
        e => panic!("expected Open, got {e:?}"),
    }
}

fn expect_text(events: &Events, want: &str) {
    match next(events) {
        Event::Message(Message::Text(t)) => assert_eq!(t, want),
        e => panic!("expected text {want:?}, got {e:?}"),
    }
}

fn expect_failure(events: &Events) -> (Error, Option<Response>) {
    match next(events) {
        Event::Ended(syncws::Ended::Failed { error, response }) => (error, response.map(|r| *r)),
        e => panic!("expected Failure, got {e:?}"),
    }
}

/// After the terminal event the listener is dropped: the channel has nothing more, ever.
fn expect_end_of_events(events: &Events) {
    match events.recv_timeout(EVENT_TIMEOUT) {
        Err(syncws::crossbeam_channel::RecvTimeoutError::Disconnected) => {}
        other => panic!("expected the listener to be dropped, got {other:?}"),
    }
}

/// The application's listener: a channel, plus a text `on_open` sends on the connection.
struct SendsOnOpen {
    events: ChannelListener,
    text: &'static str,
}

impl WebSocketListener for SendsOnOpen {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        ws.send(self.text);
        self.events.on_open(ws, response);
    }
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.events.on_message(ws, message);
    }
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.on_closing(ws, code, reason);
    }
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.on_closed(ws, code, reason);
    }
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {
        self.events.on_failure(ws, error, response);
    }
}

fn close_cleanly(ws: &syncws::ReconnectingWebSocket, events: &Events) {
    assert!(ws.close(1000, Some("bye")).expect("close"));
    close_events(events, 1000);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), ReconnectState::Finished);
}

/// The events of a close this side started: the server's answer, then the one `Closed`.
fn close_events(events: &Events, want: u16) {
    loop {
        match next(events) {
            Event::Closing { .. } => {}
            Event::Ended(syncws::Ended::Closed { code, .. }) => {
                assert_eq!(code, want);
                break;
            }
            e => panic!("expected the close, got {e:?}"),
        }
    }
    expect_end_of_events(events);
}

#[test]
fn reconnects_after_the_server_closes_with_1012_and_messages_flow_again() {
    let (server, count) = counting_server(|n| {
        if n == 1 {
            Accept::upgrade(echo_then(2, |ws| {
                let _ = ws.close(1012, Some("restart"));
            }))
        } else {
            Accept::upgrade(echo())
        }
    });
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    assert!(ws.send("a"));
    assert!(ws.send("b"));
    expect_open(&events);
    expect_text(&events, "a");
    expect_text(&events, "b");
    match next(&events) {
        Event::Closing { code, reason } => assert_eq!((code, reason.as_str()), (1012, "restart")),
        e => panic!("expected the server's close, got {e:?}"),
    }
    // Not terminal: the retry callback hears it, and a new connection opens.
    let retry = next_retry(&retries);
    assert_eq!((retry.attempt, retry.closed), (1, Some(1012)));
    expect_open(&events);
    assert!(ws.send("c"));
    expect_text(&events, "c");
    // "c" went out either directly or with the held messages, once on_open had returned.
    assert_eq!(ws.state(), ReconnectState::Open);
    assert!(ws.current().is_some());
    close_cleanly(&ws, &events);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn messages_held_while_disconnected_go_out_in_order_after_what_on_open_sends() {
    let (go_tx, go_rx) = bounded::<()>(1);
    let (got_tx, got_rx) = unbounded::<Message>();
    let (server, count) = counting_server(move |n| {
        if n <= 2 {
            return Accept::reject(503, "Service Unavailable");
        }
        // Holds the third upgrade until the test has checked what is held.
        let _ = go_rx.recv_timeout(EVENT_TIMEOUT);
        let got_tx = got_tx.clone();
        Accept::upgrade(Listener::new().on_message(move |_, m| {
            let _ = got_tx.send(m);
        }))
    });
    let (policy, retries) = recording(fast());
    let (events, app_events) = syncws::channel();
    let listener = SendsOnOpen {
        events,
        text: "from on_open",
    };
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    let mut held = 0;
    for i in 0..50 {
        let m = format!("held {i}");
        held += m.len() as u64;
        assert!(ws.send(m));
    }
    // Nothing can have opened: the first two upgrades are refused, the third waits for us.
    assert_eq!(ws.queue_size(), held);
    assert_ne!(ws.state(), ReconnectState::Open);
    for attempt in 1..=2 {
        let retry = next_retry(&retries);
        assert_eq!((retry.attempt, retry.status), (attempt, Some(503)));
    }
    go_tx.send(()).expect("go");
    expect_open(&app_events);
    let recv = || {
        got_rx
            .recv_timeout(EVENT_TIMEOUT)
            .expect("message at the server")
    };
    assert_eq!(recv(), Message::from("from on_open"));
    for i in 0..50 {
        assert_eq!(recv(), Message::from(format!("held {i}")));
    }
    assert!(common::eventually(|| ws.queue_size() == 0));
    close_cleanly(&ws, &app_events);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn the_retry_callback_sees_attempts_1_2_3_their_causes_and_delays_within_the_jitter() {
    let (server, count) = counting_server(|n| match n {
        1 => Accept::reject(503, "Service Unavailable"),
        2 => Accept::reject(429, "Too Many Requests"),
        3 => Accept::reject(500, "Internal Server Error"),
        _ => Accept::upgrade(echo()),
    });
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    for (attempt, status, base_ms) in [(1, 503, 20), (2, 429, 40), (3, 500, 80)] {
        let retry = next_retry(&retries);
        assert_eq!(retry.attempt, attempt);
        assert_eq!(retry.status, Some(status));
        let error = retry.error.expect("a failure");
        assert!(error.contains("HandshakeRejected"), "{error}");
        // Equal jitter: between half the base delay and the base delay.
        let base = Duration::from_millis(base_ms);
        assert!(
            retry.delay <= base && retry.delay >= base / 2,
            "attempt {attempt}: {:?} outside [{:?}, {base:?}]",
            retry.delay,
            base / 2
        );
    }
    expect_open(&events);
    close_cleanly(&ws, &events);
    assert_eq!(count.load(Ordering::SeqCst), 4);
    assert!(retries.try_recv().is_err());
}

#[test]
fn when_max_attempts_run_out_the_last_error_is_the_one_terminal_failure() {
    let url = format!("ws://127.0.0.1:{}/", dead_port());
    let (policy, retries) = recording(fast().max_attempts(3));
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&url), policy, listener);
    for attempt in 1..=3 {
        let retry = next_retry(&retries);
        assert_eq!(retry.attempt, attempt);
        assert!(
            retry.error.as_deref().is_some_and(|e| e.contains("Io")),
            "{retry:?}"
        );
    }
    let (error, response) = expect_failure(&events);
    match error {
        Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        e => panic!("expected the refused connect, got {e:?}"),
    }
    assert!(response.is_none());
    expect_end_of_events(&events);
    assert!(retries.try_recv().is_err(), "no retry after the last");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(!ws.send("too late"));
}

#[test]
fn a_server_that_hangs_up_before_answering_is_retried() {
    let (port, count) = hang_up_server();
    let (policy, retries) = recording(fast().max_attempts(2));
    let (listener, events) = syncws::channel();
    let _ws = Client::new().reconnecting(
        request(&format!("ws://127.0.0.1:{port}/")),
        policy,
        listener,
    );
    for attempt in 1..=2 {
        let retry = next_retry(&retries);
        assert_eq!(retry.attempt, attempt);
        assert!(retry.status.is_none(), "no answer came: {retry:?}");
    }
    let (error, _) = expect_failure(&events);
    assert!(
        matches!(error, Error::HandshakeRejected { .. } | Error::Io(_)),
        "{error:?}"
    );
    expect_end_of_events(&events);
    // The first connection and two retries.
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn a_4xx_answer_is_not_retried_and_the_terminal_failure_carries_the_response() {
    for (status, reason) in [(401, "Unauthorized"), (404, "Not Found")] {
        let (server, count) = counting_server(move |_| Accept::reject(status, reason));
        let (policy, retries) = recording(fast());
        let (listener, events) = syncws::channel();
        let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
        let (error, response) = expect_failure(&events);
        assert!(
            matches!(error, Error::HandshakeRejected { .. }),
            "{error:?}"
        );
        let response = response.expect("the server's answer");
        assert_eq!((response.status(), response.reason()), (status, reason));
        expect_end_of_events(&events);
        // on_retry would have run before the terminal callback.
        assert!(retries.try_recv().is_err(), "{status} was retried");
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        assert_eq!(ws.state(), ReconnectState::Finished);
    }
}

#[test]
fn the_applications_close_ends_it_with_one_on_closed_and_no_retry() {
    let (server, count) = counting_server(|_| Accept::upgrade(echo()));
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    expect_open(&events);
    close_cleanly(&ws, &events);
    assert!(!ws.close(1000, None).expect("close"));
    assert!(!ws.send("after close"));
    assert!(retries.try_recv().is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn close_while_connecting_hands_the_held_messages_and_the_close_to_that_connection() {
    let (go_tx, go_rx) = bounded::<()>(1);
    let (got_tx, got_rx) = unbounded::<Message>();
    let (server, count) = counting_server(move |_| {
        // Holds the upgrade until the client has sent and closed.
        let _ = go_rx.recv_timeout(EVENT_TIMEOUT);
        let got_tx = got_tx.clone();
        Accept::upgrade(Listener::new().on_message(move |_, m| {
            let _ = got_tx.send(m);
        }))
    });
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    assert_eq!(ws.state(), ReconnectState::Connecting { attempt: 0 });
    assert!(ws.send("last words"));
    assert!(ws.close(1000, Some("bye")).expect("close"));
    assert_eq!(ws.state(), ReconnectState::Closing);
    assert!(!ws.send("after close"));
    go_tx.send(()).expect("go");
    let got = got_rx
        .recv_timeout(EVENT_TIMEOUT)
        .expect("message at the server");
    assert_eq!(got, Message::from("last words"));
    expect_open(&events);
    close_events(&events, 1000);
    assert!(retries.try_recv().is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_close_called_on_the_callbacks_websocket_also_ends_it() {
    let (server, count) = counting_server(|_| Accept::upgrade(echo()));
    let (policy, retries) = recording(fast());
    let (closed_tx, closed_rx) = bounded(1);
    let listener = Listener::new()
        .on_message(|ws, _| {
            let _ = ws.close(1000, Some("done"));
        })
        .on_closed(move |_, code, _| {
            let _ = closed_tx.send(code);
        });
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    assert!(ws.send("ping"));
    assert_eq!(closed_rx.recv_timeout(EVENT_TIMEOUT), Ok(1000));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(retries.try_recv().is_err(), "our own close was retried");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_close_of_ours_that_the_server_answers_by_dropping_the_connection_is_not_retried() {
    // The server drops TCP instead of answering our close frame: the connection fails, but
    // after a close this side started, so it is the end.
    let (server, count) =
        counting_server(|_| Accept::upgrade(echo().on_closing(|ws, _, _| ws.cancel())));
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    let closer = Listener::new().on_message(|ws, _| {
        let _ = ws.close(1000, None);
    });
    let ws = Client::new().reconnecting(request(&server.url()), policy, Both(closer, listener));
    assert!(ws.send("ping"));
    expect_open(&events);
    expect_text(&events, "ping");
    let (error, _) = expect_failure(&events);
    assert!(
        matches!(error, Error::UnexpectedEof | Error::Io(_)),
        "{error:?}"
    );
    expect_end_of_events(&events);
    assert!(retries.try_recv().is_err(), "our own close was retried");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// Two listeners, called in turn.
struct Both<A, B>(A, B);

impl<A: WebSocketListener, B: WebSocketListener> WebSocketListener for Both<A, B> {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        self.0.on_open(ws, response);
        self.1.on_open(ws, response);
    }
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.0.on_message(ws, message.clone());
        self.1.on_message(ws, message);
    }
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.0.on_closing(ws, code, reason);
        self.1.on_closing(ws, code, reason);
    }
    fn on_closed(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.0.on_closed(ws, code, reason);
        self.1.on_closed(ws, code, reason);
    }
    fn on_failure(&mut self, ws: &WebSocket, error: Error, response: Option<&Response>) {
        // `Error` is not Clone; the first listener only closes, so any error will do.
        self.0.on_failure(ws, Error::Canceled, response);
        self.1.on_failure(ws, error, response);
    }
}

#[test]
fn cancel_during_a_backoff_wait_ends_it_at_once_with_no_further_attempt() {
    let (server, count) = counting_server(|_| Accept::reject(503, "Service Unavailable"));
    let (policy, retries) = recording(slow());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    let retry = next_retry(&retries);
    assert_eq!(retry.attempt, 1);
    assert!(retry.delay >= Duration::from_secs(300), "{retry:?}");
    // on_retry runs once the socket is waiting.
    assert_eq!(ws.state(), ReconnectState::Waiting { attempt: 1 });
    assert!(ws.current().is_none());
    ws.cancel();
    // Within EVENT_TIMEOUT, far short of the 300-600 s wait: the wait was interrupted.
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    expect_end_of_events(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    // The terminal callback comes only once nothing more will be attempted.
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(retries.try_recv().is_err());
}

#[test]
fn close_during_a_backoff_wait_ends_it_with_on_closed_and_the_applications_code() {
    let url = format!("ws://127.0.0.1:{}/", dead_port());
    let (policy, retries) = recording(slow());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&url), policy, listener);
    assert_eq!(next_retry(&retries).attempt, 1);
    assert!(ws.send("never sent"));
    assert!(ws.close(4000, Some("done")).expect("close"));
    match next(&events) {
        Event::Ended(syncws::Ended::Closed { code, reason, .. }) => {
            assert_eq!((code, reason.as_str()), (4000, "done"))
        }
        e => panic!("expected Closed, got {e:?}"),
    }
    expect_end_of_events(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.queue_size(), 0, "held messages are dropped at the end");
}

#[test]
fn dropping_every_handle_during_a_backoff_wait_ends_it_with_the_cause() {
    let (server, count) = counting_server(|_| Accept::reject(503, "Service Unavailable"));
    let (policy, retries) = recording(slow());
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    let other = ws.clone();
    assert_eq!(next_retry(&retries).attempt, 1);
    drop(ws);
    // One handle left: still waiting.
    assert_eq!(other.state(), ReconnectState::Waiting { attempt: 1 });
    drop(other);
    let (error, response) = expect_failure(&events);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    assert_eq!(response.map(|r| r.status()), Some(503));
    expect_end_of_events(&events);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn the_attempt_count_starts_again_after_a_connection_opens() {
    // Two refusals, a connection the server drops, two refusals, a connection that stays.
    let (server, count) = counting_server(|n| match n {
        1 | 2 | 4 | 5 => Accept::reject(503, "Service Unavailable"),
        // Drops the connection (no close frame) when the client's on_open message comes.
        3 => Accept::upgrade(Listener::new().on_message(|ws, _| ws.cancel())),
        _ => Accept::upgrade(echo()),
    });
    // Three attempts per outage: without the reset the second outage would run out.
    let (policy, retries) = recording(fast().max_attempts(3));
    let (events, app_events) = syncws::channel();
    let listener = SendsOnOpen {
        events,
        text: "hello",
    };
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    for attempt in [1, 2] {
        assert_eq!(next_retry(&retries).attempt, attempt);
    }
    expect_open(&app_events);
    // The server dropped the connection without a close: a failure, retried from 1.
    let retry = next_retry(&retries);
    assert_eq!(retry.attempt, 1);
    assert!(retry.status.is_none() && retry.error.is_some(), "{retry:?}");
    for attempt in [2, 3] {
        let retry = next_retry(&retries);
        assert_eq!((retry.attempt, retry.status), (attempt, Some(503)));
    }
    expect_open(&app_events);
    expect_text(&app_events, "hello");
    close_cleanly(&ws, &app_events);
    assert_eq!(count.load(Ordering::SeqCst), 6);
}

#[test]
fn on_retry_returning_false_stops_with_that_cause_as_the_terminal_failure() {
    let (server, count) = counting_server(|_| Accept::reject(503, "Service Unavailable"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let policy = fast().on_retry(move |retry| {
        counted.fetch_add(1, Ordering::SeqCst);
        assert_eq!(retry.attempt, 1);
        false
    });
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    let (error, response) = expect_failure(&events);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    assert_eq!(response.map(|r| r.status()), Some(503));
    expect_end_of_events(&events);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn a_certificate_the_client_refuses_is_not_retried() {
    let tls = common::test_tls();
    let (count_tx, count_rx): (crossbeam_channel::Sender<()>, _) = unbounded();
    let server = tls
        .server()
        .bind("127.0.0.1:0", move |_: &Request| {
            let _ = count_tx.send(());
            Accept::upgrade(echo())
        })
        .expect("bind");
    let (policy, retries) = recording(fast());
    let (listener, events) = syncws::channel();
    // The default client trusts the system roots only, not the test certificate.
    let _ws = Client::new().reconnecting(request(&server.url()), policy, listener);
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    expect_end_of_events(&events);
    assert!(
        retries.try_recv().is_err(),
        "a refused certificate was retried"
    );
    assert!(count_rx.try_recv().is_err(), "no upgrade got through");
}

#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[test]
fn a_server_that_hangs_up_during_the_tls_handshake_is_retried() {
    let (port, count) = hang_up_server_after(true);
    let (policy, retries) = recording(fast().max_attempts(1));
    let (listener, events) = syncws::channel();
    let _ws = Client::new().reconnecting(
        request(&format!("wss://127.0.0.1:{port}/")),
        policy,
        listener,
    );
    let retry = next_retry(&retries);
    assert_eq!(retry.attempt, 1);
    // A TLS error, which is retried because the server hung up (not a certificate).
    let error = retry.error.expect("a failure");
    assert!(error.contains("Tls") && error.contains("closed"), "{error}");
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    expect_end_of_events(&events);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn messages_held_while_disconnected_are_bounded_by_max_queue_size() {
    let url = format!("ws://127.0.0.1:{}/", dead_port());
    let client = Client::builder().max_queue_size(100).build();
    let (policy, retries) = recording(slow());
    let (listener, events) = syncws::channel();
    let ws = client.reconnecting(request(&url), policy, listener);
    assert!(ws.send(vec![0u8; 60]));
    assert!(!ws.send(vec![0u8; 41]), "over the bound");
    assert!(ws.send(vec![0u8; 40]));
    assert_eq!(ws.queue_size(), 100);
    assert!(!ws.send(vec![0u8; 1]));
    // A refused send closes nothing: the socket waits to reconnect as before.
    assert_eq!(next_retry(&retries).attempt, 1);
    assert_eq!(ws.state(), ReconnectState::Waiting { attempt: 1 });
    ws.cancel();
    let (error, _) = expect_failure(&events);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(!ws.send("after cancel"));
}
