//! The seam between application code and the sockets it opens: the seed's
//! `WebSocket.Factory`.

use crate::listener::WebSocketListener;
use crate::request::Request;
use crate::websocket::WebSocket;

/// Makes web sockets: what application code should depend on, so that its tests can hand it
/// something else.
///
/// [`Client`](crate::Client) implements it, and so does the test kit's in-memory
/// `testing::FakeFactory` (feature `testing`). The trait is object-safe: hold an
/// `Arc<dyn WebSocketFactory>`.
///
/// ```
/// use std::sync::Arc;
/// use syncws::{Request, WebSocket, WebSocketFactory};
///
/// /// Application code: it opens its feed through whatever factory it was given.
/// struct Feed {
///     factory: Arc<dyn WebSocketFactory>,
/// }
///
/// impl Feed {
///     fn subscribe(&self, url: &str) -> Result<WebSocket, syncws::Error> {
///         let request = Request::builder(url).header("Authorization", "Bearer t").build()?;
///         Ok(self.factory.new_web_socket(request, Box::new(syncws::Listener::new())))
///     }
/// }
///
/// // In production, a client:
/// let server = syncws::EchoServer::start()?;
/// let feed = Feed { factory: Arc::new(syncws::Client::new()) };
/// let ws = feed.subscribe(&server.url())?;
/// ws.cancel();
/// # Ok::<(), syncws::Error>(())
/// ```
pub trait WebSocketFactory: Send + Sync {
    /// Starts connecting to `request` and returns at once; `listener` hears how it goes, as
    /// with [`Client::new_web_socket`](crate::Client::new_web_socket).
    fn new_web_socket(&self, request: Request, listener: Box<dyn WebSocketListener>) -> WebSocket;
}
