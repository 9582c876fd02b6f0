//! What the bench runs: the scenarios, the clients, the counts, and the command line.

#[derive(Clone, Copy, Debug)]
pub struct Counts {
    pub rtt: usize,
    pub rtt_warmup: usize,
    pub small: usize,
    pub large: usize,
    pub connect: usize,
    pub idle: usize,
    pub scale: usize,
}

pub const FULL: Counts = Counts {
    rtt: 20_000,
    rtt_warmup: 1_000,
    small: 500_000,
    large: 200,
    connect: 1_000,
    idle: 1_000,
    scale: 10_000,
};

pub const QUICK: Counts = Counts {
    rtt: 2_000,
    rtt_warmup: 100,
    small: 50_000,
    large: 20,
    connect: 100,
    idle: 100,
    scale: 500,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lib {
    Raw,
    Tungstenite,
    /// syncws's listener API: callbacks, or a `channel()` of events for the caller's thread.
    Syncws,
    /// syncws's blocking API: `Client::connect` gives a `Connection`; `send`, `recv`.
    SyncwsConn,
}

/// The clients, in the order each round runs them.
pub const LIBS: [Lib; 4] = [Lib::Raw, Lib::Tungstenite, Lib::Syncws, Lib::SyncwsConn];

impl Lib {
    pub fn name(self) -> &'static str {
        match self {
            Lib::Raw => "raw",
            Lib::Tungstenite => "tungstenite",
            Lib::Syncws => "syncws",
            Lib::SyncwsConn => "syncws-conn",
        }
    }

    pub fn parse(s: &str) -> Option<Lib> {
        LIBS.into_iter().find(|l| l.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    Rtt,
    /// rtt with the listener sending the next message from `on_message` (syncws only; raw and
    /// tungstenite run their rtt loop again, syncws-conn has no callbacks).
    RttCallback,
    SendSmall,
    RecvSmall,
    SendLarge,
    RecvLarge,
    /// `large` MiB as one message sent from a `Read` (syncws; raw and tungstenite send the
    /// same bytes as whole 1 MiB messages).
    SendStream,
    /// `large` messages of 1 MiB, each received as a stream (syncws; raw and tungstenite
    /// receive them whole).
    RecvStream,
    Connect,
    Idle,
    Scale,
}

const SCENARIOS: [Scenario; 11] = [
    Scenario::Rtt,
    Scenario::RttCallback,
    Scenario::SendSmall,
    Scenario::RecvSmall,
    Scenario::SendLarge,
    Scenario::RecvLarge,
    Scenario::SendStream,
    Scenario::RecvStream,
    Scenario::Connect,
    Scenario::Idle,
    Scenario::Scale,
];

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Rtt => "rtt",
            Scenario::RttCallback => "rtt-callback",
            Scenario::SendSmall => "send-small",
            Scenario::RecvSmall => "recv-small",
            Scenario::SendLarge => "send-large",
            Scenario::RecvLarge => "recv-large",
            Scenario::SendStream => "send-stream",
            Scenario::RecvStream => "recv-stream",
            Scenario::Connect => "connect",
            Scenario::Idle => "idle",
            Scenario::Scale => "scale",
        }
    }

    /// Whether `lib` has a run in this scenario: a `Connection` has no callbacks.
    pub fn runs(self, lib: Lib) -> bool {
        !(self == Scenario::RttCallback && lib == Lib::SyncwsConn)
    }

    /// The metrics a run reports: key and the label printed in the table.
    pub fn metrics(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::Rtt | Scenario::RttCallback => &[
                ("p50", "p50 latency, µs (lower is better)"),
                ("p99", "p99 latency, µs (lower is better)"),
            ],
            Scenario::SendSmall => &[("rate", "msg/s (higher is better)")],
            Scenario::RecvSmall => &[("rate", "msg/s (higher is better)")],
            Scenario::SendLarge => &[("rate", "MiB/s (higher is better)")],
            Scenario::RecvLarge => &[("rate", "MiB/s (higher is better)")],
            Scenario::SendStream | Scenario::RecvStream => &[("rate", "MiB/s (higher is better)")],
            Scenario::Connect => &[("rate", "conn/s (higher is better)")],
            Scenario::Idle => &[
                ("rss", "RSS KiB per socket (lower is better)"),
                ("threads", "threads per socket"),
                ("fds", "fds per socket"),
            ],
            Scenario::Scale => &[
                ("opened", "sockets opened"),
                ("echoed", "sockets echoed"),
                ("secs", "wall s, open + echo (lower is better)"),
                ("closed", "sockets closed cleanly"),
                ("ended", "sockets with exactly one terminal callback"),
            ],
        }
    }
}

pub struct Options {
    pub quick: bool,
    pub rounds: usize,
    pub only: Vec<Scenario>,
    /// The clients to run (all by default; `--clients syncws` for profiling one).
    pub clients: Vec<Lib>,
}

pub fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        quick: false,
        rounds: 7,
        only: SCENARIOS.to_vec(),
        clients: LIBS.to_vec(),
    };
    let mut rounds_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => {
                let v = it.next().expect("--rounds needs a number");
                o.rounds = v.parse().expect("--rounds needs a positive number");
                assert!(o.rounds > 0, "--rounds needs a positive number");
                rounds_given = true;
            }
            "--only" => {
                let v = it.next().expect("--only needs SCENARIO[,SCENARIO]");
                o.only = v
                    .split(',')
                    .map(|name| {
                        SCENARIOS
                            .into_iter()
                            .find(|s| s.name() == name.trim())
                            .unwrap_or_else(|| {
                                panic!(
                                    "unknown scenario {name:?}; known: {}",
                                    SCENARIOS.map(Scenario::name).join(", ")
                                )
                            })
                    })
                    .collect();
            }
            "--clients" => {
                let v = it.next().expect("--clients needs CLIENT[,CLIENT]");
                o.clients = v
                    .split(',')
                    .map(|name| {
                        Lib::parse(name.trim()).unwrap_or_else(|| {
                            panic!(
                                "unknown client {name:?}; known: {}",
                                LIBS.map(Lib::name).join(", ")
                            )
                        })
                    })
                    .collect();
            }
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "usage: cargo bench --bench engine -- [--quick] [--rounds N] [--only {}] \
                     [--clients {}]",
                    SCENARIOS.map(Scenario::name).join(","),
                    LIBS.map(Lib::name).join(",")
                );
                std::process::exit(0);
            }
            other => eprintln!("engine bench: ignoring unknown argument {other:?}"),
        }
    }
    if o.quick && !rounds_given {
        o.rounds = 1;
    }
    o
}
