//! Incremental UTF-8 validation for text that arrives in pieces.
//!
//! A text message may be split across frames and reads at any byte, even inside a character.
//! [`Validator`] checks each new piece as it lands, so invalid text fails at the first bad byte
//! (RFC 6455 §8.1 "fail fast") instead of after the whole message was buffered. It keeps no copy
//! of the data: it tracks how far into the caller's buffer the text is known to be good.

/// Tracks how much of a growing byte buffer is known to be valid UTF-8.
#[derive(Debug, Default, Clone)]
pub struct Validator {
    valid_up_to: usize,
}

/// The buffer holds a byte sequence that no continuation can make valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

impl Validator {
    /// Checks the bytes of `buf` not yet seen. `buf` must be the same buffer, only grown, as on
    /// earlier calls. An incomplete character at the end is fine: it may finish in the next piece.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(), Invalid> {
        match std::str::from_utf8(&buf[self.valid_up_to..]) {
            Ok(_) => {
                self.valid_up_to = buf.len();
                Ok(())
            }
            Err(e) => {
                if e.error_len().is_some() {
                    return Err(Invalid);
                }
                // The tail is a proper prefix of a character: wait for the rest.
                self.valid_up_to += e.valid_up_to();
                Ok(())
            }
        }
    }

    /// How much of the buffer is known to be valid: all of it but an incomplete character at
    /// its end.
    pub fn valid_up_to(&self) -> usize {
        self.valid_up_to
    }

    /// Checks that the text ends on a whole character.
    #[cfg(any(test, fuzzing))]
    pub fn finish(&self, buf: &[u8]) -> Result<(), Invalid> {
        if self.valid_up_to == buf.len() {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

/// Validates text that comes in pieces nobody keeps (a streamed message sent from a `Read`):
/// only the first bytes of a character split between two pieces (at most three) are carried
/// over to the next.
#[derive(Debug, Default, Clone)]
pub struct Carry {
    bytes: [u8; 4],
    len: usize,
}

/// The length of the character a UTF-8 lead byte starts (0: not a lead byte).
fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Carry {
    /// Checks the next piece; an incomplete character at its end is fine (it may finish in
    /// the next).
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), Invalid> {
        if self.len > 0 {
            let need = width(self.bytes[0]);
            if need <= self.len {
                return Err(Invalid);
            }
            let take = (need - self.len).min(piece.len());
            self.bytes[self.len..self.len + take].copy_from_slice(&piece[..take]);
            self.len += take;
            piece = &piece[take..];
            match std::str::from_utf8(&self.bytes[..self.len]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return Err(Invalid),
                // Still a valid start, and the piece is used up.
                Err(_) => return Ok(()),
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Invalid),
            Err(e) => {
                let rest = &piece[e.valid_up_to()..];
                self.bytes[..rest.len()].copy_from_slice(rest);
                self.len = rest.len();
                Ok(())
            }
        }
    }

    /// Checks that the text ended on a whole character.
    pub fn finish(&self) -> Result<(), Invalid> {
        if self.len == 0 { Ok(()) } else { Err(Invalid) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carry_in_pieces(bytes: &[u8], piece: usize) -> Result<(), Invalid> {
        let mut c = Carry::default();
        for chunk in bytes.chunks(piece.max(1)) {
            c.feed(chunk)?;
        }
        c.finish()
    }

    #[test]
    fn carry_checks_text_in_pieces_it_does_not_keep() {
        let text = "κόσμε, hello, 𝄞 and € signs".as_bytes();
        for piece in 1..=text.len() {
            assert_eq!(carry_in_pieces(text, piece), Ok(()), "piece {piece}");
        }
        let mut bad = "κόσμε".as_bytes().to_vec();
        bad.extend_from_slice(&[0xED, 0xA0, 0x80]);
        for piece in 1..=bad.len() {
            assert_eq!(carry_in_pieces(&bad, piece), Err(Invalid), "piece {piece}");
        }
        for piece in 1..4 {
            assert_eq!(
                carry_in_pieces(&[b'a', 0xF0, 0x9D, 0x84], piece),
                Err(Invalid)
            );
        }
        assert_eq!(carry_in_pieces(&[0xFF], 1), Err(Invalid));
        assert_eq!(carry_in_pieces(b"", 1), Ok(()));
    }

    fn feed_in_pieces(bytes: &[u8], piece: usize) -> Result<(), (usize, Invalid)> {
        let mut v = Validator::default();
        let mut buf = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            v.feed(&buf).map_err(|e| (buf.len(), e))?;
        }
        v.finish(&buf).map_err(|e| (buf.len(), e))
    }

    #[test]
    fn valid_text_in_every_split() {
        let text = "κόσμε, hello, 𝄞 and € signs".as_bytes();
        for piece in 1..=text.len() {
            assert_eq!(feed_in_pieces(text, piece), Ok(()), "piece {piece}");
        }
    }

    #[test]
    fn fails_at_the_first_bad_byte() {
        // "κόσμε" then 0xED 0xA0 0x80 (a UTF-16 surrogate, invalid), then more text.
        let mut bytes = "κόσμε".as_bytes().to_vec();
        let bad_at = bytes.len();
        bytes.extend_from_slice(&[0xED, 0xA0, 0x80]);
        bytes.extend_from_slice(b"edited");
        // Byte by byte: the error must show up at the second byte of the surrogate.
        assert_eq!(feed_in_pieces(&bytes, 1), Err((bad_at + 2, Invalid)));
    }

    #[test]
    fn code_point_above_max_fails_early() {
        // F4 90 can never start a valid character (> U+10FFFF).
        assert_eq!(
            feed_in_pieces(&[0xF4, 0x90, 0x80, 0x80], 1),
            Err((2, Invalid))
        );
    }

    #[test]
    fn truncated_character_at_end_fails_on_finish() {
        assert_eq!(feed_in_pieces(&[b'a', 0xE2, 0x82], 1), Err((3, Invalid)));
    }
}
