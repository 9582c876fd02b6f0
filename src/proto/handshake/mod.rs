//! The opening handshake (RFC 6455 §4) as bytes in and bytes out: the client's half in
//! [`client`], the server's in [`server`], and what both share: the HTTP head's rules
//! ([`head`]) and the key and its accept value ([`key`]).

mod client;
mod head;
mod key;
mod origin;
mod refusal;
mod server;
mod target;

pub(crate) use client::encode_request;
pub(crate) use head::MAX_BODY_BYTES;
pub use head::MAX_HEADER_BYTES;
pub(crate) use key::new_key;
pub use origin::{OriginPolicy, normalize_origin};
pub(crate) use refusal::{Refusal, encode_refusal};
pub(crate) use server::Accepted;
// `pub` where the fuzz targets reach them through `crate::fuzz`.
pub use client::{check_response, parse_response};
#[cfg(feature = "fuzzing")]
pub use head::MAX_HEADERS;
#[cfg(feature = "fuzzing")]
pub use key::accept_key;
pub use server::{ClientHello, Policy, accept, parse_request};
// The fuzz targets build 101s by hand.
#[cfg(any(feature = "fuzzing", feature = "testing"))]
pub use server::encode_accept;
