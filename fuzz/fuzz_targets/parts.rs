#![no_main]
//! See `syncws_fuzz::parts` (`fuzz/src/`) and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws_fuzz::parts(data));
