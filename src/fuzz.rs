//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API).
//!
//! Each function drives one piece of the pure protocol layer with arbitrary bytes and panics
//! only when an invariant is broken, so a fuzzer's crash is always a bug. The layout of each
//! target's input (which leading bytes pick a role, a limit, a chunking) is documented on its
//! function and in `docs/fuzzing.md`; `fuzz/make_seeds.py` writes seeds in that layout.

use std::fmt::Debug;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::Error;
use crate::message::Message;
use crate::proto::Role;
use crate::proto::close::{self, CloseFrame};
use crate::proto::decoder::{Decoder, Incoming};
use crate::proto::deflate::{self, Deflater, Inflater, Params, ServerSettings};
use crate::proto::encoder::{Encoder, EncoderConfig};
use crate::proto::frame::OpCode;
use crate::proto::handshake;
use crate::proto::utf8::Validator;
use crate::response::Response;

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3, which the handshake targets check responses
/// against. Its accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The largest `max_message_size` the decoder target picks (1 MiB): bounds the work and memory
/// of one input, decompression bombs included.
pub const MAX_MESSAGE_SIZE: u64 = 1 << 20;

/// Inputs up to this length are checked at every split point; longer ones at a sample.
const ALL_SPLITS_UP_TO: usize = 128;

/// Takes fixed-size choices off the front of a fuzz input; missing bytes read as zero.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// splitmix64: deterministic pseudo-random choices seeded from the input, so a crash replays.
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8]) -> Rng {
        let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ seed.len() as u64;
        for &b in seed.iter().take(64) {
            s = s.rotate_left(8) ^ u64::from(b);
        }
        Rng(s)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Read sizes that add up to `len`, each 1 to `max` bytes.
fn chunk_sizes(len: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = (rng.below(max.max(1)) + 1).min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// The cut points checked for an input of `len` bytes: all of them for short inputs, else a
/// sample plus the `extra` points (around where a parse ended).
fn cut_points(len: usize, rng: &mut Rng, extra: &[usize]) -> Vec<usize> {
    if len <= ALL_SPLITS_UP_TO {
        return (0..=len).collect();
    }
    let mut cuts: Vec<usize> = (0..32).map(|_| rng.below(len + 1)).collect();
    cuts.extend(extra.iter().copied().filter(|&c| c <= len));
    cuts
}

// ---------------------------------------------------------------------------------------------
// decoder

/// What one decoding of a byte stream produced: every event in order, and the close code the
/// connection failed with (`None`: no error, the input was good as far as it went).
#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Incoming>,
    failed: Option<u16>,
}

/// Checks what the decoder may hand the driver at all.
fn check_event(event: &Incoming, max_message_size: u64) {
    match event {
        Incoming::Message(m) => {
            assert!(
                m.len() as u64 <= max_message_size,
                "message of {} bytes passed max_message_size {max_message_size}",
                m.len()
            );
            if let Message::Text(s) = m {
                assert!(std::str::from_utf8(s.as_bytes()).is_ok());
            }
        }
        Incoming::Ping(p) | Incoming::Pong(p) => {
            assert!(p.len() <= 125, "control payload of {} bytes", p.len());
        }
        Incoming::Close(CloseFrame { code, reason }) => {
            assert!(code.is_none_or(close::is_valid_code), "close code {code:?}");
            assert!(code.is_some() || reason.is_empty());
            assert!(reason.len() <= close::MAX_REASON_BYTES);
        }
    }
}

/// Feeds `input` to a fresh decoder as the reader thread does: one read of each size in
/// `reads`, each decoded in a loop that consumes what `decode` says it used, stopping at the
/// first error.
fn decode_reads(
    role: Role,
    max_message_size: u64,
    inflater: Option<Inflater>,
    input: &[u8],
    reads: &[usize],
) -> Run {
    let mut decoder = Decoder::new(role, max_message_size, inflater);
    let mut run = Run {
        events: Vec::new(),
        failed: None,
    };
    let mut start = 0;
    for &size in reads {
        let buf = &input[start..start + size];
        start += size;
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let (used, event) = match decoder.decode(rest) {
                Ok(r) => r,
                Err(e) => {
                    // The decoder is not used after an error, as in the driver.
                    run.failed = Some(e.close_code().unwrap_or(1011));
                    return run;
                }
            };
            assert!(used <= rest.len(), "used {used} of {} bytes", rest.len());
            assert!(used > 0, "no progress on {} bytes", rest.len());
            match event {
                // It asks for more only once it has used up what it was given.
                None => assert_eq!(used, rest.len(), "no event, yet input left over"),
                Some(event) => {
                    check_event(&event, max_message_size);
                    run.events.push(event);
                }
            }
            pos += used;
        }
    }
    run
}

/// The receiving side's inflater, from a real negotiation: a client reads what a server
/// accepted (`check_response`), a server what it agreed to (`negotiate`).
fn negotiated_inflater(role: Role, peer_no_context_takeover: bool) -> Inflater {
    let params = match role {
        Role::Client => {
            let header = if peer_no_context_takeover {
                "permessage-deflate; server_no_context_takeover"
            } else {
                "permessage-deflate"
            };
            deflate::check_response(&[header], true)
                .expect("a plain permessage-deflate response is accepted")
                .expect("the extension is in use")
        }
        Role::Server => {
            let settings = ServerSettings {
                client_no_context_takeover: peer_no_context_takeover,
                ..ServerSettings::default()
            };
            deflate::negotiate(&[deflate::CLIENT_OFFER], &settings)
                .expect("the client's own offer is accepted")
                .0
        }
    };
    Inflater::new(&params)
}

/// The frame decoder on arbitrary bytes.
///
/// Input: byte 0 = flags (bit 0: server role, else client; bit 1: permessage-deflate
/// negotiated; bit 2: the peer resets its compressor per message; bits 3-4: largest read,
/// 1 / 7 / 64 / 1024 bytes), bytes 1-2 = `max_message_size` / 16 (big-endian), byte 3 = seed of
/// the read sizes, the rest = the bytes on the wire.
///
/// Checks that decoding never panics; that each call uses at most what it was given, always
/// makes progress, and returns without an event only after using all of it; that messages stay
/// within `max_message_size`, control payloads within 125 bytes and close frames carry valid
/// codes; and that the input read whole and read in random-sized pieces gives the same events
/// and fails (or not) with the same close code.
pub fn decoder(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let max_message_size = (u64::from(b.u16()) << 4).min(MAX_MESSAGE_SIZE);
    let seed = b.u8();
    let wire = b.rest();
    let role = if flags & 1 != 0 {
        Role::Server
    } else {
        Role::Client
    };
    let deflate = flags & 2 != 0;
    let peer_nct = flags & 4 != 0;
    let max_read = [1, 7, 64, 1024][usize::from((flags >> 3) & 3)];
    let inflater = || deflate.then(|| negotiated_inflater(role, peer_nct));

    let whole = decode_reads(role, max_message_size, inflater(), wire, &[wire.len()]);
    let mut rng = Rng::new(&[seed, flags]);
    let reads = chunk_sizes(wire.len(), max_read, &mut rng);
    let pieces = decode_reads(role, max_message_size, inflater(), wire, &reads);
    if deflate {
        // Compressed text is validated as each read inflates, so which fault a broken
        // compressed message meets first (bad data 1002, bad text 1007, too large 1009) can
        // depend on where reads end (docs/fuzzing.md, "Findings"); that it fails cannot.
        assert_eq!(
            whole.events, pieces.events,
            "read whole vs in pieces {reads:?}"
        );
        assert_eq!(
            whole.failed.is_some(),
            pieces.failed.is_some(),
            "read whole ({:?}) vs in pieces {reads:?} ({:?})",
            whole.failed,
            pieces.failed
        );
    } else {
        assert_eq!(whole, pieces, "read whole vs in pieces {reads:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// roundtrip

/// Negotiates permessage-deflate from both ends: the client's offer goes through `negotiate`,
/// the server's answer through `check_response`. Returns (server params, client params).
fn negotiate_both(offer: &str, settings: &ServerSettings) -> (Params, Params) {
    let (server, header) = deflate::negotiate(&[offer], settings)
        .unwrap_or_else(|| panic!("offer {offer:?} declined by {settings:?}"));
    let client = deflate::check_response(&[&header], true)
        .unwrap_or_else(|e| panic!("server's answer {header:?} to {offer:?} refused: {e}"))
        .expect("the answer accepts the extension");
    (server, client)
}

/// A well-formed permessage-deflate offer with the parameters `bits` selects.
fn offer(bits: u8, server_window: u8) -> String {
    let mut offer = String::from("permessage-deflate");
    if bits & 1 != 0 {
        offer.push_str("; client_max_window_bits");
    }
    if bits & 2 != 0 {
        offer.push_str(&format!("; server_max_window_bits={server_window}"));
    }
    if bits & 4 != 0 {
        offer.push_str("; client_no_context_takeover");
    }
    if bits & 8 != 0 {
        offer.push_str("; server_no_context_takeover");
    }
    offer
}

/// The longest prefix of `s` that fits in `max` bytes and ends on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The encoder's output fed to the decoder of the other role.
///
/// Input: byte 0 = flags (bit 0: the client sends, else the server; bit 1: permessage-deflate;
/// bits 2-3: the server's server_ / client_no_context_takeover settings; bits 4-7: which
/// parameters the client offers: client_max_window_bits, server_max_window_bits,
/// client_no_context_takeover, server_no_context_takeover), byte 1 = the server's window limits
/// (low nibble: server, high nibble: client, each 8 + n mod 8), byte 2 = the offered
/// server_max_window_bits (8 + n mod 8), bytes 3-4 = fragment size - 1 (mod 4096), byte 5 =
/// `min_compress_size`, byte 6 = compression level (mod 10), byte 7 = seed of the read sizes;
/// then messages, each one op byte (mod 8: text, binary, ping, pong, close, or text / binary /
/// binary with a ping between its first two fragments), a 2-byte length (mod 4096) and that many
/// bytes (text is made valid with `from_utf8_lossy`).
///
/// Checks that the decoder reads back exactly what was encoded, in order, without an error,
/// with and without compression, whatever the fragment size and however the bytes arrive.
pub fn roundtrip(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let windows = b.u8();
    let offered_window = 8 + b.u8() % 8;
    let fragment_size = 1 + usize::from(b.u16()) % 4096;
    let min_compress_size = usize::from(b.u8());
    let compression_level = u32::from(b.u8() % 10);
    let seed = b.u8();
    let (sender, receiver) = if flags & 1 != 0 {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    };
    let settings = ServerSettings {
        enabled: true,
        server_no_context_takeover: flags & 4 != 0,
        client_no_context_takeover: flags & 8 != 0,
        server_max_window_bits: 8 + (windows & 7),
        client_max_window_bits: 8 + ((windows >> 4) & 7),
    };
    let params = (flags & 2 != 0).then(|| {
        let (server, client) = negotiate_both(&offer(flags >> 4, offered_window), &settings);
        match sender {
            Role::Server => (server, client),
            Role::Client => (client, server),
        }
    });
    let config = EncoderConfig {
        min_compress_size,
        fragment_size,
        compression_level,
    };
    let mut encoder = Encoder::new(sender, params.as_ref().map(|p| &p.0), config);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    while !b.0.is_empty() {
        let op = b.u8() % 8;
        let len = usize::from(b.u16()) % 4096;
        let body = b.take(len);
        let text = || String::from_utf8_lossy(body).into_owned();
        match op {
            0 | 5 => expected.push(Incoming::Message(Message::Text(text()))),
            2 => expected.push(Incoming::Ping(body[..body.len().min(125)].to_vec())),
            3 => expected.push(Incoming::Pong(body[..body.len().min(125)].to_vec())),
            4 => {
                let frame = if body.len() < 2 {
                    CloseFrame {
                        code: None,
                        reason: String::new(),
                    }
                } else {
                    let code = u16::from_be_bytes([body[0], body[1]]);
                    let reason = String::from_utf8_lossy(&body[2..]);
                    CloseFrame {
                        code: Some(if close::is_valid_code(code) {
                            code
                        } else {
                            1000
                        }),
                        reason: truncate_str(&reason, close::MAX_REASON_BYTES).to_owned(),
                    }
                };
                expected.push(Incoming::Close(frame));
            }
            _ => expected.push(Incoming::Message(Message::Binary(body.to_vec()))),
        }
        match expected.last() {
            Some(Incoming::Message(m)) if op >= 5 => {
                // A ping slipped between the first two fragments, as the writer does.
                encoder.start(m.clone()).expect("compress");
                let done = encoder.next_fragment(&mut wire);
                encoder.control(&mut wire, OpCode::Ping, b"between");
                let ping = Incoming::Ping(b"between".to_vec());
                if done.is_none() {
                    while encoder.next_fragment(&mut wire).is_none() {}
                    let at = expected.len() - 1;
                    expected.insert(at, ping);
                } else {
                    expected.push(ping);
                }
            }
            Some(Incoming::Message(m)) => encoder.message(&mut wire, m.clone()).expect("encode"),
            Some(Incoming::Ping(p)) => encoder.control(&mut wire, OpCode::Ping, p),
            Some(Incoming::Pong(p)) => encoder.control(&mut wire, OpCode::Pong, p),
            Some(Incoming::Close(f)) => encoder.close(&mut wire, f.code, &f.reason),
            None => unreachable!(),
        }
    }
    let inflater = params.as_ref().map(|p| Inflater::new(&p.1));
    let mut rng = Rng::new(&[seed, flags]);
    let max_read = [1, 3, 100, 4096][usize::from(seed & 3)];
    let reads = chunk_sizes(wire.len(), max_read, &mut rng);
    let run = decode_reads(receiver, MAX_MESSAGE_SIZE, inflater, &wire, &reads);
    assert_eq!(run.failed, None, "decoding the encoder's output failed");
    assert_eq!(run.events, expected, "params {params:?}, {config:?}");
}

// ---------------------------------------------------------------------------------------------
// handshake_request, handshake_response

/// Checks that parsing a prefix (`cut` bytes) of a head agrees with parsing all of it:
/// a head complete in the prefix is the same head, a prefix short of a complete head asks for
/// more, and an error in the prefix is the same error in the whole. Results are compared as
/// their `Debug` text (the parsed types do not implement `PartialEq`); `whole_text` is the
/// whole input's.
fn prefix_agrees<T: Debug, E: Debug>(
    whole: &Result<Option<(T, usize)>, E>,
    whole_text: &str,
    part: &Result<Option<(T, usize)>, E>,
    cut: usize,
) {
    match (whole, part) {
        (_, Ok(Some((_, n)))) => {
            assert!(*n <= cut, "head of {n} bytes in a prefix of {cut}");
            assert_eq!(whole_text, format!("{part:?}"), "prefix of {cut}");
        }
        (Ok(Some((_, n))), Ok(None)) => {
            assert!(
                *n > cut,
                "head of {n} bytes incomplete in a prefix of {cut}"
            );
        }
        (_, Ok(None)) => {}
        (Err(_), Err(_)) => assert_eq!(whole_text, format!("{part:?}"), "prefix of {cut}"),
        (Ok(_), Err(e)) => panic!("prefix of {cut} fails with {e:?}, the whole gives {whole:?}"),
    }
}

/// Every prefix check for one head parser; returns the whole input's parse.
fn check_prefixes<T: Debug, E: Debug>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<Option<(T, usize)>, E> {
    let whole = parse(data);
    let whole_text = format!("{whole:?}");
    let extra = match &whole {
        Ok(Some((_, n))) => vec![n.saturating_sub(1), *n, n + 1],
        _ => Vec::new(),
    };
    let mut rng = Rng::new(data);
    for cut in cut_points(data.len(), &mut rng, &extra) {
        // Past MAX_HEADER_BYTES an incomplete head is refused as too large while a complete
        // one is not looked at: that cap applies to what is still to come.
        if cut <= handshake::MAX_HEADER_BYTES {
            prefix_agrees(&whole, &whole_text, &parse(&data[..cut]), cut);
        }
    }
    whole
}

/// The server's parse of an upgrade request, on arbitrary bytes, under the default policy
/// (`ws`, any origin, permessage-deflate on).
///
/// Checks that it never panics; that a prefix of the input parses consistently with the whole
/// (`Ok(None)` until the head is complete, then the same request; errors are the same error);
/// that an accepted request carries a 16-byte key; and that the 101 the server builds for it
/// (with its first subprotocol, and the deflate answer it decided) passes the client's
/// `check_response` for that key, with the same subprotocol and mirrored deflate parameters.
pub fn handshake_request(data: &[u8]) {
    let policy = handshake::Policy::default();
    let whole = check_prefixes(data, |head| handshake::parse_request(head, &policy));
    let Ok(Some((hello, n))) = whole else {
        return;
    };
    assert!(n > 0 && n <= data.len());
    check_accept(&hello);
}

/// The 101 the server builds for an accepted request passes the client's checks.
fn check_accept(hello: &handshake::ClientHello) {
    let key = &hello.terms.key;
    assert_eq!(BASE64.decode(key.as_bytes()).map(|k| k.len()), Ok(16));
    assert!(hello.protocols.iter().all(|p| !p.is_empty()));
    let protocol = hello.protocols.first().cloned();
    let accepted = handshake::accept(&hello.terms, &hello.protocols, protocol.clone(), &[]);
    let (mut response, len) = handshake::parse_response(&accepted.response)
        .expect("our own 101 parses")
        .expect("our own 101 is complete");
    assert_eq!(len, accepted.response.len());
    let compression = accepted.deflate.is_some();
    let client = handshake::check_response(&mut response, key, &hello.protocols, compression)
        .unwrap_or_else(|e| panic!("our own 101 for {hello:?} refused: {e}"));
    assert_eq!(response.subprotocol, protocol);
    match (accepted.deflate, client) {
        (None, None) => {}
        (Some(server), Some(client)) => {
            assert_eq!(
                client.send_no_context_takeover,
                server.recv_no_context_takeover
            );
            assert_eq!(
                client.recv_no_context_takeover,
                server.send_no_context_takeover
            );
        }
        (server, client) => panic!("deflate: server {server:?}, client {client:?}"),
    }
}

/// The allow-list the `server_request` target uses when its input turns one on.
pub const ALLOWED_ORIGINS: [&str; 2] = ["http://example.com", "https://app.example:8443"];

/// The server's whole decision on an upgrade request (`Host`, request target, `Origin`,
/// deflate), on arbitrary bytes.
///
/// Input: byte 0 = the policy (bit 0: TLS, so `wss`; bit 1: an `Origin` allow-list,
/// [`ALLOWED_ORIGINS`]; bit 2: `Origin` required; bit 3: permessage-deflate off), the rest =
/// the request head.
///
/// Checks that it never panics; prefixes parse consistently with the whole, as for
/// `handshake_request`; a refusal is one of 400, 403 (only with an origin policy), 405, 426,
/// 431, 505; and an accepted request has exactly one `Host` header, a `ws`/`wss` URL (by the
/// policy) whose host and port are the `Host` header's (case aside, the scheme's default port
/// when none is written), whose path starts with `/`, and whose path and query are the
/// request target's once percent-decoded; its `Origin` is one the policy allows; the default
/// policy accepts it too, with the same URL; and the 101 built for it passes the client's
/// checks.
pub fn server_request(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let head = b.rest();
    let tls = flags & 1 != 0;
    let policy = handshake::Policy {
        tls,
        origins: handshake::OriginPolicy {
            allowed: (flags & 2 != 0).then(|| ALLOWED_ORIGINS.map(String::from).to_vec()),
            required: flags & 4 != 0,
        },
        deflate: ServerSettings {
            enabled: flags & 8 == 0,
            ..ServerSettings::default()
        },
    };
    let whole = check_prefixes(head, |h| handshake::parse_request(h, &policy));
    let (hello, n) = match whole {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return,
        Err(r) => {
            let origin_policy = policy.origins.allowed.is_some() || policy.origins.required;
            assert!(
                matches!(r.status, 400 | 405 | 426 | 431 | 505)
                    || (r.status == 403 && origin_policy),
                "refused with {r:?}"
            );
            return;
        }
    };
    assert!(n > 0 && n <= head.len());
    let url = &hello.url;
    assert_eq!(url.scheme(), if tls { "wss" } else { "ws" });

    // Host: exactly one, and the URL's host and port are its own.
    let hosts: Vec<&[u8]> = crate::header::bytes(&hello.headers, "Host").collect();
    let [host] = hosts[..] else {
        panic!("accepted with {} Host headers", hosts.len());
    };
    let host = std::str::from_utf8(host)
        .expect("an accepted Host is UTF-8")
        .trim();
    let (host_name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (literal, rest) = v6.split_once(']').expect("a closed IPv6 literal");
            (literal, rest.strip_prefix(':'))
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let url_host = url.host_str().expect("a URL with a host");
    match url_host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => assert_eq!(
            v6.parse::<std::net::Ipv6Addr>().ok(),
            host_name.parse().ok(),
            "{url} for Host {host:?}"
        ),
        None => assert!(
            url_host.eq_ignore_ascii_case(host_name),
            "{url} for Host {host:?}"
        ),
    }
    let default_port = if tls { 443 } else { 80 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse().expect("an accepted port is a number"),
    };
    assert_eq!(
        url.port_or_known_default(),
        Some(port),
        "{url} for Host {host:?}"
    );

    // The path and query are the target's.
    let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    let target = request.path.expect("an accepted request has a target");
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        let (_, rest) = target.split_once("://").expect("an absolute-form target");
        &rest[rest.find(['/', '?']).unwrap_or(rest.len())..]
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let decoded = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    assert!(url.path().starts_with('/'), "{url}");
    assert_eq!(decoded(url.path()), decoded(path), "{url} for {target:?}");
    assert_eq!(
        url.query().map(decoded),
        query.map(decoded),
        "{url} for {target:?}"
    );

    // Origin: as the policy says.
    let origins: Vec<&[u8]> = crate::header::bytes(&hello.headers, "Origin").collect();
    if policy.origins.required {
        assert!(!origins.is_empty(), "accepted without Origin");
    }
    if let (Some(allowed), false) = (&policy.origins.allowed, origins.is_empty()) {
        let [origin] = origins[..] else {
            panic!("accepted with {} Origin headers", origins.len());
        };
        let origin = std::str::from_utf8(origin).expect("an allowed Origin is UTF-8");
        let normalized = handshake::normalize_origin(origin.trim());
        assert!(
            normalized.is_some_and(|o| allowed.contains(&o)),
            "Origin {origin:?} accepted"
        );
    }

    // A stricter policy only refuses more: the default one gives the same URL.
    let open = handshake::Policy {
        tls,
        ..handshake::Policy::default()
    };
    match handshake::parse_request(head, &open) {
        Ok(Some((same, _))) => assert_eq!(&same.url, url),
        other => panic!("the default policy gives {other:?}"),
    }
    check_accept(&hello);
}

/// The client's parse and check of the server's answer, on arbitrary bytes.
///
/// Input: byte 0 = flags (bit 0: compression was offered; bits 1-2: the subprotocols offered,
/// none / `chat` / `chat, superchat` / `a, b, c`), the rest = the response bytes, checked
/// against [`KEY`].
///
/// Checks that it never panics; prefixes parse consistently with the whole, as for requests;
/// and a response that `check_response` accepts is a 101 whose `Upgrade` list has `websocket`, a
/// `Connection` header, the right accept value, an offered subprotocol at most, and
/// permessage-deflate only if offered, with the same parameters `deflate::check_response`
/// reads from its headers.
pub fn handshake_response(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let bytes = b.rest();
    let compression_offered = flags & 1 != 0;
    let offered: Vec<String> = match (flags >> 1) & 3 {
        0 => vec![],
        1 => vec!["chat".into()],
        2 => vec!["chat".into(), "superchat".into()],
        _ => vec!["a".into(), "b".into(), "c".into()],
    };
    let whole = check_prefixes(bytes, handshake::parse_response);
    let Ok(Some((mut response, n))) = whole else {
        return;
    };
    assert!(n > 0 && n <= bytes.len());
    let before: Response = response.clone();
    let Ok(params) = handshake::check_response(&mut response, KEY, &offered, compression_offered)
    else {
        assert_eq!(
            response.subprotocol, None,
            "a refused response picked a subprotocol"
        );
        return;
    };
    assert_eq!(response.status, 101);
    let upgrade = crate::header::values(&response.headers, "Upgrade")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"));
    assert!(upgrade, "accepted without websocket in Upgrade");
    assert!(response.header("Connection").is_some());
    assert_eq!(
        response.header("Sec-WebSocket-Accept").map(str::trim),
        Some(handshake::accept_key(KEY).as_str())
    );
    if let Some(p) = &response.subprotocol {
        assert!(offered.contains(p), "subprotocol {p:?} not offered");
    }
    assert!(params.is_none() || compression_offered);
    let values: Vec<&str> =
        crate::header::values(&response.headers, "Sec-WebSocket-Extensions").collect();
    assert_eq!(
        deflate::check_response(&values, compression_offered),
        Ok(params)
    );
    // The check is a pure function of the response.
    let mut again = before;
    let second = handshake::check_response(&mut again, KEY, &offered, compression_offered);
    assert_eq!(second.ok(), Some(params));
    assert_eq!(again.subprotocol, response.subprotocol);
}

// ---------------------------------------------------------------------------------------------
// extensions

/// Compresses two messages with `send`'s parameters and inflates them with `recv`'s.
fn codec_round_trip(send: &Params, recv: &Params, level: u32, payload: &[u8], cut: usize) {
    let Some(mut deflater) = Deflater::new(send, level) else {
        assert_eq!(send.send_max_window_bits, 8, "no deflater for {send:?}");
        return;
    };
    let mut inflater = Inflater::new(recv);
    let reversed: Vec<u8> = payload.iter().rev().copied().collect();
    for message in [payload, &reversed[..], payload, &[][..]] {
        let mut compressed = Vec::new();
        deflater
            .compress(message, &mut compressed)
            .expect("deflate");
        let cut = cut.min(compressed.len());
        let mut out = Vec::new();
        let limit = MAX_MESSAGE_SIZE;
        inflater
            .inflate(&compressed[..cut], &mut out, limit)
            .and_then(|()| inflater.inflate(&compressed[cut..], &mut out, limit))
            .and_then(|()| inflater.finish(&mut out, limit))
            .unwrap_or_else(|e| panic!("inflating our own output ({send:?} -> {recv:?}): {e}"));
        assert_eq!(out, message, "{send:?} -> {recv:?}, level {level}");
    }
}

/// permessage-deflate negotiation on arbitrary `Sec-WebSocket-Extensions` values.
///
/// Input: byte 0 = the server's settings (bit 0: enabled; bit 1: server_no_context_takeover;
/// bit 2: client_no_context_takeover), byte 1 = its window limits (low nibble: server, high:
/// client, each 8 + n mod 8), byte 2 = compression level (mod 10), byte 3 = where compressed data
/// is cut in two; then the header values, one per line (`\n`), up to a 0 byte; after it the
/// payload for the codec check.
///
/// Checks that neither side panics; the client accepts nothing it did not offer; whatever
/// `negotiate` answers, the client's `check_response` accepts (also with its values quoted, and
/// carried through a real 101 response and the handshake check), with parameters that mirror the server's and respect its
/// settings; and a Deflater / Inflater pair built from the two sides' parameters round-trips
/// messages both ways.
pub fn extensions(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let windows = b.u8();
    let level = u32::from(b.u8() % 10);
    let cut = usize::from(b.u8());
    let rest = b.rest();
    let (header, payload) = match rest.iter().position(|&c| c == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let values: Vec<&str> = header.split('\n').collect();

    // Client role on arbitrary answers.
    let offered = deflate::check_response(&values, true);
    if let Ok(Some(p)) = &offered {
        assert!((8..=15).contains(&p.send_max_window_bits), "{p:?}");
        assert!(deflate::check_response(&values, false).is_err());
    }
    if let Ok(r) = deflate::check_response(&values, false) {
        assert_eq!(r, None, "accepted an extension that was not offered");
    }

    // Server role on arbitrary offers.
    let settings = ServerSettings {
        enabled: flags & 1 != 0,
        server_no_context_takeover: flags & 2 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: 8 + (windows & 7),
        client_max_window_bits: 8 + ((windows >> 4) & 7),
    };
    let Some((server, answer)) = deflate::negotiate(&values, &settings) else {
        return;
    };
    assert!(settings.enabled, "negotiated while disabled");
    assert!((8..=settings.server_max_window_bits).contains(&server.send_max_window_bits));
    assert!(server.send_no_context_takeover || !settings.server_no_context_takeover);
    assert!(server.recv_no_context_takeover || !settings.client_no_context_takeover);
    let client = deflate::check_response(&[&answer], true)
        .unwrap_or_else(|e| panic!("answer {answer:?} refused: {e}"))
        .expect("the answer accepts the extension");
    assert_eq!(
        client.send_no_context_takeover,
        server.recv_no_context_takeover
    );
    assert_eq!(
        client.recv_no_context_takeover,
        server.send_no_context_takeover
    );
    // A token and the same token as a quoted-string are one value (RFC 7230 §3.2.6).
    let quoted: Vec<String> = answer
        .split("; ")
        .map(|part| match part.split_once('=') {
            Some((name, value)) => format!("{name}=\"{value}\""),
            None => part.to_owned(),
        })
        .collect();
    let quoted = quoted.join("; ");
    assert_eq!(
        deflate::check_response(&[&quoted], true),
        Ok(Some(client)),
        "{quoted}"
    );
    let bits = client.send_max_window_bits;
    assert!(
        bits == 15 || bits <= settings.client_max_window_bits,
        "{bits}"
    );

    // The same answer inside a real 101 response.
    let accept = handshake::encode_accept(KEY, None, Some(&answer), &[]);
    let (mut response, n) = handshake::parse_response(&accept)
        .expect("our own 101 parses")
        .expect("our own 101 is complete");
    assert_eq!(n, accept.len());
    let through_http = handshake::check_response(&mut response, KEY, &[], true)
        .unwrap_or_else(|e| panic!("101 with {answer:?} refused: {e}"));
    assert_eq!(through_http, Some(client));

    codec_round_trip(&server, &client, level, payload, cut);
    codec_round_trip(&client, &server, level, payload, cut);
}

// ---------------------------------------------------------------------------------------------
// utf8

/// Whether `bytes` can still become valid UTF-8: valid, or cut inside a character.
fn valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Feeds `data` to a fresh validator in pieces ending at each of `ends` (growing the buffer),
/// then finishes; checks each step against `std::str::from_utf8`.
fn validate_in_pieces(data: &[u8], ends: &[usize]) {
    let mut v = Validator::default();
    for &end in ends {
        let r = v.feed(&data[..end]);
        assert_eq!(r.is_ok(), valid_prefix(&data[..end]), "feed up to {end}");
        if r.is_err() {
            assert!(std::str::from_utf8(data).is_err());
            return;
        }
    }
    let end = ends.last().copied().unwrap_or(0);
    assert_eq!(
        v.finish(&data[..end]).is_ok(),
        std::str::from_utf8(&data[..end]).is_ok(),
        "finish at {end}"
    );
}

/// The incremental UTF-8 validator against `std::str::from_utf8`.
///
/// Checks, for the input fed in two pieces at every split point, byte by byte, and in
/// random-sized pieces: each `feed` fails exactly when the bytes so far can no longer become
/// valid UTF-8 (fail fast, an incomplete trailing character is fine), and `finish` after the
/// last piece agrees with `from_utf8` on the whole.
pub fn utf8(data: &[u8]) {
    let n = data.len();
    for cut in 0..=n {
        validate_in_pieces(data, &[cut, n]);
    }
    let bytewise: Vec<usize> = (1..=n).collect();
    validate_in_pieces(data, &bytewise);
    let mut ends = Vec::new();
    let mut end = 0;
    for size in chunk_sizes(n, 16, &mut Rng::new(data)) {
        end += size;
        ends.push(end);
    }
    validate_in_pieces(data, &ends);
    validate_in_pieces(data, &[n, n]);
}

// ---------------------------------------------------------------------------------------------
// close

/// Close payload parsing on arbitrary bytes.
///
/// Checks that `parse` never panics and fails with the right close code (1002 for a 1-byte
/// payload or a bad code, 1007 for a reason that is not UTF-8); that whatever it accepts,
/// `payload(code, reason)` turns back into the same bytes; and that `validate` accepts a code
/// exactly when `parse` does.
pub fn close(data: &[u8]) {
    let parsed = close::parse(data);
    match &parsed {
        Ok(frame) => {
            assert_eq!(frame.code.is_none(), data.is_empty());
            assert_eq!(close::payload(frame.code, &frame.reason), data);
            if let Some(code) = frame.code {
                assert!(close::is_valid_code(code));
                let v = close::validate(code, &frame.reason);
                if frame.reason.len() <= close::MAX_REASON_BYTES {
                    assert!(v.is_ok(), "{v:?}");
                } else {
                    assert!(matches!(v, Err(Error::ReasonTooLong(n)) if n == frame.reason.len()));
                }
            }
        }
        Err(Error::Protocol(_)) => {
            let bad_code = data.len() >= 2 && {
                let code = u16::from_be_bytes([data[0], data[1]]);
                !close::is_valid_code(code)
            };
            assert!(data.len() == 1 || bad_code, "1002 for {data:?}");
        }
        Err(Error::InvalidUtf8) => {
            assert!(data.len() >= 2 && std::str::from_utf8(&data[2..]).is_err());
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
    if let Err(e) = &parsed {
        assert!(matches!(e.close_code(), Some(1002 | 1007)));
    }
    // `validate` and `parse` agree on every code: the code taken from the input's first two
    // bytes (or one byte, widened), with an empty and a valid reason.
    let code = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        [a] => u16::from(*a),
        [] => 1000,
    };
    for reason in ["", "bye"] {
        let by_parse = close::parse(&close::payload(Some(code), reason)).is_ok();
        let by_validate = close::validate(code, reason).is_ok();
        assert_eq!(by_parse, by_validate, "code {code}");
        assert!(!matches!(
            close::validate(code, reason),
            Err(Error::ReasonTooLong(_))
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// proxy

/// What a proxy sends back, and the environment's proxy rules, on arbitrary bytes: everything
/// a proxy (or whoever sets the environment) controls.
///
/// Input: byte 0 picks flags (bit 0: the target is `wss`; bit 1: password offered to SOCKS5),
/// then the rest, used whole as a proxy's answer, and also split at `\n` into four texts:
/// `http_proxy`, `https_proxy`, `no_proxy` and the target host (the port is the first two
/// bytes after the flags).
///
/// Checks that nothing panics; that the `CONNECT` answer parser agrees with itself when the
/// answer arrives in two pieces (the driver re-parses as bytes come), never claims more bytes
/// than it was given or more than the head limit, and keeps the reason printable and short;
/// that a SOCKS5 reply asks for more bytes only when it has fewer and completes at exactly the
/// length it asked for; and that a loopback target is never routed through an environment
/// proxy.
pub fn proxy(data: &[u8]) {
    use crate::proto::tunnel::{self, Reply};
    let mut input = Bytes(data);
    let flags = input.u8();
    let port = input.u16();
    let rest = input.rest();

    // CONNECT answers.
    let whole = tunnel::parse_connect_answer(rest);
    if let Ok(Some((answer, len))) = &whole {
        assert!(*len <= rest.len() && *len <= handshake::MAX_HEADER_BYTES);
        assert!(
            answer
                .reason
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        );
        assert!(answer.reason.len() <= 100);
    }
    for cut in split_points(rest.len()) {
        match tunnel::parse_connect_answer(&rest[..cut]) {
            // A complete head in a prefix is the same head in the whole.
            Ok(Some(early)) => match &whole {
                Ok(Some(w)) => assert_eq!(&early, w),
                other => panic!("a prefix held {early:?}, the whole gave {other:?}"),
            },
            Ok(None) => {}
            Err(_) => assert!(whole.is_err(), "a prefix failed but the whole did not"),
        }
    }

    // SOCKS5 answers.
    let method = tunnel::parse_method(
        [
            rest.first().copied().unwrap_or(0),
            rest.get(1).copied().unwrap_or(0),
        ],
        flags & 2 != 0,
    );
    if flags & 2 == 0 {
        assert!(!matches!(method, Ok(tunnel::Method::Password)));
    }
    let _ = tunnel::parse_auth_answer([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(0),
    ]);
    match tunnel::parse_reply(rest) {
        Ok(Reply::Need(n)) => {
            assert!(n > rest.len());
        }
        Ok(Reply::Done(n)) => {
            assert!(n <= rest.len());
            assert!(matches!(tunnel::parse_reply(&rest[..n]), Ok(Reply::Done(m)) if m == n));
            for cut in 0..n {
                assert!(matches!(tunnel::parse_reply(&rest[..cut]), Ok(Reply::Need(m)) if m > cut));
            }
        }
        Err(_) => {}
    }

    // The environment's rules.
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\n');
    let (http, https, no_proxy) = (parts.next(), parts.next(), parts.next());
    let host = parts.next().unwrap_or("localhost");
    let env = crate::proxy::Proxy::from_lookup(|name| match name {
        "http_proxy" => http.map(str::to_owned),
        "https_proxy" => https.map(str::to_owned),
        "no_proxy" => no_proxy.map(str::to_owned),
        _ => None,
    });
    let routed = env.route(host, port, flags & 1 != 0);
    if crate::proxy::is_loopback(host) {
        assert!(
            matches!(routed, Ok(None)),
            "loopback {host:?} routed: {routed:?}"
        );
    }
    let _ = (env.to_string(), format!("{env:?}"));
}

/// The split points tried for inputs that arrive in two pieces: all of them for short inputs,
/// a sample for long ones.
fn split_points(n: usize) -> Vec<usize> {
    if n <= ALL_SPLITS_UP_TO {
        (0..n).collect()
    } else {
        (0..n).step_by(n / ALL_SPLITS_UP_TO + 1).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// redirect

/// Following a redirect of the upgrade, with an arbitrary status and `Location`.
///
/// Input: byte 0 picks the current URL (`ws://a.example:8080/x?q=1` or `wss://a.example/y`),
/// bytes 1–2 the status, the rest is the `Location` value (bytes, as a server may send).
///
/// Checks that nothing panics; that only 301, 302, 303, 307 and 308 are redirects; that a
/// followed redirect goes to a `ws` or `wss` URL, never from `wss` to `ws`; and that the
/// credentials (`Authorization`, `Cookie`, `Proxy-Authorization`, a header marked sensitive)
/// go along exactly when scheme, host and port stay the same, marked as they were.
pub fn redirect(data: &[u8]) {
    use crate::header::Header;
    use crate::proto::redirect;
    let mut input = Bytes(data);
    let from = if input.u8() & 1 == 0 {
        "ws://a.example:8080/x?q=1"
    } else {
        "wss://a.example/y"
    };
    let status = input.u16() % 1000;
    let location = input.rest();
    let Ok(request) = crate::request::Request::builder(from)
        .header("Authorization", "Bearer t")
        .header("Cookie", "c=1")
        .header("Proxy-Authorization", "Basic p")
        .sensitive_header("X-Api-Key", "k")
        .header("X-Other", "o")
        .build()
    else {
        panic!("the fixed request is valid");
    };
    let response = Response {
        status,
        headers: vec![Header::new("Location", location.to_vec())],
        ..Response::default()
    };
    assert_eq!(
        redirect::is_redirect(status),
        [301, 302, 303, 307, 308].contains(&status)
    );
    let Ok(next) = redirect::follow(&request, &response) else {
        return;
    };
    let (a, b) = (request.url(), next.url());
    assert!(matches!(b.scheme(), "ws" | "wss"), "{b}");
    assert!(!(a.scheme() == "wss" && b.scheme() == "ws"), "{a} -> {b}");
    let same_origin = a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default();
    for credential in [
        "Authorization",
        "Cookie",
        "Proxy-Authorization",
        "X-Api-Key",
    ] {
        let carried = next.headers().iter().find(|h| h.name() == credential);
        assert_eq!(carried.is_some(), same_origin, "{credential}: {a} -> {b}");
        if let Some(h) = carried {
            assert_eq!(h.is_sensitive(), credential == "X-Api-Key", "{credential}");
        }
    }
    assert_eq!(next.header("X-Other"), Some("o"));
}
