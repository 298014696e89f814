//! Integration tests, one binary for the crate.

mod client;
mod store;
mod transport;
