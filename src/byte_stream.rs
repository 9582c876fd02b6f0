//! A web socket as a plain byte pipe, `Read + Write`, as coder/websocket's `NetConn` is: with it
//! any protocol that runs over TCP runs through a web socket.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::connection::{Connection, LazyDeadline, default_client, io_error};
use crate::error::Error;
use crate::message::Message;
use crate::request::Request;
use crate::websocket::{SendTimeoutError, WebSocket};

/// The most bytes one `write` sends: one binary message. Larger writes are short (`write_all`
/// loops); 64 KiB is under every common peer's message limit and large enough that a message's
/// few header bytes cost nothing.
pub const MAX_WRITE: usize = 64 * 1024;

/// A web socket as a byte stream: [`Read`] concatenates the payloads of the messages that
/// arrive (binary or text: bytes are bytes), [`Write`] sends each write as one binary
/// message. With it, a TCP protocol runs through a web socket (`syncws bridge` is made of it).
///
/// It behaves as `std`'s `TcpStream` does, where a web socket can:
///
/// - **Reads** block until bytes arrive and return what one message part holds at most (a
///   short read is normal); `Ok(0)` is the end of the stream: the peer closed cleanly (or
///   [`shutdown`](Self::shutdown) with `Read`). A socket that failed fails the read with its
///   [`Error`] inside the `io::Error`. Messages arrive in parts of 64 KiB, so a peer's
///   message of any size costs one part of memory, within `max_streamed_message_size`.
/// - **Writes** send `buf` (at most [`MAX_WRITE`] bytes of it) as one binary message and
///   return once it is queued; the send queue bounds what waits, and a write blocks while it
///   is full. Nothing is held back: a write is on its way when it returns, so small writes are
///   small messages (wrap the stream in a `BufWriter` to coalesce them). [`flush`](Write::flush)
///   waits until everything written is handed to the operating system.
/// - **Timeouts** ([`set_read_timeout`](Self::set_read_timeout),
///   [`set_write_timeout`](Self::set_write_timeout)) fail a read or write that waited that long
///   with `ErrorKind::TimedOut` (never `WouldBlock`: this is a blocking type), as on Windows;
///   `None`, the default, waits for ever. A write's timeout covers its wait for room in the
///   queue and `flush`'s wait for the queue to drain.
/// - **Half-close, as TCP's.** [`shutdown`](Self::shutdown) with `Write` sends a close frame
///   (1000): the peer's reads then end (`Ok(0)`) while it may still write to us, until it
///   shuts its own writes. Likewise the peer's close ends our reads without ending our
///   writes: the socket answers it only once we shut ours (or drop the stream, or both
///   halves). The peer's close timeout (60 s by default for syncws) bounds how long that may
///   take. With `Read`, later reads return `Ok(0)`.
/// - [`split`](Self::split) gives a reading half and a writing half to use on two threads
///   (a bridge copies each direction on its own), where `TcpStream` has `try_clone`.
///
/// ```
/// use std::io::{Read, Write};
/// let server = syncws::EchoServer::start()?;
/// let mut stream = syncws::ByteStream::connect(&server.url())?;
/// stream.write_all(b"hello, ")?;
/// stream.write_all(b"world")?;
/// let mut got = [0u8; 12];
/// stream.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello, world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ByteStream {
    reader: ByteReader,
    writer: ByteWriter,
}

/// The reading half of a [`ByteStream`] (see [`ByteStream::split`]).
#[derive(Debug)]
pub struct ByteReader {
    conn: Connection,
    data: Vec<u8>,
    pos: usize,
    timeout: Option<Duration>,
    /// `shutdown(Read)`, or the peer's close came: reads return `Ok(0)`.
    done: bool,
    _close: Arc<CloseOnDrop>,
}

/// The writing half of a [`ByteStream`] (see [`ByteStream::split`]). Dropping it ends our
/// writes, as [`shutdown`](Self::shutdown) does.
#[derive(Debug)]
pub struct ByteWriter {
    ws: WebSocket,
    timeout: Option<Duration>,
    _close: Arc<CloseOnDrop>,
}

/// Closes the socket (1000) once both halves are gone: until then one half may still use it.
#[derive(Debug)]
struct CloseOnDrop(WebSocket);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.close(1000, None);
    }
}

impl Drop for ByteWriter {
    fn drop(&mut self) {
        let _ = self.ws.close(1000, None);
    }
}

impl ByteStream {
    /// The byte stream over an open `Connection`. What arrived before this call is read too,
    /// but a peer's close that came first was already answered: prefer
    /// [`connect_with`](Self::connect_with) and [`Accept::byte_stream`](crate::Accept::byte_stream),
    /// whose connections are a byte stream's from their start.
    pub fn new(mut conn: Connection) -> ByteStream {
        // Messages of any size, read as they arrive; the peer's close is a half-close.
        conn.set_byte_stream_mode();
        let ws = conn.websocket().clone();
        let close = Arc::new(CloseOnDrop(ws.clone()));
        ByteStream {
            reader: ByteReader {
                conn,
                data: Vec::new(),
                pos: 0,
                timeout: None,
                done: false,
                _close: close.clone(),
            },
            writer: ByteWriter {
                ws,
                timeout: None,
                _close: close,
            },
        }
    }

    /// Connects to `url` with the default client, as [`connect`](crate::connect) does.
    pub fn connect(url: &str) -> Result<ByteStream, Error> {
        let request = crate::Request::builder(url).build()?;
        ByteStream::connect_with(default_client(), request)
    }

    /// Connects with `client`'s settings. The connection is a byte stream's from its start:
    /// a peer that writes and closes at once is read to the end.
    pub fn connect_with(client: &Client, request: Request) -> Result<ByteStream, Error> {
        client
            .connect_connection(request, true)
            .map(ByteStream::new)
    }

    /// The socket, for its state, statistics and queue.
    pub fn websocket(&self) -> &WebSocket {
        &self.writer.ws
    }

    /// Reads wait at most `timeout` (`None`: for ever, the default); see the type's docs.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.reader.timeout = timeout;
    }

    /// Writes (and `flush`) wait at most `timeout` (`None`: for ever, the default).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.writer.timeout = timeout;
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.reader.timeout
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.writer.timeout
    }

    /// Ends one or both directions: `Write` sends a close frame (1000) behind what is
    /// written; `Read` makes later reads return `Ok(0)`; `Both` does both.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.reader.shutdown();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.writer.shutdown()?;
        }
        Ok(())
    }

    /// The reading and the writing half, for two threads.
    pub fn split(self) -> (ByteReader, ByteWriter) {
        (self.reader, self.writer)
    }
}

impl ByteReader {
    /// Reads wait at most `timeout` (`None`: for ever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Later reads return `Ok(0)`.
    pub fn shutdown(&mut self) {
        self.done = true;
    }
}

impl ByteWriter {
    /// Writes (and `flush`) wait at most `timeout` (`None`: for ever).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends a close frame (1000) behind what is written: the peer's reads end.
    pub fn shutdown(&self) -> io::Result<()> {
        self.ws
            .close(1000, None)
            .map(|_| ())
            .map_err(io::Error::other)
    }

    fn wait(&self) -> Duration {
        self.timeout.unwrap_or(Duration::MAX)
    }
}

impl Read for ByteReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let mut deadline = self.timeout.map(LazyDeadline::new);
        loop {
            if self.pos < self.data.len() {
                let n = buf.len().min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match self.conn.next_bytes(deadline.as_mut()) {
                // The peer's close: the end of its bytes.
                Ok(Some(data)) if data.is_empty() => {
                    self.done = true;
                    return Ok(0);
                }
                Ok(Some(data)) => {
                    self.data = data;
                    self.pos = 0;
                }
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no bytes arrived within the read timeout",
                    ));
                }
                // The peer closed cleanly: the end of the stream.
                Err(Error::Closed { .. }) => return Ok(0),
                Err(e) => return Err(io_error(e)),
            }
        }
    }
}

impl Write for ByteWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_WRITE);
        match self
            .ws
            .send_timeout(Message::Binary(buf[..n].to_vec()), self.wait())
        {
            Ok(()) => Ok(n),
            Err(SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the send queue had no room within the write timeout",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the web socket is closing or closed",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.ws.wait_drained(self.wait()) {
            return Ok(());
        }
        if self.ws.queue_size() > 0
            && matches!(
                self.ws.state(),
                crate::State::Open | crate::State::Connecting
            )
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the written bytes were not all sent within the write timeout",
            ));
        }
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the web socket ended before the written bytes were sent",
        ))
    }
}

impl Read for ByteStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for ByteStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
