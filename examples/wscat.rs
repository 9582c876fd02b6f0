//! An interactive client: each stdin line is sent as a text message, every incoming message is
//! printed, end of input closes gracefully.
//!
//! `cargo run --example wscat` talks to an embedded echo server;
//! `cargo run --example wscat -- ws://host:port/path` to anything else.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use syncws::{Client, EchoServer, Listener, Message, Request};

fn main() -> ExitCode {
    env_logger::init();
    let (url, _server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => match EchoServer::start() {
            Ok(server) => {
                eprintln!(
                    "# no URL given: using the embedded echo server at {}",
                    server.url()
                );
                (server.url(), Some(server))
            }
            Err(e) => {
                eprintln!("error: could not start the echo server: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let request = match Request::builder(&url).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (result_tx, result_rx) = crossbeam_channel::bounded::<bool>(1);
    let failed = result_tx.clone();
    let listener = Listener::new()
        .on_open(|_, r| eprintln!("# connected ({} {})", r.status(), r.reason()))
        .on_message(|_, m| match m {
            Message::Text(t) => println!("< {t}"),
            Message::Binary(b) => println!("< binary {} bytes: {b:02x?}", b.len()),
        })
        .on_closing(|_, code, reason| eprintln!("# server closing: {code} {reason}"))
        .on_closed(move |_, code, reason| {
            eprintln!("# closed: {code} {reason}");
            let _ = result_tx.send(true);
        })
        .on_failure(move |_, e, _| {
            eprintln!("# failed: {e}");
            let _ = failed.send(false);
        });
    let ws = Client::new().new_web_socket(request, listener);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if !ws.send(line) {
            eprintln!("# not sent: the socket is closing or closed");
            break;
        }
    }
    let _ = ws.close(1000, None);
    let ok = result_rx
        .recv_timeout(Duration::from_secs(70))
        .unwrap_or(false);
    ws.wait_finished(Duration::from_secs(5));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
