//! Integration tests, one binary for the crate.

mod store;
mod transport;
