//! The crate's one error type.

use crate::types::ChannelId;

/// Everything that can go wrong while planning or keeping the budget.
///
/// There is no I/O here, so every variant is a property of the inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An amount computation overflowed `u128` (inputs far outside any real balance).
    #[error("amount arithmetic overflowed")]
    Overflow,
    /// A channel's balances do not fit its capacity (local + remote + pending > capacity).
    #[error("channel {0}: balances exceed capacity")]
    InconsistentChannel(ChannelId),
    /// A policy's thresholds are not ordered `low <= target <= high <= 1,000,000`.
    #[error("channel {0}: thresholds must satisfy low <= target <= high <= 1,000,000 ppm")]
    InvalidPolicy(ChannelId),
    /// The budget cannot cover a reservation: the channel's or the node's budget for this period
    /// is spent or reserved.
    #[error("over budget: {requested} requested, {available} available")]
    OverBudget {
        /// What the reservation asked for.
        requested: u128,
        /// What was left (budget minus spent minus reserved).
        available: u128,
    },
    /// A reservation id that the ledger does not hold (already committed or released).
    #[error("unknown reservation {0}")]
    UnknownReservation(u64),
    /// A commit reported spending more than was reserved.
    #[error("commit of {actual} exceeds the reservation of {reserved}")]
    CommitExceedsReservation {
        /// What the reservation held.
        reserved: u128,
        /// What the commit reported.
        actual: u128,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
