//! What a socket counts for [`WebSocket::stats`](crate::WebSocket::stats): the receiving
//! side's counts (published by the reader), when it opened, and the sending side's (the
//! outbox's) and the session's pong round trips, read together into one snapshot.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::Socket;
use crate::stats::{Received, Stats};

#[derive(Default)]
pub(crate) struct Traffic {
    /// What the reader received.
    pub received: Received,
    /// When the handshake completed.
    pub opened_at: OnceLock<SystemTime>,
}

impl Socket {
    /// A snapshot of the socket's traffic.
    pub(crate) fn stats(&self) -> Stats {
        let sent = self.outbox.sent_stats();
        let (pongs, rtt) = self.with_session(|s| s.pong_stats());
        let r = &self.traffic.received;
        Stats {
            messages_sent: sent.messages,
            bytes_sent: sent.bytes,
            messages_received: r.messages.load(Ordering::Relaxed),
            bytes_received: r.bytes.load(Ordering::Relaxed),
            wire_bytes_sent: sent.wire,
            wire_bytes_received: r.wire.load(Ordering::Relaxed),
            frames_sent: sent.frames,
            frames_received: r.frames.load(Ordering::Relaxed),
            queue_high_water: sent.high_water,
            pings_sent: sent.pings,
            pongs_received: pongs,
            last_rtt: rtt,
            opened_at: self.traffic.opened_at.get().copied(),
        }
    }
}
