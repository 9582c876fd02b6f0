//! `cancel()` is final, exactly; a socket always finishes; `Server::stop` is bounded.
//!
//! - Once `cancel()` has returned, no callback but the terminal one is entered (counted
//!   exactly: the listener's non-terminal callbacks against how many the socket had entered
//!   when `cancel()` returned, `testing::callbacks_entered_at_cancel`), and the
//!   terminal one is `on_failure(Canceled)` unless the socket had already ended (then
//!   `state()` says `Closed` and the terminal callback is `on_closed`): stressed 10,000 times
//!   against an opening socket and 10,000 times against a clean close.
//! - After a clean `on_closed`, `queue_size()` is 0 even when the peer ended TCP while our
//!   answer to its close was still queued.
//! - A listener whose `Drop` panics still lets `wait_finished` and `Server::stop` return.
//! - `Server::stop` waits for the sockets it canceled on one deadline, not a second each.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::raw::*;
use common::*;
use syncws::{Accept, Client, EchoServer, Error, Listener, Request, Server, State, WebSocket};

const ITERATIONS: usize = 10_000;

/// What one socket's listener saw.
#[derive(Default)]
struct Seen {
    /// Every callback other than the terminal one, in the order entered.
    entered: Vec<&'static str>,
    /// The terminal callbacks, in order (there must be exactly one).
    terminal: Vec<Terminal>,
    opened: bool,
}

#[derive(Debug, PartialEq)]
enum Terminal {
    Closed,
    Canceled,
    Failed(String),
}

/// A listener that records every callback it enters.
///
/// Whether a callback was entered after `cancel()` returned is not decided here, by a "did
/// cancel return?" flag read at the top of the callback: a callback the socket entered just
/// before `cancel()` returned reads that flag after it if its thread is preempted in
/// between (a loaded CI machine does that about once in 10,000). The socket's own count of
/// callbacks entered when `cancel()` returned is the line instead.
fn recording(seen: &Arc<Mutex<Seen>>) -> Listener {
    let entry = |name: &'static str| {
        let s = seen.clone();
        move || s.lock().unwrap().entered.push(name)
    };
    let (open, message, closing) = (entry("on_open"), entry("on_message"), entry("on_closing"));
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    Listener::new()
        .on_open(move |_, _| {
            open();
            s1.lock().unwrap().opened = true;
        })
        .on_message(move |_, _| message())
        .on_closing(move |_, _, _| closing())
        .on_closed(move |_, _, _| s2.lock().unwrap().terminal.push(Terminal::Closed))
        .on_failure(move |_, e, _| {
            s3.lock().unwrap().terminal.push(match e {
                Error::Canceled => Terminal::Canceled,
                e => Terminal::Failed(e.to_string()),
            })
        })
}

/// Spins for about `ns` nanoseconds: a delay finer than the scheduler's, to land the cancel
/// anywhere in the race window.
fn spin_for(ns: u64) {
    let until = Instant::now() + Duration::from_nanos(ns);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A cheap deterministic sequence of delays (xorshift), so a failure replays.
struct Delays(u64);

impl Delays {
    fn next(&mut self, max_ns: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max_ns.max(1)
    }
}

/// Counts what broke the rule in one socket's life; `state` is `state()` read right after
/// `cancel()` returned, `at_cancel` how many callbacks the socket had entered then.
fn violations(seen: &Seen, state: State, at_cancel: Option<u64>) -> Vec<String> {
    let mut v = Vec::new();
    match at_cancel {
        Some(n) => {
            let n = usize::try_from(n).unwrap();
            if seen.entered.len() > n {
                v.push(format!(
                    "entered after cancel returned: {:?} (entered before: {:?})",
                    &seen.entered[n..],
                    &seen.entered[..n]
                ));
            }
        }
        // Cancel found the socket already ended: it must say so, and the socket's own end
        // stands.
        None if !matches!(state, State::Closed | State::Canceled) => {
            v.push(format!(
                "cancel recorded nothing, yet the state is {state:?}"
            ));
        }
        None => {}
    }
    match seen.terminal.as_slice() {
        [Terminal::Closed] if state != State::Closed => {
            v.push(format!("on_closed after cancel left the state {state:?}"));
        }
        [Terminal::Canceled] if state == State::Closed => {
            v.push("on_failure(Canceled) for a socket cancel found Closed".into());
        }
        [Terminal::Closed | Terminal::Canceled] => {}
        other => v.push(format!("terminal callbacks {other:?}")),
    }
    v
}

/// Runs `ITERATIONS` sockets, each canceled after a delay drawn up to the median time its
/// race target takes, and reports every violation.
fn stress(
    what: &str,
    mut start: impl FnMut(Listener) -> WebSocket,
    // How long the race target takes, measured on a first socket.
    window: Duration,
) {
    let mut delays = Delays(0x9E37_79B9_7F4A_7C15);
    let mut found = Vec::new();
    let (mut opened, mut closed) = (0, 0);
    // Delays are drawn up to twice the race target's time, and the range follows how the
    // race goes (a loaded machine opens slower): it is kept where about half the sockets
    // open before the cancel, so both sides of the race are run.
    let mut max_ns = (window.as_nanos() as u64).max(1000) * 2;
    let mut opened_before = 0;
    for i in 0..ITERATIONS {
        if i > 0 && i % 500 == 0 {
            let share = (opened - opened_before) as f64 / 500.0;
            if share < 0.25 {
                max_ns = max_ns.saturating_mul(2);
            } else if share > 0.75 {
                max_ns = (max_ns / 2).max(1000);
            }
            opened_before = opened;
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let ws = start(recording(&seen));
        spin_for(delays.next(max_ns));
        ws.cancel();
        let state = ws.state();
        assert!(
            ws.wait_finished(EVENT_TIMEOUT),
            "{what} #{i} did not finish"
        );
        let seen = seen.lock().unwrap();
        opened += usize::from(seen.opened);
        closed += usize::from(seen.terminal == [Terminal::Closed]);
        let at_cancel = syncws::testing::callbacks_entered_at_cancel(&ws);
        for v in violations(&seen, state, at_cancel) {
            found.push(format!("#{i}: {v}"));
        }
    }
    eprintln!("{what}: {ITERATIONS} sockets, {opened} opened, {closed} closed cleanly");
    assert!(
        found.is_empty(),
        "{what}: {} violations: {:?}",
        found.len(),
        &found[..found.len().min(10)]
    );
    // The race really was run on both sides of the line, or the test proves nothing.
    assert!(opened > 0 && opened < ITERATIONS, "{what}: {opened} opened");
}

/// How long `f` takes, median of a few runs.
fn median_time(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn no_callback_is_entered_after_cancel_returns_while_the_socket_opens() {
    let server = EchoServer::start().unwrap();
    let client = Client::new();
    let request = Request::builder(&server.url()).build().unwrap();
    // How long an open takes (to on_open), not counting the teardown after it.
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let t = Instant::now();
            let ws = client.new_web_socket(
                request.clone(),
                Listener::new().on_open(move |_, _| {
                    let _ = tx.send(Instant::now());
                }),
            );
            let opened = rx.recv_timeout(EVENT_TIMEOUT).unwrap();
            ws.cancel();
            ws.wait_finished(EVENT_TIMEOUT);
            opened.duration_since(t)
        })
        .collect();
    times.sort();
    let open_time = times[times.len() / 2];
    stress(
        "cancel racing open",
        |listener| {
            let ws = client.new_web_socket(request.clone(), listener);
            // Something to echo, so on_message races the cancel too.
            ws.send("x");
            ws
        },
        open_time,
    );
}

#[test]
fn a_cancel_racing_a_clean_close_decides_the_terminal_callback_exactly() {
    // The server closes at once; the client answers and the server ends TCP.
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::upgrade(Listener::new().on_open(|ws, _| {
            let _ = ws.close(1000, Some("bye"));
        }))
    })
    .unwrap();
    let client = Client::new();
    let request = Request::builder(&server.url()).build().unwrap();
    let life = median_time(|| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ws = client.new_web_socket(
            request.clone(),
            Listener::new().on_closed(move |_, _, _| {
                let _ = tx.send(());
            }),
        );
        rx.recv_timeout(EVENT_TIMEOUT).unwrap();
        ws.wait_finished(EVENT_TIMEOUT);
    });
    stress(
        "cancel racing a clean close",
        |listener| client.new_web_socket(request.clone(), listener),
        life,
    );
}

#[test]
fn queue_size_is_zero_after_a_clean_close_when_the_peer_ends_tcp_before_our_answer() {
    let (ready, wait_ready) = crossbeam_channel::bounded::<()>(1);
    let (url, peer) = raw_server(move |mut s| {
        // The client has queued more than the connection holds; without reading any of it,
        // close and end TCP.
        wait_ready.recv_timeout(EVENT_TIMEOUT).unwrap();
        s.write_all(&frame(0x88, &close_payload(1000, b"done")))
            .unwrap();
        s.flush().unwrap();
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let (listener, events) = syncws::channel();
    let ws = Client::new().new_web_socket(Request::builder(&url).build().unwrap(), listener);
    assert!(matches!(next(&events), syncws::Event::Open(_)));
    for _ in 0..16 {
        assert!(ws.send(vec![7u8; 1 << 20]));
    }
    ready.send(()).unwrap();
    peer.join().unwrap();
    let end = loop {
        match next(&events) {
            syncws::Event::Closing { .. } => {}
            e => break e,
        }
    };
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    match end {
        syncws::Event::Ended(syncws::Ended::Closed { code, .. }) => {
            assert_eq!(code, 1000);
            assert_eq!(ws.queue_size(), 0, "queue_size after a clean on_closed");
        }
        // The peer's reset can also cut the connection before its close frame is read:
        // that is a failure, not a clean close, and queue_size may then say what was lost.
        syncws::Event::Ended(syncws::Ended::Failed { error, .. }) => {
            assert!(matches!(error, Error::Io(_)), "{error:?}")
        }
        e => panic!("unexpected {e:?}"),
    }
}

/// A listener whose drop panics.
struct PanicsOnDrop;

impl syncws::WebSocketListener for PanicsOnDrop {}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the listener's drop panics");
    }
}

#[test]
fn a_listener_whose_drop_panics_still_lets_the_socket_finish() {
    let server = EchoServer::start().unwrap();
    let ws = Client::new().new_web_socket(
        Request::builder(&server.url()).build().unwrap(),
        PanicsOnDrop,
    );
    assert!(eventually(|| ws.state() == State::Open));
    ws.close(1000, None).unwrap();
    assert!(ws.wait_finished(EVENT_TIMEOUT), "wait_finished hung");
    assert_eq!(ws.state(), State::Closed);

    // The server role: stop returns although every socket's listener panics on drop.
    let server = Server::builder()
        .stop_timeout(Duration::from_secs(2))
        .bind("127.0.0.1:0", |_| Accept::upgrade(PanicsOnDrop))
        .unwrap();
    let (listener, events) = syncws::channel();
    let client_ws =
        Client::new().new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    assert!(matches!(next(&events), syncws::Event::Open(_)));
    let (done, stopped) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(EVENT_TIMEOUT)
        .expect("Server::stop hung on a panicking listener drop");
    assert!(client_ws.wait_finished(EVENT_TIMEOUT));
}

#[test]
fn stop_waits_for_canceled_sockets_on_one_deadline() {
    const STUCK: usize = 5;
    let (release, held) = crossbeam_channel::bounded::<()>(0);
    let stuck = Arc::new(AtomicUsize::new(0));
    let s2 = stuck.clone();
    let stop_timeout = Duration::from_millis(200);
    let server = Server::builder()
        .stop_timeout(stop_timeout)
        .bind("127.0.0.1:0", move |_| {
            let (held, stuck) = (held.clone(), s2.clone());
            // A callback that does not return until the test says so: its socket cannot
            // finish, canceled or not.
            Accept::upgrade(Listener::new().on_message(move |_, _| {
                stuck.fetch_add(1, Ordering::SeqCst);
                let _ = held.recv_timeout(EVENT_TIMEOUT * 3);
            }))
        })
        .unwrap();
    let client = Client::new();
    let sockets: Vec<WebSocket> = (0..STUCK)
        .map(|_| {
            let ws = client.new_web_socket(
                Request::builder(&server.url()).build().unwrap(),
                Listener::new(),
            );
            ws.send("hold");
            ws
        })
        .collect();
    assert!(eventually(|| stuck.load(Ordering::SeqCst) == STUCK));
    let t0 = Instant::now();
    server.stop();
    let took = t0.elapsed();
    drop(release);
    // The stop timeout, then one second for all the canceled sockets together. Waiting a
    // second for each in turn would take STUCK seconds more.
    assert!(
        took < stop_timeout + Duration::from_millis(2500),
        "stop took {took:?} for {STUCK} stuck sockets"
    );
    for ws in &sockets {
        ws.cancel();
        assert!(ws.wait_finished(EVENT_TIMEOUT));
    }
}
