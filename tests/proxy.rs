//! Proxies: hand-written HTTP CONNECT and SOCKS5 proxies on 127.0.0.1, well- and
//! ill-behaved, in front of the crate's own echo server; and the environment default, in a
//! child process of this test binary. Real proxies (tinyproxy, dante) are in
//! `tests/real_proxies.rs`, run by `scripts/proxies.sh`.
// Half of these run over wss, and the shared echo helpers take a TLS identity: the file
// needs a TLS backend (the default build has one; `.ci/run` also builds without).
#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use common::echo::{echo_server, failure, round_trip};
use common::raw::{header_value, read_head};
use common::*;
use crossbeam_channel::{Receiver, Sender};
use syncws::{Client, Error, Proxy};

// ---------------------------------------------------------------------------------------------
// Hand-written proxies
// ---------------------------------------------------------------------------------------------

/// A proxy on a fresh 127.0.0.1 port: each connection runs `handle` on its own thread, which
/// reports what it saw on `seen`. The accept thread lives as long as the test process.
struct FakeProxy<T> {
    port: u16,
    seen: Receiver<T>,
}

impl<T: Send + 'static> FakeProxy<T> {
    fn start(handle: impl Fn(TcpStream, &Sender<T>) + Send + Sync + 'static) -> FakeProxy<T> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = crossbeam_channel::unbounded();
        let handle = Arc::new(handle);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handle, tx) = (handle.clone(), tx.clone());
                thread::spawn(move || handle(stream, &tx));
            }
        });
        FakeProxy { port, seen }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The next thing the proxy saw.
    fn next(&self) -> T {
        self.seen
            .recv_timeout(EVENT_TIMEOUT)
            .expect("the proxy saw nothing")
    }
}

/// What an HTTP proxy saw: a request head, then (if it tunneled) the first bytes through it.
#[derive(Debug)]
enum Seen {
    Head(String),
    Tunneled(Vec<u8>),
}

impl FakeProxy<Seen> {
    fn head(&self) -> String {
        match self.next() {
            Seen::Head(h) => h,
            other => panic!("expected a request head, got {other:?}"),
        }
    }

    fn tunneled(&self) -> Vec<u8> {
        match self.next() {
            Seen::Tunneled(b) => b,
            other => panic!("expected tunneled bytes, got {other:?}"),
        }
    }
}

/// Copies both ways between `client` and `upstream` until both ends are done; reports the
/// first 16 bytes the client sent through the tunnel.
fn pipe(mut client: TcpStream, mut upstream: TcpStream, seen: &Sender<Seen>) {
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let back = thread::spawn(move || {
        let _ = io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
    let mut first = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if first.len() < 16 {
                    first.extend_from_slice(&buf[..n]);
                    if first.len() >= 16 {
                        let _ = seen.send(Seen::Tunneled(first.clone()));
                    }
                }
                if upstream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// A correct CONNECT proxy that tunnels every request to `upstream`, whatever it names.
fn tunnel_proxy(upstream: SocketAddr) -> FakeProxy<Seen> {
    FakeProxy::start(move |mut s, seen| {
        let Ok(head) = read_head(&mut s) else { return };
        let _ = seen.send(Seen::Head(head));
        let upstream = TcpStream::connect(upstream).expect("upstream");
        s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        pipe(s, upstream, seen);
    })
}

/// A proxy that reads the request head and answers `answer` (then closes).
fn answering_proxy(answer: &'static [u8]) -> FakeProxy<Seen> {
    FakeProxy::start(move |mut s, seen| {
        let Ok(head) = read_head(&mut s) else { return };
        let _ = seen.send(Seen::Head(head));
        let _ = s.write_all(answer);
        // Let the client read the answer before the FIN, as a real proxy would.
        let _ = s.shutdown(Shutdown::Write);
        let _ = s.read(&mut [0u8; 1]);
    })
}

fn client_via(proxy: Proxy) -> Client {
    Client::builder().proxy(proxy).build()
}

fn http_proxy(url: &str) -> Proxy {
    Proxy::http(url).expect("proxy URL")
}

fn proxy_message(error: Error) -> String {
    match error {
        Error::Proxy(m) => {
            assert_eq!(m, Error::Proxy(m.clone()).to_string());
            m
        }
        other => panic!("expected Error::Proxy, got {other:?}"),
    }
}

fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} should contain {p:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT: working tunnels
// ---------------------------------------------------------------------------------------------

#[test]
fn ws_through_connect_proxy_sends_an_origin_form_upgrade_in_the_tunnel() {
    let echo = echo_server(None);
    let proxy = tunnel_proxy(echo.local_addr());
    let client = client_via(http_proxy(&proxy.url("http")));
    let url = echo.url(); // ws://localhost:PORT/: loopback, proxied because the proxy is explicit
    round_trip(&client, &url);

    let port = echo.local_addr().port();
    let head = proxy.head();
    assert!(
        head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{head}"
    );
    assert_eq!(
        header_value(&head, "Host").as_deref(),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(header_value(&head, "Proxy-Authorization"), None);
    // Inside the tunnel: the ordinary request line, never the absolute form.
    let first = proxy.tunneled();
    assert!(
        first.starts_with(b"GET / HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
}

#[test]
fn wss_through_connect_proxy_with_basic_auth() {
    let tls = test_tls();
    let echo = echo_server(Some(&tls));
    let port = echo.local_addr().port();
    let proxy = tunnel_proxy(echo.local_addr());
    let client = tls
        .client()
        .proxy(http_proxy(&format!(
            "http://alice:p%40ss%3Aword@127.0.0.1:{}",
            proxy.port
        )))
        .build();
    // The certificate is for localhost: TLS runs with the server, checked against its name.
    round_trip(&client, &format!("wss://localhost:{port}/"));

    let head = proxy.head();
    assert!(
        head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{head}"
    );
    let expected = base64::engine::general_purpose::STANDARD.encode("alice:p@ss:word");
    assert_eq!(
        header_value(&head, "Proxy-Authorization"),
        Some(format!("Basic {expected}"))
    );
    // The first bytes through the tunnel are a TLS handshake record (ClientHello).
    assert_eq!(proxy.tunneled()[0], 0x16);
}

#[test]
fn connect_names_ipv6_targets_in_brackets() {
    let proxy = answering_proxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let client = client_via(http_proxy(&proxy.url("http")));
    let error = proxy_message(failure(&client, "ws://[fd00::1]:8080/"));
    let head = proxy.head();
    assert!(
        head.starts_with("CONNECT [fd00::1]:8080 HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(
        header_value(&head, "Host").as_deref(),
        Some("[fd00::1]:8080")
    );
    assert_contains(
        &error,
        &["refused the tunnel to [fd00::1]:8080: 403 Forbidden"],
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT: proxies that say no or misbehave
// ---------------------------------------------------------------------------------------------

const PASSWORD: &str = "hunter2-secret";

#[test]
fn proxy_407_names_the_proxy_and_hides_the_password() {
    let proxy = answering_proxy(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\n\
          Content-Length: 5\r\n\r\nnope!",
    );
    let with_creds = client_via(http_proxy(&format!(
        "http://alice:{PASSWORD}@127.0.0.1:{}",
        proxy.port
    )));
    let error = proxy_message(failure(&with_creds, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &[
            &format!("proxy http://127.0.0.1:{} refused the tunnel", proxy.port),
            "407 Proxy Authentication Required",
            "check the proxy's user name and password",
        ],
    );
    assert!(
        !error.contains(PASSWORD) && !error.contains("alice"),
        "{error}"
    );
    assert!(header_value(&proxy.head(), "Proxy-Authorization").is_some());

    let without = client_via(http_proxy(&proxy.url("http")));
    // (The same hints go with a 401, which is what tinyproxy sends: see real_proxies.rs.)
    let error = proxy_message(failure(&without, "ws://127.0.0.1:9/"));
    assert_contains(&error, &["407", "put them in the proxy URL"]);
    assert_eq!(header_value(&proxy.head(), "Proxy-Authorization"), None);
}

#[test]
fn proxy_refusals_name_the_status() {
    for (answer, words) in [
        (
            &b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"[..],
            "403 Forbidden",
        ),
        (
            b"HTTP/1.0 502 Bad Gateway\r\n\r\n<html>upstream down</html>",
            "502 Bad Gateway",
        ),
    ] {
        let proxy = answering_proxy(answer);
        let client = client_via(http_proxy(&format!(
            "http://u:{PASSWORD}@127.0.0.1:{}",
            proxy.port
        )));
        let error = proxy_message(failure(&client, "wss://127.0.0.1:9/"));
        assert_contains(
            &error,
            &[
                &format!(
                    "proxy http://127.0.0.1:{} refused the tunnel to 127.0.0.1:9: ",
                    proxy.port
                ),
                words,
            ],
        );
        assert!(!error.contains(PASSWORD), "{error}");
    }
}

#[test]
fn proxy_that_closes_at_once() {
    let proxy = FakeProxy::<()>::start(|s, seen| {
        drop(s);
        let _ = seen.send(());
    });
    let client = client_via(http_proxy(&format!(
        "http://u:{PASSWORD}@127.0.0.1:{}",
        proxy.port
    )));
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    proxy.next();
    // Closed before our CONNECT could be read, the proxy may also reset it: either way the
    // message names the proxy and says it went away.
    assert_contains(&error, &[&format!("proxy http://127.0.0.1:{}", proxy.port)]);
    assert!(
        error.contains("closed the connection before answering CONNECT")
            || error.contains("connection failed during CONNECT"),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
}

#[test]
fn proxy_that_closes_after_reading_the_request() {
    let proxy = answering_proxy(b"");
    let client = client_via(http_proxy(&proxy.url("http")));
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &[&format!(
            "proxy http://127.0.0.1:{} closed the connection before answering CONNECT",
            proxy.port
        )],
    );
    proxy.head();
}

#[test]
fn proxy_that_answers_garbage() {
    for garbage in [
        &b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"[..],
        b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50",
        b"<html>hello</html>\r\n\r\n",
    ] {
        let proxy = answering_proxy(garbage);
        let client = client_via(http_proxy(&proxy.url("http")));
        let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
        assert_contains(
            &error,
            &[&format!(
                "proxy http://127.0.0.1:{} answered CONNECT with something that is not HTTP",
                proxy.port
            )],
        );
    }
}

#[test]
fn proxy_that_cuts_its_answer_short() {
    let proxy = answering_proxy(b"HTTP/1.1 200 Connection est");
    let client = client_via(http_proxy(&proxy.url("http")));
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &["closed the connection in the middle of its answer to CONNECT"],
    );
}

#[test]
fn proxy_that_sends_data_before_the_tunnel_is_used() {
    let proxy = answering_proxy(b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n");
    let client = client_via(http_proxy(&proxy.url("http")));
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(&error, &["sent 36 bytes after its answer to CONNECT"]);
}

#[test]
fn proxy_with_an_endless_head_is_cut_off() {
    let proxy = FakeProxy::<()>::start(|mut s, seen| {
        if read_head(&mut s).is_err() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Filler: {}\r\n", "f".repeat(1000));
        // Stops when the client gives up and closes.
        while s.write_all(line.as_bytes()).is_ok() {}
        let _ = seen.send(());
    });
    let client = client_via(http_proxy(&proxy.url("http")));
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(&error, &["answered CONNECT with a head over 64 KiB"]);
    proxy.next();
}

#[test]
fn proxy_that_never_answers_fails_within_the_connect_timeout() {
    let proxy = FakeProxy::<()>::start(|mut s, seen| {
        if read_head(&mut s).is_err() {
            return;
        }
        // Say nothing; wait for the client to give up.
        let _ = s.read(&mut [0u8; 1]);
        let _ = seen.send(());
    });
    fails_with_the_connect_timeout(http_proxy(&proxy.url("http")));
    // The client closed its connection to the proxy.
    proxy.next();
}

#[test]
fn socks_proxy_that_never_answers_fails_within_the_connect_timeout() {
    let proxy = FakeProxy::<()>::start(|mut s, seen| {
        let _ = s.read(&mut [0u8; 3]);
        while s.read(&mut [0u8; 64]).is_ok_and(|n| n > 0) {}
        let _ = seen.send(());
    });
    fails_with_the_connect_timeout(Proxy::socks5(&proxy.url("socks5h")).unwrap());
    proxy.next();
}

#[test]
fn unreachable_proxy_is_named() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("http://u:{PASSWORD}@127.0.0.1:{port}"),
        format!("socks5://u:{PASSWORD}@127.0.0.1:{port}"),
    ] {
        let proxy = if url.starts_with("http") {
            http_proxy(&url)
        } else {
            Proxy::socks5(&url).unwrap()
        };
        let error = proxy_message(failure(&client_via(proxy), "ws://127.0.0.1:9/"));
        let scheme = url.split(':').next().unwrap();
        assert_contains(
            &error,
            &[&format!(
                "proxy {scheme}://127.0.0.1:{port} could not be reached"
            )],
        );
        assert!(!error.contains(PASSWORD), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// SOCKS5
// ---------------------------------------------------------------------------------------------

/// What a SOCKS5 proxy saw.
#[derive(Debug, Default, Clone, PartialEq)]
struct SocksSeen {
    methods: Vec<u8>,
    credentials: Option<(String, String)>,
    atyp: u8,
    /// An IP address or a host name, as received.
    address: String,
    port: u16,
}

#[derive(Clone, Copy)]
struct SocksScript {
    /// Required credentials (method 2), or none (method 0).
    credentials: Option<(&'static str, &'static str)>,
    /// REP for the CONNECT reply; 0 tunnels to the upstream.
    reply: u8,
    upstream: Option<SocketAddr>,
}

fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn socks_session(
    mut s: TcpStream,
    script: SocksScript,
    seen: &Sender<SocksSeen>,
) -> io::Result<()> {
    let mut saw = SocksSeen::default();
    let head = read_n(&mut s, 2)?;
    assert_eq!(head[0], 5, "client speaks SOCKS5");
    saw.methods = read_n(&mut s, head[1].into())?;
    match script.credentials {
        None if saw.methods.contains(&0) => s.write_all(&[5, 0])?,
        Some(_) if saw.methods.contains(&2) => {
            s.write_all(&[5, 2])?;
            let ver_ulen = read_n(&mut s, 2)?;
            assert_eq!(ver_ulen[0], 1, "RFC 1929 version");
            let user = read_n(&mut s, ver_ulen[1].into())?;
            let plen = read_n(&mut s, 1)?;
            let password = read_n(&mut s, plen[0].into())?;
            let got = (
                String::from_utf8(user).unwrap(),
                String::from_utf8(password).unwrap(),
            );
            let ok = script
                .credentials
                .is_some_and(|(u, p)| (u, p) == (got.0.as_str(), got.1.as_str()));
            saw.credentials = Some(got);
            s.write_all(&[1, if ok { 0 } else { 1 }])?;
            if !ok {
                let _ = seen.send(saw);
                return Ok(());
            }
        }
        _ => {
            s.write_all(&[5, 0xff])?;
            let _ = seen.send(saw);
            return Ok(());
        }
    }
    let request = read_n(&mut s, 4)?;
    assert_eq!(&request[..3], &[5, 1, 0], "CONNECT");
    saw.atyp = request[3];
    saw.address = match saw.atyp {
        1 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(read_n(&mut s, 4)?).unwrap()).to_string(),
        4 => {
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(read_n(&mut s, 16)?).unwrap()).to_string()
        }
        3 => {
            let len = read_n(&mut s, 1)?[0];
            String::from_utf8(read_n(&mut s, len.into())?).unwrap()
        }
        other => panic!("address type {other}"),
    };
    let port = read_n(&mut s, 2)?;
    saw.port = u16::from_be_bytes([port[0], port[1]]);
    let _ = seen.send(saw);
    if script.reply != 0 {
        s.write_all(&[5, script.reply, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(());
    }
    let upstream = TcpStream::connect(script.upstream.expect("upstream"))?;
    // A domain-type bound address, so the client must read a reply of variable length.
    s.write_all(&[5, 0, 0, 3, 4, b'h', b'e', b'r', b'e', 0x12, 0x34])?;
    let (tx, _rx) = crossbeam_channel::unbounded();
    pipe(s, upstream, &tx);
    Ok(())
}

fn socks_proxy(script: SocksScript) -> FakeProxy<SocksSeen> {
    FakeProxy::start(move |s, seen| {
        let _ = socks_session(s, script, seen);
    })
}

#[test]
fn socks5_resolves_here_and_sends_an_ip_address() {
    let echo = echo_server(None);
    let proxy = socks_proxy(SocksScript {
        credentials: None,
        reply: 0,
        upstream: Some(echo.local_addr()),
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5")).unwrap());
    round_trip(&client, &echo.url()); // ws://localhost:PORT/
    let saw = proxy.next();
    assert_eq!(
        saw.methods,
        [0],
        "no credentials: only 'no authentication' offered"
    );
    assert!(saw.atyp == 1 || saw.atyp == 4, "{saw:?}");
    let ip: std::net::IpAddr = saw.address.parse().unwrap();
    assert!(ip.is_loopback(), "{saw:?}");
    assert_eq!(saw.port, echo.local_addr().port());
}

#[test]
fn socks5h_sends_the_host_name() {
    let echo = echo_server(None);
    let proxy = socks_proxy(SocksScript {
        credentials: None,
        reply: 0,
        upstream: Some(echo.local_addr()),
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5h")).unwrap());
    round_trip(&client, &echo.url());
    let saw = proxy.next();
    assert_eq!((saw.atyp, saw.address.as_str()), (3, "localhost"));
    assert_eq!(saw.port, echo.local_addr().port());
}

#[test]
fn socks5h_sends_ip_literals_as_addresses() {
    let proxy = socks_proxy(SocksScript {
        credentials: None,
        reply: 2,
        upstream: None,
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5h")).unwrap());
    let _ = failure(&client, "ws://[::1]:9/");
    let saw = proxy.next();
    assert_eq!((saw.atyp, saw.address.as_str(), saw.port), (4, "::1", 9));
}

#[test]
fn wss_through_socks5_with_user_and_password() {
    let tls = test_tls();
    let echo = echo_server(Some(&tls));
    let proxy = socks_proxy(SocksScript {
        credentials: Some(("bob", "s3cr:t@x")),
        reply: 0,
        upstream: Some(echo.local_addr()),
    });
    let client = tls
        .client()
        .proxy(
            Proxy::socks5(&format!(
                "socks5h://bob:s3cr%3At%40x@127.0.0.1:{}",
                proxy.port
            ))
            .unwrap(),
        )
        .build();
    round_trip(
        &client,
        &format!("wss://localhost:{}/", echo.local_addr().port()),
    );
    let saw = proxy.next();
    assert_eq!(saw.methods, [0, 2]);
    assert_eq!(saw.credentials, Some(("bob".into(), "s3cr:t@x".into())));
}

#[test]
fn socks5_wrong_password_is_rejected_without_showing_it() {
    let proxy = socks_proxy(SocksScript {
        credentials: Some(("bob", "right")),
        reply: 0,
        upstream: None,
    });
    let client = client_via(
        Proxy::socks5(&format!("socks5://bob:{PASSWORD}@127.0.0.1:{}", proxy.port)).unwrap(),
    );
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &[
            &format!("SOCKS5 proxy socks5://127.0.0.1:{}", proxy.port),
            "rejected the user name and password",
        ],
    );
    assert!(
        !error.contains(PASSWORD) && !error.contains("bob"),
        "{error}"
    );
    assert_eq!(
        proxy.next().credentials,
        Some(("bob".into(), PASSWORD.into()))
    );
}

#[test]
fn socks5_proxy_that_wants_credentials_we_do_not_have() {
    let proxy = socks_proxy(SocksScript {
        credentials: Some(("bob", "right")),
        reply: 0,
        upstream: None,
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5")).unwrap());
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &[
            &format!("SOCKS5 proxy socks5://127.0.0.1:{}", proxy.port),
            "does not accept \"no authentication\"",
            "put them in the proxy URL",
        ],
    );
    assert_eq!(proxy.next().methods, [0]);
}

#[test]
fn socks5_error_replies_are_named() {
    for (code, words) in [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by the proxy's rules"),
        (5, "connection refused by the destination host"),
        (7, "command not supported"),
        (42, "unassigned reply code 42"),
    ] {
        let proxy = socks_proxy(SocksScript {
            credentials: None,
            reply: code,
            upstream: None,
        });
        let client = client_via(Proxy::socks5(&proxy.url("socks5h")).unwrap());
        let error = proxy_message(failure(&client, "ws://example.invalid:9/"));
        assert_eq!(
            error,
            format!(
                "SOCKS5 proxy socks5h://127.0.0.1:{}: {words} (connecting to example.invalid:9)",
                proxy.port
            )
        );
        assert_eq!(proxy.next().address, "example.invalid");
    }
}

#[test]
fn socks5_tries_each_address_the_name_resolves_to() {
    let proxy = socks_proxy(SocksScript {
        credentials: None,
        reply: 4, // host unreachable: worth trying the next address
        upstream: None,
    });
    // A name that resolves to three addresses (socks5://: the client resolves it).
    let client = Client::builder()
        .proxy(Proxy::socks5(&proxy.url("socks5")).unwrap())
        .dns_resolver(|host, port| {
            assert_eq!(host, "multi.test");
            Ok(["192.0.2.1", "192.0.2.2", "2001:db8::3"]
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
                .collect())
        })
        .build();
    let error = proxy_message(failure(&client, "ws://multi.test:9/"));
    assert_contains(&error, &["host unreachable"]);
    let expected = ["192.0.2.1", "192.0.2.2", "2001:db8::3"];
    let tried: Vec<String> = expected.iter().map(|_| proxy.next().address).collect();
    assert_eq!(tried, expected);
    assert!(proxy.seen.try_recv().is_err(), "one attempt per address");
}

#[test]
fn socks5_proxy_that_speaks_something_else() {
    let proxy = FakeProxy::<()>::start(|mut s, seen| {
        let _ = s.read(&mut [0u8; 3]);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let _ = seen.send(());
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5")).unwrap());
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &[&format!(
            "SOCKS5 proxy socks5://127.0.0.1:{} answered with something that is not SOCKS5",
            proxy.port
        )],
    );
    proxy.next();
}

#[test]
fn socks5_proxy_that_closes_mid_handshake() {
    let proxy = FakeProxy::<()>::start(|mut s, seen| {
        let _ = s.read(&mut [0u8; 3]);
        let _ = s.write_all(&[5]);
        let _ = seen.send(());
    });
    let client = client_via(Proxy::socks5(&proxy.url("socks5")).unwrap());
    let error = proxy_message(failure(&client, "ws://127.0.0.1:9/"));
    assert_contains(
        &error,
        &["closed the connection during the SOCKS5 handshake"],
    );
    proxy.next();
}

// ---------------------------------------------------------------------------------------------
// The default: the environment, read by a child process of this binary
// ---------------------------------------------------------------------------------------------

/// Set in the child's environment: which part of the test it runs.
const CHILD: &str = "SYNCWS_PROXY_TEST_CHILD";
const PROXY_VARS: [&str; 9] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Runs this test again in a child process with `vars` as its only proxy variables, and
/// asserts that it passed.
fn run_child(test: &str, role: &str, vars: &[(&str, String)]) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    command.env(CHILD, role);
    for (k, v) in vars {
        command.env(k, v);
    }
    let out = command.output().expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {role} failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}

#[test]
fn environment_proxies_are_the_default() {
    if let Ok(role) = std::env::var(CHILD) {
        return child(&role);
    }
    let echo = echo_server(None);
    let tunnel = tunnel_proxy(echo.local_addr());
    let refuser = answering_proxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let name = "environment_proxies_are_the_default";
    let echo_port = echo.local_addr().port().to_string();

    // ws goes through http_proxy, wss through HTTPS_PROXY; loopback and Proxy::none() direct.
    run_child(
        name,
        "through",
        &[
            ("http_proxy", format!("127.0.0.1:{}", tunnel.port)),
            ("HTTPS_PROXY", refuser.url("http")),
            ("all_proxy", "http://127.0.0.1:9".into()),
            ("SYNCWS_ECHO_PORT", echo_port.clone()),
            ("SYNCWS_REFUSER", refuser.url("http")),
        ],
    );
    assert!(
        tunnel
            .head()
            .starts_with("CONNECT echo.invalid:80 HTTP/1.1\r\n")
    );
    assert!(tunnel.tunneled().starts_with(b"GET / HTTP/1.1\r\n"));
    assert!(
        refuser
            .head()
            .starts_with("CONNECT echo.invalid:443 HTTP/1.1\r\n")
    );
    assert!(
        tunnel.seen.try_recv().is_err(),
        "loopback and Proxy::none() went direct"
    );
    assert!(refuser.seen.try_recv().is_err());

    // no_proxy sends matching servers direct; uppercase HTTP_PROXY is used when alone.
    run_child(
        name,
        "no_proxy",
        &[
            ("HTTP_PROXY", tunnel.url("http")),
            ("no_proxy", "example.com, .invalid".into()),
        ],
    );
    assert!(
        tunnel
            .head()
            .starts_with("CONNECT echo.test:80 HTTP/1.1\r\n")
    );
    assert!(tunnel.tunneled().starts_with(b"GET / HTTP/1.1\r\n"));
    assert!(tunnel.seen.try_recv().is_err(), "echo.invalid went direct");
}

/// The child's side: connects with the default client and checks where each socket went.
fn child(role: &str) {
    let client = Client::new();
    let resolve_error = |url: &str| match failure(&client, url) {
        Error::Io(e) => assert!(
            e.to_string().contains("resolving echo.invalid"),
            "{url}: {e}"
        ),
        other => panic!("{url}: expected a direct connection's resolve error, got {other:?}"),
    };
    match role {
        "through" => {
            // Names under .invalid never resolve: only a proxy can reach them here.
            round_trip(&client, "ws://echo.invalid/");
            let error = proxy_message(failure(&client, "wss://echo.invalid/"));
            let refuser = std::env::var("SYNCWS_REFUSER").unwrap();
            assert_contains(
                &error,
                &[&format!(
                    "proxy {refuser} refused the tunnel to echo.invalid:443: 403"
                )],
            );
            let port = std::env::var("SYNCWS_ECHO_PORT").unwrap();
            round_trip(&client, &format!("ws://127.0.0.1:{port}/"));
            round_trip(&client, &format!("ws://localhost:{port}/"));
            let direct = Client::builder().proxy(Proxy::none()).build();
            match failure(&direct, "ws://echo.invalid/") {
                Error::Io(_) => {}
                other => panic!("Proxy::none() should connect directly: {other:?}"),
            }
        }
        "no_proxy" => {
            resolve_error("ws://echo.invalid/");
            round_trip(&client, "ws://echo.test/");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A connect through `proxy` fails with `ConnectTimeout` at a 1 s connect timeout. The
/// handshake's own timeout is far longer: only the connect timeout can end it.
fn fails_with_the_connect_timeout(proxy: Proxy) {
    let timeout = Duration::from_secs(1);
    let client = Client::builder()
        .proxy(proxy)
        .connect_timeout(timeout)
        .handshake_timeout(Duration::from_secs(300))
        .build();
    let error = failure(&client, "ws://127.0.0.1:9/");
    assert!(
        matches!(error, Error::ConnectTimeout(t) if t == timeout),
        "{error:?}"
    );
}
