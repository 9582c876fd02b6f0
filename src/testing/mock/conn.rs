//! One mock connection: reads the request head, answers it as its `MockResponse` says, plays
//! the script, records every frame, and reports where the script did not go as written.
//!
//! Every read has a deadline (the step's timeout while a step waits; none after the script,
//! where the server's drop shuts the socket down to end it), so nothing here can hang a test.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::record::MockRequest;
use super::script::{Check, DEFAULT_STEP_TIMEOUT, Kind, Shown, Step, quote};
use super::shared::{Inner, MAX_MESSAGE};
use crate::header::Header;
use crate::message::Message;
use crate::proto::close;
use crate::proto::deflate::{Inflater, ServerSettings, negotiate};
use crate::proto::frame::{self, OpCode};
use crate::proto::handshake::encode_accept;
use crate::proto::mask;

/// The longest request head the mock reads.
const MAX_HEAD: usize = 64 * 1024;

/// What a client's frames amount to, one at a time.
enum Event {
    Message(Message),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

/// Why no event came.
enum Stop {
    Timeout(Duration),
    Eof,
    Io(io::Error),
    Malformed(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Timeout(d) => write!(f, "nothing within {d:?}"),
            Stop::Eof => f.write_str("the connection closed (EOF) without a close frame"),
            Stop::Io(e) => write!(f, "a read error ({e})"),
            Stop::Malformed(m) => write!(f, "a malformed frame ({m})"),
        }
    }
}

fn shown(event: &Event) -> String {
    match event {
        Event::Message(m) => Shown(m).to_string(),
        Event::Ping(_) => "a ping".into(),
        Event::Pong => "a pong".into(),
        Event::Close(Some(code), reason) => format!("close {code} {}", quote(reason)),
        Event::Close(None, _) => "an empty close frame".into(),
    }
}

/// Bytes per second, both ways.
struct Throttle {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    /// How many bytes the next read or write may move.
    fn chunk(&self) -> usize {
        usize::try_from((self.rate / 10).max(1)).unwrap_or(usize::MAX)
    }

    /// Waits until `n` more bytes keep the average at the rate (this *is* the slow network).
    fn pace(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

pub(crate) struct Conn<'a> {
    n: usize,
    stream: TcpStream,
    inner: &'a Inner,
    buf: Vec<u8>,
    timeout: Duration,
    answer_pings: bool,
    inflater: Option<Inflater>,
    throttle: Option<Throttle>,
    /// A message whose first frames have come: opcode, data, compressed.
    partial: Option<(OpCode, Vec<u8>, bool)>,
    sent_close: bool,
    got_close: bool,
}

impl<'a> Conn<'a> {
    pub(crate) fn new(n: usize, stream: TcpStream, inner: &'a Inner) -> Self {
        Conn {
            n,
            stream,
            inner,
            buf: Vec::new(),
            timeout: DEFAULT_STEP_TIMEOUT,
            answer_pings: true,
            inflater: None,
            throttle: None,
            partial: None,
            sent_close: false,
            got_close: false,
        }
    }

    fn fail(&self, what: String) {
        self.inner.fail(format!("connection {}, {what}", self.n));
    }

    /// Reads the request head, takes the next response off the queue (only now: a test may
    /// enqueue it after starting its client), and plays it on this connection; returns once
    /// the script is over (the connection may live on in [`serve`](Self::serve)).
    pub(crate) fn play(&mut self) -> After {
        let request = match self.read_head() {
            Ok(r) => r,
            Err(what) => {
                self.fail(format!("request: {what}"));
                return After::Done;
            }
        };
        let response = self.inner.take_response();
        self.inner.record_request(request.clone());
        let Some(response) = response else {
            self.fail(format!(
                "request {} {}: no MockResponse was enqueued for it (enqueue one per \
                 connection the test expects)",
                request.method, request.target
            ));
            let _ = self.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return After::Done;
        };
        let headers = response.headers;
        let (subprotocol, deflate, answer_pings, steps) = match response.kind {
            Kind::Refuse {
                status,
                reason,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                ));
                let mut out = head.into_bytes();
                out.extend_from_slice(&body);
                if let Err(e) = self.write_all(&out) {
                    self.fail(format!("refusal {status}: could not write it ({e})"));
                }
                let _ = self.stream.shutdown(Shutdown::Write);
                return After::Done;
            }
            Kind::Upgrade {
                subprotocol,
                deflate,
                answer_pings,
                steps,
            } => (subprotocol, deflate, answer_pings, steps),
        };
        let Some(key) = request.header("Sec-WebSocket-Key") else {
            self.fail(format!(
                "upgrade: expected a WebSocket upgrade, got {} {} without Sec-WebSocket-Key",
                request.method, request.target
            ));
            let _ = self.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return After::Done;
        };
        let mut extensions = None;
        if deflate {
            let offers = request.extensions();
            let offers: Vec<&str> = offers.iter().map(String::as_str).collect();
            if let Some((params, value)) = negotiate(&offers, &ServerSettings::default()) {
                extensions = Some(value);
                self.inflater = Some(Inflater::new(&params));
            }
        }
        // The server's own encoder: it writes any subprotocol and headers it is given, so the
        // mock can still answer with a subprotocol the client did not offer.
        let extra: Vec<Header> = headers
            .iter()
            .map(|(name, value)| Header::new(name.clone(), value.clone()))
            .collect();
        let head = encode_accept(key, subprotocol.as_deref(), extensions.as_deref(), &extra);
        if let Err(e) = self.write_all(&head) {
            self.fail(format!("upgrade: could not write the 101 ({e})"));
            return After::Done;
        }
        self.answer_pings = answer_pings;
        let mut reading = true;
        for (i, step) in steps.iter().enumerate() {
            let at = format!("step {} ({step})", i + 1);
            match self.step(step, &mut reading) {
                Ok(Flow::Next) => {}
                Ok(Flow::End) => return After::Done,
                Err(got) => {
                    self.fail(format!("{at}: got {got}"));
                    return After::Done;
                }
            }
        }
        if reading { After::Serve } else { After::Hold }
    }

    fn step(&mut self, step: &Step, reading: &mut bool) -> Result<Flow, String> {
        match step {
            Step::ExpectText(check) => {
                *reading = true;
                self.expect_message(|m| match m {
                    Message::Text(t) => Some(check_ok(check, t.as_str())),
                    Message::Binary(_) => None,
                })
            }
            Step::ExpectBinary(check) => {
                *reading = true;
                self.expect_message(|m| match m {
                    Message::Binary(b) => Some(check_ok(check, b.as_slice())),
                    Message::Text(_) => None,
                })
            }
            Step::ExpectPing => {
                *reading = true;
                let deadline = Instant::now() + self.timeout;
                loop {
                    match self.next(Some(deadline)).map_err(|s| s.to_string())? {
                        Event::Ping(_) => return Ok(Flow::Next),
                        Event::Pong => {}
                        other => return Err(shown(&other)),
                    }
                }
            }
            Step::ExpectClose(code) => {
                *reading = true;
                let deadline = Instant::now() + self.timeout;
                loop {
                    match self.next(Some(deadline)).map_err(|s| s.to_string())? {
                        Event::Ping(_) | Event::Pong => {}
                        Event::Close(got, reason) => {
                            if code.is_some() && got != *code {
                                return Err(shown(&Event::Close(got, reason)));
                            }
                            return Ok(Flow::Next);
                        }
                        other => return Err(shown(&other)),
                    }
                }
            }
            Step::ExpectEof => {
                *reading = true;
                let deadline = Instant::now() + self.timeout;
                loop {
                    match self.next(Some(deadline)) {
                        Ok(Event::Ping(_) | Event::Pong) => {}
                        Ok(other) => return Err(shown(&other)),
                        Err(Stop::Eof) => return Ok(Flow::End),
                        Err(other) => return Err(other.to_string()),
                    }
                }
            }
            Step::Send(m) => {
                let (op, payload) = split(m);
                self.send_frame(true, op, payload)?;
                Ok(Flow::Next)
            }
            Step::SendFragmented(m, n) => {
                let (op, payload) = split(m);
                let size = payload.len().div_ceil(*n).max(1);
                let mut pieces: Vec<&[u8]> = payload.chunks(size).collect();
                while pieces.len() < *n {
                    pieces.push(&[]);
                }
                let last = pieces.len() - 1;
                for (i, piece) in pieces.into_iter().enumerate() {
                    let op = if i == 0 { op } else { OpCode::Continuation };
                    self.send_frame(i == last, op, piece)?;
                }
                Ok(Flow::Next)
            }
            Step::Ping(p) => self.send_frame(true, OpCode::Ping, p).map(|_| Flow::Next),
            Step::Pong(p) => self.send_frame(true, OpCode::Pong, p).map(|_| Flow::Next),
            Step::Raw(bytes) => {
                self.write_all(bytes)
                    .map_err(|e| format!("a write error ({e})"))?;
                Ok(Flow::Next)
            }
            Step::Close(code, reason) => {
                // Written as given, unchecked: a script may send a code or reason a client
                // must reject.
                self.send_frame(true, OpCode::Close, &close::payload(*code, reason))?;
                self.sent_close = true;
                Ok(Flow::Next)
            }
            Step::Wait(d) => {
                std::thread::sleep(*d);
                Ok(Flow::Next)
            }
            Step::StopReading => {
                *reading = false;
                Ok(Flow::Next)
            }
            Step::Throttle(rate) => {
                self.throttle = Some(Throttle {
                    rate: *rate,
                    start: Instant::now(),
                    bytes: 0,
                });
                Ok(Flow::Next)
            }
            Step::CloseTcp => {
                let _ = self.stream.shutdown(Shutdown::Write);
                Ok(Flow::End)
            }
            Step::DropTcp => {
                // Linger 0: the close sends a reset, not a FIN.
                let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
                Ok(Flow::End)
            }
            Step::Within(d) => {
                self.timeout = *d;
                Ok(Flow::Next)
            }
        }
    }

    /// Waits for the next message, skipping pings and pongs; `judge` says whether it is of
    /// the expected kind (`None`: wrong kind) and whether it matches.
    fn expect_message(&mut self, judge: impl Fn(&Message) -> Option<bool>) -> Result<Flow, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next(Some(deadline)).map_err(|s| s.to_string())? {
                Event::Ping(_) | Event::Pong => {}
                Event::Message(m) => {
                    return match judge(&m) {
                        Some(true) => Ok(Flow::Next),
                        _ => Err(Shown(&m).to_string()),
                    };
                }
                other => return Err(shown(&other)),
            }
        }
    }

    /// After the script: serve as a polite server until the client ends the connection (or
    /// the server's drop shuts it down).
    pub(crate) fn serve(&mut self) {
        if self.got_close {
            // Both close frames are through: the server closes TCP first (RFC 6455 §7.1.1).
            return;
        }
        loop {
            match self.next(None) {
                Ok(Event::Close(..)) if self.sent_close => return,
                Ok(_) => {}
                Err(Stop::Malformed(m)) => {
                    if !self.inner.is_stopping() {
                        self.fail(format!("after the script: got a malformed frame ({m})"));
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Reads the next event. Pings are answered (unless told not to) and the client's close is
    /// answered with its code (unless we closed first).
    fn next(&mut self, deadline: Option<Instant>) -> Result<Event, Stop> {
        let event = self.next_frame_event(deadline)?;
        match &event {
            Event::Ping(payload) if self.answer_pings && !self.sent_close => {
                let payload = payload.clone();
                let _ = self.send_frame(true, OpCode::Pong, &payload);
            }
            Event::Close(code, _) if !self.got_close => {
                self.got_close = true;
                if !self.sent_close {
                    let _ = self.send_frame(true, OpCode::Close, &close::payload(*code, ""));
                    self.sent_close = true;
                }
            }
            _ => {}
        }
        Ok(event)
    }

    /// Reads frames until one completes an event.
    fn next_frame_event(&mut self, deadline: Option<Instant>) -> Result<Event, Stop> {
        loop {
            let Some((fin, rsv1, opcode, payload)) = self.next_frame(deadline)? else {
                continue;
            };
            match opcode {
                OpCode::Ping => return Ok(Event::Ping(payload)),
                OpCode::Pong => return Ok(Event::Pong),
                OpCode::Close => {
                    return Ok(match payload.as_slice() {
                        [a, b, rest @ ..] => Event::Close(
                            Some(u16::from_be_bytes([*a, *b])),
                            String::from_utf8_lossy(rest).into_owned(),
                        ),
                        _ => Event::Close(None, String::new()),
                    });
                }
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(Stop::Malformed(
                            "a new message before the last one's final frame".into(),
                        ));
                    }
                    self.partial = Some((opcode, payload, rsv1));
                }
                OpCode::Continuation => match &mut self.partial {
                    Some((_, data, _)) => {
                        if data.len() as u64 + payload.len() as u64 > MAX_MESSAGE {
                            return Err(Stop::Malformed("a message over 64 MiB".into()));
                        }
                        data.extend_from_slice(&payload);
                    }
                    None => {
                        return Err(Stop::Malformed(
                            "a continuation frame with no message to continue".into(),
                        ));
                    }
                },
            }
            if fin && let Some((op, data, compressed)) = self.partial.take() {
                let data = if compressed {
                    let Some(inflater) = &mut self.inflater else {
                        return Err(Stop::Malformed("RSV1 without permessage-deflate".into()));
                    };
                    let mut out = Vec::new();
                    inflater
                        .inflate(&data, &mut out, MAX_MESSAGE)
                        .and_then(|()| inflater.finish(&mut out, MAX_MESSAGE))
                        .map_err(|e| Stop::Malformed(format!("could not inflate: {e}")))?;
                    out
                } else {
                    data
                };
                return Ok(Event::Message(if op == OpCode::Text {
                    Message::Text(
                        String::from_utf8(data).map_err(|_| {
                            Stop::Malformed("a text message that is not UTF-8".into())
                        })?,
                    )
                } else {
                    Message::Binary(data)
                }));
            }
        }
    }

    /// Reads one whole frame, records it, and returns it unmasked.
    #[allow(clippy::type_complexity)]
    fn next_frame(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<(bool, bool, OpCode, Vec<u8>)>, Stop> {
        loop {
            match frame::parse_header(&self.buf, self.inflater.is_some()) {
                Err(e) => return Err(Stop::Malformed(e.to_string())),
                Ok(None) => self.fill(deadline)?,
                Ok(Some((header, at))) => {
                    if header.len > MAX_MESSAGE {
                        return Err(Stop::Malformed(format!(
                            "a frame of {} bytes, over the mock's 64 MiB",
                            header.len
                        )));
                    }
                    let Some(key) = header.mask else {
                        return Err(Stop::Malformed("a client frame without a mask".into()));
                    };
                    let len = header.len as usize;
                    while self.buf.len() < at + len {
                        self.fill(deadline)?;
                    }
                    let mut payload: Vec<u8> = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    mask::apply(&mut payload, key, 0);
                    self.inner.record_frame(
                        self.n,
                        header.opcode,
                        header.fin,
                        header.rsv1,
                        &payload,
                    );
                    return Ok(Some((header.fin, header.rsv1, header.opcode, payload)));
                }
            }
        }
    }

    /// Reads more bytes into the buffer, by the deadline.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Stop> {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Stop::Timeout(self.timeout));
                }
                Some(left)
            }
            None => None,
        };
        self.stream.set_read_timeout(timeout).map_err(Stop::Io)?;
        let want = self.throttle.as_ref().map_or(16 * 1024, Throttle::chunk);
        let mut chunk = vec![0u8; want.min(16 * 1024)];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(Stop::Eof),
            Ok(n) => {
                if let Some(t) = &mut self.throttle {
                    t.pace(n);
                }
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(Stop::Timeout(self.timeout))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(Stop::Io(e)),
        }
    }

    fn send_frame(&mut self, fin: bool, op: OpCode, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame::encode_frame(&mut out, fin, false, op, payload, None);
        self.write_all(&out)
            .map_err(|e| format!("a write error ({e}); is the client reading?"))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_write_timeout(Some(self.timeout))?;
        match &mut self.throttle {
            None => self.stream.write_all(bytes),
            Some(t) => {
                for piece in bytes.chunks(t.chunk()) {
                    t.pace(piece.len());
                    self.stream.write_all(piece)?;
                }
                Ok(())
            }
        }
    }

    /// Reads the request head.
    fn read_head(&mut self) -> Result<MockRequest, String> {
        let deadline = Instant::now() + DEFAULT_STEP_TIMEOUT;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err("a request head over 64 KiB".into());
            }
            self.fill(Some(deadline)).map_err(|s| match s {
                Stop::Timeout(_) => {
                    format!("no whole request head within {DEFAULT_STEP_TIMEOUT:?}")
                }
                other => other.to_string(),
            })?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_owned();
        let target = first.next().unwrap_or("").to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Ok(MockRequest {
            method,
            target,
            headers,
            connection: self.n,
        })
    }
}

/// What a connection does once its script is over.
pub(crate) enum After {
    /// Nothing: the connection ends.
    Done,
    /// Serve politely until the client or the server's drop ends it.
    Serve,
    /// Hold the connection unread until the server's drop (after `stop_reading`).
    Hold,
}

enum Flow {
    Next,
    End,
}

fn check_ok<T: ?Sized>(check: &Check<T>, value: &T) -> bool {
    (check.test)(value)
}

fn split(m: &Message) -> (OpCode, &[u8]) {
    match m {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b.as_slice()),
    }
}
