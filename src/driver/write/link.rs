//! The link: the write half of the connection and the batch being written. It is held across
//! the (blocking) write, and taken before the queue's lock, so bytes reach the socket in the
//! order they were staged.

use std::io;

use super::batch::{Batch, CloseMark, Done};
use crate::driver::transport::WriteHalf;
use crate::error::Error;

/// Why filling or writing stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The socket is ending (a stop, or the write side is gone).
    Ending,
    /// A message could not be encoded (compression failed).
    Encode(Error),
    /// The connection refused a write (or a blocking one gave up): for the session to judge.
    Write(io::Error),
}

/// Who is writing: the writer thread blocks until all is written; a sender writing inline
/// takes what the socket takes at once and leaves the rest to the writer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    Writer,
    Inline,
}

pub(super) struct Link {
    pub io: WriteHalf,
    pub batch: Batch,
    /// A failed inline write's error, for the writer thread to report.
    failed: Option<io::Error>,
    /// A close frame an inline write got onto the wire, for the writer thread to report (what
    /// follows it, the session's bookkeeping and the end of TCP, is the writer's).
    close_written: CloseMark,
    /// Frame bytes written so far (statistics; under TLS, before encryption).
    pub wire: u64,
}

impl Link {
    pub(super) fn new(io: WriteHalf) -> Link {
        Link {
            io,
            batch: Batch::default(),
            failed: None,
            close_written: CloseMark::None,
            wire: 0,
        }
    }

    /// Whether the link has nothing to write.
    pub(super) fn idle(&self) -> bool {
        self.batch.is_empty() && !self.io.has_pending()
    }

    /// Writes the batch: all of it, blocking (in slices, see `transport::Stall`), on the
    /// writer thread; what the socket takes at once, inline. Returns what the batch accounted
    /// for once all of it is on the wire, `None` while some is left.
    pub(super) fn write(&mut self, mode: Mode) -> Result<Option<Done>, Stop> {
        if self.failed.is_some() {
            return match (mode, self.failed.take()) {
                (Mode::Writer, Some(e)) => Err(Stop::Write(e)),
                // Left for the writer thread.
                (_, e) => {
                    self.failed = e;
                    Ok(None)
                }
            };
        }
        let flush_tls = std::mem::take(&mut self.batch.flush_tls);
        let (pending, tail) = self.batch.pending();
        if pending.is_empty() && tail.is_empty() && !flush_tls && !self.io.has_pending() {
            return Ok(Some(self.done(mode)));
        }
        let result = match mode {
            Mode::Writer => self
                .io
                .write_all_two(pending, tail)
                .map(|()| pending.len() + tail.len()),
            // Inline writes never carry a tail (large messages are the writer's).
            Mode::Inline => self.io.write_nonblocking(pending),
        };
        match result {
            Ok(n) => {
                self.wire = self.wire.wrapping_add(n as u64);
                self.batch.advance(n);
                if self.batch.written_out() && !self.io.has_pending() {
                    Ok(Some(self.done(mode)))
                } else {
                    Ok(None)
                }
            }
            Err(e) => {
                self.batch = Batch::default();
                if mode == Mode::Inline {
                    // The writer reports it, with the session's view of what it means.
                    self.failed = Some(e);
                    return Ok(None);
                }
                Err(Stop::Write(e))
            }
        }
    }

    /// The batch is written: what it accounted for. A close frame written inline is kept for
    /// the writer thread, which reports it with its next write.
    fn done(&mut self, mode: Mode) -> Done {
        let mut done = self.batch.take_done();
        match mode {
            Mode::Inline => {
                if done.close != CloseMark::None {
                    self.close_written = std::mem::take(&mut done.close);
                }
            }
            Mode::Writer => {
                if done.close == CloseMark::None {
                    done.close = std::mem::take(&mut self.close_written);
                }
            }
        }
        done
    }

    /// Whether something written inline waits for the writer to report it (a close frame, a
    /// failure).
    pub(super) fn has_news(&self) -> bool {
        self.close_written != CloseMark::None || self.failed.is_some()
    }

    /// Frees the batch's buffer if it is empty and larger than `keep` bytes.
    pub(super) fn shrink(&mut self, keep: usize) {
        self.batch.shrink(keep);
    }

    pub(super) fn capacity(&self) -> usize {
        self.batch.capacity()
    }
}
