//! Broadcast: a message prepared once for many sockets ([`Prepared`]).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::driver::SendError;
use crate::message::Message;
use std::cell::RefCell;

use crate::proto::close;
use crate::proto::deflate::Deflater;
use crate::proto::encoder::{Shared, prepared_deflater, prepared_frame};

thread_local! {
    /// Compressors for prepared frames, by (window bits, level), kept per thread: a zlib state
    /// is ~256 KiB to allocate, and a broadcaster prepares message after message. Only the
    /// windows servers are configured with get here, never one a client chose, so this holds
    /// one compressor per server configuration.
    static DEFLATERS: RefCell<Vec<((u8, u32), Deflater)>> = const { RefCell::new(Vec::new()) };
}

/// `f` with the thread's compressor for `(window_bits, level)`.
fn with_deflater<R>(window_bits: u8, level: u32, f: impl FnOnce(Option<&mut Deflater>) -> R) -> R {
    DEFLATERS.with(|cell| {
        let mut cache = cell.borrow_mut();
        let key = (window_bits, level);
        if !cache.iter().any(|(k, _)| *k == key)
            && let Some(d) = prepared_deflater(window_bits, level)
        {
            cache.push((key, d));
        }
        f(cache.iter_mut().find(|(k, _)| *k == key).map(|(_, d)| d))
    })
}
use crate::websocket::WebSocket;

/// How many compressors this thread keeps for prepared frames. At most one per (window, level)
/// a server of this process is configured with: clients cannot add windows of their choosing
/// (see `deflate::Params::shared_frames`).
#[cfg(feature = "testing")]
pub(crate) fn compressors_on_this_thread() -> usize {
    DEFLATERS.with(|cell| cell.borrow().len())
}

/// A message framed once (and, where the sockets allow it, deflated once) for sending to many
/// sockets: a chat room's or a feed's broadcast.
///
/// Every server-role socket whose encoding of the message would give the same bytes takes the
/// same frame, shared, not copied: uncompressed when the socket does not compress messages of
/// this size, deflated once per window size for sockets that negotiated permessage-deflate
/// with `server_no_context_takeover` (see
/// [`ServerBuilder::server_no_context_takeover`](crate::ServerBuilder::server_no_context_takeover)).
/// The others — client-role sockets (each masks with keys of its own), sockets compressing with
/// context takeover, messages over the fragment size — get the message encoded for them as by
/// [`WebSocket::send`], transparently.
///
/// Sending never blocks: a slow consumer only fills its own queue, and
/// [`send_to`](Self::send_to)'s [`WhenFull`] says what happens to a socket whose queue the
/// message does not fit in.
///
/// ```
/// # fn main() -> Result<(), syncws::Error> {
/// use syncws::{Prepared, WhenFull};
/// # let server = syncws::EchoServer::start()?;
/// # let conn = syncws::connect(&server.url())?;
/// # let room: Vec<syncws::WebSocket> = vec![conn.websocket().clone()];
/// let news = Prepared::new(r#"{"type":"news","text":"hello, room"}"#);
/// let delivery = news.send_to(&room, WhenFull::Skip);
/// assert_eq!(delivery.sent, room.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Prepared {
    inner: Arc<Inner>,
}

/// (window bits, zlib level).
type DeflateKey = (u8, u32);
/// A prepared message's deflated frames, one per key (`None`: it could not be made).
type DeflatedFrames = Vec<(DeflateKey, Option<Arc<[u8]>>)>;

struct Inner {
    message: Message,
    plain: OnceLock<Option<Arc<[u8]>>>,
    /// Deflated frames by (window bits, level).
    deflated: Mutex<DeflatedFrames>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("len", &self.inner.message.len())
            .finish_non_exhaustive()
    }
}

/// The reason a broadcast closes a socket too slow for it with.
const TOO_SLOW: &str = "too slow";

/// What [`Prepared::send_to`] does with a socket whose send queue the message does not fit in
/// (over its `max_queue_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenFull {
    /// Skip it for this message; the socket stays open (a feed that tolerates gaps).
    Skip,
    /// Close it with this code: 1008 (policy violation: "you read too slowly") or 1013 (try
    /// again later), so the client reconnects and catches up its own way. A code
    /// [`WebSocket::close`] refuses (outside 1000–4999, or reserved) is replaced by 1008: the
    /// slow socket is closed either way.
    Close(u16),
}

/// What [`Prepared::send_to`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Sockets the message was queued on.
    pub sent: usize,
    /// Sockets skipped because their queue was full ([`WhenFull::Skip`]).
    pub skipped: usize,
    /// Sockets closed because their queue was full ([`WhenFull::Close`]).
    pub closed: usize,
    /// Sockets that were closing or had ended: nothing to do.
    pub ended: usize,
}

impl Prepared {
    /// Prepares `message`; frames are made on first use and kept.
    ///
    /// ```
    /// let p = syncws::Prepared::new(vec![0u8; 1024]);
    /// assert_eq!(p.message().len(), 1024);
    /// ```
    pub fn new(message: impl Into<Message>) -> Prepared {
        Prepared {
            inner: Arc::new(Inner {
                message: message.into(),
                plain: OnceLock::new(),
                deflated: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The message.
    ///
    /// ```
    /// let p = syncws::Prepared::new("hi");
    /// assert_eq!(p.message(), &syncws::Message::Text("hi".into()));
    /// ```
    pub fn message(&self) -> &Message {
        &self.inner.message
    }

    /// The shared frame `shared` asks for, made once. `None` if it cannot be made (a
    /// compression failure): the socket then encodes the message itself.
    pub(crate) fn frame(&self, shared: Shared) -> Option<Arc<[u8]>> {
        let make = || {
            let framed = match shared {
                Shared::Deflated { window_bits, level } => {
                    with_deflater(window_bits, level, |d| match d {
                        Some(d) => prepared_frame(&self.inner.message, Some(d)).map(Some),
                        None => Ok(None),
                    })
                }
                _ => prepared_frame(&self.inner.message, None).map(Some),
            };
            framed
                .map_err(|e| log::debug!("prepared frame not made ({e}): per-socket encoding"))
                .ok()
                .flatten()
                .map(Arc::from)
        };
        match shared {
            Shared::PerSocket => None,
            Shared::Plain => self.inner.plain.get_or_init(make).clone(),
            Shared::Deflated { window_bits, level } => {
                let key = (window_bits, level);
                let mut cache = self
                    .inner
                    .deflated
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some((_, frame)) = cache.iter().find(|(k, _)| *k == key) {
                    return frame.clone();
                }
                let frame = make();
                cache.push((key, frame.clone()));
                frame
            }
        }
    }

    /// Queues the message on every socket of `sockets`; never blocks. A socket whose queue
    /// it does not fit in is skipped or closed, as `when_full` says.
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// # let server = syncws::EchoServer::start()?;
    /// # let conn = syncws::connect(&server.url())?;
    /// # let sockets = vec![conn.websocket().clone()];
    /// let d = syncws::Prepared::new("tick").send_to(&sockets, syncws::WhenFull::Close(1008));
    /// assert_eq!((d.sent, d.closed), (1, 0));
    /// # Ok(()) }
    /// ```
    pub fn send_to<'a>(
        &self,
        sockets: impl IntoIterator<Item = &'a WebSocket>,
        when_full: WhenFull,
    ) -> Delivery {
        let mut d = Delivery::default();
        let when_full = match when_full {
            WhenFull::Close(code) if close::validate(code, TOO_SLOW).is_err() => {
                log::warn!("broadcast: {code} is not a close code we may send; using 1008");
                WhenFull::Close(1008)
            }
            w => w,
        };
        for ws in sockets {
            match ws.send_prepared_inner(self) {
                Ok(()) => d.sent += 1,
                Err(SendError::Full) => match when_full {
                    WhenFull::Skip => d.skipped += 1,
                    WhenFull::Close(code) => {
                        log::debug!("broadcast: a full queue, closing with {code}");
                        if ws.close(code, Some(TOO_SLOW)).unwrap_or(false) {
                            d.closed += 1;
                        } else {
                            d.ended += 1;
                        }
                    }
                },
                Err(_) => d.ended += 1,
            }
        }
        d
    }
}

// `send_prepared` is the socket's, but written here: the socket's module knows nothing of
// broadcast, so the two do not import each other.
impl WebSocket {
    /// Queues a [`Prepared`] message, as [`send`](Self::send) queues a
    /// message: false if the socket is closing or closed, or the queue is full (which starts
    /// a close with 1001). The socket writes the prepared, shared frame when its encoding
    /// allows it, else encodes the message itself.
    ///
    /// ```
    /// # fn main() -> Result<(), syncws::Error> {
    /// # let server = syncws::EchoServer::start()?;
    /// # let conn = syncws::connect(&server.url())?;
    /// let hello = syncws::Prepared::new("hello, everyone");
    /// assert!(conn.websocket().send_prepared(&hello));
    /// # Ok(()) }
    /// ```
    pub fn send_prepared(&self, prepared: &Prepared) -> bool {
        self.queued(self.send_prepared_inner(prepared))
    }

    pub(crate) fn send_prepared_inner(&self, prepared: &Prepared) -> Result<(), SendError> {
        self.socket
            .outbox
            .send_prepared(prepared.message(), &|shared| prepared.frame(shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_is_made_once_and_shared() {
        let p = Prepared::new("x".repeat(2000));
        let plain = p.frame(Shared::Plain).unwrap();
        assert!(Arc::ptr_eq(&plain, &p.frame(Shared::Plain).unwrap()));
        let d15 = Shared::Deflated {
            window_bits: 15,
            level: 3,
        };
        let deflated = p.frame(d15).unwrap();
        assert!(Arc::ptr_eq(&deflated, &p.clone().frame(d15).unwrap()));
        assert!(
            deflated.len() < plain.len() / 10,
            "{} vs {}",
            deflated.len(),
            plain.len()
        );
        assert_eq!(deflated[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
        let d10 = p
            .frame(Shared::Deflated {
                window_bits: 10,
                level: 3,
            })
            .unwrap();
        assert!(!Arc::ptr_eq(&deflated, &d10), "one frame per window size");
        assert!(p.frame(Shared::PerSocket).is_none());
    }
}
