#![no_main]
//! See `syncws::fuzz::roundtrip` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::roundtrip(data));
