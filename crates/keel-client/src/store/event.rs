//! What the store records: a channel's opening and the events applied to it since.

use alloy::primitives::{Address, U256};
use keel_core::{
    channel::Policy, wire::Signature, BalanceProof, Change, ChannelParams, ChannelState,
    CooperativeClose, Side, Withdrawal,
};

use super::ReplayError;
use keel_core::{DisputeState, LockState};

/// Everything [`ChannelState::new`] takes: the fixed facts of a channel, stored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelOpening {
    /// The channel's parameters.
    pub params: ChannelParams,
    /// The chain it lives on.
    pub chain_id: u64,
    /// The factory that created its vault.
    pub factory: Address,
    /// The vault implementation the factory clones.
    pub implementation: Address,
    /// Which side we are.
    pub me: Side,
    /// The limits both sides enforce.
    pub policy: Policy,
}

impl ChannelOpening {
    /// The freshly opened channel, before any event.
    pub fn state(&self) -> ChannelState {
        ChannelState::new(
            self.params,
            self.chain_id,
            self.factory,
            self.implementation,
            self.me,
            self.policy,
        )
    }
}

/// One applied state transition, as the log records it. Each variant is one
/// [`ChannelState`] call with its arguments (time-dependent calls keep their `now`), so replaying
/// the log through [`Event::apply`] rebuilds exactly the state the calls produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// [`ChannelState::send`] made `proof`; stored before it is signed and sent.
    Sent {
        /// The change.
        change: Change,
        /// The proof `send` returned.
        proof: BalanceProof,
        /// The time passed to `send`.
        now: u64,
    },
    /// [`ChannelState::receive`] accepted the counterparty's update; stored before it is
    /// acknowledged.
    Received {
        /// The changes, in order (one or more).
        changes: Vec<Change>,
        /// The counterparty's proof.
        proof: BalanceProof,
        /// The counterparty's signature over it (what a close submits).
        signature: Signature,
        /// The time passed to `receive`.
        now: u64,
    },
    /// [`ChannelState::deposit_confirmed`].
    DepositConfirmed {
        /// Whose deposit.
        side: Side,
        /// The cumulative total seen on chain.
        total: U256,
    },
    /// [`ChannelState::approve_withdrawal`].
    WithdrawalApproved {
        /// The withdrawal.
        withdrawal: Withdrawal,
        /// The time passed to `approve_withdrawal`.
        now: u64,
    },
    /// [`ChannelState::withdrawal_confirmed`].
    WithdrawalConfirmed {
        /// Whose withdrawal.
        side: Side,
        /// The cumulative total seen on chain.
        total: U256,
    },
    /// [`ChannelState::expire_withdrawals`]; recorded when it released capacity that later
    /// events may use.
    WithdrawalsExpired {
        /// The time passed.
        now: u64,
    },
    /// [`ChannelState::propose_close`] returned `close`.
    CloseProposed {
        /// The close this side proposed.
        close: CooperativeClose,
    },
    /// [`ChannelState::approve_close`] accepted `close`.
    CloseApproved {
        /// The counterparty's close.
        close: CooperativeClose,
    },
    /// The counterparty's signature over our pending withdrawal (the latest
    /// `WithdrawalApproved` naming us), stored the moment it arrives: the withdrawal can then be
    /// submitted again after a failed submission or a restart. Changes no state.
    WithdrawalCoSigned {
        /// The counterparty's signature.
        signature: Signature,
    },
    /// The counterparty's signature over the close we proposed (the latest `CloseProposed`),
    /// stored the moment it arrives, as [`Event::WithdrawalCoSigned`]. Changes no state.
    CloseCoSigned {
        /// The counterparty's signature.
        signature: Signature,
    },
    /// [`ChannelState::close_expired`] re-opened the channel.
    CloseExpired {
        /// The time passed.
        now: u64,
    },
    /// The channel was closed unilaterally on chain (`Closed`): no more off-chain updates.
    ChainClosed(DisputeState),
    /// A refutation replaced the closer's proof on record (`Refuted`).
    ChainRefuted(DisputeState),
    /// The vault paid out (`Settled` or `CooperativelyClosed`): the channel is over, except for
    /// locks settlement retained.
    ChainSettled {
        /// Paid to A.
        payout_a: U256,
        /// Paid to B.
        payout_b: U256,
    },
    /// Settlement kept funds for pending locks (`LocksRetained`), or an unlock left this much
    /// (`Unlocked`).
    LocksRetained(LockState),
}

/// Where a channel stands on chain, as the recorded chain events left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChainStatus {
    /// Open: off-chain updates go on.
    #[default]
    Open,
    /// Closed unilaterally; the challenge period runs until the dispute's deadline.
    Disputed(DisputeState),
    /// Paid out.
    Settled {
        /// Paid to A.
        payout_a: U256,
        /// Paid to B.
        payout_b: U256,
        /// The dispute it settled, if it was not a cooperative close.
        dispute: Option<DisputeState>,
        /// What settlement kept for pending locks, if anything.
        locks: Option<LockState>,
    },
}

impl ChainStatus {
    /// Folds in a recorded event (events that are not about the chain leave it unchanged).
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ChainClosed(dispute) | Event::ChainRefuted(dispute) => {
                *self = Self::Disputed(*dispute);
            }
            Event::ChainSettled { payout_a, payout_b } => {
                let (dispute, locks) = match self {
                    Self::Disputed(dispute) => (Some(*dispute), None),
                    // The retained locks came first (below), or this is a re-delivery.
                    Self::Settled { dispute, locks, .. } => (*dispute, *locks),
                    Self::Open => (None, None),
                };
                *self = Self::Settled {
                    payout_a: *payout_a,
                    payout_b: *payout_b,
                    dispute,
                    locks,
                };
            }
            Event::LocksRetained(retained) => match self {
                Self::Settled { locks, .. } => *locks = Some(*retained),
                // The vault emits `LocksRetained` just before `Settled`, in the same
                // transaction: settled, with the payouts the next event brings.
                Self::Disputed(dispute) => {
                    *self = Self::Settled {
                        payout_a: U256::ZERO,
                        payout_b: U256::ZERO,
                        dispute: Some(*dispute),
                        locks: Some(*retained),
                    };
                }
                Self::Open => {}
            },
            _ => {}
        }
    }

    /// Whether off-chain updates may go on.
    pub const fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }
}

impl Event {
    /// Re-applies this event to `state` through the same state-machine call that first applied
    /// it. Received proofs are verified again (a tampered row fails here); a `Sent` or
    /// `CloseProposed` must reproduce the stored proof or close exactly.
    pub fn apply(&self, state: &mut ChannelState) -> Result<(), ReplayError> {
        match self {
            Self::Sent { change, proof, now } => {
                if state.send(change, *now)? != *proof {
                    return Err(ReplayError::Mismatch("sent proof"));
                }
            }
            Self::Received {
                changes,
                proof,
                signature,
                now,
            } => state.receive(changes, proof, signature, *now)?,
            Self::DepositConfirmed { side, total } => state.deposit_confirmed(*side, *total)?,
            Self::WithdrawalApproved { withdrawal, now } => {
                state.approve_withdrawal(withdrawal, *now)?;
            }
            Self::WithdrawalConfirmed { side, total } => {
                state.withdrawal_confirmed(*side, *total)?;
            }
            Self::WithdrawalsExpired { now } => state.expire_withdrawals(*now),
            Self::CloseProposed { close } => {
                if state.propose_close(close.expiry)? != *close {
                    return Err(ReplayError::Mismatch("close"));
                }
            }
            Self::CloseApproved { close } => state.approve_close(close)?,
            Self::CloseExpired { now } => {
                state.close_expired(*now);
            }
            // On-chain outcomes: the state machine's balances stay as they were; the client
            // tracks them in a [`ChainStatus`].
            // Signatures are kept for submitting, not applied.
            Self::WithdrawalCoSigned { .. } | Self::CloseCoSigned { .. } => {}
            Self::ChainClosed(_)
            | Self::ChainRefuted(_)
            | Self::ChainSettled { .. }
            | Self::LocksRetained(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use keel_core::{BalanceData, Side, B256};

    use super::*;

    /// The vault emits `LocksRetained` before `Settled` in one transaction: applied in that
    /// order (and again, as a monitor re-delivers), the status is settled with both the payouts
    /// and the retained locks, which `unlock` needs.
    #[test]
    fn locks_retained_before_the_settlement_are_kept() {
        let dispute = DisputeState {
            closer: Side::B,
            deadline: 100,
            total: U256::from(10),
            deposit_a: U256::from(10),
            withdrawn_a: U256::ZERO,
            from_a: BalanceData::default(),
            from_b: BalanceData::default(),
        };
        let retained = LockState {
            retained_a: U256::from(3),
            locks_root_a: B256::repeat_byte(1),
            ..LockState::default()
        };
        let unlocked = LockState::default();
        let settled = Event::ChainSettled {
            payout_a: U256::from(7),
            payout_b: U256::ZERO,
        };
        let mut status = ChainStatus::Disputed(dispute);
        for event in [&Event::LocksRetained(retained), &settled] {
            status.apply(event);
        }
        let expected = |locks| ChainStatus::Settled {
            payout_a: U256::from(7),
            payout_b: U256::ZERO,
            dispute: Some(dispute),
            locks: Some(locks),
        };
        assert_eq!(status, expected(retained));
        // An unlock, then the same events and the unlock delivered again.
        status.apply(&Event::LocksRetained(unlocked));
        assert_eq!(status, expected(unlocked));
        for event in [
            &Event::LocksRetained(retained),
            &settled,
            &Event::LocksRetained(unlocked),
        ] {
            status.apply(event);
        }
        assert_eq!(status, expected(unlocked));
        // A cooperative close retains nothing.
        let mut open = ChainStatus::Open;
        open.apply(&settled);
        assert!(matches!(
            open,
            ChainStatus::Settled {
                locks: None,
                dispute: None,
                ..
            }
        ));
    }
}
