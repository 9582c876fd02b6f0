//! Incoming bytes to messages: frame parsing, unmasking, reassembly, UTF-8 and size checks.
//!
//! [`Decoder`] is pure: the reader thread hands it whatever the socket returned and gets back
//! how many bytes it used and, at most, one event. Payload bytes are copied exactly once, from
//! the read buffer into the message being assembled; a partial frame header (at most 14 bytes)
//! is the only thing kept between calls, so the read buffer can always be reused whole.
//!
//! **Parts.** With [`set_parts`](Decoder::set_parts), a message that grows past the part size
//! (or past `max_message_size`) is handed over in [`Part`]s as it arrives instead of whole,
//! so its memory is one part, not the message: the streamed receive. Its limit is then the
//! streamed one. A compressed message is inflated a part at a time: compressed input that
//! would inflate past the part waits in the decoder ([`has_pending`](Decoder::has_pending))
//! until the part is handed over, so a small input that inflates to gigabytes still costs one
//! part of memory at a time. Text parts end on whole characters (an incomplete one at the end
//! of a part starts the next), and invalid UTF-8 fails with 1007 as it lands, as whole
//! messages do.

use crate::error::{Error, ProtocolError};
use crate::message::Message;
use crate::proto::close::{self, CloseFrame};
use crate::proto::deflate::Inflater;
use crate::proto::frame::{self, Header, OpCode};
use crate::proto::mask;
use crate::proto::utf8;

pub(crate) use super::Role;

/// What the decoder found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole data message, reassembled, inflated and (text) UTF-8 checked.
    Message(Message),
    /// A piece of a message received in parts (see [`Decoder::set_parts`]).
    Part(Part),
    /// A ping, with its payload.
    Ping(Vec<u8>),
    /// A pong, with its payload.
    Pong(Vec<u8>),
    /// The peer's close frame.
    Close(CloseFrame),
}

/// One piece of a message received in parts: the pieces of one message come in order, with
/// nothing between them but control frames' events.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    /// A text message's part: valid UTF-8, ending on a whole character.
    pub text: bool,
    /// The message's first part.
    pub first: bool,
    /// The message's last part (it may be empty).
    pub last: bool,
    /// The payload, inflated.
    pub data: Vec<u8>,
}

/// How the decoder hands over large messages: in parts of `size` bytes (see
/// [`Decoder::set_parts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// A message is handed over in parts once it has this many bytes (or more than
    /// `max_message_size`); each part has about this many.
    pub size: usize,
    /// The largest message received in parts (inflated size), in place of
    /// `max_message_size`.
    pub max_message_size: u64,
}

/// The largest payload reserved up front for a frame whose announced length we have not seen yet.
const MAX_RESERVE: u64 = 1 << 20;

struct FrameInProgress {
    header: Header,
    /// Payload bytes of this frame consumed so far.
    done: u64,
}

struct MessageInProgress {
    text: bool,
    /// Handed over in parts of this size (the decoder's setting when the message started).
    parts: Option<Parts>,
    /// Its first part was handed over.
    parted: bool,
    /// Payload bytes (inflated) handed over in earlier parts.
    handed: u64,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692).
    compressed: bool,
    /// Payload bytes received on the wire (before inflating).
    wire_len: u64,
    data: Vec<u8>,
    utf8: utf8::Validator,
}

/// One connection's incoming byte stream, decoded: see the module's documentation.
pub struct Decoder {
    role: Role,
    max_message_size: u64,
    header_buf: [u8; 14],
    header_len: usize,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    control: Vec<u8>,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    /// Unmasked compressed bytes on their way to the inflater (server role only).
    scratch: Vec<u8>,
    /// How large messages are handed over, for messages that start from now on.
    parts: Option<Parts>,
    /// A message received in parts: compressed payload (unmasked) read from the input and
    /// not yet inflated, because the part being filled is full; and how much of it is used.
    pending: Vec<u8>,
    pending_pos: usize,
    /// Frames whose header was read (for the socket's statistics).
    frames: u64,
}

impl Decoder {
    /// A decoder for the frames a peer of `role` receives (a client's decoder refuses masked
    /// frames), failing messages over `max_message_size` bytes; `inflater` when
    /// permessage-deflate was negotiated.
    pub fn new(role: Role, max_message_size: u64, inflater: Option<Inflater>) -> Self {
        Decoder {
            role,
            max_message_size,
            header_buf: [0; 14],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            inflater,
            scratch: Vec::new(),
            parts: None,
            pending: Vec::new(),
            pending_pos: 0,
            frames: 0,
        }
    }

    /// Hands messages that start from now on over in parts once they grow past
    /// `parts.size` bytes or past `max_message_size` (`None`: every message whole, within
    /// `max_message_size`). A message in progress keeps the setting it started with.
    pub fn set_parts(&mut self, parts: Option<Parts>) {
        self.parts = parts.map(|p| Parts {
            size: p.size.max(1),
            ..p
        });
    }

    /// Whether the decoder has something to hand over without more input: a message in parts
    /// whose compressed payload inflates past the part in progress. Call
    /// [`decode`](Self::decode) (with no input, if there is none) until it is false.
    pub fn has_pending(&self) -> bool {
        self.inflater_pending()
            || self.message.as_ref().is_some_and(|m| self.part_full(m))
            // A frame whose input was all read while its inflating waited: it ends (and its
            // message's last part goes) on the next call.
            || self
                .frame
                .as_ref()
                .is_some_and(|f| f.done == f.header.len)
    }

    /// Frames whose header was read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Consumes bytes from `input` until one event is complete or the input runs out.
    ///
    /// Returns the number of bytes used and the event, if any. Call again with the rest of the
    /// input after an event. After an error the connection must be failed with the error's
    /// close code; the decoder is not usable any more.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Incoming>), Error> {
        // A message in parts: a full part, or compressed input left from an earlier call,
        // goes first.
        if let Some(part) = self.next_pending_part()? {
            return Ok((0, Some(part)));
        }
        let mut pos = 0;
        loop {
            if self.frame.is_none() {
                match self.read_header(&input[pos..])? {
                    (used, None) => return Ok((pos + used, None)),
                    (used, Some(header)) => {
                        pos += used;
                        self.start_frame(header)?;
                    }
                }
            }
            pos += self.read_payload(&input[pos..])?;
            let complete = match &self.frame {
                // A compressed frame in parts is complete once its input is inflated too.
                Some(f) => f.done == f.header.len && !self.inflater_pending(),
                None => false,
            };
            // A message that ends here is finished as a whole (if nothing of it was handed
            // over yet); otherwise a full part goes now.
            let ends_message = complete
                && self
                    .frame
                    .as_ref()
                    .is_some_and(|f| f.header.fin && !f.header.opcode.is_control());
            if !ends_message && let Some(part) = self.full_part()? {
                return Ok((pos, Some(part)));
            }
            if !complete {
                return Ok((pos, None));
            }
            if let Some(event) = self.finish_frame()? {
                return Ok((pos, Some(event)));
            }
            if pos == input.len() {
                return Ok((pos, None));
            }
        }
    }

    /// Parses a header, buffering a partial one. Returns bytes used and the header if complete.
    fn read_header(&mut self, input: &[u8]) -> Result<(usize, Option<Header>), Error> {
        if self.header_len == 0 {
            match frame::parse_header(input, self.inflater.is_some()) {
                Ok(Some((h, n))) => return Ok((n, Some(h))),
                Ok(None) => {
                    // Shorter than the longest header (14 bytes), or parse would have finished.
                    let n = input.len().min(self.header_buf.len());
                    self.header_buf[..n].copy_from_slice(&input[..n]);
                    self.header_len = n;
                    return Ok((n, None));
                }
                Err(e) => return Err(Error::Protocol(e)),
            }
        }
        let old = self.header_len;
        let take = input.len().min(self.header_buf.len() - old);
        self.header_buf[old..old + take].copy_from_slice(&input[..take]);
        self.header_len += take;
        match frame::parse_header(&self.header_buf[..self.header_len], self.inflater.is_some()) {
            Ok(Some((h, n))) => {
                self.header_len = 0;
                Ok((n - old, Some(h)))
            }
            Ok(None) => Ok((take, None)),
            Err(e) => Err(Error::Protocol(e)),
        }
    }

    fn start_frame(&mut self, header: Header) -> Result<(), Error> {
        self.frames = self.frames.wrapping_add(1);
        match (self.role, header.mask.is_some()) {
            (Role::Client, true) => {
                return Err(Error::Protocol(ProtocolError::MaskedFrameFromServer));
            }
            (Role::Server, false) => {
                return Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient));
            }
            _ => {}
        }
        // RFC 7692 §6: RSV1 marks a compressed message on its first frame only.
        if header.rsv1 && header.opcode.is_control() {
            return Err(Error::Protocol(ProtocolError::Rsv1OnControlFrame {
                opcode: header.opcode.bits(),
            }));
        }
        if header.rsv1 && header.opcode == OpCode::Continuation {
            return Err(Error::Protocol(ProtocolError::Rsv1OnContinuation));
        }
        match header.opcode {
            OpCode::Continuation => {
                let Some(m) = &self.message else {
                    return Err(Error::Protocol(ProtocolError::ContinuationWithoutMessage));
                };
                self.check_size(m.wire_len, header.len, m.parts)?;
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(Error::Protocol(ProtocolError::NewMessageInsideFragmented {
                        opcode: header.opcode.bits(),
                    }));
                }
                self.check_size(0, header.len, self.parts)?;
                let reserve = match self.parts {
                    Some(p) => header.len.min(p.size as u64),
                    None => header.len,
                };
                self.message = Some(MessageInProgress {
                    text: header.opcode == OpCode::Text,
                    parts: self.parts,
                    parted: false,
                    handed: 0,
                    compressed: header.rsv1,
                    wire_len: 0,
                    data: Vec::with_capacity(reserve.min(MAX_RESERVE) as usize),
                    utf8: utf8::Validator::default(),
                });
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control.clear(),
        }
        log::trace!(
            "frame in: {:?} fin={} len={}",
            header.opcode,
            header.fin,
            header.len
        );
        self.frame = Some(FrameInProgress { header, done: 0 });
        Ok(())
    }

    /// The wire size a message may reach: `max_message_size`, or the streamed limit for a
    /// message in parts.
    fn check_size(&self, have: u64, more: u64, parts: Option<Parts>) -> Result<(), Error> {
        let size = have.saturating_add(more);
        let limit = self.limit(parts);
        if size > limit {
            return Err(Error::MessageTooLarge { size, limit });
        }
        Ok(())
    }

    fn limit(&self, parts: Option<Parts>) -> u64 {
        parts.map_or(self.max_message_size, |p| p.max_message_size)
    }

    /// The bytes a message in parts collects before a part is handed over: the part size,
    /// or less under `max_message_size`, so that what is handed over whole always fits it.
    /// Text parts have at least 4 bytes (the longest character), so that a full part always
    /// holds a whole character: a part never ends inside one, and a smaller part could be
    /// empty, and the next, for ever.
    fn part_size(&self, parts: Parts, text: bool) -> usize {
        let whole_max = usize::try_from(self.max_message_size).unwrap_or(usize::MAX);
        let size = parts.size.min(whole_max.saturating_add(1)).max(1);
        if text { size.max(4) } else { size }
    }

    /// Copies as much of the current frame's payload as `input` holds; returns bytes used.
    /// Text is validated as it lands, so invalid UTF-8 fails before its frame is complete;
    /// compressed payload is inflated as it lands, so the size limit applies to the output.
    fn read_payload(&mut self, input: &[u8]) -> Result<usize, Error> {
        let Some(f) = &mut self.frame else {
            return Ok(0);
        };
        let want = f.header.len - f.done;
        let n = (want.min(input.len() as u64)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let chunk = &input[..n];
        let offset = f.done as usize;
        f.done += n as u64;
        if f.header.opcode.is_control() {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            if let Some(key) = f.header.mask {
                mask::apply(&mut self.control[start..], key, offset);
            }
            return Ok(n);
        }
        let Some(m) = &mut self.message else {
            return Ok(n);
        };
        m.wire_len += n as u64;
        match (&mut self.inflater, m.compressed) {
            (Some(_), true) if m.parts.is_some() => {
                // Inflated a part at a time (`inflate_pending`): kept until then.
                let start = self.pending.len();
                self.pending.extend_from_slice(chunk);
                if let Some(key) = f.header.mask {
                    mask::apply(&mut self.pending[start..], key, offset);
                }
                self.inflate_pending()?;
                return Ok(n);
            }
            (Some(inflater), true) => {
                let plain = match f.header.mask {
                    Some(key) => {
                        self.scratch.clear();
                        self.scratch.extend_from_slice(chunk);
                        mask::apply(&mut self.scratch, key, offset);
                        &self.scratch[..]
                    }
                    None => chunk,
                };
                inflater.inflate(plain, &mut m.data, self.max_message_size)?;
            }
            _ => {
                let start = m.data.len();
                m.data.extend_from_slice(chunk);
                if let Some(key) = f.header.mask {
                    mask::apply(&mut m.data[start..], key, offset);
                }
            }
        }
        // A whole single-frame text message that arrived in one piece is checked once, when it
        // becomes a `String`; text arriving in pieces is checked as each piece lands, so bad
        // UTF-8 fails at the first bad fragment (RFC 6455 §8.1).
        // (In parts the validator also says where a text part may end: it sees everything.)
        let whole_in_one = f.header.fin
            && offset == 0
            && f.done == f.header.len
            && !m.compressed
            && m.parts.is_none();
        if m.text && !whole_in_one {
            m.utf8.feed(&m.data).map_err(|_| Error::InvalidUtf8)?;
        }
        Ok(n)
    }

    /// A message in parts: inflates pending compressed input into the part being filled, up
    /// to the part size, within the streamed limit; validates text as it lands.
    fn inflate_pending(&mut self) -> Result<(), Error> {
        let cap = match &self.message {
            Some(MessageInProgress {
                parts: Some(parts),
                text,
                ..
            }) => self.part_size(*parts, *text),
            _ => return Ok(()),
        };
        let Some(m) = &mut self.message else {
            return Ok(());
        };
        let (Some(parts), Some(inflater)) = (m.parts, &mut self.inflater) else {
            return Ok(());
        };
        let left = parts.max_message_size.saturating_sub(m.handed);
        // One byte past the limit is enough to know it is passed.
        let cap = cap.min(
            usize::try_from(left)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        let used = inflater.inflate_some(&self.pending[self.pending_pos..], &mut m.data, cap)?;
        self.pending_pos += used;
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        let size = m.handed.saturating_add(m.data.len() as u64);
        if size > parts.max_message_size {
            return Err(Error::MessageTooLarge {
                size,
                limit: parts.max_message_size,
            });
        }
        if m.text {
            m.utf8.feed(&m.data).map_err(|_| Error::InvalidUtf8)?;
        }
        Ok(())
    }

    /// A message in parts has compressed input not inflated yet, or output the inflater
    /// holds back because the part filled up.
    fn inflater_pending(&self) -> bool {
        self.pending_pos < self.pending.len()
            || (self
                .message
                .as_ref()
                .is_some_and(|m| m.parts.is_some() && m.compressed)
                && self.inflater.as_ref().is_some_and(Inflater::has_output))
    }

    /// Before new input: a part that is full, or more of the pending compressed input.
    fn next_pending_part(&mut self) -> Result<Option<Incoming>, Error> {
        if self.inflater_pending() {
            if let Some(part) = self.full_part()? {
                return Ok(Some(part));
            }
            self.inflate_pending()?;
        }
        self.full_part()
    }

    /// A message in parts whose part in progress is full: that part, handed over. A text
    /// part ends on a whole character; the start of an incomplete one goes to the next.
    fn full_part(&mut self) -> Result<Option<Incoming>, Error> {
        match &self.message {
            Some(m) if self.part_full(m) => Ok(self.take_part()),
            _ => Ok(None),
        }
    }

    /// Whether a message in parts has a full part to hand over.
    fn part_full(&self, m: &MessageInProgress) -> bool {
        m.parts
            .is_some_and(|parts| m.data.len() >= self.part_size(parts, m.text))
    }

    /// Hands over the data collected so far as a part that is not the last. A text part ends
    /// on a whole character; the start of an incomplete one goes to the next part.
    fn take_part(&mut self) -> Option<Incoming> {
        let m = self.message.as_mut()?;
        let size = m.parts?.size;
        let cut = if m.text {
            m.utf8.valid_up_to()
        } else {
            m.data.len()
        };
        let mut next = Vec::with_capacity(size.min(MAX_RESERVE as usize));
        next.extend_from_slice(&m.data[cut..]);
        m.data.truncate(cut);
        let data = std::mem::replace(&mut m.data, next);
        m.utf8 = utf8::Validator::default();
        if m.text && !m.data.is_empty() {
            // A character's first bytes, already known to be a valid start.
            let _ = m.utf8.feed(&m.data);
        }
        let first = !m.parted;
        m.parted = true;
        m.handed = m.handed.saturating_add(data.len() as u64);
        Some(Incoming::Part(Part {
            text: m.text,
            first,
            last: false,
            data,
        }))
    }

    fn finish_frame(&mut self) -> Result<Option<Incoming>, Error> {
        let Some(f) = self.frame.take() else {
            return Ok(None);
        };
        match f.header.opcode {
            OpCode::Ping => Ok(Some(Incoming::Ping(std::mem::take(&mut self.control)))),
            OpCode::Pong => Ok(Some(Incoming::Pong(std::mem::take(&mut self.control)))),
            OpCode::Close => Ok(Some(Incoming::Close(close::parse(&self.control)?))),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !f.header.fin {
                    return Ok(None);
                }
                let Some(mut m) = self.message.take() else {
                    return Ok(None);
                };
                let limit = match m.parts {
                    Some(p) => p.max_message_size.saturating_sub(m.handed),
                    None => self.max_message_size,
                };
                if let (Some(inflater), true) = (&mut self.inflater, m.compressed) {
                    inflater.finish(&mut m.data, limit)?;
                    if m.text {
                        m.utf8.feed(&m.data).map_err(|_| Error::InvalidUtf8)?;
                    }
                }
                let whole = !m.parted && m.data.len() as u64 <= self.max_message_size;
                if m.parts.is_some() && !whole {
                    // The last part: its text must end on a whole character.
                    if m.text && m.utf8.valid_up_to() != m.data.len() {
                        return Err(Error::InvalidUtf8);
                    }
                    return Ok(Some(Incoming::Part(Part {
                        text: m.text,
                        first: !m.parted,
                        last: true,
                        data: m.data,
                    })));
                }
                let message = if m.text {
                    // `from_utf8` is the one check for a single frame that came whole (the
                    // incremental validator skipped it) and the final one, ending on a whole
                    // character, for text that came in pieces.
                    Message::Text(String::from_utf8(m.data).map_err(|_| Error::InvalidUtf8)?)
                } else {
                    Message::Binary(m.data)
                };
                Ok(Some(Incoming::Message(message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        let op = match op {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            _ => OpCode::Pong,
        };
        frame::encode(&mut out, op, false, payload, mask);
        if !fin {
            out[0] &= 0x7F;
        }
        out
    }

    /// Feeds `input` in pieces of `piece` bytes, collecting every event or the first error.
    fn run(d: &mut Decoder, input: &[u8], piece: usize) -> Result<Vec<Incoming>, Error> {
        let mut events = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            let mut pos = 0;
            while pos < chunk.len() {
                let (used, ev) = d.decode(&chunk[pos..])?;
                pos += used;
                events.extend(ev);
            }
        }
        Ok(events)
    }

    fn client() -> Decoder {
        Decoder::new(Role::Client, 1 << 20, None)
    }

    #[test]
    fn simple_text_in_every_split() {
        let bytes = frame(true, 1, "Hello κόσμε".as_bytes(), None);
        for piece in 1..=bytes.len() {
            let ev = run(&mut client(), &bytes, piece).unwrap();
            assert_eq!(ev, [Incoming::Message(Message::Text("Hello κόσμε".into()))]);
        }
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut bytes = frame(true, 1, b"a", None);
        bytes.extend(frame(true, 9, b"p", None));
        bytes.extend(frame(true, 2, &[1, 2, 3], None));
        let ev = run(&mut client(), &bytes, bytes.len()).unwrap();
        assert_eq!(
            ev,
            [
                Incoming::Message(Message::Text("a".into())),
                Incoming::Ping(b"p".to_vec()),
                Incoming::Message(Message::Binary(vec![1, 2, 3])),
            ]
        );
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        let mut bytes = frame(false, 1, b"Hel", None);
        bytes.extend(frame(true, 9, b"", None));
        bytes.extend(frame(false, 0, b"lo ", None));
        bytes.extend(frame(true, 10, b"x", None));
        bytes.extend(frame(true, 0, b"world", None));
        for piece in [1, 2, 5, bytes.len()] {
            let ev = run(&mut client(), &bytes, piece).unwrap();
            assert_eq!(
                ev,
                [
                    Incoming::Ping(vec![]),
                    Incoming::Pong(b"x".to_vec()),
                    Incoming::Message(Message::Text("Hello world".into())),
                ]
            );
        }
    }

    #[test]
    fn server_unmasks_across_pieces() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let bytes = frame(true, 2, &payload, Some([9, 8, 7, 6]));
        for piece in [1, 3, 7, 64, bytes.len()] {
            let mut d = Decoder::new(Role::Server, 1 << 20, None);
            let ev = run(&mut d, &bytes, piece).unwrap();
            assert_eq!(ev, [Incoming::Message(Message::Binary(payload.clone()))]);
        }
    }

    #[test]
    fn mask_must_match_role() {
        let masked = frame(true, 1, b"x", Some([1, 2, 3, 4]));
        assert!(matches!(
            run(&mut client(), &masked, 64),
            Err(Error::Protocol(ProtocolError::MaskedFrameFromServer))
        ));
        let unmasked = frame(true, 1, b"x", None);
        let mut server = Decoder::new(Role::Server, 1 << 20, None);
        assert!(matches!(
            run(&mut server, &unmasked, 64),
            Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))
        ));
    }

    #[test]
    fn continuation_rules() {
        let stray = frame(true, 0, b"x", None);
        assert!(matches!(
            run(&mut client(), &stray, 64),
            Err(Error::Protocol(ProtocolError::ContinuationWithoutMessage))
        ));
        let mut nested = frame(false, 1, b"a", None);
        nested.extend(frame(true, 1, b"b", None));
        assert!(matches!(
            run(&mut client(), &nested, 64),
            Err(Error::Protocol(ProtocolError::NewMessageInsideFragmented {
                opcode: 1
            }))
        ));
    }

    #[test]
    fn rsv1_only_on_the_first_frame_of_a_message() {
        let deflating = || {
            let params = crate::proto::deflate::check_response(&["permessage-deflate"], true)
                .unwrap()
                .unwrap();
            Decoder::new(Role::Client, 1 << 20, Some(Inflater::new(&params)))
        };
        let rsv1 = |mut f: Vec<u8>| {
            f[0] |= 0x40;
            f
        };
        let ping = rsv1(frame(true, 9, b"", None));
        assert!(matches!(
            run(&mut deflating(), &ping, 64),
            Err(Error::Protocol(ProtocolError::Rsv1OnControlFrame {
                opcode: 9
            }))
        ));
        // "Hello" compressed (RFC 7692 §7.2.3.1), its second frame with RSV1 again.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut bytes = rsv1(frame(false, 1, &hello[..3], None));
        bytes.extend(rsv1(frame(true, 0, &hello[3..], None)));
        assert!(matches!(
            run(&mut deflating(), &bytes, 64),
            Err(Error::Protocol(ProtocolError::Rsv1OnContinuation))
        ));
        // Without deflate, RSV1 means nothing.
        assert!(matches!(
            run(&mut client(), &rsv1(frame(true, 1, b"x", None)), 64),
            Err(Error::Protocol(ProtocolError::Rsv1WithoutDeflate))
        ));
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_ends() {
        // Header announces 100 bytes; only the first 4 arrive, the 3rd of which is invalid.
        let mut bytes = vec![0x81, 100];
        bytes.extend_from_slice(&[b'o', b'k', 0xFF, b'x']);
        assert!(matches!(
            run(&mut client(), &bytes, 64),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn invalid_utf8_in_first_fragment_fails_at_once() {
        let bytes = frame(false, 1, &[0xCE, 0xBA, 0xED, 0xA0, 0x80], None);
        assert!(matches!(
            run(&mut client(), &bytes, 64),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn text_split_inside_a_character_across_fragments() {
        let text = "€uro".as_bytes();
        let mut bytes = frame(false, 1, &text[..1], None);
        bytes.extend(frame(false, 0, &text[1..2], None));
        bytes.extend(frame(true, 0, &text[2..], None));
        let ev = run(&mut client(), &bytes, 64).unwrap();
        assert_eq!(ev, [Incoming::Message(Message::Text("€uro".into()))]);
        let cut = frame(true, 1, &text[..2], None);
        assert!(matches!(
            run(&mut client(), &cut, 64),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn oversized_messages_fail_on_the_header() {
        let mut d = Decoder::new(Role::Client, 10, None);
        // Only the header of an 11-byte frame: rejected before any payload.
        assert!(matches!(
            run(&mut d, &[0x82, 11], 64),
            Err(Error::MessageTooLarge {
                size: 11,
                limit: 10
            })
        ));
        let mut d = Decoder::new(Role::Client, 10, None);
        let mut bytes = frame(false, 2, &[0; 6], None);
        bytes.extend(frame(true, 0, &[0; 6], None));
        assert!(matches!(
            run(&mut d, &bytes, 64),
            Err(Error::MessageTooLarge {
                size: 12,
                limit: 10
            })
        ));
        let mut d = Decoder::new(Role::Client, 10, None);
        assert!(run(&mut d, &frame(true, 2, &[0; 10], None), 64).is_ok());
    }

    #[test]
    fn close_frames() {
        let ev = run(&mut client(), &frame(true, 8, &[], None), 64).unwrap();
        assert_eq!(
            ev,
            [Incoming::Close(CloseFrame {
                code: None,
                reason: String::new()
            })]
        );
        let ev = run(&mut client(), &frame(true, 8, b"\x03\xe8bye", None), 64).unwrap();
        assert_eq!(
            ev,
            [Incoming::Close(CloseFrame {
                code: Some(1000),
                reason: "bye".into()
            })]
        );
        let bad = [
            (
                frame(true, 8, b"\x03", None),
                ProtocolError::OneByteClosePayload,
            ),
            (
                frame(true, 8, b"\x03\xed", None),
                ProtocolError::InvalidCloseCode { code: 1005 },
            ),
            (
                frame(true, 8, b"\x0b\xb7", None),
                ProtocolError::InvalidCloseCode { code: 2999 },
            ),
        ];
        for (b, expected) in bad {
            assert!(
                matches!(run(&mut client(), &b, 64), Err(Error::Protocol(e)) if e == expected),
                "{b:?}"
            );
        }
        let bad_reason = frame(true, 8, b"\x03\xe8\xff", None);
        assert!(matches!(
            run(&mut client(), &bad_reason, 64),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn empty_messages() {
        let ev = run(&mut client(), &frame(true, 1, b"", None), 64).unwrap();
        assert_eq!(ev, [Incoming::Message(Message::Text(String::new()))]);
        let mut bytes = frame(false, 2, b"", None);
        bytes.extend(frame(true, 0, b"", None));
        let ev = run(&mut client(), &bytes, 64).unwrap();
        assert_eq!(ev, [Incoming::Message(Message::Binary(vec![]))]);
    }

    // ---- parts (streamed receipt) ----

    use crate::proto::deflate::Params;
    use crate::proto::encoder::{Encoder, EncoderConfig};

    /// Feeds `input` in pieces as the reader does (decoding until the piece is used and
    /// nothing is pending), collecting events or the first error.
    fn run_parts(d: &mut Decoder, input: &[u8], piece: usize) -> Result<Vec<Incoming>, Error> {
        let mut events = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            let mut pos = 0;
            let mut idle = 0;
            while pos < chunk.len() || d.has_pending() {
                let (used, ev) = d.decode(&chunk[pos..])?;
                // Rounds that use no input must end: each hands over real data.
                idle = if used == 0 { idle + 1 } else { 0 };
                assert!(idle < 100_000, "the decoder spins without using input");
                pos += used;
                events.extend(ev);
            }
        }
        Ok(events)
    }

    fn parted(role: Role, max_whole: u64, size: usize, max: u64, inflate: bool) -> Decoder {
        let params = Params {
            send_no_context_takeover: false,
            recv_no_context_takeover: false,
            send_max_window_bits: 15,
            shared_frames: false,
        };
        let mut d = Decoder::new(role, max_whole, inflate.then(|| Inflater::new(&params)));
        d.set_parts(Some(Parts {
            size,
            max_message_size: max,
        }));
        d
    }

    /// The parts' payload, put together; checks the flags and each part's size on the way.
    fn joined(events: &[Incoming], most: usize) -> (bool, Vec<u8>) {
        let mut data = Vec::new();
        let mut text = false;
        for (i, e) in events.iter().enumerate() {
            let Incoming::Part(p) = e else {
                panic!("event {i} is not a part: {e:?}")
            };
            assert_eq!(p.first, i == 0, "part {i}");
            assert_eq!(p.last, i == events.len() - 1, "part {i}");
            assert!(p.data.len() <= most, "part {i} has {} bytes", p.data.len());
            if p.text {
                assert!(
                    std::str::from_utf8(&p.data).is_ok(),
                    "part {i} is not whole text"
                );
            }
            text = p.text;
            data.extend_from_slice(&p.data);
        }
        (text, data)
    }

    fn client_frames(payload: &[u8], op: u8, fragment: usize) -> Vec<u8> {
        let mut input = Vec::new();
        let chunks: Vec<&[u8]> = payload.chunks(fragment).collect();
        for (i, c) in chunks.iter().enumerate() {
            let opcode = if i == 0 { op } else { 0 };
            input.extend(frame(i == chunks.len() - 1, opcode, c, None));
        }
        input
    }

    #[test]
    fn a_large_message_comes_in_parts_and_a_small_one_whole() {
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let input = client_frames(&payload, 2, 70_000);
        for piece in [1000, 4096, 65536, usize::MAX] {
            let mut d = parted(Role::Client, 1 << 30, 64 * 1024, 1 << 30, false);
            let events = run_parts(&mut d, &input, piece).unwrap();
            // A part is one part size, plus at most one read.
            let (text, data) = joined(&events, 64 * 1024 + piece.min(input.len()));
            assert!(!text);
            assert_eq!(data, payload, "piece {piece}");
            assert!(events.len() >= 4, "piece {piece}: {} parts", events.len());
        }
        let mut d = parted(Role::Client, 1 << 30, 64 * 1024, 1 << 30, false);
        let small = run_parts(&mut d, &frame(true, 2, &[9; 1000], None), 100).unwrap();
        assert_eq!(
            small,
            vec![Incoming::Message(Message::Binary(vec![9; 1000]))]
        );
    }

    #[test]
    fn text_parts_end_on_whole_characters_and_bad_text_fails_as_it_lands() {
        let text = "κόσμε 𝄞 € ".repeat(20_000);
        let input = client_frames(text.as_bytes(), 1, 33_333);
        for piece in [7, 1000, 65536] {
            let mut d = parted(Role::Client, 1 << 30, 10_000, 1 << 30, false);
            let events = run_parts(&mut d, &input, piece).unwrap();
            let (is_text, data) = joined(&events, 10_000 + piece);
            assert!(is_text);
            assert_eq!(data, text.as_bytes());
        }
        // A surrogate (ED A0 80) 200 KB in: parts before it are handed over, then 1007.
        let mut bad = vec![b'a'; 200_000];
        bad.extend_from_slice(&[0xED, 0xA0, 0x80]);
        bad.extend_from_slice(&[b'b'; 1000]);
        let mut d = parted(Role::Client, 1 << 30, 64 * 1024, 1 << 30, false);
        let mut events = Vec::new();
        let mut failed = None;
        for chunk in client_frames(&bad, 1, 50_000).chunks(4096) {
            let mut pos = 0;
            while pos < chunk.len() || d.has_pending() {
                match d.decode(&chunk[pos..]) {
                    Ok((used, ev)) => {
                        pos += used;
                        events.extend(ev);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        assert_eq!(failed.map(|e| e.close_code()), Some(Some(1007)));
        assert!(events.len() >= 2, "parts came before the bad byte");
        // A text message that ends inside a character fails too.
        let mut d = parted(Role::Client, 1 << 30, 64 * 1024, 1 << 30, false);
        let mut cut = vec![b'a'; 100_000];
        cut.push(0xE2);
        let r = run_parts(&mut d, &client_frames(&cut, 1, 100_001), 4096);
        assert!(matches!(r, Err(Error::InvalidUtf8)), "{r:?}");
    }

    #[test]
    fn a_part_size_smaller_than_a_character_still_makes_progress() {
        // Found by the `parts` fuzz target: with parts of 1 byte, a 3-byte character made an
        // empty part, and another, for ever; and compressed text stopped inflating with an
        // incomplete character filling the part. A text part is now at least 4 bytes.
        let text = "Hello κόσμε €";
        let input = client_frames(text.as_bytes(), 1, text.len());
        for piece in [1, 2, 5] {
            let mut d = parted(Role::Client, 1 << 30, 1, 1 << 30, false);
            let events = run_parts(&mut d, &input, piece).unwrap();
            assert!(
                events.len() < 2 * text.len(),
                "piece {piece}: {} events",
                events.len()
            );
            let (is_text, data) = joined(&events, 4 + piece);
            assert!(is_text);
            assert_eq!(data, text.as_bytes());
        }
    }

    #[test]
    fn compressed_text_in_tiny_parts_never_stalls_on_a_split_character() {
        // Found by the `parts` fuzz target: inflating stopped at the part's size while the
        // part ended in an incomplete character, so it was never full and never grew.
        let text = "κόσμε € 𝄞 ".repeat(50);
        let params = Params {
            send_no_context_takeover: false,
            recv_no_context_takeover: false,
            send_max_window_bits: 15,
            shared_frames: false,
        };
        let mut deflater = crate::proto::deflate::Deflater::new(&params, 6).unwrap();
        let mut body = Vec::new();
        deflater.compress(text.as_bytes(), &mut body).unwrap();
        let mut input = frame(true, 1, &body, None);
        input[0] |= 0x40; // RSV1: compressed
        for (size, piece) in [(1, 1), (5, 3), (5, 7), (6, 1000)] {
            let mut d = parted(Role::Client, 1 << 30, size, 1 << 30, true);
            let events = run_parts(&mut d, &input, piece).unwrap();
            let (is_text, data) = joined(&events, 4 + piece + 300);
            assert!(is_text);
            assert_eq!(data, text.as_bytes(), "parts of {size}, reads of {piece}");
        }
    }

    #[test]
    fn the_streamed_limit_applies_to_parts_and_max_message_size_to_whole_messages() {
        let payload = vec![1u8; 200_000];
        let input = client_frames(&payload, 2, 50_000);
        // Whole messages are limited to 100 KB; streams to 150 KB.
        let mut d = parted(Role::Client, 100_000, 64 * 1024, 150_000, false);
        let r = run_parts(&mut d, &input, 4096);
        assert!(
            matches!(r, Err(Error::MessageTooLarge { limit: 150_000, .. })),
            "{r:?}"
        );
        // Lifted: it all comes, in parts.
        let mut d = parted(Role::Client, 100_000, 64 * 1024, u64::MAX, false);
        let (_, data) = joined(&run_parts(&mut d, &input, 4096).unwrap(), 70_000);
        assert_eq!(data.len(), 200_000);
        // Over max_message_size but under the part size: still parts, never whole.
        let mut d = parted(Role::Client, 1000, 64 * 1024, u64::MAX, false);
        let events = run_parts(&mut d, &frame(true, 2, &[3; 5000], None), 5000).unwrap();
        let (_, data) = joined(&events, 5000);
        assert_eq!(data, vec![3; 5000]);
    }

    /// A streamed message from the encoder (parts compressed as one message, masked) through
    /// a parted decoder with inflate: what a decompression bomb costs is one part at a time.
    #[test]
    fn compressed_parts_round_trip_and_inflate_a_part_at_a_time() {
        let params = Params {
            send_no_context_takeover: false,
            recv_no_context_takeover: false,
            send_max_window_bits: 15,
            shared_frames: false,
        };
        let config = EncoderConfig {
            min_compress_size: 0,
            fragment_size: 1 << 20,
            compression_level: 6,
        };
        let mut e = Encoder::new(Role::Client, Some(&params), config);
        // 8 MiB of zeros in 4 parts: each compresses to a few KiB.
        let part = vec![0u8; 2 << 20];
        let mut wire = Vec::new();
        for i in 0..4 {
            let mut out = Vec::new();
            let payload = e
                .part(&mut out, OpCode::Binary, part.clone(), i == 0, i == 3)
                .unwrap();
            out.extend_from_slice(&payload);
            wire.extend_from_slice(&out);
            // A ping between two parts, as the writer may put one.
            e.control(&mut wire, OpCode::Ping, b"p");
        }
        assert!(wire.len() < 100_000, "compressed to {} bytes", wire.len());
        // One compressed frame whose input is all read before it is all inflated: its last
        // part comes with no more input (`has_pending` says so).
        let mut one = Vec::new();
        let mut e1 = Encoder::new(Role::Server, Some(&params), config);
        let payload = e1
            .part(&mut one, OpCode::Binary, vec![7u8; 1 << 20], true, true)
            .unwrap();
        one.extend_from_slice(&payload);
        let mut d = parted(Role::Client, 16 << 20, 64 * 1024, 1 << 30, true);
        let events = run_parts(&mut d, &one, one.len()).unwrap();
        let (_, data) = joined(&events, 64 * 1024);
        assert_eq!(data, vec![7u8; 1 << 20]);
        let mut d = parted(Role::Server, 1 << 20, 64 * 1024, 1 << 30, true);
        let events = run_parts(&mut d, &wire, 4096).unwrap();
        let pings = events
            .iter()
            .filter(|e| matches!(e, Incoming::Ping(_)))
            .count();
        assert_eq!(pings, 4);
        let parts: Vec<Incoming> = events
            .into_iter()
            .filter(|e| matches!(e, Incoming::Part(_)))
            .collect();
        let (_, data) = joined(&parts, 64 * 1024);
        assert_eq!(data.len(), 8 << 20);
        assert!(data.iter().all(|&b| b == 0));
        // The same wire, whole (no parts), within a large enough limit: one message.
        let params_recv = Inflater::new(&params);
        let mut whole = Decoder::new(Role::Server, 16 << 20, Some(params_recv));
        let events = run(&mut whole, &wire, 4096).unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Incoming::Message(m) if m.len() == 8 << 20))
        );
    }
}
