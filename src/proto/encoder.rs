//! Outgoing messages and control frames to bytes: the mirror of the [decoder](super::decoder).
//!
//! [`Encoder`] owns what turning a message into frames needs: the role (clients mask), the
//! mask-key source, the permessage-deflate compressor and the fragment size. It is pure: the
//! writer hands it messages and a buffer and writes the buffer out.
//!
//! A message larger than the fragment size goes out as several frames, one
//! [`next_fragment`](Encoder::next_fragment) call each, so the driver can slip a pong or a close
//! frame between two fragments instead of parking them behind a 16 MiB write (control frames
//! may be interleaved with fragments, RFC 6455 §5.4).

use super::Role;
use super::close;
use super::deflate::{Deflater, Params};
use super::frame::{self, OpCode};
use super::mask::MaskSource;
use crate::error::Error;
use crate::message::Message;

/// Settings of an [`Encoder`].
#[derive(Debug, Clone, Copy)]
pub struct EncoderConfig {
    /// Messages smaller than this are sent uncompressed even when deflate is in use.
    pub min_compress_size: usize,
    /// The largest payload of one data frame; longer messages are fragmented.
    pub fragment_size: usize,
    /// zlib's compression level, 0 to 9.
    pub compression_level: u32,
}

/// Messages from this size up that fit one frame are written from their own buffer (masked in
/// place) rather than copied into the batch. Below it, copying is cheaper than what writing a
/// message by reference costs (its own `writev` slot and a hand-back of the buffer): a byte
/// stream's 64 KiB writes cost the sender about 40% less CPU copied (docs/benchmarks.md,
/// "Streams").
pub(crate) const ZERO_COPY_MIN: usize = 128 * 1024;

/// One connection's outgoing frames: see the module's documentation.
pub struct Encoder {
    role: Role,
    masks: MaskSource,
    deflater: Option<Deflater>,
    config: EncoderConfig,
    current: Option<Outbound>,
    /// The last compressed payload's buffer, reused by the next (`compress` clears it).
    spare: Vec<u8>,
    /// Frames encoded so far (for the socket's statistics).
    frames: u64,
    /// Pings among them: counted with their frame, so a snapshot never has more pings than
    /// frames.
    pings: u64,
}

/// How a connection takes a prepared message (`crate::Prepared`): one frame encoded once and
/// written to every connection whose encoding would give the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Client frames are masked with a key of their own: nothing to share.
    masked: bool,
    fragment_size: usize,
    /// With permessage-deflate: messages from this size on are compressed.
    min_compress_size: Option<usize>,
    /// With permessage-deflate and no context takeover: the window and level.
    shareable: Option<(u8, u32)>,
}

/// Which shared frame a connection takes for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shared {
    /// The uncompressed frame.
    Plain,
    /// The frame deflated with this window and level, no context takeover.
    Deflated { window_bits: u8, level: u32 },
    /// None: this connection encodes the message itself (masked, fragmented, or compressed
    /// with context takeover, where its bytes depend on what it sent before).
    PerSocket,
}

impl Fit {
    /// The shared frame for a message of `len` bytes, if one fits.
    pub(crate) fn choose(&self, len: usize) -> Shared {
        if self.masked || len > self.fragment_size {
            return Shared::PerSocket;
        }
        match (self.min_compress_size, self.shareable) {
            (None, _) => Shared::Plain,
            (Some(min), _) if len < min => Shared::Plain,
            (Some(_), Some((window_bits, level))) => Shared::Deflated { window_bits, level },
            (Some(_), None) => Shared::PerSocket,
        }
    }
}

/// The compressor of `Shared::Deflated { window_bits, level }` frames (no context takeover:
/// it can be reused for any number of them). `None` for a window zlib cannot produce.
pub(crate) fn prepared_deflater(window_bits: u8, level: u32) -> Option<Deflater> {
    let params = Params {
        send_no_context_takeover: true,
        recv_no_context_takeover: false,
        send_max_window_bits: window_bits,
        shared_frames: true,
    };
    Deflater::new(&params, level)
}

/// A prepared message's one frame (server role: unmasked): as it is, or, with `deflater`
/// (from [`prepared_deflater`]), deflated with no context takeover.
pub(crate) fn prepared_frame(
    message: &Message,
    deflater: Option<&mut Deflater>,
) -> Result<Vec<u8>, Error> {
    let (opcode, payload) = match message {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b.as_slice()),
    };
    let mut out = Vec::new();
    match deflater {
        Some(deflater) => {
            let mut compressed = Vec::new();
            deflater.compress(payload, &mut compressed)?;
            frame::encode_frame(&mut out, true, true, opcode, &compressed, None);
        }
        None => frame::encode_frame(&mut out, true, false, opcode, payload, None),
    }
    Ok(out)
}

/// A compressed-payload buffer larger than this is freed rather than kept for the next.
const SPARE_MAX: usize = 64 * 1024;

/// A message on its way out, possibly in several fragments.
struct Outbound {
    opcode: OpCode,
    compressed: bool,
    payload: Payload,
    /// Payload bytes already encoded.
    pos: usize,
    /// Whether its first fragment is out (later ones are continuations).
    started: bool,
    /// The application payload size, as counted by `queue_size`.
    app_len: u64,
}

enum Payload {
    Plain(Message),
    Deflated(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Plain(m) => m.as_bytes(),
            Payload::Deflated(v) => v,
        }
    }
}

impl Encoder {
    /// `deflate` is the negotiated permessage-deflate, if any.
    pub fn new(role: Role, deflate: Option<&Params>, config: EncoderConfig) -> Self {
        Encoder {
            role,
            masks: MaskSource::new(),
            deflater: deflate.and_then(|p| Deflater::new(p, config.compression_level)),
            config: EncoderConfig {
                fragment_size: config.fragment_size.max(1),
                ..config
            },
            current: None,
            spare: Vec::new(),
            frames: 0,
            pings: 0,
        }
    }

    /// Frames encoded so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// Pings encoded so far.
    pub(crate) fn pings(&self) -> u64 {
        self.pings
    }

    /// A prepared message's frame, encoded elsewhere, goes out through this connection.
    pub(crate) fn counted_external_frame(&mut self) {
        self.counted_frame();
    }

    /// How this connection can take a prepared message's shared frame.
    pub(crate) fn fit(&self) -> Fit {
        Fit {
            masked: self.role == Role::Client,
            fragment_size: self.config.fragment_size,
            min_compress_size: self
                .deflater
                .as_ref()
                .map(|_| self.config.min_compress_size),
            shareable: self.deflater.as_ref().and_then(Deflater::shareable),
        }
    }

    #[inline]
    fn counted_frame(&mut self) {
        self.frames = self.frames.wrapping_add(1);
    }

    fn mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(self.masks.next_key()),
            Role::Server => None,
        }
    }

    /// Whether a message is partly encoded: call [`next_fragment`](Self::next_fragment) until
    /// it is done before starting another.
    pub(crate) fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    /// For a large message that goes out as one uncompressed frame: appends its header to
    /// `out` and hands back the payload, masked in place, to be written right after `out`
    /// (no copy). Any other message is handed back untouched in `Err`.
    pub(crate) fn whole_frame(
        &mut self,
        out: &mut Vec<u8>,
        message: Message,
    ) -> Result<(Vec<u8>, u64), Message> {
        let len = message.len();
        if len < ZERO_COPY_MIN || len > self.config.fragment_size || self.would_compress(len) {
            return Err(message);
        }
        let (opcode, mut payload) = match message {
            Message::Text(s) => (OpCode::Text, s.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        let mask = self.mask();
        log::trace!("frame out: {opcode:?} len={len} (payload written in place)");
        frame::encode_header(out, true, false, opcode, len, mask);
        self.counted_frame();
        if let Some(key) = mask {
            super::mask::apply(&mut payload, key, 0);
        }
        Ok((payload, len as u64))
    }

    /// For a large message that will go out as one uncompressed frame (see
    /// [`whole_frame`](Self::whole_frame)) from a client: the mask key for it, so the sender
    /// can mask the payload itself, on its own thread, before queuing it
    /// ([`premasked_header`](Self::premasked_header) then writes the header). `None` for any
    /// other message, and in the server role (nothing to mask).
    pub(crate) fn premask_key(&mut self, len: usize) -> Option<[u8; 4]> {
        if len < ZERO_COPY_MIN || len > self.config.fragment_size || self.would_compress(len) {
            return None;
        }
        self.mask()
    }

    /// Appends the header of a frame whose payload (`len` bytes) was masked with `key` by
    /// the sender (after [`premask_key`](Self::premask_key)).
    pub(crate) fn premasked_header(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        len: usize,
        key: [u8; 4],
    ) {
        log::trace!("frame out: {opcode:?} len={len} (masked by the sender)");
        frame::encode_header(out, true, false, opcode, len, Some(key));
        self.counted_frame();
    }

    /// Takes the next message to send, compressing it if deflate is in use and it is large
    /// enough. Encode its frames with [`next_fragment`](Self::next_fragment).
    pub fn start(&mut self, message: Message) -> Result<(), Error> {
        debug_assert!(self.current.is_none(), "a message is still in progress");
        let opcode = match &message {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        let app_len = message.len() as u64;
        let (compressed, payload) = match &mut self.deflater {
            Some(d) if message.len() >= self.config.min_compress_size => {
                // The previous message's buffer, so a stream of compressed messages does not
                // allocate one per message.
                let mut out = std::mem::take(&mut self.spare);
                d.compress(message.as_bytes(), &mut out)?;
                (true, Payload::Deflated(out))
            }
            _ => (false, Payload::Plain(message)),
        };
        self.current = Some(Outbound {
            opcode,
            compressed,
            payload,
            pos: 0,
            started: false,
            app_len,
        });
        Ok(())
    }

    /// Appends the next frame of the message in progress to `out`. Returns the message's
    /// application payload size once its last frame is encoded, `None` while more remain (or
    /// when no message is in progress).
    pub fn next_fragment(&mut self, out: &mut Vec<u8>) -> Option<u64> {
        let mask = if self.current.is_some() {
            self.mask()
        } else {
            None
        };
        let frag = self.config.fragment_size;
        let m = self.current.as_mut()?;
        let bytes = m.payload.bytes();
        let end = bytes.len().min(m.pos.saturating_add(frag));
        let fin = end == bytes.len();
        let (opcode, rsv1) = if m.started {
            (OpCode::Continuation, false)
        } else {
            (m.opcode, m.compressed)
        };
        log::trace!(
            "frame out: {opcode:?} fin={fin} len={} rsv1={rsv1}",
            end - m.pos
        );
        frame::encode_frame(out, fin, rsv1, opcode, &bytes[m.pos..end], mask);
        self.frames = self.frames.wrapping_add(1);
        m.pos = end;
        m.started = true;
        if fin {
            let len = m.app_len;
            if let Some(Outbound {
                payload: Payload::Deflated(buf),
                ..
            }) = self.current.take()
                && buf.capacity() <= SPARE_MAX
            {
                self.spare = buf;
            }
            Some(len)
        } else {
            None
        }
    }

    /// Encodes one part of a message sent in parts (a streamed message), as one frame:
    /// appends its header to `out` and hands back the payload to write right after it
    /// (masked in place, compressed when permessage-deflate is in use), so a large part is
    /// not copied. The `first` part's frame carries the message's opcode (and RSV1 when
    /// compressed), the others are continuations; the `last` one has FIN. The parts of one
    /// message must be encoded in order, with no other data message between them (control
    /// frames may come between, RFC 6455 §5.4).
    pub(crate) fn part(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: Vec<u8>,
        first: bool,
        last: bool,
    ) -> Result<Vec<u8>, Error> {
        debug_assert!(self.current.is_none(), "a whole message is in progress");
        let compressed = self.deflater.is_some();
        let mut payload = match &mut self.deflater {
            Some(d) => {
                let mut out = Vec::new();
                d.compress_part(&payload, &mut out, last)?;
                out
            }
            None => payload,
        };
        let (opcode, rsv1) = if first {
            (opcode, compressed)
        } else {
            (OpCode::Continuation, false)
        };
        let mask = self.mask();
        log::trace!(
            "frame out: {opcode:?} fin={last} len={} rsv1={rsv1} (a part)",
            payload.len()
        );
        frame::encode_header(out, last, rsv1, opcode, payload.len(), mask);
        self.counted_frame();
        if let Some(key) = mask {
            super::mask::apply(&mut payload, key, 0);
        }
        Ok(payload)
    }

    /// Whether a message of `len` bytes would be compressed.
    pub(crate) fn would_compress(&self, len: usize) -> bool {
        self.deflater.is_some() && len >= self.config.min_compress_size
    }

    /// Encodes a small message that is neither compressed nor fragmented as one frame, from
    /// borrowed bytes: `send`'s fast path, which frees the caller's buffer after its lock.
    /// Hands back `false` (and encodes nothing) for a message that needs compression or
    /// fragments.
    #[inline]
    pub(crate) fn small(&mut self, out: &mut Vec<u8>, message: &Message) -> bool {
        let len = message.len();
        if len > self.config.fragment_size || self.would_compress(len) {
            return false;
        }
        let opcode = match message {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        log::trace!("frame out: {opcode:?} len={len}");
        let mask = self.mask();
        frame::encode_frame(out, true, false, opcode, message.as_bytes(), mask);
        self.counted_frame();
        true
    }

    /// Encodes a whole message at once (all its fragments). The driver encodes fragment by
    /// fragment; the tests and the fuzz targets use this.
    #[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
    pub fn message(&mut self, out: &mut Vec<u8>, message: Message) -> Result<(), Error> {
        self.start(message)?;
        while self.next_fragment(out).is_none() {}
        Ok(())
    }

    /// Appends a ping or pong.
    pub fn control(&mut self, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        log::trace!("frame out: {opcode:?} len={}", payload.len());
        frame::encode(out, opcode, false, payload, mask);
        self.counted_frame();
        if opcode == OpCode::Ping {
            self.pings = self.pings.wrapping_add(1);
        }
    }

    /// Appends a close frame; `None` sends an empty payload.
    pub fn close(&mut self, out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
        self.control(out, OpCode::Close, &close::payload(code, reason));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn prepared_frames_fit_only_where_the_bytes_would_be_the_same() {
        let fit = |masked, min: Option<usize>, shareable| Fit {
            masked,
            fragment_size: 1000,
            min_compress_size: min,
            shareable,
        };
        assert_eq!(
            fit(true, None, None).choose(10),
            Shared::PerSocket,
            "client: masked"
        );
        assert_eq!(fit(false, None, None).choose(10), Shared::Plain);
        assert_eq!(
            fit(false, None, None).choose(2000),
            Shared::PerSocket,
            "fragmented"
        );
        assert_eq!(
            fit(false, Some(100), None).choose(10),
            Shared::Plain,
            "under the size"
        );
        assert_eq!(
            fit(false, Some(100), None).choose(500),
            Shared::PerSocket,
            "takeover"
        );
        assert_eq!(
            fit(false, Some(100), Some((12, 3))).choose(500),
            Shared::Deflated {
                window_bits: 12,
                level: 3
            }
        );
    }
    use super::*;
    use crate::proto::decoder::{Decoder, Incoming};

    fn config(fragment_size: usize) -> EncoderConfig {
        EncoderConfig {
            min_compress_size: 16,
            fragment_size,
            compression_level: 6,
        }
    }

    fn decode_all(d: &mut Decoder, mut input: &[u8]) -> Vec<Incoming> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (used, ev) = d.decode(input).unwrap();
            input = &input[used..];
            events.extend(ev);
        }
        events
    }

    #[test]
    fn small_message_is_one_frame() {
        let mut e = Encoder::new(Role::Server, None, config(1024));
        let mut out = Vec::new();
        e.message(&mut out, Message::from("hi")).unwrap();
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
    }

    #[test]
    fn large_message_is_fragmented_and_round_trips() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for role in [Role::Client, Role::Server] {
            let mut e = Encoder::new(role, None, config(4096));
            let mut out = Vec::new();
            e.start(Message::Binary(payload.clone())).unwrap();
            let mut frames = 0;
            let mut done = None;
            while done.is_none() {
                done = e.next_fragment(&mut out);
                frames += 1;
            }
            assert_eq!((frames, done), (3, Some(10_000)));
            assert!(!e.in_progress());
            let peer = match role {
                Role::Client => Role::Server,
                Role::Server => Role::Client,
            };
            let mut d = Decoder::new(peer, 1 << 20, None);
            assert_eq!(
                decode_all(&mut d, &out),
                [Incoming::Message(Message::Binary(payload.clone()))]
            );
        }
    }

    #[test]
    fn pings_are_counted_with_their_frames() {
        let mut e = Encoder::new(Role::Server, None, config(1000));
        let mut out = Vec::new();
        e.control(&mut out, OpCode::Pong, b"a");
        e.control(&mut out, OpCode::Ping, b"b");
        e.close(&mut out, Some(1000), "");
        assert_eq!((e.frames(), e.pings()), (3, 1));
    }

    #[test]
    fn control_frame_between_fragments() {
        let text = "é".repeat(3000);
        let mut e = Encoder::new(Role::Client, None, config(1000));
        let mut out = Vec::new();
        e.start(Message::Text(text.clone())).unwrap();
        assert_eq!(e.next_fragment(&mut out), None);
        e.control(&mut out, OpCode::Pong, b"p");
        while e.next_fragment(&mut out).is_none() {}
        let mut d = Decoder::new(Role::Server, 1 << 20, None);
        assert_eq!(
            decode_all(&mut d, &out),
            [
                Incoming::Pong(b"p".to_vec()),
                Incoming::Message(Message::Text(text))
            ]
        );
    }

    #[test]
    fn compressed_fragments_set_rsv1_on_the_first_only() {
        let params = Params {
            send_no_context_takeover: false,
            recv_no_context_takeover: false,
            send_max_window_bits: 15,
            shared_frames: false,
        };
        // Incompressible-ish bytes so the deflated payload spans several fragments.
        let mut x: u32 = 1;
        let payload: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let mut e = Encoder::new(Role::Server, Some(&params), config(1024));
        let mut out = Vec::new();
        e.message(&mut out, Message::Binary(payload.clone()))
            .unwrap();
        assert_eq!(out[0] & 0x40, 0x40, "RSV1 on the first frame");
        assert_eq!(out[0] & 0x80, 0, "first frame not final");
        let inflater = crate::proto::deflate::Inflater::new(&params);
        let mut d = Decoder::new(Role::Client, 1 << 20, Some(inflater));
        assert_eq!(
            decode_all(&mut d, &out),
            [Incoming::Message(Message::Binary(payload))]
        );
    }

    #[test]
    fn compression_level_reaches_zlib() {
        let params = Params {
            send_no_context_takeover: true,
            recv_no_context_takeover: false,
            send_max_window_bits: 15,
            shared_frames: false,
        };
        let text = "the quick brown fox jumps over the lazy dog; ".repeat(200);
        let size = |level| {
            let cfg = EncoderConfig {
                compression_level: level,
                ..config(1 << 20)
            };
            let mut e = Encoder::new(Role::Server, Some(&params), cfg);
            let mut out = Vec::new();
            e.message(&mut out, Message::Text(text.clone())).unwrap();
            out.len()
        };
        // Level 0 stores; 9 compresses this repetitive text to a small fraction.
        assert!(size(0) > text.len(), "level 0 stores");
        assert!(size(9) * 10 < text.len(), "level 9 compresses");
    }
}
