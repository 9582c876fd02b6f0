#![no_main]
//! See `syncws::fuzz::decoder` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::decoder(data));
