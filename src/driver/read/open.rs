//! The open connection's start: the session opened, the write side set up and the writer
//! thread started (on whichever thread upgraded it), then `on_open` and the read loop (on the
//! reader thread).

use std::sync::Arc;
use std::time::Instant;

use super::{Opened, Reader, Started};
use crate::config::Config;
use crate::driver::platform;
use crate::driver::pool::{self, Job, ThreadRole};
use crate::driver::transport::{self, ReadHalf, WriteHalf};
use crate::driver::write::{self, WriterState};
use crate::error::Error;
use crate::proto::decoder::Decoder;
use crate::proto::deflate::Inflater;
use crate::proto::encoder::Encoder;
use crate::proto::session::Cause;

impl Reader {
    /// Starts the writer and runs the open socket to its end.
    pub(in crate::driver) fn run_open(
        &mut self,
        read: ReadHalf,
        write: WriteHalf,
        writer_state: WriterState,
        config: &Config,
        open: Opened,
    ) {
        if let Some(started) = self.start_open(&read, write, writer_state, config, open) {
            self.read_open(read, started);
        }
    }

    /// The open connection's first half, on whichever thread upgraded it: the session is
    /// open, the write side set up, the writer started. `None` if the socket ended instead
    /// (then it is finished: a cancel came first, or the writer could not start).
    pub(in crate::driver) fn start_open(
        &mut self,
        read: &ReadHalf,
        write: WriteHalf,
        writer_state: WriterState,
        config: &Config,
        open: Opened,
    ) -> Option<Started> {
        let Opened {
            response,
            leftover,
            deflate,
        } = open;
        let tls = read.is_tls();
        if self
            .socket()
            .with_session(|s| s.opened(Instant::now(), tls))
            .is_err()
        {
            self.finish(Cause::Dropped(None));
            return None;
        }
        let _ = self
            .socket()
            .traffic
            .opened_at
            .set(std::time::SystemTime::now());
        let encoder = Encoder::new(self.role, deflate.as_ref(), config.encoder());
        let write_timeout = config.write_timeout;
        // What the write watcher calls for a write stalled past its deadline (Windows): the
        // socket fails as a write that timed out would make it. Weak: the write half lives in
        // the socket.
        let weak = Arc::downgrade(self.socket());
        let on_stall = transport::OnStall(Arc::new(move || {
            if let Some(socket) = weak.upgrade() {
                socket.write_failed(std::io::ErrorKind::TimedOut.into(), write_timeout);
            }
        }));
        let write = transport::for_writer(
            write,
            config,
            &self.socket().lifecycle.close_deadline,
            on_stall,
        );
        self.socket().outbox.open(write, encoder);
        let keep_alive = config.thread_keep_alive;
        let socket = self.socket().clone();
        socket.writer_started();
        let job: Job = Box::new(move || {
            write::run_writer(socket.clone(), writer_state, write_timeout);
            socket.writer_exited();
            keep_alive
        });
        if let Err((e, job)) = pool::spawn(ThreadRole::Writer, config.thread_stack_size, job) {
            drop(job);
            self.socket().writer_exited();
            self.finish(Cause::Failed(Error::from(e), None));
            return None;
        }
        Some(Started {
            response,
            leftover,
            inflater: deflate.as_ref().map(Inflater::new),
        })
    }

    /// The open connection's second half, on the reader thread: `on_open`, then the read
    /// loop, then the end.
    pub(in crate::driver) fn read_open(&mut self, mut read: ReadHalf, started: Started) {
        let Started {
            response,
            leftover,
            inflater,
        } = started;
        // `cancel()` is final: once it has returned, only the terminal callback runs.
        let opened = self.call(|c| c.open(&response));
        // Not kept for the socket's life: its headers are the application's to copy.
        drop(response);
        match opened {
            Ok(true) => {}
            Ok(false) => {
                let cause = self.failed_elsewhere(&mut read);
                return self.finish(cause);
            }
            Err(e) => return self.fail_with_close(&mut read, e),
        }
        // The connect and handshake (TLS above all) ran deeper than the read loop will.
        platform::threads::release_unused_stack();
        let mut decoder = Decoder::new(self.role, self.max_message_size, inflater);
        self.counts.wire = leftover.len() as u64;
        let cause = self.read_loop(&mut read, leftover, &mut decoder);
        self.publish(decoder.frames());
        self.finish(cause)
    }
}
