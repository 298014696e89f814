#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A library: output goes through return values (and, later, `tracing`), never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// The node key type ([`Config::signer`]), re-exported so an application need not depend on
/// alloy to make one: [`PrivateKeySigner::random`], a hex key's `parse`, or
/// [`client::load_keystore`] for an encrypted keystore file.
pub use alloy::signers::local::PrivateKeySigner;
/// The chain side, shared with the watchtower (the `keel-chain` crate).
pub use keel_chain as chain;
pub mod client;
pub mod store;
pub mod transport;

pub use client::{
    AcceptChannels, Client, ClientError, ClientEvent, Config, Destination, Events, StoredEvent,
    TowerConfig,
};
