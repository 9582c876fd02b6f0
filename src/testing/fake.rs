//! An in-memory fake of the socket factory (filled in next).
