//! `syncws`: a WebSocket client, test server and load generator for the command line, built on
//! the syncws library. See `docs/cli.md` (every subcommand, flag and exit code) or
//! `syncws help <subcommand>`.

mod bench;
mod bridge;
mod connect;
mod listen;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// How `syncws connect` ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The close handshake completed.
    Clean = 0,
    /// The connection failed (I/O, TLS, a protocol error by the peer, a dropped connection).
    Failed = 1,
    /// Bad arguments (clap's own status).
    Usage = 2,
    /// The server refused the upgrade (its status and headers are printed).
    Refused = 3,
    /// A timeout: `--timeout`, or the connect, read, pong or close timeout.
    Timeout = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Parser)]
#[command(
    name = "syncws",
    version,
    about = "A WebSocket client, test server and load generator",
    long_about = "A WebSocket client, test server and load generator, built on the syncws library.\n\n\
        syncws connect URL     talk to a server: stdin lines out, messages printed\n\
        syncws listen ADDR     a server to try things out: echo, broadcast, or a program\n\
        syncws bench URL       many connections, many messages: throughput and latency\n\
        syncws bridge FROM TO  forward TCP or Unix sockets to web sockets, or back",
    after_help = "Examples:\n  \
        syncws connect wss://echo.example.org/\n  \
        echo hello | syncws connect ws://127.0.0.1:9000/ --json\n  \
        syncws listen 127.0.0.1:9000 --broadcast\n  \
        syncws bench ws://127.0.0.1:9000/ -c 50 -n 1000 -s 64\n  \
        syncws bridge tcp-l:127.0.0.1:6380 ws://127.0.0.1:8080/"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Connect(connect::Args),
    Listen(listen::Args),
    Bench(bench::Args),
    Bridge(bridge::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Connect(args) => connect::run(args).into(),
        Command::Listen(args) => listen::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Bridge(args) => bridge::run(args),
    }
}
