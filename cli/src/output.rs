//! How `connect` prints what happens: plain text (messages on stdout, everything else on
//! stderr, so a pipe gets only the messages) or JSON (one event per line on stdout).
//!
//! Text the peer controls (close reasons, a refusal's headers and body, error texts that quote
//! it, and messages when stdout is a terminal) is shown with its control characters escaped
//! ([`for_terminal`]): a peer must not be able to move the cursor, retitle the window or fake
//! a line of our own. Messages written to a pipe or a file are the data, byte for byte, and
//! `--json` is escaped by JSON itself.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Value, json};
use syncws::{Ended, Message, Response};

/// How binary messages are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Binary {
    /// Lowercase hex, two digits a byte.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

pub struct Printer {
    pub json: bool,
    pub binary: Binary,
}

/// `text` with its control characters (C0, DEL and C1: `char::is_control`) shown as escapes:
/// `\n`, `\r`, `\t`, `\x1b`, `\u{9b}`. Everything else, backslashes included, is as it was,
/// so ordinary text reads the same; use `--json` for an exact record.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`for_terminal`] on bytes that may not be UTF-8 (a header, a body).
pub fn bytes_for_terminal(bytes: &[u8]) -> String {
    for_terminal(&String::from_utf8_lossy(bytes)).into_owned()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn headers(r: &Response) -> Value {
    Value::Array(
        r.headers()
            .iter()
            .map(|h| json!([h.name(), String::from_utf8_lossy(h.value())]))
            .collect(),
    )
}

impl Printer {
    fn encode(&self, bytes: &[u8]) -> String {
        match self.binary {
            Binary::Hex => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut hex = String::with_capacity(2 * bytes.len());
                for b in bytes {
                    hex.push(char::from(DIGITS[usize::from(b >> 4)]));
                    hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
                }
                hex
            }
            Binary::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn line(&self, value: Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// A remark for a person (text mode only, on stderr), control characters escaped.
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("# {}", for_terminal(text));
        }
    }

    pub fn open(&self, r: &Response) {
        if self.json {
            self.line(json!({
                "event": "open", "time": now(), "status": r.status(),
                "subprotocol": r.subprotocol(), "headers": headers(r),
            }));
        } else {
            let proto = r
                .subprotocol()
                .map(|p| format!(", subprotocol {p}"))
                .unwrap_or_default();
            self.note(&format!("connected ({} {}{proto})", r.status(), r.reason()));
        }
    }

    pub fn message(&self, m: &Message) {
        if self.json {
            // Written field by field (the keys in the order `json!` sorts them) so the payload
            // is escaped straight onto stdout, never copied into a `Value` first.
            let encoded;
            let (kind, data) = match m {
                Message::Text(t) => ("text", t.as_str()),
                Message::Binary(b) => {
                    encoded = self.encode(b);
                    ("binary", encoded.as_str())
                }
            };
            let mut out = std::io::stdout().lock();
            let _ = (|| -> std::io::Result<()> {
                out.write_all(b"{\"data\":")?;
                serde_json::to_writer(&mut out, data)?;
                write!(
                    out,
                    r#","event":"message","time":"{}","type":"{kind}"}}"#,
                    now()
                )?;
                out.write_all(b"\n")?;
                out.flush()
            })();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = match m {
                // On a terminal the peer's text is shown, not obeyed; to a pipe it is the data.
                Message::Text(t) if out.is_terminal() => writeln!(out, "{}", for_terminal(t)),
                Message::Text(t) => writeln!(out, "{t}"),
                Message::Binary(b) => writeln!(out, "{}", self.encode(b)),
            };
            let _ = out.flush();
        }
    }

    pub fn closing(&self, code: u16, reason: &str) {
        if self.json {
            self.line(json!({"event": "closing", "time": now(), "code": code, "reason": reason}));
        } else {
            self.note(&format!("close frame from the server: {code} {reason}"));
        }
    }

    pub fn ended(&self, how: &Ended) {
        match how {
            Ended::Closed { code, reason, .. } => {
                if self.json {
                    self.line(
                        json!({"event": "closed", "time": now(), "code": code, "reason": reason}),
                    );
                } else {
                    self.note(&format!("closed: {code} {reason}"));
                }
            }
            Ended::Failed { error, response } => {
                if self.json {
                    let mut v =
                        json!({"event": "failure", "time": now(), "error": error.to_string()});
                    if let Some(r) = response {
                        v["status"] = json!(r.status());
                        v["headers"] = headers(r);
                        v["body"] = json!(String::from_utf8_lossy(r.body()));
                    }
                    self.line(v);
                } else {
                    eprintln!("# failed: {}", for_terminal(&error.to_string()));
                    if let Some(r) = response {
                        eprintln!(
                            "# the server answered: {} {}",
                            r.status(),
                            for_terminal(r.reason())
                        );
                        for h in r.headers() {
                            eprintln!(
                                "#   {}: {}",
                                for_terminal(h.name()),
                                bytes_for_terminal(h.value())
                            );
                        }
                        if !r.body().is_empty() {
                            eprintln!("#   body: {}", bytes_for_terminal(r.body()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert!(matches!(for_terminal("plain \\ text é"), Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("a\x1b]0;owned\x07b\nc\u{9b}2Jd\x7f"),
            "a\\x1b]0;owned\\x07b\\nc\\u{9b}2Jd\\x7f"
        );
        assert_eq!(bytes_for_terminal(b"\xff\r\n"), "\u{fffd}\\r\\n");
    }
}
