//! Payload masking (RFC 6455 §5.3) and the source of mask keys.
//!
//! Masking is the client's hot loop: every byte it sends goes through [`apply`]. It works eight
//! bytes at a time on unaligned words (LLVM turns the loop into SIMD), with a byte loop for the
//! tail; `offset` lets a payload that arrives in pieces be unmasked piece by piece.

use chacha20::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the masked payload.
pub(crate) fn apply(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotate(key, offset);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

/// The key as seen from `offset` bytes into the payload.
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let o = offset & 3;
    [key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]]
}

/// The obvious byte-at-a-time masking; the reference the fast version is tested against.
#[cfg(test)]
fn apply_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}

/// Unpredictable mask keys without a system call per frame.
///
/// RFC 6455 §10.3 requires keys an intermediary cannot predict. They come from a ChaCha12
/// keystream (a CSPRNG, as `rand`'s `StdRng` and tungstenite's keys), seeded once from the
/// operating system's CSPRNG when the socket masks its first frame: one system call per
/// client socket instead of one every 64 frames, and no state at all for a server socket,
/// which never masks.
pub(crate) struct MaskSource {
    rng: Option<Box<ChaCha12Rng>>,
}

impl MaskSource {
    pub(crate) fn new() -> Self {
        MaskSource { rng: None }
    }

    pub(crate) fn next_key(&mut self) -> [u8; 4] {
        let rng = self.rng.get_or_insert_with(|| {
            let mut seed = [0u8; 32];
            fill_random(&mut seed);
            Box::new(ChaCha12Rng::from_seed(seed))
        });
        rng.next_u32().to_ne_bytes()
    }
}

/// Fills `buf` from the OS CSPRNG. The OS source failing is not something a caller can handle
/// (no key can be made safely), so it falls back to a time-and-address-seeded mix and logs it.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        log::error!("OS random source failed ({e}); using a weaker fallback for mask keys");
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ (buf.as_ptr() as u64);
        for b in buf.iter_mut() {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *b = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_mask_matches_bytewise_for_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                for start in 0..4 {
                    let data: Vec<u8> = (0..len + start).map(|i| (i * 7 + 3) as u8).collect();
                    let mut fast = data.clone();
                    let mut slow = data.clone();
                    apply(&mut fast[start..], key, offset);
                    apply_bytewise(&mut slow[start..], key, offset);
                    assert_eq!(fast, slow, "len {len} offset {offset} start {start}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [1, 2, 3, 250];
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = data.clone();
        apply(&mut whole, key, 0);
        let mut pieces = data.clone();
        let mut off = 0;
        for size in [1, 3, 8, 13, 100, 875] {
            apply(&mut pieces[off..off + size], key, off);
            off += size;
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = *b"Hello";
        apply(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn mask_keys_vary() {
        let mut src = MaskSource::new();
        let keys: std::collections::HashSet<[u8; 4]> = (0..200).map(|_| src.next_key()).collect();
        assert!(keys.len() > 190, "keys repeat too often: {}", keys.len());
    }

    #[test]
    fn each_socket_gets_its_own_keystream() {
        // Seeded from the OS per source: two sockets never share (or replay) keys.
        let mut a = MaskSource::new();
        let mut b = MaskSource::new();
        let ka: Vec<[u8; 4]> = (0..8).map(|_| a.next_key()).collect();
        let kb: Vec<[u8; 4]> = (0..8).map(|_| b.next_key()).collect();
        assert_ne!(ka, kb);
    }
}
