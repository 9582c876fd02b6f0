#![no_main]
//! See `syncws_fuzz::forwarded` (`fuzz/src/`) and docs/fuzzing.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncws_fuzz::forwarded(data));
