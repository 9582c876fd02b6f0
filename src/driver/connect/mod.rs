//! The client role's way in, every piece of it in one folder:
//! - this file: where a connect runs, on a pooled reader thread ([`spawn_client`], the
//!   listener API) or on the caller's ([`connect_here`], the blocking `Client::connect`);
//! - [`redirects`]: the chain of hops a connect follows, within one deadline ([`deadline`]);
//! - [`hop`]: one URL's steps in order (TLS configuration, the TCP leg, TLS, the request, the
//!   answer);
//! - [`tunnel`]: the TCP leg, direct or through an HTTP or SOCKS5 proxy;
//! - [`dns`]: name lookups with a deadline and a way out (`cancel()`).

mod deadline;
mod dns;
mod hop;
mod redirects;
mod tunnel;

#[cfg(feature = "testing")]
pub(crate) use dns::without_lookup;
pub(crate) use hop::TlsSource;

use std::sync::Arc;
use std::time::Duration;

use super::callbacks::Callbacks;
use super::pool::{self, Job, ThreadRole};
use super::read::{Reader, fail_unstarted};
use super::socket::Socket;
use super::write::WriterState;
use crate::config::Config;
use crate::error::Error;
use crate::proto::Role;
use crate::proto::session::Cause;
use crate::response::Response;

/// What a client socket's reader thread starts with.
struct ClientStart {
    socket: Arc<Socket>,
    writer_state: WriterState,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
}

/// Starts a client socket on a pooled reader thread, which connects and runs it.
///
/// If no thread can be had (the OS refuses one), the listener still hears exactly one
/// `on_failure`, delivered on the calling thread before this returns.
pub(crate) fn spawn_client(
    socket: Arc<Socket>,
    writer_state: WriterState,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
) {
    let stack = config.thread_stack_size;
    // The start is kept where this thread can take it back if the job never runs.
    let slot = Arc::new(parking_lot::Mutex::new(Some(ClientStart {
        socket,
        writer_state,
        config,
        tls,
        callbacks,
    })));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let Some(start) = theirs.lock().take() else {
            return Duration::ZERO;
        };
        drop(theirs);
        let keep_alive = start.config.thread_keep_alive;
        run_client(start);
        keep_alive
    });
    if let Err((e, job)) = pool::spawn(ThreadRole::Reader, stack, job) {
        drop(job);
        let start = slot.lock().take();
        if let Some(start) = start {
            log::error!("could not start the reader thread: {e}");
            let error = Error::io(
                e.kind(),
                format!("could not start the socket's reader thread: {e}"),
            );
            fail_unstarted(
                start.socket,
                start.callbacks,
                Role::Client,
                &start.config,
                error,
            );
        }
    }
}

/// Connects and upgrades on the calling thread (the blocking `Client::connect`), then hands
/// the open connection to a pooled reader thread. Returns the server's 101, or why the
/// socket failed (it is finished then: its callbacks heard the end).
///
/// A blocking caller waits for the handshake anyway; doing it here spares two thread
/// hand-offs (waking the reader, and the reader waking the caller with the open) per connect.
pub(crate) fn connect_here(
    socket: Arc<Socket>,
    writer_state: WriterState,
    config: Config,
    tls: TlsSource,
    callbacks: Box<dyn Callbacks>,
) -> Result<Response, Error> {
    let mut reader = Reader::new(socket.clone(), callbacks, Role::Client, &config);
    let (read, write, open) = match redirects::follow(&socket, &config, &tls) {
        Ok(opened) => opened,
        Err((error, response)) => {
            let error = error.with_response(response.as_deref().cloned());
            reader.finish(Cause::Failed(error.clone(), response));
            return Err(error);
        }
    };
    let response = open.response.clone();
    let Some(started) = reader.start_open(&read, write, writer_state, &config, open) else {
        // Nobody else holds the socket yet, so nothing canceled it: the OS refused the
        // writer's thread (the socket's callbacks heard the same).
        return Err(Error::io(
            std::io::ErrorKind::Other,
            "could not start the socket's writer thread",
        ));
    };
    let keep_alive = config.thread_keep_alive;
    let slot = Arc::new(parking_lot::Mutex::new(Some((reader, read, started))));
    let theirs = slot.clone();
    let job: Job = Box::new(move || {
        let Some((mut reader, read, started)) = theirs.lock().take() else {
            return Duration::ZERO;
        };
        drop(theirs);
        reader.socket().enter_reader();
        reader.read_open(read, started);
        keep_alive
    });
    if let Err((e, job)) = pool::spawn(ThreadRole::Reader, config.thread_stack_size, job) {
        drop(job);
        let error = Error::io(
            e.kind(),
            format!("could not start the socket's reader thread: {e}"),
        );
        if let Some((mut reader, _read, _started)) = slot.lock().take() {
            reader.socket().fail(error.clone());
            reader.finish(Cause::Failed(error.clone(), None));
        }
        return Err(error);
    }
    Ok(response)
}

fn run_client(start: ClientStart) {
    let ClientStart {
        socket,
        writer_state,
        config,
        tls,
        callbacks,
    } = start;
    socket.enter_reader();
    let mut reader = Reader::new(socket, callbacks, Role::Client, &config);
    match redirects::follow(reader.socket(), &config, &tls) {
        Ok((read, write, open)) => reader.run_open(read, write, writer_state, &config, open),
        Err((error, response)) => reader.finish(Cause::Failed(error, response)),
    }
}
