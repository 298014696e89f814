#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// The core does no I/O; printing would be the first step towards it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod channel;
pub mod channel_id;
pub mod dispute;
pub mod eip712;
pub mod error;
pub mod forwarding;
pub mod locks;
pub mod receipts;
pub mod settlement;
pub mod signing;
pub mod types;
pub mod wire;

pub use channel::{Change, ChannelError, ChannelState, Policy, Progress};
pub use channel_id::{channel_id, clone_init_code, vault_address};
pub use dispute::{BalanceData, DisputeState, LockState};
pub use eip712::{
    domain, signing_hash, transport_domain, BalanceProof, ChannelDomain, CooperativeClose,
    LockRelease, PeerHandshake, TowerAuthorisation, TowerReceipt, TowerReceiptBatch,
    TowerRegistration, Withdrawal,
};
pub use error::{Error, Result};
pub use locks::{locks_root, secret_hash};
pub use settlement::{settle, Direction, Settlement};
pub use signing::{recover, sign_hash, sign_message, verify};
pub use types::{ChannelParams, Lock, Side};

/// Re-exported so callers use the same alloy types (and version) as the core.
pub use alloy::primitives::{Address, B256, U256};
