//! The `extensions` target: permessage-deflate negotiation, both roles, and the codec the
//! two sides' parameters give.

use syncws::fuzz::deflate::{self, Deflater, Inflater, Params, ServerSettings};
use syncws::fuzz::handshake;

use crate::{Bytes, KEY, MAX_MESSAGE_SIZE};

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
