//! The frame targets: `decoder` (arbitrary bytes into the decoder) and `roundtrip` (the
//! encoder's output back through the decoder of the other role).

use syncws::Message;
use syncws::fuzz::Role;
use syncws::fuzz::close::{self, CloseFrame};
use syncws::fuzz::decoder::{Decoder, Incoming, Parts};
use syncws::fuzz::deflate::{self, Inflater, Params, ServerSettings};
use syncws::fuzz::encoder::{Encoder, EncoderConfig};
use syncws::fuzz::frame::OpCode;

use crate::{Bytes, MAX_MESSAGE_SIZE, Rng, chunk_sizes};

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
        Incoming::Part(_) => panic!("a part from a decoder not set to parts"),
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
    let setup = Setup::from_flags(flags);
    let role = setup.role;
    let whole = decode_reads(
        role,
        max_message_size,
        setup.inflater(),
        wire,
        &[wire.len()],
    );
    let mut rng = Rng::new(&[seed, flags]);
    let reads = chunk_sizes(wire.len(), setup.max_read, &mut rng);
    let pieces = decode_reads(role, max_message_size, setup.inflater(), wire, &reads);
    // Compressed text is validated as each read inflates, so which fault a broken compressed
    // message meets first (bad data 1002, bad text 1007, too large 1009) can depend on where
    // reads end (docs/fuzzing.md, "Findings"); that it fails cannot.
    assert_same_outcome(&whole, &pieces, setup.deflate, || {
        format!("read whole vs in pieces {reads:?}")
    });
}

/// The decoder's settings the `decoder` and `parts` targets read from their flags byte: bit
/// 0 server role, bit 1 permessage-deflate negotiated, bit 2 the peer resets its compressor
/// per message, bits 3-4 the largest read (1 / 7 / 64 / 1024 bytes).
struct Setup {
    role: Role,
    deflate: bool,
    peer_nct: bool,
    max_read: usize,
}

impl Setup {
    fn from_flags(flags: u8) -> Setup {
        Setup {
            role: if flags & 1 != 0 {
                Role::Server
            } else {
                Role::Client
            },
            deflate: flags & 2 != 0,
            peer_nct: flags & 4 != 0,
            max_read: [1, 7, 64, 1024][usize::from((flags >> 3) & 3)],
        }
    }

    /// A fresh inflater for one decoding, when deflate is negotiated.
    fn inflater(&self) -> Option<Inflater> {
        self.deflate
            .then(|| negotiated_inflater(self.role, self.peer_nct))
    }
}

/// Two decodings of the same bytes agree: the same events and the same failure; with
/// deflate, only whether they fail (the close code can depend on where the work was cut).
fn assert_same_outcome(a: &Run, b: &Run, deflate: bool, what: impl Fn() -> String) {
    if deflate {
        assert_eq!(a.events, b.events, "{}", what());
        assert_eq!(
            a.failed.is_some(),
            b.failed.is_some(),
            "{} ({:?} vs {:?})",
            what(),
            a.failed,
            b.failed
        );
    } else {
        assert_eq!(a, b, "{}", what());
    }
}

// ---------------------------------------------------------------------------------------------
// parts

/// Slack over `part size + largest read` that one part may hold: the inflater's output still
/// in flight when a part is cut (a deflate match is at most 258 bytes) and a text part's
/// carried incomplete character.
const PART_SLACK: usize = 1024;

/// Feeds `input` to a decoder in parts mode as the reader thread does: each read decoded in a
/// loop, then, with no more input, until `has_pending` is false. Parts are joined back into
/// messages (checking their flags, their sizes and that text parts are whole characters), so
/// the run compares with a whole-message run.
fn decode_parts(
    role: Role,
    max_message_size: u64,
    parts: Parts,
    inflater: Option<Inflater>,
    input: &[u8],
    reads: &[usize],
) -> Run {
    let mut decoder = Decoder::new(role, max_message_size, inflater);
    decoder.set_parts(Some(parts));
    let max_read = reads.iter().copied().max().unwrap_or(0);
    let part_bound = parts.size + max_read + PART_SLACK;
    let mut run = Run {
        events: Vec::new(),
        failed: None,
    };
    // The message being joined: (text, bytes so far).
    let mut joining: Option<(bool, Vec<u8>)> = None;
    let mut start = 0;
    for &size in reads {
        let buf = &input[start..start + size];
        start += size;
        let mut pos = 0;
        // Rounds without input are bounded: each hands over a part or ends the pending work.
        let mut idle_rounds = 0usize;
        while pos < buf.len() || decoder.has_pending() {
            let rest = &buf[pos..];
            let (used, event) = match decoder.decode(rest) {
                Ok(r) => r,
                Err(e) => {
                    run.failed = Some(e.close_code().unwrap_or(1011));
                    return run;
                }
            };
            assert!(used <= rest.len(), "used {used} of {} bytes", rest.len());
            match &event {
                None => assert_eq!(used, rest.len(), "no event, yet input left over"),
                Some(_) if used == 0 => {
                    idle_rounds += 1;
                    assert!(
                        idle_rounds <= 1 << 20,
                        "parts without end and no input used"
                    );
                }
                Some(_) => {}
            }
            if used == 0 && event.is_none() {
                // No input and nothing pending handed over: has_pending must have been false.
                assert!(
                    !decoder.has_pending(),
                    "has_pending, yet decode gives nothing"
                );
            }
            pos += used;
            let Some(event) = event else { continue };
            match event {
                Incoming::Part(part) => {
                    assert!(
                        part.data.len() <= part_bound,
                        "part of {} bytes (part size {}, reads up to {max_read})",
                        part.data.len(),
                        parts.size
                    );
                    if part.text {
                        assert!(
                            std::str::from_utf8(&part.data).is_ok(),
                            "text part cut mid-character"
                        );
                    }
                    match &mut joining {
                        None => {
                            assert!(part.first, "a part that is not first, with no message open");
                            joining = Some((part.text, part.data));
                        }
                        Some((text, data)) => {
                            assert!(!part.first, "a first part inside a message");
                            assert_eq!(*text, part.text, "a message's parts change kind");
                            data.extend_from_slice(&part.data);
                        }
                    }
                    let joined_len = joining.as_ref().map_or(0, |(_, d)| d.len()) as u64;
                    assert!(
                        joined_len <= parts.max_message_size,
                        "parts past the streamed limit"
                    );
                    if part.last {
                        let (text, data) = joining.take().expect("joined above");
                        run.events.push(Incoming::Message(if text {
                            Message::Text(String::from_utf8(data).expect("whole characters"))
                        } else {
                            Message::Binary(data)
                        }));
                    }
                }
                Incoming::Message(m) => {
                    assert!(
                        joining.is_none(),
                        "a whole message inside a message in parts"
                    );
                    run.events.push(Incoming::Message(m));
                }
                other => {
                    check_event(&other, max_message_size);
                    run.events.push(other);
                }
            }
        }
    }
    run
}

/// The decoder handing messages over in parts, against itself handing them over whole.
///
/// Input: byte 0 = flags (as `decoder`), bytes 1-2 = `max_message_size` / 16, bytes 3-4 = the
/// part size (0 reads as 1), byte 5 = seed of the read sizes, the rest = the bytes on the wire.
/// Both decoders get the same reads and the same limit (the streamed one equal to the whole
/// one).
///
/// Checks that parts joined give exactly the messages, control frames and failure (close code
/// included) of the whole decoding; that parts come in order (first, middle, last) with
/// nothing but control frames between them, text parts on whole characters; that each part
/// stays within the part size plus one read (memory is a part, not the message); and that a
/// decoder with something pending always hands it over without more input, in bounded steps.
pub fn parts(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let max_message_size = (u64::from(b.u16()) << 4).min(MAX_MESSAGE_SIZE);
    let part_size = usize::from(b.u16()).max(1);
    let seed = b.u8();
    let wire = b.rest();
    let setup = Setup::from_flags(flags);
    let role = setup.role;
    let mut rng = Rng::new(&[seed, flags]);
    let reads = chunk_sizes(wire.len(), setup.max_read, &mut rng);

    let whole = decode_reads(role, max_message_size, setup.inflater(), wire, &reads);
    let parts = Parts {
        size: part_size,
        max_message_size,
    };
    let parted = decode_parts(
        role,
        max_message_size,
        parts,
        setup.inflater(),
        wire,
        &reads,
    );
    // Parts inflate lazily, so which fault a broken compressed message meets first can
    // differ, as between reads (see `decoder`); that it fails cannot.
    assert_same_outcome(&whole, &parted, setup.deflate, || {
        format!("whole vs in parts of {part_size}")
    });
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
            Some(Incoming::Part(_)) | None => unreachable!("only whole events are pushed"),
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
