//! The stored byte layout: a format version byte, then fixed-size big-endian fields.
//!
//! - Opening (version 1): `chain_id u64 ‖ factory ‖ implementation ‖ participant_a ‖
//!   participant_b ‖ token (20 bytes each) ‖ challenge_period u32 ‖ salt (32) ‖ me u8 (A = 0) ‖
//!   min_lock_lifetime u64 ‖ max_lock_lifetime u64 ‖ max_pending_locks u64`.
//! - Event (version 1): `kind u8 ‖ fields`. Changes and proofs use exactly their wire layout
//!   ([`keel_core::wire::encode_change_proof`] for a sent proof,
//!   [`keel_core::wire::encode_changes_proof`] for a received batch); amounts are `U256`
//!   (32 bytes), times `u64`, signatures 65 bytes. Received proofs of one change each (kind 2,
//!   written before updates carried batches) still decode.
//!
//! A new layout gets a new version byte; decoding keeps reading every older one.

use alloy::primitives::{Address, B256, U256};
use keel_core::{
    channel::{Direction, PendingWithdrawal},
    wire::{decode_change_proof, decode_changes_proof, encode_change_proof, encode_changes_proof},
    ChannelParams, CooperativeClose, Lock, Policy, Progress, Side, Withdrawal,
};

use super::{ChainStatus, ChannelOpening, DecodeError, Event};
use keel_core::{BalanceData, DisputeState, LockState};

/// The layout this build writes. 2: withdrawals carry their destination and closes each side's
/// deposit (signed types of domain version "2"); records of version 1 hold signatures under the
/// old types, which no vault of this build accepts, so they are refused rather than converted.
pub(super) const FORMAT_VERSION: u8 = 2;

const SENT: u8 = 1;
const RECEIVED: u8 = 2;
const DEPOSIT_CONFIRMED: u8 = 3;
const WITHDRAWAL_APPROVED: u8 = 4;
const WITHDRAWAL_CONFIRMED: u8 = 5;
const WITHDRAWALS_EXPIRED: u8 = 6;
const CLOSE_PROPOSED: u8 = 7;
const CLOSE_APPROVED: u8 = 8;
const CLOSE_EXPIRED: u8 = 9;
const CHAIN_CLOSED: u8 = 10;
const CHAIN_REFUTED: u8 = 11;
const CHAIN_SETTLED: u8 = 12;
const LOCKS_RETAINED: u8 = 13;
const RECEIVED_BATCH: u8 = 14;
const WITHDRAWAL_CO_SIGNED: u8 = 15;
const CLOSE_CO_SIGNED: u8 = 16;

/// The stored form of `opening`.
pub(super) fn encode_opening(opening: &ChannelOpening) -> Vec<u8> {
    let mut w = Writer(vec![FORMAT_VERSION]);
    let p = &opening.params;
    w.u64(opening.chain_id);
    for a in [
        opening.factory,
        opening.implementation,
        p.participant_a,
        p.participant_b,
        p.token,
    ] {
        w.bytes(a.as_slice());
    }
    w.bytes(&p.challenge_period.to_be_bytes());
    w.bytes(p.salt.as_slice());
    w.side(opening.me);
    w.u64(opening.policy.min_lock_lifetime);
    w.u64(opening.policy.max_lock_lifetime);
    // usize is at most 64 bits on every supported target.
    w.u64(opening.policy.max_pending_locks as u64);
    w.0
}

/// Reads an opening record.
pub(super) fn decode_opening(bytes: &[u8]) -> Result<ChannelOpening, DecodeError> {
    let mut r = Reader::versioned(bytes)?;
    let chain_id = r.u64()?;
    let factory = r.address()?;
    let implementation = r.address()?;
    let params = ChannelParams {
        participant_a: r.address()?,
        participant_b: r.address()?,
        token: r.address()?,
        challenge_period: u32::from_be_bytes(r.take()?),
        salt: r.b256()?,
    };
    let me = r.side()?;
    let policy = Policy {
        min_lock_lifetime: r.u64()?,
        max_lock_lifetime: r.u64()?,
        max_pending_locks: usize::try_from(r.u64()?)
            .map_err(|_| DecodeError::Invalid("max_pending_locks"))?,
    };
    r.finish()?;
    Ok(ChannelOpening {
        params,
        chain_id,
        factory,
        implementation,
        me,
        policy,
    })
}

/// The stored form of `event`.
pub(super) fn encode_event(event: &Event) -> Vec<u8> {
    let mut w = Writer(vec![FORMAT_VERSION]);
    match event {
        Event::Sent { change, proof, now } => {
            w.u8(SENT);
            w.u64(*now);
            encode_change_proof(change, proof, &mut w.0);
        }
        Event::Received {
            changes,
            proof,
            signature,
            now,
        } => {
            w.u8(RECEIVED_BATCH);
            w.u64(*now);
            encode_changes_proof(changes, proof, &mut w.0);
            w.bytes(signature);
        }
        Event::DepositConfirmed { side, total } => {
            w.u8(DEPOSIT_CONFIRMED);
            w.side(*side);
            w.u256(*total);
        }
        Event::WithdrawalApproved { withdrawal, now } => {
            w.u8(WITHDRAWAL_APPROVED);
            w.u64(*now);
            w.bytes(withdrawal.channelId.as_slice());
            w.bytes(withdrawal.participant.as_slice());
            w.u256(withdrawal.totalWithdrawn);
            w.u64(withdrawal.expiry);
            w.bytes(withdrawal.target.as_slice());
            w.u8(withdrawal.targetSide);
        }
        Event::WithdrawalConfirmed { side, total } => {
            w.u8(WITHDRAWAL_CONFIRMED);
            w.side(*side);
            w.u256(*total);
        }
        Event::WithdrawalsExpired { now } => {
            w.u8(WITHDRAWALS_EXPIRED);
            w.u64(*now);
        }
        Event::CloseProposed { close } | Event::CloseApproved { close } => {
            w.u8(if matches!(event, Event::CloseProposed { .. }) {
                CLOSE_PROPOSED
            } else {
                CLOSE_APPROVED
            });
            w.bytes(close.channelId.as_slice());
            w.u256(close.payoutA);
            w.u256(close.payoutB);
            w.u256(close.depositA);
            w.u256(close.depositB);
            w.u256(close.totalWithdrawn);
            w.u64(close.expiry);
        }
        Event::WithdrawalCoSigned { signature } => {
            w.u8(WITHDRAWAL_CO_SIGNED);
            w.bytes(signature);
        }
        Event::CloseCoSigned { signature } => {
            w.u8(CLOSE_CO_SIGNED);
            w.bytes(signature);
        }
        Event::CloseExpired { now } => {
            w.u8(CLOSE_EXPIRED);
            w.u64(*now);
        }
        Event::ChainClosed(dispute) | Event::ChainRefuted(dispute) => {
            w.u8(if matches!(event, Event::ChainClosed(_)) {
                CHAIN_CLOSED
            } else {
                CHAIN_REFUTED
            });
            w.dispute(dispute);
        }
        Event::ChainSettled { payout_a, payout_b } => {
            w.u8(CHAIN_SETTLED);
            w.u256(*payout_a);
            w.u256(*payout_b);
        }
        Event::LocksRetained(locks) => {
            w.u8(LOCKS_RETAINED);
            w.lock_state(locks);
        }
    }
    w.0
}

/// Reads an event record.
pub(super) fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader::versioned(bytes)?;
    let event = match r.u8()? {
        kind @ (SENT | RECEIVED) => {
            let now = r.u64()?;
            let (change, proof, rest) = decode_change_proof(r.0)?;
            r.0 = rest;
            if kind == SENT {
                Event::Sent { change, proof, now }
            } else {
                Event::Received {
                    changes: vec![change],
                    proof,
                    signature: r.take()?,
                    now,
                }
            }
        }
        RECEIVED_BATCH => {
            let now = r.u64()?;
            let (changes, proof, rest) = decode_changes_proof(r.0)?;
            r.0 = rest;
            Event::Received {
                changes,
                proof,
                signature: r.take()?,
                now,
            }
        }
        DEPOSIT_CONFIRMED => Event::DepositConfirmed {
            side: r.side()?,
            total: r.u256()?,
        },
        WITHDRAWAL_APPROVED => Event::WithdrawalApproved {
            now: r.u64()?,
            withdrawal: Withdrawal {
                channelId: r.b256()?,
                participant: r.address()?,
                totalWithdrawn: r.u256()?,
                expiry: r.u64()?,
                target: r.address()?,
                targetSide: r.u8()?,
            },
        },
        WITHDRAWAL_CONFIRMED => Event::WithdrawalConfirmed {
            side: r.side()?,
            total: r.u256()?,
        },
        WITHDRAWALS_EXPIRED => Event::WithdrawalsExpired { now: r.u64()? },
        kind @ (CLOSE_PROPOSED | CLOSE_APPROVED) => {
            let close = CooperativeClose {
                channelId: r.b256()?,
                payoutA: r.u256()?,
                payoutB: r.u256()?,
                depositA: r.u256()?,
                depositB: r.u256()?,
                totalWithdrawn: r.u256()?,
                expiry: r.u64()?,
            };
            if kind == CLOSE_PROPOSED {
                Event::CloseProposed { close }
            } else {
                Event::CloseApproved { close }
            }
        }
        WITHDRAWAL_CO_SIGNED => Event::WithdrawalCoSigned {
            signature: r.take()?,
        },
        CLOSE_CO_SIGNED => Event::CloseCoSigned {
            signature: r.take()?,
        },
        CLOSE_EXPIRED => Event::CloseExpired { now: r.u64()? },
        kind @ (CHAIN_CLOSED | CHAIN_REFUTED) => {
            let dispute = r.dispute()?;
            if kind == CHAIN_CLOSED {
                Event::ChainClosed(dispute)
            } else {
                Event::ChainRefuted(dispute)
            }
        }
        CHAIN_SETTLED => Event::ChainSettled {
            payout_a: r.u256()?,
            payout_b: r.u256()?,
        },
        LOCKS_RETAINED => Event::LocksRetained(r.lock_state()?),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    r.finish()?;
    Ok(event)
}

/// The stored form of a snapshot: a channel's progress and its on-chain status.
pub(super) fn encode_snapshot(progress: &Progress, status: &ChainStatus) -> Vec<u8> {
    let mut w = Writer(vec![FORMAT_VERSION]);
    for side in 0..2 {
        w.u256(progress.deposits[side]);
        w.u256(progress.withdrawn[side]);
        match &progress.pending_withdrawals[side] {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.bytes(p.withdrawal.channelId.as_slice());
                w.bytes(p.withdrawal.participant.as_slice());
                w.u256(p.withdrawal.totalWithdrawn);
                w.u64(p.withdrawal.expiry);
                w.bytes(p.withdrawal.target.as_slice());
                w.u8(p.withdrawal.targetSide);
                w.u256(p.amount);
            }
        }
        let direction = &progress.directions[side];
        w.u64(direction.nonce);
        w.u256(direction.transferred);
        // At most `Policy::max_pending_locks` locks; the count fits a u64 on every target.
        w.u64(direction.locks.len() as u64);
        for lock in &direction.locks {
            w.u64(lock.expiration);
            w.u256(lock.amount);
            w.bytes(lock.secret_hash.as_slice());
        }
    }
    match &progress.counterparty_signature {
        None => w.u8(0),
        Some(signature) => {
            w.u8(1);
            w.bytes(signature);
        }
    }
    match progress.closing {
        None => w.u8(0),
        Some(expiry) => {
            w.u8(1);
            w.u64(expiry);
        }
    }
    match status {
        ChainStatus::Open => w.u8(0),
        ChainStatus::Disputed(dispute) => {
            w.u8(1);
            w.dispute(dispute);
        }
        ChainStatus::Settled {
            payout_a,
            payout_b,
            dispute,
            locks,
        } => {
            w.u8(2);
            w.u256(*payout_a);
            w.u256(*payout_b);
            match dispute {
                None => w.u8(0),
                Some(d) => {
                    w.u8(1);
                    w.dispute(d);
                }
            }
            match locks {
                None => w.u8(0),
                Some(l) => {
                    w.u8(1);
                    w.lock_state(l);
                }
            }
        }
    }
    w.0
}

/// Reads a snapshot record.
pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<(Progress, ChainStatus), DecodeError> {
    let mut r = Reader::versioned(bytes)?;
    let mut deposits = [U256::ZERO; 2];
    let mut withdrawn = [U256::ZERO; 2];
    let mut pending_withdrawals = [None, None];
    let mut directions = [Direction::default(), Direction::default()];
    for side in 0..2 {
        deposits[side] = r.u256()?;
        withdrawn[side] = r.u256()?;
        pending_withdrawals[side] = match r.flag()? {
            false => None,
            true => Some(PendingWithdrawal {
                withdrawal: Withdrawal {
                    channelId: r.b256()?,
                    participant: r.address()?,
                    totalWithdrawn: r.u256()?,
                    expiry: r.u64()?,
                    target: r.address()?,
                    targetSide: r.u8()?,
                },
                amount: r.u256()?,
            }),
        };
        let nonce = r.u64()?;
        let transferred = r.u256()?;
        let count = r.u64()?;
        // Each lock takes 72 bytes: a count beyond what is left is corrupt, not an allocation.
        if count > (r.0.len() / 72) as u64 {
            return Err(DecodeError::Invalid("lock count"));
        }
        let mut locks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            locks.push(Lock {
                expiration: r.u64()?,
                amount: r.u256()?,
                secret_hash: r.b256()?,
            });
        }
        directions[side] = Direction {
            nonce,
            transferred,
            locks,
        };
    }
    let counterparty_signature = if r.flag()? { Some(r.take()?) } else { None };
    let closing = if r.flag()? { Some(r.u64()?) } else { None };
    let status = match r.u8()? {
        0 => ChainStatus::Open,
        1 => ChainStatus::Disputed(r.dispute()?),
        2 => ChainStatus::Settled {
            payout_a: r.u256()?,
            payout_b: r.u256()?,
            dispute: if r.flag()? { Some(r.dispute()?) } else { None },
            locks: if r.flag()? {
                Some(r.lock_state()?)
            } else {
                None
            },
        },
        _ => return Err(DecodeError::Invalid("chain status")),
    };
    r.finish()?;
    Ok((
        Progress {
            deposits,
            withdrawn,
            pending_withdrawals,
            directions,
            counterparty_signature,
            closing,
        },
        status,
    ))
}

/// Appends big-endian fields to a record (shared with the client's notices).
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u256(&mut self, v: U256) {
        self.0.extend_from_slice(&v.to_be_bytes::<32>());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub(crate) fn side(&mut self, side: Side) {
        self.u8(match side {
            Side::A => 0,
            Side::B => 1,
        });
    }
    fn dispute(&mut self, dispute: &DisputeState) {
        self.side(dispute.closer);
        self.u64(dispute.deadline);
        self.u256(dispute.total);
        self.u256(dispute.deposit_a);
        self.u256(dispute.withdrawn_a);
        for data in [&dispute.from_a, &dispute.from_b] {
            self.u64(data.nonce);
            self.u256(data.transferred);
            self.u256(data.locked);
            self.bytes(data.locks_root.as_slice());
        }
    }
    fn lock_state(&mut self, locks: &LockState) {
        self.u256(locks.retained_a);
        self.bytes(locks.locks_root_a.as_slice());
        self.u256(locks.retained_b);
        self.bytes(locks.locks_root_b.as_slice());
    }
}

/// Reads big-endian fields off a record (shared with the client's notices).
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    /// A reader past the version byte, which must be one this build reads.
    fn versioned(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Self(bytes);
        match r.u8()? {
            FORMAT_VERSION => Ok(r),
            other => Err(DecodeError::UnsupportedVersion(other)),
        }
    }
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    pub(crate) fn u256(&mut self) -> Result<U256, DecodeError> {
        Ok(U256::from_be_bytes(self.take::<32>()?))
    }
    pub(crate) fn b256(&mut self) -> Result<B256, DecodeError> {
        Ok(B256::from(self.take::<32>()?))
    }
    pub(crate) fn address(&mut self) -> Result<Address, DecodeError> {
        Ok(Address::from(self.take::<20>()?))
    }
    pub(crate) fn side(&mut self) -> Result<Side, DecodeError> {
        match self.u8()? {
            0 => Ok(Side::A),
            1 => Ok(Side::B),
            _ => Err(DecodeError::Invalid("side")),
        }
    }
    pub(crate) fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("flag")),
        }
    }
    fn dispute(&mut self) -> Result<DisputeState, DecodeError> {
        let closer = self.side()?;
        let deadline = self.u64()?;
        let (total, deposit_a, withdrawn_a) = (self.u256()?, self.u256()?, self.u256()?);
        let mut data = || -> Result<BalanceData, DecodeError> {
            Ok(BalanceData {
                nonce: self.u64()?,
                transferred: self.u256()?,
                locked: self.u256()?,
                locks_root: self.b256()?,
            })
        };
        let (from_a, from_b) = (data()?, data()?);
        Ok(DisputeState {
            closer,
            deadline,
            total,
            deposit_a,
            withdrawn_a,
            from_a,
            from_b,
        })
    }
    fn lock_state(&mut self) -> Result<LockState, DecodeError> {
        Ok(LockState {
            retained_a: self.u256()?,
            locks_root_a: self.b256()?,
            retained_b: self.u256()?,
            locks_root_b: self.b256()?,
        })
    }
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_core::{Change, Lock};

    use super::*;

    fn events() -> Vec<Event> {
        let id = B256::repeat_byte(0xc1);
        let proof = keel_core::BalanceProof {
            channelId: id,
            nonce: 4,
            transferredAmount: U256::from(9),
            lockedAmount: U256::from(2),
            locksRoot: B256::repeat_byte(0x33),
        };
        let close = CooperativeClose {
            channelId: id,
            payoutA: U256::from(1),
            payoutB: U256::from(2),
            depositA: U256::from(3),
            depositB: U256::from(4),
            totalWithdrawn: U256::ZERO,
            expiry: 77,
        };
        let dispute = DisputeState {
            closer: Side::A,
            deadline: 1_900_000_000,
            total: U256::from(100),
            deposit_a: U256::from(60),
            withdrawn_a: U256::from(5),
            from_a: BalanceData {
                nonce: 7,
                transferred: U256::from(9),
                locked: U256::from(2),
                locks_root: B256::repeat_byte(0x34),
            },
            from_b: BalanceData::default(),
        };
        vec![
            Event::Sent {
                change: Change::Pay {
                    amount: U256::from(5),
                },
                proof: proof.clone(),
                now: 10,
            },
            Event::Received {
                changes: vec![
                    Change::AddLock(Lock {
                        expiration: 900,
                        amount: U256::from(2),
                        secret_hash: B256::repeat_byte(0x5e),
                    }),
                    Change::Pay {
                        amount: U256::from(4),
                    },
                ],
                proof,
                signature: [0xab; 65],
                now: 11,
            },
            Event::DepositConfirmed {
                side: Side::B,
                total: U256::MAX,
            },
            Event::WithdrawalApproved {
                withdrawal: Withdrawal {
                    channelId: id,
                    participant: Address::repeat_byte(0xaa),
                    totalWithdrawn: U256::from(6),
                    expiry: 99,
                    target: Address::repeat_byte(0xdd),
                    targetSide: 1,
                },
                now: 12,
            },
            Event::WithdrawalConfirmed {
                side: Side::A,
                total: U256::from(6),
            },
            Event::WithdrawalsExpired { now: 13 },
            Event::CloseProposed {
                close: close.clone(),
            },
            Event::CloseApproved { close },
            Event::CloseExpired { now: 14 },
            Event::ChainClosed(dispute),
            Event::ChainRefuted(DisputeState {
                closer: Side::B,
                ..dispute
            }),
            Event::ChainSettled {
                payout_a: U256::from(8),
                payout_b: U256::MAX,
            },
            Event::LocksRetained(LockState {
                retained_a: U256::from(3),
                locks_root_a: B256::repeat_byte(0x71),
                retained_b: U256::ZERO,
                locks_root_b: B256::ZERO,
            }),
            Event::WithdrawalCoSigned {
                signature: [0x5a; 65],
            },
            Event::CloseCoSigned {
                signature: [0xa5; 65],
            },
        ]
    }

    #[test]
    fn snapshots_round_trip_and_reject_truncation() {
        let events = events();
        let Event::ChainClosed(dispute) = events[9] else {
            panic!("fixture order changed");
        };
        let lock = Lock {
            expiration: 900,
            amount: U256::from(2),
            secret_hash: B256::repeat_byte(0x5e),
        };
        let progress = Progress {
            deposits: [U256::from(10), U256::MAX],
            withdrawn: [U256::ZERO, U256::from(3)],
            pending_withdrawals: [
                None,
                Some(PendingWithdrawal {
                    withdrawal: Withdrawal {
                        channelId: B256::repeat_byte(0xc1),
                        participant: Address::repeat_byte(0xbb),
                        totalWithdrawn: U256::from(5),
                        expiry: 77,
                        target: Address::ZERO,
                        targetSide: 0,
                    },
                    amount: U256::from(2),
                }),
            ],
            directions: [
                Direction {
                    nonce: 9,
                    transferred: U256::from(4),
                    locks: vec![lock, lock],
                },
                Direction::default(),
            ],
            counterparty_signature: Some([0xab; 65]),
            closing: Some(1_234),
        };
        let statuses = [
            ChainStatus::Open,
            ChainStatus::Disputed(dispute),
            ChainStatus::Settled {
                payout_a: U256::from(1),
                payout_b: U256::from(2),
                dispute: Some(dispute),
                locks: Some(LockState::default()),
            },
        ];
        for status in statuses {
            let bytes = encode_snapshot(&progress, &status);
            assert_eq!(decode_snapshot(&bytes), Ok((progress.clone(), status)));
            for len in 0..bytes.len() {
                assert!(decode_snapshot(&bytes[..len]).is_err(), "at {len}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_snapshot(&longer), Err(DecodeError::TrailingBytes(1)));
        }
    }

    #[test]
    fn every_event_round_trips_and_rejects_truncation() {
        for event in events() {
            let bytes = encode_event(&event);
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode_event(&bytes), Ok(event.clone()));
            for len in 0..bytes.len() {
                assert!(decode_event(&bytes[..len]).is_err(), "{event:?} at {len}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_event(&longer), Err(DecodeError::TrailingBytes(1)));
        }
    }

    #[test]
    fn received_records_of_one_change_from_before_batches_still_decode() {
        let Event::Received {
            changes,
            proof,
            signature,
            now,
        } = &events()[1]
        else {
            panic!("fixture order changed");
        };
        // The layout written before updates carried batches: kind 2, one change, no count.
        let mut bytes = vec![FORMAT_VERSION, RECEIVED];
        bytes.extend_from_slice(&now.to_be_bytes());
        encode_change_proof(&changes[0], proof, &mut bytes);
        bytes.extend_from_slice(signature);
        assert_eq!(
            decode_event(&bytes),
            Ok(Event::Received {
                changes: vec![changes[0].clone()],
                proof: proof.clone(),
                signature: *signature,
                now: *now,
            })
        );
    }

    #[test]
    fn opening_round_trips_and_rejects_other_versions() {
        let opening = ChannelOpening {
            params: ChannelParams {
                participant_a: Address::repeat_byte(1),
                participant_b: Address::repeat_byte(2),
                token: Address::repeat_byte(3),
                challenge_period: 86_400,
                salt: B256::repeat_byte(4),
            },
            chain_id: 31337,
            factory: Address::repeat_byte(5),
            implementation: Address::repeat_byte(6),
            me: Side::B,
            policy: Policy::default(),
        };
        let mut bytes = encode_opening(&opening);
        assert_eq!(decode_opening(&bytes), Ok(opening));
        // Records of the previous layout (1) and of a future one are both refused.
        for other in [FORMAT_VERSION - 1, FORMAT_VERSION + 1] {
            bytes[0] = other;
            assert_eq!(
                decode_opening(&bytes),
                Err(DecodeError::UnsupportedVersion(other))
            );
        }
        assert_eq!(decode_opening(&[]), Err(DecodeError::Truncated));
    }
}
