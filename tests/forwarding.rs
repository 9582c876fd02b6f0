//! Real client addresses behind proxies: a PROXY header (v1, v2) or `Forwarded` /
//! `X-Forwarded-For` from a trusted proxy names the client (for `Request::peer_addr`,
//! `WebSocket::peer_addr` and the per-address limits); from anyone else a PROXY header is
//! refused and forwarded headers are ignored. Here the "proxy" is this test on 127.0.0.1;
//! `scripts/behind_proxies.sh` does the same through real HAProxy and nginx.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;

use common::raw::*;
use common::*;
use syncws::{Accept, Listener, Server, ServerBuilder};

/// What the server saw for each upgrade: the request's peer and the open socket's.
type Seen = mpsc::Receiver<(Option<SocketAddr>, Option<SocketAddr>)>;

fn server(builder: ServerBuilder) -> (Server, Seen) {
    let (tx, rx) = mpsc::channel();
    let server = builder
        .bind("127.0.0.1:0", move |request| {
            let tx = tx.clone();
            let from_request = request.peer_addr();
            Accept::upgrade(Listener::new().on_open(move |ws, _| {
                let _ = tx.send((from_request, ws.peer_addr()));
            }))
        })
        .unwrap();
    (server, rx)
}

/// Connects, writes `prefix` then an upgrade request, and returns the stream and the
/// response head.
fn connect_with(server: &Server, prefix: &[u8], extra_headers: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut bytes = prefix.to_vec();
    bytes.extend(upgrade_request(extra_headers).into_bytes());
    s.write_all(&bytes).unwrap();
    let head = read_head(&mut s).unwrap_or_default();
    (s, head)
}

fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut v = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
    ];
    v.extend(client);
    v.extend([127, 0, 0, 1]);
    v.extend(port.to_be_bytes());
    v.extend(443u16.to_be_bytes());
    v
}

fn proxied() -> ServerBuilder {
    Server::builder()
        .trusted_proxies(["127.0.0.1"])
        .proxy_protocol(true)
}

#[test]
fn a_proxy_v1_header_from_a_trusted_proxy_names_the_client() {
    let (server, seen) = server(proxied());
    let (_s, head) = connect_with(
        &server,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n",
        "",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let client: SocketAddr = "203.0.113.7:51000".parse().unwrap();
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        (Some(client), Some(client))
    );
}

#[test]
fn a_proxy_v2_header_from_a_trusted_proxy_names_the_client() {
    let (server, seen) = server(proxied());
    let (_s, head) = connect_with(&server, &v2_header([198, 51, 100, 9], 40000), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let client: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    assert_eq!(
        seen.recv_timeout(EVENT_TIMEOUT).unwrap(),
        (Some(client), Some(client))
    );
}

#[test]
fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    let (server, seen) = server(
        Server::builder()
            .trusted_proxies(["10.0.0.0/8"])
            .proxy_protocol(true),
    );
    let (_s, head) = connect_with(
        &server,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n",
        "",
    );
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (_s, head) = connect_with(&server, &v2_header([1, 2, 3, 4], 1), "");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // Without a header, the untrusted peer is an ordinary client.
    let (_s, head) = connect_with(&server, b"", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (from_request, _) = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(
        from_request.map(|a| a.ip().to_string()),
        Some("127.0.0.1".into())
    );
}

#[test]
fn a_trusted_proxy_without_a_valid_header_is_cut() {
    let (server, _seen) = server(proxied());
    let (_s, head) = connect_with(&server, b"", "");
    assert!(
        head.is_empty(),
        "no answer, the connection is closed: {head}"
    );
    let (_s, head) = connect_with(&server, b"PROXY TCP4 not-an-address\r\n", "");
    assert!(head.is_empty(), "{head}");
    assert!(
        eventually(|| server.stats().refused_bad_handshake == 2),
        "{:?}",
        server.stats()
    );
}

/// A handshake evicted while its thread reads the PROXY header is counted once, as evicted:
/// the eviction's shutdown makes that read fail, and the failure is not also counted as a bad
/// handshake.
#[test]
fn a_handshake_evicted_while_reading_its_proxy_header_is_counted_once() {
    let (server, _seen) = server(proxied().max_handshaking(1));
    // The only place goes to a newer connection: the silent one is answered 503 and shut.
    let (silent, _second) = evict_a_silent_handshake(&server);
    // Its server thread has counted (or not) before it closes its descriptor: once only ours
    // is left, the counters are final for this connection.
    let port = silent.local_addr().unwrap().port();
    assert!(eventually(|| connection_fds_on_port(port) == 1));
    let s = server.stats();
    assert_eq!((s.evicted, s.refused_bad_handshake), (1, 0), "{s:?}");
}

#[test]
fn per_address_limits_count_the_client_not_the_proxy() {
    let (server, seen) = server(proxied().max_connections_per_ip(1));
    let (_a, head) = connect_with(&server, &v2_header([192, 0, 2, 1], 1000), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Another client through the same proxy: its own address, its own count.
    let (_b, head) = connect_with(&server, &v2_header([192, 0, 2, 2], 1000), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The first client again: over its cap of 1.
    let (_c, head) = connect_with(&server, &v2_header([192, 0, 2, 1], 1001), "");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("from this address"), "{head}");
    assert_eq!(server.stats().refused_per_address, 1);
    drop(seen);
}

#[test]
fn forwarded_headers_are_believed_from_trusted_proxies_only() {
    let (server, seen) = server(
        Server::builder()
            .trusted_proxies(["127.0.0.1"])
            .forwarded_headers(true),
    );
    let (_s, head) = connect_with(&server, b"", "X-Forwarded-For: 1.1.1.1, 203.0.113.50\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (from_request, from_socket) = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    let client: std::net::IpAddr = "203.0.113.50".parse().unwrap();
    assert_eq!(from_request.map(|a| a.ip()), Some(client));
    assert_eq!(from_socket.map(|a| a.ip()), Some(client));
    let (_s, head) = connect_with(&server, b"", "Forwarded: for=\"[2001:db8::7]:99\"\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (from_request, _) = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(
        from_request.map(|a| a.ip()),
        Some("2001:db8::7".parse().unwrap())
    );

    // From a peer that is not a trusted proxy the same header is ignored.
    let (other, seen) = self::server(
        Server::builder()
            .trusted_proxies(["10.0.0.0/8"])
            .forwarded_headers(true),
    );
    let (_s, head) = connect_with(&other, b"", "X-Forwarded-For: 203.0.113.50\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (from_request, _) = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(
        from_request.map(|a| a.ip().to_string()),
        Some("127.0.0.1".into())
    );
}

#[test]
fn bind_refuses_a_bad_trusted_list_or_forwarding_without_one() {
    let handler = |_: &syncws::Request| Accept::upgrade(Listener::new());
    let err = Server::builder()
        .trusted_proxies(["10.0.0.0/33"])
        .bind("127.0.0.1:0", handler)
        .unwrap_err();
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
    let err = Server::builder()
        .proxy_protocol(true)
        .bind("127.0.0.1:0", handler)
        .unwrap_err();
    assert!(err.to_string().contains("need trusted_proxies"), "{err}");
}
