//! `syncws listen`: a server to try things out: echo (the default), broadcast, or each
//! connection's messages through a program.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use syncws::{Accept, Ended, Message, Server, Topics, WebSocket, WebSocketListener, WhenFull};

use crate::output::for_terminal;

/// Serve WebSockets: echo, broadcast, or a program per connection.
#[derive(clap::Args)]
#[command(
    long_about = "Listens on ADDR (host:port; port 0 picks a free one) and upgrades every \
        request, whatever its path. By default each message is echoed back to its sender; \
        --broadcast sends every message to every connected client (the sender too); --exec \
        runs a program per connection (through `sh -c`; `cmd /C` on Windows), writes each text message to its \
        standard input as one line (newlines and carriage returns inside a message become \
        spaces) and sends each line of its standard output back as a text message (a program that stops reading its input while messages keep coming gets \
        its connection closed with 1008). The first line on standard error says where it \
        listens (\"listening on ws://127.0.0.1:PORT/\"); then one line per connection opened \
        and ended. Runs until interrupted.",
    after_help = "Examples:\n  \
        syncws listen 127.0.0.1:9000\n  \
        syncws listen 0.0.0.0:9000 --broadcast --origin https://app.example.com\n  \
        syncws listen 127.0.0.1:9000 --exec 'while read line; do echo \"you said $line\"; done'\n  \
        syncws listen 127.0.0.1:9443 --cert cert.pem --key key.pem"
)]
pub struct Args {
    /// Where to listen: host:port.
    #[arg(default_value = "127.0.0.1:9001")]
    addr: String,
    /// Send every message to every connected client. Each client may send 1 MiB/s of
    /// messages (bursts of 2 MiB): a faster one is slowed by TCP flow control, so it cannot
    /// get the others closed; a client that cannot take 4 MiB queued for it is closed with 1008.
    #[arg(long, conflicts_with = "exec")]
    broadcast: bool,
    /// For each connection, run this command (with `sh -c`; `cmd /C` on Windows): text messages in on its
    /// standard input, one line each (newlines inside a message become spaces), its output
    /// lines out as messages. The connection closes when it exits, or with
    /// 1008 if it stops reading its input while messages keep coming.
    #[arg(long, value_name = "COMMAND")]
    exec: Option<String>,
    /// Serve wss:// with this certificate chain (PEM); needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PKCS#8 PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Accept browsers only from this origin, e.g. https://app.example.com (repeatable;
    /// others are refused with 403; clients that send no Origin are accepted).
    #[arg(long = "origin", value_name = "ORIGIN")]
    origins: Vec<String>,
}

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Broadcast,
    Exec,
}

/// Every open connection is in this topic: `--broadcast` publishes to it, and its size is
/// the count the log prints. A connection leaves it when it ends.
const EVERYONE: &str = "everyone";

/// `--broadcast`: how fast each client may send, in bytes of messages a second.
const BROADCAST_RATE: u64 = 1024 * 1024;

/// Text messages waiting for an `--exec` program to read them, beyond what its stdin pipe
/// holds. When they are all waiting the program is not reading: its connection is closed
/// rather than the socket's thread blocking (it would stop reading the socket for good).
const EXEC_BACKLOG: usize = 256;

/// One connection's listener: logs it, and does what the mode says.
struct Conn {
    peer: String,
    mode: Mode,
    clients: Topics,
    command: Option<String>,
    /// The `--exec` program, and the queue its stdin-writing thread takes lines from.
    child: Option<(Child, SyncSender<String>)>,
}

/// A text message as one line of the program's input: newlines and carriage returns inside it
/// become spaces (as websocat's line mode does), so a message is always exactly one line and a
/// peer cannot make one message read as several.
fn one_line(text: String) -> String {
    if text.contains(['\n', '\r']) {
        text.replace(['\n', '\r'], " ")
    } else {
        text
    }
}

/// Writes the queued messages to a program's standard input, a line each, until the
/// connection ends (the queue's sender is dropped) or the program stops taking them.
fn feed_stdin(stdin: ChildStdin, lines: Receiver<String>, ws: WebSocket) {
    fn write(stdin: &mut impl Write, line: &str) -> std::io::Result<()> {
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")
    }
    let mut stdin = BufWriter::new(stdin);
    while let Ok(line) = lines.recv() {
        // Whatever else is already queued goes out in the same flush.
        let mut written = write(&mut stdin, &line);
        while written.is_ok() {
            match lines.try_recv() {
                Ok(line) => written = write(&mut stdin, &line),
                Err(_) => break,
            }
        }
        if written.and_then(|()| stdin.flush()).is_err() {
            let _ = ws.close(1000, Some("the program exited"));
            return;
        }
    }
}

impl Conn {
    fn start_child(&mut self, ws: &WebSocket) {
        let Some(command) = &self.command else { return };
        // The platform's shell: `sh -c` on Unix, `cmd /C` on Windows.
        let (shell, flag) = if cfg!(windows) {
            ("cmd", "/C")
        } else {
            ("sh", "-c")
        };
        let spawned = Command::new(shell)
            .arg(flag)
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("# {}: could not start the program: {e}", self.peer);
                let _ = ws.close(1011, Some("could not start the program"));
                return;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = ws.close(1011, None);
            return;
        };
        let (lines, queued) = std::sync::mpsc::sync_channel(EXEC_BACKLOG);
        let input = ws.clone();
        std::thread::spawn(move || feed_stdin(stdin, queued, input));
        let out = ws.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !out.send(line) {
                    break;
                }
            }
            // The program ended its output: so does the connection.
            let _ = out.close(1000, Some("the program exited"));
        });
        self.child = Some((child, lines));
    }
}

impl WebSocketListener for Conn {
    fn on_open(&mut self, ws: &WebSocket, _: &syncws::Response) {
        self.clients.subscribe(ws, EVERYONE);
        let open = self.clients.subscribers(EVERYONE);
        eprintln!(
            "# open {} {} ({open} open)",
            self.peer,
            for_terminal(ws.request().url().path())
        );
        if let Mode::Exec = self.mode {
            self.start_child(ws);
        }
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        match self.mode {
            Mode::Echo => {
                ws.send(message);
            }
            Mode::Broadcast => {
                // Framed once for everyone; a client too slow to take it is closed rather
                // than holding the others back. Publishing never blocks.
                self.clients
                    .publish(EVERYONE, message, WhenFull::Close(1008));
            }
            Mode::Exec => {
                // Never written from here: a program that does not read its input would block
                // this thread, and the socket would stop being read.
                if let (Some((_, lines)), Message::Text(t)) = (&self.child, message) {
                    match lines.try_send(one_line(t)) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            let _ = ws.close(1008, Some("the program is not reading its input"));
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            let _ = ws.close(1000, Some("the program exited"));
                        }
                    }
                }
            }
        }
    }

    fn on_ended(&mut self, _ws: &WebSocket, ended: Ended) {
        // It left the topic as it ended.
        if let Some((mut child, lines)) = self.child.take() {
            // Its feeding thread sees the queue closed and closes the program's stdin.
            drop(lines);
            let _ = child.kill();
            let _ = child.wait();
        }
        match ended {
            Ended::Closed { code, reason, .. } => {
                eprintln!("# closed {}: {code} {}", self.peer, for_terminal(&reason))
            }
            Ended::Failed { error, .. } => eprintln!(
                "# failed {}: {}",
                self.peer,
                for_terminal(&error.to_string())
            ),
            _ => {}
        }
    }
}

fn tls(cert: &PathBuf, key: &PathBuf) -> Result<syncws::native_tls::TlsAcceptor, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("--cert {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("--key {}: {e}", key.display()))?;
    let identity = syncws::native_tls::Identity::from_pkcs8(&cert_pem, &key_pem)
        .map_err(|e| format!("--cert/--key: {e}"))?;
    syncws::native_tls::TlsAcceptor::new(identity).map_err(|e| format!("TLS: {e}"))
}

pub fn run(args: Args) -> ExitCode {
    let mode = match (&args.exec, args.broadcast) {
        (Some(_), _) => Mode::Exec,
        (None, true) => Mode::Broadcast,
        (None, false) => Mode::Echo,
    };
    let mut builder = Server::builder();
    if let Mode::Broadcast = mode {
        // The broadcast pattern of docs/deploying.md: each sender held to 1 MiB/s (bursts of
        // 2 MiB) and room for a burst in every receiver's queue, so one client flooding the
        // room slows itself instead of getting everyone else closed as too slow.
        builder = builder
            .max_receive_rate(BROADCAST_RATE, 2 * BROADCAST_RATE)
            .max_queue_size(4 * BROADCAST_RATE);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        match tls(cert, key) {
            Ok(acceptor) => builder = builder.tls(acceptor),
            Err(e) => {
                eprintln!("syncws listen: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if !args.origins.is_empty() {
        builder = builder.allowed_origins(&args.origins);
    }
    let clients = Topics::new();
    let command = args.exec.clone();
    let server = builder.bind(args.addr.as_str(), move |request| {
        let peer = request
            .peer_addr()
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        Accept::upgrade(Conn {
            peer,
            mode,
            clients: clients.clone(),
            command: command.clone(),
            child: None,
        })
    });
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("syncws listen: could not listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let scheme = if args.cert.is_some() { "wss" } else { "ws" };
    eprintln!("listening on {scheme}://{}/", server.local_addr());
    // Serves until the process is interrupted.
    loop {
        std::thread::park();
    }
}
