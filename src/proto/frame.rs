//! The frame layer (RFC 6455 §5.2): opcodes, header parsing and frame encoding.

use crate::error::ProtocolError;
use crate::proto::mask;

/// A frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: the next fragment of a message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    fn from_bits(b: u8) -> Option<OpCode> {
        Some(match b {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The opcode's four bits, as on the wire.
    pub(crate) fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Parses a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole header, and the header with its
/// length in bytes otherwise. `rsv1_allowed` says whether an extension gave RSV1 a meaning.
/// Each error is a protocol error (close 1002).
pub(crate) fn parse_header(
    buf: &[u8],
    rsv1_allowed: bool,
) -> Result<Option<(Header, usize)>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let rsv1 = rsv & 0x4 != 0;
    if rsv & 0x3 != 0 {
        return Err(ProtocolError::ReservedBits { bits: rsv });
    }
    if rsv1 && !rsv1_allowed {
        return Err(ProtocolError::Rsv1WithoutDeflate);
    }
    let opcode =
        OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::UnknownOpcode { opcode: b0 & 0x0F })?;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControlFrame {
            opcode: opcode.bits(),
        });
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthTooLarge { len });
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && len > 125 {
        return Err(ProtocolError::ControlFrameTooLong {
            opcode: opcode.bits(),
            len,
        });
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let mut k = [0u8; 4];
        k.copy_from_slice(&buf[pos..pos + 4]);
        pos += 4;
        Some(k)
    } else {
        None
    };
    Ok(Some((
        Header {
            fin,
            rsv1,
            opcode,
            mask,
            len,
        },
        pos,
    )))
}

/// Appends one final frame (header and payload) to `out`, masking the payload with `mask` if
/// given.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    opcode: OpCode,
    rsv1: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_frame(out, true, rsv1, opcode, payload, mask);
}

/// Appends one frame to `out`. The payload is copied once; when masked it is copied and masked
/// in cache-sized blocks, so each byte is touched while it is still in L1.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.reserve(14 + payload.len());
    encode_header(out, fin, rsv1, opcode, payload.len(), mask);
    match mask {
        Some(key) => {
            let mut offset = 0;
            for block in payload.chunks(MASK_BLOCK) {
                let start = out.len();
                out.extend_from_slice(block);
                mask::apply(&mut out[start..], key, offset);
                offset += block.len();
            }
        }
        None => out.extend_from_slice(payload),
    }
}

/// Appends a frame header (with the mask key, if any) for a payload of `len` bytes.
pub(crate) fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    len: usize,
    mask: Option<[u8; 4]>,
) {
    // Built on the stack and appended at once: one capacity check instead of one per byte.
    let mut h = [0u8; 14];
    h[0] = if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = 2;
    if len < 126 {
        h[1] = mask_bit | len as u8;
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        n = 4;
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        n = 10;
    }
    if let Some(key) = mask {
        h[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    out.extend_from_slice(&h[..n]);
}

/// Payload is copied and masked this many bytes at a time (well inside L1).
const MASK_BLOCK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(hex: &[u8]) -> Result<Option<(Header, usize)>, ProtocolError> {
        parse_header(hex, false)
    }

    #[test]
    fn encodes_the_three_length_forms() {
        for (len, header_len) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let payload = vec![7u8; len];
            let mut out = Vec::new();
            encode(&mut out, OpCode::Binary, false, &payload, None);
            assert_eq!(out.len(), header_len + len);
            let (h, n) = parse(&out).unwrap().unwrap();
            assert_eq!(
                (h.len, n, h.opcode, h.fin),
                (len as u64, header_len, OpCode::Binary, true)
            );
        }
    }

    #[test]
    fn masked_frame_round_trips() {
        let mut out = Vec::new();
        encode(
            &mut out,
            OpCode::Text,
            false,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        // RFC 6455 §5.7 example.
        assert_eq!(
            out,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        let (h, n) = parse(&out).unwrap().unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(n, 6);
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let mut out = Vec::new();
        encode(
            &mut out,
            OpCode::Binary,
            false,
            &[0u8; 70000],
            Some([1, 2, 3, 4]),
        );
        for cut in 0..14 {
            assert_eq!(parse(&out[..cut]).unwrap(), None, "cut {cut}");
        }
        assert!(parse(&out[..14]).unwrap().is_some());
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(parse(&[0xC1, 0x00]), Err(ProtocolError::Rsv1WithoutDeflate));
        assert_eq!(
            parse(&[0xA1, 0x00]),
            Err(ProtocolError::ReservedBits { bits: 2 })
        );
        assert_eq!(
            parse(&[0x91, 0x00]),
            Err(ProtocolError::ReservedBits { bits: 1 })
        );
        // RSV2 is refused even where RSV1 means "compressed".
        assert_eq!(
            parse_header(&[0xE1, 0x00], true),
            Err(ProtocolError::ReservedBits { bits: 6 })
        );
        assert!(parse_header(&[0xC1, 0x00], true).unwrap().is_some());
        assert_eq!(
            parse(&[0x83, 0x00]),
            Err(ProtocolError::UnknownOpcode { opcode: 3 })
        );
        assert_eq!(
            parse(&[0x8B, 0x00]),
            Err(ProtocolError::UnknownOpcode { opcode: 0xB })
        );
        assert_eq!(
            parse(&[0x09, 0x00]),
            Err(ProtocolError::FragmentedControlFrame { opcode: 9 })
        );
        assert_eq!(
            parse(&[0x89, 0x7E, 0x00, 0x7E]),
            Err(ProtocolError::ControlFrameTooLong {
                opcode: 9,
                len: 126
            })
        );
        let mut long = vec![0x82, 0x7F, 0x80];
        long.extend_from_slice(&[0; 7]);
        assert_eq!(
            parse(&long),
            Err(ProtocolError::LengthTooLarge { len: 1 << 63 })
        );
    }
}
