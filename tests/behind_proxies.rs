//! The server role behind real reverse proxies: Debian's nginx and HAProxy, plain and with TLS
//! terminated at the proxy, in front of syncws servers; the client role through them.
//! Upgrade, echo from 0 B to 4 MiB, permessage-deflate end to end, a close from each side, the
//! client's real address (X-Forwarded-For, and PROXY v2 from HAProxy and v1 from nginx's
//! stream module), and an idle socket through nginx's 3 s `proxy_read_timeout`: cut without
//! pings, alive after 10 s with client pings or with server pings.
//!
//! Run with `bash scripts/behind_proxies.sh`, which installs nginx and HAProxy, writes their
//! configurations (the ones in docs/deploying.md), starts them and passes their ports in
//! `SYNCWS_BP_*`. Built only with the internal feature `_real-proxy-tests`.
#![cfg(feature = "native-tls")]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::raw::read_head;
use syncws::{
    Accept, Client, Connection, Error, ForwardedHeader, Listener, Message, Request, Server,
};

fn port(var: &str) -> u16 {
    std::env::var(var)
        .unwrap_or_else(|_| {
            panic!("{var} is not set: run `bash scripts/behind_proxies.sh`, which starts nginx and HAProxy and runs this file")
        })
        .parse()
        .unwrap_or_else(|_| panic!("{var} is not a port"))
}

/// The backends the proxies forward to, started once per test process on the ports the script
/// put in their configurations. Each echoes, answers "whoami" with the client's address as it
/// sees it and "close please" with a close 4000.
fn backends() {
    static STARTED: OnceLock<Vec<Server>> = OnceLock::new();
    STARTED.get_or_init(|| {
        let handler = |_: &Request| {
            Accept::upgrade(Listener::new().on_message(|ws, m| match m {
                Message::Text(t) if t == "whoami" => {
                    ws.send(ws.peer_addr().map_or("?".into(), |a| a.ip().to_string()));
                }
                Message::Text(t) if t == "close please" => {
                    let _ = ws.close(4000, Some("as asked"));
                }
                other => {
                    ws.send(other);
                }
            }))
        };
        let proxies = ["127.0.0.2"];
        let at = |var: &str| format!("127.0.0.1:{}", port(var));
        vec![
            Server::builder()
                .trusted_proxies(proxies)
                // What nginx's $proxy_add_x_forwarded_for and HAProxy's `option forwardfor`
                // write; a `Forwarded` header is whatever the client sent.
                .forwarded_header(ForwardedHeader::XForwardedFor)
                // 4 MiB echoes: over the server role's 1 MiB defaults.
                .max_message_size(8 << 20)
                .max_queue_size(16 << 20)
                .bind(at("SYNCWS_BP_BACKEND_ECHO"), handler)
                .unwrap(),
            Server::builder()
                .trusted_proxies(proxies)
                .proxy_protocol(true)
                .bind(at("SYNCWS_BP_BACKEND_PP"), handler)
                .unwrap(),
            Server::builder()
                .ping_interval(Duration::from_secs(1))
                .bind(at("SYNCWS_BP_BACKEND_PINGS"), handler)
                .unwrap(),
        ]
    });
}

fn client(pings: Option<Duration>) -> Client {
    let pem = std::fs::read(std::env::var("SYNCWS_BP_CA").expect("SYNCWS_BP_CA")).unwrap();
    let tls = syncws::native_tls::TlsConnector::builder()
        .add_root_certificate(syncws::native_tls::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let mut b = Client::builder()
        .tls_connector(tls)
        .proxy(syncws::Proxy::none())
        .max_message_size(8 << 20);
    if let Some(p) = pings {
        b = b.ping_interval(p);
    }
    b.build()
}

fn connect(client: &Client, url: &str) -> Connection {
    backends();
    client
        .connect(Request::builder(url).build().unwrap())
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The four HTTP routes: nginx and HAProxy, plain and TLS terminated at the proxy.
fn routes() -> Vec<String> {
    vec![
        format!("ws://127.0.0.1:{}/nginx", port("SYNCWS_BP_NGINX_PLAIN")),
        format!("wss://localhost:{}/nginx", port("SYNCWS_BP_NGINX_TLS")),
        format!("ws://127.0.0.1:{}/haproxy", port("SYNCWS_BP_HAPROXY_PLAIN")),
        format!("wss://localhost:{}/haproxy", port("SYNCWS_BP_HAPROXY_TLS")),
    ]
}

fn whoami(conn: &mut Connection) -> String {
    assert!(conn.send("whoami"));
    match conn.recv().unwrap() {
        Message::Text(t) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn echo_from_0_b_to_4_mib_with_deflate_through_each_proxy() {
    for url in routes() {
        let mut conn = connect(&client(None), &url);
        let ext = conn
            .response()
            .header("sec-websocket-extensions")
            .unwrap_or("");
        assert!(
            ext.starts_with("permessage-deflate"),
            "{url}: negotiated {ext:?}"
        );
        for size in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20, 4 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            assert!(conn.send(data.clone()));
            assert_eq!(
                conn.recv().unwrap(),
                Message::Binary(data),
                "{url}: {size} B"
            );
        }
        let text = "compressible text ".repeat(5000);
        assert!(conn.send(text.clone()));
        assert_eq!(conn.recv().unwrap(), Message::Text(text), "{url}");
        let stats = conn.stats();
        assert!(
            stats.wire_bytes_received < stats.bytes_received,
            "{url}: {stats:?}"
        );
        // The backend sees the client (127.0.0.1) through X-Forwarded-For, not the proxy's
        // 127.0.0.2.
        assert_eq!(whoami(&mut conn), "127.0.0.1", "{url}");
        // A close from the client's side.
        conn.close(1000, Some("done")).unwrap();
        loop {
            match conn.recv() {
                Ok(_) => {}
                Err(Error::Closed { code, .. }) => {
                    assert_eq!(code, 1000, "{url}");
                    break;
                }
                Err(e) => panic!("{url}: {e}"),
            }
        }
    }
}

/// What a client writes in `Forwarded` or `X-Forwarded-For`, or
/// a byte that is not UTF-8 in X-Forwarded-For, does not change the address the backend
/// believes: through nginx and HAProxy it sees the client's real one.
#[test]
fn forged_forwarding_headers_are_not_believed_through_each_proxy() {
    let forgeries: [(&str, &[u8]); 4] = [
        ("Forwarded", b"for=6.6.6.6"),
        ("X-Forwarded-For", b"6.6.6.6"),
        ("X-Forwarded-For", b"\xff"),
        ("X-Forwarded-For", b"6.6.6.6, \xff\xfe"),
    ];
    for url in routes() {
        for (name, value) in forgeries {
            backends();
            let request = Request::builder(&url)
                .header_bytes(name, value.to_vec())
                .build()
                .unwrap();
            let mut conn = client(None)
                .connect(request)
                .unwrap_or_else(|e| panic!("{url} {name}: {e}"));
            assert_eq!(
                whoami(&mut conn),
                "127.0.0.1",
                "{url}: {name}: {}",
                value.escape_ascii()
            );
        }
    }
}

#[test]
fn a_close_from_the_servers_side_through_each_proxy() {
    for url in routes() {
        let mut conn = connect(&client(None), &url);
        assert!(conn.send("close please"));
        match conn.recv() {
            Err(Error::Closed { code, reason }) => {
                assert_eq!((code, reason.as_str()), (4000, "as asked"), "{url}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn proxy_protocol_from_haproxy_v2_and_nginx_v1_names_the_client() {
    for url in [
        format!("ws://127.0.0.1:{}/pp", port("SYNCWS_BP_HAPROXY_PP")),
        format!("ws://127.0.0.1:{}/pp", port("SYNCWS_BP_NGINX_PP")),
    ] {
        let mut conn = connect(&client(None), &url);
        assert_eq!(whoami(&mut conn), "127.0.0.1", "{url}");
    }
}

#[test]
fn without_a_trusted_proxy_in_between_forwarding_is_not_believed() {
    backends();
    // Straight to the X-Forwarded-For backend, with a forged header: ignored.
    let url = format!("ws://127.0.0.1:{}/", port("SYNCWS_BP_BACKEND_ECHO"));
    let request = Request::builder(&url)
        .header("X-Forwarded-For", "9.9.9.9")
        .build()
        .unwrap();
    let mut conn = client(None).connect(request).unwrap();
    assert_eq!(whoami(&mut conn), "127.0.0.1");
    // Straight to the PROXY backend, with a forged PROXY header: refused.
    let mut s = TcpStream::connect(("127.0.0.1", port("SYNCWS_BP_BACKEND_PP"))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"PROXY TCP4 9.9.9.9 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut s).unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

/// Through the 3 s `proxy_read_timeout`: whether a socket idle for 10 s is still there.
fn idle_survives(path: &str, pings: Option<Duration>) -> bool {
    let url = format!("ws://127.0.0.1:{}{path}", port("SYNCWS_BP_NGINX_IDLE"));
    let mut conn = connect(&client(pings), &url);
    match conn.recv_timeout(Duration::from_secs(10)) {
        // Nothing arrived and the socket is open: it survived; and it still works.
        Ok(None) => {
            assert!(conn.send("still here"));
            assert_eq!(conn.recv().unwrap(), Message::Text("still here".into()));
            true
        }
        Ok(Some(m)) => panic!("{url}: unexpected {m:?}"),
        Err(_) => false,
    }
}

#[test]
fn an_idle_socket_is_cut_by_nginx_without_pings() {
    assert!(
        !idle_survives("/", None),
        "nginx's 3 s timeout should cut it"
    );
}

#[test]
fn client_pings_keep_an_idle_socket_through_nginx() {
    assert!(idle_survives("/", Some(Duration::from_secs(1))));
}

#[test]
fn server_pings_keep_an_idle_socket_through_nginx() {
    assert!(idle_survives("/server-pings", None));
}
