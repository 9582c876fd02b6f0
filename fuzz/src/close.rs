//! The `close` target: close payloads parsed, rebuilt and validated.

use syncws::fuzz::close;
use syncws::{Error, ProtocolError};

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
        Err(Error::Protocol(ProtocolError::OneByteClosePayload)) => {
            assert_eq!(data.len(), 1, "1-byte payload for {data:?}");
        }
        Err(Error::Protocol(ProtocolError::InvalidCloseCode { code })) => {
            assert!(data.len() >= 2, "invalid code {code} for {data:?}");
            assert_eq!(*code, u16::from_be_bytes([data[0], data[1]]));
            assert!(!close::is_valid_code(*code), "{code} is valid");
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
