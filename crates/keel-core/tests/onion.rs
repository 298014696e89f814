//! The onion: every hop reads exactly its own instructions, in order, from packets of one
//! size; a packet changed in any byte, meant for another node or moved to another lock is
//! refused.

use k256::SecretKey;
use keel_core::{
    forwarding::{
        onion::{build, peel, HopPayload, OnionError, Packet, Peeled, MAX_HOPS, PACKET_LEN},
        ForwardInstruction,
    },
    B256, U256,
};
use proptest::prelude::*;

fn node(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n.max(1); 32]).unwrap()
}

fn forward(n: u64) -> HopPayload {
    HopPayload::Forward(ForwardInstruction {
        next_chain_id: 31_337 + n,
        next_channel: B256::repeat_byte(n as u8),
        amount: U256::from(1_000_000 - n),
        expiration: 1_800_000_000 + n,
    })
}

fn route(hops: usize) -> Vec<(k256::PublicKey, HopPayload)> {
    (0..hops)
        .map(|i| {
            let payload = if i + 1 == hops {
                HopPayload::Receive {
                    amount: U256::from(999_000),
                    expiration: 1_800_000_000,
                }
            } else {
                forward(i as u64)
            };
            (node(i as u8 + 1).public_key(), payload)
        })
        .collect()
}

/// Peels the packet hop by hop; returns what each hop read.
fn walk(packet: Packet, hops: usize, hash: &B256) -> Result<Vec<HopPayload>, OnionError> {
    let mut read = Vec::new();
    let mut packet = packet;
    for i in 0..hops {
        match peel(&node(i as u8 + 1), &packet, hash)? {
            Peeled::Forward(instruction, next) => {
                read.push(HopPayload::Forward(instruction));
                assert_ne!(next.0[..33], packet.0[..33], "the ephemeral key is blinded");
                packet = next;
            }
            Peeled::Receive { amount, expiration } => {
                read.push(HopPayload::Receive { amount, expiration });
                assert_eq!(i + 1, hops, "only the last hop receives");
            }
        }
    }
    Ok(read)
}

const HASH: B256 = B256::repeat_byte(0x77);

#[test]
fn every_hop_reads_its_own_instructions_for_every_route_length() {
    for hops in 1..=MAX_HOPS {
        let route = route(hops);
        let packet = build(&[9; 32], &route, &HASH).unwrap();
        assert_eq!(packet.0.len(), PACKET_LEN);
        let read = walk(packet, hops, &HASH).unwrap();
        let sent: Vec<_> = route.iter().map(|(_, payload)| *payload).collect();
        assert_eq!(read, sent, "{hops} hops");
    }
}

#[test]
fn a_changed_byte_anywhere_is_caught_by_the_hop_that_reads_it() {
    let packet = build(&[9; 32], &route(4), &HASH).unwrap();
    for at in (0..PACKET_LEN).step_by(7).chain([PACKET_LEN - 1]) {
        let mut bad = packet.clone();
        bad.0[at] ^= 0x01;
        let outcome = walk(bad, 4, &HASH);
        assert!(
            matches!(outcome, Err(OnionError::BadHmac | OnionError::BadKey)),
            "a flipped byte at {at} went through: {outcome:?}"
        );
    }
}

#[test]
fn a_packet_for_another_node_or_lock_is_refused() {
    let packet = build(&[9; 32], &route(3), &HASH).unwrap();
    assert_eq!(peel(&node(2), &packet, &HASH), Err(OnionError::BadHmac));
    assert_eq!(
        peel(&node(1), &packet, &B256::repeat_byte(0x78)),
        Err(OnionError::BadHmac)
    );
    // A hop that forwards to the wrong next node: that node cannot read it either.
    let Peeled::Forward(_, next) = peel(&node(1), &packet, &HASH).unwrap() else {
        panic!("hop 1 forwards");
    };
    assert_eq!(peel(&node(3), &next, &HASH), Err(OnionError::BadHmac));
}

#[test]
fn malformed_routes_and_amounts_are_refused() {
    assert_eq!(build(&[9; 32], &[], &HASH), Err(OnionError::BadRoute));
    assert_eq!(
        build(&[9; 32], &route(MAX_HOPS + 1), &HASH),
        Err(OnionError::BadRoute)
    );
    let mut early_payee = route(3);
    early_payee.swap(1, 2);
    assert_eq!(
        build(&[9; 32], &early_payee, &HASH),
        Err(OnionError::BadRoute)
    );
    let no_payee = vec![(node(1).public_key(), forward(1))];
    assert_eq!(build(&[9; 32], &no_payee, &HASH), Err(OnionError::BadRoute));
    let huge = vec![(
        node(1).public_key(),
        HopPayload::Receive {
            amount: U256::from(u128::MAX) + U256::from(1),
            expiration: 1,
        },
    )];
    assert_eq!(
        build(&[9; 32], &huge, &HASH),
        Err(OnionError::AmountTooLarge)
    );
    assert_eq!(
        build(&[0; 32], &route(1), &HASH),
        Err(OnionError::BadSessionKey)
    );
    let packet = build(&[9; 32], &route(1), &HASH).unwrap();
    let mut garbage = packet.clone();
    garbage.0[0] = 0x05;
    assert_eq!(peel(&node(1), &garbage, &HASH), Err(OnionError::BadKey));
    // The negated ephemeral key (the other parity) derives another secret.
    let mut negated = packet;
    negated.0[0] ^= 0x01;
    assert_eq!(peel(&node(1), &negated, &HASH), Err(OnionError::BadHmac));
}

/// Two payments over the same route share no bytes a hop could link them by.
#[test]
fn session_keys_make_packets_unlinkable() {
    let a = build(&[9; 32], &route(3), &HASH).unwrap();
    let b = build(&[10; 32], &route(3), &HASH).unwrap();
    let same = a.0.iter().zip(b.0.iter()).filter(|(x, y)| x == y).count();
    // Random bytes agree about once in 256.
    assert!(same < PACKET_LEN / 64, "{same} bytes in common");
}

proptest! {
    /// A packet from a hostile peer, any bytes at all (a real ephemeral key in front or not),
    /// is refused with a typed error: never a panic, never instructions.
    #[test]
    fn arbitrary_packets_are_refused(
        bytes in prop::collection::vec(any::<u8>(), PACKET_LEN),
        keyed in any::<bool>(),
    ) {
        let mut packet = Packet(Box::new(bytes.try_into().unwrap()));
        if keyed {
            // A genuine packet's key, so the bytes reach the HMAC check.
            let genuine = build(&[7; 32], &route(2), &HASH).unwrap();
            packet.0[..33].copy_from_slice(&genuine.0[..33]);
        }
        let peeled = peel(&node(1), &packet, &HASH);
        prop_assert!(matches!(peeled, Err(OnionError::BadKey | OnionError::BadHmac)), "{peeled:?}");
    }

    #[test]
    fn random_routes_round_trip(hops in 1..=MAX_HOPS, session in prop::array::uniform32(1u8..), amount in any::<u128>()) {
        let mut route = route(hops);
        route[hops - 1].1 = HopPayload::Receive { amount: U256::from(amount), expiration: 7 };
        let packet = build(&session, &route, &HASH).unwrap();
        let read = walk(packet, hops, &HASH).unwrap();
        prop_assert_eq!(read.last().copied(), Some(HopPayload::Receive { amount: U256::from(amount), expiration: 7 }));
    }
}

/// The bytes a packet is made of are part of the protocol: a payer on one version must build
/// what hops on another peel. This pins a 3-hop packet's digest, so a faster way of computing it
/// cannot change it unnoticed.
#[test]
fn a_packet_is_byte_for_byte_what_earlier_versions_built() {
    use sha2::{Digest, Sha256};
    let packet = build(&[0x42; 32], &route(3), &HASH).unwrap();
    let digest = B256::from_slice(&Sha256::digest(&packet.0[..]));
    assert_eq!(digest, PINNED_DIGEST);
}

/// Computed with the version before base-point tables were used for the ephemeral keys.
const PINNED_DIGEST: B256 =
    alloy::primitives::b256!("7324e7563101db883884e67d2fae799cef8c2af939490a59a968066da2f3eb8c");
