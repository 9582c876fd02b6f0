#![no_main]
//! See `syncws::fuzz::close` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::close(data));
