//! The server role: accept upgrades, one reader and one writer thread per connection.
//!
//! - [`Server`] and [`ServerBuilder`] (`bind.rs`): the settings and the running server, whose
//!   engine (the accept loop, admission, stopping) is the driver's (`driver/serve.rs`);
//! - [`Accept`] (`accept.rs`): a handler's answer to an upgrade request;
//! - [`EchoServer`] (`echo.rs`): an echo server for examples and tests.

mod accept;
mod bind;
mod echo;

pub use accept::Accept;
pub use bind::{Server, ServerBuilder};
pub use echo::EchoServer;
