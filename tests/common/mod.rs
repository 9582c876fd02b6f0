//! Test support shared by the integration tests: event recording, raw peers, and throwaway TLS
//! certificates with clients and servers for whichever TLS backend the build has.
#![allow(dead_code)]

pub mod certs;
#[cfg(any(feature = "native-tls", feature = "rustls"))]
pub mod echo;
pub mod process;
pub mod raw;
// Not every test file uses it.
#[cfg(target_os = "linux")]
#[allow(unused_imports)]
pub use process::connection_fds_on_port;
#[cfg(any(feature = "native-tls", feature = "rustls"))]
pub mod tls;
// Not every test file uses TLS.
#[cfg(any(feature = "native-tls", feature = "rustls"))]
#[allow(unused_imports)]
pub use tls::*;

use std::net::TcpStream;
use std::time::Duration;

use syncws::Event;

/// How long a test waits for one event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the next event or panics with a clear message after `EVENT_TIMEOUT`.
pub fn next(events: &syncws::Events) -> Event {
    events
        .recv_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|_| panic!("no event within {EVENT_TIMEOUT:?}"))
}

/// Polls `cond` until it holds or `EVENT_TIMEOUT` passes: for effects with no event to wait
/// on, such as a thread exiting or the kernel closing a descriptor.
pub fn eventually(cond: impl FnMut() -> bool) -> bool {
    eventually_within(EVENT_TIMEOUT, cond)
}

/// [`eventually`] with another bound.
pub fn eventually_within(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that no further event arrives (the channel disconnects once the socket is gone).
pub fn assert_exhausted(events: &syncws::Events) {
    match events.recv_timeout(Duration::from_millis(200)) {
        Err(_) => {}
        Ok(e) => panic!("unexpected extra event {e:?}"),
    }
}

/// Opens a connection that never sends its request, waits until `server` counts it as its
/// one handshake in progress, then opens a second that takes its place (the test's server
/// allows one): returns both once the first has been answered 503 and shut down.
pub fn evict_a_silent_handshake(server: &syncws::Server) -> (TcpStream, TcpStream) {
    let silent = TcpStream::connect(server.local_addr()).expect("connect");
    assert!(
        eventually(|| server.stats().handshaking == 1),
        "{:?}",
        server.stats()
    );
    let second = TcpStream::connect(server.local_addr()).expect("connect");
    let answer = raw::read_answer(&silent);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    (silent, second)
}
