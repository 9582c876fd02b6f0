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

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::{Error, ProtocolError};
use crate::header::is_token_byte;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const NAME: &str = "permessage-deflate";
/// The client's offer: permessage-deflate, and it can compress with a smaller window if asked.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// The tail a sync flush ends with, stripped on send and restored on receive (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// Inflated output grows by at most this much per step while the limit is checked.
const INFLATE_STEP: usize = 64 * 1024;

/// Negotiated parameters, from one endpoint's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// We reset our compressor after every message.
    pub send_no_context_takeover: bool,
    /// The peer resets its compressor after every message, so we reset our inflater too.
    pub recv_no_context_takeover: bool,
    /// The largest window we may compress with.
    pub send_max_window_bits: u8,
}

/// The server role's compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// Whether the server accepts permessage-deflate at all.
    pub enabled: bool,
    /// Answer with `server_no_context_takeover` even when the offer does not ask for it: our
    /// compressor resets after every message.
    pub server_no_context_takeover: bool,
    /// Answer with `client_no_context_takeover` even when the offer does not ask for it: the
    /// client's compressor resets after every message.
    pub client_no_context_takeover: bool,
    /// The largest window (8-15) we compress with.
    pub server_max_window_bits: u8,
    /// The largest window (8-15) we ask the client to compress with, when its offer lets us.
    pub client_max_window_bits: u8,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// One extension element: its name and parameters, names lower-cased, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    params: Vec<(String, Option<String>)>,
}

/// Splits `Sec-WebSocket-Extensions` header values into elements, by the grammar of RFC 6455
/// §9.1 and RFC 9110 §5.6 (formerly RFC 7230 §3.2.6, §7):
///
/// ```text
/// list      = [ element ] *( OWS "," OWS [ element ] )    empty elements are skipped
/// element   = token *( OWS ";" OWS param )
/// param     = token [ BWS "=" BWS ( token / quoted-string ) ]
/// quoted    = DQUOTE *( qdtext / "\" any ) DQUOTE        commas and semicolons inside do not split
/// ```
///
/// A quoted value is unescaped and must then be a token (RFC 6455 §9.1). Names are
/// lower-cased. Anything else, a trailing `;` included, is an error naming what was wrong.
fn parse_elements(values: &[&str]) -> Result<Vec<Element>, String> {
    let mut out = Vec::new();
    for value in values {
        let mut p = Cursor { text: value, at: 0 };
        loop {
            p.skip_ows();
            if p.eat(b',') {
                continue; // an empty list element
            }
            if p.at_end() {
                break;
            }
            if p.peek() == Some(b';') {
                return Err(format!(
                    "extension with parameters but no name: '{}'",
                    value.trim()
                ));
            }
            let name = p.token().ok_or_else(|| p.unexpected("an extension name"))?;
            let mut params = Vec::new();
            loop {
                p.skip_ows();
                if p.at_end() || p.peek() == Some(b',') {
                    break;
                }
                if !p.eat(b';') {
                    return Err(p.unexpected("';' or ','"));
                }
                p.skip_ows();
                let key = p.token().ok_or_else(|| p.unexpected("a parameter name"))?;
                p.skip_ows();
                let value = if p.eat(b'=') {
                    p.skip_ows();
                    let v = if p.peek() == Some(b'"') {
                        p.quoted_string()?
                    } else {
                        let v = p.token().ok_or_else(|| p.unexpected("a parameter value"))?;
                        v.to_owned()
                    };
                    if v.is_empty() || !v.bytes().all(is_token_byte) {
                        return Err(format!(
                            "the value of {key} is not a token once unquoted: '{v}'"
                        ));
                    }
                    Some(v)
                } else {
                    None
                };
                params.push((key.to_ascii_lowercase(), value));
            }
            out.push(Element {
                name: name.to_ascii_lowercase(),
                params,
            });
        }
    }
    Ok(out)
}

/// A position in one header value, for [`parse_elements`].
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.at += 1;
        }
        found
    }

    /// OWS: spaces and tabs.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// `1*tchar`, or `None` (nothing consumed) when there is none here.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_token_byte) {
            self.at += 1;
        }
        // Token bytes are ASCII, so `start..at` is on character boundaries.
        (self.at > start).then(|| &self.text[start..self.at])
    }

    /// A quoted-string, the cursor on its opening quote; returns its content unescaped.
    fn quoted_string(&mut self) -> Result<String, String> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "unterminated quoted string: '{}'",
                        &self.text[start..]
                    ));
                }
                Some(b'"') => {
                    self.at += 1;
                    // Only ASCII was removed (quotes, backslashes), so this is still UTF-8.
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    // quoted-pair: "\" ( HTAB / SP / VCHAR / obs-text )
                    self.at += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                            out.push(b);
                            self.at += 1;
                        }
                        _ => return Err(self.unexpected("an escaped character after '\\'")),
                    }
                }
                // qdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    out.push(b);
                    self.at += 1;
                }
                Some(_) => return Err(self.unexpected("quoted text")),
            }
        }
    }

    /// An error saying what was expected where the cursor is.
    fn unexpected(&self, expected: &str) -> String {
        match self
            .text
            .get(self.at..)
            .and_then(|rest| rest.chars().next())
        {
            Some(c) => format!("expected {expected} at {:?} in '{}'", c, self.text.trim()),
            None => format!("expected {expected} at the end of '{}'", self.text.trim()),
        }
    }
}

/// A `*_max_window_bits` value: 8 to 15, written as RFC 7692 §7.1.2 says, `1*DIGIT` with no
/// leading zero, so `+9`, `09` and `9.0` (which a number parser would read as 9) are not values.
fn window_bits(name: &str, value: &str) -> Result<u8, String> {
    let plain_digits = value.bytes().all(|b| b.is_ascii_digit()) && !value.starts_with('0');
    match value.parse::<u8>() {
        Ok(b) if plain_digits && (8..=15).contains(&b) => Ok(b),
        _ => Err(format!("{name}={value} is not a number from 8 to 15")),
    }
}

/// permessage-deflate parameters as written in one offer or response.
#[derive(Debug, Default)]
struct Written {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only allowed in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

fn read_params(params: &[(String, Option<String>)]) -> Result<Written, String> {
    let mut w = Written::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        if seen.contains(&name.as_str()) {
            return Err(format!("parameter {name} appears twice"));
        }
        seen.push(name);
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => w.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => w.client_no_context_takeover = true,
            ("server_no_context_takeover" | "client_no_context_takeover", Some(v)) => {
                return Err(format!("{name} takes no value, got '{v}'"));
            }
            ("server_max_window_bits", Some(v)) => {
                w.server_max_window_bits = Some(window_bits(name, v)?);
            }
            ("server_max_window_bits", None) => {
                return Err("server_max_window_bits needs a value".into());
            }
            ("client_max_window_bits", Some(v)) => {
                w.client_max_window_bits = Some(Some(window_bits(name, v)?));
            }
            ("client_max_window_bits", None) => w.client_max_window_bits = Some(None),
            (other, _) => return Err(format!("unknown parameter '{other}'")),
        }
    }
    Ok(w)
}

/// Checks the server's `Sec-WebSocket-Extensions` against the client's offer
/// ([`CLIENT_OFFER`], or nothing when `offered` is false). `Ok(None)`: no extension in use.
pub fn check_response(values: &[&str], offered: bool) -> Result<Option<Params>, String> {
    let elements = parse_elements(values)?;
    let mut accepted = None;
    for e in elements {
        if e.name != NAME || !offered {
            return Err(format!(
                "server accepted extension '{}' that the client did not offer",
                e.name
            ));
        }
        if accepted.is_some() {
            return Err("server accepted permessage-deflate twice".into());
        }
        let w = read_params(&e.params).map_err(|m| format!("permessage-deflate: {m}"))?;
        let client_bits = match w.client_max_window_bits {
            None => 15,
            Some(Some(b)) => b,
            Some(None) => {
                return Err(
                    "permessage-deflate: client_max_window_bits needs a value in a \
                            response"
                        .into(),
                );
            }
        };
        accepted = Some(Params {
            send_no_context_takeover: w.client_no_context_takeover,
            recv_no_context_takeover: w.server_no_context_takeover,
            send_max_window_bits: client_bits,
        });
    }
    Ok(accepted)
}

/// The server's choice among the client's offers: the first acceptable permessage-deflate
/// offer, as parameters and the response header value. `None` declines the extension.
pub fn negotiate(values: &[&str], s: &ServerSettings) -> Option<(Params, String)> {
    if !s.enabled {
        return None;
    }
    // A malformed header declines the extension rather than the connection.
    let elements = parse_elements(values).ok()?;
    for e in elements.into_iter().filter(|e| e.name == NAME) {
        let Ok(w) = read_params(&e.params) else {
            continue;
        };
        let mut response = String::from(NAME);
        let server_nct = w.server_no_context_takeover || s.server_no_context_takeover;
        if server_nct {
            response.push_str("; server_no_context_takeover");
        }
        let client_nct = w.client_no_context_takeover || s.client_no_context_takeover;
        if client_nct {
            response.push_str("; client_no_context_takeover");
        }
        let server_bits = w
            .server_max_window_bits
            .unwrap_or(15)
            .min(s.server_max_window_bits);
        if w.server_max_window_bits.is_some() || server_bits < 15 {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if let Some(offered) = w.client_max_window_bits {
            let bits = offered.unwrap_or(15).min(s.client_max_window_bits);
            if bits < 15 {
                response.push_str(&format!("; client_max_window_bits={bits}"));
            }
        }
        let params = Params {
            send_no_context_takeover: server_nct,
            recv_no_context_takeover: client_nct,
            send_max_window_bits: server_bits,
        };
        return Some((params, response));
    }
    None
}

/// Compresses outgoing messages.
///
/// The zlib state (about 256 KiB at window 15) is allocated on the first compressed message,
/// so sockets that only send small messages never pay for it.
pub struct Deflater {
    c: Option<Compress>,
    window_bits: u8,
    no_context_takeover: bool,
    level: u32,
}

impl Deflater {
    /// `None` when `window_bits` is 8, which zlib cannot produce: send uncompressed.
    /// `level` is zlib's 0 (store) to 9 (smallest); larger values are clamped to 9.
    pub fn new(params: &Params, level: u32) -> Option<Deflater> {
        if !(9..=15).contains(&params.send_max_window_bits) {
            return None;
        }
        Some(Deflater {
            c: None,
            window_bits: params.send_max_window_bits,
            no_context_takeover: params.send_no_context_takeover,
            level: level.min(9),
        })
    }

    /// Compresses one whole message into `out` (cleared first), without the sync-flush tail.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let (bits, level) = (self.window_bits, self.level);
        let c = self.c.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        out.clear();
        let start_in = c.total_in();
        loop {
            out.reserve((input.len() / 4).max(256));
            let consumed = (c.total_in() - start_in) as usize;
            c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|e| Error::io(std::io::ErrorKind::Other, format!("deflate: {e}")))?;
            let consumed = (c.total_in() - start_in) as usize;
            // Done once all input is in and the flush fit (output space was left over).
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else if out.is_empty() {
            // Nothing to flush (an empty message after a flushed one): an empty stored block's
            // header, so that the tail the receiver appends completes it (§7.2.3.6).
            out.push(0x00);
        }
        if self.no_context_takeover {
            c.reset();
        }
        Ok(())
    }
}

/// Inflates incoming messages, frame by frame, within a size limit. Like [`Deflater`], its
/// zlib state is allocated on the first compressed message.
pub struct Inflater {
    d: Option<Decompress>,
    no_context_takeover: bool,
    /// The current message's deflate stream ended (BFINAL); the rest of its input is ignored
    /// and the next message needs a fresh stream.
    ended: bool,
}

impl Inflater {
    /// An inflater for messages the peer compressed with `params` (our receiving side).
    pub fn new(params: &Params) -> Inflater {
        Inflater {
            d: None,
            no_context_takeover: params.recv_no_context_takeover,
            ended: false,
        }
    }

    /// Inflates `input` (part of a compressed message) onto the end of `out`, failing with
    /// `MessageTooLarge` as soon as `out` would pass `limit`: memory grows with the output
    /// actually produced, never past the limit, however small the input.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
        let d = self.d.get_or_insert_with(|| Decompress::new(false));
        let mut pos = 0;
        while !self.ended {
            let cap_limit = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            if out.len() >= cap_limit {
                return Err(Error::MessageTooLarge {
                    size: out.len() as u64,
                    limit,
                });
            }
            if out.len() == out.capacity() {
                // Grow geometrically, but never past limit + 1 byte: the inflater writes only
                // into the capacity it is given.
                let target = (out.capacity() * 2)
                    .max(out.len() + INFLATE_STEP)
                    .min(cap_limit);
                out.reserve_exact(target - out.len());
            }
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(&input[pos..], out, FlushDecompress::Sync)
                .map_err(|e| {
                    Error::Protocol(ProtocolError::InvalidCompressedData {
                        message: e.to_string(),
                    })
                })?;
            pos += (d.total_in() - in0) as usize;
            let produced = d.total_out() - out0;
            match status {
                // The stream ended itself (BFINAL): whatever follows, in this input or later
                // ones, is ignored; testing it for progress would fail a valid message whose
                // end arrives with a trailing byte.
                Status::StreamEnd => {
                    self.ended = true;
                    break;
                }
                Status::Ok | Status::BufError => {}
            }
            if pos == input.len() && out.len() < out.capacity() {
                break; // all input used, and the output was not cut short
            }
            if produced == 0 && pos < input.len() && out.len() < out.capacity() {
                return Err(Error::Protocol(ProtocolError::CompressedDataStalled));
            }
        }
        if out.len() as u64 > limit {
            return Err(Error::MessageTooLarge {
                size: out.len() as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Ends a message: restores the stripped tail and flushes its output.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), Error> {
        self.inflate(&TAIL, out, limit)?;
        if (self.ended || self.no_context_takeover)
            && let Some(d) = &mut self.d
        {
            d.reset(false);
            self.ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(send_nct: bool, recv_nct: bool, bits: u8) -> Params {
        Params {
            send_no_context_takeover: send_nct,
            recv_no_context_takeover: recv_nct,
            send_max_window_bits: bits,
        }
    }

    fn err(values: &[&str]) -> String {
        check_response(values, true).unwrap_err()
    }

    #[test]
    fn response_without_extension() {
        assert_eq!(check_response(&[], true), Ok(None));
        assert_eq!(check_response(&[""], true), Ok(None));
        assert_eq!(check_response(&[" , "], false), Ok(None));
    }

    #[test]
    fn response_parameters() {
        assert_eq!(
            check_response(&["permessage-deflate"], true),
            Ok(Some(params(false, false, 15)))
        );
        assert_eq!(
            check_response(
                &[
                    "Permessage-Deflate; server_no_context_takeover;client_no_context_takeover; \
                   server_max_window_bits=10; client_max_window_bits=\"9\""
                ],
                true
            ),
            Ok(Some(params(true, true, 9)))
        );
        // Split over two header lines, with an empty one.
        assert_eq!(
            check_response(
                &["", "permessage-deflate; server_max_window_bits = 8"],
                true
            ),
            Ok(Some(params(false, false, 15)))
        );
    }

    #[test]
    fn response_rejections_name_the_problem() {
        assert!(err(&["x-webkit-deflate-frame"]).contains("x-webkit-deflate-frame"));
        assert!(
            check_response(&["permessage-deflate"], false)
                .unwrap_err()
                .contains("did not offer")
        );
        assert!(err(&["permessage-deflate, permessage-deflate"]).contains("twice"));
        assert!(err(&["permessage-deflate; foo"]).contains("foo"));
        assert!(
            err(&["permessage-deflate; server_no_context_takeover; server_no_context_takeover"])
                .contains("twice")
        );
        assert!(err(&["permessage-deflate; client_no_context_takeover=true"]).contains("no value"));
        assert!(err(&["permessage-deflate; server_max_window_bits"]).contains("needs a value"));
        assert!(err(&["permessage-deflate; server_max_window_bits=7"]).contains("7"));
        assert!(err(&["permessage-deflate; server_max_window_bits=16"]).contains("16"));
        assert!(err(&["permessage-deflate; server_max_window_bits=abc"]).contains("abc"));
        assert!(err(&["permessage-deflate; client_max_window_bits=16"]).contains("16"));
        assert!(err(&["permessage-deflate; client_max_window_bits"]).contains("needs a value"));
        assert!(err(&["; server_max_window_bits=9"]).contains("no name"));
    }

    /// RFC 7692 §7.1.2: the value is `1*DIGIT` without a leading zero. Each of these reads as
    /// 9 (or 10) to a number parser, and each fails the client's handshake.
    #[test]
    fn response_window_bits_must_be_plain_digits() {
        for bits in [
            "+9", "09", "009", "9.0", "1_0", "0x9", "\"09\"", "\"+9\"", "0",
        ] {
            for name in ["server_max_window_bits", "client_max_window_bits"] {
                let header = format!("permessage-deflate; {name}={bits}");
                let e = check_response(&[&header], true).unwrap_err();
                assert!(e.contains("not a number from 8 to 15"), "{header}: {e}");
            }
        }
        // Quoted as a whole, with a space inside: not a token once unquoted.
        let e = err(&["permessage-deflate; server_max_window_bits=\" 9\""]);
        assert!(e.contains("not a token"), "{e}");
        // A quoted token, escapes and all, is the token.
        for bits in ["\"9\"", "\"\\9\"", "9"] {
            let header = format!("permessage-deflate; client_max_window_bits={bits}");
            assert_eq!(
                check_response(&[&header], true),
                Ok(Some(params(false, false, 9))),
                "{header}"
            );
        }
    }

    #[test]
    fn offers_with_invalid_window_bits_are_declined() {
        let s = ServerSettings::default();
        for bits in ["+9", "09", "9.0", "\"09\"", "\" 9\"", "\"9 \""] {
            for name in ["server_max_window_bits", "client_max_window_bits"] {
                let offer = format!("permessage-deflate; {name}={bits}");
                assert_eq!(negotiate(&[&offer], &s), None, "{offer}");
            }
        }
        // A bad offer falls back to the next one, as long as the header parses.
        let (p, h) = negotiate(
            &[
                "permessage-deflate; server_max_window_bits=09, permessage-deflate; \
               server_max_window_bits=\"10\"",
            ],
            &s,
        )
        .unwrap();
        assert_eq!(
            (p.send_max_window_bits, h.as_str()),
            (10, "permessage-deflate; server_max_window_bits=10")
        );
    }

    fn names_and_params(value: &str) -> Result<Vec<Element>, String> {
        parse_elements(&[value])
    }

    fn element(name: &str, params: &[(&str, Option<&str>)]) -> Element {
        Element {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn extension_lists_follow_rfc_7230() {
        // OWS around ';' and ',', BWS around '=', tabs, empty list elements, case.
        assert_eq!(
            names_and_params(" ,\tA ;\tK = v ;F,, b;q=\"x\" ,"),
            Ok(vec![
                element("a", &[("k", Some("v")), ("f", None)]),
                element("b", &[("q", Some("x"))]),
            ])
        );
        // quoted-pair: a backslash takes the next character literally.
        assert_eq!(
            names_and_params("a; q=\"\\t\\o\\k\\e\\n\""),
            Ok(vec![element("a", &[("q", Some("token"))])])
        );
        // Commas and semicolons inside quotes do not split: the value stays whole, and is then
        // refused for not being a token (RFC 6455 §9.1).
        for (value, kept) in [
            ("a; q=\"x,y\", b", "x,y"),
            ("a; q=\"x;y=z\"", "x;y=z"),
            ("a; q=\"x\\\"y\"", "x\"y"),
            ("a; q=\"\"", "''"),
        ] {
            let e = names_and_params(value).unwrap_err();
            assert!(
                e.contains("not a token") && e.contains(kept),
                "{value}: {e}"
            );
        }
        // Syntax errors, each named.
        for (value, why) in [
            ("a;", "a parameter name at the end"),
            ("a; ;b", "a parameter name at ';'"),
            ("a b", "';' or ','"),
            ("a; k=v w", "';' or ','"),
            ("a; k=", "a parameter value at the end"),
            ("a; k==v", "a parameter value at '='"),
            ("a; k=\"v", "unterminated quoted string"),
            ("a; k=\"v\\", "an escaped character"),
            ("a; k=\"v\"w", "';' or ','"),
            ("a; k=v\"w\"", "';' or ','"),
            ("a; k=\"\u{7f}\"", "quoted text"),
            ("a; k@=v", "';' or ','"),
            ("\"a\"", "an extension name"),
            ("a; \"k\"=v", "a parameter name"),
            ("; k=v", "no name"),
        ] {
            let e = names_and_params(value).unwrap_err();
            assert!(e.contains(why), "{value}: {e}");
        }
    }

    #[test]
    fn server_negotiation() {
        let s = ServerSettings::default();
        let (p, h) = negotiate(&[CLIENT_OFFER], &s).unwrap();
        assert_eq!(
            (p, h.as_str()),
            (params(false, false, 15), "permessage-deflate")
        );
        let (p, h) = negotiate(
            &["permessage-deflate; server_max_window_bits=10; client_no_context_takeover"],
            &s,
        )
        .unwrap();
        assert_eq!(p, params(false, true, 10));
        assert_eq!(
            h,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"
        );
        // Server settings apply; client_max_window_bits only if offered.
        let strict = ServerSettings {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 12,
            client_max_window_bits: 9,
            ..s
        };
        let (_, h) = negotiate(&[CLIENT_OFFER], &strict).unwrap();
        assert_eq!(
            h,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=9"
        );
        let (_, h) = negotiate(&["permessage-deflate"], &strict).unwrap();
        assert!(!h.contains("client_max_window_bits"), "{h}");
        // A bad first offer falls back to the next one; none acceptable declines.
        let (p, _) = negotiate(
            &["permessage-deflate; server_max_window_bits=20, permessage-deflate"],
            &s,
        )
        .unwrap();
        assert_eq!(p.send_max_window_bits, 15);
        assert_eq!(negotiate(&["permessage-deflate; bogus"], &s), None);
        assert_eq!(negotiate(&["x-other"], &s), None);
        let off = ServerSettings {
            enabled: false,
            ..s
        };
        assert_eq!(negotiate(&[CLIENT_OFFER], &off), None);
    }

    fn round_trip(p: Params, messages: &[&[u8]]) -> Vec<usize> {
        let mut d = Deflater::new(&p, 6).unwrap();
        let mut i = Inflater::new(&params(false, p.send_no_context_takeover, 15));
        let mut sizes = Vec::new();
        for m in messages {
            let mut compressed = Vec::new();
            d.compress(m, &mut compressed).unwrap();
            sizes.push(compressed.len());
            let mut out = Vec::new();
            // Feed in two pieces, as two frames would.
            let half = compressed.len() / 2;
            i.inflate(&compressed[..half], &mut out, 1 << 30).unwrap();
            i.inflate(&compressed[half..], &mut out, 1 << 30).unwrap();
            i.finish(&mut out, 1 << 30).unwrap();
            assert_eq!(&out, m);
        }
        sizes
    }

    #[test]
    fn golden_values() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut i = Inflater::new(&params(false, false, 15));
        let mut text = Vec::new();
        i.inflate(&out, &mut text, 100).unwrap();
        i.finish(&mut text, 100).unwrap();
        assert_eq!(text, b"Hello");
    }

    #[test]
    fn context_takeover_at_each_window_size() {
        let msg = br#"{"type":"update","symbol":"ACME","price":101.25,"volume":1200}"#;
        for bits in [9, 12, 15] {
            let sizes = round_trip(params(false, false, bits), &[msg, msg, b"", msg]);
            assert!(
                sizes[1] < sizes[0],
                "bits {bits}: context makes the repeat smaller"
            );
            let sizes = round_trip(params(true, false, bits), &[msg, msg, b"", msg]);
            assert_eq!(sizes[0], sizes[1], "bits {bits}: no context, same output");
        }
    }

    #[test]
    fn large_message_at_small_window() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 16 + b'a')
            .collect();
        for bits in [9, 12, 15] {
            round_trip(params(false, false, bits), &[&data, &data]);
        }
    }

    #[test]
    fn empty_message_is_one_zero_byte() {
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            d.compress(b"", &mut out).unwrap();
            assert_eq!(out, [0x00]);
        }
    }

    #[test]
    fn window_bits_8_sends_uncompressed() {
        assert!(Deflater::new(&params(false, false, 8), 6).is_none());
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        // 16 MiB of zeros compresses to about 16 KiB; inflating must stop at the 1 MiB limit.
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let zeros = vec![0u8; 16 << 20];
        let mut bomb = Vec::new();
        d.compress(&zeros, &mut bomb).unwrap();
        assert!(bomb.len() < 128 * 1024, "{}", bomb.len());
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        let limit = 1 << 20;
        let e = i.inflate(&bomb, &mut out, limit).unwrap_err();
        assert!(
            matches!(e, Error::MessageTooLarge { size, .. } if size == limit + 1),
            "{e:?}"
        );
        assert!(out.capacity() as u64 <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn corrupt_data_is_a_protocol_error() {
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        let r = i
            .inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 1000)
            .and_then(|()| i.finish(&mut out, 1000));
        assert!(
            matches!(
                r,
                Err(Error::Protocol(ProtocolError::InvalidCompressedData { .. }))
            ),
            "{r:?}"
        );
    }

    #[test]
    fn final_block_then_garbage_is_tolerated_and_next_message_inflates() {
        // A stream that ends itself (BFINAL) followed by trailing bytes.
        let mut c = Compress::new(Compression::default(), false);
        let mut fin = Vec::with_capacity(64);
        c.compress_vec(b"first", &mut fin, FlushCompress::Finish)
            .unwrap();
        fin.extend_from_slice(b"junk");
        let mut i = Inflater::new(&params(false, false, 15));
        let mut out = Vec::new();
        i.inflate(&fin, &mut out, 1000).unwrap();
        i.finish(&mut out, 1000).unwrap();
        assert_eq!(out, b"first");
        let mut d = Deflater::new(&params(false, false, 15), 6).unwrap();
        let mut next = Vec::new();
        d.compress(b"second", &mut next).unwrap();
        let mut out = Vec::new();
        i.inflate(&next, &mut out, 1000).unwrap();
        i.finish(&mut out, 1000).unwrap();
        assert_eq!(out, b"second");
    }

    #[test]
    fn a_final_block_whose_end_and_trailing_bytes_come_in_later_pieces_inflates() {
        // RFC 7692 §7.2.3.5: "Hello" in a BFINAL block, plus one trailing byte; found by the
        // decoder fuzz target failing with 1002 when the last bytes arrive on their own.
        let wire = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        for split in 1..wire.len() {
            for second in split..wire.len() {
                let mut i = Inflater::new(&params(false, false, 15));
                let mut out = Vec::new();
                i.inflate(&wire[..split], &mut out, 1000).unwrap();
                i.inflate(&wire[split..second], &mut out, 1000).unwrap();
                i.inflate(&wire[second..], &mut out, 1000).unwrap();
                i.finish(&mut out, 1000).unwrap();
                assert_eq!(out, b"Hello", "split at {split} and {second}");
            }
        }
    }
}
