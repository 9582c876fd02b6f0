#![no_main]
//! See `syncws::fuzz::handshake_response` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::handshake_response(data));
