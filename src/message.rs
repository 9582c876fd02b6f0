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
