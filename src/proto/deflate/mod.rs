//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Pure: header values in, parameters out; bytes in, bytes out. The codec runs on flate2's
//! zlib-rs backend, because RFC 7692's `*_max_window_bits` need a compressor whose window can
//! shrink, which flate2's default miniz backend cannot do.
//!
//! Window bits 8: zlib (and so zlib-rs) cannot produce a raw deflate stream with a 256-byte
//! window. When the peer limits our window to 8 bits we still accept the extension, and send
//! every message uncompressed: RFC 7692 lets a sender leave any message uncompressed (RSV1
//! clear). Inflating is unaffected: we always inflate with a 32 KiB window, which reads streams
//! made with any smaller one.

mod codec;
mod negotiate;
mod params;

pub use codec::{Deflater, Inflater};
pub use negotiate::{check_response, negotiate};
pub use params::{CLIENT_OFFER, Params, ServerSettings};
