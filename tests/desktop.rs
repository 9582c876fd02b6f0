//! The desktop pattern: `channel_with_waker` wakes a GUI-style event loop after each event is
//! queued, on the socket's thread, and the loop handles the events on its own thread, without
//! polling: one wake per event, every event found when its wake arrives.

mod common;

use std::sync::mpsc;
use std::thread;

use common::*;
use syncws::{EchoServer, Event, Message, Request};

/// What the stand-in for a GUI loop saw.
struct Seen {
    events: Vec<String>,
    wakes: usize,
    /// Events found on a wake that had already been handled (the wake came late).
    empty_wakes: usize,
}

#[test]
fn each_event_wakes_the_loop_once_and_the_loop_handles_it_on_its_own_thread() {
    let server = EchoServer::start().unwrap();
    // The "event loop proxy": the socket's thread sends a wake-up, nothing else.
    let (wake_tx, wakes) = mpsc::channel::<thread::ThreadId>();
    let (listener, events) = syncws::channel_with_waker(move || {
        let _ = wake_tx.send(thread::current().id());
    });
    let ws = syncws::Client::new()
        .new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    for i in 0..5 {
        ws.send(format!("message {i}"));
    }
    let gui = thread::current().id();
    let mut seen = Seen {
        events: Vec::new(),
        wakes: 0,
        empty_wakes: 0,
    };
    // The GUI loop: it sleeps until woken, then drains what is there.
    'ui: loop {
        let waker_thread = wakes
            .recv_timeout(EVENT_TIMEOUT)
            .expect("woken within the timeout");
        assert_ne!(waker_thread, gui, "wake runs on the socket's thread");
        seen.wakes += 1;
        let before = seen.events.len();
        for event in events.try_iter() {
            match event {
                Event::Open(_) => seen.events.push("open".into()),
                Event::Message(Message::Text(t)) => {
                    seen.events.push(t);
                    if seen.events.len() == 6 {
                        let _ = ws.close(1000, None);
                    }
                }
                Event::Closing { code, .. } => seen.events.push(format!("closing {code}")),
                Event::Ended(how) => {
                    seen.events.push(format!("ended clean={}", how.is_clean()));
                    break 'ui;
                }
                other => panic!("{other:?}"),
            }
        }
        if seen.events.len() == before {
            seen.empty_wakes += 1;
        }
    }
    assert_eq!(
        seen.events,
        [
            "open",
            "message 0",
            "message 1",
            "message 2",
            "message 3",
            "message 4",
            "closing 1000",
            "ended clean=true"
        ]
    );
    // One wake per event: the loop may find several events on one wake (and then the later
    // wakes find nothing), but it never misses one.
    let remaining = wakes.try_iter().count();
    assert_eq!(
        seen.wakes + remaining,
        8,
        "{} wakes then {remaining}",
        seen.wakes
    );
    assert!(seen.empty_wakes <= seen.wakes);
}

#[test]
fn a_panicking_waker_fails_the_socket_like_any_callback() {
    let server = EchoServer::start().unwrap();
    let (listener, events) = syncws::channel_with_waker(|| panic!("the GUI is gone"));
    let _ws = syncws::Client::new()
        .new_web_socket(Request::builder(&server.url()).build().unwrap(), listener);
    // The open event was queued before the waker panicked.
    assert!(matches!(next(&events), Event::Open(_)));
    match next(&events) {
        Event::Ended(how) => assert!(
            matches!(how.error(), Some(syncws::Error::ListenerPanicked(m)) if m.contains("the GUI is gone")),
            "{how:?}"
        ),
        other => panic!("{other:?}"),
    }
}
