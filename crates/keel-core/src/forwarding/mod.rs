//! The rules of multi-hop payments, shared by the payer that builds a route and by every node
//! that forwards along it. Pure arithmetic: no I/O, no clocks (callers pass `now`).
//!
//! A payment of `amount` to a node several channels away is one hash lock per channel, all with
//! the same secret hash. Walking from the receiver back to the payer, each forwarding node asks
//! for its fee on top of what it forwards ([`FeePolicy`]), converts between the two channels'
//! assets when they differ ([`Rate`]), and needs its incoming lock to outlive its outgoing one
//! by an expiry delta ([`expiry_delta`]): the time, derived from both chains' timing
//! ([`ChainTiming`]), to learn a secret revealed downstream at the last moment and register it
//! on the upstream chain before the upstream lock expires. So no node ever pays out downstream
//! without being able to claim upstream. [`route_locks`] computes the locks of a route and
//! [`check_forward`] is what a node checks before it forwards; a route built by the first
//! always passes the second, exactly (property tests in `tests/forwarding.rs`).

pub mod announce;
mod failure;
mod fees;
pub mod onion;
mod route;
mod timing;

pub use announce::{
    verify_announcement, verify_update, AnnouncementError, ChannelAnnouncement, ChannelUpdate,
    ExchangeRate, PaymentRequest,
};
pub use failure::{FailureReason, HopFailure};
pub use fees::{FeePolicy, Rate};
pub use route::{check_forward, route_locks, ForwardInstruction, HopLock, HopPolicy};
pub use timing::{expiry_delta, ChainTiming};

use alloy::primitives::U256;

/// Why a route cannot be built or a lock must not be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// An amount, fee or time left the range of its type.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    /// A lock of zero, or a route with no channel.
    #[error("{0}")]
    Invalid(&'static str),
    /// The incoming lock does not cover what is forwarded plus the fee, at the announced rate.
    #[error("incoming lock of {offered} is below the {required} needed to forward")]
    FeeTooLow {
        /// The incoming lock's amount.
        offered: U256,
        /// What the node's policy requires for the instructed outgoing amount.
        required: U256,
    },
    /// The incoming lock expires too soon after the outgoing one for the node to claim it.
    #[error("incoming lock expires at {incoming}, needs at least {required} (outgoing {outgoing} plus the expiry delta)")]
    ExpiryTooSoon {
        /// The incoming lock's expiration.
        incoming: u64,
        /// The instructed outgoing expiration.
        outgoing: u64,
        /// The earliest incoming expiration the node accepts.
        required: u64,
    },
    /// The outgoing lock would expire before the next node could do anything with it.
    #[error("outgoing lock would expire at {expiration}, before the earliest allowed {earliest}")]
    OutgoingTooShort {
        /// The instructed outgoing expiration.
        expiration: u64,
        /// `now` plus the next channel's minimum lock lifetime.
        earliest: u64,
    },
}
