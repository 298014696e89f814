//! Keel's contracts on a real Anvil, driven with keel-core's messages through keel-bindings.
//! Each test spawns its own Anvil on a free port, so they can run in parallel.

mod deploy;
mod lifecycle;
mod typed_data;
