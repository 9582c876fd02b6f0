//! The scriptable mock server (filled in next).
