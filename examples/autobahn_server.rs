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
    // Autobahn echoes messages of up to 16 MiB, past the server role's 1 MiB defaults; its
    // cases expect no frames but the echoes, so the server's default pings are off too.
    let server = Server::builder()
        .max_message_size(64 * 1024 * 1024)
        .max_queue_size(64 * 1024 * 1024)
        .ping_interval(std::time::Duration::ZERO)
        .bind(("127.0.0.1", port), |_request| {
            Accept::upgrade(Listener::new().on_message(|ws, message| {
                ws.send(message);
            }))
        })?;
    println!("autobahn_server listening on {}", server.url());
    loop {
        std::thread::park();
    }
}
