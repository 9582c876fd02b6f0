//! Incoming bytes to messages: frame parsing, unmasking, reassembly, UTF-8 and size checks.
//!
//! [`Decoder`] is pure: the reader thread hands it whatever the socket returned and gets back
//! how many bytes it used and, at most, one event. Payload bytes are copied exactly once, from
//! the read buffer into the message being assembled; a partial frame header (at most 14 bytes)
//! is the only thing kept between calls, so the read buffer can always be reused whole.

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
    /// A ping, with its payload.
    Ping(Vec<u8>),
    /// A pong, with its payload.
    Pong(Vec<u8>),
    /// The peer's close frame.
    Close(CloseFrame),
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
            frames: 0,
        }
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
                Some(f) => f.done == f.header.len,
                None => false,
            };
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
                self.check_size(m.wire_len, header.len)?;
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(Error::Protocol(ProtocolError::NewMessageInsideFragmented {
                        opcode: header.opcode.bits(),
                    }));
                }
                self.check_size(0, header.len)?;
                self.message = Some(MessageInProgress {
                    text: header.opcode == OpCode::Text,
                    compressed: header.rsv1,
                    wire_len: 0,
                    data: Vec::with_capacity(header.len.min(MAX_RESERVE) as usize),
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

    fn check_size(&self, have: u64, more: u64) -> Result<(), Error> {
        let size = have.saturating_add(more);
        if size > self.max_message_size {
            return Err(Error::MessageTooLarge {
                size,
                limit: self.max_message_size,
            });
        }
        Ok(())
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
        let whole_in_one = f.header.fin && offset == 0 && f.done == f.header.len && !m.compressed;
        if m.text && !whole_in_one {
            m.utf8.feed(&m.data).map_err(|_| Error::InvalidUtf8)?;
        }
        Ok(n)
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
                if let (Some(inflater), true) = (&mut self.inflater, m.compressed) {
                    inflater.finish(&mut m.data, self.max_message_size)?;
                    if m.text {
                        m.utf8.feed(&m.data).map_err(|_| Error::InvalidUtf8)?;
                    }
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
}
