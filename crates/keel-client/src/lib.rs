#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A library: output goes through return values (and, later, `tracing`), never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// The chain side, shared with the watchtower (the `keel-chain` crate).
pub use keel_chain as chain;
pub mod client;
pub mod store;
pub mod transport;

pub use client::{
    AcceptChannels, Client, ClientError, ClientEvent, Config, Destination, Events, StoredEvent,
};
