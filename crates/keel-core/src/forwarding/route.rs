//! The locks of a route, computed by the payer, and the check each forwarding node makes.

use alloy::primitives::{B256, U256};

use super::{FeePolicy, ForwardError, Rate};
use crate::types::Lock;

/// What a forwarding node announces for forwarding into one of its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HopPolicy {
    /// The fee, in the outgoing channel's asset.
    pub fee: FeePolicy,
    /// Incoming units per outgoing unit ([`Rate::PAR`] for the same asset).
    pub rate: Rate,
    /// Seconds the incoming lock must outlive the outgoing one, at least
    /// [`expiry_delta`](super::expiry_delta) of the two chains.
    pub expiry_delta: u64,
}

impl HopPolicy {
    /// The incoming amount that pays for forwarding `outgoing`: the outgoing amount plus the
    /// fee, converted at the rate (rounded up).
    pub fn required_incoming(&self, outgoing: U256) -> Result<U256, ForwardError> {
        let with_fee = outgoing
            .checked_add(self.fee.fee(outgoing)?)
            .ok_or(ForwardError::Overflow("the amount plus the fee"))?;
        self.rate.upstream_for(with_fee)
    }
}

/// The amount and expiration of the lock on one channel of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopLock {
    /// Locked amount, in that channel's asset.
    pub amount: U256,
    /// Unix seconds.
    pub expiration: u64,
}

/// What a forwarding node is told to do with an incoming lock: lock `amount` until
/// `expiration` on `next_channel` (on `next_chain_id`), under the same secret hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForwardInstruction {
    /// The chain of the outgoing channel (the incoming one's for a same-chain hop).
    pub next_chain_id: u64,
    /// The outgoing channel.
    pub next_channel: B256,
    /// Amount to lock on the outgoing channel.
    pub amount: U256,
    /// Expiration of the outgoing lock.
    pub expiration: u64,
}

/// The locks of a route of `forwarders.len() + 1` channels, payer's first: the last channel
/// carries `deliver` until `final_expiration`; each earlier one carries what the node after it
/// requires ([`HopPolicy::required_incoming`]), expiring that node's `expiry_delta` later.
/// `forwarders[i]` is the policy of the node between channel `i` and channel `i + 1`.
pub fn route_locks(
    forwarders: &[HopPolicy],
    deliver: U256,
    final_expiration: u64,
) -> Result<Vec<HopLock>, ForwardError> {
    if deliver.is_zero() {
        return Err(ForwardError::Invalid("a payment of zero"));
    }
    let mut locks = Vec::with_capacity(forwarders.len() + 1);
    let mut next = HopLock {
        amount: deliver,
        expiration: final_expiration,
    };
    locks.push(next);
    for policy in forwarders.iter().rev() {
        next = HopLock {
            amount: policy.required_incoming(next.amount)?,
            expiration: next
                .expiration
                .checked_add(policy.expiry_delta)
                .ok_or(ForwardError::Overflow("a lock expiration"))?,
        };
        locks.push(next);
    }
    locks.reverse();
    Ok(locks)
}

/// What a forwarding node checks before it forwards `incoming` as `instruction` under its
/// `policy`: the incoming amount covers the outgoing one plus the fee at the rate, the incoming
/// lock outlives the outgoing one by the expiry delta, and the outgoing lock lives at least
/// `min_lifetime` seconds from `now` (the next channel's policy, so the next node accepts it).
/// Returns the outgoing lock.
pub fn check_forward(
    incoming: &Lock,
    instruction: &ForwardInstruction,
    policy: &HopPolicy,
    now: u64,
    min_lifetime: u64,
) -> Result<Lock, ForwardError> {
    if instruction.amount.is_zero() {
        return Err(ForwardError::Invalid("forwarding zero"));
    }
    let required = policy.required_incoming(instruction.amount)?;
    if incoming.amount < required {
        return Err(ForwardError::FeeTooLow {
            offered: incoming.amount,
            required,
        });
    }
    let required_expiration = instruction
        .expiration
        .checked_add(policy.expiry_delta)
        .ok_or(ForwardError::Overflow("the required expiration"))?;
    if incoming.expiration < required_expiration {
        return Err(ForwardError::ExpiryTooSoon {
            incoming: incoming.expiration,
            outgoing: instruction.expiration,
            required: required_expiration,
        });
    }
    let earliest = now
        .checked_add(min_lifetime)
        .ok_or(ForwardError::Overflow("the earliest outgoing expiration"))?;
    if instruction.expiration < earliest {
        return Err(ForwardError::OutgoingTooShort {
            expiration: instruction.expiration,
            earliest,
        });
    }
    Ok(Lock {
        expiration: instruction.expiration,
        amount: instruction.amount,
        secret_hash: incoming.secret_hash,
    })
}
