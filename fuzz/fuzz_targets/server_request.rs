#![no_main]
//! See `syncws_fuzz::server_request` (`fuzz/src/`) and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws_fuzz::server_request(data));
