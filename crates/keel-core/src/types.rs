//! Plain data shared by every Keel component.
//!
//! Amounts everywhere in Keel are `U256` in the token's base units (wei for native ETH),
//! exactly as the contracts see them; nothing here rounds or converts decimals.

use alloy::primitives::{Address, B256, U256};

/// The fixed parameters of one channel; together with the chain id and the factory they
/// determine the channel id (see [`crate::channel_id()`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelParams {
    /// First participant (side [`Side::A`]).
    pub participant_a: Address,
    /// Second participant (side [`Side::B`]).
    pub participant_b: Address,
    /// ERC-20 token held by the channel; `Address::ZERO` means native ETH.
    pub token: Address,
    /// How long, in seconds, the counterparty has to refute a unilateral close.
    pub challenge_period: u32,
    /// Free value that lets the same pair open several channels with the same settings.
    pub salt: B256,
}

impl ChannelParams {
    /// The participant on `side`.
    pub const fn participant(&self, side: Side) -> Address {
        match side {
            Side::A => self.participant_a,
            Side::B => self.participant_b,
        }
    }

    /// Which side `who` is on, if either.
    pub fn side_of(&self, who: Address) -> Option<Side> {
        if who == self.participant_a {
            Some(Side::A)
        } else if who == self.participant_b {
            Some(Side::B)
        } else {
            None
        }
    }
}

/// One of the two participants of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// `participant_a`.
    A,
    /// `participant_b`.
    B,
}

impl Side {
    /// The other participant.
    pub const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// The index of this side's slot in per-side arrays (A is 0, B is 1).
    pub const fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }
}

/// A hash-time lock: `amount` moves to the receiver if the secret whose hash is
/// `secret_hash` is revealed on chain before `expiration`, and back to the sender otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lock {
    /// Unix time, in seconds, after which the lock can no longer be claimed.
    pub expiration: u64,
    /// Locked amount in token base units.
    pub amount: U256,
    /// `sha256(secret)`; sha256 rather than keccak so locks interoperate with Lightning-style HTLCs.
    pub secret_hash: B256,
}
