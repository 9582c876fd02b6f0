//! A server handler's answer to an upgrade request.

use crate::byte_stream::ByteStream;
use crate::connection::Connection;
use crate::driver::{Decision, Opening};
use crate::header::Header;
use crate::listener::{Bound, WebSocketListener};
use crate::websocket::WebSocket;

/// A server handler's answer to an upgrade request: upgrade (with a listener) or refuse (with
/// an HTTP status), plus any headers to add to the answer.
///
/// When a cookie authenticates the upgrade, as below, also set
/// [`ServerBuilder::allowed_origins`](super::ServerBuilder::allowed_origins): browsers send cookies with WebSockets that any site's
/// pages open (cross-site WebSocket hijacking, `docs/connecting.md`).
///
/// ```
/// use syncws::{Accept, Listener, Request};
/// fn handle(request: &Request) -> Accept {
///     if request.header("Authorization") != Some("Bearer secret") {
///         return Accept::reject(401, "Unauthorized")
///             .header("WWW-Authenticate", "Bearer realm=\"chat\"");
///     }
///     Accept::upgrade(Listener::new()).header("Set-Cookie", "session=1; HttpOnly")
/// }
/// # let _ = handle;
/// ```
pub struct Accept {
    answer: Answer,
    headers: Vec<Header>,
    data: Option<crate::request::SocketData>,
}

enum Answer {
    Upgrade {
        subprotocol: Option<String>,
        listener: Box<dyn WebSocketListener>,
    },
    Connection {
        subprotocol: Option<String>,
        serve: Box<dyn FnOnce(Connection) + Send>,
        /// The connection is a byte stream's (see `Accept::byte_stream`).
        byte_stream: bool,
    },
    Reject {
        status: u16,
        reason: String,
    },
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = match &self.answer {
            Answer::Upgrade { subprotocol, .. } => {
                let mut d = f.debug_struct("Upgrade");
                d.field("subprotocol", subprotocol);
                d
            }
            Answer::Connection { subprotocol, .. } => {
                let mut d = f.debug_struct("Connection");
                d.field("subprotocol", subprotocol);
                d
            }
            Answer::Reject { status, reason } => {
                let mut d = f.debug_struct("Reject");
                d.field("status", status).field("reason", reason);
                d
            }
        };
        d.field("headers", &self.headers).finish_non_exhaustive()
    }
}

impl Accept {
    /// Upgrade with no subprotocol; `listener` hears the socket's events, as for a client
    /// socket.
    pub fn upgrade(listener: impl WebSocketListener) -> Accept {
        Accept::answer(Answer::Upgrade {
            subprotocol: None,
            listener: Box::new(listener),
        })
    }

    /// Upgrade, confirming `subprotocol`; it must be one the client offered (another is
    /// ignored, with a warning in the log).
    pub fn upgrade_with(subprotocol: &str, listener: impl WebSocketListener) -> Accept {
        Accept::answer(Answer::Upgrade {
            subprotocol: Some(subprotocol.to_owned()),
            listener: Box::new(listener),
        })
    }

    /// Upgrade with no subprotocol, and serve the socket as a blocking [`Connection`]: `serve`
    /// gets it once the 101 is written, on a thread of its own (`syncws-conn`, a plain
    /// thread that ends when `serve` returns), and may block on it for the connection's
    /// life: `recv`, `recv_stream`, a [`ByteStream`]. Dropping the
    /// `Connection` closes the socket (1000), as on the client side.
    ///
    /// ```
    /// use syncws::{Accept, Server};
    /// let server = Server::bind("127.0.0.1:0", |_| {
    ///     Accept::connection(|mut conn| {
    ///         // One thread per connection, blocking calls: an echo.
    ///         while let Ok(message) = conn.recv() {
    ///             conn.send(message);
    ///         }
    ///     })
    /// })?;
    /// let mut client = syncws::connect(&server.url())?;
    /// client.send("hi");
    /// assert_eq!(client.recv()?.as_text(), Some("hi"));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn connection(serve: impl FnOnce(Connection) + Send + 'static) -> Accept {
        Accept::answer(Answer::Connection {
            subprotocol: None,
            serve: Box::new(serve),
            byte_stream: false,
        })
    }

    /// Upgrade with no subprotocol, and serve the socket as a [`ByteStream`]
    /// on a thread of its own, as [`connection`](Self::connection) does: the peer's bytes
    /// are read, and its close heard, as a byte stream's from the start.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use syncws::{Accept, ByteStream, Server};
    /// let server = Server::bind("127.0.0.1:0", |_| {
    ///     Accept::byte_stream(|stream| {
    ///         let (mut reader, mut writer) = stream.split();
    ///         let _ = std::io::copy(&mut reader, &mut writer);
    ///     })
    /// })?;
    /// let mut stream = ByteStream::connect(&server.url())?;
    /// stream.write_all(b"echo")?;
    /// let mut got = [0u8; 4];
    /// stream.read_exact(&mut got)?;
    /// assert_eq!(&got, b"echo");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn byte_stream(serve: impl FnOnce(ByteStream) + Send + 'static) -> Accept {
        Accept::answer(Answer::Connection {
            subprotocol: None,
            serve: Box::new(move |conn| serve(ByteStream::new(conn))),
            byte_stream: true,
        })
    }

    /// As [`connection`](Self::connection), confirming `subprotocol` (one the client
    /// offered).
    pub fn connection_with(
        subprotocol: &str,
        serve: impl FnOnce(Connection) + Send + 'static,
    ) -> Accept {
        Accept::answer(Answer::Connection {
            subprotocol: Some(subprotocol.to_owned()),
            serve: Box::new(serve),
            byte_stream: false,
        })
    }

    /// Refuse the upgrade with an HTTP status (e.g. 401, 403, 404) and reason phrase.
    pub fn reject(status: u16, reason: &str) -> Accept {
        Accept::answer(Answer::Reject {
            status,
            reason: reason.to_owned(),
        })
    }

    fn answer(answer: Answer) -> Accept {
        Accept {
            answer,
            headers: Vec::new(),
            data: None,
        }
    }

    /// Attaches the application's `value` to the socket this upgrade makes, for every
    /// callback to read with [`WebSocket::data`] (the user the request authenticated, the
    /// room its path names, its claims), without a map keyed by socket. Set before the first
    /// callback; ignored on a rejection.
    ///
    /// ```
    /// use syncws::{Accept, Listener, Server};
    /// struct User(String);
    /// let server = Server::bind("127.0.0.1:0", |request| {
    ///     let name = request.header("X-User").unwrap_or("guest").to_owned();
    ///     Accept::upgrade(Listener::new().on_message(|ws, m| {
    ///         let user = ws.data::<User>().expect("set at the upgrade");
    ///         ws.send(format!("{}: {}", user.0, m.as_text().unwrap_or("")));
    ///     }))
    ///     .data(User(name))
    /// })?;
    /// let mut conn = syncws::connect(&server.url())?;
    /// conn.send("hi");
    /// assert_eq!(conn.recv()?.as_text(), Some("guest: hi"));
    /// # Ok::<(), syncws::Error>(())
    /// ```
    pub fn data<T: std::any::Any + Send + Sync>(mut self, value: T) -> Accept {
        self.data = Some(std::sync::Arc::new(value));
        self
    }

    /// Adds a header to the answer: `Set-Cookie` on an upgrade, `WWW-Authenticate` on a 401,
    /// `Retry-After` on a 503...
    ///
    /// Headers the server writes itself (`Upgrade`, `Connection`, `Sec-WebSocket-*`,
    /// `Content-Length`, `Transfer-Encoding`) and invalid ones (a name that is not a token, a
    /// value with CR, LF or another control byte: header injection) are left out, with a
    /// warning in the log: the handler's answer still goes out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Accept {
        let h = Header::new(name.into(), value.into());
        if let Some(why) = crate::header::invalid(h.name(), h.value()) {
            log::warn!("accept handler: {why}; header left out");
        } else if crate::header::written_by_syncws(h.name()) {
            log::warn!(
                "accept handler: header {} is written by syncws itself; left out",
                h.name()
            );
        } else {
            self.headers.push(h);
        }
        self
    }

    /// The headers added with [`header`](Self::header).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The driver's view of this answer: the listener is bound to its socket once the socket
    /// exists.
    pub(crate) fn into_decision(self) -> Decision {
        let data = self.data;
        // The socket's handle, with the handler's data attached: the bind runs before the
        // socket's reader starts, so before its first callback.
        let adopt = move |opening: &Opening<'_>| {
            if let Some(d) = data {
                let _ = opening.socket.data.set(d);
            }
            WebSocket {
                socket: opening.socket.clone(),
            }
        };
        match self.answer {
            Answer::Upgrade {
                subprotocol,
                listener,
            } => Decision::Upgrade {
                subprotocol,
                headers: self.headers,
                bind: Box::new(move |opening: Opening<'_>| Bound::new(adopt(&opening), listener)),
            },
            Answer::Connection {
                subprotocol,
                serve,
                byte_stream,
            } => Decision::Upgrade {
                subprotocol,
                headers: self.headers,
                bind: Box::new(move |opening: Opening<'_>| {
                    let ws = adopt(&opening);
                    let (feed, unconnected) =
                        Connection::feed(opening.config.streams_from_start(), byte_stream);
                    let conn = unconnected.into_connection(
                        ws,
                        opening.response.clone(),
                        opening.config.max_message_size,
                    );
                    let spawned = std::thread::Builder::new()
                        .name("syncws-conn".into())
                        .spawn(move || serve(conn));
                    if let Err(e) = spawned {
                        // The connection went with the closure: dropping it closed the socket.
                        log::error!("could not start a thread for a server connection: {e}");
                    }
                    Box::new(feed)
                }),
            },
            Answer::Reject { status, reason } => Decision::Reject {
                status,
                reason,
                headers: self.headers,
            },
        }
    }
}
