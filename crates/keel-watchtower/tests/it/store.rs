//! SqliteStore: one appointment per channel and customer, the newer replacing the older; stale
//! nonces and quotas refused; disputes, responses, pruning; checkpoints; all durable.

use keel_chain::monitor::{Checkpoint, Checkpoints};
use keel_core::{Address, BalanceProof, ChannelParams, DisputeState, Side, B256, U256};
use keel_watchtower::{
    store::{Appointment, Outcome, PutError, Response},
    SqliteStore, Store,
};

use crate::fixture::{remove_db, temp_db};

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
    }
}

#[tokio::test]
async fn newer_replaces_older_and_stale_or_over_quota_is_refused() {
    let path = temp_db("store");
    let store = SqliteStore::open(&path).await.unwrap();
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

    let dispute = DisputeState {
        closer: Side::A,
        deadline: 99,
        total: U256::from(10),
        deposit_a: U256::from(10),
        withdrawn_a: U256::ZERO,
        from_a: Default::default(),
        from_b: Default::default(),
    };
    store.record_dispute(a9.channel_id, &dispute).await.unwrap();
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
    let cp = Checkpoint {
        block: 7,
        hash: B256::repeat_byte(7),
    };
    store.save(5, cp).await.unwrap();
    store.close().await;

    // All of it survives a restart.
    let store = SqliteStore::open(&path).await.unwrap();
    let record = store.channel(a9.channel_id).await.unwrap();
    assert_eq!(record.appointments, vec![a9.clone()]);
    assert_eq!(record.dispute, Some(dispute));
    assert_eq!(record.responses, vec![response]);
    assert_eq!(store.load(5).await.unwrap(), Some(cp));
    assert_eq!(store.load(6).await.unwrap(), None);
    let mut watched = store.watched().await.unwrap();
    watched.sort();
    assert_eq!(
        watched,
        vec![
            (Address::repeat_byte(1), B256::repeat_byte(1)),
            (Address::repeat_byte(2), B256::repeat_byte(2))
        ]
    );

    // Pruning a settled channel frees its storage and the customer's quota.
    assert_eq!(store.prune(a9.channel_id).await.unwrap(), 1);
    assert_eq!(
        store.channel(a9.channel_id).await.unwrap(),
        Default::default()
    );
    store.put(&appointment(3, bob, 1)).await.unwrap();
    store.close().await;
    remove_db(&path);
}
