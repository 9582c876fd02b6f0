//! The per-message codec (RFC 7692 §7.2): deflate with a sync flush, its tail stripped on send
//! and restored on receive, and inflate with the output capped as it is produced.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::params::Params;
use crate::error::{Error, ProtocolError};

/// The tail a sync flush ends with, stripped on send and restored on receive (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// Inflated output grows by at most this much per step while the limit is checked.
const INFLATE_STEP: usize = 64 * 1024;

/// Compresses outgoing messages.
///
/// The zlib state (about 256 KiB at window 15) is allocated on the first compressed message,
/// so sockets that only send small messages never pay for it.
pub struct Deflater {
    c: Option<Compress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// The params' `shared_frames`.
    shared_frames: bool,
    level: u32,
}

impl Deflater {
    /// `None` when `window_bits` is 8, which zlib cannot produce: send uncompressed.
    /// `level` is zlib's 0 (store) to 9 (smallest); larger values are clamped to 9.
    pub fn new(params: &Params, level: u32) -> Option<Deflater> {
        if !(9..=15).contains(&params.send_max_window_bits) {
            return None;
        }
        Some(Deflater {
            c: None,
            window_bits: params.send_max_window_bits,
            no_context_takeover: params.send_no_context_takeover,
            shared_frames: params.shared_frames && params.send_no_context_takeover,
            level: level.min(9),
        })
    }

    /// `(window_bits, level)` when every message is compressed on its own (no context
    /// takeover) with the server's own window, so a message compressed once with these serves
    /// every connection that has them: a prepared message's frame.
    pub(crate) fn shareable(&self) -> Option<(u8, u32)> {
        self.shared_frames.then_some((self.window_bits, self.level))
    }

    /// Compresses one whole message into `out` (cleared first), without the sync-flush tail.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.compress_part(input, out, true)
    }

    /// Compresses one part of a message sent in parts (a streamed message) into `out`
    /// (cleared first), continuing the message's deflate stream. Each part ends on a sync
    /// flush, so the peer can inflate it as it arrives; the `last` part's sync-flush tail is
    /// stripped, as a whole message's is (RFC 7692 §7.2.1: one message, one stream, whatever
    /// its frames), and the context is then reset or kept as negotiated.
    pub fn compress_part(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), Error> {
        let (bits, level) = (self.window_bits, self.level);
        let c = self.c.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        out.clear();
        let start_in = c.total_in();
        loop {
            out.reserve((input.len() / 4).max(256));
            let consumed = (c.total_in() - start_in) as usize;
            c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|e| Error::io(std::io::ErrorKind::Other, format!("deflate: {e}")))?;
            let consumed = (c.total_in() - start_in) as usize;
            // Done once all input is in and the flush fit (output space was left over).
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !last {
            // A sync point inside the message: the tail stays, it is part of the stream.
            return Ok(());
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else if out.is_empty() {
            // Nothing to flush (an empty message after a flushed one): an empty stored block's
            // header, so that the tail the receiver appends completes it (§7.2.3.6).
            out.push(0x00);
        }
        if self.no_context_takeover {
            c.reset();
        }
        Ok(())
    }
}

/// Inflates incoming messages, frame by frame, within a size limit. Like [`Deflater`], its
/// zlib state is allocated on the first compressed message.
pub struct Inflater {
    d: Option<Decompress>,
    no_context_takeover: bool,
    /// The current message's deflate stream ended (BFINAL); the rest of its input is ignored
    /// and the next message needs a fresh stream.
    ended: bool,
    /// The last `inflate_some` filled its output to the cap: the inflater may hold more
    /// output for input it already took, to be drained before more input is needed.
    may_have_output: bool,
}

impl Inflater {
    /// An inflater for messages the peer compressed with `params` (our receiving side).
    pub fn new(params: &Params) -> Inflater {
        Inflater {
            d: None,
            no_context_takeover: params.recv_no_context_takeover,
            ended: false,
            may_have_output: false,
        }
    }

    /// Inflates `input` (part of a compressed message) onto the end of `out`, failing with
    /// `MessageTooLarge` as soon as `out` would pass `limit`: memory grows with the output
    /// actually produced, never past the limit, however small the input.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
        let d = self.d.get_or_insert_with(|| Decompress::new(false));
        let mut pos = 0;
        while !self.ended {
            let cap_limit = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            if out.len() >= cap_limit {
                return Err(Error::MessageTooLarge {
                    size: out.len() as u64,
                    limit,
                });
            }
            if out.len() == out.capacity() {
                // Grow geometrically, but never past limit + 1 byte: the inflater writes only
                // into the capacity it is given.
                let target = (out.capacity() * 2)
                    .max(out.len() + INFLATE_STEP)
                    .min(cap_limit);
                out.reserve_exact(target - out.len());
            }
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(&input[pos..], out, FlushDecompress::Sync)
                .map_err(|e| {
                    Error::Protocol(ProtocolError::InvalidCompressedData {
                        message: e.to_string(),
                    })
                })?;
            pos += (d.total_in() - in0) as usize;
            let produced = d.total_out() - out0;
            match status {
                // The stream ended itself (BFINAL): whatever follows, in this input or later
                // ones, is ignored; testing it for progress would fail a valid message whose
                // end arrives with a trailing byte.
                Status::StreamEnd => {
                    self.ended = true;
                    break;
                }
                Status::Ok | Status::BufError => {}
            }
            if pos == input.len() && out.len() < out.capacity() {
                break; // all input used, and the output was not cut short
            }
            if produced == 0 && pos < input.len() && out.len() < out.capacity() {
                return Err(Error::Protocol(ProtocolError::CompressedDataStalled));
            }
        }
        if out.len() as u64 > limit {
            return Err(Error::MessageTooLarge {
                size: out.len() as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Inflates from `input` onto the end of `out` until the input is used up (and what the
    /// inflater holds for it is out) or `out` holds `cap` bytes, whichever comes first; returns
    /// how much of the input was used. For a message received in parts: the caller hands `out`
    /// over once it is full and calls again with the rest of the input (empty when it was all
    /// used, while [`has_output`](Self::has_output)), so memory is one part, however far the
    /// input inflates.
    pub fn inflate_some(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        cap: usize,
    ) -> Result<usize, Error> {
        let d = self.d.get_or_insert_with(|| Decompress::new(false));
        let mut pos = 0;
        while !self.ended && out.len() < cap && (pos < input.len() || self.may_have_output) {
            let start = out.len();
            let room = (cap - start).min(INFLATE_STEP);
            out.resize(start + room, 0);
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress(&input[pos..], &mut out[start..], FlushDecompress::Sync)
                .map_err(|e| {
                    Error::Protocol(ProtocolError::InvalidCompressedData {
                        message: e.to_string(),
                    })
                })?;
            let used = (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            out.truncate(start + produced);
            pos += used;
            // A full output may have left output behind in the inflater.
            self.may_have_output = produced == room;
            if status == Status::StreamEnd {
                // As in `inflate`: what follows the stream's end is ignored.
                self.ended = true;
                pos = input.len();
            } else if used == 0 && produced == 0 {
                if pos < input.len() {
                    return Err(Error::Protocol(ProtocolError::CompressedDataStalled));
                }
                // Drained: nothing was left behind.
                self.may_have_output = false;
            }
        }
        if self.ended {
            pos = input.len();
            self.may_have_output = false;
        }
        Ok(pos)
    }

    /// Whether the last [`inflate_some`](Self::inflate_some) stopped at its cap with output
    /// possibly left in the inflater: call it again, with no input if there is none.
    pub fn has_output(&self) -> bool {
        self.may_have_output
    }

    /// Ends a message: restores the stripped tail and flushes its output.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
        self.may_have_output = false;
        self.inflate(&TAIL, out, limit)?;
        if (self.ended || self.no_context_takeover)
            && let Some(d) = &mut self.d
        {
            d.reset(false);
            self.ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(send_nct: bool, recv_nct: bool, bits: u8) -> Params {
        Params {
            send_no_context_takeover: send_nct,
            recv_no_context_takeover: recv_nct,
            send_max_window_bits: bits,
            shared_frames: false,
        }
    }

    fn round_trip(p: Params, messages: &[&[u8]]) -> Vec<usize> {
        let mut d = Deflater::new(&p, 6).unwrap();
        let mut i = Inflater::new(&params(false, p.send_no_context_takeover, 15));
        let mut sizes = Vec::new();
        for m in messages {
            let mut compressed = Vec::new();
            d.compress(m, &mut compressed).unwrap();
            sizes.push(compressed.len());
            let mut out = Vec::new();
            // Feed in two pieces, as two frames would.
            let half = compressed.len() / 2;
            i.inflate(&compressed[..half], &mut out, 1 << 30).unwrap();
            i.inflate(&compressed[half..], &mut out, 1 << 30).unwrap();
            i.finish(&mut out, 1 << 30).unwrap();
            assert_eq!(&out, m);
        }
        sizes
    }

    #[test]
    fn golden_values() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut i = Inflater::new(&params(false, false, 15));
        let mut text = Vec::new();
        i.inflate(&out, &mut text, 100).unwrap();
        i.finish(&mut text, 100).unwrap();
        assert_eq!(text, b"Hello");
    }

    #[test]
    fn context_takeover_at_each_window_size() {
        let msg = br#"{"type":"update","symbol":"ACME","price":101.25,"volume":1200}"#;
        for bits in [9, 12, 15] {
            let sizes = round_trip(params(false, false, bits), &[msg, msg, b"", msg]);
            assert!(
                sizes[1] < sizes[0],
                "bits {bits}: context makes the repeat smaller"
            );
            let sizes = round_trip(params(true, false, bits), &[msg, msg, b"", msg]);
            assert_eq!(sizes[0], sizes[1], "bits {bits}: no context, same output");
        }
    }

    #[test]
    fn large_message_at_small_window() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 16 + b'a')
            .collect();
        for bits in [9, 12, 15] {
            round_trip(params(false, false, bits), &[&data, &data]);
        }
    }

    #[test]
    fn empty_message_is_one_zero_byte() {
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            d.compress(b"", &mut out).unwrap();
            assert_eq!(out, [0x00]);
        }
    }

    #[test]
    fn window_bits_8_sends_uncompressed() {
        assert!(Deflater::new(&params(false, false, 8), 6).is_none());
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        // 16 MiB of zeros compresses to about 16 KiB; inflating must stop at the 1 MiB limit.
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let zeros = vec![0u8; 16 << 20];
        let mut bomb = Vec::new();
        d.compress(&zeros, &mut bomb).unwrap();
        assert!(bomb.len() < 128 * 1024, "{}", bomb.len());
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        let limit = 1 << 20;
        let e = i.inflate(&bomb, &mut out, limit).unwrap_err();
        assert!(
            matches!(e, Error::MessageTooLarge { size, .. } if size == limit + 1),
            "{e:?}"
        );
        assert!(out.capacity() as u64 <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn corrupt_data_is_a_protocol_error() {
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        let r = i
            .inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 1000)
            .and_then(|()| i.finish(&mut out, 1000));
        assert!(
            matches!(
                r,
                Err(Error::Protocol(ProtocolError::InvalidCompressedData { .. }))
            ),
            "{r:?}"
        );
    }

    #[test]
    fn final_block_then_garbage_is_tolerated_and_next_message_inflates() {
        // A stream that ends itself (BFINAL) followed by trailing bytes.
        let mut c = Compress::new(Compression::default(), false);
        let mut fin = Vec::with_capacity(64);
        c.compress_vec(b"first", &mut fin, FlushCompress::Finish)
            .unwrap();
        fin.extend_from_slice(b"junk");
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        i.inflate(&fin, &mut out, 1000).unwrap();
        i.finish(&mut out, 1000).unwrap();
        assert_eq!(out, b"first");
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut next = Vec::new();
        d.compress(b"second", &mut next).unwrap();
        let mut out = Vec::new();
        i.inflate(&next, &mut out, 1000).unwrap();
        i.finish(&mut out, 1000).unwrap();
        assert_eq!(out, b"second");
    }

    #[test]
    fn a_final_block_whose_end_and_trailing_bytes_come_in_later_pieces_inflates() {
        // RFC 7692 §7.2.3.5: "Hello" in a BFINAL block, plus one trailing byte; found by the
        // decoder fuzz target failing with 1002 when the last bytes arrive on their own.
        let wire = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        for split in 1..wire.len() {
            for second in split..wire.len() {
                let mut i = Inflater::new(&params(false, false, 15));
                let mut out = Vec::new();
                i.inflate(&wire[..split], &mut out, 1000).unwrap();
                i.inflate(&wire[split..second], &mut out, 1000).unwrap();
                i.inflate(&wire[second..], &mut out, 1000).unwrap();
                i.finish(&mut out, 1000).unwrap();
                assert_eq!(out, b"Hello", "split at {split} and {second}");
            }
        }
    }
}
