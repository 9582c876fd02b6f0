//! A socket's way out of a name lookup: `cancel()` fires its [`Abort`], and the connect
//! waiting for the lookup (`connect/dns.rs`) ends at once.

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// Fires once, for good: a socket's `cancel()` fires it, and every wait on it ends at once,
/// now and later (its channel disconnects).
pub(crate) struct Abort {
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl Abort {
    pub(crate) fn new() -> Abort {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Abort {
            tx: Mutex::new(Some(tx)),
            rx,
        }
    }

    pub(crate) fn fire(&self) {
        self.tx.lock().take();
    }

    /// Disconnected once fired: `select!` on it returns at once.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }
}

impl std::fmt::Debug for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Abort")
            .field("fired", &self.tx.lock().is_none())
            .finish()
    }
}
