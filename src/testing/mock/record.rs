//! What the mock server received: each request's head and each connection's frames.

/// An upgrade request (or any request) as the mock server received it.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use syncws::testing::{MockResponse, MockServer};
/// let server = MockServer::start()?;
/// server.enqueue(MockResponse::refuse(401));
/// let request = syncws::Request::builder(&server.url_for("/feed?room=7"))
///     .header("Authorization", "Bearer t0k3n")
///     .subprotocol("feed.v1")
///     .build()?;
/// let _ = syncws::Client::new().connect(request); // refused: 401
/// let seen = server.take_request(Duration::from_secs(5)).expect("a request");
/// assert_eq!(seen.method(), "GET");
/// assert_eq!(seen.target(), "/feed?room=7");
/// assert_eq!(seen.header("authorization"), Some("Bearer t0k3n"));
/// assert_eq!(seen.subprotocols(), ["feed.v1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRequest {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) connection: usize,
}

impl MockRequest {
    /// The method (`GET` for an upgrade).
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { let _: &str = r.method(); }
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target: path and query, as sent.
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { let _: &str = r.target(); }
    /// ```
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every header, in order, as sent.
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { for (name, value) in r.headers() { println!("{name}: {value}"); } }
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header named `name` (any case).
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { let _ = r.header("sec-websocket-version"); }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The subprotocols offered (`Sec-WebSocket-Protocol`, every header, in order).
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { let _: Vec<String> = r.subprotocols(); }
    /// ```
    pub fn subprotocols(&self) -> Vec<String> {
        self.list("Sec-WebSocket-Protocol", ',')
    }

    /// The extensions offered (`Sec-WebSocket-Extensions`), one entry per offer with its
    /// parameters, e.g. `"permessage-deflate; client_max_window_bits"`.
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { let _: Vec<String> = r.extensions(); }
    /// ```
    pub fn extensions(&self) -> Vec<String> {
        self.list("Sec-WebSocket-Extensions", ',')
    }

    /// Which connection (1, 2, ...) sent it.
    ///
    /// ```
    /// # let r: Option<syncws::testing::MockRequest> = None;
    /// # if let Some(r) = r { assert!(r.connection() >= 1); }
    /// ```
    pub fn connection(&self) -> usize {
        self.connection
    }

    fn list(&self, name: &str, sep: char) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(sep))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// One frame a connection received, as it came: opcode, FIN, RSV1 and the unmasked payload
/// (still compressed when RSV1 is set).
///
/// ```
/// use syncws::testing::MockFrame;
/// let frame = MockFrame { opcode: MockFrame::TEXT, fin: true, rsv1: false, payload: b"hi".to_vec() };
/// assert!(frame.is_text());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockFrame {
    /// The opcode: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong.
    pub opcode: u8,
    /// The FIN bit.
    pub fin: bool,
    /// The RSV1 bit (a compressed message's first frame).
    pub rsv1: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl MockFrame {
    /// A continuation frame's opcode.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame's opcode.
    pub const TEXT: u8 = 0x1;
    /// A binary frame's opcode.
    pub const BINARY: u8 = 0x2;
    /// A close frame's opcode.
    pub const CLOSE: u8 = 0x8;
    /// A ping's opcode.
    pub const PING: u8 = 0x9;
    /// A pong's opcode.
    pub const PONG: u8 = 0xA;

    /// Whether this is a text frame.
    ///
    /// ```
    /// # use syncws::testing::MockFrame;
    /// # let f = MockFrame { opcode: MockFrame::PING, fin: true, rsv1: false, payload: vec![] };
    /// assert!(!f.is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        self.opcode == Self::TEXT
    }

    /// A close frame's code, if this is one and it has a code.
    ///
    /// ```
    /// # use syncws::testing::MockFrame;
    /// let f = MockFrame { opcode: MockFrame::CLOSE, fin: true, rsv1: false, payload: vec![0x03, 0xE8] };
    /// assert_eq!(f.close_code(), Some(1000));
    /// ```
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (Self::CLOSE, [a, b, ..]) => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}
