//! Updates that carry several changes under one signature: a receiver that takes a sender's
//! changes in batches of any size ends in exactly the state of one that took them one by one,
//! and a batch with anything wrong in it is refused whole.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use keel_core::{
    secret_hash, sign_message, wire::MAX_UPDATE_CHANGES, BalanceProof, Change, ChannelError,
    ChannelParams, ChannelState, Lock, Policy, Side,
};
use proptest::prelude::*;

const CHAIN_ID: u64 = 31337;
const NOW: u64 = 1_800_000_000;

fn alice() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(1)).unwrap()
}

/// Alice's and Bob's views of a channel where Alice deposited 10,000.
fn views() -> (ChannelState, ChannelState) {
    let bob = PrivateKeySigner::from_bytes(&B256::repeat_byte(2)).unwrap();
    let params = ChannelParams {
        participant_a: alice().address(),
        participant_b: bob.address(),
        token: Address::ZERO,
        challenge_period: 86_400,
        salt: B256::ZERO,
    };
    let view = |me| {
        let mut v = ChannelState::new(
            params,
            CHAIN_ID,
            Address::repeat_byte(0xfa),
            Address::repeat_byte(0x1e),
            me,
            Policy::default(),
        );
        v.deposit_confirmed(Side::A, U256::from(10_000)).unwrap();
        v
    };
    (view(Side::A), view(Side::B))
}

/// A change Alice may try: paying, locking, or claiming one of her locks (by index).
#[derive(Debug, Clone)]
enum Step {
    Pay(u64),
    Lock(u64, u8),
    Claim(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..3_000u64).prop_map(Step::Pay),
        2 => (1..2_000u64, any::<u8>()).prop_map(|(amount, secret)| Step::Lock(amount, secret)),
        2 => (0..8usize).prop_map(Step::Claim),
    ]
}

/// Alice sends every step she may; returns each accepted change with the proof it made.
fn send_all(alice: &mut ChannelState, steps: &[Step]) -> Vec<(Change, BalanceProof)> {
    let mut sent = Vec::new();
    for step in steps {
        let change = match *step {
            Step::Pay(amount) => Change::Pay {
                amount: U256::from(amount),
            },
            Step::Lock(amount, secret) => Change::AddLock(Lock {
                expiration: NOW + 3_600,
                amount: U256::from(amount),
                secret_hash: secret_hash(B256::repeat_byte(secret)),
            }),
            Step::Claim(which) => {
                let locks = &alice.direction(Side::A).locks;
                if locks.is_empty() {
                    continue;
                }
                let hash = locks[which % locks.len()].secret_hash;
                let secret = (0..=u8::MAX)
                    .map(B256::repeat_byte)
                    .find(|s| secret_hash(*s) == hash)
                    .expect("every lock's secret is a repeated byte");
                Change::ClaimLock { secret }
            }
        };
        // Refused sends (capacity, duplicate lock, too many locks) leave nothing to send.
        if let Ok(proof) = alice.send(&change, NOW) {
            sent.push((change, proof));
        }
    }
    sent
}

fn signed(alice_view: &ChannelState, proof: &BalanceProof) -> [u8; 65] {
    sign_message(&alice(), proof, CHAIN_ID, alice_view.vault()).unwrap()
}

proptest! {
    #[test]
    fn batches_of_any_size_end_where_single_updates_do(
        steps in proptest::collection::vec(step(), 1..60),
        cuts in proptest::collection::vec(1..=MAX_UPDATE_CHANGES, 1..60),
    ) {
        let (mut alice_view, bob_view) = views();
        let sent = send_all(&mut alice_view, &steps);
        prop_assume!(!sent.is_empty());

        let mut one_by_one = bob_view.clone();
        for (change, proof) in &sent {
            let sig = signed(&alice_view, proof);
            one_by_one.receive(std::slice::from_ref(change), proof, &sig, NOW).unwrap();
        }

        let mut batched = bob_view;
        let mut rest = &sent[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, after) = rest.split_at((*cut).min(rest.len()));
            let changes: Vec<Change> = batch.iter().map(|(c, _)| c.clone()).collect();
            let proof = &batch.last().unwrap().1;
            batched.receive(&changes, proof, &signed(&alice_view, proof), NOW).unwrap();
            rest = after;
        }
        prop_assert_eq!(&batched, &one_by_one);
        prop_assert_eq!(batched.direction(Side::A), alice_view.direction(Side::A));
        prop_assert_eq!(batched.balance(Side::A), alice_view.balance(Side::A));
        prop_assert_eq!(batched.balance(Side::B), alice_view.balance(Side::B));
    }
}

/// Three payments Alice made, and Bob's view before any of them.
fn three_payments() -> (ChannelState, ChannelState, Vec<(Change, BalanceProof)>) {
    let (mut alice_view, bob_view) = views();
    let sent = send_all(
        &mut alice_view,
        &[Step::Pay(10), Step::Pay(20), Step::Pay(30)],
    );
    (alice_view, bob_view, sent)
}

#[test]
fn a_batch_with_a_wrong_change_is_refused_whole() {
    let (alice_view, mut bob_view, sent) = three_payments();
    let proof = &sent[2].1;
    let sig = signed(&alice_view, proof);
    let before = bob_view.clone();

    // The middle payment claims 21 instead of 20: the last proof no longer follows.
    let mut changes: Vec<Change> = sent.iter().map(|(c, _)| c.clone()).collect();
    changes[1] = Change::Pay {
        amount: U256::from(21),
    };
    assert_eq!(
        bob_view.receive(&changes, proof, &sig, NOW),
        Err(ChannelError::ProofMismatch { expected_nonce: 3 })
    );
    assert_eq!(bob_view, before, "nothing of the batch is kept");

    // A change the state machine refuses midway (zero amount) fails the batch too.
    changes[1] = Change::Pay { amount: U256::ZERO };
    assert_eq!(
        bob_view.receive(&changes, proof, &sig, NOW),
        Err(ChannelError::ZeroAmount)
    );
    assert_eq!(bob_view, before);

    // A change left out: the proof's nonce is one past what the rest make.
    let short: Vec<Change> = vec![sent[0].0.clone(), sent[2].0.clone()];
    assert!(matches!(
        bob_view.receive(&short, proof, &sig, NOW),
        Err(ChannelError::ProofMismatch { .. })
    ));
    assert_eq!(bob_view, before);
}

#[test]
fn a_batch_signed_over_an_intermediate_proof_is_refused() {
    let (alice_view, mut bob_view, sent) = three_payments();
    let changes: Vec<Change> = sent.iter().map(|(c, _)| c.clone()).collect();
    let before = bob_view.clone();
    // Alice's valid signature over the second proof does not vouch for the third.
    let sig = signed(&alice_view, &sent[1].1);
    assert!(matches!(
        bob_view.receive(&changes, &sent[2].1, &sig, NOW),
        Err(ChannelError::BadSignature(_))
    ));
    assert_eq!(bob_view, before);
    // Nor does the second proof stand for the whole batch.
    assert!(matches!(
        bob_view.receive(&changes, &sent[1].1, &sig, NOW),
        Err(ChannelError::ProofMismatch { .. })
    ));
    assert_eq!(bob_view, before);
}

#[test]
fn a_batch_holds_one_to_the_most_changes() {
    let (alice_view, mut bob_view, sent) = three_payments();
    let proof = &sent[2].1;
    let sig = signed(&alice_view, proof);
    assert_eq!(
        bob_view.receive(&[], proof, &sig, NOW),
        Err(ChannelError::ChangeCount(0))
    );
    let too_many = vec![sent[0].0.clone(); MAX_UPDATE_CHANGES + 1];
    assert_eq!(
        bob_view.receive(&too_many, proof, &sig, NOW),
        Err(ChannelError::ChangeCount(MAX_UPDATE_CHANGES + 1))
    );
    let changes: Vec<Change> = sent.iter().map(|(c, _)| c.clone()).collect();
    bob_view.receive(&changes, proof, &sig, NOW).unwrap();
    assert_eq!(
        bob_view.latest_counterparty_proof(),
        Some((proof.clone(), sig))
    );
}
