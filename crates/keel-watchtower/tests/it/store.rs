//! Both stores, the same suite: one appointment per channel and customer, the newer replacing
//! the older; stale nonces and quotas refused, also when two stores (two tower instances) write
//! at once; disputes, responses, pruning; checkpoints; all durable; response claims granted to
//! exactly one holder and taken over once the lease runs out.

use keel_chain::monitor::Checkpoint;
use keel_core::{
    Address, BalanceProof, ChannelParams, DisputeState, Lock, LockState, Side, B256, U256,
};
use keel_watchtower::store::{
    lock_claim_id, Appointment, LockStep, LockStepKind, Outcome, PutError, Release, Response,
};

use crate::backend::{both_backends, TestDb, TestStore};

both_backends!(
    newer_replaces_older_and_stale_or_over_quota_is_refused,
    the_same_nonce_is_taken_only_to_add_secrets,
    releases_are_kept_across_appointments_up_to_the_limit,
    lock_states_are_kept_until_pruned,
    concurrent_puts_keep_the_newest_and_the_quota,
    a_claim_has_one_holder_until_its_lease_runs_out,
    concurrent_claims_grant_exactly_one,
    a_batch_is_stored_item_by_item_in_one_transaction,
    a_batch_past_one_statement_s_limits_is_read_and_written_whole,
);

/// A close by A of a channel holding 10, challengeable until `deadline`.
fn closed_until(deadline: u64) -> DisputeState {
    DisputeState {
        closer: Side::A,
        deadline,
        total: U256::from(10),
        deposit_a: U256::from(10),
        withdrawn_a: U256::ZERO,
        from_a: Default::default(),
        from_b: Default::default(),
    }
}

fn appointment(channel: u8, customer: Address, nonce: u64) -> Appointment {
    let channel_id = B256::repeat_byte(channel);
    Appointment {
        params: ChannelParams {
            participant_a: Address::repeat_byte(0xa),
            participant_b: customer,
            token: Address::ZERO,
            challenge_period: 3_600,
            salt: B256::ZERO,
        },
        channel_id,
        vault: Address::repeat_byte(channel),
        customer,
        proof: BalanceProof {
            channelId: channel_id,
            nonce,
            transferredAmount: U256::MAX,
            lockedAmount: U256::from(nonce),
            locksRoot: B256::repeat_byte(3),
        },
        sender_signature: [1; 65],
        authorisation: [2; 65],
        accepted_at: 10,
        watch_until: 20,
        receipt_signature: [3; 65],
        locks: Vec::new(),
        secrets: Vec::new(),
        releases: Vec::new(),
    }
}

async fn newer_replaces_older_and_stale_or_over_quota_is_refused<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let bob = Address::repeat_byte(0xb);
    let a5 = appointment(1, bob, 5);
    assert!(matches!(
        store.put(&a5).await,
        Err(PutError::UnknownCustomer)
    ));
    store.register(bob, 2, 1).await.unwrap();
    store.put(&a5).await.unwrap();
    for stale in [5, 4, 0] {
        assert!(matches!(
            store.put(&appointment(1, bob, stale)).await,
            Err(PutError::Stale(5))
        ));
    }
    let a9 = appointment(1, bob, u64::MAX - 1);
    store.put(&a9).await.unwrap();
    let record = store.channel(a9.channel_id).await.unwrap();
    assert_eq!(
        record.appointments,
        vec![a9.clone()],
        "one row per channel, the newest"
    );
    // Nonces compare as numbers, not as their low bytes.
    assert!(matches!(
        store.put(&appointment(1, bob, 256)).await,
        Err(PutError::Stale(n)) if n == u64::MAX - 1
    ));

    store.put(&appointment(2, bob, 1)).await.unwrap();
    assert!(matches!(
        store.put(&appointment(3, bob, 1)).await,
        Err(PutError::Quota(2))
    ));
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.appointments, counts.channels, counts.customers),
        (2, 2, 1)
    );

    let dispute = closed_until(99);
    store
        .record_disputes(&[(a9.channel_id, dispute)])
        .await
        .unwrap();
    let response = Response {
        channel_id: a9.channel_id,
        customer: bob,
        nonce: a9.proof.nonce,
        outcome: Outcome::Mined,
        tx_hash: Some(B256::repeat_byte(9)),
        detail: String::new(),
        updated_at: 50,
    };
    store.record_response(&response).await.unwrap();
    assert_eq!(store.open_disputes(99).await.unwrap(), vec![a9.channel_id]);
    assert!(store.open_disputes(100).await.unwrap().is_empty());
    // Within one call the later state of a channel wins (a close and its refutation in one
    // batch of events).
    let later = closed_until(120);
    for (first, last) in [(&dispute, &later), (&later, &dispute)] {
        store
            .record_disputes(&[(a9.channel_id, *first), (a9.channel_id, *last)])
            .await
            .unwrap();
        let held = store.channel(a9.channel_id).await.unwrap().dispute;
        assert_eq!(held.as_ref(), Some(last));
    }
    let cp = Checkpoint {
        block: 7,
        hash: B256::repeat_byte(7),
    };
    store.save(5, cp).await.unwrap();
    store.close().await;

    // All of it survives a restart.
    let store = S::open(db).await;
    let record = store.channel(a9.channel_id).await.unwrap();
    assert_eq!(record.appointments, vec![a9.clone()]);
    assert_eq!(record.dispute, Some(dispute));
    assert_eq!(record.responses, vec![response]);
    assert_eq!(store.load(5).await.unwrap(), Some(cp));
    assert_eq!(store.load(6).await.unwrap(), None);
    let both = vec![
        (B256::repeat_byte(1), Address::repeat_byte(1)),
        (B256::repeat_byte(2), Address::repeat_byte(2)),
    ];
    assert_eq!(store.watched(None, 10).await.unwrap(), both);
    // Page by page, in id order.
    assert_eq!(store.watched(None, 1).await.unwrap(), both[..1]);
    let after = Some(B256::repeat_byte(1));
    assert_eq!(store.watched(after, 1).await.unwrap(), both[1..]);
    let after = Some(B256::repeat_byte(2));
    assert!(store.watched(after, 1).await.unwrap().is_empty());

    // Pruning a settled channel frees its storage and the customer's quota.
    assert_eq!(store.prune(a9.channel_id).await.unwrap(), 1);
    assert_eq!(
        store.channel(a9.channel_id).await.unwrap(),
        Default::default()
    );
    store.put(&appointment(3, bob, 1)).await.unwrap();
    store.close().await;
}

/// Two stores over one database (two instances) storing one customer's proofs at once: the
/// newest proof per channel wins, every other is refused as stale, and the quota holds.
async fn concurrent_puts_keep_the_newest_and_the_quota<S: TestStore>(db: &TestDb) {
    let (one, two) = (S::open(db).await, S::open(db).await);
    let bob = Address::repeat_byte(0xb);
    one.register(bob, 3, 1).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    // Five channels, nonces 1..=8 each, alternating between the stores: only three channels fit.
    for channel in 1..=5u8 {
        for nonce in 1..=8u64 {
            let store = if nonce % 2 == 0 {
                one.clone()
            } else {
                two.clone()
            };
            tasks.spawn(async move { store.put(&appointment(channel, bob, nonce)).await });
        }
    }
    let mut accepted = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => accepted += 1,
            Err(PutError::Stale(_) | PutError::Quota(3)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let counts = one.counts().await.unwrap();
    assert_eq!(counts.channels, 3, "the quota holds across stores");
    assert!(accepted >= 3);
    for channel in 1..=5u8 {
        let held = two.channel(B256::repeat_byte(channel)).await.unwrap();
        assert!(held.appointments.len() <= 1);
        // A channel that got in keeps its newest proof: a later put of nonce 8 is stale.
        if let Some(a) = held.appointments.first() {
            let newest = one.put(&appointment(channel, bob, 8)).await;
            match newest {
                Ok(()) => assert!(a.proof.nonce < 8),
                Err(PutError::Stale(n)) => assert_eq!((n, a.proof.nonce), (8, 8)),
                Err(e) => panic!("{e}"),
            }
        }
    }
    one.close().await;
    two.close().await;
}

async fn a_claim_has_one_holder_until_its_lease_runs_out<S: TestStore>(db: &TestDb) {
    let (one, two) = (S::open(db).await, S::open(db).await);
    let (channel, bob, carol) = (
        B256::repeat_byte(1),
        Address::repeat_byte(0xb),
        Address::repeat_byte(0xc),
    );
    const LEASE: u64 = 30_000;
    assert!(one.claim(channel, bob, "one", 1_000, LEASE).await.unwrap());
    // Held: the other instance is refused until the lease runs out, however often it asks.
    assert!(!two.claim(channel, bob, "two", 1_000, LEASE).await.unwrap());
    assert!(!two.claim(channel, bob, "two", 30_999, LEASE).await.unwrap());
    // Another customer's response in the same channel is a claim of its own.
    assert!(two
        .claim(channel, carol, "two", 1_000, LEASE)
        .await
        .unwrap());
    // The holder renews; the lease now runs from the renewal.
    assert!(one.claim(channel, bob, "one", 20_000, LEASE).await.unwrap());
    assert!(!two.claim(channel, bob, "two", 31_000, LEASE).await.unwrap());
    // The holder stops renewing (it died): once the lease ran out the other takes over, and the
    // old holder, back, is refused.
    assert!(two.claim(channel, bob, "two", 50_000, LEASE).await.unwrap());
    assert!(!one.claim(channel, bob, "one", 50_001, LEASE).await.unwrap());
    // Released, it is free at once; releasing someone else's claim does nothing.
    one.release(channel, bob, "one").await.unwrap();
    assert!(!one.claim(channel, bob, "one", 50_002, LEASE).await.unwrap());
    two.release(channel, bob, "two").await.unwrap();
    assert!(one.claim(channel, bob, "one", 50_003, LEASE).await.unwrap());
    // Pruning the settled channel forgets its claims.
    one.prune(channel).await.unwrap();
    assert!(two
        .claim(channel, carol, "three", 1_000, LEASE)
        .await
        .unwrap());
    one.close().await;
    two.close().await;
}

/// Many claimants on two stores at the same instant: exactly one is granted, every time.
async fn concurrent_claims_grant_exactly_one<S: TestStore>(db: &TestDb) {
    let (one, two) = (S::open(db).await, S::open(db).await);
    let bob = Address::repeat_byte(0xb);
    for round in 0..20u8 {
        let channel = B256::repeat_byte(round);
        let mut tasks = tokio::task::JoinSet::new();
        for claimant in 0..8 {
            let store = if claimant % 2 == 0 {
                one.clone()
            } else {
                two.clone()
            };
            tasks.spawn(async move {
                store
                    .claim(channel, bob, &format!("instance-{claimant}"), 1_000, 30_000)
                    .await
                    .unwrap()
            });
        }
        let granted = tasks.join_all().await.into_iter().filter(|g| *g).count();
        assert_eq!(granted, 1, "round {round}");
    }
    one.close().await;
    two.close().await;
}

/// `put_many` answers each appointment as `put` would, in order, with the earlier ones of the
/// batch already counted (a newer proof later in the batch wins; the quota includes the batch).
async fn a_batch_is_stored_item_by_item_in_one_transaction<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let (bob, carol) = (Address::repeat_byte(0xb), Address::repeat_byte(0xc));
    store.register(bob, 2, 1).await.unwrap();
    store.put(&appointment(1, bob, 5)).await.unwrap();
    let batch = [
        appointment(1, bob, 4),   // stale against the stored 5
        appointment(1, bob, 6),   // newer
        appointment(1, bob, 6),   // stale against the batch's own 6
        appointment(2, bob, 1),   // a second channel: the quota's last
        appointment(3, bob, 1),   // a third: over the quota
        appointment(1, carol, 1), // not registered
        appointment(1, bob, 7),   // newer again
    ];
    let results = store.put_many(&batch).await.unwrap();
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(()) => "ok".to_owned(),
            Err(PutError::Stale(n)) => format!("stale {n}"),
            Err(PutError::Quota(q)) => format!("quota {q}"),
            Err(PutError::UnknownCustomer) => "unknown".to_owned(),
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        summary,
        ["stale 5", "ok", "stale 6", "ok", "quota 2", "unknown", "ok"]
    );
    let held = store.channel(B256::repeat_byte(1)).await.unwrap();
    assert_eq!(held.appointments, vec![appointment(1, bob, 7)]);
    assert_eq!(store.counts().await.unwrap().channels, 2);
    assert!(store.put_many(&[]).await.unwrap().is_empty());
    store.close().await;
}

/// A batch of 1,100 channels: more ids than one `IN (…)` list binds and more rows than one
/// `INSERT` writes, so the store reads and writes it in several statements; every answer is
/// still as if put one by one (the second round is stale throughout, the third newer).
async fn a_batch_past_one_statement_s_limits_is_read_and_written_whole<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let bob = Address::repeat_byte(0xb);
    store.register(bob, 1_050, 1).await.unwrap();
    let round = |nonce: u64| -> Vec<Appointment> {
        (0..1_100u32)
            .map(|i| {
                let mut a = appointment(0, bob, nonce);
                a.channel_id = B256::left_padding_from(&i.to_be_bytes());
                a.proof.channelId = a.channel_id;
                a
            })
            .collect()
    };
    let first = store.put_many(&round(1)).await.unwrap();
    assert!(first[..1_050].iter().all(Result::is_ok));
    assert!(first[1_050..]
        .iter()
        .all(|r| matches!(r, Err(PutError::Quota(1_050)))));
    assert_eq!(store.counts().await.unwrap().channels, 1_050);
    let second = store.put_many(&round(1)).await.unwrap();
    assert!(second[..1_050]
        .iter()
        .all(|r| matches!(r, Err(PutError::Stale(1)))));
    let third = store.put_many(&round(2)).await.unwrap();
    assert!(third[..1_050].iter().all(Result::is_ok));
    let last = B256::left_padding_from(&1_049u32.to_be_bytes());
    assert_eq!(
        store.channel(last).await.unwrap().appointments[0]
            .proof
            .nonce,
        2
    );
    store.close().await;
}

/// [`appointment`] carrying two locks and the secrets `known` of them (by index).
fn locked(channel: u8, customer: Address, nonce: u64, known: &[usize]) -> Appointment {
    let secrets: Vec<B256> = (1..=2).map(B256::repeat_byte).collect();
    let locks: Vec<Lock> = secrets
        .iter()
        .zip([u64::MAX, 7])
        .map(|(s, expiration)| Lock {
            expiration,
            amount: U256::MAX,
            secret_hash: keel_core::secret_hash(*s),
        })
        .collect();
    Appointment {
        locks,
        secrets: known.iter().map(|&i| secrets[i]).collect(),
        ..appointment(channel, customer, nonce)
    }
}

/// The `n`th release: a lock of the customer's, and a signature the store keeps as given.
fn release(n: u8) -> Release {
    Release {
        lock: Lock {
            expiration: u64::from(n) << 40,
            amount: U256::MAX - U256::from(n),
            secret_hash: B256::repeat_byte(n),
        },
        signature: [n; 65],
    }
}

fn released(channel: u8, customer: Address, nonce: u64, releases: &[u8]) -> Appointment {
    Appointment {
        releases: releases.iter().map(|&n| release(n)).collect(),
        ..appointment(channel, customer, nonce)
    }
}

/// Releases outlive the proof they came with: the same nonce is taken to add one, a newer proof
/// keeps those held (in a batch too), and past the limit the oldest go. A channel holding only
/// releases is lock work once closed.
async fn releases_are_kept_across_appointments_up_to_the_limit<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let bob = Address::repeat_byte(0xb);
    store.register(bob, 2, 1).await.unwrap();
    let held = |a: Appointment| {
        let store = store.clone();
        async move {
            let record = store.channel(a.channel_id).await.unwrap();
            assert_eq!(record.appointments, vec![a], "held, every byte");
        }
    };
    store.put(&released(1, bob, 5, &[1])).await.unwrap();
    held(released(1, bob, 5, &[1])).await;
    // A release received since: the same proof is taken again, and both are kept.
    store.put(&released(1, bob, 5, &[2])).await.unwrap();
    held(released(1, bob, 5, &[1, 2])).await;
    // Nothing new: stale.
    for same in [released(1, bob, 5, &[2, 1]), appointment(1, bob, 5)] {
        assert!(matches!(store.put(&same).await, Err(PutError::Stale(5))));
    }
    // A newer proof without releases keeps them; one with a new release adds it.
    store.put(&appointment(1, bob, 6)).await.unwrap();
    held(released(1, bob, 6, &[1, 2])).await;
    let answers = store
        .put_many(&[released(1, bob, 7, &[3]), released(1, bob, 8, &[2, 4])])
        .await
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    held(released(1, bob, 8, &[1, 3, 2, 4])).await;
    // Past the limit the oldest held are dropped, never the appointment's own.
    let max = keel_tower_api::MAX_RELEASES;
    let many: Vec<u8> = (10..).take(max - 1).collect();
    store.put(&released(1, bob, 9, &many)).await.unwrap();
    let mut kept = vec![4];
    kept.extend(&many);
    held(released(1, bob, 9, &kept)).await;

    assert!(store.lock_work().await.unwrap().is_empty());
    store
        .record_disputes(&[(B256::repeat_byte(1), closed_until(100))])
        .await
        .unwrap();
    assert_eq!(store.lock_work().await.unwrap(), vec![B256::repeat_byte(1)]);
    store.close().await;
}

async fn the_same_nonce_is_taken_only_to_add_secrets<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let bob = Address::repeat_byte(0xb);
    store.register(bob, 2, 1).await.unwrap();
    let held = |a: Appointment| {
        let store = store.clone();
        async move {
            let record = store.channel(a.channel_id).await.unwrap();
            assert_eq!(record.appointments, vec![a], "held, every byte");
        }
    };
    // The locks without secrets, then one secret, then both: each adds, each is held.
    store.put(&locked(1, bob, 5, &[])).await.unwrap();
    held(locked(1, bob, 5, &[])).await;
    store.put(&locked(1, bob, 5, &[1])).await.unwrap();
    held(locked(1, bob, 5, &[1])).await;
    store.put(&locked(1, bob, 5, &[1, 0])).await.unwrap();
    held(locked(1, bob, 5, &[1, 0])).await;
    // Nothing new, a secret dropped, or other locks: the same nonce is stale.
    let mut other_locks = locked(1, bob, 5, &[]);
    other_locks.locks.pop();
    let mut other_proof = locked(1, bob, 5, &[0, 1]);
    other_proof.proof.transferredAmount = U256::from(1);
    for same in [
        locked(1, bob, 5, &[0, 1]),
        locked(1, bob, 5, &[0]),
        other_locks,
        other_proof,
        appointment(1, bob, 5),
    ] {
        assert!(
            matches!(store.put(&same).await, Err(PutError::Stale(5))),
            "{same:?}"
        );
    }
    held(locked(1, bob, 5, &[1, 0])).await;
    // Locks sent after the proof alone are taken too.
    store.put(&appointment(2, bob, 3)).await.unwrap();
    store.put(&locked(2, bob, 3, &[])).await.unwrap();
    held(locked(2, bob, 3, &[])).await;
    // A newer proof replaces everything, secrets included: still one row per channel.
    store.put(&appointment(1, bob, 6)).await.unwrap();
    held(appointment(1, bob, 6)).await;
    assert_eq!(store.counts().await.unwrap().appointments, 2);
    store.close().await;
}

async fn lock_states_are_kept_until_pruned<S: TestStore>(db: &TestDb) {
    let store = S::open(db).await;
    let bob = Address::repeat_byte(0xb);
    store.register(bob, 3, 1).await.unwrap();
    let with_locks = locked(1, bob, 5, &[0]);
    let without = appointment(2, bob, 5);
    store.put(&with_locks).await.unwrap();
    store.put(&without).await.unwrap();
    // Nothing to do for either while their channels are open.
    assert!(store.lock_work().await.unwrap().is_empty());
    let dispute = closed_until(99);
    store
        .record_disputes(&[
            (with_locks.channel_id, dispute),
            (without.channel_id, dispute),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.lock_work().await.unwrap(),
        vec![with_locks.channel_id]
    );

    let state = LockState {
        retained_a: U256::from(3),
        locks_root_a: B256::repeat_byte(4),
        retained_b: U256::ZERO,
        locks_root_b: B256::ZERO,
    };
    store
        .record_lock_state(with_locks.channel_id, &state)
        .await
        .unwrap();
    let unlocked = LockState {
        retained_a: U256::ZERO,
        locks_root_a: B256::ZERO,
        ..state
    };
    store
        .record_lock_state(with_locks.channel_id, &unlocked)
        .await
        .unwrap();
    // What the tower sent: the latest of each step, per customer.
    let step = |kind, tx: u8, at| LockStep {
        channel_id: with_locks.channel_id,
        customer: bob,
        kind,
        tx_hash: B256::repeat_byte(tx),
        detail: format!("tx {tx}"),
        updated_at: at,
    };
    for s in [
        step(LockStepKind::Unlocked, 3, 30),
        step(LockStepKind::Registered, 1, 10),
        step(LockStepKind::Settled, 2, 20),
        step(LockStepKind::Registered, 4, 40),
    ] {
        store.record_lock_step(&s).await.unwrap();
    }
    // Durable, the newest replacing the older.
    store.close().await;
    let store = S::open(db).await;
    let record = store.channel(with_locks.channel_id).await.unwrap();
    assert_eq!(record.lock_state, Some(unlocked));
    assert_eq!(
        record.lock_steps,
        vec![
            step(LockStepKind::Registered, 4, 40),
            step(LockStepKind::Settled, 2, 20),
            step(LockStepKind::Unlocked, 3, 30),
        ]
    );
    assert_eq!(
        store.lock_work().await.unwrap(),
        vec![with_locks.channel_id]
    );

    // Pruning forgets the lock state, its steps and the lock work's claim with the rest.
    let key = lock_claim_id(with_locks.channel_id);
    assert!(store.claim(key, bob, "one", 0, 1_000).await.unwrap());
    store.prune(with_locks.channel_id).await.unwrap();
    let record = store.channel(with_locks.channel_id).await.unwrap();
    assert_eq!(record, Default::default());
    assert!(store.lock_work().await.unwrap().is_empty());
    assert!(store.claim(key, bob, "two", 0, 1_000).await.unwrap());
    store.close().await;
}
