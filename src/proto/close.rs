//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use crate::error::{Error, ProtocolError};

/// The longest reason that fits in a close frame: 125 bytes of payload less the 2-byte code.
pub const MAX_REASON_BYTES: usize = 123;

/// Whether `code` may appear in a close frame on the wire, from either side.
///
/// Allowed: 1000–1003, 1007–1014 (defined or registered with IANA) and 3000–4999 (libraries,
/// applications). 1004 is reserved, 1005/1006/1015 are "no code"/"abnormal"/"TLS" markers that
/// must never be sent, 1016–2999 are reserved for future RFCs.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Checks a close the application asked for, as OkHttp does.
pub fn validate(code: u16, reason: &str) -> Result<(), Error> {
    if !is_valid_code(code) {
        return Err(Error::InvalidCloseCode(code));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(Error::ReasonTooLong(reason.len()));
    }
    Ok(())
}

/// A close frame's payload, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// `None` for an empty payload (reported to the application as 1005).
    pub code: Option<u16>,
    /// The reason, UTF-8 checked; empty when there was none.
    pub reason: String,
}

impl CloseFrame {
    /// The code reported to the application: 1005 ("no status received") for an empty frame.
    pub(crate) fn reported_code(&self) -> u16 {
        self.code.unwrap_or(1005)
    }
}

/// Parses a received close payload. Errors carry the close code to fail with.
pub fn parse(payload: &[u8]) -> Result<CloseFrame, Error> {
    match payload.len() {
        0 => Ok(CloseFrame {
            code: None,
            reason: String::new(),
        }),
        1 => Err(Error::Protocol(ProtocolError::OneByteClosePayload)),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_code(code) {
                return Err(Error::Protocol(ProtocolError::InvalidCloseCode { code }));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| Error::InvalidUtf8)?;
            Ok(CloseFrame {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

/// The payload of a close frame we send. `None` sends an empty payload (the answer to an empty
/// close frame, which has no code to echo).
pub fn payload(code: Option<u16>, reason: &str) -> Vec<u8> {
    match code {
        None => Vec::new(),
        Some(code) => {
            let mut p = Vec::with_capacity(2 + reason.len());
            p.extend_from_slice(&code.to_be_bytes());
            p.extend_from_slice(reason.as_bytes());
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid_code(c)).collect();
        assert_eq!(valid.len(), 4 + 8 + 2000);
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_code(c), "{c}");
        }
        for c in [1000, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(is_valid_code(c), "{c}");
        }
    }

    #[test]
    fn validate_reason_length() {
        assert!(validate(1000, &"a".repeat(123)).is_ok());
        assert!(matches!(
            validate(1000, &"a".repeat(124)),
            Err(Error::ReasonTooLong(124))
        ));
        // 62 two-byte characters = 124 bytes.
        assert!(matches!(
            validate(1000, &"é".repeat(62)),
            Err(Error::ReasonTooLong(124))
        ));
        assert!(matches!(
            validate(1005, ""),
            Err(Error::InvalidCloseCode(1005))
        ));
    }

    #[test]
    fn parse_payloads() {
        assert_eq!(parse(&[]).unwrap().reported_code(), 1005);
        assert!(matches!(
            parse(&[3]),
            Err(Error::Protocol(ProtocolError::OneByteClosePayload))
        ));
        let f = parse(&payload(Some(1000), "Hello")).unwrap();
        assert_eq!((f.code, f.reason.as_str()), (Some(1000), "Hello"));
        assert!(matches!(
            parse(&[0x03, 0xED]),
            Err(Error::Protocol(ProtocolError::InvalidCloseCode {
                code: 1005
            }))
        ));
        assert!(matches!(
            parse(&[0x03, 0xE8, 0xFF]),
            Err(Error::InvalidUtf8)
        ));
    }
}
