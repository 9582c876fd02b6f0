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
use syncws::{Accept, ForwardedHeader, Listener, Server, ServerBuilder};

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
    connect_with_bytes(server, prefix, extra_headers.as_bytes())
}

/// [`connect_with`], with header bytes that need not be UTF-8.
fn connect_with_bytes(server: &Server, prefix: &[u8], extra_headers: &[u8]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut bytes = prefix.to_vec();
    let request = upgrade_request("\u{0}");
    let (before, after) = request.split_once('\u{0}').unwrap();
    bytes.extend(before.as_bytes());
    bytes.extend(extra_headers);
    bytes.extend(after.as_bytes());
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
// Linux only: it waits for the server to close the evicted descriptor, seen in /proc.
#[cfg(target_os = "linux")]
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

fn behind(header: ForwardedHeader, trusted: &str) -> ServerBuilder {
    Server::builder()
        .trusted_proxies([trusted])
        .forwarded_header(header)
}

/// The client's IP as the handler and the open socket saw it (they must agree).
fn seen_ip(seen: &Seen) -> String {
    let (from_request, from_socket) = seen.recv_timeout(EVENT_TIMEOUT).unwrap();
    assert_eq!(from_request.map(|a| a.ip()), from_socket.map(|a| a.ip()));
    from_request.map_or("none".into(), |a| a.ip().to_string())
}

#[test]
fn the_forwarded_header_is_believed_from_trusted_proxies_only() {
    let (server, seen) = server(behind(ForwardedHeader::XForwardedFor, "127.0.0.1"));
    let (_s, head) = connect_with(&server, b"", "X-Forwarded-For: 1.1.1.1, 203.0.113.50\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "203.0.113.50");

    let (server, seen) = self::server(behind(ForwardedHeader::Forwarded, "127.0.0.1"));
    let (_s, head) = connect_with(&server, b"", "Forwarded: for=\"[2001:db8::7]:99\"\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "2001:db8::7");

    // From a peer that is not a trusted proxy the same header is ignored.
    let (other, seen) = self::server(behind(ForwardedHeader::XForwardedFor, "10.0.0.0/8"));
    let (_s, head) = connect_with(&other, b"", "X-Forwarded-For: 203.0.113.50\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "127.0.0.1");
}

/// Nginx and HAProxy append to X-Forwarded-For and pass a `Forwarded`
/// the client wrote through untouched; a server reading X-Forwarded-For never believes it,
/// for the address or for the per-address quota.
#[test]
fn a_forwarded_header_the_client_wrote_is_not_believed_beside_x_forwarded_for() {
    let (server, seen) =
        server(behind(ForwardedHeader::XForwardedFor, "127.0.0.1").max_connections_per_ip(1));
    let forged = |n: u8| format!("Forwarded: for=6.6.6.{n}\r\nX-Forwarded-For: 203.0.113.50\r\n");
    let (_a, head) = connect_with(&server, b"", &forged(1));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "203.0.113.50");
    // Varying `for=` does not buy a second socket: the client's quota is its real address's.
    let (_b, head) = connect_with(&server, b"", &forged(2));
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("from this address"), "{head}");
    // And the other way round: a server reading `Forwarded` ignores X-Forwarded-For.
    let (server, seen) = self::server(behind(ForwardedHeader::Forwarded, "127.0.0.1"));
    let (_c, head) = connect_with(
        &server,
        b"",
        "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=203.0.113.51\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "203.0.113.51");
}

/// Nginx joins what the client sent with the address it saw into one
/// value (`"\xff, <client>"`); the client's garbage must not make it look like the proxy, and an
/// unreadable hop the proxy appended is refused, never taken as the proxy.
#[test]
fn garbage_left_of_the_client_is_skipped_and_an_unreadable_last_hop_is_refused_with_400() {
    let (server, seen) =
        server(behind(ForwardedHeader::XForwardedFor, "127.0.0.1").max_connections_per_ip(1));
    let (_a, head) =
        connect_with_bytes(&server, b"", b"X-Forwarded-For: \xff\xfe, 203.0.113.60\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "203.0.113.60");
    // Not counted under the proxy's address: another client through it still gets in.
    let (_b, head) = connect_with_bytes(&server, b"", b"X-Forwarded-For: \xff, 203.0.113.61\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "203.0.113.61");
    let (_c, head) = connect_with_bytes(&server, b"", b"X-Forwarded-For: 203.0.113.62, \xff\r\n");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("hop 1 from the right"), "{head}");
    assert_eq!(server.stats().refused_bad_handshake, 1);
}

/// Once a PROXY header names the client, its handshake counts under the
/// client's address. One client's idle PROXY-only connections then evict only each other,
/// never another proxied client's handshake (before, all were the proxy's, and the victim, the
/// oldest, went first).
#[test]
fn one_proxied_clients_idle_connections_do_not_evict_another_proxied_clients_handshake() {
    let (server, seen) = server(proxied().max_handshaking(8));
    let addr = server.local_addr();
    // The victim: its PROXY header and the first half of its request.
    let request = upgrade_request("");
    let (first, second) = request.split_at(request.len() / 2);
    let mut victim = TcpStream::connect(addr).unwrap();
    victim.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut bytes = v2_header([192, 0, 2, 2], 2000);
    bytes.extend(first.as_bytes());
    victim.write_all(&bytes).unwrap();
    assert!(eventually(|| server.stats().handshaking == 1));
    // The attacker: PROXY headers only, more than every place, each counted before the next.
    let mut idle = Vec::new();
    for i in 0..12u16 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&v2_header([198, 51, 100, 66], 3000 + i))
            .unwrap();
        let stats = || server.stats();
        assert!(
            eventually(|| stats().handshaking + stats().evicted == u64::from(i) + 2),
            "{:?}",
            stats()
        );
        idle.push(s);
    }
    assert_eq!(server.stats().evicted, 5, "the attacker's own");
    victim.write_all(second.as_bytes()).unwrap();
    let head = read_head(&mut victim).unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(seen_ip(&seen), "192.0.2.2");
}

/// `max_handshaking_per_ip` applies to proxied clients once their
/// PROXY header names them (before, a trusted proxy's connections were all exempt).
#[test]
fn max_handshaking_per_ip_applies_to_a_proxied_client() {
    let (server, _seen) = server(proxied().max_handshaking_per_ip(2));
    let mut idle = Vec::new();
    for i in 0..3u16 {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(&v2_header([198, 51, 100, 67], 4000 + i))
            .unwrap();
        idle.push(s);
    }
    assert!(
        eventually(|| {
            let s = server.stats();
            (s.evicted, s.handshaking) == (1, 2)
        }),
        "{:?}",
        server.stats()
    );
    // Another client through the same proxy is not held to the first one's cap.
    let (_s, head) = connect_with(&server, &v2_header([198, 51, 100, 68], 1), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
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
    let err = Server::builder()
        .forwarded_header(ForwardedHeader::XForwardedFor)
        .bind("127.0.0.1:0", handler)
        .unwrap_err();
    assert!(err.to_string().contains("need trusted_proxies"), "{err}");
}
