//! What a peer did wrong, as data: the violations of RFC 6455 and RFC 7692 the decoder finds.

use std::fmt;

/// A way the peer broke RFC 6455 (or RFC 7692, permessage-deflate), found while decoding what
/// it sent. Carried by [`Error::Protocol`](crate::Error::Protocol).
///
/// The socket answers each with a close frame ([`close_code`](Self::close_code): 1002 for
/// every violation today) and fails. Invalid UTF-8 and oversized messages have their own
/// [`Error`](crate::Error) variants ([`InvalidUtf8`](crate::Error::InvalidUtf8), 1007, and
/// [`MessageTooLarge`](crate::Error::MessageTooLarge), 1009).
///
/// New variants may be added as the decoder learns to spot more: match with a `_` arm.
///
/// ```
/// use syncws::{Error, ProtocolError};
///
/// fn describe(error: &Error) -> String {
///     match error {
///         Error::Protocol(ProtocolError::InvalidCloseCode { code }) => {
///             format!("the peer closed with {code}, which may not be sent")
///         }
///         Error::Protocol(violation) => format!("the peer broke the protocol: {violation}"),
///         other => other.to_string(),
///     }
/// }
///
/// let error = Error::Protocol(ProtocolError::InvalidCloseCode { code: 1005 });
/// assert_eq!(describe(&error), "the peer closed with 1005, which may not be sent");
/// assert_eq!(error.close_code(), Some(1002));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame has RSV2 or RSV3 set; no extension syncws negotiates gives them a meaning.
    ReservedBits {
        /// The three RSV bits of the frame (RSV1 is `0b100`, RSV3 `0b001`).
        bits: u8,
    },
    /// A frame has RSV1 set, but permessage-deflate was not negotiated: nothing gave RSV1 a
    /// meaning.
    Rsv1WithoutDeflate,
    /// A control frame has RSV1 set; RFC 7692 §6 allows it on a message's first frame only.
    Rsv1OnControlFrame {
        /// The frame's opcode (0x8 close, 0x9 ping, 0xA pong).
        opcode: u8,
    },
    /// A continuation frame has RSV1 set; RFC 7692 §6 allows it on a message's first frame
    /// only.
    Rsv1OnContinuation,
    /// A frame has an opcode RFC 6455 does not define (0x3-0x7, 0xB-0xF).
    UnknownOpcode {
        /// The opcode.
        opcode: u8,
    },
    /// A control frame (close, ping, pong) without FIN: control frames may not be fragmented.
    FragmentedControlFrame {
        /// The frame's opcode.
        opcode: u8,
    },
    /// A control frame announced a payload of more than 125 bytes.
    ControlFrameTooLong {
        /// The frame's opcode.
        opcode: u8,
        /// The announced payload length.
        len: u64,
    },
    /// A 64-bit payload length has its most significant bit set.
    LengthTooLarge {
        /// The announced payload length.
        len: u64,
    },
    /// The server sent a masked frame (servers must not mask, RFC 6455 §5.1).
    MaskedFrameFromServer,
    /// The client sent an unmasked frame (clients must mask every frame, RFC 6455 §5.1).
    UnmaskedFrameFromClient,
    /// A continuation frame came with no fragmented message to continue.
    ContinuationWithoutMessage,
    /// A text or binary frame started a new message before the fragmented one ended.
    NewMessageInsideFragmented {
        /// The new frame's opcode (0x1 text, 0x2 binary).
        opcode: u8,
    },
    /// A close frame has a 1-byte payload: too short for a close code, not empty.
    OneByteClosePayload,
    /// A close frame carries a code that may not be sent (RFC 6455 §7.4: 1004-1006, 1015,
    /// 0-999, 1016-2999 and 5000 up).
    InvalidCloseCode {
        /// The code received.
        code: u16,
    },
    /// A compressed message's data is not a valid deflate stream.
    InvalidCompressedData {
        /// What zlib said.
        message: String,
    },
    /// A compressed message's data neither ends nor produces output: the inflater would spin.
    CompressedDataStalled,
}

impl ProtocolError {
    /// The close code the socket answers this violation with (RFC 6455 §7.4.1): 1002,
    /// "protocol error", for every variant today.
    ///
    /// ```
    /// assert_eq!(syncws::ProtocolError::MaskedFrameFromServer.close_code(), 1002);
    /// ```
    pub fn close_code(&self) -> u16 {
        // Every arm is written out so that a new variant has to choose its code.
        match self {
            ProtocolError::ReservedBits { .. }
            | ProtocolError::Rsv1WithoutDeflate
            | ProtocolError::Rsv1OnControlFrame { .. }
            | ProtocolError::Rsv1OnContinuation
            | ProtocolError::UnknownOpcode { .. }
            | ProtocolError::FragmentedControlFrame { .. }
            | ProtocolError::ControlFrameTooLong { .. }
            | ProtocolError::LengthTooLarge { .. }
            | ProtocolError::MaskedFrameFromServer
            | ProtocolError::UnmaskedFrameFromClient
            | ProtocolError::ContinuationWithoutMessage
            | ProtocolError::NewMessageInsideFragmented { .. }
            | ProtocolError::OneByteClosePayload
            | ProtocolError::InvalidCloseCode { .. }
            | ProtocolError::InvalidCompressedData { .. }
            | ProtocolError::CompressedDataStalled => 1002,
        }
    }
}

/// How an opcode reads in a message: its frame's name, with the number.
struct Opcode(u8);

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x0 => "continuation",
            0x1 => "text",
            0x2 => "binary",
            0x8 => "close",
            0x9 => "ping",
            0xA => "pong",
            _ => "reserved",
        };
        write!(f, "{name} frame (opcode {:#x})", self.0)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits { bits } => write!(f, "reserved bits {bits:#05b} set"),
            ProtocolError::Rsv1WithoutDeflate => write!(
                f,
                "RSV1 set without a negotiated extension (permessage-deflate was not agreed)"
            ),
            ProtocolError::Rsv1OnControlFrame { opcode } => {
                write!(f, "RSV1 set on a {}", Opcode(*opcode))
            }
            ProtocolError::Rsv1OnContinuation => {
                write!(
                    f,
                    "RSV1 set on a continuation frame (only a message's first frame may have it)"
                )
            }
            ProtocolError::UnknownOpcode { opcode } => write!(f, "unknown opcode {opcode:#x}"),
            ProtocolError::FragmentedControlFrame { opcode } => {
                write!(
                    f,
                    "{} without FIN: control frames must be final",
                    Opcode(*opcode)
                )
            }
            ProtocolError::ControlFrameTooLong { opcode, len } => write!(
                f,
                "{} with a payload of {len} bytes: control frames carry at most 125",
                Opcode(*opcode)
            ),
            ProtocolError::LengthTooLarge { len } => {
                write!(f, "frame length {len:#x} has its most significant bit set")
            }
            ProtocolError::MaskedFrameFromServer => write!(f, "server sent a masked frame"),
            ProtocolError::UnmaskedFrameFromClient => write!(f, "client sent an unmasked frame"),
            ProtocolError::ContinuationWithoutMessage => {
                write!(f, "continuation frame with no message to continue")
            }
            ProtocolError::NewMessageInsideFragmented { opcode } => {
                write!(f, "new {} inside a fragmented message", Opcode(*opcode))
            }
            ProtocolError::OneByteClosePayload => write!(f, "close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode { code } => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidCompressedData { message } => {
                write!(f, "invalid compressed data: {message}")
            }
            ProtocolError::CompressedDataStalled => {
                write!(f, "compressed data makes no progress")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_frame_and_the_numbers() {
        let cases = [
            (
                ProtocolError::ReservedBits { bits: 0b010 },
                "reserved bits 0b010 set",
            ),
            (
                ProtocolError::Rsv1OnControlFrame { opcode: 0x9 },
                "RSV1 set on a ping frame (opcode 0x9)",
            ),
            (
                ProtocolError::FragmentedControlFrame { opcode: 0x8 },
                "close frame (opcode 0x8) without FIN: control frames must be final",
            ),
            (
                ProtocolError::ControlFrameTooLong {
                    opcode: 0xA,
                    len: 126,
                },
                "pong frame (opcode 0xa) with a payload of 126 bytes: control frames carry at \
                 most 125",
            ),
            (
                ProtocolError::NewMessageInsideFragmented { opcode: 0x2 },
                "new binary frame (opcode 0x2) inside a fragmented message",
            ),
            (
                ProtocolError::InvalidCloseCode { code: 1005 },
                "invalid close code 1005",
            ),
            (
                ProtocolError::UnknownOpcode { opcode: 0xB },
                "unknown opcode 0xb",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
            assert_eq!(error.close_code(), 1002);
        }
    }
}
