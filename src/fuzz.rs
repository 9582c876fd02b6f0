//! The pure protocol layer, for the fuzz targets in `fuzz/` (`--cfg fuzzing`, which
//! cargo-fuzz sets; hidden from the docs; not a stable API).
//!
//! The targets and the invariants they check live in the fuzz crate (`fuzz/src/`, see
//! `docs/fuzzing.md`); this module only names what they drive. Each module below re-exports
//! the items the targets name from the crate's private module of the same name (the types
//! those items return are `pub` too, so that they may appear in a public signature, but stay
//! unnamed here), so nothing is reachable from outside the crate without this cfg. The
//! functions of `proxy` and `redirect_response` stand in for crate-internal constructors and
//! methods of public types (`Proxy`, `Response`), which cannot be re-exported without making
//! them public for everyone.

use std::fmt::Debug;

use crate::error::Error;
use crate::header::Header;
use crate::proxy::Proxy;
use crate::response::Response;

pub use crate::proto::Role;

/// Close codes and close payloads (RFC 6455 §5.5.1, §7.4).
pub mod close {
    pub use crate::proto::close::{
        CloseFrame, MAX_REASON_BYTES, is_valid_code, parse, payload, validate,
    };
}

/// Incoming bytes to messages and control frames.
pub mod decoder {
    pub use crate::proto::decoder::{Decoder, Incoming, Part, Parts};
}

/// permessage-deflate: negotiation (both roles) and the per-message codec.
pub mod deflate {
    pub use crate::proto::deflate::{
        CLIENT_OFFER, Deflater, Inflater, Params, ServerSettings, check_response, negotiate,
    };
}

/// Messages and control frames to bytes.
pub mod encoder {
    pub use crate::proto::encoder::{Encoder, EncoderConfig};
}

/// Frame opcodes.
pub mod frame {
    pub use crate::proto::frame::OpCode;
}

/// The opening handshake: the server's half (request checks, the 101) and the client's
/// (response parsing and checks).
pub mod handshake {
    pub use crate::proto::handshake::head::MAX_HEADERS;
    pub use crate::proto::handshake::key::accept_key;
    pub use crate::proto::handshake::{
        ClientHello, MAX_HEADER_BYTES, OriginPolicy, Policy, accept, check_response, encode_accept,
        normalize_origin, parse_request, parse_response,
    };
}

/// Who the client is behind a proxy: PROXY headers and forwarded headers.
pub mod forwarded {
    pub use crate::proto::forwarded::{
        ForwardedHeader, Length, MAX_PROXY_HEADER, Trusted, client_from_headers, header_length,
        parse_header,
    };
}

/// A header as a request carries it (its value as bytes, as a peer may send).
pub fn header(name: &str, value: &[u8]) -> crate::Header {
    crate::Header::new(name, value.to_vec())
}

/// Where a redirected upgrade goes next, and with which headers.
pub mod redirect {
    pub use crate::proto::redirect::{follow, is_redirect};
}

/// Proxy handshakes: the `CONNECT` answer and SOCKS5's.
pub mod tunnel {
    pub use crate::proto::tunnel::{
        Method, Reply, parse_auth_answer, parse_connect_answer, parse_method, parse_reply,
    };
}

/// Incremental UTF-8 validation.
pub mod utf8 {
    pub use crate::proto::utf8::Validator;
}

/// The environment's proxy rules (`src/proxy/env.rs`).
pub mod proxy {
    use super::{Debug, Error, Proxy};

    pub use crate::proxy::env::is_loopback;

    /// `Proxy::from_env` with `lookup` as the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Proxy {
        Proxy::from_lookup(lookup)
    }

    /// The proxy `proxy` routes `host:port` through (`None`: directly).
    pub fn route<'a>(
        proxy: &'a Proxy,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Option<impl Debug + use<'a>>, Error> {
        proxy.route(host, port, tls)
    }
}

/// A response with `status` and one `Location` header holding `location` as it came (any
/// bytes), as `redirect::follow` reads it.
pub fn redirect_response(status: u16, location: &[u8]) -> Response {
    Response {
        status,
        headers: vec![Header::new("Location", location.to_vec())],
        ..Response::default()
    }
}
