//! Hot paths of the protocol core, timed over many iterations: what a client pays per payment
//! (sign a balance proof) and what a receiver or watchtower pays per proof (verify it).
//! Run: `cargo bench -p keel-core --bench core`. Results go to docs/benchmarks.md by hand.

// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{hint::black_box, time::Instant};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use keel_core::{
    channel_id, locks_root, settle, sign_message, signing_hash, vault_address, verify,
    BalanceProof, ChannelParams, Direction, Lock,
};

fn time<T>(name: &str, iterations: u32, mut f: impl FnMut(u32) -> T) {
    for i in 0..iterations / 10 {
        black_box(f(i));
    }
    let start = Instant::now();
    for i in 0..iterations {
        black_box(f(i));
    }
    let per = start.elapsed() / iterations;
    println!(
        "{name:<40} {:>10.2} µs/op   ({iterations} iterations)",
        per.as_nanos() as f64 / 1000.0
    );
}

fn main() {
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("valid key");
    let params = ChannelParams {
        participant_a: signer.address(),
        participant_b: Address::repeat_byte(0x22),
        token: Address::ZERO,
        challenge_period: 86_400,
        salt: B256::ZERO,
    };
    let factory = Address::repeat_byte(0x33);
    let id = channel_id(31337, factory, &params);
    let vault = vault_address(factory, Address::repeat_byte(0x44), id, Address::ZERO);
    let proof = |nonce: u32| BalanceProof {
        channelId: id,
        nonce: u64::from(nonce) + 1,
        transferredAmount: U256::from(nonce) * U256::from(1_000_000_000u64),
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    let signed = sign_message(&signer, &proof(7), 31337, vault).expect("signs");
    let digest = signing_hash(&proof(7), 31337, vault);
    let locks: Vec<Lock> = (0..16u64)
        .map(|i| Lock {
            expiration: 1_800_000_000 + i,
            amount: U256::from(i),
            secret_hash: B256::repeat_byte(i as u8),
        })
        .collect();

    time("channel_id + vault_address", 100_000, |i| {
        let mut p = params;
        p.salt = B256::from(U256::from(i));
        vault_address(
            factory,
            Address::ZERO,
            channel_id(31337, factory, &p),
            Address::ZERO,
        )
    });
    time("balance proof EIP-712 signing hash", 100_000, |i| {
        signing_hash(&proof(i), 31337, vault)
    });
    let domain = keel_core::ChannelDomain::new(31337, vault);
    time("… under a channel's cached domain", 100_000, |i| {
        domain.signing_hash(&proof(i))
    });
    time("sign a balance proof (hash + ECDSA)", 5_000, |i| {
        sign_message(&signer, &proof(i), 31337, vault)
    });
    time("verify a balance proof signature", 5_000, |_| {
        verify(&digest, &signed, signer.address())
    });
    let key = keel_core::signing::verifying_key(&signer);
    time("verify against a known key", 5_000, |_| {
        keel_core::signing::verify_with_key(&key, &digest, &signed)
    });
    let table = keel_core::signing::KeyTable::new(key);
    time("verify against a known key's table", 5_000, |_| {
        table.verify(&digest, &signed)
    });
    // 256 checks per call: the time printed is per call, so divide by 256.
    let batch: Vec<_> = (0..256).map(|_| (&table, digest, &signed[..])).collect();
    time("verify 256 against tables at once (per 256)", 200, |_| {
        keel_core::signing::verify_many(&batch)
    });
    time("build a key table", 200, |_| {
        keel_core::signing::KeyTable::new(key)
    });
    time("locks_root of 16 locks", 100_000, |_| locks_root(&locks));
    time("settle (payout formula)", 1_000_000, |i| {
        settle(
            U256::from(20u64 + u64::from(i % 7)),
            U256::from(10u64),
            U256::ZERO,
            Direction {
                transferred: U256::from(4u64),
                locked: U256::from(1u64),
            },
            Direction {
                transferred: U256::from(1u64),
                locked: U256::ZERO,
            },
        )
    });
    onion();
}

/// A payer builds one onion per payment; each hop peels one layer.
fn onion() {
    use keel_core::forwarding::{
        onion::{build, peel, HopPayload},
        ForwardInstruction,
    };
    let node = |n: u8| k256::SecretKey::from_slice(&[n; 32]).expect("valid key");
    let forward = HopPayload::Forward(ForwardInstruction {
        next_chain_id: 31_337,
        next_channel: B256::repeat_byte(9),
        amount: U256::from(1_000_000u64),
        expiration: 1_800_000_000,
    });
    let receive = HopPayload::Receive {
        amount: U256::from(999_000u64),
        expiration: 1_800_000_000,
    };
    let hash = B256::repeat_byte(0x77);
    let route = [
        (node(1).public_key(), forward),
        (node(2).public_key(), receive),
    ];
    time("build a 2-hop onion", 2_000, |i| {
        let mut session = [0x42; 32];
        session[..4].copy_from_slice(&i.to_be_bytes());
        build(&session, &route, &hash)
    });
    let packet = build(&[0x42; 32], &route, &hash).expect("builds");
    time("peel a forwarding layer", 2_000, |_| {
        peel(&node(1), &packet, &hash)
    });
}
