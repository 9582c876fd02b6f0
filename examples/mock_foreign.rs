//! The test kit's mock server against a foreign client: Python `websockets` (run by
//! `scripts/mock_foreign.sh`, which makes the venv). A refusal, then an upgrade whose script
//! uses every kind of step a foreign client can answer; the Python side checks what it
//! received, this side checks the script and the recorded frames.
//!
//!     cargo run --features testing --example mock_foreign -- <python> scripts/mock_foreign_client.py

use std::process::{Command, ExitCode};

use syncws::testing::{MockFrame, MockResponse, MockServer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [python, client] = args.as_slice() else {
        eprintln!("usage: mock_foreign <python> <client.py>");
        return ExitCode::from(2);
    };
    let server = match MockServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mock_foreign: could not start the mock server: {e}");
            return ExitCode::FAILURE;
        }
    };
    server.enqueue(MockResponse::refuse(401).header("WWW-Authenticate", "Bearer realm=\"mock\""));
    let long = "x".repeat(5000);
    server.enqueue(
        MockResponse::upgrade()
            .subprotocol("chat.v1")
            .deflate(true)
            .expect_text("hello from python")
            .send_text("hi python")
            .send_fragmented("in four frames", 4)
            .send_binary([0u8, 1, 2, 255])
            .expect_binary([255u8, 2, 1, 0])
            .send_ping(b"are you there")
            .expect_text_where("5000 x, compressed by the client", move |t| t == long)
            .close(1000, "bye python")
            .expect_close_with(1000),
    );
    let status = Command::new(python)
        .arg(client)
        .arg(server.url_for("/chat?room=1"))
        .status();
    let failures = server.failures();
    let mut ok = true;
    match status {
        Ok(s) if s.success() => println!("mock_foreign: the Python client's checks passed"),
        other => {
            eprintln!("mock_foreign: the Python client failed: {other:?}");
            ok = false;
        }
    }
    for f in &failures {
        eprintln!("mock_foreign: script failure: {f}");
        ok = false;
    }
    let first = server.take_request(std::time::Duration::from_secs(1));
    let second = server.take_request(std::time::Duration::from_secs(1));
    match (&first, &second) {
        (Some(a), Some(b)) if a.target() == "/chat?room=1" && b.subprotocols() == ["chat.v1"] => {
            println!(
                "mock_foreign: requests recorded ({} offered {:?})",
                b.header("user-agent").unwrap_or("?"),
                b.extensions()
            )
        }
        _ => {
            eprintln!("mock_foreign: unexpected requests: {first:?} {second:?}");
            ok = false;
        }
    }
    let frames = server.received(2);
    let pong = frames
        .iter()
        .any(|f| f.opcode == MockFrame::PONG && f.payload == b"are you there");
    let compressed = frames.iter().any(|f| f.opcode == MockFrame::TEXT && f.rsv1);
    println!(
        "mock_foreign: connection 2 received {} frames (pong answered: {pong}, a compressed text: {compressed})",
        frames.len()
    );
    if !pong || !compressed {
        ok = false;
    }
    if ok {
        println!("MOCK-FOREIGN OK");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
