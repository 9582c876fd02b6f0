//! The scriptable mock server: `response` builds what to answer and `script` is it as plain
//! data, `conn` plays it on one connection (`conn/wire.rs` its frames), `server` accepts,
//! `shared` is what their threads share (the queue, the record, the failures), `record` is what
//! was received, `tls` the certificates and configurations of a `wss` mock.

mod conn;
mod record;
mod response;
mod script;
mod server;
mod shared;
#[cfg(feature = "testing-tls")]
mod tls;

pub use record::{MockFrame, MockRequest};
pub use response::MockResponse;
pub use script::DEFAULT_STEP_TIMEOUT;
pub use server::MockServer;
