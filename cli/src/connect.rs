//! `syncws connect`: stdin lines (or `--send` messages) go out as text messages, messages
//! print as they arrive; the end of input closes with 1000 and the program exits once the
//! close handshake is done, with a status that says how the socket ended.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use syncws::{
    Client, Ended, Error, Event, Proxy, Reconnect, ReconnectingWebSocket, Request, WebSocket,
};

use crate::Exit;
use crate::output::{Binary, Printer};

/// Connect to a WebSocket server: send stdin lines, print what arrives.
#[derive(clap::Args)]
#[command(
    long_about = "Connects to URL (ws:// or wss://). Each line of standard input is sent as a text \
        message; each message that arrives is printed on standard output (text as it is, binary \
        as hex or base64), one per line; notes for a person (connected, closing, closed, \
        failures) go to standard error, so a pipe carries only the messages. When input ends \
        (Ctrl-D, or the end of a pipe) the socket closes with 1000; what still arrives is \
        printed, and the program exits once the close handshake is done.\n\n\
        Exit status: 0 after a clean close, 1 on a failure (connection, TLS, protocol), 2 on bad \
        arguments, 3 when the server refused the upgrade (its status and headers are printed), \
        4 on a timeout (--timeout, or the connect, read, pong or close timeout).",
    after_help = "Examples:\n  \
        syncws connect ws://127.0.0.1:9000/\n  \
        syncws connect wss://api.example.com/feed -H 'Authorization: Bearer TOKEN' -s feed.v2\n  \
        syncws connect ws://127.0.0.1:9000/ --send hello --count 1      # one request, one answer\n  \
        tail -f events.log | syncws connect ws://127.0.0.1:9000/ --reconnect\n  \
        syncws connect ws://127.0.0.1:9000/ --json --timeout 10s | jq .event"
)]
pub struct Args {
    /// The server's URL: ws://host[:port]/path or wss://...
    url: String,
    /// A request header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A subprotocol to offer (repeatable, in order of preference).
    #[arg(short = 's', long = "subprotocol", value_name = "PROTOCOL")]
    subprotocols: Vec<String>,
    /// Connect through this proxy: http://[user:pass@]host:port (HTTP CONNECT) or
    /// socks5://, socks5h://. Default: the environment's (HTTPS_PROXY, ALL_PROXY, NO_PROXY...).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    proxy: Option<String>,
    /// Connect directly, ignoring the proxy environment variables.
    #[arg(long)]
    no_proxy: bool,
    /// Trust the CA certificates in this PEM file (as well as the system's).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// DANGER: accept any certificate and any host name for wss:// (no protection against a
    /// man in the middle). For test servers only.
    #[arg(long)]
    insecure: bool,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    no_compression: bool,
    /// Send a ping this often (e.g. 30s); the socket fails if no pong comes within one interval.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    ping_interval: Option<Duration>,
    /// The largest message accepted, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<u64>,
    /// How long the TCP connect, TLS and upgrade may take (default 10s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    connect_timeout: Option<Duration>,
    /// Reconnect (with backoff) when the connection drops; input is held meanwhile.
    #[arg(long)]
    reconnect: bool,
    /// Print one JSON object per line for every event (open with the response, message,
    /// closing, closed, failure), each with a timestamp; nothing on standard error.
    #[arg(long)]
    json: bool,
    /// How binary messages are printed.
    #[arg(long, value_enum, default_value = "hex")]
    binary: Binary,
    /// Send this text message instead of reading standard input (repeatable, in order); the
    /// socket closes after them, or after --count messages arrived, or at --timeout.
    #[arg(long = "send", value_name = "TEXT")]
    send: Vec<String>,
    /// Close with 1000 once this many messages have arrived.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Give up after this long (exit status 4), whatever is happening.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// The socket, plain or reconnecting.
#[derive(Clone)]
enum Handle {
    Plain(WebSocket),
    Reconnecting(ReconnectingWebSocket),
}

impl Handle {
    fn send(&self, text: String) -> bool {
        match self {
            Handle::Plain(ws) => ws.send(text),
            Handle::Reconnecting(ws) => ws.send(text),
        }
    }

    fn close(&self) {
        let _ = match self {
            Handle::Plain(ws) => ws.close(1000, None),
            Handle::Reconnecting(ws) => ws.close(1000, None),
        };
    }

    fn cancel(&self) {
        match self {
            Handle::Plain(ws) => ws.cancel(),
            Handle::Reconnecting(ws) => ws.cancel(),
        }
    }
}

fn client(args: &Args, printer: &Printer) -> Result<Client, String> {
    let mut builder = Client::builder();
    if let Some(p) = &args.proxy {
        let proxy = if p.starts_with("socks") {
            Proxy::socks5(p)
        } else {
            Proxy::http(p)
        };
        builder = builder.proxy(proxy.map_err(|e| format!("--proxy: {e}"))?);
    }
    if args.no_proxy {
        builder = builder.proxy(Proxy::none());
    }
    if args.insecure {
        printer.note("--insecure: certificate and host name checks are OFF for this connection");
    }
    if let Some(tls) = tls_connector(args.ca_file.as_deref(), args.insecure)? {
        builder = builder.tls_connector(tls);
    }
    if args.no_compression {
        builder = builder.compression(false);
    }
    if let Some(d) = args.ping_interval {
        builder = builder.ping_interval(d);
    }
    if let Some(n) = args.max_message_size {
        builder = builder.max_message_size(n);
    }
    if let Some(d) = args.connect_timeout {
        builder = builder.connect_timeout(d);
    }
    Ok(builder.build())
}

fn request(args: &Args) -> Result<Request, String> {
    let mut builder = Request::builder(&args.url);
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected \"Name: value\""))?;
        builder = builder.header(name.trim(), value.trim());
    }
    for p in &args.subprotocols {
        builder = builder.subprotocol(p.clone());
    }
    builder.build().map_err(|e| e.to_string())
}

/// The exit status for how the socket ended.
fn status(how: &Ended) -> Exit {
    match how {
        Ended::Closed { .. } => Exit::Clean,
        Ended::Failed { error, .. } => match error {
            Error::HandshakeRejected {
                response: Some(_), ..
            } => Exit::Refused,
            Error::ConnectTimeout(_)
            | Error::ReadTimeout(_)
            | Error::WriteTimeout(_)
            | Error::CloseTimeout(_)
            | Error::PongTimeout { .. } => Exit::Timeout,
            _ => Exit::Failed,
        },
        _ => Exit::Failed,
    }
}

pub fn run(args: Args) -> Exit {
    let printer = Printer {
        json: args.json,
        binary: args.binary,
    };
    let (client, request) = match client(&args, &printer).and_then(|c| Ok((c, request(&args)?))) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("syncws connect: {e}");
            return Exit::Usage;
        }
    };
    let (listener, events) = syncws::channel();
    let handle = if args.reconnect {
        Handle::Reconnecting(client.reconnecting(request, Reconnect::default(), listener))
    } else {
        Handle::Plain(client.new_web_socket(request, listener))
    };
    if args.send.is_empty() {
        // Standard input, on its own thread: a blocking read must not hold up the output.
        let input = handle.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if !input.send(line) {
                    break;
                }
            }
            input.close();
        });
    } else {
        for text in &args.send {
            handle.send(text.clone());
        }
        if args.count.is_none() && args.timeout.is_none() {
            // Queued behind the messages: nothing sent before the close is lost.
            handle.close();
        }
    }
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut received = 0u64;
    loop {
        let event = match deadline {
            None => events.recv().ok(),
            Some(d) => match events.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(e) => Some(e),
                Err(syncws::crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if printer.json {
                        printer_timeout(&args);
                    } else {
                        printer.note(&format!(
                            "timeout: {} passed",
                            humantime::format_duration(args.timeout.unwrap_or_default())
                        ));
                    }
                    handle.cancel();
                    return Exit::Timeout;
                }
                Err(_) => None,
            },
        };
        let Some(event) = event else {
            return Exit::Failed;
        };
        match event {
            Event::Open(r) => printer.open(&r),
            Event::Message(m) => {
                printer.message(&m);
                received += 1;
                if args.count == Some(received) {
                    handle.close();
                }
            }
            Event::Closing { code, reason } => printer.closing(code, &reason),
            Event::Ended(how) => {
                printer.ended(&how);
                return status(&how);
            }
            _ => {}
        }
    }
}

fn printer_timeout(args: &Args) {
    let secs = args.timeout.unwrap_or_default().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "event": "timeout",
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "after_seconds": secs,
        })
    );
}

/// The TLS connector `--ca-file` and `--insecure` ask for (`connect` and `bridge`), or `None`
/// for the default one: an extra trusted root, and no certificate or host name checks.
pub(crate) fn tls_connector(
    ca_file: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Option<syncws::native_tls::TlsConnector>, String> {
    if ca_file.is_none() && !insecure {
        return Ok(None);
    }
    let mut tls = syncws::native_tls::TlsConnector::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        let cert = syncws::native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        tls.add_root_certificate(cert);
    }
    if insecure {
        tls.danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    }
    tls.build().map(Some).map_err(|e| format!("TLS: {e}"))
}
