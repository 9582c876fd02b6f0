//! Application code runs inside the library (listener callbacks, accept handlers, `on_retry`,
//! a listener's `Drop`); its panics are caught, reported, and do not take the socket or its
//! thread with them. This is how a caught panic is told.

/// The text of a caught panic's payload.
pub(crate) fn message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
