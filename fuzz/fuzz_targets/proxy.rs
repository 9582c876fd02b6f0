#![no_main]
//! See `syncws::fuzz::proxy` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::proxy(data));
