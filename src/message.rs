//! The application-level message type.

/// A whole web socket message, as sent with [`WebSocket::send`](crate::WebSocket::send) and
/// received in [`WebSocketListener::on_message`](crate::WebSocketListener::on_message).
///
/// ```
/// use syncws::Message;
/// assert_eq!(Message::from("hi"), Message::Text("hi".to_string()));
/// assert_eq!(Message::from(vec![1u8, 2]), Message::Binary(vec![1, 2]));
/// assert_eq!(Message::from("hi").len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (opcode 0x1), always valid UTF-8.
    Text(String),
    /// A binary message (opcode 0x2).
    Binary(Vec<u8>),
}

impl Message {
    /// The payload size in bytes (UTF-8 bytes for text), as counted by `queue_size`.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&String> for Message {
    fn from(s: &String) -> Self {
        Message::Text(s.clone())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Message {
    fn from(b: &[u8; N]) -> Self {
        Message::Binary(b.to_vec())
    }
}

/// Whether a message is text or binary, for the messages sent and received as streams
/// ([`WebSocket::send_stream`](crate::WebSocket::send_stream),
/// [`Connection::recv_stream`](crate::Connection::recv_stream)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Text (opcode 0x1): valid UTF-8 as a whole.
    Text,
    /// Binary (opcode 0x2).
    Binary,
}

impl Message {
    /// Whether this is a text or a binary message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }
}

/// A piece of a large incoming message, for a listener that takes large messages in parts
/// ([`WebSocketListener::on_message_part`](crate::WebSocketListener::on_message_part)): the
/// parts of one message come in order, nothing but the socket's control frames between them.
///
/// A text message's parts each end on a whole character, so every part is valid UTF-8 on its
/// own ([`as_text`](Self::as_text)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePart {
    pub(crate) kind: MessageKind,
    pub(crate) first: bool,
    pub(crate) last: bool,
    pub(crate) data: Vec<u8>,
}

impl MessagePart {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether this is the message's first part.
    pub fn is_first(&self) -> bool {
        self.first
    }

    /// Whether this is the message's last part (it may be empty).
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// The part's payload bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// A text part's text.
    pub fn as_text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }

    /// The payload, to keep.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}
