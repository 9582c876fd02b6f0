#![no_main]
//! See `syncws::fuzz::utf8` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::utf8(data));
