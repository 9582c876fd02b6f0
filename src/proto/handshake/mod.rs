//! The opening handshake (RFC 6455 §4) as bytes in and bytes out: the client's half in
//! [`client`], the server's in [`server`], and what both share: the HTTP head's rules
//! ([`head`]) and the key and its accept value ([`key`]).

mod client;
mod head;
mod key;
mod server;

pub(crate) use client::{check_response, encode_request, parse_response};
#[cfg(feature = "fuzzing")]
pub(crate) use head::MAX_HEADERS;
pub(crate) use head::{MAX_BODY_BYTES, MAX_HEADER_BYTES};
#[cfg(feature = "fuzzing")]
pub(crate) use key::accept_key;
pub(crate) use key::new_key;
pub(crate) use server::{
    Accepted, ClientHello, OriginPolicy, Policy, Refusal, accept, encode_refusal, normalize_origin,
    parse_request,
};
// The fuzz targets build 101s by hand.
#[cfg(feature = "fuzzing")]
pub(crate) use server::encode_accept;
