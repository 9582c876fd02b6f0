//! The extension's negotiation (RFC 7692 §5, §7.1): the `Sec-WebSocket-Extensions` grammar
//! (RFC 7230, RFC 6455 §9.1), the server's choice among a client's offers, and the client's
//! check of the server's answer.

use super::params::{NAME, Params, ServerSettings};
use crate::header::is_token_byte;

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
/// ([`CLIENT_OFFER`](super::CLIENT_OFFER), or nothing when `offered` is false). `Ok(None)`: no extension in use.
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
            shared_frames: false,
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
            shared_frames: server_nct && server_bits == s.server_max_window_bits,
        };
        return Some((params, response));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::CLIENT_OFFER;

    fn params(send_nct: bool, recv_nct: bool, bits: u8) -> Params {
        Params {
            send_no_context_takeover: send_nct,
            recv_no_context_takeover: recv_nct,
            send_max_window_bits: bits,
            shared_frames: false,
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
}
