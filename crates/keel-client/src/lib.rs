#![doc = include_str!("../README.md")]
// A library: output goes through return values (and, later, `tracing`), never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod store;
pub mod transport;
