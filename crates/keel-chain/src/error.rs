//! Why a chain operation failed.

use std::fmt;

use alloy::{
    contract::Error as CallError,
    primitives::{Bytes, B256},
    transports::{RpcError, TransportError},
};
use keel_bindings::{ChannelFactory::ChannelFactoryErrors, ChannelVault::ChannelVaultErrors};

/// Result of a chain operation.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;

/// A failed chain operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The RPC URL does not parse.
    #[error("invalid RPC URL {0:?}")]
    InvalidUrl(String),
    /// The endpoint failed: unreachable, timed out, or it answered with an error that is not a
    /// revert. Worth retrying.
    #[error("RPC request failed")]
    Rpc(#[source] TransportError),
    /// The HTTP client for the endpoint could not be built.
    #[error("building the HTTP client")]
    HttpClient(#[source] alloy::transports::http::reqwest::Error),
    /// A contract call failed in a way that is neither a revert nor the endpoint's fault.
    #[error("contract call failed")]
    Call(#[source] Box<CallError>),
    /// The node's answers contradict each other (a block changed or vanished during a scan, a
    /// log was removed): worth retrying.
    #[error("the RPC node answered inconsistently: {0}")]
    Inconsistent(String),
    /// The endpoint answered with something that does not decode (malformed JSON, a log that is
    /// not a Keel event, a missing field): `what` says where, the source (if any) why.
    #[error("RPC answered with undecodable data: {what}")]
    Garbage {
        /// What did not decode.
        what: String,
        /// The decoder's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The endpoint serves another chain than the deployment is for.
    #[error("the RPC endpoint is on chain {found}, the deployment is for chain {expected}")]
    WrongChain {
        /// The deployment's chain id.
        expected: u64,
        /// What `eth_chainId` answered.
        found: u64,
    },
    /// The node would not run the transaction: simulating it reverted, so nothing was sent.
    #[error("{what} would revert: {reason}")]
    Rejected {
        /// The operation.
        what: &'static str,
        /// Why, decoded where a Keel contract declares the error.
        reason: Revert,
    },
    /// The transaction was mined and reverted.
    #[error("{what} reverted in transaction {tx_hash}")]
    Reverted {
        /// The operation.
        what: &'static str,
        /// The reverted transaction.
        tx_hash: B256,
    },
    /// The transaction was sent (and sent again `rebroadcasts` times) but no receipt came
    /// within the deadline: it may still be mined; look it up by hash later.
    #[error(
        "{what}: sent as {tx_hash}, no receipt after {waited:?} ({rebroadcasts} re-broadcasts)"
    )]
    ReceiptTimeout {
        /// The operation.
        what: &'static str,
        /// The sent transaction.
        tx_hash: B256,
        /// How long it was waited for.
        waited: std::time::Duration,
        /// How many times it was sent again (the node may have refused a copy it holds, or
        /// one already mined: see `last_error`).
        rebroadcasts: u32,
        /// The last failed lookup or re-broadcast, if any failed.
        #[source]
        last_error: Option<Box<ChainError>>,
    },
    /// A transaction with a deadline was not mined by it (by the chain's clock, which the
    /// contracts check) although its fees were still below the cap: the last version offered
    /// too little for the chain's congestion, or the node was unreachable.
    #[error(
        "{what}: not mined by the deadline {deadline} (chain time {now}); last sent as {tx_hash:?}"
    )]
    DeadlinePassed {
        /// The operation.
        what: &'static str,
        /// The deadline, in the chain's seconds.
        deadline: u64,
        /// The chain's time when it was given up.
        now: u64,
        /// The last version sent, if one was.
        tx_hash: Option<B256>,
    },
    /// A transaction with a deadline was not mined by it, its fees raised to the configured cap
    /// ([`FeePolicy::max_fee_cap`](crate::FeePolicy::max_fee_cap)): the chain asked for more
    /// than the sender allows.
    #[error("{what}: not mined by the deadline {deadline}, its fees raised to the cap of {cap} wei per gas (the last version offered {max_fee_per_gas}); last sent as {tx_hash}")]
    FeeCapReached {
        /// The operation.
        what: &'static str,
        /// The deadline, in the chain's seconds.
        deadline: u64,
        /// The cap.
        cap: u128,
        /// The max fee per gas of the last version: the cap, or below it by less than one
        /// raise (a replacement must raise it by 12.5 %).
        max_fee_per_gas: u128,
        /// The last version sent.
        tx_hash: B256,
    },
    /// The transaction needs more gas than the configured cap
    /// ([`FeePolicy::gas_limit_cap`](crate::FeePolicy::gas_limit_cap)); nothing was sent.
    #[error("{what} needs {estimated} gas, above the cap of {cap}")]
    GasCapExceeded {
        /// The operation.
        what: &'static str,
        /// The node's estimate.
        estimated: u64,
        /// The cap.
        cap: u64,
    },
    /// Another transaction of this account was mined with the nonce this one was sent with
    /// (another process sharing the key): none of its versions can be mined any more.
    #[error("{what}: nonce {nonce} was taken by another transaction of the account")]
    NonceTaken {
        /// The operation.
        what: &'static str,
        /// The nonce.
        nonce: u64,
    },
    /// Loading or saving the monitor's checkpoint failed.
    #[error("the monitor's checkpoint storage failed")]
    Checkpoint(#[source] crate::monitor::CheckpointError),
    /// The channel's challenge period is outside the bounds the deployment's factory accepts;
    /// nothing was sent.
    #[error("challenge period {period} s is outside the deployment's bounds [{min}, {max}] s")]
    ChallengePeriodOutOfRange {
        /// The period asked for, in seconds.
        period: u32,
        /// The deployment's shortest period.
        min: u32,
        /// The deployment's longest period.
        max: u32,
    },
    /// The caller asked for something impossible (an amount that overflows, a side that is not
    /// ours); nothing was sent.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Why a simulated transaction reverted.
#[derive(Debug)]
#[non_exhaustive]
pub enum Revert {
    /// A `ChannelVault` error (`TotalNotIncreasing`, `ChallengePeriodNotOver`, …).
    Vault(ChannelVaultErrors),
    /// A `ChannelFactory` error (`ChannelExists`, …).
    Factory(ChannelFactoryErrors),
    /// Revert data no Keel contract declares (a token's error, say).
    Data(Bytes),
    /// No revert data, only the node's message.
    Message(String),
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vault(e) => write!(f, "{e:?}"),
            Self::Factory(e) => write!(f, "{e:?}"),
            Self::Data(data) => write!(f, "revert data {data}"),
            Self::Message(msg) => f.write_str(msg),
        }
    }
}

impl ChainError {
    /// Classifies a failed transport call (no revert expected: a read).
    pub(crate) fn transport(err: TransportError) -> Self {
        match err {
            RpcError::DeserError { err, text } => Self::Garbage {
                what: format!("answer {:?}", truncated(&text)),
                source: Some(Box::new(err)),
            },
            RpcError::NullResp => Self::garbage("a null answer"),
            other => Self::Rpc(other),
        }
    }

    /// Undecodable data with no decoder error to keep.
    pub(crate) fn garbage(what: impl Into<String>) -> Self {
        Self::Garbage {
            what: what.into(),
            source: None,
        }
    }

    /// Classifies a failed contract call or transaction submission: a revert the node reports
    /// while estimating gas becomes [`ChainError::Rejected`], decoded where possible.
    pub(crate) fn call(what: &'static str, err: CallError) -> Self {
        if let Some(e) = err.as_decoded_interface_error::<ChannelVaultErrors>() {
            return Self::Rejected {
                what,
                reason: Revert::Vault(e),
            };
        }
        if let Some(e) = err.as_decoded_interface_error::<ChannelFactoryErrors>() {
            return Self::Rejected {
                what,
                reason: Revert::Factory(e),
            };
        }
        if let Some(data) = err.as_revert_data() {
            return Self::Rejected {
                what,
                reason: Revert::Data(data),
            };
        }
        match err {
            CallError::TransportError(RpcError::ErrorResp(payload))
                if payload.message.contains("revert") =>
            {
                Self::Rejected {
                    what,
                    reason: Revert::Message(payload.message.to_string()),
                }
            }
            CallError::TransportError(e) => Self::transport(e),
            CallError::AbiError(e) => Self::Garbage {
                what: format!("the result of {what}"),
                source: Some(Box::new(e)),
            },
            CallError::ZeroData(..) => Self::Garbage {
                what: format!("the result of {what}"),
                source: Some(Box::new(err)),
            },
            other => Self::Call(Box::new(other)),
        }
    }
}

/// Keeps error messages readable when a node answers with a page of HTML.
fn truncated(text: &str) -> &str {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// `error` and its sources, joined by ": ": for logs and events, where only text travels.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
