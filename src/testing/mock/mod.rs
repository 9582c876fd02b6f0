//! The scriptable mock server: `script` is what to answer (plain data), `conn` plays it on
//! one connection, `server` accepts, `shared` is what their threads share (the queue, the
//! record, the failures), `record` is what was received.

mod conn;
mod record;
mod script;
mod server;
mod shared;

pub use record::{MockFrame, MockRequest};
pub use script::{DEFAULT_STEP_TIMEOUT, MockResponse};
pub use server::MockServer;
