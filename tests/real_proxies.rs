//! Through real proxies: Debian's tinyproxy (HTTP CONNECT, without and with Basic auth) and
//! dante (SOCKS5), in front of the crate's own echo server, plain and TLS.
//!
//! Run with `bash scripts/proxies.sh`, which installs and starts the proxies and passes their
//! URLs in `SYNCWS_TINYPROXY`, `SYNCWS_TINYPROXY_AUTH` and `SYNCWS_DANTE`. Built only with
//! the internal feature `_real-proxy-tests`, so plain `cargo test` does not need them.
// Half of these run over wss, and the shared echo helpers take a TLS identity: the file
// needs a TLS backend (the default build has one; `.ci/run` also builds without).
#![cfg(any(feature = "native-tls", feature = "rustls"))]

mod common;

use common::echo::{echo_server, failure, round_trip};
use common::*;
use syncws::{Client, Error, Proxy};

/// A proxy address from the environment; without it the test fails and says what to do.
fn proxy_var(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests need real proxies; run `bash scripts/proxies.sh`, \
             which installs tinyproxy and dante-server, starts them and runs this file"
        )
    })
}

fn tinyproxy() -> Proxy {
    Proxy::http(&proxy_var("SYNCWS_TINYPROXY")).expect("SYNCWS_TINYPROXY")
}

/// `http://user:password@127.0.0.1:port`.
fn tinyproxy_auth_url() -> String {
    proxy_var("SYNCWS_TINYPROXY_AUTH")
}

fn dante(scheme: &str) -> Proxy {
    Proxy::socks5(&format!("{scheme}://{}", proxy_var("SYNCWS_DANTE"))).expect("SYNCWS_DANTE")
}

/// `scheme://host:port` of a proxy URL, as error messages name it.
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host_port = rest.rsplit('@').next().unwrap();
    format!("{scheme}://{host_port}")
}

fn proxy_message(error: Error) -> String {
    match error {
        Error::Proxy(m) => m,
        other => panic!("expected Error::Proxy, got {other:?}"),
    }
}

fn tls_client(tls: &TestTls, proxy: Proxy) -> Client {
    tls.client().proxy(proxy).build()
}

#[test]
fn ws_through_tinyproxy() {
    let echo = echo_server(None);
    let client = Client::builder().proxy(tinyproxy()).build();
    round_trip(
        &client,
        &format!("ws://127.0.0.1:{}/", echo.local_addr().port()),
    );
}

#[test]
fn wss_through_tinyproxy() {
    let tls = test_tls();
    let echo = echo_server(Some(&tls));
    let client = tls_client(&tls, tinyproxy());
    round_trip(
        &client,
        &format!("wss://127.0.0.1:{}/", echo.local_addr().port()),
    );
}

#[test]
fn ws_and_wss_through_tinyproxy_with_basic_auth() {
    let proxy = Proxy::http(&tinyproxy_auth_url()).unwrap();
    let echo = echo_server(None);
    round_trip(
        &Client::builder().proxy(proxy.clone()).build(),
        &format!("ws://127.0.0.1:{}/", echo.local_addr().port()),
    );
    let tls = test_tls();
    let secure = echo_server(Some(&tls));
    round_trip(
        &tls_client(&tls, proxy),
        &format!("wss://127.0.0.1:{}/", secure.local_addr().port()),
    );
}

#[test]
fn tinyproxy_refuses_bad_or_missing_credentials_naming_itself() {
    let good = tinyproxy_auth_url();
    let (_, rest) = good.split_once("://").unwrap();
    let host_port = rest.rsplit('@').next().unwrap();
    let wrong_password = "not-the-password-42";
    let echo = echo_server(None);
    let url = format!("ws://127.0.0.1:{}/", echo.local_addr().port());
    for (proxy_url, hint) in [
        (
            format!("http://syncws:{wrong_password}@{host_port}"),
            "check the proxy's user name and password",
        ),
        (format!("http://{host_port}"), "put them in the proxy URL"),
    ] {
        let client = Client::builder()
            .proxy(Proxy::http(&proxy_url).unwrap())
            .build();
        let error = proxy_message(failure(&client, &url));
        eprintln!("tinyproxy: {error}");
        let expected = format!("proxy {} refused the tunnel", shown(&good));
        assert!(error.contains(&expected), "{error}");
        // tinyproxy 1.11 says 401 Unauthorized where RFC 9110 has 407.
        assert!(
            (error.contains(": 407 ") || error.contains(": 401 ")) && error.contains(hint),
            "{error}"
        );
        assert!(
            !error.contains(wrong_password) && !error.contains("syncws"),
            "{error}"
        );
    }
}

#[test]
fn ws_through_dante_socks5() {
    let echo = echo_server(None);
    let client = Client::builder().proxy(dante("socks5")).build();
    round_trip(
        &client,
        &format!("ws://127.0.0.1:{}/", echo.local_addr().port()),
    );
}

#[test]
fn wss_through_dante_socks5h_resolving_at_the_proxy() {
    let tls = test_tls();
    let echo = echo_server(Some(&tls));
    let client = tls_client(&tls, dante("socks5h"));
    // The name goes to dante, which resolves it; TLS checks the certificate against it.
    round_trip(
        &client,
        &format!("wss://localhost:{}/", echo.local_addr().port()),
    );
}

#[test]
fn dante_reports_a_closed_destination_port() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder().proxy(dante("socks5")).build();
    let error = proxy_message(failure(&client, &format!("ws://127.0.0.1:{port}/")));
    eprintln!("dante: {error}");
    let dante_url = format!("socks5://{}", proxy_var("SYNCWS_DANTE"));
    assert!(
        error.starts_with(&format!("SOCKS5 proxy {dante_url}: ")),
        "{error}"
    );
    assert!(
        error.contains(&format!("(connecting to 127.0.0.1:{port})")),
        "{error}"
    );
}
