//! Connects, sends a text and a binary message, prints every callback, closes with 1000.
//!
//! `cargo run --example quickstart` uses an embedded echo server;
//! `cargo run --example quickstart -- wss://example.org/socket` talks to that URL instead.

use std::process::ExitCode;
use std::time::Duration;

use syncws::{Client, EchoServer, Listener, Message, Request};

fn main() -> ExitCode {
    env_logger::init();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, syncws::Error> {
    // Keep the server alive until the end of `run`.
    let (url, _server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let server = EchoServer::start()?;
            println!("started embedded echo server at {}", server.url());
            (server.url(), Some(server))
        }
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded::<bool>(1);
    let failed_tx = done_tx.clone();
    let mut received = 0;
    let listener = Listener::new()
        .on_open(|_ws, response| {
            println!("on_open: {} {}", response.status(), response.reason());
        })
        .on_message(move |ws, message| {
            match &message {
                Message::Text(t) => println!("on_message: text {t:?}"),
                Message::Binary(b) => println!("on_message: binary {b:?}"),
            }
            received += 1;
            if received == 2 {
                let _ = ws.close(1000, Some("bye"));
            }
        })
        .on_closing(|_ws, code, reason| println!("on_closing: {code} {reason:?}"))
        .on_closed(move |_ws, code, reason| {
            println!("on_closed: {code} {reason:?}");
            let _ = done_tx.send(true);
        })
        .on_failure(move |_ws, error, response| {
            println!(
                "on_failure: {error} (response: {:?})",
                response.map(|r| r.status())
            );
            let _ = failed_tx.send(false);
        });
    let request = Request::builder(&url).build()?;
    let ws = Client::new().new_web_socket(request, listener);
    ws.send("Hello, syncws!");
    ws.send(vec![0xde_u8, 0xad, 0xbe, 0xef]);
    let ok = done_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or(false);
    ws.wait_finished(Duration::from_secs(5));
    Ok(ok)
}
