//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API).
//!
//! Each function drives one piece of the pure protocol layer with arbitrary bytes and panics
//! only when an invariant is broken, so a fuzzer's crash is always a bug.
