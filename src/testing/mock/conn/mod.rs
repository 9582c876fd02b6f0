//! One mock connection: reads the request head, answers it as its `MockResponse` says, plays
//! the script, records every frame, and reports where the script did not go as written.
//!
//! Every read has a deadline (the step's timeout while a step waits; none after the script,
//! where the server's drop shuts the socket down to end it), so nothing here can hang a test.

mod stream;
mod wire;

use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::script::{Check, DEFAULT_STEP_TIMEOUT, Kind, Shown, Step};
use super::shared::Inner;
use crate::header::Header;
use crate::message::Message;
use crate::proto::close;
use crate::proto::deflate::{Inflater, ServerSettings, negotiate};
use crate::proto::frame::OpCode;
use crate::proto::handshake::encode_accept;
use stream::MockStream;
use wire::{Event, Stop, Throttle, shown, split};

pub(crate) struct Conn<'a> {
    n: usize,
    stream: MockStream,
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
            stream: MockStream::Plain(stream),
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
        // A TLS mock serves TLS to a client that starts it (also inside a CONNECT tunnel).
        #[cfg(feature = "testing-tls")]
        if let Some(config) = self.inner.tls.clone()
            && self.buf.is_empty()
            && let Err(e) = self
                .stream
                .start_tls_if_asked(&config, DEFAULT_STEP_TIMEOUT)
        {
            self.fail(format!("TLS: {e}"));
            return After::Done;
        }
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
            self.answer_plainly("503 Service Unavailable");
            return After::Done;
        };
        let headers = response.headers;
        let (delay, pieces) = (response.head_delay, response.head_pieces);
        for (name, check) in &response.request_checks {
            let value = request.header(name);
            if !value.is_some_and(|v| (check.test)(v)) {
                let got = value.map_or_else(|| "no such header".to_owned(), |v| format!("{v:?}"));
                self.fail(format!(
                    "request {} {}: expected header {name} {}, got {got}",
                    request.method, request.target, check.describe
                ));
                self.answer_plainly("400 Bad Request");
                let _ = self.stream.shutdown(Shutdown::Write);
                return After::Done;
            }
        }
        let (subprotocol, deflate, answer_pings, steps) = match response.kind {
            Kind::Tunnel => return self.tunnel(&request, delay, pieces),
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
                if let Err(e) = self.write_head(&out, delay, pieces) {
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
            self.answer_plainly("400 Bad Request");
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
        if let Err(e) = self.write_head(&head, delay, pieces) {
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

    /// Answers with `status` (code and reason) and no body, the connection to close after.
    fn answer_plainly(&mut self, status: &str) {
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = self.write_all(head.as_bytes());
    }

    /// Writes a response head after `delay`, in `pieces` writes a few milliseconds apart
    /// (`headers_delay`, `head_in_pieces`).
    fn write_head(&mut self, head: &[u8], delay: Duration, pieces: usize) -> std::io::Result<()> {
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if pieces <= 1 {
            return self.write_all(head);
        }
        let _ = self.stream.set_nodelay(true);
        let size = head.len().div_ceil(pieces).max(1);
        for (i, piece) in head.chunks(size).enumerate() {
            if i > 0 {
                // Apart enough that the client's reads see them apart.
                std::thread::sleep(Duration::from_millis(5));
            }
            self.write_all(piece)?;
        }
        Ok(())
    }

    /// A proxy's `CONNECT`: 200, then the next response inside the tunnel when the target is
    /// this mock, else the bytes relayed to the target and back.
    fn tunnel(&mut self, request: &super::MockRequest, delay: Duration, pieces: usize) -> After {
        if request.method != "CONNECT" {
            self.fail(format!(
                "tunnel: expected a CONNECT, got {} {}",
                request.method, request.target
            ));
            self.answer_plainly("400 Bad Request");
            return After::Done;
        }
        let target = request.target.clone();
        let Some((host, port)) = target.rsplit_once(':').and_then(|(h, p)| {
            Some((
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse().ok()?,
            ))
        }) else {
            self.fail(format!(
                "tunnel: CONNECT target {target:?} is not host:port"
            ));
            self.answer_plainly("400 Bad Request");
            return After::Done;
        };
        // An address literal or `localhost` needs no resolver (RFC 6761, as the client's own
        // lookup: Wine's resolver, for one, cannot resolve `localhost`).
        let known = crate::driver::without_lookup(host, port);
        let ours = self.stream.local_addr().ok();
        let is_us = ours.is_some_and(|a| known.as_ref().is_some_and(|k| k.contains(&a)));
        // Dialed before the 200, so an unreachable target is answered 502 as a proxy would.
        let upstream = if is_us {
            None
        } else {
            let dialed = match &known {
                Some(addrs) => TcpStream::connect(&addrs[..]),
                None => TcpStream::connect((host, port)),
            };
            match dialed {
                Ok(s) => Some(s),
                Err(e) => {
                    self.fail(format!("tunnel: could not reach {target} ({e})"));
                    self.answer_plainly("502 Bad Gateway");
                    return After::Done;
                }
            }
        };
        let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
        if let Err(e) = self.write_head(established, delay, pieces) {
            self.fail(format!("tunnel: could not write the 200 ({e})"));
            return After::Done;
        }
        match upstream {
            // In front of itself: the tunnelled request takes the next response.
            None => self.play(),
            Some(up) => {
                self.relay(up);
                After::Done
            }
        }
    }

    /// Copies bytes both ways between the client and `up` until either side ends (or the
    /// mock server is dropped, which shuts the client's side down).
    fn relay(&mut self, mut up: TcpStream) {
        use std::io::{Read, Write};
        let _ = self.stream.set_read_timeout(None);
        if !self.buf.is_empty() && up.write_all(&self.buf).is_err() {
            return;
        }
        self.buf.clear();
        let (Some(mut client_in), Ok(mut up_out)) = (self.stream.try_clone_plain(), up.try_clone())
        else {
            self.fail("tunnel: relaying from a TLS connection is not supported".to_owned());
            return;
        };
        let upward = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_in, &mut up_out);
            let _ = up_out.shutdown(Shutdown::Write);
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match up.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if self.stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let _ = upward.join();
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
                let _ = socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
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
