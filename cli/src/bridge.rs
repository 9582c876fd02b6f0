//! `syncws bridge FROM TO`: forwards byte streams between TCP (or Unix sockets) and web
//! sockets, both directions at once, each streaming: websocat's `tcp-l:`/`ws-l:` bridges.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use syncws::{Accept, ByteStream, Client, Request, Server};

/// Forward connections between TCP or Unix sockets and web sockets.
#[derive(clap::Args)]
#[command(
    long_about = "Listens at FROM and, for each connection that comes, connects to TO and \
        forwards bytes both ways until both sides are done, as websocat's bridges do. \
        Either side may end its direction first (a half-close): the other direction goes on \
        until it ends too.\n\n\
        FROM is where connections come from:\n  \
        tcp-l:HOST:PORT   a TCP port (port 0 picks a free one)\n  \
        unix-l:PATH       a Unix socket (Unix only)\n  \
        ws-l:HOST:PORT    a web socket server (any path is accepted)\n\n\
        TO is where each one goes:\n  \
        ws://... wss://...  a web socket server (with tcp-l: or unix-l:)\n  \
        tcp:HOST:PORT       a TCP server (with ws-l:)\n  \
        unix:PATH           a Unix socket (with ws-l:; Unix only)\n\n\
        On the web socket side each write is one binary message (up to 64 KiB) and \
        incoming messages of any size are read as they arrive, text or binary. The first line \
        on standard error says where it listens; then one line per connection opened and \
        ended, with the bytes each way.",
    after_help = "Examples:\n  \
        syncws bridge tcp-l:127.0.0.1:6380 ws://gateway.example.com/redis   # redis-cli -p 6380\n  \
        syncws bridge ws-l:0.0.0.0:8080 tcp:127.0.0.1:6379                  # the other end\n  \
        syncws bridge unix-l:/tmp/db.sock wss://gateway.example.com/db\n  \
        syncws bridge ws-l:127.0.0.1:8080 unix:/run/app.sock"
)]
pub struct Args {
    /// Where connections come from: tcp-l:HOST:PORT, unix-l:PATH or ws-l:HOST:PORT.
    from: String,
    /// Where each goes: ws://..., wss://..., tcp:HOST:PORT or unix:PATH.
    to: String,
    /// A request header for ws:// and wss:// (repeatable), "Name: value".
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Trust the CA certificates in this PEM file (as well as the system's), for wss://.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// DANGER: accept any certificate and host name for wss://. For test servers only.
    #[arg(long)]
    insecure: bool,
    /// Use permessage-deflate when the peer agrees (off by default: tunnelled bytes are often
    /// compressed or encrypted already, and deflating them only costs time).
    #[arg(long)]
    compression: bool,
    /// Serve one connection, then exit.
    #[arg(long)]
    once: bool,
}

/// Where connections come from.
enum From {
    Tcp(String),
    #[cfg(unix)]
    Unix(PathBuf),
    Ws(String),
}

/// Where each goes.
enum To {
    Ws(String),
    Tcp(String),
    #[cfg(unix)]
    Unix(PathBuf),
}

fn parse(args: &Args) -> Result<(From, To), String> {
    let from = if let Some(addr) = args.from.strip_prefix("tcp-l:") {
        From::Tcp(addr.to_owned())
    } else if let Some(addr) = args.from.strip_prefix("ws-l:") {
        From::Ws(addr.to_owned())
    } else if let Some(path) = args.from.strip_prefix("unix-l:") {
        #[cfg(unix)]
        {
            From::Unix(PathBuf::from(path))
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            return Err("unix-l: Unix sockets are not available on this platform".into());
        }
    } else {
        return Err(format!(
            "FROM {:?}: expected tcp-l:HOST:PORT, unix-l:PATH or ws-l:HOST:PORT",
            args.from
        ));
    };
    let to = if args.to.starts_with("ws://") || args.to.starts_with("wss://") {
        To::Ws(args.to.clone())
    } else if let Some(addr) = args.to.strip_prefix("tcp:") {
        To::Tcp(addr.to_owned())
    } else if let Some(path) = args.to.strip_prefix("unix:") {
        #[cfg(unix)]
        {
            To::Unix(PathBuf::from(path))
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            return Err("unix: Unix sockets are not available on this platform".into());
        }
    } else {
        return Err(format!(
            "TO {:?}: expected ws://..., wss://..., tcp:HOST:PORT or unix:PATH",
            args.to
        ));
    };
    match (&from, &to) {
        (From::Ws(_), To::Ws(_)) => {
            Err("ws-l: forwards to tcp: or unix:, not to a web socket".into())
        }
        (From::Ws(_), _) | (_, To::Ws(_)) => Ok((from, to)),
        _ => Err("tcp-l: and unix-l: forward to a web socket (ws:// or wss://)".into()),
    }
}

pub fn run(args: Args) -> ExitCode {
    let (from, to) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("syncws bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match from {
        From::Ws(addr) => serve_ws(&args, &addr, to),
        From::Tcp(addr) => serve_tcp(&args, &addr, to),
        #[cfg(unix)]
        From::Unix(path) => serve_unix(&args, &path, to),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncws bridge: {e}");
            ExitCode::from(1)
        }
    }
}

/// A local stream that can be read and written from two threads and half-closed.
trait Local: Read + Write + Send + Sized + 'static {
    fn try_clone(&self) -> io::Result<Self>;
    fn shutdown_write(&self);
}

impl Local for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

#[cfg(unix)]
impl Local for std::os::unix::net::UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        std::os::unix::net::UnixStream::try_clone(self)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// The web socket client for `To::Ws`.
fn client(args: &Args) -> Result<Client, String> {
    let mut builder = Client::builder()
        .compression(args.compression)
        // Read as they arrive: a message's size costs no memory.
        .max_streamed_message_size(u64::MAX);
    if args.insecure {
        eprintln!("# --insecure: certificate and host name checks are OFF");
    }
    if let Some(tls) = crate::connect::tls_connector(args.ca_file.as_deref(), args.insecure)? {
        builder = builder.tls_connector(tls);
    }
    Ok(builder.build())
}

fn request(args: &Args, url: &str) -> Result<Request, String> {
    let mut builder = Request::builder(url);
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected \"Name: value\""))?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.build().map_err(|e| e.to_string())
}

/// tcp-l: → ws://: each accepted connection gets a web socket of its own.
fn serve_tcp(args: &Args, addr: &str, to: To) -> Result<(), String> {
    let To::Ws(url) = to else {
        return Err("tcp-l: forwards to a web socket".into());
    };
    let client = Arc::new(client(args)?);
    let request = request(args, &url)?;
    let listener = TcpListener::bind(addr).map_err(|e| format!("tcp-l:{addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "listening on tcp-l:{local}, forwarding to {}",
        request.url()
    );
    accept_each(
        args.once,
        || listener.accept().map(|(s, _)| s),
        move |tcp, n| {
            let _ = tcp.set_nodelay(true);
            match ByteStream::connect_with(&client, request.clone()) {
                Ok(ws) => pipe(n, tcp, ws),
                Err(e) => eprintln!("# connection {n}: {e}"),
            }
        },
    )
}

/// unix-l: → ws://.
#[cfg(unix)]
fn serve_unix(args: &Args, path: &std::path::Path, to: To) -> Result<(), String> {
    let To::Ws(url) = to else {
        return Err("unix-l: forwards to a web socket".into());
    };
    let client = Arc::new(client(args)?);
    let request = request(args, &url)?;
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("unix-l:{}: {e}", path.display()))?;
    eprintln!(
        "listening on unix-l:{}, forwarding to {}",
        path.display(),
        request.url()
    );
    accept_each(
        args.once,
        || listener.accept().map(|(s, _)| s),
        move |sock, n| match ByteStream::connect_with(&client, request.clone()) {
            Ok(ws) => pipe(n, sock, ws),
            Err(e) => eprintln!("# connection {n}: {e}"),
        },
    )
}

/// Accepts with `accept` and runs `serve` on a thread per connection (numbered from 1);
/// with `once`, serves the first and returns when it is done.
fn accept_each<S: Send + 'static>(
    once: bool,
    mut accept: impl FnMut() -> io::Result<S>,
    serve: impl Fn(S, u64) + Send + Sync + 'static,
) -> Result<(), String> {
    let serve = Arc::new(serve);
    let mut n = 0u64;
    loop {
        let stream = match accept() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("# accept failed: {e}");
                continue;
            }
        };
        n += 1;
        if once {
            serve(stream, n);
            return Ok(());
        }
        let serve = serve.clone();
        thread::spawn(move || serve(stream, n));
    }
}

/// ws-l: → tcp: or unix:.
fn serve_ws(args: &Args, addr: &str, to: To) -> Result<(), String> {
    let count = Arc::new(AtomicU64::new(0));
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let to = Arc::new(to);
    let server = Server::builder()
        .compression(args.compression)
        .max_streamed_message_size(u64::MAX)
        .bind(addr, move |_| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            let to = to.clone();
            let done = done_tx.clone();
            Accept::byte_stream(move |ws| {
                match &*to {
                    To::Tcp(target) => match TcpStream::connect(target) {
                        Ok(tcp) => {
                            let _ = tcp.set_nodelay(true);
                            pipe(n, tcp, ws);
                        }
                        Err(e) => eprintln!("# connection {n}: tcp:{target}: {e}"),
                    },
                    #[cfg(unix)]
                    To::Unix(path) => match std::os::unix::net::UnixStream::connect(path) {
                        Ok(sock) => pipe(n, sock, ws),
                        Err(e) => eprintln!("# connection {n}: unix:{}: {e}", path.display()),
                    },
                    To::Ws(_) => {}
                }
                let _ = done.send(());
            })
        })
        .map_err(|e| format!("ws-l:{addr}: {e}"))?;
    eprintln!(
        "listening on ws-l:{}, forwarding to {}",
        server.local_addr(),
        args.to
    );
    loop {
        if done.recv().is_err() {
            return Ok(());
        }
        if args.once {
            return Ok(());
        }
    }
}

/// Copies both ways until both directions end: each direction's end is passed on as a
/// half-close (a close frame one way, a TCP FIN the other).
fn pipe<L: Local>(n: u64, local: L, ws: ByteStream) {
    eprintln!("# connection {n} opened");
    let (mut ws_reader, mut ws_writer) = ws.split();
    let mut local_reader = match local.try_clone() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("# connection {n}: {e}");
            return;
        }
    };
    let up = thread::spawn(move || {
        // 64 KiB reads: one message each, the most one write sends.
        let mut buf = vec![0u8; syncws::MAX_WRITE];
        let mut total = 0u64;
        loop {
            match local_reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    if ws_writer.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    total += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = ws_writer.flush();
        let _ = ws_writer.shutdown();
        total
    });
    let mut local_writer = local;
    let down = io::copy(&mut ws_reader, &mut local_writer).unwrap_or(0);
    let _ = local_writer.flush();
    local_writer.shutdown_write();
    let up = up.join().unwrap_or(0);
    eprintln!("# connection {n} ended: {up} bytes to the web socket, {down} from it");
}
