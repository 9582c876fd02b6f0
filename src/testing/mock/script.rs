//! What the mock server answers one connection with, as plain data: a refusal, or an upgrade
//! and a script of steps ([`Kind`], [`Step`]). [`MockResponse`](super::MockResponse)
//! (`response.rs`) builds it; `conn/` plays it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::message::Message;

/// How long an `expect_*` step waits, unless [`MockResponse::within`](super::MockResponse::within) says otherwise.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// A predicate on a received message's payload, with a description for failure messages.
pub(crate) struct Check<T: ?Sized> {
    pub(crate) describe: String,
    pub(crate) test: Arc<dyn Fn(&T) -> bool + Send + Sync>,
}

impl<T: ?Sized> Clone for Check<T> {
    fn clone(&self) -> Self {
        Check {
            describe: self.describe.clone(),
            test: self.test.clone(),
        }
    }
}

/// One step of an upgraded connection's script.
#[derive(Clone)]
pub(crate) enum Step {
    ExpectText(Check<str>),
    ExpectBinary(Check<[u8]>),
    ExpectPing,
    /// The client's close frame; `Some(code)` checks its code.
    ExpectClose(Option<u16>),
    /// The client ends TCP (EOF).
    ExpectEof,
    Send(Message),
    /// One message cut into this many frames (the first Text/Binary, then continuations).
    SendFragmented(Message, usize),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Raw(Vec<u8>),
    Close(Option<u16>, String),
    Wait(Duration),
    StopReading,
    /// Bytes per second, both ways, from this step on.
    Throttle(u64),
    DropTcp,
    /// Ends TCP in order (a FIN) without a close frame.
    CloseTcp,
    /// The timeout of the `expect_*` steps after it.
    Within(Duration),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ExpectText(c) => write!(f, "expect text {}", c.describe),
            Step::ExpectBinary(c) => write!(f, "expect binary {}", c.describe),
            Step::ExpectPing => f.write_str("expect ping"),
            Step::ExpectClose(None) => f.write_str("expect close"),
            Step::ExpectClose(Some(code)) => write!(f, "expect close {code}"),
            Step::ExpectEof => f.write_str("expect EOF"),
            Step::Send(m) => write!(f, "send {}", Shown(m)),
            Step::SendFragmented(m, n) => write!(f, "send {} in {n} frames", Shown(m)),
            Step::Ping(p) => write!(f, "send ping ({} bytes)", p.len()),
            Step::Pong(p) => write!(f, "send pong ({} bytes)", p.len()),
            Step::Raw(b) => write!(f, "send {} raw bytes", b.len()),
            Step::Close(code, reason) => match code {
                Some(c) => write!(f, "close {c} {reason:?}"),
                None => f.write_str("close (no code)"),
            },
            Step::Wait(d) => write!(f, "wait {d:?}"),
            Step::StopReading => f.write_str("stop reading"),
            Step::Throttle(n) => write!(f, "throttle to {n} B/s"),
            Step::DropTcp => f.write_str("drop TCP"),
            Step::CloseTcp => f.write_str("close TCP"),
            Step::Within(d) => write!(f, "within {d:?}"),
        }
    }
}

/// A message as failure messages show it: text quoted (cut at 60 characters), binary by size.
pub(crate) struct Shown<'a>(pub(crate) &'a Message);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Message::Text(t) => write!(f, "text {}", quote(t)),
            Message::Binary(b) => write!(f, "binary ({} bytes)", b.len()),
        }
    }
}

/// `t` quoted, cut at 60 characters.
pub(crate) fn quote(t: &str) -> String {
    const MAX: usize = 60;
    if t.chars().count() <= MAX {
        format!("{t:?}")
    } else {
        let cut: String = t.chars().take(MAX).collect();
        format!("{cut:?}… ({} bytes)", t.len())
    }
}

#[derive(Clone)]
pub(crate) enum Kind {
    /// Answer a `CONNECT` with 200 and carry the tunnel: to the mock itself (the next
    /// response plays inside it) or to the target, bytes relayed both ways.
    Tunnel,
    Refuse {
        status: u16,
        reason: String,
        body: Vec<u8>,
    },
    Upgrade {
        subprotocol: Option<String>,
        deflate: bool,
        answer_pings: bool,
        steps: Vec<Step>,
    },
}
