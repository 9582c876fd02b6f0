//! Receiving a message as a stream: [`Connection::recv_stream`] and the [`MessageReader`] it
//! returns, which reads the message's parts as they arrive.

use std::io::{self, Read};

use super::feed::Handed;
use std::sync::atomic::Ordering;

use super::{Connection, LazyDeadline};
use crate::error::Error;
use crate::message::{Message, MessageKind};

impl Connection {
    /// Waits for the next message and returns it as a stream: a [`MessageReader`] that reads
    /// its payload as it arrives, so a message of any size costs about one part (64 KiB) of
    /// memory, bounded as a `Connection`'s buffer is (the socket stops reading while the
    /// reader falls behind).
    ///
    /// Messages larger than 64 KiB then come in parts and may be as large as
    /// `max_streamed_message_size` (`ClientBuilder`; by default `max_message_size`);
    /// [`recv`](Self::recv) still returns them whole, put together within `max_message_size`.
    /// They come in parts from the first `recv_stream` on, or from the connection's start
    /// when `max_streamed_message_size` is raised above `max_message_size` (so that a first
    /// message larger than `max_message_size` is not refused before `recv_stream` is
    /// called); a message that came whole is read from memory.
    /// A text message's bytes are checked as UTF-8 as they arrive (invalid text fails the
    /// socket with 1007, and the read with an error). Dropping the reader before the end of
    /// the message skips the rest of it.
    ///
    /// Once the socket has ended, returns its error as `recv` does.
    ///
    /// ```
    /// use std::io::Read;
    /// let server = syncws::EchoServer::start()?;
    /// let mut conn = syncws::connect(&server.url())?;
    /// conn.send(vec![1u8; 200_000]);
    /// let mut message = conn.recv_stream()?;
    /// assert_eq!(message.kind(), syncws::MessageKind::Binary);
    /// let mut total = 0;
    /// let mut buf = [0u8; 8192];
    /// loop {
    ///     let n = message.read(&mut buf).expect("the message");
    ///     if n == 0 {
    ///         break;
    ///     }
    ///     total += n;
    /// }
    /// assert_eq!(total, 200_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_stream(&mut self) -> Result<MessageReader<'_>, Error> {
        self.want_parts();
        // A message `recv_timeout` began to put together before it timed out.
        if let Some((kind, data)) = self.assembling.take() {
            return Ok(MessageReader::new(self, kind, data, false));
        }
        loop {
            match self.next_handed(None)? {
                Some(Handed::Message(m)) => {
                    let kind = m.kind();
                    let data = match m {
                        Message::Text(s) => s.into_bytes(),
                        Message::Binary(b) => b,
                    };
                    return Ok(MessageReader::new(self, kind, data, true));
                }
                Some(Handed::Part(p)) => {
                    let kind = if p.text {
                        MessageKind::Text
                    } else {
                        MessageKind::Binary
                    };
                    return Ok(MessageReader::new(self, kind, p.data, p.last));
                }
                // No deadline: nothing times out; the end came back as an error above.
                Some(Handed::Ended(_) | Handed::PeerClosed) | None => continue,
            }
        }
    }

    /// The next bytes that arrive, whole messages and parts alike, message boundaries
    /// ignored (the byte stream's reads): `Ok(Some(empty))` once the peer's close came (the
    /// end of its bytes), `Ok(None)` at the `deadline`.
    pub(crate) fn next_bytes(
        &mut self,
        mut deadline: Option<&mut LazyDeadline>,
    ) -> Result<Option<Vec<u8>>, Error> {
        loop {
            let data = match self.next_handed(deadline.as_deref_mut())? {
                None => return Ok(None),
                Some(Handed::PeerClosed) => return Ok(Some(Vec::new())),
                Some(Handed::Part(p)) => p.data,
                Some(Handed::Message(Message::Binary(b))) => b,
                Some(Handed::Message(Message::Text(s))) => s.into_bytes(),
                Some(Handed::Ended(_)) => continue,
            };
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }

    /// Makes this the connection of a byte stream: large messages in parts, the peer's close
    /// the end of the reads and answered by the stream's halves, not by the socket at once or
    /// by dropping the connection.
    pub(crate) fn set_byte_stream_mode(&mut self) {
        self.want_parts();
        self.modes.half_close.store(true, Ordering::Relaxed);
        self.close_on_drop = false;
    }

    /// The next part of the message a stream is reading: its data, and whether it is the
    /// last. `Ok(None)` at the `deadline`.
    pub(crate) fn next_part(
        &mut self,
        deadline: Option<&mut LazyDeadline>,
    ) -> Result<Option<(Vec<u8>, bool)>, Error> {
        match self.next_handed(deadline)? {
            None => Ok(None),
            Some(Handed::Part(p)) => Ok(Some((p.data, p.last))),
            // The decoder hands a message's parts in order with nothing between them.
            Some(Handed::Message(_) | Handed::Ended(_) | Handed::PeerClosed) => Err(Error::io(
                io::ErrorKind::InvalidData,
                "a message arrived inside another (a bug in syncws)",
            )),
        }
    }
}

/// One incoming message, read as it arrives: see [`Connection::recv_stream`].
///
/// Reads return the payload's bytes in order and `Ok(0)` at the end of the message. If the
/// socket ends before the message does, a read fails with the socket's [`Error`] inside the
/// `io::Error` (`get_ref` and downcast to read it): kind `UnexpectedEof` after a clean close,
/// `InvalidData` for invalid UTF-8 or a protocol error, `ConnectionAborted` otherwise.
#[derive(Debug)]
pub struct MessageReader<'a> {
    conn: &'a mut Connection,
    kind: MessageKind,
    data: Vec<u8>,
    pos: usize,
    last: bool,
}

impl<'a> MessageReader<'a> {
    fn new(conn: &'a mut Connection, kind: MessageKind, data: Vec<u8>, last: bool) -> Self {
        MessageReader {
            conn,
            kind,
            data,
            pos: 0,
            last,
        }
    }

    /// Whether the message is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }
}

impl Read for MessageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.data.len() || buf.is_empty() {
                let n = buf.len().min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.last {
                return Ok(0);
            }
            match self.conn.next_part(None) {
                Ok(Some((data, last))) => {
                    self.data = data;
                    self.pos = 0;
                    self.last = last;
                }
                Ok(None) => continue,
                Err(e) => {
                    // Nothing more of this message will come.
                    self.last = true;
                    self.data = Vec::new();
                    self.pos = 0;
                    return Err(io_error(e));
                }
            }
        }
    }
}

impl Drop for MessageReader<'_> {
    fn drop(&mut self) {
        // The rest of the message is skipped as it arrives, not waited for here.
        if !self.last {
            self.conn.skipping = true;
        }
    }
}

/// A socket's error as the `io::Error` a reader returns.
pub(crate) fn io_error(e: Error) -> io::Error {
    let kind = match &e {
        Error::Closed { .. } => io::ErrorKind::UnexpectedEof,
        Error::InvalidUtf8 | Error::Protocol(_) | Error::MessageTooLarge { .. } => {
            io::ErrorKind::InvalidData
        }
        Error::Io(io) => io.kind(),
        _ => io::ErrorKind::ConnectionAborted,
    };
    io::Error::new(kind, e)
}
