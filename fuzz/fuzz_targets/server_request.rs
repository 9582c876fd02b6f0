#![no_main]
//! See `syncws::fuzz::server_request` and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws::fuzz::server_request(data));
