//! `ChannelState::receive_verified`: a signature checked beforehand (on another thread) is
//! accepted only for exactly the proof it covers and only from the counterparty's key.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use keel_core::{
    sign_message, signing::KeyTable, signing_hash, Change, ChannelError, ChannelParams,
    ChannelState, Policy, Side,
};

const CHAIN_ID: u64 = 31337;

/// Alice's and Bob's views of a funded channel, and their keys.
fn channel() -> (
    ChannelState,
    ChannelState,
    PrivateKeySigner,
    PrivateKeySigner,
) {
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let params = ChannelParams {
        participant_a: alice.address(),
        participant_b: bob.address(),
        token: Address::ZERO,
        challenge_period: 3_600,
        salt: B256::ZERO,
    };
    let view = |me| {
        let mut s = ChannelState::new(
            params,
            CHAIN_ID,
            Address::repeat_byte(0xfa),
            Address::repeat_byte(0x1e),
            me,
            Policy::default(),
        );
        s.deposit_confirmed(Side::A, U256::from(1_000_000)).unwrap();
        s
    };
    (view(Side::A), view(Side::B), alice, bob)
}

#[test]
fn a_verified_token_is_accepted_only_for_its_proof_and_the_counterparty() {
    let (mut a, mut b, alice, bob) = channel();
    let pay = Change::Pay {
        amount: U256::from(1),
    };
    // Bob has no table until Alice has signed a few proofs (the first recovers her key).
    assert!(b.counterparty_table().is_none());
    for _ in 0..17 {
        let proof = a.send(&pay, 0).unwrap();
        let sig = sign_message(&alice, &proof, CHAIN_ID, a.vault()).unwrap();
        b.receive(std::slice::from_ref(&pay), &proof, &sig, 0)
            .unwrap();
    }
    let table = b
        .counterparty_table()
        .expect("built after 16 proofs checked against her key");

    let proof = a.send(&pay, 0).unwrap();
    let sig = sign_message(&alice, &proof, CHAIN_ID, a.vault()).unwrap();
    let digest = signing_hash(&proof, CHAIN_ID, a.vault());
    let token = table.verify_token(&digest, &sig).unwrap();

    // A token for another message (here: the previous nonce's digest) is refused.
    let mut other = proof.clone();
    other.nonce -= 1;
    let stale = table
        .verify_token(
            &signing_hash(&other, CHAIN_ID, a.vault()),
            &sign_message(&alice, &other, CHAIN_ID, a.vault()).unwrap(),
        )
        .unwrap();
    let before = b.clone();
    assert!(matches!(
        b.receive_verified(std::slice::from_ref(&pay), &proof, &stale, 0),
        Err(ChannelError::BadSignature(_))
    ));
    // A token by another key (Bob's own table) is refused.
    let bobs = KeyTable::new(keel_core::signing::verifying_key(&bob));
    let by_bob = bobs
        .verify_token(
            &digest,
            &sign_message(&bob, &proof, CHAIN_ID, a.vault()).unwrap(),
        )
        .unwrap();
    assert!(matches!(
        b.receive_verified(std::slice::from_ref(&pay), &proof, &by_bob, 0),
        Err(ChannelError::BadSignature(_))
    ));
    // A token cannot be made for a bad signature at all.
    assert!(table.verify_token(&digest, &[0u8; 65]).is_err());
    assert_eq!(b, before, "refusals change nothing");

    // The right token is accepted, with the same effect as `receive`.
    let mut plain = b.clone();
    plain
        .receive(std::slice::from_ref(&pay), &proof, &sig, 0)
        .unwrap();
    b.receive_verified(std::slice::from_ref(&pay), &proof, &token, 0)
        .unwrap();
    assert_eq!(b, plain);
    assert_eq!(b.latest_counterparty_proof(), Some((proof, sig)));
}
