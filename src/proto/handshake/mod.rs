//! The opening handshake (RFC 6455 §4) as bytes in and bytes out: the client's half in
//! [`client`], the server's in [`server`], and what both share: the HTTP head's rules
//! ([`head`]) and the key and its accept value ([`key`]).

mod client;
pub(crate) mod head;
pub(crate) mod key;
mod origin;
mod refusal;
mod server;
mod target;

pub(crate) use client::encode_request;
pub(crate) use head::MAX_BODY_BYTES;
pub use head::MAX_HEADER_BYTES;
pub(crate) use key::new_key;
pub use origin::{OriginPolicy, normalize_origin};
pub(crate) use refusal::{Refusal, RefusalKind, encode_refusal};
pub(crate) use server::Accepted;
// `pub` where the fuzz targets reach them through `crate::fuzz`.
pub use client::{check_response, parse_response};
pub use server::{ClientHello, Policy, accept, parse_request};
// The test kit's mock server and the fuzz targets write 101s of their own.
#[cfg(any(fuzzing, feature = "testing"))]
pub use server::encode_accept;
