//! Integration tests, one binary for the crate.

mod client;
mod gossip;
mod hostile;
mod store;
mod tower;
mod transport;
