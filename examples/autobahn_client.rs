//! The Autobahn|Testsuite client testee (agent `syncws`), using only the public API.
//!
//! `cargo run --release --example autobahn_client -- ws://127.0.0.1:9001`
//! Asks the fuzzing server for the case count, runs every case echoing each message back
//! unchanged, then asks it to write the reports.

use std::process::ExitCode;
use std::time::Duration;

use syncws::{Client, Event, Listener, Message, Request};

const AGENT: &str = "syncws";
/// The slowest cases (9.x, 16 MiB messages in debug builds) stay well under this.
const CASE_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    env_logger::init();
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    match run(&base) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(base: &str) -> Result<(), String> {
    let client = Client::builder()
        .max_message_size(64 * 1024 * 1024)
        .close_timeout(Some(Duration::from_secs(10)))
        .build();
    let count: u32 = fetch_text(&client, &format!("{base}/getCaseCount"))?
        .trim()
        .parse()
        .map_err(|e| format!("bad case count: {e}"))?;
    println!("running {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        let request = Request::builder(&url).build().map_err(|e| e.to_string())?;
        let ws = client.new_web_socket(
            request,
            Listener::new().on_message(|ws, message: Message| {
                ws.send(message);
            }),
        );
        if !ws.wait_finished(CASE_TIMEOUT) {
            ws.cancel();
            ws.wait_finished(Duration::from_secs(5));
            eprintln!("case {case} did not finish in {CASE_TIMEOUT:?}; canceled");
        }
    }
    fetch_text(&client, &format!("{base}/updateReports?agent={AGENT}")).map(|_| ())
}

/// Opens a socket, returns the first text message (or "" if the server just closes).
fn fetch_text(client: &Client, url: &str) -> Result<String, String> {
    let (listener, events) = syncws::channel();
    let request = Request::builder(url).build().map_err(|e| e.to_string())?;
    let ws = client.new_web_socket(request, listener);
    let mut text = String::new();
    loop {
        match events.recv_timeout(Duration::from_secs(60)) {
            Ok(Event::Message(Message::Text(t))) => text = t,
            Ok(Event::Ended(syncws::Ended::Failed { error, .. })) => {
                return Err(format!("{url}: {error}"));
            }
            Ok(e) if e.is_terminal() => break,
            Ok(_) => {}
            Err(_) => return Err(format!("{url}: no answer")),
        }
    }
    ws.wait_finished(Duration::from_secs(5));
    Ok(text)
}
