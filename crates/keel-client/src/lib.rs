#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A library: output goes through return values (and, later, `tracing`), never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod chain;
pub mod client;
pub mod store;
pub mod transport;

pub use client::{Client, ClientError, ClientEvent, Config, Destination};
