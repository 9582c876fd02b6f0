//! The test kit, for the tests of applications that use syncws (feature `testing`, meant for
//! `[dev-dependencies]`):
//!
//! - [`MockServer`]: a real server on 127.0.0.1 that answers each connection with the next
//!   scripted [`MockResponse`] (a refusal, or an upgrade and a script of steps), records what
//!   it received, and fails the test, in the test's thread, with a message that names the
//!   connection, the step, what it expected and what it got;
//! - [`FakeFactory`]: a [`WebSocketFactory`](crate::WebSocketFactory) whose sockets live in
//!   memory: the test sees every `send`, `close` and `cancel` the code under test made, and
//!   drives the listener itself, on its own thread.
//!
//! See `docs/testing.md` for recipes.

mod fake;
mod mock;

pub use fake::{FakeFactory, FakeSocket, Sent};
pub use mock::{DEFAULT_STEP_TIMEOUT, MockFrame, MockRequest, MockResponse, MockServer};

/// How many callbacks other than the terminal one `ws`'s listener had been entered into when
/// `cancel()` returned (`None` if `cancel()` has not run, or found the socket already ended).
/// Every non-terminal callback the listener sees beyond this count was entered after
/// `cancel()` returned, which must never happen. For syncws's own finality tests; not part of
/// the API.
#[doc(hidden)]
pub fn callbacks_entered_at_cancel(ws: &crate::WebSocket) -> Option<u64> {
    ws.socket.gate.entered_at_cancel()
}

/// How many broadcast compressors the calling thread keeps ([`Prepared`](crate::Prepared)
/// deflates a message once per compressor, and keeps each for the thread's life). For
/// syncws's own tests of that bound; not part of the API.
#[doc(hidden)]
pub fn prepared_compressors() -> usize {
    crate::prepared::compressors_on_this_thread()
}
