//! Why the channel state machine refused an operation. The state is unchanged whenever one is
//! returned, so the channel stays usable.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};

/// A refused channel operation or peer message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// Amounts must be non-zero.
    #[error("amount must be non-zero")]
    ZeroAmount,
    /// The sender cannot commit that much.
    #[error("needs {needed}, only {available} available")]
    InsufficientCapacity {
        /// What the operation needs.
        needed: U256,
        /// What the side can still commit.
        available: U256,
    },
    /// 2^64 - 1 proofs were made in one direction.
    #[error("nonce space exhausted")]
    NonceExhausted,
    /// A lock must expire within the policy's window from now.
    #[error("lock expiration {expiration} outside [{earliest}, {latest}]")]
    LockExpirationOutOfRange {
        /// The lock's expiration.
        expiration: u64,
        /// Earliest acceptable.
        earliest: u64,
        /// Latest acceptable.
        latest: u64,
    },
    /// The direction already holds the most pending locks the policy allows (unlock gas bound).
    #[error("at most {0} pending locks")]
    TooManyLocks(usize),
    /// A pending lock with this secret hash exists already.
    #[error("lock {0} is already pending")]
    DuplicateLock(B256),
    /// No pending lock has this secret hash.
    #[error("no pending lock {0}")]
    UnknownLock(B256),
    /// A secret offered to claim a lock opens none of the pending ones: its sha256 is `0`.
    #[error("the secret opens no pending lock (its sha256 is {0})")]
    WrongSecret(B256),
    /// The lock cannot be removed before it expires.
    #[error("lock {secret_hash} expires at {expiration}")]
    LockNotExpired {
        /// The lock.
        secret_hash: B256,
        /// Its expiration.
        expiration: u64,
    },
    /// The proof is for another channel (or chain, or vault).
    #[error("proof is for channel {found}, expected {expected}")]
    WrongChannel {
        /// This channel's id.
        expected: B256,
        /// The proof's.
        found: B256,
    },
    /// An update must carry between one and [`crate::wire::MAX_UPDATE_CHANGES`] changes.
    #[error("an update carries {0} changes")]
    ChangeCount(usize),
    /// The received proof is not the one the announced change produces from the current state.
    #[error("proof does not match the announced change (expected nonce {expected_nonce})")]
    ProofMismatch {
        /// The nonce the next proof must carry.
        expected_nonce: u64,
    },
    /// The signature is malformed or not the counterparty's; the fault says which, and keeps
    /// the signing error it came from as its source.
    #[error("bad signature")]
    BadSignature(#[source] SignatureFault),
    /// The withdrawal is not for a participant of this channel or does not raise its total.
    #[error("invalid withdrawal: {0}")]
    InvalidWithdrawal(&'static str),
    /// A withdrawal for this side is already pending.
    #[error("a withdrawal for {0} is already pending")]
    WithdrawalPending(Address),
    /// The channel is closing or closed: no more off-chain updates.
    #[error("channel is not open for updates")]
    NotOpen,
    /// The cooperative close does not pay the balances this side holds.
    #[error("cooperative close does not match the channel's balances")]
    CloseMismatch,
    /// An on-chain total went backwards (a lying RPC node or a reorg the caller must handle).
    #[error("on-chain total for {0} went backwards")]
    TotalWentBackwards(Address),
}

/// Why a counterparty's signature was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFault {
    /// A received proof with a non-zero nonce came without its signature.
    #[error("a received proof came without its signature")]
    Missing,
    /// Checked (on another thread) against a key other than the counterparty's.
    #[error("checked against another key than the counterparty's")]
    OtherKey,
    /// Checked over another message than this proof.
    #[error("checked over another message")]
    OtherMessage,
    /// Malformed, unrecoverable, or made by someone else: the signing check's own error.
    #[error(transparent)]
    Invalid(Arc<crate::Error>),
}

impl SignatureFault {
    /// The signing check's error, if the fault came from one.
    pub fn signing_error(&self) -> Option<&crate::Error> {
        match self {
            Self::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for SignatureFault {
    fn from(e: crate::Error) -> Self {
        Self::Invalid(Arc::new(e))
    }
}

/// Faults compare by kind and, for a signing error, by what it says (the signing error itself
/// is not comparable: it may hold a signer's error).
impl PartialEq for SignatureFault {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Invalid(a), Self::Invalid(b)) => a.to_string() == b.to_string(),
            _ => core::mem::discriminant(self) == core::mem::discriminant(other),
        }
    }
}

impl Eq for SignatureFault {}
