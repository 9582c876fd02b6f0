//! The documented guarantees (crate docs, `WebSocketListener`, `WebSocket`), client ↔ the
//! crate's own server role over plain `ws://` on 127.0.0.1.
//!
//! Every test that opens sockets holds `SOCKETS`, so the thread and descriptor checks in
//! this binary see only their own sockets.

mod common;

#[cfg(target_os = "linux")]
use std::collections::HashSet;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use common::*;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use syncws::{
    Accept, Client, Error, Event, Listener, Message, Request, Response, Server, State, WebSocket,
    WebSocketListener,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

static SOCKETS: Mutex<()> = Mutex::new(());

/// Serialises the tests of this file that open sockets.
fn serial() -> MutexGuard<'static, ()> {
    SOCKETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// One callback as seen by a [`Recording`] listener.
struct Rec {
    event: Event,
    thread: ThreadId,
    thread_name: Option<String>,
    /// `ws.state()` read inside the callback.
    state: State,
}

/// Records every callback (with its thread and the socket state), then runs `inner`
/// (except `on_failure`, which `Error` being not `Clone` keeps for the record).
struct Recording {
    inner: Listener,
    tx: Sender<Rec>,
}

impl Recording {
    fn record(&self, ws: &WebSocket, event: Event) {
        let t = std::thread::current();
        let _ = self.tx.send(Rec {
            event,
            thread: t.id(),
            thread_name: current_thread_name(),
            state: ws.state(),
        });
    }
}

impl WebSocketListener for Recording {
    fn on_open(&mut self, ws: &WebSocket, response: &Response) {
        self.record(ws, Event::Open(response.clone()));
        WebSocketListener::on_open(&mut self.inner, ws, response);
    }
    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        self.record(ws, Event::Message(message.clone()));
        WebSocketListener::on_message(&mut self.inner, ws, message);
    }
    fn on_closing(&mut self, ws: &WebSocket, code: u16, reason: &str) {
        self.record(
            ws,
            Event::Closing {
                code,
                reason: reason.to_owned(),
            },
        );
        WebSocketListener::on_closing(&mut self.inner, ws, code, reason);
    }
    fn on_ended(&mut self, ws: &WebSocket, ended: syncws::Ended) {
        if let syncws::Ended::Closed { code, reason, .. } = &ended {
            let (code, reason) = (*code, reason.clone());
            self.record(ws, Event::Ended(ended));
            WebSocketListener::on_closed(&mut self.inner, ws, code, &reason);
        } else {
            self.record(ws, Event::Ended(ended));
        }
    }
}

fn recording(inner: Listener) -> (Recording, Receiver<Rec>) {
    let (tx, rx) = unbounded();
    (Recording { inner, tx }, rx)
}

fn next_rec(rx: &Receiver<Rec>) -> Rec {
    rx.recv_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("no event within {EVENT_TIMEOUT:?}: {e:?}"))
}

fn expect_open(rx: &Receiver<Rec>) -> (Response, Rec) {
    let mut rec = next_rec(rx);
    match std::mem::replace(&mut rec.event, Event::Message(Message::Text(String::new()))) {
        Event::Open(r) => (r, rec),
        e => panic!("expected Open, got {e:?}"),
    }
}

fn expect_message(rx: &Receiver<Rec>) -> (Message, Rec) {
    let mut rec = next_rec(rx);
    match std::mem::replace(&mut rec.event, Event::Message(Message::Text(String::new()))) {
        Event::Message(m) => (m, rec),
        e => panic!("expected Message, got {e:?}"),
    }
}

fn expect_closing(rx: &Receiver<Rec>, code: u16, reason: &str) -> Rec {
    let rec = next_rec(rx);
    match &rec.event {
        Event::Closing { code: c, reason: r } if *c == code && r == reason => rec,
        e => panic!("expected Closing({code}, {reason:?}), got {e:?}"),
    }
}

fn expect_closed(rx: &Receiver<Rec>, code: u16, reason: &str) -> Rec {
    let rec = next_rec(rx);
    match &rec.event {
        Event::Ended(syncws::Ended::Closed {
            code: c, reason: r, ..
        }) if *c == code && r == reason => rec,
        e => panic!("expected Closed({code}, {reason:?}), got {e:?}"),
    }
}

fn expect_failure(rx: &Receiver<Rec>) -> (Error, Option<Response>, Rec) {
    let mut rec = next_rec(rx);
    match std::mem::replace(&mut rec.event, Event::Message(Message::Text(String::new()))) {
        Event::Ended(syncws::Ended::Failed { error, response }) => {
            (error, response.map(|r| *r), rec)
        }
        e => panic!("expected Failure, got {e:?}"),
    }
}

/// After the terminal callback: no further event, and the listener is dropped (the channel
/// disconnects) once the socket's reader thread is gone.
fn assert_ended(rx: &Receiver<Rec>) {
    match rx.recv_timeout(EVENT_TIMEOUT) {
        Err(RecvTimeoutError::Disconnected) => {}
        Err(RecvTimeoutError::Timeout) => panic!("the listener was never dropped"),
        Ok(r) => panic!("event after the terminal callback: {:?}", r.event),
    }
}

/// No further event within a short window (for server sockets, whose handler keeps a sender).
fn assert_quiet(rx: &Receiver<Rec>) {
    if let Ok(r) = rx.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected extra event {:?}", r.event);
    }
}

fn echo() -> Listener {
    Listener::new().on_message(|ws, m| {
        ws.send(m);
    })
}

/// A server whose every connection is upgraded with a recording `make()` listener.
fn recording_server(
    builder: syncws::ServerBuilder,
    make: impl Fn() -> Listener + Send + Sync + 'static,
) -> (Server, Receiver<Rec>) {
    let (tx, rx) = unbounded();
    let server = builder
        .bind("127.0.0.1:0", move |_req: &Request| {
            Accept::upgrade(Recording {
                inner: make(),
                tx: tx.clone(),
            })
        })
        .unwrap();
    (server, rx)
}

/// Holds the server's handler until released (or the gate is dropped), so the client stays in
/// `Connecting` for as long as the test wants.
struct Gate {
    arrived: Receiver<()>,
    release: Sender<()>,
}

impl Gate {
    fn wait_arrived(&self) {
        self.arrived
            .recv_timeout(EVENT_TIMEOUT)
            .expect("the upgrade request never reached the server");
    }
    fn open(&self) {
        let _ = self.release.send(());
    }
}

fn gated_server(
    make: impl Fn() -> Listener + Send + Sync + 'static,
) -> (Server, Receiver<Rec>, Gate) {
    let (tx, rx) = unbounded();
    let (arrived_tx, arrived) = unbounded();
    let (release, release_rx) = unbounded::<()>();
    let server = Server::bind("127.0.0.1:0", move |_req: &Request| {
        let _ = arrived_tx.send(());
        let _ = release_rx.recv_timeout(EVENT_TIMEOUT);
        Accept::upgrade(Recording {
            inner: make(),
            tx: tx.clone(),
        })
    })
    .unwrap();
    (server, rx, Gate { arrived, release })
}

fn request(server: &Server) -> Request {
    Request::builder(&server.url()).build().unwrap()
}

/// The calling thread's name as the OS has it (what ps, top and a debugger show). On Linux
/// socket threads are not std threads (`thread::current().name()` is None on them), so it is
/// read from /proc; elsewhere they are std threads, named by `thread::Builder`.
fn current_thread_name() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        task_comm(os_tid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::thread::current().name().map(str::to_owned)
    }
}

// The helpers below read /proc (Linux): the OS's own view of this process's threads and
// descriptors, which the tests that use them check (they are Linux-only for it).

/// The OS thread id of the calling thread.
#[cfg(target_os = "linux")]
fn os_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self target {link:?}"))
}

#[cfg(target_os = "linux")]
fn task_comm(tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

#[cfg(target_os = "linux")]
fn task_exists(tid: u32) -> bool {
    Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// OS thread ids of this process's `syncws-reader` / `syncws-writer` threads.
#[cfg(target_os = "linux")]
fn socket_threads() -> HashSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&tid| {
            matches!(
                task_comm(tid).as_deref(),
                Some("syncws-reader" | "syncws-writer")
            )
        })
        .collect()
}

#[cfg(target_os = "linux")]
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

// ---------------------------------------------------------------------------------------------
// 1. Callback order and thread
// ---------------------------------------------------------------------------------------------

#[test]
fn callbacks_arrive_in_wire_order_on_one_reader_thread_and_nothing_after_the_terminal_one() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    for i in 0..100 {
        assert!(ws.send(format!("msg {i}")));
    }

    let (response, open) = expect_open(&rx);
    assert_eq!(response.status(), 101);
    assert_eq!(open.thread_name.as_deref(), Some("syncws-reader"));
    assert_ne!(open.thread, std::thread::current().id());
    for i in 0..100 {
        let (m, rec) = expect_message(&rx);
        assert_eq!(m, Message::Text(format!("msg {i}")));
        assert_eq!(rec.thread, open.thread, "message {i} on another thread");
    }
    assert!(matches!(ws.close(1000, Some("done")), Ok(true)));
    let closing = expect_closing(&rx, 1000, "");
    let closed = expect_closed(&rx, 1000, "");
    assert_eq!(closing.thread, open.thread);
    assert_eq!(closed.thread, open.thread);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);

    // 14. The server's socket hears the same sequence, on its own reader thread.
    let (_, s_open) = expect_open(&server_rx);
    assert_eq!(s_open.thread_name.as_deref(), Some("syncws-reader"));
    assert_ne!(s_open.thread, open.thread);
    for i in 0..100 {
        let (m, rec) = expect_message(&server_rx);
        assert_eq!(m, Message::Text(format!("msg {i}")));
        assert_eq!(rec.thread, s_open.thread);
    }
    assert_eq!(
        expect_closing(&server_rx, 1000, "done").thread,
        s_open.thread
    );
    assert_eq!(
        expect_closed(&server_rx, 1000, "done").thread,
        s_open.thread
    );
    assert_quiet(&server_rx);
}

// ---------------------------------------------------------------------------------------------
// 2. Callbacks may call send / close / cancel / wait_finished on their own socket
// ---------------------------------------------------------------------------------------------

#[test]
fn callbacks_can_send_and_close_their_own_socket_without_deadlock() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let (waited_tx, waited_rx) = unbounded();
    let inner = Listener::new()
        .on_open(move |ws, _| {
            assert!(ws.send("from on_open"));
            // Documented: from its own callback, wait_finished returns false at once instead of
            // waiting for itself (were it to wait, the 30 s would outlast EVENT_TIMEOUT below).
            let _ = waited_tx.send(ws.wait_finished(Duration::from_secs(30)));
        })
        .on_message(|ws, _| {
            assert!(matches!(ws.close(1000, Some("from on_message")), Ok(true)));
        });
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);

    expect_open(&rx);
    let (m, _) = expect_message(&rx);
    assert_eq!(m, Message::Text("from on_open".into()));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert_eq!(waited_rx.recv_timeout(EVENT_TIMEOUT), Ok(false));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);

    expect_open(&server_rx);
    let (m, _) = expect_message(&server_rx);
    assert_eq!(m, Message::Text("from on_open".into()));
    expect_closing(&server_rx, 1000, "from on_message");
    expect_closed(&server_rx, 1000, "from on_message");
}

#[test]
fn cancel_from_on_message_reports_canceled() {
    let _lock = serial();
    let (server, _server_rx) = recording_server(Server::builder(), echo);
    let inner = Listener::new()
        .on_open(|ws, _| {
            // The echoes usually arrive in one read: nothing after the cancel may be delivered.
            assert!(ws.send("one"));
            assert!(ws.send("two"));
            assert!(ws.send("three"));
        })
        .on_message(|ws, _| ws.cancel());
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);

    expect_open(&rx);
    let (m, _) = expect_message(&rx);
    assert_eq!(m, Message::Text("one".into()));
    let (error, response, rec) = expect_failure(&rx);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(response.is_none());
    assert_eq!(rec.state, State::Canceled);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 3. Queued messages and close ordering
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_sent_while_connecting_go_out_after_the_handshake_in_order() {
    let _lock = serial();
    let (server, server_rx, gate) = gated_server(Listener::new);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    gate.wait_arrived();
    assert_eq!(ws.state(), State::Connecting);
    for i in 0..50 {
        assert!(ws.send(format!("early {i}")), "send {i} while connecting");
    }
    assert!(matches!(ws.close(1000, Some("after queue")), Ok(true)));
    assert!(!ws.send("after close"), "send after close must be refused");
    assert_eq!(ws.state(), State::Connecting);
    gate.open();

    expect_open(&rx);
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);

    expect_open(&server_rx);
    for i in 0..50 {
        let (m, _) = expect_message(&server_rx);
        assert_eq!(m, Message::Text(format!("early {i}")));
    }
    expect_closing(&server_rx, 1000, "after queue");
    expect_closed(&server_rx, 1000, "after queue");
    assert_quiet(&server_rx);
}

#[test]
fn everything_queued_before_close_is_written_before_the_close_frame() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), Listener::new);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    expect_open(&rx);

    const N: u32 = 2000;
    let payload = |i: u32| {
        let mut p = vec![(i % 251) as u8; 1024];
        p[..4].copy_from_slice(&i.to_be_bytes());
        p
    };
    for i in 0..N {
        assert!(ws.send(payload(i)));
    }
    assert!(matches!(ws.close(1000, Some("all sent")), Ok(true)));

    expect_open(&server_rx);
    for i in 0..N {
        let (m, _) = expect_message(&server_rx);
        assert!(m == Message::Binary(payload(i)), "message {i} differs");
    }
    expect_closing(&server_rx, 1000, "all sent");
    expect_closed(&server_rx, 1000, "all sent");

    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.queue_size(), 0);
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 4. Queue limit
// ---------------------------------------------------------------------------------------------

#[test]
fn send_past_max_queue_size_is_refused_and_closes_with_1001() {
    let _lock = serial();
    let (server, server_rx, gate) = gated_server(Listener::new);
    let client = Client::builder().max_queue_size(1024).build();
    let (listener, rx) = recording(Listener::new());
    let ws = client.new_web_socket(request(&server), listener);
    gate.wait_arrived();
    // While connecting nothing drains, so queue_size counts exactly what was queued.
    assert!(ws.send(vec![7u8; 1000]));
    assert_eq!(ws.queue_size(), 1000);
    assert!(!ws.send(vec![8u8; 25]), "1025 bytes would exceed 1024");
    assert_eq!(
        ws.queue_size(),
        1000,
        "a refused message must not be queued"
    );
    assert!(
        !ws.send("x"),
        "the overflow started a close; sends are refused"
    );
    assert!(
        matches!(ws.close(1000, None), Ok(false)),
        "close already started"
    );
    gate.open();

    expect_open(&server_rx);
    let (m, _) = expect_message(&server_rx);
    assert_eq!(m, Message::Binary(vec![7u8; 1000]));
    expect_closing(&server_rx, 1001, "");
    expect_closed(&server_rx, 1001, "");
    assert_quiet(&server_rx);

    expect_open(&rx);
    expect_closing(&rx, 1001, "");
    expect_closed(&rx, 1001, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.queue_size(), 0, "every queued byte was written");
    assert_ended(&rx);
}

#[test]
fn a_single_message_bigger_than_the_queue_limit_is_refused() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), Listener::new);
    let client = Client::builder().max_queue_size(1024).build();
    let (listener, rx) = recording(Listener::new());
    let ws = client.new_web_socket(request(&server), listener);
    expect_open(&rx);
    assert!(
        ws.send(vec![1u8; 1024]),
        "exactly the limit fits an empty queue"
    );
    assert!(!ws.send(vec![2u8; 1025]), "bigger than the whole limit");

    expect_open(&server_rx);
    let (m, _) = expect_message(&server_rx);
    assert_eq!(m, Message::Binary(vec![1u8; 1024]));
    expect_closing(&server_rx, 1001, "");
    expect_closed(&server_rx, 1001, "");
    assert_quiet(&server_rx);

    expect_closing(&rx, 1001, "");
    expect_closed(&rx, 1001, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.queue_size(), 0);
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 5. close validation
// ---------------------------------------------------------------------------------------------

#[test]
fn close_validates_code_and_reason_and_starts_only_one_close() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    expect_open(&rx);

    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
        match ws.close(code, None) {
            Err(Error::InvalidCloseCode(c)) => assert_eq!(c, code),
            other => panic!("close({code}) returned {other:?}"),
        }
    }
    // 62 two-byte characters: 62 chars but 124 UTF-8 bytes.
    let too_long = "é".repeat(62);
    match ws.close(1000, Some(&too_long)) {
        Err(Error::ReasonTooLong(n)) => assert_eq!(n, 124),
        other => panic!("124-byte reason returned {other:?}"),
    }
    // None of the refused calls started a close: the socket still works.
    assert_eq!(ws.state(), State::Open);
    assert!(ws.send("still open"));
    let (m, _) = expect_message(&rx);
    assert_eq!(m, Message::Text("still open".into()));

    let longest = format!("{}a", "é".repeat(61));
    assert_eq!(longest.len(), 123);
    assert!(matches!(ws.close(4999, Some(&longest)), Ok(true)));
    assert!(matches!(ws.close(1000, None), Ok(false)));
    assert!(matches!(
        ws.close(1005, None),
        Err(Error::InvalidCloseCode(1005))
    ));
    assert!(!ws.send("after close"));

    expect_closing(&rx, 4999, "");
    expect_closed(&rx, 4999, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(matches!(ws.close(1000, None), Ok(false)), "finished socket");
    assert!(!ws.send("after closed"));
    assert_ended(&rx);

    expect_open(&server_rx);
    expect_message(&server_rx);
    expect_closing(&server_rx, 4999, &longest);
    expect_closed(&server_rx, 4999, &longest);
    assert_quiet(&server_rx);
}

// ---------------------------------------------------------------------------------------------
// 6. Peer closes first
// ---------------------------------------------------------------------------------------------

fn server_closing_on_open() -> Listener {
    Listener::new().on_open(|ws, _| {
        assert!(matches!(ws.close(4000, Some("server bye")), Ok(true)));
    })
}

#[test]
fn peer_close_is_answered_automatically_with_its_code() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), server_closing_on_open);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);

    expect_open(&rx);
    let closing = expect_closing(&rx, 4000, "server bye");
    assert_eq!(closing.state, State::Closing);
    let closed = expect_closed(&rx, 4000, "server bye");
    assert_eq!(closed.state, State::Closed);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
    assert_ended(&rx);

    expect_open(&server_rx);
    expect_closing(&server_rx, 4000, "");
    expect_closed(&server_rx, 4000, "");
    assert_quiet(&server_rx);
}

#[test]
fn close_called_in_on_closing_replaces_the_automatic_answer() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), server_closing_on_open);
    let inner = Listener::new().on_closing(|ws, _, _| {
        assert!(matches!(ws.close(4001, Some("client answer")), Ok(true)));
    });
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);

    expect_open(&rx);
    expect_closing(&rx, 4000, "server bye");
    expect_closed(&rx, 4000, "server bye");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);

    expect_open(&server_rx);
    expect_closing(&server_rx, 4001, "client answer");
    expect_closed(&server_rx, 4001, "client answer");
    assert_quiet(&server_rx);
}

// ---------------------------------------------------------------------------------------------
// 7. Panicking callbacks
// ---------------------------------------------------------------------------------------------

#[test]
fn panic_in_on_message_sends_1011_and_reports_listener_panicked() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let inner = Listener::new().on_message(|_, _| panic!("boom in on_message"));
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);
    for m in ["a", "b", "c"] {
        ws.send(m);
    }

    expect_open(&rx);
    let (m, _) = expect_message(&rx);
    assert_eq!(m, Message::Text("a".into()));
    let (error, _, rec) = expect_failure(&rx);
    match error {
        Error::ListenerPanicked(msg) => assert!(msg.contains("boom in on_message"), "{msg}"),
        e => panic!("expected ListenerPanicked, got {e:?}"),
    }
    assert_eq!(rec.state, State::Canceled);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);

    expect_open(&server_rx);
    for expected in ["a", "b", "c"] {
        let (m, _) = expect_message(&server_rx);
        assert_eq!(m, Message::Text(expected.into()));
    }
    expect_closing(&server_rx, 1011, "");
    assert!(next_rec(&server_rx).event.is_terminal());
}

#[test]
fn panic_in_on_open_sends_1011_and_reports_listener_panicked() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let inner = Listener::new().on_open(|_, _| panic!("boom in on_open"));
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);
    ws.send("never delivered back");

    expect_open(&rx);
    let (error, _, _) = expect_failure(&rx);
    match error {
        Error::ListenerPanicked(msg) => assert!(msg.contains("boom in on_open"), "{msg}"),
        e => panic!("expected ListenerPanicked, got {e:?}"),
    }
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);

    expect_open(&server_rx);
    // The message queued before the handshake may or may not beat the failure's close frame.
    let mut rec = next_rec(&server_rx);
    if let Event::Message(m) = &rec.event {
        assert_eq!(m, &Message::Text("never delivered back".into()));
        rec = next_rec(&server_rx);
    }
    match rec.event {
        Event::Closing { code, .. } => assert_eq!(code, 1011),
        e => panic!("expected Closing(1011), got {e:?}"),
    }
    assert!(next_rec(&server_rx).event.is_terminal());
}

#[test]
fn panic_in_the_terminal_callback_is_swallowed() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), server_closing_on_open);
    let inner = Listener::new().on_closed(|_, _, _| panic!("boom in on_closed"));
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);

    expect_open(&rx);
    expect_closing(&rx, 4000, "server bye");
    expect_closed(&rx, 4000, "server bye");
    // No on_failure follows the panicking on_closed; the socket still finishes cleanly.
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
    assert_ended(&rx);

    expect_open(&server_rx);
    expect_closing(&server_rx, 4000, "");
    expect_closed(&server_rx, 4000, "");
}

// ---------------------------------------------------------------------------------------------
// 8. Threads exit and descriptors are released
// ---------------------------------------------------------------------------------------------

// Linux only: it reads the OS's threads or descriptors from /proc.
#[cfg(target_os = "linux")]
#[test]
fn both_threads_of_both_sockets_exit_when_the_socket_ends() {
    let _lock = serial();
    let (tid_tx, tid_rx) = unbounded();
    let server_tid_tx = tid_tx.clone();
    // No pooling (keep-alive zero), and a stack size of its own so no idle pooled thread of
    // another test serves these sockets.
    let unpooled = Server::builder()
        .thread_keep_alive(Duration::ZERO)
        .thread_stack_size(320 * 1024);
    let (server, server_rx) = recording_server(unpooled, move || {
        let tx = server_tid_tx.clone();
        echo().on_open(move |_, _| {
            let _ = tx.send(("server", os_tid()));
        })
    });
    let before = socket_threads();

    let inner = Listener::new().on_open(move |_, _| {
        let _ = tid_tx.send(("client", os_tid()));
    });
    let (listener, rx) = recording(inner);
    let client = Client::builder()
        .thread_keep_alive(Duration::ZERO)
        .thread_stack_size(320 * 1024)
        .build();
    let ws = client.new_web_socket(request(&server), listener);
    expect_open(&rx);
    expect_open(&server_rx);
    let mut readers = HashSet::new();
    for _ in 0..2 {
        let (_, tid) = tid_rx.recv_timeout(EVENT_TIMEOUT).expect("reader tid");
        assert_eq!(task_comm(tid).as_deref(), Some("syncws-reader"));
        readers.insert(tid);
    }
    assert_eq!(readers.len(), 2);

    let during: HashSet<u32> = socket_threads().difference(&before).copied().collect();
    let writers: Vec<u32> = during.difference(&readers).copied().collect();
    assert!(readers.is_subset(&during), "{readers:?} not in {during:?}");
    assert_eq!(
        writers.len(),
        2,
        "expected two writer threads, got {writers:?}"
    );
    for &w in &writers {
        // A new thread carries its parent's name until it has set its own.
        eventually(|| task_comm(w).as_deref() == Some("syncws-writer"));
        assert_eq!(task_comm(w).as_deref(), Some("syncws-writer"));
    }

    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    expect_closing(&server_rx, 1000, "");
    expect_closed(&server_rx, 1000, "");

    let gone = eventually(|| during.iter().all(|&t| !task_exists(t)));
    let left: Vec<(u32, Option<String>)> = during
        .iter()
        .filter(|&&t| task_exists(t))
        .map(|&t| (t, task_comm(t)))
        .collect();
    assert!(
        gone,
        "socket threads still alive after the socket ended: {left:?}"
    );
}

// Linux only: it reads the OS's threads or descriptors from /proc.
#[cfg(target_os = "linux")]
#[test]
fn twenty_sequential_sockets_leak_no_threads_or_descriptors() {
    let _lock = serial();
    // Unpooled, so every thread must be gone at the end (the pooled case is the next test).
    let (server, server_rx) = recording_server(
        Server::builder()
            .thread_keep_alive(Duration::ZERO)
            .thread_stack_size(352 * 1024),
        echo,
    );
    let client = Client::builder()
        .thread_keep_alive(Duration::ZERO)
        .thread_stack_size(352 * 1024)
        .build();
    // Parked threads of other tests' pools may be around; only new ones count.
    let others = socket_threads();
    let ours = || {
        socket_threads()
            .difference(&others)
            .copied()
            .collect::<Vec<u32>>()
    };
    let cycle = |i: usize| {
        let (listener, rx) = recording(Listener::new());
        let ws = client.new_web_socket(request(&server), listener);
        assert!(ws.send(format!("cycle {i}")));
        expect_open(&rx);
        let (m, _) = expect_message(&rx);
        assert_eq!(m, Message::Text(format!("cycle {i}")));
        assert!(matches!(ws.close(1000, None), Ok(true)));
        expect_closing(&rx, 1000, "");
        expect_closed(&rx, 1000, "");
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        assert_ended(&rx);
        expect_open(&server_rx);
        expect_message(&server_rx);
        expect_closing(&server_rx, 1000, "");
        expect_closed(&server_rx, 1000, "");
    };
    // Warm up once so lazily created process resources are not counted as leaks.
    cycle(0);
    assert!(
        eventually(|| ours().is_empty()),
        "threads of the warm-up socket did not exit"
    );
    let fds_before = fd_count();

    for i in 1..=20 {
        cycle(i);
    }

    assert!(
        eventually(|| ours().is_empty()),
        "socket threads left: {:?}",
        ours()
            .into_iter()
            .map(|t| (t, task_comm(t)))
            .collect::<Vec<_>>()
    );
    assert!(
        eventually(|| fd_count() <= fds_before),
        "descriptors: {fds_before} before, {} after 20 sockets",
        fd_count()
    );
}

// Linux only: it reads the OS's threads or descriptors from /proc.
#[cfg(target_os = "linux")]
#[test]
fn pooled_socket_threads_serve_later_sockets() {
    let _lock = serial();
    let stack = 384 * 1024; // a pool of this test's own
    let (server, server_rx) = recording_server(
        Server::builder()
            .thread_keep_alive(Duration::from_secs(30))
            .thread_stack_size(stack),
        echo,
    );
    let client = Client::builder()
        .thread_keep_alive(Duration::from_secs(30))
        .thread_stack_size(stack)
        .build();
    let mut readers = HashSet::new();
    for i in 0..10 {
        let (tid_tx, tid_rx) = unbounded();
        let inner = Listener::new().on_open(move |_, _| {
            let _ = tid_tx.send(os_tid());
        });
        let (listener, rx) = recording(inner);
        let ws = client.new_web_socket(request(&server), listener);
        assert!(ws.send(format!("cycle {i}")));
        expect_open(&rx);
        let tid = tid_rx.recv_timeout(EVENT_TIMEOUT).expect("reader tid");
        assert_eq!(task_comm(tid).as_deref(), Some("syncws-reader"));
        readers.insert(tid);
        expect_message(&rx);
        assert!(matches!(ws.close(1000, None), Ok(true)));
        expect_closing(&rx, 1000, "");
        expect_closed(&rx, 1000, "");
        assert!(ws.wait_finished(EVENT_TIMEOUT));
        expect_open(&server_rx);
        expect_message(&server_rx);
        expect_closing(&server_rx, 1000, "");
        expect_closed(&server_rx, 1000, "");
    }
    // Without the pool every socket would have had a reader of its own; with it, a finished
    // socket's reader (back in the pool before the next connect, or nearly) serves the next.
    assert!(
        readers.len() <= 3,
        "10 sockets used {} distinct reader threads",
        readers.len()
    );
    // Pooled threads are parked, not leaked: they are still named for their role.
    for &t in &readers {
        if task_exists(t) {
            assert_eq!(task_comm(t).as_deref(), Some("syncws-reader"));
        }
    }
}

// Linux only: it reads the OS's threads or descriptors from /proc.
#[cfg(target_os = "linux")]
#[test]
fn each_socket_holds_one_descriptor() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let port = server.local_addr().port();
    let before = fd_count();
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    assert!(ws.send("hello"));
    expect_open(&rx);
    expect_message(&rx);
    expect_open(&server_rx);
    expect_message(&server_rx);
    // Both ends of the connection live in this process: one descriptor each, shared by the
    // reader, the writer and the handle's cancel.
    assert_eq!(common::connection_fds_on_port(port), 2);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    expect_closing(&server_rx, 1000, "");
    expect_closed(&server_rx, 1000, "");
    assert!(eventually(|| fd_count() <= before));
}

/// Context switches of a thread so far (it sleeps or is woken: each wake-up is one).
#[cfg(target_os = "linux")]
fn voluntary_switches(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

// Linux only: it reads the OS's threads from /proc, and it is about the inline writes, which
// only Linux has (`driver/platform/sockets.rs`; `--cfg syncws_portable_sockets` takes them away).
#[cfg(all(target_os = "linux", not(syncws_portable_sockets)))]
#[test]
fn request_response_does_not_wake_the_writer_threads() {
    // With the writers parked, the client's `send` and the server's echo from its callback
    // are written inline by the sending thread: the two writer threads sleep through twenty
    // round trips instead of being woken for each message.
    let _lock = serial();
    let stack = 416 * 1024; // fresh threads, so the ones found below are this test's
    let before = socket_threads();
    let (server, server_rx) = recording_server(Server::builder().thread_stack_size(stack), echo);
    let client = Client::builder().thread_stack_size(stack).build();
    let (listener, rx) = recording(Listener::new());
    let ws = client.new_web_socket(request(&server), listener);
    assert!(ws.send("warm-up"));
    expect_open(&rx);
    expect_message(&rx);
    expect_open(&server_rx);
    expect_message(&server_rx);
    let writers: Vec<u32> = socket_threads()
        .difference(&before)
        .copied()
        .filter(|&t| task_comm(t).as_deref() == Some("syncws-writer"))
        .collect();
    assert_eq!(writers.len(), 2, "{writers:?}");
    let switches = || writers.iter().map(|&t| voluntary_switches(t)).sum::<u64>();
    let start = switches();
    for i in 0..20 {
        assert!(ws.send(format!("round {i}")));
        let (m, _) = expect_message(&rx);
        assert_eq!(m, Message::Text(format!("round {i}")));
        expect_message(&server_rx);
    }
    let woken = switches() - start;
    assert!(
        woken <= 4,
        "the writer threads were woken {woken} times for 20 round trips"
    );
    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
}

// ---------------------------------------------------------------------------------------------
// 9. cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_of_an_idle_open_socket_fails_it_promptly() {
    let _lock = serial();
    let (server, server_rx) = recording_server(Server::builder(), echo);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    expect_open(&rx);
    expect_open(&server_rx);
    // The reader is now blocked in read with nothing to come.
    ws.cancel();

    let (error, response, rec) = expect_failure(&rx);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(response.is_none());
    assert_eq!(rec.state, State::Canceled);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    ws.cancel(); // a second cancel is a no-op
    assert!(!ws.send("after cancel"));
    assert!(matches!(ws.close(1000, None), Ok(false)));
    assert_ended(&rx);

    // The server's socket learns that the connection is gone.
    let (_, _, _) = expect_failure(&server_rx);
}

#[test]
fn state_is_canceled_once_cancel_returns() {
    let _lock = serial();
    let (server, _server_rx) = recording_server(Server::builder(), echo);
    let (state_tx, state_rx) = unbounded();
    // Canceling from a callback keeps the reader busy, so nothing else can move the state.
    let inner = Listener::new()
        .on_open(|ws, _| {
            ws.send("go");
        })
        .on_message(move |ws, _| {
            ws.cancel();
            let _ = state_tx.send((ws.state(), ws.send("after cancel")));
        });
    let (listener, rx) = recording(inner);
    let ws = Client::new().new_web_socket(request(&server), listener);
    expect_open(&rx);
    expect_message(&rx);
    let (error, _, _) = expect_failure(&rx);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let (state, sent) = state_rx.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert!(!sent, "send after cancel must be refused");
    assert_eq!(
        state,
        State::Canceled,
        "State::Canceled means 'the socket failed or was canceled'"
    );
}

#[test]
fn cancel_while_connecting_fails_with_canceled_and_never_opens() {
    let _lock = serial();
    let (server, _server_rx, gate) = gated_server(Listener::new);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    gate.wait_arrived();
    assert_eq!(ws.state(), State::Connecting);
    assert!(ws.send("queued"));
    ws.cancel();

    let (error, response, rec) = expect_failure(&rx);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(response.is_none());
    assert_eq!(rec.state, State::Canceled);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);
    gate.open();
}

// ---------------------------------------------------------------------------------------------
// 10, 11. state() and wait_finished
// ---------------------------------------------------------------------------------------------

#[test]
fn state_goes_connecting_open_closing_closed() {
    let _lock = serial();
    let (server, _server_rx, gate) = gated_server(Listener::new);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    gate.wait_arrived();
    assert_eq!(ws.state(), State::Connecting);
    gate.open();

    let (_, open) = expect_open(&rx);
    assert_eq!(open.state, State::Open);
    assert_eq!(ws.state(), State::Open);
    assert!(matches!(ws.close(1000, None), Ok(true)));
    // The close frame may be written by `close` itself (inline), and the whole close
    // handshake over loopback can finish before the next line runs.
    assert!(
        matches!(ws.state(), State::Closing | State::Closed),
        "{:?}",
        ws.state()
    );
    assert_eq!(expect_closing(&rx, 1000, "").state, State::Closing);
    assert_eq!(expect_closed(&rx, 1000, "").state, State::Closed);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Closed);
    assert_ended(&rx);
}

#[test]
fn wait_finished_times_out_while_open_and_returns_true_after_close() {
    let _lock = serial();
    let (server, _server_rx) = recording_server(Server::builder(), echo);
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);
    expect_open(&rx);

    assert!(!ws.wait_finished(Duration::from_millis(300)));
    assert_eq!(ws.state(), State::Open);
    assert!(rx.try_recv().is_err(), "nothing happened while waiting");

    assert!(matches!(ws.close(1000, None), Ok(true)));
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    // Finished means the terminal callback has already run.
    let events: Vec<Event> = rx.try_iter().map(|r| r.event).collect();
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::Closing { code: 1000, .. },
                Event::Ended(syncws::Ended::Closed { code: 1000, .. })
            ]
        ),
        "{events:?}"
    );
    assert!(ws.wait_finished(Duration::ZERO), "stays finished");
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 12. Keepalive
// ---------------------------------------------------------------------------------------------

#[test]
fn pings_are_answered_both_ways_and_keep_the_socket_open() {
    let _lock = serial();
    let interval = Duration::from_millis(50);
    let pong_timeout = Duration::from_millis(500);
    let (server, server_rx) = recording_server(
        Server::builder()
            .ping_interval(interval)
            .pong_timeout(pong_timeout),
        echo,
    );
    let client = Client::builder()
        .ping_interval(interval)
        .pong_timeout(pong_timeout)
        .build();
    let (listener, rx) = recording(Listener::new());
    let ws = client.new_web_socket(request(&server), listener);
    expect_open(&rx);
    expect_open(&server_rx);

    // Unanswered pings would fail either side with PongTimeout within this window.
    std::thread::sleep(pong_timeout * 4);
    if let Ok(r) = rx.try_recv() {
        panic!("client event while idle: {:?}", r.event);
    }
    if let Ok(r) = server_rx.try_recv() {
        panic!("server event while idle: {:?}", r.event);
    }
    assert_eq!(ws.state(), State::Open);

    assert!(ws.send("still alive"));
    let (m, _) = expect_message(&rx);
    assert_eq!(m, Message::Text("still alive".into()));
    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 13. Subprotocols and rejection
// ---------------------------------------------------------------------------------------------

#[test]
fn server_role_negotiates_the_subprotocol() {
    let _lock = serial();
    let (tx, server_rx) = unbounded();
    let server = Server::bind("127.0.0.1:0", move |req: &Request| {
        assert_eq!(req.subprotocols(), ["chat.v1", "chat.v2"]);
        Accept::upgrade_with(
            "chat.v2",
            Recording {
                inner: Listener::new(),
                tx: tx.clone(),
            },
        )
    })
    .unwrap();
    let request = Request::builder(&server.url())
        .subprotocol("chat.v1")
        .subprotocol("chat.v2")
        .build()
        .unwrap();
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request, listener);

    let (response, _) = expect_open(&rx);
    assert_eq!(response.status(), 101);
    assert_eq!(response.subprotocol(), Some("chat.v2"));
    let (server_response, _) = expect_open(&server_rx);
    assert_eq!(server_response.subprotocol(), Some("chat.v2"));

    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_ended(&rx);
}

#[test]
fn server_reject_reports_handshake_rejected_with_the_response() {
    let _lock = serial();
    let server = Server::bind("127.0.0.1:0", |_req: &Request| {
        Accept::reject(403, "Forbidden")
    })
    .unwrap();
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request(&server), listener);

    let (error, response, rec) = expect_failure(&rx);
    assert!(
        matches!(error, Error::HandshakeRejected { .. }),
        "{error:?}"
    );
    let response = response.expect("the 403 response");
    assert_eq!(response.status(), 403);
    assert_eq!(response.reason(), "Forbidden");
    assert_eq!(rec.state, State::Canceled);
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);
}

// ---------------------------------------------------------------------------------------------
// 14. The server's view of the request
// ---------------------------------------------------------------------------------------------

#[test]
fn server_socket_sees_the_clients_path_query_and_headers() {
    let _lock = serial();
    let (seen_tx, seen_rx) = unbounded();
    let (tx, server_rx) = unbounded();
    let server = Server::bind("127.0.0.1:0", move |req: &Request| {
        let _ = seen_tx.send((
            "handler",
            req.url().path().to_owned(),
            req.url().query().map(str::to_owned),
            req.header("x-token").map(str::to_owned),
        ));
        let seen = seen_tx.clone();
        Accept::upgrade(Recording {
            inner: Listener::new().on_open(move |ws, _| {
                let r = ws.request();
                let _ = seen.send((
                    "socket",
                    r.url().path().to_owned(),
                    r.url().query().map(str::to_owned),
                    r.header("X-Token").map(str::to_owned),
                ));
            }),
            tx: tx.clone(),
        })
    })
    .unwrap();
    let request = Request::builder(&format!("{}chat/room?id=7", server.url()))
        .header("X-Token", "abc123")
        .build()
        .unwrap();
    let (listener, rx) = recording(Listener::new());
    let ws = Client::new().new_web_socket(request, listener);
    expect_open(&rx);
    expect_open(&server_rx);

    for who in ["handler", "socket"] {
        let (w, path, query, token) = seen_rx.recv_timeout(EVENT_TIMEOUT).expect(who);
        assert_eq!(w, who);
        assert_eq!(path, "/chat/room", "{who}");
        assert_eq!(query.as_deref(), Some("id=7"), "{who}");
        assert_eq!(token.as_deref(), Some("abc123"), "{who}");
    }

    assert!(matches!(ws.close(1000, None), Ok(true)));
    expect_closing(&rx, 1000, "");
    expect_closed(&rx, 1000, "");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    expect_closing(&server_rx, 1000, "");
    expect_closed(&server_rx, 1000, "");
}

// ---------------------------------------------------------------------------------------------
// OkHttp regressions: sockets that never connect
// ---------------------------------------------------------------------------------------------

#[test]
fn send_and_close_before_a_failed_connect_do_not_crash() {
    // OkHttp's closeWithoutSuccessfulConnect: the port has no listener.
    let _lock = serial();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (listener, rx) = recording(Listener::new());
    let url = format!("ws://127.0.0.1:{port}/");
    let ws = Client::new().new_web_socket(Request::builder(&url).build().unwrap(), listener);
    let sent = ws.send("queued while connecting");
    let closed = ws.close(1000, None);
    // A refused connect can fail the socket before `send` runs (the pooled reader is quick):
    // then both are refused instead of queued, and neither panics.
    if !sent {
        assert_eq!(ws.state(), State::Canceled);
    }
    assert!(matches!(closed, Ok(true)) || ws.state() == State::Canceled);
    let (error, response, _) = expect_failure(&rx);
    assert!(matches!(error, Error::Io(_)), "{error:?}");
    assert!(response.is_none());
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    assert!(!ws.send("after the failure"));
    assert_eq!(ws.state(), State::Canceled);
    assert_ended(&rx);
}

#[test]
fn reconnecting_from_on_failure_to_a_rejecting_server_twenty_times() {
    // OkHttp's reconnectingToNonWebSocket: each failure opens the next socket from inside
    // on_failure; all twenty fail cleanly and the last one reports back.
    let _lock = serial();
    let server = Server::builder()
        .bind("127.0.0.1:0", |_req: &Request| {
            Accept::reject(401, "Unauthorized")
        })
        .unwrap();
    let (done_tx, done_rx) = unbounded::<(usize, u16)>();
    fn connect(client: Client, url: String, attempt: usize, done: Sender<(usize, u16)>) {
        let request = Request::builder(&url).build().unwrap();
        let again = (client.clone(), url.clone(), done.clone());
        client.new_web_socket(
            request,
            Listener::new().on_failure(move |_ws, error, response| {
                assert!(
                    matches!(error, Error::HandshakeRejected { .. }),
                    "{error:?}"
                );
                let status = response.map(|r| r.status()).unwrap_or(0);
                if attempt == 20 {
                    let _ = done.send((attempt, status));
                } else {
                    let (client, url, done) = again.clone();
                    connect(client, url, attempt + 1, done);
                }
            }),
        );
    }
    connect(Client::new(), server.url(), 1, done_tx);
    assert_eq!(done_rx.recv_timeout(EVENT_TIMEOUT * 2), Ok((20, 401)));
}

#[test]
fn a_flood_of_empty_messages_is_bounded_too() {
    // queue_size counts payload bytes (as OkHttp does), so empty messages never raise it; the
    // queue still stops at one message per 64 bytes of max_queue_size (at least 1024).
    let _lock = serial();
    // A server that accepts TCP and never answers keeps the socket in Connecting, so nothing
    // is written and everything stays queued.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", silent.local_addr().unwrap());
    let client = Client::builder().max_queue_size(128 * 1024).build();
    let (listener, rx) = recording(Listener::new());
    let ws = client.new_web_socket(Request::builder(&url).build().unwrap(), listener);
    let accepted = (0..5000).take_while(|_| ws.send("")).count();
    assert_eq!(accepted, 2048, "128 KiB / 64");
    assert_eq!(ws.queue_size(), 0);
    assert!(!ws.send("more"), "refused once the close has started");
    ws.cancel();
    let (error, _, _) = expect_failure(&rx);
    assert!(matches!(error, Error::Canceled), "{error:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    drop(silent);
}
