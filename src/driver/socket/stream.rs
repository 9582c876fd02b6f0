//! A message sent from a `Read`, without holding it whole: read a part at a time (the
//! fragment size, at most half the send queue), each part queued as one frame once the
//! queue has room for it, so a slow peer holds the reading back instead of the source being
//! buffered. The message's frames go out contiguous (`write/stream.rs`).
//!
//! The rules, where they touch the socket's life:
//! - `cancel()` (and a failure) ends it at once: the part waiting for room is refused;
//! - `close()` waits for it: the close frame is queued behind its last part (the state stays
//!   `Open` until then);
//! - the source failing (or a text source that is not UTF-8) fails the message, and the
//!   socket too once a part of it was queued: a message cannot be taken back, so the socket
//!   sends close 1011 rather than a truncated message.

use std::io::{self, Read};
use std::time::Instant;

use super::Socket;
use crate::driver::write::SendError;
use crate::error::Error;
use crate::proto::frame::OpCode;
use crate::proto::utf8;

impl Socket {
    /// Sends the bytes `source` yields as one message (text when `text`), returning how many
    /// it sent once the last part is queued. Blocks while the send queue is full; one
    /// streamed message at a time per socket (a second waits for the first).
    pub(crate) fn send_stream(&self, text: bool, source: &mut dyn Read) -> Result<u64, Error> {
        let _turn = self.outbox.stream_turn();
        if self.outbox.begin_stream().is_err() {
            return Err(self.ended_error());
        }
        let result = self.stream_parts(text, source);
        if let Some((code, reason)) = self.outbox.end_stream() {
            // The `close()` that came meanwhile, now behind the message.
            if self.with_session(|s| s.close(Instant::now())).is_some() {
                self.outbox.push_close(code, &reason);
            }
        }
        result
    }

    fn stream_parts(&self, text: bool, source: &mut dyn Read) -> Result<u64, Error> {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let size = self.outbox.part_size();
        let mut checker = text.then(utf8::Carry::default);
        let mut sent = 0u64;
        let mut first = true;
        // One part read ahead: a part is the last when the source ends after it.
        let mut part = read_part(source, size);
        loop {
            let (data, at_end) = match part {
                Ok(p) => p,
                Err(e) => return Err(self.source_failed(e, first)),
            };
            let next = if at_end {
                None
            } else {
                match read_part(source, size) {
                    Ok((more, true)) if more.is_empty() => None,
                    other => Some(other),
                }
            };
            let last = next.is_none();
            if let Some(c) = &mut checker {
                let checked = c
                    .feed(&data)
                    .and_then(|()| if last { c.finish() } else { Ok(()) });
                if checked.is_err() {
                    let e = io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the text is not UTF-8 (within bytes {sent}..{})",
                            sent + data.len() as u64
                        ),
                    );
                    return Err(self.source_failed(e, first));
                }
            }
            let len = data.len() as u64;
            if let Err(SendError::Closed | _) = self.outbox.send_part(opcode, data, first, last) {
                return Err(self.ended_error());
            }
            sent = sent.saturating_add(len);
            first = false;
            match next {
                None => return Ok(sent),
                Some(p) => part = p,
            }
        }
    }

    /// The source failed: the message fails, and the socket too if part of it is queued.
    fn source_failed(&self, e: io::Error, nothing_sent: bool) -> Error {
        let error = Error::MessageSource(std::sync::Arc::new(e));
        if !nothing_sent {
            log::debug!("a streamed message's source failed mid-message: {error}");
            self.fail_with_close(error.clone());
        }
        error
    }

    /// Why no more parts are taken: the socket's failure, a cancel, or its end.
    fn ended_error(&self) -> Error {
        match self.with_session(|s| s.failure()) {
            Some(e) => e,
            None => Error::io(
                io::ErrorKind::BrokenPipe,
                "the web socket is closing or closed: the streamed message was not sent whole",
            ),
        }
    }
}

/// Reads up to `size` bytes (fewer only at the end of the source); true when the source
/// ended. An interrupted read is retried, as `read_exact` does.
fn read_part(source: &mut dyn Read, size: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match source.read(&mut buf[filled..]) {
            Ok(0) => {
                buf.truncate(filled);
                return Ok((buf, true));
            }
            // A `Read` that claims more than the buffer held is the caller's bug: the part
            // is taken as full rather than indexing past it.
            Ok(n) => filled = filled.saturating_add(n).min(size),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((buf, false))
}
