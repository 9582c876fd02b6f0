//! The Autobahn|Testsuite server testee: an echo server on the given port (default 9002).
//!
//! `cargo run --release --example autobahn_server -- 9002`

use syncws::{Accept, Listener, Server};

fn main() -> Result<(), syncws::Error> {
    env_logger::init();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9002);
    let server = Server::builder().max_message_size(64 * 1024 * 1024).bind(
        ("127.0.0.1", port),
        |_request| {
            Accept::upgrade(Listener::new().on_message(|ws, message| {
                ws.send(message);
            }))
        },
    )?;
    println!("autobahn_server listening on {}", server.url());
    loop {
        std::thread::park();
    }
}
