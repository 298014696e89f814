//! Intake: each bad appointment is refused with its own reason and leaves nothing stored; a good
//! one is stored, watched, and answered with a receipt signed by the tower.

use keel_core::{signing, Address, ChannelDomain, TowerReceipt, U256};
use keel_watchtower::{api::AppointmentRequest, Refusal, Store, VaultStatus};

use crate::fixture::{secret_lock, sig, Fixture, CHAIN_ID, NOW, WATCH};

/// Asserts the store holds nothing for the fixture's channel (or only `nonce`).
async fn held(f: &Fixture) -> Option<u64> {
    let record = f.store.channel(f.channel_id).await.unwrap();
    assert!(record.appointments.len() <= 1);
    record.appointments.first().map(|a| a.proof.nonce)
}

#[tokio::test]
async fn an_accepted_appointment_is_stored_watched_and_receipted() {
    let f = Fixture::new(10).await;
    f.register_bob().await;
    let signed = f.intake.submit(&f.appointment(3), NOW).await.unwrap();
    let expected = TowerReceipt {
        tower: f.tower.address(),
        customer: f.bob.address(),
        channelId: f.channel_id,
        nonce: 3,
        acceptedAt: NOW,
        watchUntil: NOW + WATCH,
    };
    assert_eq!(signed.receipt, expected);
    let digest = ChannelDomain::new(CHAIN_ID, f.vault).signing_hash(&expected);
    signing::verify(&digest, &signed.signature, f.tower.address()).unwrap();
    // One at a time, a receipt is signed on its own, with no batch path.
    assert_eq!(signed.batch_path, None);
    assert_eq!(held(&f).await, Some(3));
    assert_eq!(
        f.watched.lock().unwrap().as_slice(),
        &[(f.vault, f.channel_id, VaultStatus::Open)]
    );
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!(stored.receipt_signature, signed.signature);

    // A newer proof replaces it; the same or an older one is refused.
    f.intake.submit(&f.appointment(4), NOW).await.unwrap();
    for stale in [4, 2] {
        let refused = f
            .intake
            .submit(&f.appointment(stale), NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Refusal::StaleNonce { offered, stored: 4 } if offered == stale),
            "{refused:?}"
        );
    }
    assert_eq!(held(&f).await, Some(4));
}

#[tokio::test]
async fn each_bad_appointment_is_refused_with_its_reason_and_nothing_stored() {
    let f = Fixture::new(10).await;
    let good = f.appointment(5);
    let refused = f.intake.submit(&good, NOW).await.unwrap_err();
    assert!(matches!(refused, Refusal::UnknownCustomer(a) if a == f.bob.address()));
    // Without Bob's signature nobody learns whether he is registered.
    let mut probe = good.clone();
    probe.authorisation = good.sender_signature.clone();
    let refused = f.intake.submit(&probe, NOW).await.unwrap_err();
    assert!(
        matches!(refused, Refusal::BadAuthorisation(_)),
        "{refused:?}"
    );
    f.register_bob().await;

    let mut foreign = good.clone();
    foreign.chain_id = 1;
    let mut stranger = good.clone();
    stranger.customer = Address::repeat_byte(0x99);
    let empty = f.appointment(0);
    let mut huge = good.clone();
    huge.proof.transferred_amount = U256::from(1) << 128;
    let mut forged = good.clone();
    forged.proof.transferred_amount += U256::from(1); // Alice never signed this amount.
    let mut wrong_sender = good.clone();
    wrong_sender.sender_signature = good.authorisation.clone(); // Bob's, not Alice's.
    let mut wrong_auth = good.clone();
    wrong_auth.authorisation = good.sender_signature.clone(); // Alice's, not Bob's.
    let mut short_sig = good.clone();
    short_sig.sender_signature = sig(&[0; 65])[..64].to_vec().into();
    let mut other_channel = good.clone();
    other_channel.channel.salt = keel_core::B256::repeat_byte(8);

    type Expect = fn(&Refusal) -> bool;
    let cases: Vec<(AppointmentRequest, Expect)> = vec![
        (foreign, |r| {
            matches!(r, Refusal::ForeignChain { found: 1, .. })
        }),
        (stranger, |r| matches!(r, Refusal::NotParticipant(_))),
        (empty, |r| matches!(r, Refusal::EmptyProof)),
        (huge, |r| {
            matches!(r, Refusal::AmountTooLarge("transferredAmount"))
        }),
        (forged, |r| matches!(r, Refusal::BadSenderSignature(_))),
        (wrong_sender, |r| {
            matches!(r, Refusal::BadSenderSignature(_))
        }),
        (wrong_auth, |r| matches!(r, Refusal::BadAuthorisation(_))),
        (short_sig, |r| {
            matches!(
                r,
                Refusal::BadSenderSignature(keel_core::Error::SignatureLength(64))
            )
        }),
        // Signed for the fixture's channel: under another channel's domain it does not verify.
        (other_channel, |r| {
            matches!(r, Refusal::BadSenderSignature(_))
        }),
    ];
    for (request, expected) in cases {
        let refused = f.intake.submit(&request, NOW).await.unwrap_err();
        assert!(expected(&refused), "unexpected refusal {refused:?}");
        assert!(!refused.is_server_side());
        assert_eq!(held(&f).await, None);
    }

    f.vaults.set(f.vault, VaultStatus::Missing);
    let refused = f.intake.submit(&good, NOW).await.unwrap_err();
    assert!(matches!(refused, Refusal::UnknownChannel(id) if id == f.channel_id));
    f.vaults.set(f.vault, VaultStatus::Settled);
    let refused = f.intake.submit(&good, NOW).await.unwrap_err();
    assert!(matches!(refused, Refusal::ChannelSettled(_)));
    assert_eq!(held(&f).await, None);
    assert!(f.watched.lock().unwrap().is_empty());

    // A closed channel is still guarded (its challenge period may be running).
    f.vaults.set(f.vault, VaultStatus::Closed);
    f.intake.submit(&good, NOW).await.unwrap();
    assert_eq!(held(&f).await, Some(5));
    assert_eq!(f.watched.lock().unwrap()[0].2, VaultStatus::Closed);
}

#[tokio::test]
async fn registration_needs_the_customers_own_signature_and_quota_holds() {
    let f = Fixture::new(1).await;
    // Alice signing Bob's registration proves nothing about Bob.
    let mut forged = f.registration(&f.alice);
    forged.customer = f.bob.address();
    let refused = f.intake.register(&forged, NOW).await.unwrap_err();
    assert!(matches!(refused, Refusal::BadRegistration(_)));
    assert_eq!(f.store.customer(f.bob.address()).await.unwrap(), None);

    let customer = f
        .intake
        .register(&f.registration(&f.bob), NOW)
        .await
        .unwrap();
    assert_eq!(customer.quota, 1);
    f.intake.submit(&f.appointment(1), NOW).await.unwrap();

    // A second channel is over Bob's quota of one.
    let mut second = f.appointment(1);
    second.channel.salt = keel_core::B256::repeat_byte(9);
    let params: keel_core::ChannelParams = second.channel.into();
    let id = keel_core::channel_id(CHAIN_ID, crate::fixture::FACTORY, &params);
    let vault = keel_core::vault_address(
        crate::fixture::FACTORY,
        crate::fixture::IMPLEMENTATION,
        id,
        params.token,
    );
    f.vaults.set(vault, VaultStatus::Open);
    let domain = ChannelDomain::new(CHAIN_ID, vault);
    let proof = keel_core::BalanceProof {
        channelId: id,
        nonce: 1,
        transferredAmount: second.proof.transferred_amount,
        lockedAmount: U256::ZERO,
        locksRoot: keel_core::B256::ZERO,
    };
    second.sender_signature =
        sig(&keel_core::sign_hash(&f.alice, &domain.signing_hash(&proof)).unwrap());
    let auth = keel_core::TowerAuthorisation {
        balanceProof: proof,
    };
    second.authorisation = sig(&keel_core::sign_hash(&f.bob, &domain.signing_hash(&auth)).unwrap());
    let refused = f.intake.submit(&second, NOW).await.unwrap_err();
    assert!(
        matches!(refused, Refusal::QuotaExceeded { quota: 1, .. }),
        "{refused:?}"
    );
    assert!(f.store.channel(id).await.unwrap().appointments.is_empty());
}

#[tokio::test]
async fn locks_and_secrets_are_checked_against_the_proof_and_nothing_bad_stored() {
    let f = Fixture::new(10).await;
    f.register_bob().await;
    let (s1, l1) = secret_lock(1, 300, NOW + 900);
    let (s2, l2) = secret_lock(2, 400, NOW + 1_800);
    let (s3, l3) = secret_lock(3, 500, NOW + 1_800);
    let good = f.locked_appointment(5, &[l1, l2], &[s2]);

    let mut other_locks = good.clone();
    other_locks.locks = vec![(&l1).into(), (&l3).into()];
    let mut reordered = good.clone();
    reordered.locks.reverse();
    let mut other_sum = good.clone();
    other_sum.proof.locked_amount = U256::from(699);
    let mut stranger_secret = good.clone();
    stranger_secret.secrets = vec![s3];
    let mut twice = good.clone();
    twice.secrets = vec![s2, s2];
    let mut without_locks = good.clone();
    without_locks.locks.clear();
    let many: Vec<_> = (0..=keel_watchtower::intake::MAX_LOCKS)
        .map(|n| secret_lock(n as u8, 1, NOW + 900).1)
        .collect();
    let too_many = f.locked_appointment(5, &many, &[]);

    type Expect = fn(&Refusal) -> bool;
    let cases: Vec<(AppointmentRequest, Expect, &str)> = vec![
        (
            other_locks,
            |r| matches!(r, Refusal::LocksMismatch("locksRoot")),
            "locks_mismatch",
        ),
        (
            reordered,
            |r| matches!(r, Refusal::LocksMismatch("locksRoot")),
            "locks_mismatch",
        ),
        (
            other_sum,
            |r| matches!(r, Refusal::LocksMismatch("lockedAmount")),
            "locks_mismatch",
        ),
        (
            stranger_secret,
            |r| matches!(r, Refusal::SecretWithoutLock(_)),
            "secret_without_lock",
        ),
        (
            twice,
            |r| matches!(r, Refusal::DuplicateSecret(_)),
            "duplicate_secret",
        ),
        (
            without_locks,
            |r| matches!(r, Refusal::SecretWithoutLock(_)),
            "secret_without_lock",
        ),
        (
            too_many,
            |r| matches!(r, Refusal::TooManyLocks { max: 64, got: 65 }),
            "too_many_locks",
        ),
    ];
    for (request, expected, code) in cases {
        let refused = f.intake.submit(&request, NOW).await.unwrap_err();
        assert!(expected(&refused), "unexpected refusal {refused:?}");
        assert_eq!(refused.code(), code);
        assert!(!refused.is_server_side());
        assert_eq!(held(&f).await, None);
    }

    // The good one is held with its locks and secret; the secret learnt later is added under
    // the same nonce (and receipted again); sending the same again is stale.
    f.intake.submit(&good, NOW).await.unwrap();
    let both = f.locked_appointment(5, &[l1, l2], &[s2, s1]);
    let signed = f.intake.submit(&both, NOW + 1).await.unwrap();
    assert_eq!(
        (signed.receipt.nonce, signed.receipt.acceptedAt),
        (5, NOW + 1)
    );
    let refused = f.intake.submit(&both, NOW + 2).await.unwrap_err();
    assert!(matches!(
        refused,
        Refusal::StaleNonce {
            offered: 5,
            stored: 5
        }
    ));
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!(stored.locks, vec![l1, l2]);
    assert_eq!(stored.secrets, vec![s2, s1]);
    // A proof's locks may be withheld; then no secret can be given.
    f.intake
        .submit(&f.locked_appointment(6, &[l1, l2], &[]), NOW)
        .await
        .unwrap();
    let mut bare = f.locked_appointment(7, &[l1, l2], &[]);
    bare.locks.clear();
    f.intake.submit(&bare, NOW).await.unwrap();
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!((stored.proof.nonce, stored.locks.len()), (7, 0));
}

/// Releases of Bob's outgoing locks: Alice's (the counterparty's) `LockRelease` over the lock in
/// this channel is taken and stored; one Bob signed himself, one over another amount, one for
/// another channel, one sent twice, or too many, are refused and nothing is stored. A release
/// received later is added under the same nonce.
#[tokio::test]
async fn releases_are_the_counterparty_s_over_the_lock_in_this_channel() {
    let f = Fixture::new(10).await;
    f.register_bob().await;
    let (_, lock) = secret_lock(1, 300, NOW + 900);
    let (_, other) = secret_lock(2, 400, NOW + 900);
    let mut good = f.appointment(5);
    good.releases = vec![f.release(&lock)];

    let mut by_customer = good.clone();
    by_customer.releases = vec![Fixture::release_by(&f.bob, f.channel_id, f.vault, &lock)];
    let mut other_amount = good.clone();
    other_amount.releases[0].lock.amount = U256::from(301);
    let mut other_channel = good.clone();
    other_channel.releases = vec![Fixture::release_by(
        &f.alice,
        keel_core::B256::repeat_byte(0x77),
        f.vault,
        &lock,
    )];
    let mut other_domain = good.clone();
    other_domain.releases = vec![Fixture::release_by(
        &f.alice,
        f.channel_id,
        Address::repeat_byte(0x77),
        &lock,
    )];
    let mut short = good.clone();
    short.releases[0].signature = sig(&[0; 65])[..64].to_vec().into();
    let mut twice = good.clone();
    twice.releases.push(f.release(&lock));
    let mut too_many = good.clone();
    too_many.releases = (0..=keel_watchtower::intake::MAX_RELEASES)
        .map(|n| f.release(&secret_lock(n as u8, 1, NOW).1))
        .collect();

    type Expect = fn(&Refusal) -> bool;
    let bad_release: Expect = |r| matches!(r, Refusal::BadRelease { .. });
    let cases: Vec<(AppointmentRequest, Expect, &str)> = vec![
        (by_customer, bad_release, "bad_release"),
        (other_amount, bad_release, "bad_release"),
        (other_channel, bad_release, "bad_release"),
        (other_domain, bad_release, "bad_release"),
        (short, bad_release, "bad_release"),
        (
            twice,
            |r| matches!(r, Refusal::DuplicateRelease(_)),
            "duplicate_release",
        ),
        (
            too_many,
            |r| matches!(r, Refusal::TooManyReleases { max: 128, got: 129 }),
            "too_many_releases",
        ),
    ];
    for (request, expected, code) in cases {
        let refused = f.intake.submit(&request, NOW).await.unwrap_err();
        assert!(expected(&refused), "unexpected refusal {refused:?}");
        assert_eq!(refused.code(), code);
        assert!(!refused.is_server_side());
        // A batch refuses it the same way.
        let batched = f.intake.submit_batch(&[request], NOW).await;
        assert!(
            matches!(&batched[..], [Err(r)] if r.code() == code),
            "{batched:?}"
        );
        assert_eq!(held(&f).await, None);
    }

    f.intake.submit(&good, NOW).await.unwrap();
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!(stored.releases.len(), 1);
    assert_eq!(stored.releases[0].lock, lock);
    assert_eq!(
        stored.releases[0].signature[..],
        good.releases[0].signature[..]
    );
    // Released later: the same proof comes again with both, and is taken.
    let mut more = good.clone();
    more.releases.push(f.release(&other));
    let results = f.intake.submit_batch(&[more], NOW + 1).await;
    assert!(results[0].is_ok(), "{results:?}");
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!(
        stored.releases.iter().map(|r| r.lock).collect::<Vec<_>>(),
        vec![lock, other]
    );
}
