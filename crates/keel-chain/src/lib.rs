//! Keel's chain side, shared by the client and the watchtower: transactions ([`Chain`]) and the
//! vault-event follower ([`Monitor`]) for one chain each.
//!
//! [`Chain`] sends one participant's transactions (open, deposit, withdraw, close, refute,
//! settle, unlock, register a secret) and waits until each is mined; a revert is a typed
//! [`ChainError`]. [`Monitor`] follows the vaults of our channels and delivers their events
//! ([`ChainEvent`]) in chain order once they are `confirmations` deep, checkpointing through a
//! small [`monitor::Checkpoints`] interface (the client's store, a tower's own storage) only
//! after the consumer acknowledged them; it survives restarts, RPC failures
//! and reorgs (see [`monitor`]). The dispute and lock states the vault publishes come back as
//! [`DisputeState`] and [`LockState`], which `refute`, `settle` and `unlock` take back verbatim;
//! [`abi`] converts keel-core's messages to the contracts' ABI structs.
//!
//! Nothing is global: a client or tower on several chains holds a [`ChainConfig`], a [`Chain`] and a
//! [`Monitor`] per chain.

#![forbid(unsafe_code)]
// A library: output goes through return values and `tracing`, never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod abi;
mod config;
mod error;
mod event;
pub mod fees;
mod holdings;
pub mod monitor;
mod rpc;
mod tx;

pub use abi::VaultAbi;
pub use config::ChainConfig;
pub use error::{report, ChainError, Result, Revert};
pub use event::{ChainEvent, ChainEventKind};
pub use fees::{FeePolicy, Fees};
pub use holdings::VaultHoldings;
/// The on-chain states are protocol types (keel-core); re-exported where the chain side uses them.
pub use keel_core::{BalanceData, DisputeState, LockState};
pub use monitor::{Batch, Health, Monitor};
pub use tx::{check_challenge_period, Chain, TxReceipt};

/// Where Keel's contracts are on a chain (re-exported from keel-bindings for [`ChainConfig`]).
pub use keel_bindings::Deployment;
