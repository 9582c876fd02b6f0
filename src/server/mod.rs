//! The server role: accept upgrades, one reader and one writer thread per connection.
//!
//! - [`ServerBuilder`] (`builder.rs`): the settings, checked when it binds;
//! - [`Server`] (`running.rs`): the running server, whose engine (the accept loop, admission,
//!   each connection's upgrade, stopping) is the driver's (`driver/serve/`);
//! - [`Accept`] (`accept.rs`): a handler's answer to an upgrade request;
//! - [`EchoServer`] (`echo.rs`): an echo server for examples and tests.

mod accept;
mod builder;
mod echo;
mod running;

pub use accept::Accept;
pub use builder::ServerBuilder;
pub use echo::EchoServer;
pub use running::Server;
