//! Proxy handshakes as bytes in, bytes out: HTTP `CONNECT` (RFC 9110 §9.3.6) and SOCKS5
//! (RFC 1928) with user name/password authentication (RFC 1929).

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::proto::handshake::MAX_HEADER_BYTES;

/// The most header lines a proxy's answer to `CONNECT` may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// How much of a proxy's reason phrase goes into an error message.
const MAX_REASON_CHARS: usize = 100;

/// `host:port` as a request target, IPv6 in brackets.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT
// ---------------------------------------------------------------------------------------------

/// The `CONNECT` request for `host:port`, with Basic credentials when given.
///
/// `host` comes from a parsed URL, which admits no CR, LF or spaces.
pub(crate) fn encode_connect(host: &str, port: u16, auth: Option<(&str, &str)>) -> Vec<u8> {
    let target = authority(host, port);
    let mut s = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, password)) = auth {
        s.push_str("Proxy-Authorization: Basic ");
        s.push_str(&BASE64.encode(format!("{user}:{password}")));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The status line of a proxy's answer to `CONNECT`.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectAnswer {
    /// The HTTP status; 2xx opens the tunnel.
    pub status: u16,
    /// The reason phrase, printable ASCII only, at most `MAX_REASON_CHARS`.
    pub reason: String,
}

impl ConnectAnswer {
    /// Any 2xx opens the tunnel.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why an answer to `CONNECT` could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Not an HTTP response head.
    NotHttp,
    /// No end of the head within `MAX_HEADER_BYTES`.
    TooLarge,
}

/// Parses the head of a proxy's answer to `CONNECT`: `Ok(None)` until it is complete, then the
/// status and the head's length (what follows is body or tunnel).
pub fn parse_connect_answer(buf: &[u8]) -> Result<Option<(ConnectAnswer, usize)>, AnswerError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEADER_BYTES => {
            let status = response.code.unwrap_or_default();
            let reason = response
                .reason
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(MAX_REASON_CHARS)
                .collect();
            Ok(Some((ConnectAnswer { status, reason }, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEADER_BYTES => Ok(None),
        Ok(_) => Err(AnswerError::TooLarge),
        Err(httparse::Error::TooManyHeaders) => Err(AnswerError::TooLarge),
        Err(_) => Err(AnswerError::NotHttp),
    }
}

// ---------------------------------------------------------------------------------------------
// SOCKS5
// ---------------------------------------------------------------------------------------------

const SOCKS_VERSION: u8 = 5;
const METHOD_NONE: u8 = 0x00;
const METHOD_PASSWORD: u8 = 0x02;
const METHOD_REFUSED: u8 = 0xff;
/// RFC 1929's version of the user name/password subnegotiation.
const AUTH_VERSION: u8 = 1;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// What went wrong in a SOCKS5 handshake, in words for the error message.
#[derive(Debug, PartialEq, Eq)]
pub enum SocksError {
    /// The first byte of an answer was not 5 (or 1 for the authentication answer).
    NotSocks5,
    /// 0xFF: none of our methods is acceptable.
    NoAcceptableMethod {
        /// Whether we had offered user name and password authentication.
        offered_password: bool,
    },
    /// The proxy chose a method we did not offer.
    UnofferedMethod(u8),
    /// RFC 1929 status other than 0.
    AuthRejected,
    /// A user name or password outside 1..=255 / 0..=255 bytes.
    CredentialsTooLong,
    /// A host name over 255 bytes cannot be sent.
    NameTooLong,
    /// The reply to CONNECT had a non-zero REP field.
    Reply(u8),
    /// The reply carried an address type RFC 1928 does not define.
    BadAddressType(u8),
}

impl std::fmt::Display for SocksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocksError::NotSocks5 => f.write_str("answered with something that is not SOCKS5"),
            SocksError::NoAcceptableMethod {
                offered_password: true,
            } => f.write_str(
                "accepts neither \"no authentication\" nor user name/password authentication",
            ),
            SocksError::NoAcceptableMethod {
                offered_password: false,
            } => f.write_str(
                "does not accept \"no authentication\" (it may want a user name and password: \
                 put them in the proxy URL, socks5://user:password@host:port)",
            ),
            SocksError::UnofferedMethod(m) => {
                write!(
                    f,
                    "chose authentication method {m:#04x}, which was not offered"
                )
            }
            SocksError::AuthRejected => f.write_str(
                "rejected the user name and password (check the proxy's user name and password)",
            ),
            SocksError::CredentialsTooLong => {
                f.write_str("a SOCKS5 user name must be 1 to 255 bytes and a password at most 255")
            }
            SocksError::NameTooLong => {
                f.write_str("the host name is longer than the 255 bytes SOCKS5 can carry")
            }
            SocksError::Reply(code) => f.write_str(&reply_words(*code)),
            SocksError::BadAddressType(t) => {
                write!(f, "answered CONNECT with an unknown address type {t}")
            }
        }
    }
}

/// RFC 1928 §6's reply codes, in words.
pub(crate) fn reply_words(code: u8) -> String {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the destination host",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        other => return format!("unassigned reply code {other}"),
    }
    .to_owned()
}

impl SocksError {
    /// Whether another address of the same server might fare better (socks5 with local
    /// resolution tries each address the name resolved to, as a direct connect does).
    pub(crate) fn is_destination_unreachable(&self) -> bool {
        matches!(self, SocksError::Reply(3..=5))
    }
}

/// The greeting: version and the methods offered ("no authentication", and user
/// name/password when we have credentials).
pub(crate) fn socks_greeting(with_password: bool) -> Vec<u8> {
    if with_password {
        vec![SOCKS_VERSION, 2, METHOD_NONE, METHOD_PASSWORD]
    } else {
        vec![SOCKS_VERSION, 1, METHOD_NONE]
    }
}

/// How the proxy wants us to authenticate.
#[derive(Debug, PartialEq, Eq)]
pub enum Method {
    /// No authentication.
    None,
    /// User name and password (RFC 1929).
    Password,
}

/// Parses the proxy's method selection (2 bytes).
pub fn parse_method(answer: [u8; 2], offered_password: bool) -> Result<Method, SocksError> {
    match answer {
        [SOCKS_VERSION, METHOD_NONE] => Ok(Method::None),
        [SOCKS_VERSION, METHOD_PASSWORD] if offered_password => Ok(Method::Password),
        [SOCKS_VERSION, METHOD_REFUSED] => Err(SocksError::NoAcceptableMethod { offered_password }),
        [SOCKS_VERSION, other] => Err(SocksError::UnofferedMethod(other)),
        _ => Err(SocksError::NotSocks5),
    }
}

/// The RFC 1929 user name/password request.
pub(crate) fn socks_auth(user: &str, password: &str) -> Result<Vec<u8>, SocksError> {
    let (u, p) = (user.as_bytes(), password.as_bytes());
    let ulen = u8::try_from(u.len()).map_err(|_| SocksError::CredentialsTooLong)?;
    let plen = u8::try_from(p.len()).map_err(|_| SocksError::CredentialsTooLong)?;
    if ulen == 0 {
        return Err(SocksError::CredentialsTooLong);
    }
    let mut out = Vec::with_capacity(3 + u.len() + p.len());
    out.extend_from_slice(&[AUTH_VERSION, ulen]);
    out.extend_from_slice(u);
    out.push(plen);
    out.extend_from_slice(p);
    Ok(out)
}

/// Parses the RFC 1929 status (2 bytes). Some servers answer with version 5 instead of 1;
/// both are taken.
pub fn parse_auth_answer(answer: [u8; 2]) -> Result<(), SocksError> {
    match answer {
        [AUTH_VERSION | SOCKS_VERSION, 0] => Ok(()),
        [AUTH_VERSION | SOCKS_VERSION, _] => Err(SocksError::AuthRejected),
        _ => Err(SocksError::NotSocks5),
    }
}

/// Where the proxy should connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksTarget<'a> {
    Ip(IpAddr),
    /// Resolved by the proxy (socks5h).
    Name(&'a str),
}

/// The CONNECT request for `target:port`.
pub(crate) fn socks_connect(target: SocksTarget<'_>, port: u16) -> Result<Vec<u8>, SocksError> {
    let mut out = vec![SOCKS_VERSION, CMD_CONNECT, 0];
    match target {
        SocksTarget::Ip(IpAddr::V4(a)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&a.octets());
        }
        SocksTarget::Ip(IpAddr::V6(a)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&a.octets());
        }
        SocksTarget::Name(name) => {
            let len = u8::try_from(name.len()).map_err(|_| SocksError::NameTooLong)?;
            out.extend_from_slice(&[ATYP_DOMAIN, len]);
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// How far the reply to CONNECT has come.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The reply is this many bytes long in all (or at least: its length is known once that
    /// many have arrived); read no more than that.
    Need(usize),
    /// The tunnel is open; the reply was this many bytes.
    Done(usize),
}

/// Looks at the reply to CONNECT received so far. A refusal is reported as soon as its code
/// has arrived (a proxy may close without sending the rest).
pub fn parse_reply(buf: &[u8]) -> Result<Reply, SocksError> {
    let (Some(&version), Some(&code)) = (buf.first(), buf.get(1)) else {
        return Ok(Reply::Need(2));
    };
    if version != SOCKS_VERSION {
        return Err(SocksError::NotSocks5);
    }
    if code != 0 {
        return Err(SocksError::Reply(code));
    }
    let Some(&atyp) = buf.get(3) else {
        return Ok(Reply::Need(4));
    };
    // VER REP RSV ATYP, the address, the port.
    let len = match atyp {
        ATYP_IPV4 => 4 + 4 + 2,
        ATYP_IPV6 => 4 + 16 + 2,
        ATYP_DOMAIN => match buf.get(4) {
            Some(&n) => 4 + 1 + usize::from(n) + 2,
            None => return Ok(Reply::Need(5)),
        },
        other => return Err(SocksError::BadAddressType(other)),
    };
    Ok(if buf.len() >= len {
        Reply::Done(len)
    } else {
        Reply::Need(len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_bytes() {
        assert_eq!(
            encode_connect("example.com", 443, None),
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        assert_eq!(
            encode_connect("::1", 8080, None),
            b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
        );
        // RFC 7617's example credentials.
        assert_eq!(
            encode_connect("h", 80, Some(("Aladdin", "open sesame"))),
            b"CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\n\
              Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        assert_eq!(
            encode_connect("h", 80, Some(("u", ""))),
            b"CONNECT h:80 HTTP/1.1\r\nHost: h:80\r\nProxy-Authorization: Basic dTo=\r\n\r\n"
        );
    }

    #[test]
    fn connect_answers() {
        let ok = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n";
        let (answer, len) = parse_connect_answer(ok).unwrap().unwrap();
        assert_eq!(len, ok.len());
        assert!(answer.is_success());
        assert_eq!(answer.reason, "Connection established");
        // HTTP/1.0 and any 2xx; bytes past the head are left to the caller.
        let (answer, len) = parse_connect_answer(b"HTTP/1.0 204 \r\n\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!((answer.status, len, answer.is_success()), (204, 17, true));
        let (answer, _) = parse_connect_answer(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n<html>",
        )
        .unwrap()
        .unwrap();
        assert_eq!(answer.status, 407);
        assert_eq!(answer.reason, "Proxy Authentication Required");
        assert!(!answer.is_success());
        for status in [100, 199, 300, 403, 502] {
            let head = format!("HTTP/1.1 {status} X\r\n\r\n");
            let (a, _) = parse_connect_answer(head.as_bytes()).unwrap().unwrap();
            assert!(!a.is_success(), "{status}");
        }
    }

    #[test]
    fn connect_answer_arrives_in_pieces() {
        let ok = b"HTTP/1.1 200 OK\r\n\r\n";
        for cut in 0..ok.len() {
            assert_eq!(parse_connect_answer(&ok[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_connect_answer(ok).unwrap().is_some());
    }

    #[test]
    fn connect_answer_garbage_and_size() {
        for garbage in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"\x05\x00",
            b"hello world\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
        ] {
            assert_eq!(
                parse_connect_answer(garbage),
                Err(AnswerError::NotHttp),
                "{garbage:?}"
            );
        }
        // A head that never ends is refused once it passes the cap.
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_HEADER_BYTES, b'a');
        assert_eq!(parse_connect_answer(&long), Ok(None));
        long.push(b'a');
        assert_eq!(parse_connect_answer(&long), Err(AnswerError::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: y\r\n")).collect();
        let head = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse_connect_answer(head.as_bytes()),
            Err(AnswerError::TooLarge)
        );
    }

    #[test]
    fn reason_phrase_is_cleaned_and_capped() {
        let head = format!("HTTP/1.1 403 Bad\tthing {}\r\n\r\n", "z".repeat(500));
        let (answer, _) = parse_connect_answer(head.as_bytes()).unwrap().unwrap();
        assert!(
            answer.reason.starts_with("Badthing zzz"),
            "{}",
            answer.reason
        );
        assert_eq!(answer.reason.chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn socks_greetings_and_methods() {
        assert_eq!(socks_greeting(false), [5, 1, 0]);
        assert_eq!(socks_greeting(true), [5, 2, 0, 2]);
        assert_eq!(parse_method([5, 0], false), Ok(Method::None));
        assert_eq!(parse_method([5, 0], true), Ok(Method::None));
        assert_eq!(parse_method([5, 2], true), Ok(Method::Password));
        assert_eq!(
            parse_method([5, 2], false),
            Err(SocksError::UnofferedMethod(2))
        );
        assert_eq!(
            parse_method([5, 1], true),
            Err(SocksError::UnofferedMethod(1))
        );
        assert_eq!(
            parse_method([5, 0xff], false),
            Err(SocksError::NoAcceptableMethod {
                offered_password: false
            })
        );
        assert_eq!(parse_method([4, 0], false), Err(SocksError::NotSocks5));
        assert_eq!(parse_method(*b"HT", false), Err(SocksError::NotSocks5));
    }

    #[test]
    fn socks_password_auth() {
        assert_eq!(
            socks_auth("user", "pw").unwrap(),
            [1, 4, b'u', b's', b'e', b'r', 2, b'p', b'w']
        );
        assert_eq!(socks_auth("u", "").unwrap(), [1, 1, b'u', 0]);
        assert_eq!(socks_auth("", "p"), Err(SocksError::CredentialsTooLong));
        let max = "x".repeat(255);
        assert_eq!(socks_auth(&max, &max).unwrap().len(), 3 + 255 + 255);
        let over = "x".repeat(256);
        assert_eq!(socks_auth(&over, "p"), Err(SocksError::CredentialsTooLong));
        assert_eq!(socks_auth("u", &over), Err(SocksError::CredentialsTooLong));
        assert_eq!(parse_auth_answer([1, 0]), Ok(()));
        assert_eq!(parse_auth_answer([5, 0]), Ok(()));
        assert_eq!(parse_auth_answer([1, 1]), Err(SocksError::AuthRejected));
        assert_eq!(parse_auth_answer([1, 0xff]), Err(SocksError::AuthRejected));
        assert_eq!(parse_auth_answer([0x48, 0x54]), Err(SocksError::NotSocks5));
    }

    #[test]
    fn socks_connect_requests() {
        let v4 = SocksTarget::Ip("127.0.0.1".parse().unwrap());
        assert_eq!(
            socks_connect(v4, 0x1f90).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]
        );
        let v6 = SocksTarget::Ip("::1".parse().unwrap());
        let mut expect = vec![5, 1, 0, 4];
        expect.extend_from_slice(&[0; 15]);
        expect.extend_from_slice(&[1, 0, 80]);
        assert_eq!(socks_connect(v6, 80).unwrap(), expect);
        assert_eq!(
            socks_connect(SocksTarget::Name("ab.c"), 443).unwrap(),
            [5, 1, 0, 3, 4, b'a', b'b', b'.', b'c', 1, 0xbb]
        );
        let max = "n".repeat(255);
        assert_eq!(
            socks_connect(SocksTarget::Name(&max), 1).unwrap().len(),
            5 + 255 + 2
        );
        let over = "n".repeat(256);
        assert_eq!(
            socks_connect(SocksTarget::Name(&over), 1),
            Err(SocksError::NameTooLong)
        );
    }

    #[test]
    fn socks_replies() {
        let v4 = [5, 0, 0, 1, 10, 0, 0, 1, 0x30, 0x39];
        for cut in 0..v4.len() {
            match parse_reply(&v4[..cut]).unwrap() {
                Reply::Need(n) => assert!(n > cut && n <= v4.len(), "cut {cut}: need {n}"),
                Reply::Done(_) => panic!("done at {cut}"),
            }
        }
        assert_eq!(parse_reply(&v4), Ok(Reply::Done(10)));
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend_from_slice(&[0; 18]);
        assert_eq!(parse_reply(&v6[..4]), Ok(Reply::Need(22)));
        assert_eq!(parse_reply(&v6), Ok(Reply::Done(22)));
        let name = [5, 0, 0, 3, 3, b'a', b'b', b'c', 0, 80];
        assert_eq!(parse_reply(&name[..4]), Ok(Reply::Need(5)));
        assert_eq!(parse_reply(&name[..5]), Ok(Reply::Need(10)));
        assert_eq!(parse_reply(&name), Ok(Reply::Done(10)));
        // A refusal is known from two bytes.
        assert_eq!(parse_reply(&[5, 5]), Err(SocksError::Reply(5)));
        assert_eq!(parse_reply(&[5, 2, 0, 1]), Err(SocksError::Reply(2)));
        assert_eq!(parse_reply(&[4, 0]), Err(SocksError::NotSocks5));
        assert_eq!(
            parse_reply(&[5, 0, 0, 9]),
            Err(SocksError::BadAddressType(9))
        );
    }

    #[test]
    fn socks_reply_words() {
        assert_eq!(
            SocksError::Reply(5).to_string(),
            "connection refused by the destination host"
        );
        assert_eq!(reply_words(1), "general SOCKS server failure");
        assert_eq!(
            reply_words(2),
            "connection not allowed by the proxy's rules"
        );
        assert_eq!(reply_words(4), "host unreachable");
        assert_eq!(reply_words(9), "unassigned reply code 9");
        assert!(SocksError::Reply(4).is_destination_unreachable());
        assert!(!SocksError::Reply(2).is_destination_unreachable());
        assert!(!SocksError::AuthRejected.is_destination_unreachable());
    }
}
