//! Bytes on their way to the socket, and what they account for.

/// Which close frame a batch ends with, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CloseMark {
    #[default]
    None,
    /// Our close frame: once written, the session hears of it.
    Close,
    /// A failure close: once written, our side of TCP ends.
    FailClose,
}

/// Encoded frames, the payload and message counts they carry (for `queue_size`), and
/// whether they end with a close frame.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub bytes: Vec<u8>,
    /// Written up to here.
    pos: usize,
    /// The payload of a large message, masked in place, or a prepared message's whole frame
    /// (shared with other sockets), to write right after `bytes` (without copying it into
    /// them).
    tail: Option<Tail>,
    tail_pos: usize,
    /// Payload bytes and whole messages in it, for `queue_size`.
    payload: u64,
    messages: u64,
    pub close: CloseMark,
    /// The TLS session has output of its own to write with it.
    pub flush_tls: bool,
}

/// Bytes written from their own memory after the batch's buffer.
#[derive(Debug)]
pub(super) enum Tail {
    /// A large message's payload, this socket's own (masked for it).
    Owned(Vec<u8>),
    /// A prepared message's frame, the same bytes for every socket it goes to.
    Shared(std::sync::Arc<[u8]>),
}

impl std::ops::Deref for Tail {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Tail::Owned(v) => v,
            Tail::Shared(a) => a,
        }
    }
}

/// What a written batch accounted for.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub payload: u64,
    pub messages: u64,
    pub close: CloseMark,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.tail.is_none() && !self.flush_tls && self.payload == 0
    }

    /// A whole message of `payload` bytes is in the batch.
    pub(super) fn counted(&mut self, payload: u64) {
        self.payload = self.payload.saturating_add(payload);
        self.messages = self.messages.saturating_add(1);
    }

    /// The batch ends with a frame header whose payload (`tail`, `len` bytes of application
    /// payload) follows it unencoded: nothing more may be added until it is written.
    pub(super) fn set_tail(&mut self, tail: Vec<u8>, len: u64) {
        self.set_any_tail(Tail::Owned(tail), len);
    }

    /// The batch ends with a prepared message's whole frame (`len` bytes of application
    /// payload), written from the memory every socket it goes to shares.
    pub(super) fn set_shared_tail(&mut self, frame: std::sync::Arc<[u8]>, len: u64) {
        self.set_any_tail(Tail::Shared(frame), len);
    }

    fn set_any_tail(&mut self, tail: Tail, len: u64) {
        self.tail = Some(tail);
        self.tail_pos = 0;
        self.counted(len);
    }

    /// The batch ends with a streamed message's part (`len` bytes of application payload;
    /// its frame's payload `tail`); the message counts once its `last` part is in.
    pub(super) fn set_part_tail(&mut self, tail: Vec<u8>, len: u64, last: bool) {
        self.tail = Some(Tail::Owned(tail));
        self.tail_pos = 0;
        self.payload = self.payload.saturating_add(len);
        if last {
            self.messages = self.messages.saturating_add(1);
        }
    }

    /// Whether the batch ends with a tail still to write (nothing may be appended).
    pub(super) fn has_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// Moves everything `staged` holds to the end of this batch: a swap when this one is
    /// written out, so nothing is copied. Nothing moves while this batch still writes a tail
    /// (the tail must follow its frame header directly).
    pub(super) fn absorb(&mut self, staged: &mut Batch) {
        if self.tail.is_some() || staged.is_empty() {
            return;
        }
        if self.pos == self.bytes.len() {
            self.bytes.clear();
            self.pos = 0;
            std::mem::swap(&mut self.bytes, &mut staged.bytes);
        } else {
            self.bytes.extend_from_slice(&staged.bytes);
            staged.bytes.clear();
        }
        self.payload += std::mem::take(&mut staged.payload);
        self.messages += std::mem::take(&mut staged.messages);
        self.flush_tls |= std::mem::take(&mut staged.flush_tls);
        if staged.close != CloseMark::None {
            self.close = std::mem::take(&mut staged.close);
        }
    }

    /// What is left to write: from the buffer, then from the tail.
    pub(super) fn pending(&self) -> (&[u8], &[u8]) {
        let tail = self
            .tail
            .as_deref()
            .map_or(&[][..], |t| &t[self.tail_pos..]);
        (&self.bytes[self.pos..], tail)
    }

    pub(super) fn advance(&mut self, mut n: usize) {
        let from_bytes = n.min(self.bytes.len() - self.pos);
        self.pos += from_bytes;
        n -= from_bytes;
        self.tail_pos += n;
    }

    pub(super) fn written_out(&self) -> bool {
        self.pos == self.bytes.len() && self.tail.as_ref().is_none_or(|t| self.tail_pos == t.len())
    }

    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Frees the buffer if it is empty and larger than `keep` bytes.
    pub(super) fn shrink(&mut self, keep: usize) {
        if self.bytes.capacity() > keep && self.pos == self.bytes.len() && self.tail.is_none() {
            self.bytes = Vec::new();
            self.pos = 0;
        }
    }

    /// The batch is on the wire: what it accounted for, and it is empty again (its buffer
    /// kept for the next).
    pub(super) fn take_done(&mut self) -> Done {
        self.bytes.clear();
        self.pos = 0;
        self.tail = None;
        self.tail_pos = 0;
        self.flush_tls = false;
        Done {
            payload: std::mem::take(&mut self.payload),
            messages: std::mem::take(&mut self.messages),
            close: std::mem::take(&mut self.close),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbing_swaps_when_written_out_and_appends_otherwise() {
        let mut link = Batch::default();
        let mut staged = Batch::default();
        staged.bytes.extend_from_slice(b"abc");
        staged.counted(3);
        link.absorb(&mut staged);
        assert_eq!(link.pending(), (&b"abc"[..], &b""[..]));
        assert!(staged.is_empty());
        link.advance(1);
        staged.bytes.extend_from_slice(b"de");
        staged.counted(2);
        staged.close = CloseMark::Close;
        link.absorb(&mut staged);
        assert_eq!(link.pending(), (&b"bcde"[..], &b""[..]));
        link.advance(4);
        assert!(link.written_out());
        let done = link.take_done();
        assert_eq!(
            (done.payload, done.messages, done.close),
            (5, 2, CloseMark::Close)
        );
        assert!(link.is_empty());
    }

    #[test]
    fn nothing_is_appended_behind_a_tail() {
        let mut link = Batch::default();
        link.bytes.extend_from_slice(b"HH");
        link.set_tail(vec![1, 2, 3], 3);
        let mut staged = Batch::default();
        staged.bytes.extend_from_slice(b"x");
        link.absorb(&mut staged);
        assert_eq!(link.pending(), (&b"HH"[..], &[1u8, 2, 3][..]));
        assert_eq!(staged.bytes, b"x");
        link.advance(4);
        assert_eq!(link.pending(), (&b""[..], &[3u8][..]));
        link.advance(1);
        assert!(link.written_out());
    }
}
