//! The byte layout of [`Message`]: hand-written, fixed-size fields, so that decoding is a few
//! bounds-checked copies and cannot allocate more than one frame.

use alloy::primitives::{Address, B256, U256};

use super::{Message, Signature, MAX_FRAME_LEN, MAX_UPDATE_CHANGES, MAX_UPDATE_RATES, VERSION};
use crate::{
    channel::Change,
    forwarding::{
        onion::{Packet, PACKET_LEN},
        ChannelAnnouncement, ChannelUpdate, ExchangeRate, FailureReason, HopFailure,
    },
    types::Lock,
    BalanceProof, CooperativeClose, Withdrawal,
};

/// Why bytes from a peer are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the frame or field needs.
    #[error("truncated frame")]
    Truncated,
    /// The length prefix exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the limit")]
    Oversized(usize),
    /// A version this implementation does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// An unknown change tag inside an update.
    #[error("unknown change tag {0}")]
    UnknownChange(u8),
    /// An update with no changes or more than [`MAX_UPDATE_CHANGES`].
    #[error("an update carries {0} changes")]
    ChangeCount(u8),
    /// A channel update with more than [`MAX_UPDATE_RATES`] exchange rates.
    #[error("a channel update carries {0} rates")]
    RateCount(u8),
    /// A flag byte other than 0 or 1 (so that every message has one encoding).
    #[error("flag byte {0} is neither 0 nor 1")]
    BadFlag(u8),
    /// Bytes left after the message.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

const UPDATE: u8 = 1;
const ACK: u8 = 2;
const WITHDRAWAL_REQUEST: u8 = 3;
const WITHDRAWAL_APPROVAL: u8 = 4;
const CLOSE_REQUEST: u8 = 5;
const CLOSE_APPROVAL: u8 = 6;
const RESYNC: u8 = 7;
const REJECT: u8 = 8;
const HELLO: u8 = 9;
const REVEAL_SECRET: u8 = 10;
const LOCK_ONION: u8 = 11;
const LOCK_FAILED: u8 = 12;
const ANNOUNCEMENT_SIGNATURE: u8 = 13;
const CHANNEL_ANNOUNCEMENT: u8 = 14;
const CHANNEL_UPDATE: u8 = 15;
const LOCK_RELEASED: u8 = 16;

/// Appends the frame for `msg` (length prefix included) to `out`.
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    let mut w = Writer(out);
    match msg {
        Message::Update {
            changes,
            proof,
            signature,
        } => {
            w.u8(UPDATE);
            encode_changes_proof(changes, proof, w.0);
            w.bytes(signature);
        }
        Message::Ack { channel_id, nonce } => {
            w.u8(ACK);
            w.bytes(channel_id.as_slice());
            w.u64(*nonce);
        }
        Message::WithdrawalRequest {
            withdrawal,
            signature,
        }
        | Message::WithdrawalApproval {
            withdrawal,
            signature,
        } => {
            w.u8(if matches!(msg, Message::WithdrawalRequest { .. }) {
                WITHDRAWAL_REQUEST
            } else {
                WITHDRAWAL_APPROVAL
            });
            w.bytes(withdrawal.channelId.as_slice());
            w.bytes(withdrawal.participant.as_slice());
            w.u256(withdrawal.totalWithdrawn);
            w.u64(withdrawal.expiry);
            w.bytes(withdrawal.target.as_slice());
            w.u8(withdrawal.targetSide);
            w.bytes(signature);
        }
        Message::CloseRequest { close, signature }
        | Message::CloseApproval { close, signature } => {
            w.u8(if matches!(msg, Message::CloseRequest { .. }) {
                CLOSE_REQUEST
            } else {
                CLOSE_APPROVAL
            });
            w.bytes(close.channelId.as_slice());
            w.u256(close.payoutA);
            w.u256(close.payoutB);
            w.u256(close.depositA);
            w.u256(close.depositB);
            w.u256(close.totalWithdrawn);
            w.u64(close.expiry);
            w.bytes(signature);
        }
        Message::Resync {
            channel_id,
            sent_nonce,
            received_nonce,
        } => {
            w.u8(RESYNC);
            w.bytes(channel_id.as_slice());
            w.u64(*sent_nonce);
            w.u64(*received_nonce);
        }
        Message::Reject { channel_id, code } => {
            w.u8(REJECT);
            w.bytes(channel_id.as_slice());
            w.bytes(&code.to_be_bytes());
        }
        Message::RevealSecret { channel_id, secret } => {
            w.u8(REVEAL_SECRET);
            w.bytes(channel_id.as_slice());
            w.bytes(secret.as_slice());
        }
        Message::LockOnion {
            channel_id,
            secret_hash,
            packet,
        } => {
            w.u8(LOCK_ONION);
            w.bytes(channel_id.as_slice());
            w.bytes(secret_hash.as_slice());
            w.bytes(&packet.0[..]);
        }
        Message::LockFailed {
            channel_id,
            secret_hash,
            failure,
        } => {
            w.u8(LOCK_FAILED);
            w.bytes(channel_id.as_slice());
            w.bytes(secret_hash.as_slice());
            w.bytes(failure.node.as_slice());
            w.bytes(failure.channel.as_slice());
            w.bytes(&failure.reason.to_u16().to_be_bytes());
        }
        Message::LockReleased {
            channel_id,
            secret_hash,
            signature,
        } => {
            w.u8(LOCK_RELEASED);
            w.bytes(channel_id.as_slice());
            w.bytes(secret_hash.as_slice());
            w.bytes(signature);
        }
        Message::AnnouncementSignature {
            channel_id,
            signature,
        } => {
            w.u8(ANNOUNCEMENT_SIGNATURE);
            w.bytes(channel_id.as_slice());
            w.bytes(signature);
        }
        Message::ChannelAnnouncement {
            chain_id,
            announcement,
            capacity,
            signatures,
        } => {
            w.u8(CHANNEL_ANNOUNCEMENT);
            w.u64(*chain_id);
            w.bytes(announcement.channelId.as_slice());
            w.bytes(announcement.participantA.as_slice());
            w.bytes(announcement.participantB.as_slice());
            w.bytes(announcement.token.as_slice());
            w.bytes(&announcement.challengePeriod.to_be_bytes());
            w.bytes(announcement.salt.as_slice());
            w.u256(*capacity);
            w.bytes(&signatures[0]);
            w.bytes(&signatures[1]);
        }
        Message::ChannelUpdate { update, signature } => {
            w.u8(CHANNEL_UPDATE);
            w.bytes(signature);
            w.bytes(update.channelId.as_slice());
            w.bytes(update.node.as_slice());
            w.u64(update.timestamp);
            w.u256(update.feeBase);
            w.bytes(&update.feeProportionalMillionths.to_be_bytes());
            w.u64(update.expiryDelta);
            w.u256(update.minAmount);
            w.u8(u8::from(update.enabled));
            // The client never builds more than MAX_UPDATE_RATES (the decoder refuses more);
            // a longer list is cut here rather than written with a count that lies.
            let rates = &update.rates[..update.rates.len().min(MAX_UPDATE_RATES)];
            w.u8(rates.len() as u8);
            for rate in rates {
                w.u256(rate.chainId);
                w.bytes(rate.token.as_slice());
                w.u256(rate.upstream);
                w.u256(rate.downstream);
            }
        }
        Message::Hello { address } => {
            w.u8(HELLO);
            w.bytes(address.as_slice());
        }
    }
    // Every message is far below u32::MAX (and MAX_FRAME_LEN) by construction.
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Decodes one frame from the front of `buf`: `Ok(None)` if more bytes are needed, else the
/// message and how many bytes it used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME_LEN {
        return Err(WireError::Oversized(len));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let mut r = Reader(body);
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let msg = match r.u8()? {
        UPDATE => {
            let (changes, proof, rest) = decode_changes_proof(r.0)?;
            r.0 = rest;
            Message::Update {
                changes,
                proof,
                signature: r.signature()?,
            }
        }
        ACK => Message::Ack {
            channel_id: r.b256()?,
            nonce: r.u64()?,
        },
        kind @ (WITHDRAWAL_REQUEST | WITHDRAWAL_APPROVAL) => {
            let withdrawal = Withdrawal {
                channelId: r.b256()?,
                participant: r.address()?,
                totalWithdrawn: r.u256()?,
                expiry: r.u64()?,
                target: r.address()?,
                targetSide: r.u8()?,
            };
            let signature = r.signature()?;
            if kind == WITHDRAWAL_REQUEST {
                Message::WithdrawalRequest {
                    withdrawal,
                    signature,
                }
            } else {
                Message::WithdrawalApproval {
                    withdrawal,
                    signature,
                }
            }
        }
        kind @ (CLOSE_REQUEST | CLOSE_APPROVAL) => {
            let close = CooperativeClose {
                channelId: r.b256()?,
                payoutA: r.u256()?,
                payoutB: r.u256()?,
                depositA: r.u256()?,
                depositB: r.u256()?,
                totalWithdrawn: r.u256()?,
                expiry: r.u64()?,
            };
            let signature = r.signature()?;
            if kind == CLOSE_REQUEST {
                Message::CloseRequest { close, signature }
            } else {
                Message::CloseApproval { close, signature }
            }
        }
        RESYNC => Message::Resync {
            channel_id: r.b256()?,
            sent_nonce: r.u64()?,
            received_nonce: r.u64()?,
        },
        REJECT => Message::Reject {
            channel_id: r.b256()?,
            code: u16::from_be_bytes(r.take::<2>()?),
        },
        REVEAL_SECRET => Message::RevealSecret {
            channel_id: r.b256()?,
            secret: r.b256()?,
        },
        HELLO => Message::Hello {
            address: r.address()?,
        },
        LOCK_ONION => Message::LockOnion {
            channel_id: r.b256()?,
            secret_hash: r.b256()?,
            packet: Packet(Box::new(r.take::<PACKET_LEN>()?)),
        },
        LOCK_FAILED => Message::LockFailed {
            channel_id: r.b256()?,
            secret_hash: r.b256()?,
            failure: HopFailure {
                node: r.address()?,
                channel: r.b256()?,
                reason: FailureReason::from_u16(u16::from_be_bytes(r.take::<2>()?)),
            },
        },
        LOCK_RELEASED => Message::LockReleased {
            channel_id: r.b256()?,
            secret_hash: r.b256()?,
            signature: r.signature()?,
        },
        ANNOUNCEMENT_SIGNATURE => Message::AnnouncementSignature {
            channel_id: r.b256()?,
            signature: r.signature()?,
        },
        CHANNEL_ANNOUNCEMENT => Message::ChannelAnnouncement {
            chain_id: r.u64()?,
            announcement: ChannelAnnouncement {
                channelId: r.b256()?,
                participantA: r.address()?,
                participantB: r.address()?,
                token: r.address()?,
                challengePeriod: u32::from_be_bytes(r.take::<4>()?),
                salt: r.b256()?,
            },
            capacity: r.u256()?,
            signatures: [r.signature()?, r.signature()?],
        },
        CHANNEL_UPDATE => {
            let signature = r.signature()?;
            let mut update = ChannelUpdate {
                channelId: r.b256()?,
                node: r.address()?,
                timestamp: r.u64()?,
                feeBase: r.u256()?,
                feeProportionalMillionths: u32::from_be_bytes(r.take::<4>()?),
                expiryDelta: r.u64()?,
                minAmount: r.u256()?,
                enabled: match r.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(WireError::BadFlag(other)),
                },
                rates: Vec::new(),
            };
            let count = r.u8()?;
            if usize::from(count) > MAX_UPDATE_RATES {
                return Err(WireError::RateCount(count));
            }
            update.rates = (0..count)
                .map(|_| {
                    Ok(ExchangeRate {
                        chainId: r.u256()?,
                        token: r.address()?,
                        upstream: r.u256()?,
                        downstream: r.u256()?,
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            Message::ChannelUpdate { update, signature }
        }
        other => return Err(WireError::UnknownKind(other)),
    };
    if !r.0.is_empty() {
        return Err(WireError::TrailingBytes(r.0.len()));
    }
    Ok(Some((msg, 4 + len)))
}

/// Appends `changes` and `proof` in exactly the layout they have at the start of an
/// [`Message::Update`] body (`count u8 ‖ changes ‖ proof`, no length, version or kind byte):
/// for callers that persist them, such as the client's channel store, which adds its own
/// version prefix. `changes` must hold 1 to [`MAX_UPDATE_CHANGES`] entries.
pub fn encode_changes_proof(changes: &[Change], proof: &BalanceProof, out: &mut Vec<u8>) {
    debug_assert!((1..=MAX_UPDATE_CHANGES).contains(&changes.len()));
    let mut w = Writer(out);
    // At most MAX_UPDATE_CHANGES (32): fits a byte.
    w.u8(changes.len() as u8);
    for change in changes {
        w.change(change);
    }
    w.proof(proof);
}

/// Decodes what [`encode_changes_proof`] wrote from the front of `buf`; returns the changes,
/// the proof and the bytes after them. Never allocates for more than [`MAX_UPDATE_CHANGES`].
pub fn decode_changes_proof(buf: &[u8]) -> Result<(Vec<Change>, BalanceProof, &[u8]), WireError> {
    let mut r = Reader(buf);
    let count = r.u8()?;
    if count == 0 || usize::from(count) > MAX_UPDATE_CHANGES {
        return Err(WireError::ChangeCount(count));
    }
    let changes = (0..count)
        .map(|_| r.change())
        .collect::<Result<Vec<_>, _>>()?;
    let proof = r.proof()?;
    Ok((changes, proof, r.0))
}

/// Appends one `change` and `proof` (`change ‖ proof`): the layout of the client store's
/// records of sent proofs, one change each.
pub fn encode_change_proof(change: &Change, proof: &BalanceProof, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.change(change);
    w.proof(proof);
}

/// Decodes what [`encode_change_proof`] wrote from the front of `buf`; returns the change, the
/// proof and the bytes after them.
pub fn decode_change_proof(buf: &[u8]) -> Result<(Change, BalanceProof, &[u8]), WireError> {
    let mut r = Reader(buf);
    let change = r.change()?;
    let proof = r.proof()?;
    Ok((change, proof, r.0))
}

const PAY: u8 = 0;
const ADD_LOCK: u8 = 1;
const CLAIM_LOCK: u8 = 2;
const REMOVE_EXPIRED_LOCK: u8 = 3;
const REMOVE_RELEASED_LOCK: u8 = 4;

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u256(&mut self, v: U256) {
        self.0.extend_from_slice(&v.to_be_bytes::<32>());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn change(&mut self, change: &Change) {
        match change {
            Change::Pay { amount } => {
                self.u8(PAY);
                self.u256(*amount);
            }
            Change::AddLock(lock) => {
                self.u8(ADD_LOCK);
                self.u64(lock.expiration);
                self.u256(lock.amount);
                self.bytes(lock.secret_hash.as_slice());
            }
            Change::ClaimLock { secret } => {
                self.u8(CLAIM_LOCK);
                self.bytes(secret.as_slice());
            }
            Change::RemoveExpiredLock { secret_hash } => {
                self.u8(REMOVE_EXPIRED_LOCK);
                self.bytes(secret_hash.as_slice());
            }
            Change::RemoveReleasedLock {
                secret_hash,
                release,
            } => {
                self.u8(REMOVE_RELEASED_LOCK);
                self.bytes(secret_hash.as_slice());
                self.bytes(release);
            }
        }
    }
    fn proof(&mut self, p: &BalanceProof) {
        self.bytes(p.channelId.as_slice());
        self.u64(p.nonce);
        self.u256(p.transferredAmount);
        self.u256(p.lockedAmount);
        self.bytes(p.locksRoot.as_slice());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn u256(&mut self) -> Result<U256, WireError> {
        Ok(U256::from_be_bytes(self.take::<32>()?))
    }
    fn b256(&mut self) -> Result<B256, WireError> {
        Ok(B256::from(self.take::<32>()?))
    }
    fn address(&mut self) -> Result<Address, WireError> {
        Ok(Address::from(self.take::<20>()?))
    }
    fn signature(&mut self) -> Result<Signature, WireError> {
        self.take::<65>()
    }
    fn change(&mut self) -> Result<Change, WireError> {
        Ok(match self.u8()? {
            PAY => Change::Pay {
                amount: self.u256()?,
            },
            ADD_LOCK => Change::AddLock(Lock {
                expiration: self.u64()?,
                amount: self.u256()?,
                secret_hash: self.b256()?,
            }),
            CLAIM_LOCK => Change::ClaimLock {
                secret: self.b256()?,
            },
            REMOVE_EXPIRED_LOCK => Change::RemoveExpiredLock {
                secret_hash: self.b256()?,
            },
            REMOVE_RELEASED_LOCK => Change::RemoveReleasedLock {
                secret_hash: self.b256()?,
                release: self.signature()?,
            },
            other => return Err(WireError::UnknownChange(other)),
        })
    }
    fn proof(&mut self) -> Result<BalanceProof, WireError> {
        Ok(BalanceProof {
            channelId: self.b256()?,
            nonce: self.u64()?,
            transferredAmount: self.u256()?,
            lockedAmount: self.u256()?,
            locksRoot: self.b256()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Change, BalanceProof) {
        let change = Change::AddLock(Lock {
            expiration: 1_000,
            amount: U256::from(7),
            secret_hash: B256::repeat_byte(0x5e),
        });
        let proof = BalanceProof {
            channelId: B256::repeat_byte(0xc1),
            nonce: 3,
            transferredAmount: U256::from(10),
            lockedAmount: U256::from(7),
            locksRoot: B256::repeat_byte(0x77),
        };
        (change, proof)
    }

    #[test]
    fn change_proof_round_trips() {
        let (change, proof) = sample();
        let mut bytes = Vec::new();
        encode_change_proof(&change, &proof, &mut bytes);
        bytes.push(0xee);
        let (c, p, rest) = decode_change_proof(&bytes).unwrap();
        assert_eq!((c, p, rest), (change, proof, &[0xee][..]));
    }

    #[test]
    fn changes_proof_round_trips_and_matches_the_update_body() {
        let (change, proof) = sample();
        let changes = vec![
            change,
            Change::Pay {
                amount: U256::from(3),
            },
        ];
        let mut bytes = Vec::new();
        encode_changes_proof(&changes, &proof, &mut bytes);
        bytes.push(0xee);
        let (c, p, rest) = decode_changes_proof(&bytes).unwrap();
        assert_eq!((c, p, rest), (changes.clone(), proof.clone(), &[0xee][..]));

        // Same bytes as inside an Update frame: after length (4), version and kind.
        let mut frame = Vec::new();
        let update = Message::Update {
            changes,
            proof,
            signature: [0; 65],
        };
        encode_frame(&update, &mut frame);
        let body = &bytes[..bytes.len() - 1];
        assert_eq!(&frame[6..6 + body.len()], body);
    }

    /// `Hello` is the sender's address and nothing else (version 4); the body of version 3,
    /// which added a chain id, is refused as trailing bytes.
    #[test]
    fn hello_carries_only_the_address() {
        let address = Address::repeat_byte(0xbb);
        let mut frame = Vec::new();
        encode_frame(&Message::Hello { address }, &mut frame);
        let mut expected = vec![0, 0, 0, 22, VERSION, HELLO];
        expected.extend_from_slice(address.as_slice());
        assert_eq!(frame, expected);
        let mut with_chain_id = expected.clone();
        with_chain_id[3] += 8;
        with_chain_id.extend_from_slice(&31337u64.to_be_bytes());
        assert_eq!(
            decode_frame(&with_chain_id),
            Err(WireError::TrailingBytes(8))
        );
    }

    /// The onion travels whole beside its lock (a fixed 1,409 bytes, well inside a frame), and
    /// a cut or padded frame is refused.
    #[test]
    fn lock_onion_round_trips_and_refuses_bad_lengths() {
        let mut packet = Box::new([0u8; PACKET_LEN]);
        for (i, byte) in packet.iter_mut().enumerate() {
            *byte = i as u8;
        }
        let msg = Message::LockOnion {
            channel_id: B256::repeat_byte(0xc1),
            secret_hash: B256::repeat_byte(0x5e),
            packet: Packet(packet),
        };
        let mut frame = Vec::new();
        encode_frame(&msg, &mut frame);
        assert_eq!(frame.len(), 4 + 2 + 64 + PACKET_LEN);
        assert!(frame.len() - 4 <= MAX_FRAME_LEN);
        assert_eq!(decode_frame(&frame), Ok(Some((msg, frame.len()))));
        let mut short = frame[..frame.len() - 1].to_vec();
        short[3] -= 1;
        assert_eq!(decode_frame(&short), Err(WireError::Truncated));
        let mut long = frame.clone();
        long.push(0);
        let len = (long.len() - 4) as u32;
        long[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(decode_frame(&long), Err(WireError::TrailingBytes(1)));
    }

    /// A failure keeps its node, channel and reason code, even a code this build does not know
    /// (relayed unchanged).
    #[test]
    fn lock_failed_round_trips_known_and_unknown_reasons() {
        for reason in [FailureReason::FeeTooLow, FailureReason::Other(999)] {
            let msg = Message::LockFailed {
                channel_id: B256::repeat_byte(1),
                secret_hash: B256::repeat_byte(2),
                failure: HopFailure {
                    node: Address::repeat_byte(3),
                    channel: B256::repeat_byte(4),
                    reason,
                },
            };
            let mut frame = Vec::new();
            encode_frame(&msg, &mut frame);
            assert_eq!(frame.len(), 4 + 2 + 32 + 32 + 20 + 32 + 2);
            assert_eq!(decode_frame(&frame), Ok(Some((msg, frame.len()))));
            for len in 6..frame.len() {
                let mut cut = frame[..len].to_vec();
                cut[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
                assert_eq!(decode_frame(&cut), Err(WireError::Truncated));
            }
        }
    }

    fn gossip_update(rates: usize) -> ChannelUpdate {
        ChannelUpdate {
            channelId: B256::repeat_byte(0xc1),
            node: Address::repeat_byte(0xaa),
            timestamp: 1_700_000_000,
            feeBase: U256::from(1_000),
            feeProportionalMillionths: 2_500,
            expiryDelta: 1_800,
            minAmount: U256::from(1),
            enabled: true,
            rates: vec![
                ExchangeRate {
                    chainId: U256::from(5),
                    token: Address::repeat_byte(0x70),
                    upstream: U256::from(3),
                    downstream: U256::from(2),
                };
                rates
            ],
        }
    }

    /// The largest update (every rate allowed) fits a frame; one rate more is refused by count
    /// before anything is read for it, and a flag byte other than 0 or 1 is refused, so each
    /// update has exactly one encoding.
    #[test]
    fn channel_update_is_bounded_and_has_one_encoding() {
        let msg = Message::ChannelUpdate {
            update: gossip_update(MAX_UPDATE_RATES),
            signature: [7; 65],
        };
        let mut frame = Vec::new();
        encode_frame(&msg, &mut frame);
        assert!(frame.len() - 4 <= MAX_FRAME_LEN);
        assert_eq!(decode_frame(&frame), Ok(Some((msg, frame.len()))));
        // Header (6), signature (65), fixed fields (20+32+8+32+4+8+32 after the id), flag,
        // count: the count byte sits right before the rates.
        let count_at = 4 + 2 + 65 + 32 + 20 + 8 + 32 + 4 + 8 + 32 + 1;
        assert_eq!(frame[count_at], MAX_UPDATE_RATES as u8);
        let mut more = frame.clone();
        more[count_at] = MAX_UPDATE_RATES as u8 + 1;
        assert_eq!(
            decode_frame(&more),
            Err(WireError::RateCount(MAX_UPDATE_RATES as u8 + 1))
        );
        let mut flag = frame.clone();
        flag[count_at - 1] = 2;
        assert_eq!(decode_frame(&flag), Err(WireError::BadFlag(2)));
        for len in 6..frame.len() {
            let mut cut = frame[..len].to_vec();
            cut[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
            assert_eq!(
                decode_frame(&cut),
                Err(WireError::Truncated),
                "cut at {len}"
            );
        }
    }

    #[test]
    fn announcements_and_their_signatures_round_trip() {
        let announcement = ChannelAnnouncement {
            channelId: B256::repeat_byte(0xc1),
            participantA: Address::repeat_byte(0xaa),
            participantB: Address::repeat_byte(0xbb),
            token: Address::ZERO,
            challengePeriod: 86_400,
            salt: B256::repeat_byte(0x5a),
        };
        for msg in [
            Message::ChannelAnnouncement {
                chain_id: 31337,
                announcement,
                capacity: U256::from(10u64.pow(18)),
                signatures: [[1; 65], [2; 65]],
            },
            Message::AnnouncementSignature {
                channel_id: B256::repeat_byte(0xc1),
                signature: [3; 65],
            },
        ] {
            let mut frame = Vec::new();
            encode_frame(&msg, &mut frame);
            assert_eq!(decode_frame(&frame), Ok(Some((msg, frame.len()))));
            for len in 6..frame.len() {
                let mut cut = frame[..len].to_vec();
                cut[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
                assert_eq!(decode_frame(&cut), Err(WireError::Truncated));
            }
        }
    }

    #[test]
    fn changes_proof_takes_one_to_the_most_changes() {
        let (change, proof) = sample();
        let mut bytes = Vec::new();
        encode_changes_proof(&vec![change; MAX_UPDATE_CHANGES], &proof, &mut bytes);
        assert!(decode_changes_proof(&bytes).is_ok());
        for count in [0, MAX_UPDATE_CHANGES as u8 + 1, u8::MAX] {
            bytes[0] = count;
            assert_eq!(
                decode_changes_proof(&bytes).unwrap_err(),
                WireError::ChangeCount(count)
            );
        }
    }

    #[test]
    fn an_update_of_the_most_and_largest_changes_fits_a_frame() {
        let (change, proof) = sample();
        assert!(matches!(change, Change::AddLock(_)), "the largest change");
        let update = Message::Update {
            changes: vec![change; MAX_UPDATE_CHANGES],
            proof,
            signature: [0; 65],
        };
        let mut frame = Vec::new();
        encode_frame(&update, &mut frame);
        assert!(frame.len() - 4 <= MAX_FRAME_LEN);
        assert_eq!(decode_frame(&frame).unwrap(), Some((update, frame.len())));
    }

    #[test]
    fn change_proof_rejects_truncation_and_unknown_tags() {
        let (change, proof) = sample();
        let mut bytes = Vec::new();
        encode_change_proof(&change, &proof, &mut bytes);
        for len in 0..bytes.len() {
            assert_eq!(
                decode_change_proof(&bytes[..len]).unwrap_err(),
                WireError::Truncated
            );
        }
        bytes[0] = 9;
        assert_eq!(
            decode_change_proof(&bytes).unwrap_err(),
            WireError::UnknownChange(9)
        );
    }
}
