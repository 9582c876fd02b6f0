//! What permessage-deflate negotiates, and the settings the server role negotiates by.

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const NAME: &str = "permessage-deflate";
/// The client's offer: permessage-deflate, and it can compress with a smaller window if asked.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Negotiated parameters, from one endpoint's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// We reset our compressor after every message.
    pub send_no_context_takeover: bool,
    /// The peer resets its compressor after every message, so we reset our inflater too.
    pub recv_no_context_takeover: bool,
    /// The largest window we may compress with.
    pub send_max_window_bits: u8,
    /// A broadcast's prepared frame, deflated once, may be shared with this connection: the
    /// server compresses without context takeover and with the window it chose for itself
    /// (`server_max_window_bits` as configured), not a smaller one the client asked for. A
    /// client choosing its own window gets each broadcast compressed for it alone, so clients
    /// cannot make a broadcaster keep one compressor per window size.
    pub shared_frames: bool,
}

/// The server role's compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// Whether the server accepts permessage-deflate at all.
    pub enabled: bool,
    /// Answer with `server_no_context_takeover` even when the offer does not ask for it: our
    /// compressor resets after every message.
    pub server_no_context_takeover: bool,
    /// Answer with `client_no_context_takeover` even when the offer does not ask for it: the
    /// client's compressor resets after every message.
    pub client_no_context_takeover: bool,
    /// The largest window (8-15) we compress with.
    pub server_max_window_bits: u8,
    /// The largest window (8-15) we ask the client to compress with, when its offer lets us.
    pub client_max_window_bits: u8,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}
