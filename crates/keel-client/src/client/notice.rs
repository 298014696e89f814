//! The stored form of the durable [`ClientEvent`]s (the notices table): a format version byte,
//! a kind byte, then fixed-size big-endian fields in the order the variant declares them
//! (ids and hashes 32 bytes, addresses 20, amounts `U256` as 32, nonces and times `u64`,
//! sides and flags one byte). A new layout gets a new version byte.

use keel_core::{Lock, B256};

use super::ClientEvent;
use crate::store::{
    codec::{Reader, Writer},
    DecodeError,
};

/// The layout this build writes.
const VERSION: u8 = 1;

const PAYMENT_RECEIVED: u8 = 1;
const LOCK_RECEIVED: u8 = 2;
const LOCK_CLAIMED: u8 = 3;
const LOCK_EXPIRED: u8 = 4;
const WITHDRAWAL_APPROVED: u8 = 5;
const CLOSE_APPROVED: u8 = 6;
const CHANNEL_OPENED: u8 = 7;
const DEPOSIT_CONFIRMED: u8 = 8;
const WITHDRAWAL_CONFIRMED: u8 = 9;
const CLOSED_BY_PEER: u8 = 10;
const REFUTATION_SUBMITTED: u8 = 11;
const DISPUTE_ANSWERED: u8 = 12;
const SETTLED: u8 = 13;
const CHANNEL_DECLINED: u8 = 14;
const PAYMENT_FORWARDED: u8 = 15;
const FORWARD_FAILED: u8 = 16;
const INVOICE_PAID: u8 = 17;
const PAYMENT_SENT: u8 = 18;
const LOCK_RELEASED: u8 = 19;
const LOCKS_RELEASED_ON_CHAIN: u8 = 20;

/// The stored form of `event`, or `None` for the live-only events (connections, chain health,
/// refusals, failures), which describe the running process rather than a channel's history.
pub(crate) fn encode(event: &ClientEvent) -> Option<Vec<u8>> {
    let mut w = Writer(vec![VERSION]);
    let id = |w: &mut Writer, id: &B256| w.bytes(id.as_slice());
    match event {
        ClientEvent::PaymentReceived {
            channel_id,
            amount,
            nonce,
        } => {
            w.u8(PAYMENT_RECEIVED);
            id(&mut w, channel_id);
            w.u256(*amount);
            w.u64(*nonce);
        }
        ClientEvent::LockReceived { channel_id, lock } => {
            w.u8(LOCK_RECEIVED);
            id(&mut w, channel_id);
            w.u64(lock.expiration);
            w.u256(lock.amount);
            w.bytes(lock.secret_hash.as_slice());
        }
        ClientEvent::LockClaimed {
            channel_id,
            secret_hash,
            secret,
            amount,
            incoming,
        } => {
            w.u8(LOCK_CLAIMED);
            id(&mut w, channel_id);
            w.bytes(secret_hash.as_slice());
            w.bytes(secret.as_slice());
            w.u256(*amount);
            w.u8(u8::from(*incoming));
        }
        ClientEvent::LockExpired {
            channel_id,
            secret_hash,
        } => {
            w.u8(LOCK_EXPIRED);
            id(&mut w, channel_id);
            w.bytes(secret_hash.as_slice());
        }
        ClientEvent::LockReleased {
            channel_id,
            secret_hash,
        } => {
            w.u8(LOCK_RELEASED);
            id(&mut w, channel_id);
            w.bytes(secret_hash.as_slice());
        }
        ClientEvent::WithdrawalApproved {
            channel_id,
            total_withdrawn,
        } => {
            w.u8(WITHDRAWAL_APPROVED);
            id(&mut w, channel_id);
            w.u256(*total_withdrawn);
        }
        ClientEvent::CloseApproved { channel_id } => {
            w.u8(CLOSE_APPROVED);
            id(&mut w, channel_id);
        }
        ClientEvent::ChannelOpened { channel_id, peer } => {
            w.u8(CHANNEL_OPENED);
            id(&mut w, channel_id);
            w.bytes(peer.as_slice());
        }
        ClientEvent::ChannelDeclined {
            channel_id,
            peer,
            deposit,
        } => {
            w.u8(CHANNEL_DECLINED);
            id(&mut w, channel_id);
            w.bytes(peer.as_slice());
            w.u256(*deposit);
        }
        ClientEvent::PaymentForwarded {
            incoming_channel,
            outgoing_channel,
            secret_hash,
            fee,
        } => {
            w.u8(PAYMENT_FORWARDED);
            id(&mut w, incoming_channel);
            id(&mut w, outgoing_channel);
            id(&mut w, secret_hash);
            w.u256(*fee);
        }
        ClientEvent::ForwardFailed {
            incoming_channel,
            secret_hash,
            failure,
        } => {
            w.u8(FORWARD_FAILED);
            id(&mut w, incoming_channel);
            id(&mut w, secret_hash);
            w.bytes(failure.node.as_slice());
            id(&mut w, &failure.channel);
            w.bytes(&failure.reason.to_u16().to_be_bytes());
        }
        ClientEvent::InvoicePaid {
            payment_hash,
            channel_id,
            amount,
        } => {
            w.u8(INVOICE_PAID);
            id(&mut w, payment_hash);
            id(&mut w, channel_id);
            w.u256(*amount);
        }
        ClientEvent::PaymentSent {
            payment_hash,
            amount,
            fees,
            hops,
        } => {
            w.u8(PAYMENT_SENT);
            id(&mut w, payment_hash);
            w.u256(*amount);
            w.u256(*fees);
            w.u64(*hops);
        }
        ClientEvent::DepositConfirmed {
            channel_id,
            side,
            total,
        } => {
            w.u8(DEPOSIT_CONFIRMED);
            id(&mut w, channel_id);
            w.side(*side);
            w.u256(*total);
        }
        ClientEvent::WithdrawalConfirmed {
            channel_id,
            side,
            total,
        } => {
            w.u8(WITHDRAWAL_CONFIRMED);
            id(&mut w, channel_id);
            w.side(*side);
            w.u256(*total);
        }
        ClientEvent::ClosedByPeer {
            channel_id,
            deadline,
        } => {
            w.u8(CLOSED_BY_PEER);
            id(&mut w, channel_id);
            w.u64(*deadline);
        }
        ClientEvent::RefutationSubmitted {
            channel_id,
            nonce,
            tx_hash,
        } => {
            w.u8(REFUTATION_SUBMITTED);
            id(&mut w, channel_id);
            w.u64(*nonce);
            w.bytes(tx_hash.as_slice());
        }
        ClientEvent::LocksReleasedOnChain {
            channel_id,
            count,
            tx_hash,
        } => {
            w.u8(LOCKS_RELEASED_ON_CHAIN);
            id(&mut w, channel_id);
            w.u64(*count);
            w.bytes(tx_hash.as_slice());
        }
        ClientEvent::DisputeAnswered {
            channel_id,
            closer_nonce,
        } => {
            w.u8(DISPUTE_ANSWERED);
            id(&mut w, channel_id);
            w.u64(*closer_nonce);
        }
        ClientEvent::Settled {
            channel_id,
            payout_a,
            payout_b,
        } => {
            w.u8(SETTLED);
            id(&mut w, channel_id);
            w.u256(*payout_a);
            w.u256(*payout_b);
        }
        ClientEvent::PeerConnected(_)
        | ClientEvent::PeerDisconnected(_)
        | ClientEvent::PeerRejected { .. }
        | ClientEvent::ChainTrouble { .. }
        | ClientEvent::ChainRecovered { .. }
        | ClientEvent::TowerTrouble { .. }
        | ClientEvent::TowerRecovered { .. }
        | ClientEvent::ChannelFailed { .. } => return None,
    }
    Some(w.0)
}

/// Reads a stored notice.
pub(crate) fn decode(bytes: &[u8]) -> Result<ClientEvent, DecodeError> {
    let mut r = Reader(bytes);
    match r.u8()? {
        VERSION => {}
        other => return Err(DecodeError::UnsupportedVersion(other)),
    }
    let kind = r.u8()?;
    let channel_id = r.b256()?;
    let event = match kind {
        PAYMENT_RECEIVED => ClientEvent::PaymentReceived {
            channel_id,
            amount: r.u256()?,
            nonce: r.u64()?,
        },
        LOCK_RECEIVED => ClientEvent::LockReceived {
            channel_id,
            lock: Lock {
                expiration: r.u64()?,
                amount: r.u256()?,
                secret_hash: r.b256()?,
            },
        },
        LOCK_CLAIMED => ClientEvent::LockClaimed {
            channel_id,
            secret_hash: r.b256()?,
            secret: r.b256()?,
            amount: r.u256()?,
            incoming: r.flag()?,
        },
        LOCK_EXPIRED => ClientEvent::LockExpired {
            channel_id,
            secret_hash: r.b256()?,
        },
        LOCK_RELEASED => ClientEvent::LockReleased {
            channel_id,
            secret_hash: r.b256()?,
        },
        WITHDRAWAL_APPROVED => ClientEvent::WithdrawalApproved {
            channel_id,
            total_withdrawn: r.u256()?,
        },
        CLOSE_APPROVED => ClientEvent::CloseApproved { channel_id },
        CHANNEL_OPENED => ClientEvent::ChannelOpened {
            channel_id,
            peer: r.address()?,
        },
        CHANNEL_DECLINED => ClientEvent::ChannelDeclined {
            channel_id,
            peer: r.address()?,
            deposit: r.u256()?,
        },
        PAYMENT_FORWARDED => ClientEvent::PaymentForwarded {
            incoming_channel: channel_id,
            outgoing_channel: r.b256()?,
            secret_hash: r.b256()?,
            fee: r.u256()?,
        },
        FORWARD_FAILED => ClientEvent::ForwardFailed {
            incoming_channel: channel_id,
            secret_hash: r.b256()?,
            failure: keel_core::forwarding::HopFailure {
                node: r.address()?,
                channel: r.b256()?,
                reason: keel_core::forwarding::FailureReason::from_u16(u16::from_be_bytes(
                    r.take()?,
                )),
            },
        },
        INVOICE_PAID => ClientEvent::InvoicePaid {
            payment_hash: channel_id,
            channel_id: r.b256()?,
            amount: r.u256()?,
        },
        PAYMENT_SENT => ClientEvent::PaymentSent {
            payment_hash: channel_id,
            amount: r.u256()?,
            fees: r.u256()?,
            hops: r.u64()?,
        },
        DEPOSIT_CONFIRMED => ClientEvent::DepositConfirmed {
            channel_id,
            side: r.side()?,
            total: r.u256()?,
        },
        WITHDRAWAL_CONFIRMED => ClientEvent::WithdrawalConfirmed {
            channel_id,
            side: r.side()?,
            total: r.u256()?,
        },
        CLOSED_BY_PEER => ClientEvent::ClosedByPeer {
            channel_id,
            deadline: r.u64()?,
        },
        REFUTATION_SUBMITTED => ClientEvent::RefutationSubmitted {
            channel_id,
            nonce: r.u64()?,
            tx_hash: r.b256()?,
        },
        LOCKS_RELEASED_ON_CHAIN => ClientEvent::LocksReleasedOnChain {
            channel_id,
            count: r.u64()?,
            tx_hash: r.b256()?,
        },
        DISPUTE_ANSWERED => ClientEvent::DisputeAnswered {
            channel_id,
            closer_nonce: r.u64()?,
        },
        SETTLED => ClientEvent::Settled {
            channel_id,
            payout_a: r.u256()?,
            payout_b: r.u256()?,
        },
        other => return Err(DecodeError::UnknownKind(other)),
    };
    r.finish()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use keel_core::{Address, Side, U256};

    use super::*;

    #[test]
    fn every_durable_event_round_trips_and_rejects_truncation() {
        let id = B256::repeat_byte(0xc1);
        let events = [
            ClientEvent::PaymentReceived {
                channel_id: id,
                amount: U256::MAX,
                nonce: 7,
            },
            ClientEvent::LockReceived {
                channel_id: id,
                lock: Lock {
                    expiration: 9,
                    amount: U256::from(3),
                    secret_hash: B256::repeat_byte(5),
                },
            },
            ClientEvent::LockClaimed {
                channel_id: id,
                secret_hash: B256::repeat_byte(1),
                secret: B256::repeat_byte(2),
                amount: U256::from(4),
                incoming: true,
            },
            ClientEvent::LockExpired {
                channel_id: id,
                secret_hash: B256::repeat_byte(6),
            },
            ClientEvent::LockReleased {
                channel_id: id,
                secret_hash: B256::repeat_byte(7),
            },
            ClientEvent::LocksReleasedOnChain {
                channel_id: id,
                count: 3,
                tx_hash: B256::repeat_byte(8),
            },
            ClientEvent::WithdrawalApproved {
                channel_id: id,
                total_withdrawn: U256::from(8),
            },
            ClientEvent::CloseApproved { channel_id: id },
            ClientEvent::ChannelOpened {
                channel_id: id,
                peer: Address::repeat_byte(0xbb),
            },
            ClientEvent::ChannelDeclined {
                channel_id: id,
                peer: Address::repeat_byte(0xcc),
                deposit: U256::from(9),
            },
            ClientEvent::DepositConfirmed {
                channel_id: id,
                side: Side::B,
                total: U256::from(10),
            },
            ClientEvent::WithdrawalConfirmed {
                channel_id: id,
                side: Side::A,
                total: U256::from(11),
            },
            ClientEvent::ClosedByPeer {
                channel_id: id,
                deadline: 12,
            },
            ClientEvent::RefutationSubmitted {
                channel_id: id,
                nonce: 13,
                tx_hash: B256::repeat_byte(0x7f),
            },
            ClientEvent::DisputeAnswered {
                channel_id: id,
                closer_nonce: 14,
            },
            ClientEvent::Settled {
                channel_id: id,
                payout_a: U256::from(15),
                payout_b: U256::ZERO,
            },
            ClientEvent::PaymentForwarded {
                incoming_channel: id,
                outgoing_channel: B256::repeat_byte(0x0c),
                secret_hash: B256::repeat_byte(0x5e),
                fee: U256::from(16),
            },
            ClientEvent::ForwardFailed {
                incoming_channel: id,
                secret_hash: B256::repeat_byte(0x5e),
                failure: keel_core::forwarding::HopFailure {
                    node: Address::repeat_byte(0xdd),
                    channel: B256::repeat_byte(0x0d),
                    reason: keel_core::forwarding::FailureReason::ExpiryTooSoon,
                },
            },
            ClientEvent::InvoicePaid {
                payment_hash: B256::repeat_byte(0x5e),
                channel_id: id,
                amount: U256::from(17),
            },
            ClientEvent::PaymentSent {
                payment_hash: B256::repeat_byte(0x5e),
                amount: U256::from(18),
                fees: U256::from(2),
                hops: 3,
            },
        ];
        for event in events {
            let bytes = encode(&event).expect("durable");
            assert_eq!(decode(&bytes), Ok(event.clone()));
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "{event:?} at {len}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes(1)));
        }
        assert_eq!(encode(&ClientEvent::PeerConnected(Address::ZERO)), None);
    }
}
