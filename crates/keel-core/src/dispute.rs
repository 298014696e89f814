//! What a vault publishes once a channel closed on chain: the dispute state a unilateral close
//! froze (`Closed`, `Refuted`) and the funds settlement kept for pending locks
//! (`LocksRetained`, `Unlocked`).
//!
//! The vault stores only a hash of each; whoever calls `refute`, `settle` or `unlock` passes the
//! state back and the vault checks it against the hash. The client, the watchtower and the
//! store all keep these, so they are protocol types; the ABI conversions live with the bindings'
//! users (keel-client's `chain::abi`).

use alloy::primitives::{B256, U256};

use crate::{settle, BalanceProof, Direction, Settlement, Side};

/// A balance proof as the vault records it: the signed fields minus the channel id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BalanceData {
    /// The proof's nonce; 0 means the sender never sent anything.
    pub nonce: u64,
    /// Cumulative amount transferred by completed payments.
    pub transferred: U256,
    /// Total of the pending locks.
    pub locked: U256,
    /// Commitment to the pending locks ([`crate::locks_root`]).
    pub locks_root: B256,
}

/// Everything a unilateral close froze, as the `Closed` and `Refuted` events publish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DisputeState {
    /// Who closed.
    pub closer: Side,
    /// Last second (unix time) at which a refutation is accepted; settlement from the next.
    pub deadline: u64,
    /// What the vault holds for the pair: both deposits minus both withdrawals.
    pub total: U256,
    /// A's cumulative deposit at close.
    pub deposit_a: U256,
    /// A's cumulative withdrawal at close.
    pub withdrawn_a: U256,
    /// The latest proof signed by A that reached the chain.
    pub from_a: BalanceData,
    /// The latest proof signed by B that reached the chain.
    pub from_b: BalanceData,
}

/// Funds settlement kept for pending locks, per sending direction, as `LocksRetained` and
/// `Unlocked` publish them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LockState {
    /// Held for locks A sent.
    pub retained_a: U256,
    /// The locks root of A's final proof.
    pub locks_root_a: B256,
    /// Held for locks B sent.
    pub retained_b: U256,
    /// The locks root of B's final proof.
    pub locks_root_b: B256,
}

impl From<&BalanceProof> for BalanceData {
    fn from(p: &BalanceProof) -> Self {
        Self {
            nonce: p.nonce,
            transferred: p.transferredAmount,
            locked: p.lockedAmount,
            locks_root: p.locksRoot,
        }
    }
}

impl DisputeState {
    /// The proof on record that `side` signed.
    pub const fn proof_from(&self, side: Side) -> &BalanceData {
        match side {
            Side::A => &self.from_a,
            Side::B => &self.from_b,
        }
    }

    /// What `settle` will pay from this state (the vault's formula, [`crate::settle`]).
    pub fn settlement(&self) -> crate::Result<Settlement> {
        let direction = |d: &BalanceData| Direction {
            transferred: d.transferred,
            locked: d.locked,
        };
        settle(
            self.total,
            self.deposit_a,
            self.withdrawn_a,
            direction(&self.from_a),
            direction(&self.from_b),
        )
    }
}

impl LockState {
    /// What is held for locks `sender` sent, and their root.
    pub const fn retained_from(&self, sender: Side) -> (U256, B256) {
        match sender {
            Side::A => (self.retained_a, self.locks_root_a),
            Side::B => (self.retained_b, self.locks_root_b),
        }
    }
}
