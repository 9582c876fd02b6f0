//! The `utf8` target: the incremental validator against `std::str::from_utf8`.

use syncws::fuzz::utf8::Validator;

use crate::{Rng, chunk_sizes};

/// Whether `bytes` can still become valid UTF-8: valid, or cut inside a character.
fn valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Feeds `data` to a fresh validator in pieces ending at each of `ends` (growing the buffer),
/// then finishes; checks each step against `std::str::from_utf8`.
fn validate_in_pieces(data: &[u8], ends: &[usize]) {
    let mut v = Validator::default();
    for &end in ends {
        let r = v.feed(&data[..end]);
        assert_eq!(r.is_ok(), valid_prefix(&data[..end]), "feed up to {end}");
        if r.is_err() {
            assert!(std::str::from_utf8(data).is_err());
            return;
        }
    }
    let end = ends.last().copied().unwrap_or(0);
    assert_eq!(
        v.finish(&data[..end]).is_ok(),
        std::str::from_utf8(&data[..end]).is_ok(),
        "finish at {end}"
    );
}

/// The incremental UTF-8 validator against `std::str::from_utf8`.
///
/// Checks, for the input fed in two pieces at every split point, byte by byte, and in
/// random-sized pieces: each `feed` fails exactly when the bytes so far can no longer become
/// valid UTF-8 (fail fast, an incomplete trailing character is fine), and `finish` after the
/// last piece agrees with `from_utf8` on the whole.
pub fn utf8(data: &[u8]) {
    let n = data.len();
    for cut in 0..=n {
        validate_in_pieces(data, &[cut, n]);
    }
    let bytewise: Vec<usize> = (1..=n).collect();
    validate_in_pieces(data, &bytewise);
    let mut ends = Vec::new();
    let mut end = 0;
    for size in chunk_sizes(n, 16, &mut Rng::new(data)) {
        end += size;
        ends.push(end);
    }
    validate_in_pieces(data, &ends);
    validate_in_pieces(data, &[n, n]);
}
