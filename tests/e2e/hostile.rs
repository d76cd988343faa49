//! Hostile input: placeholder.
