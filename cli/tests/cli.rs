//! The real `syncws` binary: `connect` against the library's EchoServer and the test kit's
//! MockServer (exit codes per ending, `--json`, binary output, flags reaching the server),
//! `connect` and library clients against `listen` (echo, broadcast, `--exec`), and `bench`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

// The root crate's throwaway certificates (rcgen only, no syncws feature).
#[path = "../../tests/common/certs.rs"]
mod certs;

use syncws::testing::{MockResponse, MockServer};
use syncws::{EchoServer, Message};

const BIN: &str = env!("CARGO_BIN_EXE_syncws");
const WAIT: Duration = Duration::from_secs(10);

/// Runs `syncws args...` with `input` on its standard input (closed after it); a test that
/// hangs is cut short by `--timeout` in the arguments where the server may stall.
fn run(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the syncws binary runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn connect_sends_stdin_lines_prints_the_echoes_and_exits_0_after_the_close() {
    let server = EchoServer::start().unwrap();
    let out = run(&["connect", &server.url()], "hello\nwörld\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\nwörld\n");
    assert!(stderr(&out).contains("# closed: 1000"), "{}", stderr(&out));
}

#[test]
fn json_prints_one_event_per_line_with_timestamps() {
    let server = EchoServer::start().unwrap();
    let out = run(&["connect", &server.url(), "--json"], "one\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "--json writes nothing else: {}",
        stderr(&out)
    );
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["open", "message", "closing", "closed"]);
    assert_eq!(events[0]["status"], 101);
    assert_eq!(events[1]["type"], "text");
    assert_eq!(events[1]["data"], "one");
    assert_eq!(events[3]["code"], 1000);
    assert!(
        events
            .iter()
            .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
}

#[test]
fn send_and_count_make_a_one_shot_request() {
    let server = EchoServer::start().unwrap();
    let out = run(
        &[
            "connect",
            &server.url(),
            "--send",
            "ping?",
            "--count",
            "1",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ping?\n");
}

#[test]
fn headers_and_subprotocols_reach_the_server() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .subprotocol("chat.v2")
            .close(1000, ""),
    );
    let out = run(
        &[
            "connect",
            &server.url_for("/room?x=1"),
            "-H",
            "Authorization: Bearer t0k3n",
            "-s",
            "chat.v1",
            "-s",
            "chat.v2",
            "--no-compression",
            "--json",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let seen = server.take_request(WAIT).unwrap();
    assert_eq!(seen.target(), "/room?x=1");
    assert_eq!(seen.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(seen.subprotocols(), ["chat.v1", "chat.v2"]);
    assert!(
        seen.extensions().is_empty(),
        "--no-compression offers nothing"
    );
    let open: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(open["subprotocol"], "chat.v2");
    server.verify();
}

#[test]
fn binary_messages_print_as_hex_or_base64() {
    for (flag, expected) in [("hex", "0102ff\n"), ("base64", "AQL/\n")] {
        let server = MockServer::start().unwrap();
        server.enqueue(
            MockResponse::upgrade()
                .send_binary([1u8, 2, 255])
                .close(1000, ""),
        );
        let out = run(
            &[
                "connect",
                &server.url(),
                "--binary",
                flag,
                "--timeout",
                "10s",
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stdout(&out), expected, "--binary {flag}");
        server.verify();
    }
}

#[test]
fn a_refused_upgrade_exits_3_and_prints_the_status_and_headers() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::refuse(401).header("WWW-Authenticate", "Bearer realm=\"x\""));
    let out = run(&["connect", &server.url()], "");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(
        err.contains("WWW-Authenticate: Bearer realm=\"x\""),
        "{err}"
    );
    server.verify();
}

#[test]
fn a_failure_exits_1() {
    let server = MockServer::start().unwrap();
    // A reserved opcode: the client fails with a protocol error (and closes with 1002).
    server.enqueue(
        MockResponse::upgrade()
            .expect_text("x")
            .send_raw([0x83, 0x00])
            .expect_close_with(1002),
    );
    // --count keeps the socket open after the message (an empty stdin would close it).
    let out = run(
        &[
            "connect",
            &server.url(),
            "--send",
            "x",
            "--count",
            "1",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("# failed:"), "{}", stderr(&out));
    server.verify();
}

#[test]
fn a_timeout_exits_4() {
    let server = MockServer::start().unwrap();
    // Takes the message and never answers.
    server.enqueue(MockResponse::upgrade().expect_text("anyone?"));
    let out = run(
        &[
            "connect",
            &server.url(),
            "--send",
            "anyone?",
            "--count",
            "1",
            "--timeout",
            "300ms",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("timeout"), "{}", stderr(&out));
    server.verify();
}

#[test]
fn bad_arguments_exit_2() {
    let out = run(&["connect", "ws://127.0.0.1:1/", "-H", "no colon"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected \"Name: value\""),
        "{}",
        stderr(&out)
    );
}

/// A running `syncws listen`, killed when dropped.
struct Listen {
    child: Child,
    url: String,
}

impl Listen {
    fn start(extra: &[&str]) -> Listen {
        let mut child = Command::new(BIN)
            .args(["listen", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .to_owned();
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Listen { child, url }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn connect_against_listen_echoes() {
    let listen = Listen::start(&[]);
    let out = run(&["connect", &listen.url, "--timeout", "10s"], "a\nb\nc\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\nc\n");
}

#[test]
fn listen_broadcast_sends_every_message_to_every_client() {
    let listen = Listen::start(&["--broadcast"]);
    let text = |t: &str| Some(Message::Text(t.into()));
    // A client's own message coming back proves the server counts it among the clients
    // (its open and its messages run in order on one thread); b connects after a's came back,
    // so a's is not broadcast to it.
    let mut a = syncws::connect(&listen.url).unwrap();
    assert!(a.send("hello from a"));
    assert_eq!(a.recv_timeout(WAIT).unwrap(), text("hello from a"));
    let mut b = syncws::connect(&listen.url).unwrap();
    assert!(b.send("hello from b"));
    assert_eq!(b.recv_timeout(WAIT).unwrap(), text("hello from b"));
    assert_eq!(a.recv_timeout(WAIT).unwrap(), text("hello from b"));
    assert!(a.send("to everyone"));
    assert_eq!(a.recv_timeout(WAIT).unwrap(), text("to everyone"));
    assert_eq!(b.recv_timeout(WAIT).unwrap(), text("to everyone"));
}

#[test]
fn listen_exec_runs_a_program_per_connection() {
    let listen = Listen::start(&["--exec", "while read line; do echo \"got $line\"; done"]);
    let mut conn = syncws::connect(&listen.url).unwrap();
    assert!(conn.send("hi"));
    assert_eq!(
        conn.recv_timeout(WAIT).unwrap(),
        Some(Message::Text("got hi".into()))
    );
    assert!(conn.send("again"));
    assert_eq!(
        conn.recv_timeout(WAIT).unwrap(),
        Some(Message::Text("got again".into()))
    );
}

#[test]
fn listen_exec_closes_with_1008_when_the_program_does_not_read_its_input() {
    let listen = Listen::start(&["--exec", "sleep 30"]);
    let mut conn = syncws::connect(&listen.url).unwrap();
    // 2 MiB: more than the program's stdin pipe and the server's queue of lines hold.
    let line = "x".repeat(4096);
    for _ in 0..512 {
        if conn.send_timeout(line.as_str(), WAIT).is_err() {
            break;
        }
    }
    match conn.recv_timeout(WAIT) {
        Err(syncws::Error::Closed { code, reason }) => {
            assert_eq!(code, 1008);
            assert_eq!(reason, "the program is not reading its input");
        }
        other => panic!("expected a close with 1008, got {other:?}"),
    }
}

#[test]
fn bench_reports_throughput_and_percentiles_as_json() {
    let server = EchoServer::start().unwrap();
    let out = run(
        &[
            "bench",
            &server.url(),
            "-c",
            "3",
            "-n",
            "200",
            "-s",
            "100",
            "--json",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(r["messages"], 600);
    assert!(r["messages_per_second"].as_f64().unwrap() > 0.0);
    let rtt = &r["rtt_us"];
    let (p50, p99, p999) = (
        rtt["p50"].as_f64().unwrap(),
        rtt["p99"].as_f64().unwrap(),
        rtt["p99_9"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{rtt}");
    assert_eq!(r["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn help_reads_like_a_man_page_with_examples() {
    for sub in ["connect", "listen", "bench", "bridge"] {
        let out = run(&[sub, "--help"], "");
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        assert!(text.contains("Examples:"), "{sub}: {text}");
        assert!(text.contains(&format!("syncws {sub} ")), "{sub}: {text}");
    }
    let mut s = String::new();
    let _ = Command::new(BIN)
        .arg("--version")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut s);
    assert!(s.starts_with("syncws "), "{s}");
}

#[test]
fn reconnect_carries_on_after_a_dropped_connection() {
    let server = MockServer::start().unwrap();
    // Ended in order (a FIN, no close frame): "one" is read before the end. A reset could
    // overtake it.
    server.enqueue(MockResponse::upgrade().send_text("one").close_tcp());
    server.enqueue(MockResponse::upgrade().send_text("two"));
    // An empty stdin would close at once: --count ends it after both messages.
    let out = run(
        &[
            "connect",
            &server.url(),
            "--reconnect",
            "--send",
            "hi",
            "--count",
            "2",
            "--timeout",
            "20s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");
    assert_eq!(server.connection_count(), 2);
}

#[test]
fn ping_interval_sends_pings() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .expect_text("x")
            .expect_ping()
            .send_text("pinged"),
    );
    let out = run(
        &[
            "connect",
            &server.url(),
            "--ping-interval",
            "100ms",
            "--send",
            "x",
            "--count",
            "1",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pinged\n");
    server.verify();
}

#[test]
fn max_message_size_refuses_a_larger_message_with_1009() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .expect_text("x")
            .send_text(&"a".repeat(100))
            .expect_close_with(1009),
    );
    let out = run(
        &[
            "connect",
            &server.url(),
            "--max-message-size",
            "10",
            "--send",
            "x",
            "--count",
            "1",
            "--timeout",
            "10s",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("100"), "{}", stderr(&out));
    server.verify();
}

/// Writes the test certificate's files; returns (dir, chain, key, ca) paths.
fn cert_files() -> (std::path::PathBuf, String, String, String) {
    let now = certs::unix_now();
    let tls = certs::issue("localhost", now - 60, now + 86_400);
    let dir = std::env::temp_dir().join(format!("syncws-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    };
    let chain = path("chain.pem", &tls.chain);
    let key = path("key.pem", &tls.key);
    let ca = path("ca.pem", &tls.ca);
    (dir, chain, key, ca)
}

#[test]
fn tls_listen_and_connect_with_ca_file_or_insecure() {
    let (dir, chain, key, ca) = cert_files();
    let listen = Listen::start(&["--cert", &chain, "--key", &key]);
    assert!(listen.url.starts_with("wss://"), "{}", listen.url);
    let url = listen.url.replace("127.0.0.1", "localhost");
    // Trusting the test CA: the echo comes back.
    let out = run(
        &["connect", &url, "--ca-file", &ca, "--timeout", "10s"],
        "secret\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "secret\n");
    // Not trusting it: a TLS failure, status 1.
    let out = run(&["connect", &url, "--timeout", "10s"], "x\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // --insecure: it works, and says what it turned off.
    let out = run(&["connect", &url, "--insecure", "--timeout", "10s"], "y\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("certificate and host name checks are OFF"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1 that counts the tunnels it opened.
fn connect_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let Ok(upstream) = TcpStream::connect(&target) else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (url, tunnels)
}

#[test]
fn proxy_and_no_proxy() {
    let server = EchoServer::start().unwrap();
    let (proxy, tunnels) = connect_proxy();
    let out = run(
        &[
            "connect",
            &server.url(),
            "--proxy",
            &proxy,
            "--timeout",
            "10s",
        ],
        "via proxy\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "via proxy\n");
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        1,
        "the connection went through the proxy"
    );
    // --no-proxy ignores a proxy the environment names (one that does not exist).
    let out = Command::new(BIN)
        .args([
            "connect",
            &server.url(),
            "--no-proxy",
            "--send",
            "direct",
            "--count",
            "1",
            "--timeout",
            "10s",
        ])
        .env("ALL_PROXY", "http://127.0.0.1:1")
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("NO_PROXY", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "direct\n");
}

#[test]
fn listen_origin_refuses_other_origins_with_403() {
    let listen = Listen::start(&["--origin", "https://app.example"]);
    let request = |origin: &str| {
        syncws::Request::builder(&listen.url)
            .header("Origin", origin)
            .build()
            .unwrap()
    };
    let client = syncws::Client::new();
    assert!(client.connect(request("https://app.example")).is_ok());
    match client.connect(request("https://evil.example")) {
        Err(syncws::Error::HandshakeRejected {
            response: Some(r), ..
        }) => assert_eq!(r.status(), 403),
        other => panic!("expected a 403, got {other:?}"),
    }
}

/// What the peer controls reaches the terminal escaped: a close reason,
/// a refusal's body, and (on stderr, always a person's) error texts. A peer's ESC sequence
/// must not clear the screen or retitle the window.
#[test]
fn a_peers_control_characters_reach_stderr_escaped() {
    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::upgrade().close(4000, "bye\x1b[2J\x1b]0;owned\x07"));
    let out = run(&["connect", &server.url()], "");
    let err = stderr(&out);
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("bye\\x1b[2J\\x1b]0;owned\\x07"), "{err}");

    let server = MockServer::start().unwrap();
    server.enqueue(MockResponse::refuse(403).body(&b"no\x1b[31m\r\nway\x9b"[..]));
    let out = run(&["connect", &server.url()], "");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(err.contains("body: no\\x1b[31m\\r\\nway\u{fffd}"), "{err}");
}

/// Messages to a pipe are the data, byte for byte: escaping is for a terminal (checked in a
/// real one by scripts/cli_tmux.sh).
#[test]
fn messages_to_a_pipe_are_not_escaped() {
    let server = MockServer::start().unwrap();
    server.enqueue(
        MockResponse::upgrade()
            .send_text("tab\there\x1b[0m")
            .close(1000, ""),
    );
    let out = run(&["connect", &server.url()], "");
    assert_eq!(stdout(&out), "tab\there\x1b[0m\n");
}

/// `--exec` gives the program one line per text message; newlines and
/// carriage returns inside a message become spaces (as websocat's line mode does), so a peer
/// cannot make one message read as several lines.
#[test]
fn listen_exec_gives_the_program_one_line_per_message() {
    let listen = Listen::start(&["--exec", "while read line; do echo \"got $line\"; done"]);
    let mut conn = syncws::connect(&listen.url).unwrap();
    assert!(conn.send("one\ntwo\r\nthree"));
    assert_eq!(
        conn.recv_timeout(WAIT).unwrap(),
        Some(Message::Text("got one two  three".into()))
    );
    assert!(conn.send("next"));
    assert_eq!(
        conn.recv_timeout(WAIT).unwrap(),
        Some(Message::Text("got next".into()))
    );
}

/// A running `syncws bridge`, and where its first stderr line says it listens.
struct Bridge {
    child: Child,
    at: String,
}

impl Bridge {
    fn start(from: &str, to: &str) -> Bridge {
        let mut child = Command::new(BIN)
            .args(["bridge", from, to])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let at = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split(", ").next())
            .unwrap_or_else(|| panic!("first line: {first}"))
            .to_owned();
        std::thread::spawn(move || for _ in lines {});
        Bridge { child, at }
    }

    /// The host:port after the `tcp-l:` or `ws-l:`.
    fn addr(&self) -> &str {
        self.at.split_once(':').map(|(_, a)| a).unwrap()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tcp-l: to ws://: bytes written to the TCP port reach the web socket server as binary
/// messages (the echo server sends them back), and a half-close ends the web socket's
/// direction only.
#[test]
fn bridge_tcp_l_to_a_web_socket_carries_bytes_both_ways() {
    let server = EchoServer::start().unwrap();
    let bridge = Bridge::start("tcp-l:127.0.0.1:0", &server.url());
    let mut tcp = TcpStream::connect(bridge.addr()).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let writer = {
        let mut tcp = tcp.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            tcp.write_all(&data).unwrap();
            tcp.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes came back changed");
}

/// ws-l: to tcp:: a web socket client's bytes reach a TCP server, and its answer comes back.
#[test]
fn bridge_ws_l_to_tcp_carries_bytes_both_ways() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp:{}", upstream.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        s.write_all(format!("you said {line}").as_bytes()).unwrap();
    });
    let bridge = Bridge::start("ws-l:127.0.0.1:0", &target);
    let mut stream = syncws::ByteStream::connect(&format!("ws://{}/", bridge.addr())).unwrap();
    stream.set_read_timeout(Some(WAIT));
    stream.write_all(b"hello\n").unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert_eq!(got, "you said hello\n");
}

#[test]
fn bridge_refuses_endpoints_it_cannot_join() {
    for (from, to) in [
        ("tcp-l:127.0.0.1:0", "tcp:127.0.0.1:1"),
        ("ws-l:127.0.0.1:0", "ws://127.0.0.1:1/"),
        ("udp:1", "ws://127.0.0.1:1/"),
    ] {
        let out = run(&["bridge", from, to], "");
        assert_eq!(out.status.code(), Some(2), "{from} {to}: {}", stderr(&out));
        assert!(stderr(&out).contains("syncws bridge:"), "{}", stderr(&out));
    }
}
