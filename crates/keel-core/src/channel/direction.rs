//! One direction of a channel: what its sender has committed to, proof by proof.

use alloy::primitives::{B256, U256};

use super::{ChannelError, Policy};
use crate::{locks::locks_root, locks::secret_hash, types::Lock, BalanceProof};

/// A change one balance proof makes to its direction. Sent beside the proof so the receiver can
/// rebuild the proof itself and accept it only if it is exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A completed payment of `amount`.
    Pay {
        /// Paid amount, in base units; non-zero.
        amount: U256,
    },
    /// A new pending hash-time-locked transfer, appended to the direction's locks.
    AddLock(Lock),
    /// The sender pays out a pending lock whose secret it learnt.
    ClaimLock {
        /// The preimage of the lock's secret hash.
        secret: B256,
    },
    /// The sender takes back a lock that expired unclaimed.
    RemoveExpiredLock {
        /// Which lock.
        secret_hash: B256,
    },
    /// The sender takes back a lock its receiver gave up before it expired. `release` is the
    /// receiver's signature over the lock's [`LockRelease`](crate::LockRelease);
    /// [`ChannelState`](crate::ChannelState) checks it on both sides, so a receiver only ever
    /// loses a lock it released.
    RemoveReleasedLock {
        /// Which lock.
        secret_hash: B256,
        /// The receiver's `LockRelease` signature.
        release: crate::wire::Signature,
    },
}

/// The latest state of one direction, as both sides hold it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Direction {
    /// Nonce of the latest proof; 0 before the first.
    pub nonce: u64,
    /// Cumulative completed transfers.
    pub transferred: U256,
    /// Pending locks, in the order they were added (the locks root depends on it).
    pub locks: Vec<Lock>,
}

impl Direction {
    /// Sum of the pending locks.
    pub fn locked(&self) -> U256 {
        self.locks
            .iter()
            .fold(U256::ZERO, |sum, lock| sum + lock.amount)
    }

    /// The balance proof committing to this state.
    pub fn proof(&self, channel_id: B256) -> BalanceProof {
        BalanceProof {
            channelId: channel_id,
            nonce: self.nonce,
            transferredAmount: self.transferred,
            lockedAmount: self.locked(),
            locksRoot: locks_root(&self.locks),
        }
    }

    /// The state after `change`, checked against `policy` at time `now`; `self` is untouched.
    ///
    /// `capacity` is what the sender can still commit (its balance less reservations); a change
    /// that commits more fails. Used identically by the sender to make a proof and by the
    /// receiver to check one, so both sides always hold the same direction.
    pub fn apply(
        &self,
        change: &Change,
        capacity: U256,
        now: u64,
        policy: &Policy,
    ) -> Result<Self, ChannelError> {
        let mut next = self.clone();
        next.nonce = self
            .nonce
            .checked_add(1)
            .ok_or(ChannelError::NonceExhausted)?;
        match change {
            Change::Pay { amount } => {
                if amount.is_zero() {
                    return Err(ChannelError::ZeroAmount);
                }
                if *amount > capacity {
                    return Err(ChannelError::InsufficientCapacity {
                        needed: *amount,
                        available: capacity,
                    });
                }
                next.transferred += *amount;
            }
            Change::AddLock(lock) => {
                if lock.amount.is_zero() {
                    return Err(ChannelError::ZeroAmount);
                }
                if lock.amount > capacity {
                    return Err(ChannelError::InsufficientCapacity {
                        needed: lock.amount,
                        available: capacity,
                    });
                }
                let earliest = now.saturating_add(policy.min_lock_lifetime);
                let latest = now.saturating_add(policy.max_lock_lifetime);
                if lock.expiration < earliest || lock.expiration > latest {
                    return Err(ChannelError::LockExpirationOutOfRange {
                        expiration: lock.expiration,
                        earliest,
                        latest,
                    });
                }
                if self.locks.len() >= policy.max_pending_locks {
                    return Err(ChannelError::TooManyLocks(policy.max_pending_locks));
                }
                if self.locks.iter().any(|l| l.secret_hash == lock.secret_hash) {
                    return Err(ChannelError::DuplicateLock(lock.secret_hash));
                }
                next.locks.push(*lock);
            }
            Change::ClaimLock { secret } => {
                let hash = secret_hash(*secret);
                let lock = next.take_lock(hash)?;
                next.transferred += lock.amount;
            }
            // The release's signature is checked by the channel, which knows who received.
            Change::RemoveReleasedLock { secret_hash, .. } => {
                next.take_lock(*secret_hash)?;
            }
            Change::RemoveExpiredLock { secret_hash } => {
                let lock = next.take_lock(*secret_hash)?;
                if now <= lock.expiration {
                    return Err(ChannelError::LockNotExpired {
                        secret_hash: *secret_hash,
                        expiration: lock.expiration,
                    });
                }
            }
        }
        Ok(next)
    }

    fn take_lock(&mut self, secret_hash: B256) -> Result<Lock, ChannelError> {
        let index = self
            .locks
            .iter()
            .position(|l| l.secret_hash == secret_hash)
            .ok_or(ChannelError::UnknownLock(secret_hash))?;
        Ok(self.locks.remove(index))
    }
}
