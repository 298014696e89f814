//! keel-core's messages as the contracts' ABI structs, and the dispute and lock state the vault
//! publishes in its events.
//!
//! The vault keeps only a hash of its [`DisputeState`] / [`LockState`]; callers pass the state
//! back in calldata and the vault checks it against the hash. So these mirrors convert to and
//! from the ABI structs losslessly: what an event published is exactly what `refute`, `settle`
//! and `unlock` send back.

use alloy::primitives::{B256, U256};
use keel_bindings::{ChannelFactory, ChannelVault};
use keel_core::{
    BalanceProof, ChannelParams, CooperativeClose, Direction, Lock, Settlement, Side, Withdrawal,
};

use super::error::{ChainError, Result};

/// A balance proof as the vault records it: the signed fields minus the channel id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BalanceData {
    /// The proof's nonce; 0 means the sender never sent anything.
    pub nonce: u64,
    /// Cumulative amount transferred by completed payments.
    pub transferred: U256,
    /// Total of the pending locks.
    pub locked: U256,
    /// Commitment to the pending locks ([`keel_core::locks_root`]).
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

impl BalanceData {
    /// The vault's ABI struct.
    pub fn to_abi(&self) -> ChannelVault::BalanceData {
        ChannelVault::BalanceData {
            nonce: self.nonce,
            transferredAmount: self.transferred,
            lockedAmount: self.locked,
            locksRoot: self.locks_root,
        }
    }

    /// From the vault's ABI struct.
    pub fn from_abi(d: &ChannelVault::BalanceData) -> Self {
        Self {
            nonce: d.nonce,
            transferred: d.transferredAmount,
            locked: d.lockedAmount,
            locks_root: d.locksRoot,
        }
    }
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
    pub fn proof_from(&self, side: Side) -> &BalanceData {
        match side {
            Side::A => &self.from_a,
            Side::B => &self.from_b,
        }
    }

    /// What `settle` will pay from this state (the vault's formula, [`keel_core::settle`]).
    pub fn settlement(&self) -> keel_core::Result<Settlement> {
        let direction = |d: &BalanceData| Direction {
            transferred: d.transferred,
            locked: d.locked,
        };
        keel_core::settle(
            self.total,
            self.deposit_a,
            self.withdrawn_a,
            direction(&self.from_a),
            direction(&self.from_b),
        )
    }

    /// The vault's ABI struct.
    pub fn to_abi(&self) -> ChannelVault::DisputeState {
        ChannelVault::DisputeState {
            closer: side_index(self.closer),
            deadline: self.deadline,
            total: self.total,
            depositA: self.deposit_a,
            withdrawnA: self.withdrawn_a,
            fromA: self.from_a.to_abi(),
            fromB: self.from_b.to_abi(),
        }
    }

    /// From the vault's ABI struct; fails on a closer other than 0 or 1, which the vault never
    /// emits.
    pub fn from_abi(s: &ChannelVault::DisputeState) -> Result<Self> {
        Ok(Self {
            closer: side_from_index(s.closer)?,
            deadline: s.deadline,
            total: s.total,
            deposit_a: s.depositA,
            withdrawn_a: s.withdrawnA,
            from_a: BalanceData::from_abi(&s.fromA),
            from_b: BalanceData::from_abi(&s.fromB),
        })
    }
}

impl LockState {
    /// What is held for locks `sender` sent, and their root.
    pub fn retained_from(&self, sender: Side) -> (U256, B256) {
        match sender {
            Side::A => (self.retained_a, self.locks_root_a),
            Side::B => (self.retained_b, self.locks_root_b),
        }
    }

    /// The vault's ABI struct.
    pub fn to_abi(&self) -> ChannelVault::LockState {
        ChannelVault::LockState {
            retainedA: self.retained_a,
            locksRootA: self.locks_root_a,
            retainedB: self.retained_b,
            locksRootB: self.locks_root_b,
        }
    }

    /// From the vault's ABI struct.
    pub fn from_abi(s: &ChannelVault::LockState) -> Self {
        Self {
            retained_a: s.retainedA,
            locks_root_a: s.locksRootA,
            retained_b: s.retainedB,
            locks_root_b: s.locksRootB,
        }
    }
}

/// The side as the contracts number it: 0 for A, 1 for B.
pub fn side_index(side: Side) -> u8 {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// The side a contract numbered; anything but 0 or 1 is [`ChainError::Garbage`].
pub fn side_from_index(index: u8) -> Result<Side> {
    match index {
        0 => Ok(Side::A),
        1 => Ok(Side::B),
        other => Err(ChainError::garbage(format!("side {other}"))),
    }
}

/// Channel parameters as the factory's ABI struct.
pub fn factory_params(p: &ChannelParams) -> ChannelFactory::ChannelParams {
    ChannelFactory::ChannelParams {
        participantA: p.participant_a,
        participantB: p.participant_b,
        token: p.token,
        challengePeriod: p.challenge_period,
        salt: p.salt,
    }
}

/// Channel parameters as the vault's ABI struct.
pub fn vault_params(p: &ChannelParams) -> ChannelVault::ChannelParams {
    ChannelVault::ChannelParams {
        participantA: p.participant_a,
        participantB: p.participant_b,
        token: p.token,
        challengePeriod: p.challenge_period,
        salt: p.salt,
    }
}

/// Channel parameters from the factory's `ChannelOpened` fields.
pub fn params_from_opened(e: &ChannelFactory::ChannelOpened) -> ChannelParams {
    ChannelParams {
        participant_a: e.participantA,
        participant_b: e.participantB,
        token: e.token,
        challenge_period: e.challengePeriod,
        salt: e.salt,
    }
}

/// A signed balance proof's fields as the vault's ABI struct (the channel id is implied).
pub fn balance_data(proof: &BalanceProof) -> ChannelVault::BalanceData {
    BalanceData::from(proof).to_abi()
}

/// A signed withdrawal as the vault's ABI struct (the channel id is implied).
pub fn withdrawal(w: &Withdrawal) -> ChannelVault::Withdrawal {
    ChannelVault::Withdrawal {
        participant: w.participant,
        totalWithdrawn: w.totalWithdrawn,
        expiry: w.expiry,
        target: w.target,
        targetSide: w.targetSide,
    }
}

/// A signed cooperative close as the vault's ABI struct (the channel id and the withdrawal
/// total are implied: the vault hashes its own).
pub fn cooperative_close(c: &CooperativeClose) -> ChannelVault::CooperativeClose {
    ChannelVault::CooperativeClose {
        payoutA: c.payoutA,
        payoutB: c.payoutB,
        depositA: c.depositA,
        depositB: c.depositB,
        expiry: c.expiry,
    }
}

/// A hash-time lock as the vault's ABI struct.
pub fn lock(l: &Lock) -> ChannelVault::Lock {
    ChannelVault::Lock {
        expiration: l.expiration,
        amount: l.amount,
        secretHash: l.secret_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolValue;

    fn data(n: u8) -> BalanceData {
        BalanceData {
            nonce: u64::from(n),
            transferred: U256::from(n) * U256::from(1_000),
            locked: U256::from(n),
            locks_root: B256::repeat_byte(n),
        }
    }

    #[test]
    fn dispute_state_round_trips_through_the_abi_struct() {
        let s = DisputeState {
            closer: Side::B,
            deadline: 1_700_000_000,
            total: U256::from(15),
            deposit_a: U256::from(10),
            withdrawn_a: U256::from(1),
            from_a: data(3),
            from_b: data(7),
        };
        let abi = s.to_abi();
        assert_eq!(abi.closer, 1);
        assert_eq!(abi.fromB.nonce, 7);
        assert_eq!(DisputeState::from_abi(&abi).unwrap(), s);
        // What the vault hashes is the ABI encoding, so a round trip must keep every byte.
        let back = DisputeState::from_abi(&abi).unwrap().to_abi();
        assert_eq!(back.abi_encode(), abi.abi_encode());
    }

    #[test]
    fn a_closer_beyond_b_is_garbage() {
        let mut abi = DisputeState {
            closer: Side::A,
            deadline: 0,
            total: U256::ZERO,
            deposit_a: U256::ZERO,
            withdrawn_a: U256::ZERO,
            from_a: BalanceData::default(),
            from_b: BalanceData::default(),
        }
        .to_abi();
        abi.closer = 2;
        assert!(matches!(
            DisputeState::from_abi(&abi),
            Err(ChainError::Garbage { .. })
        ));
    }

    #[test]
    fn lock_state_round_trips() {
        let s = LockState {
            retained_a: U256::from(5),
            locks_root_a: B256::repeat_byte(0xa),
            retained_b: U256::ZERO,
            locks_root_b: B256::ZERO,
        };
        assert_eq!(LockState::from_abi(&s.to_abi()), s);
        assert_eq!(
            s.retained_from(Side::A),
            (U256::from(5), B256::repeat_byte(0xa))
        );
    }
}
