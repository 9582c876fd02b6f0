#![no_main]
//! See `syncws::fuzz::extensions` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::extensions(data));
