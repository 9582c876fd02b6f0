//! The fuzz targets' oracles: each public function drives one piece of syncws's pure protocol
//! layer (`syncws::fuzz`, feature `fuzzing`) with arbitrary bytes and panics only when an
//! invariant is broken, so a fuzzer's crash is always a bug. The targets in `fuzz_targets/`
//! are one line each that call these.
//!
//! The layout of each target's input (which leading bytes pick a role, a limit, a chunking) is
//! documented on its function and in `docs/fuzzing.md`; `fuzz/make_seeds.py` writes seeds in
//! that layout.

mod close;
mod extensions;
mod forwarded;
mod frames;
mod heads;
mod proxy;
mod redirect;
mod utf8;

pub use close::close;
pub use extensions::extensions;
pub use forwarded::forwarded;
pub use frames::{decoder, parts, roundtrip};
pub use heads::{ALLOWED_ORIGINS, handshake_request, handshake_response, server_request};
pub use proxy::proxy;
pub use redirect::redirect;
pub use utf8::utf8;

use syncws::Header;

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3, which the handshake targets check responses
/// against. Its accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The largest `max_message_size` the decoder target picks (1 MiB): bounds the work and memory
/// of one input, decompression bombs included.
pub const MAX_MESSAGE_SIZE: u64 = 1 << 20;

/// Inputs up to this length are checked at every split point; longer ones at a sample.
const ALL_SPLITS_UP_TO: usize = 128;

/// Takes fixed-size choices off the front of a fuzz input; missing bytes read as zero.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// splitmix64: deterministic pseudo-random choices seeded from the input, so a crash replays.
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8]) -> Rng {
        let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ seed.len() as u64;
        for &b in seed.iter().take(64) {
            s = s.rotate_left(8) ^ u64::from(b);
        }
        Rng(s)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Read sizes that add up to `len`, each 1 to `max` bytes.
fn chunk_sizes(len: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = (rng.below(max.max(1)) + 1).min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// The cut points checked for an input of `len` bytes: all of them for short inputs, else a
/// sample plus the `extra` points (around where a parse ended).
fn cut_points(len: usize, rng: &mut Rng, extra: &[usize]) -> Vec<usize> {
    if len <= ALL_SPLITS_UP_TO {
        return (0..=len).collect();
    }
    let mut cuts: Vec<usize> = (0..32).map(|_| rng.below(len + 1)).collect();
    cuts.extend(extra.iter().copied().filter(|&c| c <= len));
    cuts
}

/// Every value of header `name` (case-insensitive), in order, as bytes.
fn header_bytes<'a>(headers: &'a [Header], name: &str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .map(Header::value)
}

/// Every UTF-8 value of header `name` (case-insensitive), in order.
fn header_values<'a>(headers: &'a [Header], name: &str) -> impl Iterator<Item = &'a str> {
    header_bytes(headers, name).filter_map(|v| std::str::from_utf8(v).ok())
}
