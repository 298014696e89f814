//! The wire decoder against hostile bytes: the committed corpus (`fuzz/corpus/wire`, seeds of
//! every message kind plus truncated, oversized, unknown and padded frames), random bytes, and
//! random mutations of valid frames. Set KEEL_WRITE_CORPUS=1 to regenerate the seeds.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, U256};
use keel_core::{
    channel::Change,
    forwarding::{
        onion::{Packet, PACKET_LEN},
        ChannelAnnouncement, ChannelUpdate, ExchangeRate, FailureReason, HopFailure,
    },
    wire::{
        decode_frame, encode_frame, fuzz_decode, Message, WireError, MAX_FRAME_LEN,
        MAX_UPDATE_CHANGES,
    },
    BalanceProof, CooperativeClose, Lock, Withdrawal,
};
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire")
}

fn proof(nonce: u64) -> BalanceProof {
    BalanceProof {
        channelId: B256::repeat_byte(0xc1),
        nonce,
        transferredAmount: U256::from(123_456_789u64),
        lockedAmount: U256::from(5u64),
        locksRoot: B256::repeat_byte(0x70),
    }
}

fn samples() -> Vec<Message> {
    let id = B256::repeat_byte(0xc1);
    let sig = [0x5a; 65];
    let withdrawal = Withdrawal {
        channelId: id,
        participant: Address::repeat_byte(0xaa),
        totalWithdrawn: U256::from(9u64),
        expiry: 1_900_000_000,
        target: Address::repeat_byte(0xbb),
        targetSide: 1,
    };
    let close = CooperativeClose {
        channelId: id,
        payoutA: U256::from(1u64),
        payoutB: U256::from(2u64),
        depositA: U256::from(3u64),
        depositB: U256::from(4u64),
        totalWithdrawn: U256::ZERO,
        expiry: 1_900_000_000,
    };
    let lock = Lock {
        expiration: 1_900_000_000,
        amount: U256::from(5u64),
        secret_hash: B256::repeat_byte(0x5e),
    };
    vec![
        Message::Update {
            changes: vec![Change::Pay {
                amount: U256::from(7u64),
            }],
            proof: proof(1),
            signature: sig,
        },
        Message::Update {
            changes: vec![Change::AddLock(lock)],
            proof: proof(2),
            signature: sig,
        },
        Message::Update {
            changes: vec![Change::ClaimLock {
                secret: B256::repeat_byte(3),
            }],
            proof: proof(3),
            signature: sig,
        },
        Message::Update {
            changes: vec![Change::RemoveExpiredLock {
                secret_hash: B256::repeat_byte(4),
            }],
            proof: proof(4),
            signature: sig,
        },
        Message::Update {
            changes: vec![Change::RemoveReleasedLock {
                secret_hash: B256::repeat_byte(4),
                release: [0x4e; 65],
            }],
            proof: proof(5),
            signature: sig,
        },
        Message::Update {
            changes: vec![
                Change::AddLock(lock),
                Change::Pay {
                    amount: U256::from(8u64),
                },
                Change::ClaimLock {
                    secret: B256::repeat_byte(3),
                },
            ],
            proof: proof(7),
            signature: sig,
        },
        Message::Ack {
            channel_id: id,
            nonce: 4,
        },
        Message::WithdrawalRequest {
            withdrawal: withdrawal.clone(),
            signature: sig,
        },
        Message::WithdrawalApproval {
            withdrawal,
            signature: sig,
        },
        Message::CloseRequest {
            close: close.clone(),
            signature: sig,
        },
        Message::CloseApproval {
            close,
            signature: sig,
        },
        Message::Resync {
            channel_id: id,
            sent_nonce: 10,
            received_nonce: 12,
        },
        Message::Reject {
            channel_id: id,
            code: 3,
        },
        Message::Hello {
            address: Address::repeat_byte(0xbb),
        },
        Message::RevealSecret {
            channel_id: id,
            secret: B256::repeat_byte(0x53),
        },
        Message::LockOnion {
            channel_id: id,
            secret_hash: B256::repeat_byte(0x5e),
            packet: Packet(Box::new([0x0e; PACKET_LEN])),
        },
        Message::LockFailed {
            channel_id: id,
            secret_hash: B256::repeat_byte(0x5e),
            failure: HopFailure {
                node: Address::repeat_byte(0xaa),
                channel: B256::repeat_byte(0xc2),
                reason: FailureReason::ExpiryTooSoon,
            },
        },
        Message::LockReleased {
            channel_id: id,
            secret_hash: B256::repeat_byte(0x5e),
            signature: sig,
        },
        Message::AnnouncementSignature {
            channel_id: id,
            signature: sig,
        },
        Message::ChannelAnnouncement {
            chain_id: 31337,
            announcement: ChannelAnnouncement {
                channelId: id,
                participantA: Address::repeat_byte(0xaa),
                participantB: Address::repeat_byte(0xbb),
                token: Address::repeat_byte(0x70),
                challengePeriod: 86_400,
                salt: B256::repeat_byte(0x5a),
            },
            capacity: U256::from(2_000_000u64),
            signatures: [sig, [0x6b; 65]],
        },
        Message::ChannelUpdate {
            update: ChannelUpdate {
                channelId: id,
                node: Address::repeat_byte(0xaa),
                timestamp: 1_900_000_000,
                feeBase: U256::from(1_000u64),
                feeProportionalMillionths: 2_500,
                expiryDelta: 1_800,
                minAmount: U256::from(1u64),
                enabled: true,
                rates: vec![ExchangeRate {
                    chainId: U256::from(5u64),
                    token: Address::repeat_byte(0x70),
                    upstream: U256::from(3u64),
                    downstream: U256::from(2u64),
                }],
            },
            signature: sig,
        },
    ]
}

fn frame(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out);
    out
}

/// Valid frames, and each one broken in the ways a hostile peer would break it.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (i, msg) in samples().iter().enumerate() {
        let f = frame(msg);
        seeds.push((format!("{i:02}-valid"), f.clone()));
        seeds.push((format!("{i:02}-truncated"), f[..f.len() - 1].to_vec()));
        let mut padded = f.clone();
        padded.push(0);
        let len = u32::from_be_bytes(padded[..4].try_into().unwrap()) + 1;
        padded[..4].copy_from_slice(&len.to_be_bytes());
        seeds.push((format!("{i:02}-trailing"), padded));
        let mut kind = f.clone();
        kind[5] = 0xee;
        seeds.push((format!("{i:02}-unknown-kind"), kind));
    }
    let mut oversized = (MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[1, 1]);
    seeds.push(("oversized".into(), oversized));
    seeds.push(("empty".into(), Vec::new()));
    seeds
}

#[test]
fn corpus_replays_without_panicking() {
    let dir = corpus_dir();
    if std::env::var_os("KEEL_WRITE_CORPUS").is_some() {
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        fuzz_decode(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(
        count >= seeds().len(),
        "corpus at {} is missing seeds",
        dir.display()
    );
}

/// The committed seeds are still what their names say: each `NN-valid` decodes to sample `NN`,
/// whole, and each broken variant of it gets the outcome it was made to provoke. A decoder
/// change that reads an old valid frame as something else, or the corpus drifting from
/// `seeds()` (regenerate with KEEL_WRITE_CORPUS=1), fails here rather than leaving the replay
/// above exercising nothing but error paths.
#[test]
fn corpus_seeds_decode_to_what_they_were_made_from() {
    let dir = corpus_dir();
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("seed {name} in {}: {e}", dir.display()))
    };
    for (i, msg) in samples().iter().enumerate() {
        let valid = read(&format!("{i:02}-valid"));
        assert_eq!(
            decode_frame(&valid),
            Ok(Some((msg.clone(), valid.len()))),
            "{i:02}-valid"
        );
        assert_eq!(
            decode_frame(&read(&format!("{i:02}-truncated"))),
            Ok(None),
            "{i:02}-truncated is a prefix: not yet a frame"
        );
        assert_eq!(
            decode_frame(&read(&format!("{i:02}-trailing"))),
            Err(WireError::TrailingBytes(1)),
            "{i:02}-trailing"
        );
        assert_eq!(
            decode_frame(&read(&format!("{i:02}-unknown-kind"))),
            Err(WireError::UnknownKind(0xee)),
            "{i:02}-unknown-kind"
        );
    }
    assert_eq!(
        decode_frame(&read("oversized")),
        Err(WireError::Oversized(MAX_FRAME_LEN + 1))
    );
    assert_eq!(decode_frame(&read("empty")), Ok(None));
    for (name, bytes) in seeds() {
        assert!(read(&name) == bytes, "seed {name} differs from seeds()");
    }
}

#[test]
fn every_message_round_trips_and_partial_frames_wait_for_more() {
    for msg in samples() {
        let f = frame(&msg);
        assert_eq!(decode_frame(&f).unwrap(), Some((msg.clone(), f.len())));
        for cut in 0..f.len() {
            assert_eq!(
                decode_frame(&f[..cut]),
                Ok(None),
                "a prefix is not yet a frame"
            );
        }
    }
}

#[test]
fn malformed_frames_get_typed_errors() {
    let f = frame(&samples()[0]);
    let mut version = f.clone();
    version[4] = 9;
    assert_eq!(
        decode_frame(&version),
        Err(WireError::UnsupportedVersion(9))
    );
    let mut kind = f.clone();
    kind[5] = 0xee;
    assert_eq!(decode_frame(&kind), Err(WireError::UnknownKind(0xee)));
    let mut count = f.clone();
    count[6] = 0;
    assert_eq!(decode_frame(&count), Err(WireError::ChangeCount(0)));
    count[6] = MAX_UPDATE_CHANGES as u8 + 1;
    assert_eq!(
        decode_frame(&count),
        Err(WireError::ChangeCount(MAX_UPDATE_CHANGES as u8 + 1))
    );
    let mut change = f.clone();
    change[7] = 9;
    assert_eq!(decode_frame(&change), Err(WireError::UnknownChange(9)));
    let oversized = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    assert_eq!(
        decode_frame(&oversized),
        Err(WireError::Oversized(MAX_FRAME_LEN + 1))
    );
    // A length that ends the frame early leaves the body short.
    let mut short = f.clone();
    short[..4].copy_from_slice(&10u32.to_be_bytes());
    assert_eq!(decode_frame(&short), Err(WireError::Truncated));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_decode(&data);
    }

    #[test]
    fn mutated_frames_never_panic(which in 0..samples().len(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut f = frame(&samples()[which]);
        for (at, byte) in flips {
            let i = at.index(f.len());
            f[i] = byte;
        }
        fuzz_decode(&f);
    }
}
