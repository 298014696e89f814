//! keel-core's messages and on-chain states as the contracts' ABI structs.
//!
//! The vault keeps only a hash of its [`DisputeState`] / [`LockState`] (keel-core types);
//! callers pass the state back in calldata and the vault checks it against the hash. So
//! [`VaultAbi`] converts to and from the ABI structs losslessly: what an event published is
//! exactly what `refute`, `settle` and `unlock` send back.

use keel_bindings::{ChannelFactory, ChannelVault};
use keel_core::{
    BalanceData, BalanceProof, ChannelParams, CooperativeClose, DisputeState, Lock, LockState,
    Side, Withdrawal,
};

use super::error::{ChainError, Result};

/// A protocol type as the vault's ABI struct, and back.
pub trait VaultAbi: Sized {
    /// The binding's struct.
    type Abi;
    /// The vault's ABI struct.
    fn to_abi(&self) -> Self::Abi;
    /// From the vault's ABI struct; fails only on values the vault never emits.
    fn from_abi(abi: &Self::Abi) -> Result<Self>;
}

impl VaultAbi for BalanceData {
    type Abi = ChannelVault::BalanceData;

    fn to_abi(&self) -> Self::Abi {
        ChannelVault::BalanceData {
            nonce: self.nonce,
            transferredAmount: self.transferred,
            lockedAmount: self.locked,
            locksRoot: self.locks_root,
        }
    }

    fn from_abi(d: &Self::Abi) -> Result<Self> {
        Ok(Self {
            nonce: d.nonce,
            transferred: d.transferredAmount,
            locked: d.lockedAmount,
            locks_root: d.locksRoot,
        })
    }
}

impl VaultAbi for DisputeState {
    type Abi = ChannelVault::DisputeState;

    fn to_abi(&self) -> Self::Abi {
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

    /// Fails on a closer other than 0 or 1, which the vault never emits.
    fn from_abi(s: &Self::Abi) -> Result<Self> {
        Ok(Self {
            closer: side_from_index(s.closer)?,
            deadline: s.deadline,
            total: s.total,
            deposit_a: s.depositA,
            withdrawn_a: s.withdrawnA,
            from_a: BalanceData::from_abi(&s.fromA)?,
            from_b: BalanceData::from_abi(&s.fromB)?,
        })
    }
}

impl VaultAbi for LockState {
    type Abi = ChannelVault::LockState;

    fn to_abi(&self) -> Self::Abi {
        ChannelVault::LockState {
            retainedA: self.retained_a,
            locksRootA: self.locks_root_a,
            retainedB: self.retained_b,
            locksRootB: self.locks_root_b,
        }
    }

    fn from_abi(s: &Self::Abi) -> Result<Self> {
        Ok(Self {
            retained_a: s.retainedA,
            locks_root_a: s.locksRootA,
            retained_b: s.retainedB,
            locks_root_b: s.locksRootB,
        })
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
    use alloy::{
        primitives::{B256, U256},
        sol_types::SolValue,
    };

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
        assert_eq!(LockState::from_abi(&s.to_abi()).unwrap(), s);
        assert_eq!(
            s.retained_from(Side::A),
            (U256::from(5), B256::repeat_byte(0xa))
        );
    }
}
