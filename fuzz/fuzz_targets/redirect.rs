#![no_main]
//! See `syncws::fuzz::redirect` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::redirect(data));
