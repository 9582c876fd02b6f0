//! The server child: tungstenite, thread per connection, no compression. `/echo` and
//! `/source` are tungstenite's server; `/sink` reads the socket itself after tungstenite's
//! handshake (sink.rs).

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tungstenite::Message as TMessage;

use crate::sink::serve_sink;
use crate::watch_parent;

pub fn server_main() -> ! {
    watch_parent();
    let listener = TcpListener::bind("127.0.0.1:0").expect("server: bind 127.0.0.1:0");
    let port = listener.local_addr().expect("server: local_addr").port();
    println!("PORT {port}");
    let _ = io::stdout().flush();
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                let spawned = thread::Builder::new()
                    .name("bench-server".into())
                    .stack_size(512 * 1024)
                    .spawn(move || serve(s));
                if let Err(e) = spawned {
                    eprintln!("server: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("server: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    std::process::exit(1);
}

// tungstenite's callback type fixes the error type.
#[allow(clippy::result_large_err)]
fn serve(stream: TcpStream) {
    use tungstenite::handshake::server::{ErrorResponse, Request as HReq, Response as HResp};
    let _ = stream.set_nodelay(true);
    // Bounds every blocking read: no connection thread outlives a vanished client for long.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut target = (String::new(), String::new());
    let accepted = tungstenite::accept_hdr(
        stream,
        |req: &HReq, resp: HResp| -> Result<HResp, ErrorResponse> {
            target = (
                req.uri().path().to_owned(),
                req.uri().query().unwrap_or("").to_owned(),
            );
            Ok(resp)
        },
    );
    let Ok(mut ws) = accepted else { return };
    match target.0.as_str() {
        "/echo" => serve_echo(&mut ws),
        // Past the handshake the sink reads the socket itself (sink.rs); it answers the
        // client's close and closes TCP.
        "/sink" => return serve_sink(ws.into_inner()),
        "/source" => serve_source(&mut ws, &target.1),
        _ => {
            let _ = ws.close(None);
        }
    }
    // Drive the close handshake (tungstenite answers the client's close) until it reports
    // ConnectionClosed; dropping the socket then closes TCP.
    while ws.read().is_ok() {}
}

type ServerWs = tungstenite::WebSocket<TcpStream>;

fn serve_echo(ws: &mut ServerWs) {
    loop {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(TMessage::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn serve_source(ws: &mut ServerWs, query: &str) {
    let mut n = 0usize;
    let mut size = 0usize;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("n", v)) => n = v.parse().unwrap_or(0),
            Some(("size", v)) => size = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    loop {
        match ws.read() {
            Ok(TMessage::Text(t)) if t.as_str() == "go" => break,
            Ok(TMessage::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
    let payload = tungstenite::Bytes::from(vec![0xa5u8; size]);
    for _ in 0..n {
        if ws.write(TMessage::Binary(payload.clone())).is_err() {
            return;
        }
    }
    if ws.write(TMessage::text("end")).is_err() || ws.flush().is_err() {
        return;
    }
    serve_echo(ws);
}
