//! Publish and subscribe: named topics that sockets join, and a publish that reaches every
//! subscriber with one framing (uWebSockets' pub/sub, on [`Prepared`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::message::Message;
use crate::prepared::{Delivery, Prepared, WhenFull};
use crate::websocket::WebSocket;

/// Named topics sockets subscribe to; [`publish`](Self::publish) frames (and compresses,
/// where the sockets allow) a message once and queues it on every subscriber, as
/// [`Prepared::send_to`] does, under a [`WhenFull`] policy for slow ones.
///
/// - A socket leaves every topic of this `Topics` when it ends (before its terminal
///   callback), so nothing needs cleaning up by hand and an ended socket is never published
///   to.
/// - Cheap to clone (a handle to one registry) and safe to use from any thread and from
///   callbacks: a chat server keeps one and captures a clone in each socket's listener.
/// - Publishing holds the registry for reading while it queues (never blocking on a slow
///   peer); subscribing and a socket's end take it for writing, briefly.
///
/// ```
/// use syncws::{Accept, Listener, Server, Topics, WhenFull};
/// let topics = Topics::new();
/// let room = topics.clone();
/// let server = Server::bind("127.0.0.1:0", move |_| {
///     let room = room.clone();
///     let echo = room.clone();
///     Accept::upgrade(
///         Listener::new()
///             .on_open(move |ws, _| {
///                 room.subscribe(ws, "lobby");
///                 ws.send("joined");
///             })
///             .on_message(move |_ws, m| {
///                 echo.publish("lobby", m, WhenFull::Close(1008));
///             }),
///     )
/// })?;
/// let mut alice = syncws::connect(&server.url())?;
/// let mut bob = syncws::connect(&server.url())?;
/// assert_eq!(alice.recv()?.as_text(), Some("joined"));
/// assert_eq!(bob.recv()?.as_text(), Some("joined"));
/// assert_eq!(topics.subscribers("lobby"), 2);
/// alice.send("hi, everyone");
/// assert_eq!(bob.recv()?.as_text(), Some("hi, everyone"));
/// assert_eq!(alice.recv()?.as_text(), Some("hi, everyone"));
/// # Ok::<(), syncws::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Topics {
    inner: Arc<RwLock<Registry>>,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.inner.read();
        f.debug_struct("Topics")
            .field("topics", &r.topics.len())
            .field("sockets", &r.sockets.len())
            .finish()
    }
}

#[derive(Default)]
struct Registry {
    /// Each topic's subscribers. A topic with none is removed.
    topics: HashMap<String, Vec<WebSocket>>,
    /// Each subscribed socket (by its identity) and its topics: the socket's end hook, one
    /// per socket and registry, removes it from all of them. The handle held here keeps the
    /// identity from being reused by another socket while the entry exists.
    sockets: HashMap<usize, (WebSocket, Vec<String>)>,
}

impl Registry {
    fn remove(&mut self, key: usize, topic: &str) -> bool {
        let Some(subs) = self.topics.get_mut(topic) else {
            return false;
        };
        let Some(i) = subs.iter().position(|ws| ws.key() == key) else {
            return false;
        };
        subs.swap_remove(i);
        if subs.is_empty() {
            self.topics.remove(topic);
        }
        true
    }

    /// The socket ended: out of every topic.
    fn forget(&mut self, key: usize) {
        if let Some((_, topics)) = self.sockets.remove(&key) {
            for t in topics {
                self.remove(key, &t);
            }
        }
    }
}

impl Topics {
    /// An empty registry.
    pub fn new() -> Topics {
        Topics::default()
    }

    /// Subscribes `ws` to `topic`. Returns false if it was subscribed already, or if the
    /// socket has ended (an ended socket subscribes to nothing).
    pub fn subscribe(&self, ws: &WebSocket, topic: &str) -> bool {
        let key = ws.key();
        let mut added = false;
        let registered = ws.socket.on_end(|| {
            let mut r = self.inner.write();
            let first = !r.sockets.contains_key(&key);
            let (_, topics) = r
                .sockets
                .entry(key)
                .or_insert_with(|| (ws.clone(), Vec::new()));
            if topics.iter().any(|t| t == topic) {
                return None;
            }
            topics.push(topic.to_owned());
            r.topics
                .entry(topic.to_owned())
                .or_default()
                .push(ws.clone());
            added = true;
            // One hook per socket and registry, however often it subscribes.
            first.then(|| {
                let registry: Weak<RwLock<Registry>> = Arc::downgrade(&self.inner);
                Box::new(move || {
                    if let Some(registry) = registry.upgrade() {
                        registry.write().forget(key);
                    }
                }) as crate::driver::EndHook
            })
        });
        registered && added
    }

    /// Unsubscribes `ws` from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&self, ws: &WebSocket, topic: &str) -> bool {
        let key = ws.key();
        let mut r = self.inner.write();
        if let Some((_, topics)) = r.sockets.get_mut(&key) {
            topics.retain(|t| t != topic);
        }
        r.remove(key, topic)
    }

    /// Queues `message` on every subscriber of `topic`, framed (and deflated, where the
    /// sockets allow it) once; a subscriber whose queue it does not fit in is skipped or
    /// closed, as `when_full` says. Never blocks. A topic nobody subscribes to delivers to
    /// nobody.
    pub fn publish(
        &self,
        topic: &str,
        message: impl Into<Message>,
        when_full: WhenFull,
    ) -> Delivery {
        self.publish_prepared(topic, &Prepared::new(message), when_full)
    }

    /// [`publish`](Self::publish) with a message prepared already (one message for several
    /// topics, or sent elsewhere too).
    pub fn publish_prepared(
        &self,
        topic: &str,
        prepared: &Prepared,
        when_full: WhenFull,
    ) -> Delivery {
        let r = self.inner.read();
        match r.topics.get(topic) {
            Some(subs) => prepared.send_to(subs, when_full),
            None => Delivery::default(),
        }
    }

    /// How many sockets subscribe to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.inner.read().topics.get(topic).map_or(0, Vec::len)
    }

    /// The topics `ws` subscribes to here.
    pub fn topics_of(&self, ws: &WebSocket) -> Vec<String> {
        self.inner
            .read()
            .sockets
            .get(&ws.key())
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    }
}
