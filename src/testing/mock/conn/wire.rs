//! The connection's wire: the request head, frames in (reassembled into events, inflated,
//! by a deadline, at the throttle's pace) and frames out.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::super::record::MockRequest;
use super::super::script::{DEFAULT_STEP_TIMEOUT, Shown, quote};
use super::super::shared::MAX_MESSAGE;
use super::Conn;
use crate::message::Message;
use crate::proto::close;
use crate::proto::frame::{self, OpCode};
use crate::proto::mask;

/// The longest request head the mock reads.
const MAX_HEAD: usize = 64 * 1024;

/// What a client's frames amount to, one at a time.
pub(super) enum Event {
    Message(Message),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

/// Why no event came.
pub(super) enum Stop {
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

pub(super) fn shown(event: &Event) -> String {
    match event {
        Event::Message(m) => Shown(m).to_string(),
        Event::Ping(_) => "a ping".into(),
        Event::Pong => "a pong".into(),
        Event::Close(Some(code), reason) => format!("close {code} {}", quote(reason)),
        Event::Close(None, _) => "an empty close frame".into(),
    }
}

/// Bytes per second, both ways.
pub(super) struct Throttle {
    pub(super) rate: u64,
    pub(super) start: Instant,
    pub(super) bytes: u64,
}

impl Throttle {
    /// How many bytes the next read or write may move.
    pub(super) fn chunk(&self) -> usize {
        usize::try_from((self.rate / 10).max(1)).unwrap_or(usize::MAX)
    }

    /// Waits until `n` more bytes keep the average at the rate (this *is* the slow network).
    pub(super) fn pace(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

pub(super) fn split(m: &Message) -> (OpCode, &[u8]) {
    match m {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b.as_slice()),
    }
}

impl Conn<'_> {
    /// Reads the next event. Pings are answered (unless told not to) and the client's close is
    /// answered with its code (unless we closed first).
    pub(super) fn next(&mut self, deadline: Option<Instant>) -> Result<Event, Stop> {
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
    pub(super) fn next_frame_event(&mut self, deadline: Option<Instant>) -> Result<Event, Stop> {
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
    pub(super) fn next_frame(
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
    pub(super) fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Stop> {
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

    pub(super) fn send_frame(
        &mut self,
        fin: bool,
        op: OpCode,
        payload: &[u8],
    ) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        frame::encode_frame(&mut out, fin, false, op, payload, None);
        self.write_all(&out)
            .map_err(|e| format!("a write error ({e}); is the client reading?"))
    }

    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_write_timeout(Some(self.timeout))?;
        match &mut self.throttle {
            None => self.stream.write_all(bytes)?,
            Some(t) => {
                for piece in bytes.chunks(t.chunk()) {
                    t.pace(piece.len());
                    self.stream.write_all(piece)?;
                    self.stream.flush()?;
                }
            }
        }
        // TLS: the records out now, not when the next write comes.
        self.stream.flush()
    }

    /// Reads the request head.
    pub(super) fn read_head(&mut self) -> Result<MockRequest, String> {
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
