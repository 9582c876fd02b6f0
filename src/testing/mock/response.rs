//! [`MockResponse`]: the builder of what the mock server answers one connection with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::script::{Check, Kind, Step, quote};
use crate::message::Message;

/// The mock server's answer to one connection: a refusal, or an upgrade followed by a script.
///
/// Build it, then [`MockServer::enqueue`](super::MockServer::enqueue) it; each connection
/// takes the next one, in order.
///
/// After the last step, an upgraded connection stays open as a polite server would: it answers
/// pings (unless [`ignore_pings`](Self::ignore_pings)), answers the client's close with the
/// same code, and ends when the client does (or the server is dropped).
///
/// ```
/// use syncws::testing::MockResponse;
/// // A chat server that greets, expects the login, and says goodbye.
/// let script = MockResponse::upgrade()
///     .subprotocol("chat.v1")
///     .send_text("welcome")
///     .expect_text("login ann")
///     .close(1000, "bye")
///     .expect_close();
/// // One that refuses: 401 with a challenge.
/// let refusal = MockResponse::refuse(401).header("WWW-Authenticate", "Bearer");
/// # let _ = (script, refusal);
/// ```
#[derive(Clone)]
pub struct MockResponse {
    pub(crate) kind: Kind,
    pub(crate) headers: Vec<(String, String)>,
    /// Checks on the request this answers (`expect_header`): a header's name and the check
    /// of its value, before anything is written.
    pub(crate) request_checks: Vec<(String, Check<str>)>,
    /// How long to wait before writing the response head (`headers_delay`).
    pub(crate) head_delay: Duration,
    /// How many writes the head is cut into (`head_in_pieces`; 1: one write).
    pub(crate) head_pieces: usize,
}

impl fmt::Debug for MockResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Refuse { status, .. } => write!(f, "MockResponse::refuse({status})"),
            Kind::Tunnel => f.write_str("MockResponse::tunnel()"),
            Kind::Upgrade { steps, .. } => {
                let steps: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
                write!(f, "MockResponse::upgrade({})", steps.join(", "))
            }
        }
    }
}

impl MockResponse {
    /// Refuses the upgrade with `status` (any code: 401, 429, a 3xx, 500...), an empty body
    /// and `Content-Length: 0` unless [`body`](Self::body) says otherwise.
    ///
    /// ```
    /// use syncws::testing::MockResponse;
    /// let slow_down = MockResponse::refuse(429).header("Retry-After", "2").body("later");
    /// let moved = MockResponse::refuse(301).header("Location", "ws://127.0.0.1:1/new");
    /// # let _ = (slow_down, moved);
    /// ```
    pub fn refuse(status: u16) -> MockResponse {
        MockResponse {
            kind: Kind::Refuse {
                status,
                reason: reason_phrase(status).to_owned(),
                body: Vec::new(),
            },
            headers: Vec::new(),
            request_checks: Vec::new(),
            head_delay: Duration::ZERO,
            head_pieces: 1,
        }
    }

    /// Accepts the upgrade (`101`), then plays the steps added after it.
    ///
    /// ```
    /// let echo_once = syncws::testing::MockResponse::upgrade()
    ///     .expect_text("hi")
    ///     .send_text("hi");
    /// # let _ = echo_once;
    /// ```
    pub fn upgrade() -> MockResponse {
        MockResponse {
            kind: Kind::Upgrade {
                subprotocol: None,
                deflate: false,
                answer_pings: true,
                steps: Vec::new(),
            },
            headers: Vec::new(),
            request_checks: Vec::new(),
            head_delay: Duration::ZERO,
            head_pieces: 1,
        }
    }

    /// Answers a proxy's `CONNECT` with `200 Connection established` and carries the tunnel
    /// (OkHttp's `inTunnel`): when the target is this mock server, the next enqueued response
    /// plays inside the tunnel, so a client's proxy settings are tested with no proxy at all;
    /// any other target is dialed and the bytes are relayed both ways until either side ends.
    /// The `CONNECT` request is recorded like any other (check `Proxy-Authorization` with
    /// [`expect_header`](Self::expect_header)).
    ///
    /// ```
    /// use syncws::testing::{MockResponse, MockServer};
    /// let mock = MockServer::start()?;
    /// mock.enqueue(MockResponse::tunnel());
    /// mock.enqueue(MockResponse::upgrade().send_text("through the tunnel"));
    /// let client = syncws::Client::builder()
    ///     .proxy(syncws::Proxy::http(&format!("http://{}", mock.addr()))?)
    ///     .build();
    /// let request = syncws::Request::builder(&mock.url()).build()?;
    /// let mut conn = client.connect(request)?;
    /// assert_eq!(conn.recv()?.as_text(), Some("through the tunnel"));
    /// assert_eq!(mock.take_request(std::time::Duration::from_secs(5)).expect("CONNECT").method(), "CONNECT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tunnel() -> MockResponse {
        MockResponse {
            kind: Kind::Tunnel,
            headers: Vec::new(),
            request_checks: Vec::new(),
            head_delay: Duration::ZERO,
            head_pieces: 1,
        }
    }

    /// Checks that the request this answers has a header `name` (any case) equal to `value`;
    /// if not, the mock records a failure (as a failed `expect_*` step does: see
    /// [`MockServer::verify`](super::MockServer::verify)) and answers 400 instead.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .expect_header("Authorization", "Bearer token-1")
    ///     .expect_header("Sec-WebSocket-Protocol", "chat.v1");
    /// # let _ = r;
    /// ```
    pub fn expect_header(self, name: &str, value: &str) -> MockResponse {
        let value = value.to_owned();
        self.expect_header_where(name, &format!("= {value:?}"), move |v| v == value)
    }

    /// Checks that the request has a header `name` whose value passes `test` (`describe`
    /// says what it checks, for the failure message), as [`expect_header`](Self::expect_header).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .expect_header_where("User-Agent", "names the app", |v| v.starts_with("my-app/"));
    /// # let _ = r;
    /// ```
    pub fn expect_header_where(
        mut self,
        name: &str,
        describe: &str,
        test: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> MockResponse {
        self.request_checks.push((
            name.to_owned(),
            Check {
                describe: describe.to_owned(),
                test: Arc::new(test),
            },
        ));
        self
    }

    /// Waits `delay` after reading the request before writing the response head (OkHttp's
    /// `headersDelay`): for a client's handshake timeout, or a slow server.
    ///
    /// ```
    /// use std::time::Duration;
    /// let slow = syncws::testing::MockResponse::upgrade().headers_delay(Duration::from_millis(500));
    /// # let _ = slow;
    /// ```
    pub fn headers_delay(mut self, delay: Duration) -> MockResponse {
        self.head_delay = delay;
        self
    }

    /// Writes the response head in `pieces` writes (at least 1), a few milliseconds apart, so
    /// the client reads it in pieces: for a client that must put a head together across
    /// reads.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().head_in_pieces(7);
    /// # let _ = r;
    /// ```
    pub fn head_in_pieces(mut self, pieces: usize) -> MockResponse {
        self.head_pieces = pieces.max(1);
        self
    }

    /// Adds a response header (to a refusal or to the `101`).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::refuse(401).header("WWW-Authenticate", "Bearer");
    /// # let _ = r;
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> MockResponse {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A refusal's body (ignored on an upgrade).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::refuse(500).body("database down");
    /// # let _ = r;
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> MockResponse {
        if let Kind::Refuse { body: b, .. } = &mut self.kind {
            *b = body.into();
        }
        self
    }

    /// Answers the upgrade with `Sec-WebSocket-Protocol: protocol`, whether the client offered
    /// it or not (so a test can check that the client refuses one it did not offer).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().subprotocol("chat.v2");
    /// # let _ = r;
    /// ```
    pub fn subprotocol(mut self, protocol: &str) -> MockResponse {
        if let Kind::Upgrade { subprotocol, .. } = &mut self.kind {
            *subprotocol = Some(protocol.to_owned());
        }
        self
    }

    /// Accepts permessage-deflate when the client offers it (off by default). The mock
    /// inflates what the client compressed before the `expect_*` steps compare it; the frames
    /// it records keep their compressed payloads and RSV1. It sends uncompressed.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().deflate(true).expect_text("small");
    /// # let _ = r;
    /// ```
    pub fn deflate(mut self, accept: bool) -> MockResponse {
        if let Kind::Upgrade { deflate, .. } = &mut self.kind {
            *deflate = accept;
        }
        self
    }

    /// Never answers the client's pings (to exercise its pong timeout); by default the mock
    /// answers each ping with a pong, as a server does.
    ///
    /// ```
    /// let deaf = syncws::testing::MockResponse::upgrade().ignore_pings();
    /// # let _ = deaf;
    /// ```
    pub fn ignore_pings(mut self) -> MockResponse {
        if let Kind::Upgrade { answer_pings, .. } = &mut self.kind {
            *answer_pings = false;
        }
        self
    }

    fn step(mut self, step: Step) -> MockResponse {
        if let Kind::Upgrade { steps, .. } = &mut self.kind {
            steps.push(step);
        }
        self
    }

    /// Expects the client's next message to be the text `text` (pings and pongs in between are
    /// skipped, pings answered).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().expect_text("hello");
    /// # let _ = r;
    /// ```
    pub fn expect_text(self, text: &str) -> MockResponse {
        let want = text.to_owned();
        self.step(Step::ExpectText(Check {
            describe: quote(text),
            test: Arc::new(move |t: &str| t == want),
        }))
    }

    /// Expects the client's next message to be text for which `test` holds; `describe` says
    /// what was expected, in the failure message.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .expect_text_where("a JSON object", |t| t.starts_with('{'));
    /// # let _ = r;
    /// ```
    pub fn expect_text_where(
        self,
        describe: &str,
        test: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> MockResponse {
        self.step(Step::ExpectText(Check {
            describe: format!("({describe})"),
            test: Arc::new(test),
        }))
    }

    /// Expects the client's next message to be binary, equal to `bytes`.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().expect_binary([1, 2, 3]);
    /// # let _ = r;
    /// ```
    pub fn expect_binary(self, bytes: impl Into<Vec<u8>>) -> MockResponse {
        let want: Vec<u8> = bytes.into();
        self.step(Step::ExpectBinary(Check {
            describe: format!("({} bytes)", want.len()),
            test: Arc::new(move |b: &[u8]| b == want.as_slice()),
        }))
    }

    /// Expects the client's next message to be binary for which `test` holds.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .expect_binary_where("1 MiB", |b| b.len() == 1 << 20);
    /// # let _ = r;
    /// ```
    pub fn expect_binary_where(
        self,
        describe: &str,
        test: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
    ) -> MockResponse {
        self.step(Step::ExpectBinary(Check {
            describe: format!("({describe})"),
            test: Arc::new(test),
        }))
    }

    /// Expects a ping from the client (its keep-alive); it is answered unless
    /// [`ignore_pings`](Self::ignore_pings).
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .within(Duration::from_secs(2))
    ///     .expect_ping();
    /// # let _ = r;
    /// ```
    pub fn expect_ping(self) -> MockResponse {
        self.step(Step::ExpectPing)
    }

    /// Expects the client's close frame (any code). If the mock has not closed yet, it answers
    /// with the same code.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().expect_close();
    /// # let _ = r;
    /// ```
    pub fn expect_close(self) -> MockResponse {
        self.step(Step::ExpectClose(None))
    }

    /// Expects the client's close frame with `code`.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().expect_close_with(1000);
    /// # let _ = r;
    /// ```
    pub fn expect_close_with(self, code: u16) -> MockResponse {
        self.step(Step::ExpectClose(Some(code)))
    }

    /// Expects the client to end the TCP connection (EOF), with nothing but pings and pongs
    /// before it: what a client does after the close handshake, or after it failed.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_raw([0x83, 0x00]).expect_close().expect_eof();
    /// # let _ = r;
    /// ```
    pub fn expect_eof(self) -> MockResponse {
        self.step(Step::ExpectEof)
    }

    /// Sends a text message in one frame.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_text("hello");
    /// # let _ = r;
    /// ```
    pub fn send_text(self, text: &str) -> MockResponse {
        self.step(Step::Send(Message::Text(text.to_owned())))
    }

    /// Sends a binary message in one frame.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_binary(vec![0u8; 1024]);
    /// # let _ = r;
    /// ```
    pub fn send_binary(self, bytes: impl Into<Vec<u8>>) -> MockResponse {
        self.step(Step::Send(Message::Binary(bytes.into())))
    }

    /// Sends `message` cut into `frames` frames (at least 1; a message shorter than that is
    /// cut into single bytes and empty frames).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_fragmented("a long story", 4);
    /// # let _ = r;
    /// ```
    pub fn send_fragmented(self, message: impl Into<Message>, frames: usize) -> MockResponse {
        self.step(Step::SendFragmented(message.into(), frames.max(1)))
    }

    /// Sends a ping with `payload` (at most 125 bytes, or it is a malformed frame: that is
    /// what [`send_raw`](Self::send_raw) is for, so longer payloads are cut).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_ping(b"are you there?");
    /// # let _ = r;
    /// ```
    pub fn send_ping(self, payload: &[u8]) -> MockResponse {
        self.step(Step::Ping(payload[..payload.len().min(125)].to_vec()))
    }

    /// Sends a pong with `payload` (unsolicited, or with a payload the client did not ask for;
    /// cut at 125 bytes).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_pong(b"");
    /// # let _ = r;
    /// ```
    pub fn send_pong(self, payload: &[u8]) -> MockResponse {
        self.step(Step::Pong(payload[..payload.len().min(125)].to_vec()))
    }

    /// Writes `bytes` as they are: malformed frames, a half frame before a drop...
    ///
    /// ```
    /// // A frame with a reserved opcode (0x3): the client must fail with close 1002.
    /// let r = syncws::testing::MockResponse::upgrade().send_raw([0x83, 0x00]);
    /// # let _ = r;
    /// ```
    pub fn send_raw(self, bytes: impl Into<Vec<u8>>) -> MockResponse {
        self.step(Step::Raw(bytes.into()))
    }

    /// Sends a close frame with `code` and `reason`; the client's answer is read by a later
    /// [`expect_close`](Self::expect_close) or, after the script, waited for.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().close(4000, "kicked").expect_close();
    /// # let _ = r;
    /// ```
    pub fn close(self, code: u16, reason: &str) -> MockResponse {
        self.step(Step::Close(Some(code), reason.to_owned()))
    }

    /// Sends an empty close frame (no code, no reason).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().close_empty();
    /// # let _ = r;
    /// ```
    pub fn close_empty(self) -> MockResponse {
        self.step(Step::Close(None, String::new()))
    }

    /// Waits `duration` before the next step.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .wait(std::time::Duration::from_millis(100))
    ///     .send_text("late");
    /// # let _ = r;
    /// ```
    pub fn wait(self, duration: Duration) -> MockResponse {
        self.step(Step::Wait(duration))
    }

    /// Stops reading from the connection: the client's sends pile up in the kernel's buffers,
    /// then in its queue (`queue_size` grows). A later `expect_*` step reads again; after the
    /// script the connection is held, unread, until the client ends it or the server is
    /// dropped.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().stop_reading();
    /// # let _ = r;
    /// ```
    pub fn stop_reading(self) -> MockResponse {
        self.step(Step::StopReading)
    }

    /// From here on, reads and writes go at most `bytes_per_second` (a slow network).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .throttle(16 * 1024)
    ///     .send_binary(vec![0u8; 64 * 1024]);
    /// # let _ = r;
    /// ```
    pub fn throttle(self, bytes_per_second: u64) -> MockResponse {
        self.step(Step::Throttle(bytes_per_second.max(1)))
    }

    /// Drops the TCP connection abruptly (a reset, no close frame): the script ends here.
    /// As on a real network, the reset may destroy what was sent just before it, unread;
    /// [`close_tcp`](Self::close_tcp) ends in order.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_text("bye?").drop_tcp();
    /// # let _ = r;
    /// ```
    pub fn drop_tcp(self) -> MockResponse {
        self.step(Step::DropTcp)
    }

    /// Ends the TCP connection in order (a FIN, no close frame): the script ends here.
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade().send_text("and then silence").close_tcp();
    /// # let _ = r;
    /// ```
    pub fn close_tcp(self) -> MockResponse {
        self.step(Step::CloseTcp)
    }

    /// The timeout of the `expect_*` steps that follow (5 s until set).
    ///
    /// ```
    /// let r = syncws::testing::MockResponse::upgrade()
    ///     .within(std::time::Duration::from_millis(500))
    ///     .expect_text("quick");
    /// # let _ = r;
    /// ```
    pub fn within(self, timeout: Duration) -> MockResponse {
        self.step(Step::Within(timeout))
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Mock",
    }
}
