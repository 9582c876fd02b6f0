//! Secrets stay out of logs, `Error` texts and `Debug` output: a socket whose URL carries a
//! password and a query token connects, redirects, fails and closes while a logger of this
//! binary records every log record at trace level, and no record, error text or `Debug` of a
//! `WebSocket`, `Request` or `Response` shows the password, the token or the query, while
//! they still name the host and the path.
//!
//! The logger is process-wide, so this binary has it alone; every test checks every record
//! captured so far.

mod common;

use std::net::TcpListener;
use std::sync::{Mutex, Once};
use std::time::Duration;

use common::EVENT_TIMEOUT;
use syncws::{Accept, Client, Listener, Reconnect, Request, Server, WebSocket};

/// The password and the token used in every URL and credential header here.
const PASSWORD: &str = "pa55word";
const TOKEN: &str = "SECRET";

/// Collects every log record as `LEVEL target: message`.
struct Capture {
    records: Mutex<Vec<String>>,
}

static CAPTURE: Capture = Capture {
    records: Mutex::new(Vec::new()),
};

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("this test binary installs the only logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn records() -> Vec<String> {
    CAPTURE
        .records
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Whether `text` shows a secret: the password, the token, or a query at all.
fn leaks(text: &str) -> bool {
    text.contains(PASSWORD) || text.contains(TOKEN) || text.contains("token=")
}

/// Fails, listing every leak at once, if a text or a log record captured so far shows a secret.
fn assert_nothing_leaks(texts: &[(&str, String)]) {
    let mut leaked: Vec<String> = texts
        .iter()
        .filter(|(_, text)| leaks(text))
        .map(|(what, text)| format!("{what}: {text}"))
        .collect();
    leaked.extend(
        records()
            .into_iter()
            .filter(|r| leaks(r))
            .map(|r| format!("log: {r}")),
    );
    assert!(leaked.is_empty(), "secrets shown:\n{}", leaked.join("\n"));
}

/// Asserts that a log record contains every one of `parts` (the redaction kept host and path).
fn assert_logged(parts: &[&str]) {
    let records = records();
    assert!(
        records.iter().any(|r| parts.iter().all(|p| r.contains(p))),
        "no log record with {parts:?} in:\n{}",
        records.join("\n")
    );
}

/// `ws://user:<password>@127.0.0.1:<port><path>?token=<token>&room=1#<token>`
fn secret_url(port: u16, path: &str) -> String {
    format!("ws://user:{PASSWORD}@127.0.0.1:{port}{path}?token={TOKEN}&room=1#{TOKEN}")
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_socket_that_opens_and_closes_shows_host_and_path_only() {
    capture_logs();
    let (tx, server_sockets) = crossbeam_channel::unbounded::<WebSocket>();
    let server = Server::bind("127.0.0.1:0", move |_| {
        let tx = tx.clone();
        Accept::upgrade(Listener::new().on_open(move |ws, _| {
            let _ = tx.send(ws.clone());
        }))
    })
    .expect("server");
    let port = server.local_addr().port();
    let request = Request::builder(&secret_url(port, "/feed/open"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Cookie", format!("session={TOKEN}"))
        .build()
        .expect("request");
    let builder_debug = format!(
        "{:?}",
        Request::builder(&secret_url(port, "/feed/open")).header("Cookie", TOKEN)
    );
    let conn = Client::new().connect(request).expect("connect");
    let on_server = server_sockets
        .recv_timeout(EVENT_TIMEOUT)
        .expect("the server's socket");
    conn.send("hello");
    conn.close(1000, Some("bye")).expect("close");
    let client = conn.websocket().clone();
    assert!(client.wait_finished(EVENT_TIMEOUT));
    assert!(on_server.wait_finished(EVENT_TIMEOUT));

    let texts = [
        ("client WebSocket", format!("{client:?}")),
        ("client Request", format!("{:?}", client.request())),
        ("client Response", format!("{:?}", conn.response())),
        ("Connection", format!("{conn:?}")),
        ("server WebSocket", format!("{on_server:?}")),
        ("server Request", format!("{:?}", on_server.request())),
        ("RequestBuilder", builder_debug),
    ];
    assert_nothing_leaks(&texts);
    for (what, text) in &texts {
        assert!(
            text.contains("127.0.0.1") && text.contains("/feed/open"),
            "{what} no longer names the host and path: {text}"
        );
    }
    // The writer threads of both ends log their exit with the URL.
    assert_logged(&[&format!("writer for ws://127.0.0.1:{port}/feed/open exits")]);
}

#[test]
fn credential_and_sensitive_headers_are_redacted_in_debug_and_others_shown() {
    let request = Request::builder("ws://example.com/")
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("proxy-authorization", format!("Basic {TOKEN}"))
        .header("Cookie", format!("session={TOKEN}"))
        .sensitive_header("X-Api-Key", TOKEN)
        .header("X-Trace", "trace-1")
        .build()
        .expect("request");
    let debug = format!("{request:?}");
    assert_nothing_leaks(&[("Request", debug.clone())]);
    assert_eq!(debug.matches("<redacted>").count(), 4, "{debug}");
    assert!(
        debug.contains("Authorization") && debug.contains("trace-1"),
        "{debug}"
    );
    // The values themselves are the application's to read.
    assert_eq!(request.header("cookie"), Some("session=SECRET"));
}

#[test]
fn a_refused_upgrade_shows_host_and_path_only() {
    capture_logs();
    let server = Server::bind("127.0.0.1:0", |_| {
        Accept::reject(401, "Unauthorized").header("Set-Cookie", format!("session={TOKEN}"))
    })
    .expect("server");
    let port = server.local_addr().port();
    let error = syncws::connect(&secret_url(port, "/feed/refused")).expect_err("refused");
    let response = error.response().expect("the 401").clone();
    assert_eq!(response.status(), 401);
    let texts = [
        ("Error Display", error.to_string()),
        ("Error Debug", format!("{error:?}")),
        ("Response Debug", format!("{response:?}")),
    ];
    assert_nothing_leaks(&texts);
    assert!(
        texts[1].1.contains("127.0.0.1") && texts[1].1.contains("/feed/refused"),
        "{}",
        texts[1].1
    );
}

#[test]
fn a_socket_that_cannot_connect_leaks_nothing() {
    capture_logs();
    let port = closed_port();
    let error = syncws::connect(&secret_url(port, "/feed/nobody")).expect_err("nothing listens");
    assert_nothing_leaks(&[
        ("Error Display", error.to_string()),
        ("Error Debug", format!("{error:?}")),
    ]);
}

#[test]
fn redirects_log_and_fail_with_host_and_path_only() {
    capture_logs();
    let target = Server::bind("127.0.0.1:0", |_| Accept::upgrade(Listener::new())).expect("target");
    let target_url = secret_url(target.local_addr().port(), "/feed/landed");
    let redirecting = Server::bind("127.0.0.1:0", move |request| {
        let location = match request.url().path() {
            "/feed/away" => target_url.clone(),
            "/feed/not-a-url" => format!("ws://user:{PASSWORD}@[::1/x?token={TOKEN}"),
            // A loop, each Location with a token.
            _ => format!("/feed/loop?token={TOKEN}"),
        };
        Accept::reject(307, "Temporary Redirect").header("Location", location)
    })
    .expect("redirecting server");
    let port = redirecting.local_addr().port();

    let conn = syncws::connect(&secret_url(port, "/feed/away")).expect("followed");
    let landed = format!("{:?}", conn.response());
    let not_a_url =
        syncws::connect(&secret_url(port, "/feed/not-a-url")).expect_err("bad Location");
    let looped = Client::builder()
        .max_redirects(1)
        .build()
        .connect(
            Request::builder(&secret_url(port, "/feed/loop"))
                .build()
                .expect("request"),
        )
        .expect_err("a loop");

    assert_nothing_leaks(&[
        ("Response after a redirect", landed.clone()),
        ("bad Location Display", not_a_url.to_string()),
        ("bad Location Debug", format!("{not_a_url:?}")),
        ("max_redirects Display", looped.to_string()),
        ("max_redirects Debug", format!("{looped:?}")),
    ]);
    assert!(landed.contains("/feed/landed"), "{landed}");
    assert!(
        not_a_url
            .to_string()
            .contains(&format!("127.0.0.1:{port}/feed/not-a-url")),
        "{not_a_url}"
    );
    assert!(looped.to_string().contains("/feed/loop"), "{looped}");
    assert_logged(&[
        "following 307",
        &format!("ws://127.0.0.1:{port}/feed/away"),
        "/feed/landed",
    ]);
}

#[test]
fn invalid_urls_are_shown_without_userinfo_or_query() {
    for (input, shown) in [
        (
            format!("ws://user:{PASSWORD}@[::1/chat?token={TOKEN}"),
            "ws://[::1/chat",
        ),
        (
            format!("ftp://user:{PASSWORD}@example.com/chat?token={TOKEN}"),
            "ftp://example.com/chat",
        ),
        (
            format!("ws://user:{PASSWORD}@/chat?token={TOKEN}"),
            "ws:///chat",
        ),
    ] {
        let error = Request::builder(&input).build().expect_err("invalid");
        assert!(matches!(error, syncws::Error::InvalidUrl(_)), "{error:?}");
        assert_nothing_leaks(&[
            ("InvalidUrl Display", error.to_string()),
            ("InvalidUrl Debug", format!("{error:?}")),
        ]);
        assert!(error.to_string().contains(shown), "{input}: {error}");
    }
}

#[test]
fn a_reconnecting_socket_shows_host_and_path_only() {
    capture_logs();
    let port = closed_port();
    let request = Request::builder(&secret_url(port, "/feed/again"))
        .build()
        .expect("request");
    let (listener, events) = syncws::channel();
    let ws = Client::new().reconnecting(
        request,
        Reconnect::new()
            .initial_delay(Duration::from_millis(1))
            .max_attempts(1),
        listener,
    );
    let debug = format!("{ws:?}");
    assert!(ws.wait_finished(EVENT_TIMEOUT));
    let mut texts = vec![("ReconnectingWebSocket", debug.clone())];
    for event in events.try_iter() {
        texts.push(("event", format!("{event:?}")));
    }
    assert_nothing_leaks(&texts);
    assert!(
        debug.contains(&format!("127.0.0.1:{port}/feed/again")),
        "{debug}"
    );
    assert_logged(&[
        &format!("ws://127.0.0.1:{port}/feed/again"),
        "reconnecting in",
    ]);
}

#[cfg(feature = "http")]
#[test]
fn an_http_uri_without_a_host_is_shown_without_its_query() {
    let http_request = http::Request::get(format!("/chat?token={TOKEN}"))
        .body(())
        .expect("an http request");
    let error = Request::try_from(http_request).expect_err("no host");
    assert_nothing_leaks(&[("Error Display", error.to_string())]);
    assert!(error.to_string().contains("/chat"), "{error}");
}
