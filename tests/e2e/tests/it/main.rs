//! Keel's contracts on a real Anvil, driven with keel-core's messages through keel-bindings.
//! Each test spawns its own Anvil on a free port, so they can run in parallel.

mod chain_monitor;
mod chain_ops;
mod chain_proxy;
mod chain_reorg;
mod chain_support;
mod chain_tls;
mod client_accept;
mod client_faults;
mod client_flow;
mod client_readme;
mod client_recovery;
mod crash;
mod crosschain;
mod deploy;
mod graph;
mod hostile;
mod lifecycle;
mod multihop;
mod multihop_crash;
mod release;
mod tower;
mod tower_chain;
mod tower_client;
mod tower_instances;
mod tower_locks;
mod typed_data;
