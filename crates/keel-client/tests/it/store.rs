//! The channel store over real SQLite files in the temp directory.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::store::{
    ChannelOpening, DecodeError, Event, Forward, ForwardState, Invoice, ManualPacing, Released,
    ReplayError, Store, StoreError,
};
use keel_core::{
    forwarding::onion::{Packet, PACKET_LEN},
    secret_hash, sign_message, Address, Change, ChannelParams, ChannelState, Lock, Policy, Side,
    Withdrawal, B256, U256,
};
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Executor};

const NOW: u64 = 1_700_000_000;
const CHAIN_ID: u64 = 31337;

/// A database file unique to one test, removed (with its WAL files) afterwards.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "keel-store-{}-{nanos}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self(std::env::temp_dir().join(name))
    }

    async fn store(&self) -> Store {
        Store::open(&self.0).await.unwrap()
    }

    /// The store, holding one new channel between `0xa…` (side A, ours) and `0xb…`.
    async fn store_with_channel(&self) -> (Store, ChannelState) {
        let store = self.store().await;
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let state = store
            .open_channel(&opening(a, b, Side::A, 0))
            .await
            .unwrap();
        (store, state)
    }

    /// Runs raw SQL against the file, as a corruption on disk would.
    async fn tamper(&self, sql: &str) {
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.0)
            .connect()
            .await
            .unwrap();
        conn.execute(sql).await.unwrap();
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn opening(a: Address, b: Address, me: Side, salt: u64) -> ChannelOpening {
    ChannelOpening {
        params: ChannelParams {
            participant_a: a,
            participant_b: b,
            token: Address::ZERO,
            challenge_period: 86_400,
            salt: B256::from(U256::from(salt)),
        },
        chain_id: CHAIN_ID,
        factory: Address::repeat_byte(0xfa),
        implementation: Address::repeat_byte(0x1e),
        me,
        policy: Policy::default(),
    }
}

fn pay(amount: u64) -> Change {
    Change::Pay {
        amount: U256::from(amount),
    }
}

/// Two views of one channel; Alice's is persisted, Bob's lives in memory as her counterparty.
struct Pair {
    alice_key: PrivateKeySigner,
    bob_key: PrivateKeySigner,
    alice: ChannelState,
    bob: ChannelState,
}

impl Pair {
    async fn open(store: &Store) -> Self {
        let (alice_key, bob_key) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let (a, b) = (alice_key.address(), bob_key.address());
        let alice = store
            .open_channel(&opening(a, b, Side::A, 0))
            .await
            .unwrap();
        let bob = opening(a, b, Side::B, 0).state();
        Self {
            alice_key,
            bob_key,
            alice,
            bob,
        }
    }

    /// Alice sends `change`: applied, stored, and only then signed and delivered to Bob.
    async fn alice_sends(&mut self, store: &Store, change: Change, now: u64) {
        let proof = self.alice.send(&change, now).unwrap();
        let event = Event::Sent {
            change: change.clone(),
            proof: proof.clone(),
            now,
        };
        store.append(self.alice.id(), &event).await.unwrap();
        let signature =
            sign_message(&self.alice_key, &proof, CHAIN_ID, self.alice.vault()).unwrap();
        self.bob
            .receive(std::slice::from_ref(&change), &proof, &signature, now)
            .unwrap();
    }

    /// Bob sends `change`; Alice accepts it and stores it before she would acknowledge it.
    async fn bob_sends(&mut self, store: &Store, change: Change, now: u64) {
        let proof = self.bob.send(&change, now).unwrap();
        let signature = sign_message(&self.bob_key, &proof, CHAIN_ID, self.bob.vault()).unwrap();
        self.alice
            .receive(std::slice::from_ref(&change), &proof, &signature, now)
            .unwrap();
        let event = Event::Received {
            changes: vec![change],
            proof,
            signature,
            now,
        };
        store.append(self.alice.id(), &event).await.unwrap();
    }

    /// An on-chain fact both views learn; Alice stores it.
    async fn both(&mut self, store: &Store, event: Event) {
        event.apply(&mut self.bob).unwrap();
        store.append(self.alice.id(), &event).await.unwrap();
    }
}

#[tokio::test]
async fn empty_database_loads_no_channels() {
    let db = TempDb::new();
    let store = db.store().await;
    assert_eq!(store.load_all().await.unwrap(), vec![]);
    store.close().await;
    let mut conn = SqliteConnectOptions::new()
        .filename(&db.0)
        .connect()
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal", "the store leaves the file in WAL mode");
    drop(conn);
    // Re-running the migrations on an existing file is a no-op.
    let store = db.store().await;
    assert_eq!(store.load_all().await.unwrap(), vec![]);
    assert_eq!(store.commits(), 0);
    store.close().await;
}

#[tokio::test]
async fn reopened_store_rebuilds_the_state_built_in_memory() {
    let db = TempDb::new();
    let store = db.store().await;
    let mut p = Pair::open(&store).await;
    let id = p.alice.id();

    p.alice
        .deposit_confirmed(Side::A, U256::from(1_000))
        .unwrap();
    p.both(
        &store,
        Event::DepositConfirmed {
            side: Side::A,
            total: U256::from(1_000),
        },
    )
    .await;
    p.alice.deposit_confirmed(Side::B, U256::from(500)).unwrap();
    p.both(
        &store,
        Event::DepositConfirmed {
            side: Side::B,
            total: U256::from(500),
        },
    )
    .await;

    p.alice_sends(&store, pay(10), NOW).await;
    p.bob_sends(&store, pay(3), NOW + 1).await;
    let secret = B256::repeat_byte(0x51);
    let lock = Lock {
        expiration: NOW + 3_600,
        amount: U256::from(50),
        secret_hash: secret_hash(secret),
    };
    p.alice_sends(&store, Change::AddLock(lock), NOW + 2).await;
    p.alice_sends(&store, Change::ClaimLock { secret }, NOW + 3)
        .await;
    let bob_lock = Lock {
        expiration: NOW + 700,
        amount: U256::from(20),
        secret_hash: secret_hash(B256::repeat_byte(0x52)),
    };
    p.bob_sends(&store, Change::AddLock(bob_lock), NOW + 4)
        .await;
    // Replayed with its stored time: would be refused "now" if the lock had not expired then.
    let remove = Change::RemoveExpiredLock {
        secret_hash: bob_lock.secret_hash,
    };
    p.bob_sends(&store, remove, NOW + 800).await;

    // Bob withdraws 100; Alice co-signs, it executes.
    let withdrawal = Withdrawal {
        channelId: id,
        participant: p.bob_key.address(),
        totalWithdrawn: U256::from(100),
        expiry: NOW + 2_000,
        target: Address::ZERO,
        targetSide: 0,
    };
    p.alice.approve_withdrawal(&withdrawal, NOW + 900).unwrap();
    p.both(
        &store,
        Event::WithdrawalApproved {
            withdrawal,
            now: NOW + 900,
        },
    )
    .await;
    p.alice
        .withdrawal_confirmed(Side::B, U256::from(100))
        .unwrap();
    p.both(
        &store,
        Event::WithdrawalConfirmed {
            side: Side::B,
            total: U256::from(100),
        },
    )
    .await;

    // Alice's own withdrawal expires unexecuted, and its reservation is released.
    let mine = Withdrawal {
        channelId: id,
        participant: p.alice_key.address(),
        totalWithdrawn: U256::from(900),
        expiry: NOW + 1_000,
        target: Address::ZERO,
        targetSide: 0,
    };
    p.alice.approve_withdrawal(&mine, NOW + 950).unwrap();
    p.both(
        &store,
        Event::WithdrawalApproved {
            withdrawal: mine,
            now: NOW + 950,
        },
    )
    .await;
    p.alice.expire_withdrawals(NOW + 1_001);
    p.both(&store, Event::WithdrawalsExpired { now: NOW + 1_001 })
        .await;
    p.alice_sends(&store, pay(900), NOW + 1_002).await;

    // A close that expires, then one that sticks.
    let close = p.alice.propose_close(NOW + 1_100).unwrap();
    store
        .append(id, &Event::CloseProposed { close })
        .await
        .unwrap();
    assert!(p.alice.close_expired(NOW + 1_101));
    store
        .append(id, &Event::CloseExpired { now: NOW + 1_101 })
        .await
        .unwrap();
    let close = p.bob.propose_close(NOW + 5_000).unwrap();
    p.alice.approve_close(&close).unwrap();
    store
        .append(id, &Event::CloseApproved { close })
        .await
        .unwrap();

    let expected = p.alice.clone();
    store.close().await;

    let store = db.store().await;
    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded, vec![expected.clone()]);
    assert_eq!(
        loaded[0].latest_counterparty_proof(),
        expected.latest_counterparty_proof()
    );
    assert_eq!(loaded[0].direction(Side::A).nonce, 4);
    assert_eq!(
        loaded[0].balance(Side::B),
        U256::from(500 - 100 - 3 + 10 + 50 + 900)
    );
    store.close().await;
}

#[tokio::test]
async fn restarted_sender_never_reuses_a_nonce() {
    let db = TempDb::new();
    let mut sent = Vec::new();
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    {
        let store = db.store().await;
        let mut alice = store
            .open_channel(&opening(a, b, Side::A, 7))
            .await
            .unwrap();
        alice.deposit_confirmed(Side::A, U256::from(1_000)).unwrap();
        let event = Event::DepositConfirmed {
            side: Side::A,
            total: U256::from(1_000),
        };
        store.append(alice.id(), &event).await.unwrap();
    }
    for _restart in 0..3 {
        let store = db.store().await;
        let mut states = store.load_all().await.unwrap();
        assert_eq!(states.len(), 1);
        let mut alice = states.remove(0);
        for _ in 0..5 {
            let change = pay(1);
            let proof = alice.send(&change, NOW).unwrap();
            store
                .append(
                    alice.id(),
                    &Event::Sent {
                        change,
                        proof: proof.clone(),
                        now: NOW,
                    },
                )
                .await
                .unwrap();
            // Only now may the proof leave the process.
            sent.push(proof.nonce);
        }
        // Crash mid-payment: applied in memory, never stored, so never sent.
        alice.send(&pay(1), NOW).unwrap();
        drop(store);
    }
    assert_eq!(sent, (1..=15).collect::<Vec<_>>());

    let store = db.store().await;
    let mut alice = store.load_all().await.unwrap().remove(0);
    assert_eq!(alice.send(&pay(1), NOW).unwrap().nonce, 16);
    assert_eq!(alice.direction(Side::A).transferred, U256::from(16));
    store.close().await;
}

/// 1,000 appends to as many channels, made concurrently while the writer waits out the pacing
/// interval after the previous commit, all land in one transaction. (Left to the real clock, 1,000
/// appends from as many spawned tasks took 2 to 6 commits on a 2-core machine: the tasks do not
/// all enqueue within one interval.)
#[tokio::test]
async fn concurrent_appends_all_land_in_one_commit() {
    const N: u64 = 1_000;
    const INTERVAL: Duration = Duration::from_millis(500);
    let db = TempDb::new();
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    let mut states = Vec::new();
    {
        let store = db.store().await;
        for salt in 0..N {
            states.push(
                store
                    .open_channel(&opening(a, b, Side::B, salt))
                    .await
                    .unwrap(),
            );
        }
        store.close().await;
    }

    let pacing = Arc::new(ManualPacing::new());
    let store = Arc::new(
        Store::open_manually_paced(&db.0, INTERVAL, pacing.clone())
            .await
            .unwrap(),
    );
    // A first commit, at once; the writer waits out the interval before the next one.
    store.flush().await.unwrap();
    let before = store.commits();
    let mut appends = Vec::new();
    for (i, mut state) in states.into_iter().enumerate() {
        let store = store.clone();
        appends.push(tokio::spawn(async move {
            let event = Event::DepositConfirmed {
                side: Side::A,
                total: U256::from(i + 1),
            };
            event.apply(&mut state).unwrap();
            let commit = store.enqueue(state.id(), &event).await.unwrap();
            (state, commit)
        }));
    }
    let mut queued = Vec::new();
    for task in appends {
        queued.push(task.await.unwrap());
    }
    // Every append is queued and the writer holds the first: nothing is committed yet.
    wait_until(|| pacing.sleeping()).await;
    assert_eq!(store.commits(), before);
    pacing.advance(INTERVAL);
    let mut expected = HashMap::new();
    for (state, commit) in queued {
        commit.durable().await.unwrap();
        expected.insert(state.id(), state);
    }
    assert_eq!(store.commits() - before, 1, "{N} appends in one commit");

    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.len(), expected.len());
    for state in loaded {
        assert_eq!(Some(&state), expected.get(&state.id()));
    }
    Arc::into_inner(store).unwrap().close().await;
}

/// Appends arriving while the writer waits out the pacing interval share one commit, and an
/// append after a quiet spell commits at once. The interval runs on a clock the test moves, so
/// neither depends on how fast this machine schedules the test.
#[tokio::test]
async fn paced_commits_batch_a_stream_and_leave_a_quiet_store_alone() {
    const INTERVAL: Duration = Duration::from_millis(500);
    let db = TempDb::new();
    let pacing = Arc::new(ManualPacing::new());
    let store = Arc::new(
        Store::open_manually_paced(&db.0, INTERVAL, pacing.clone())
            .await
            .unwrap(),
    );
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    // The first write commits at once: nothing came before it.
    let mut state = store
        .open_channel(&opening(a, b, Side::B, 0))
        .await
        .unwrap();
    assert_eq!(pacing.sleeps(), 0, "a quiet store's first write waited");
    let id = state.id();
    let before = store.commits();
    let mut deposit = |total: u64| {
        let event = Event::DepositConfirmed {
            side: Side::A,
            total: U256::from(total),
        };
        event.apply(&mut state).unwrap();
        event
    };

    // The next write comes within the interval (the clock has not moved): the writer waits,
    // holding it, and the nineteen queued meanwhile join it.
    let mut pending = vec![store.enqueue(id, &deposit(1)).await.unwrap()];
    wait_until(|| pacing.sleeping()).await;
    for total in 2..=20u64 {
        pending.push(store.enqueue(id, &deposit(total)).await.unwrap());
    }
    for commit in &mut pending {
        assert!(
            commit.try_durable().is_none(),
            "committed before the interval ran out"
        );
    }
    pacing.advance(INTERVAL);
    for commit in pending {
        commit.durable().await.unwrap();
    }
    assert_eq!(
        store.commits() - before,
        1,
        "20 paced appends in one commit"
    );
    assert_eq!(pacing.sleeps(), 1);

    // Quiet for longer than the interval: the next append does not wait (were it to, it would
    // wait for a clock nobody moves).
    pacing.advance(INTERVAL * 2);
    let event = deposit(21);
    tokio::time::timeout(Duration::from_secs(30), store.append(id, &event))
        .await
        .expect("a quiet store held an append back")
        .unwrap();
    assert_eq!(pacing.sleeps(), 1, "a quiet store waited");
    assert_eq!(store.load_all().await.unwrap(), vec![state]);
    Arc::into_inner(store).unwrap().close().await;
}

/// Polls `done` until it holds; fails after 30 s.
async fn wait_until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("condition in time");
}

#[tokio::test]
async fn concurrent_payment_streams_keep_their_order_across_batches() {
    const CHANNELS: u64 = 20;
    const PAYMENTS: u64 = 50;
    let db = TempDb::new();
    let store = Arc::new(db.store().await);
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    let before = store.commits();
    let mut tasks = Vec::new();
    for salt in 0..CHANNELS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut state = store
                .open_channel(&opening(a, b, Side::A, salt))
                .await
                .unwrap();
            let deposit = Event::DepositConfirmed {
                side: Side::A,
                total: U256::from(PAYMENTS),
            };
            deposit.apply(&mut state).unwrap();
            store.append(state.id(), &deposit).await.unwrap();
            // Each channel's payments in order, one at a time, as a client sends them.
            for i in 0..PAYMENTS {
                let change = pay(1);
                let proof = state.send(&change, NOW + i).unwrap();
                let event = Event::Sent {
                    change,
                    proof,
                    now: NOW + i,
                };
                store.append(state.id(), &event).await.unwrap();
            }
            state
        }));
    }
    let mut expected = HashMap::new();
    for task in tasks {
        let state = task.await.unwrap();
        expected.insert(state.id(), state);
    }
    let writes = CHANNELS * (PAYMENTS + 2);
    let commits = store.commits() - before;
    assert!(
        commits < writes / 2,
        "{writes} writes took {commits} commits"
    );

    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.len(), expected.len());
    for state in loaded {
        assert_eq!(state.direction(Side::A).nonce, PAYMENTS);
        assert_eq!(Some(&state), expected.get(&state.id()));
    }
    Arc::into_inner(store).unwrap().close().await;
}

#[tokio::test]
async fn refused_writes_are_typed_and_spare_their_batch() {
    let db = TempDb::new();
    // A long pacing interval: the four writes queued below all arrive while the writer sleeps
    // out the interval after the previous commit, so they share one transaction however slowly
    // this test is scheduled (with the default 500 µs a busy machine split them).
    let store = Store::open_paced(&db.0, Duration::from_secs(1))
        .await
        .unwrap();
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    let state = store
        .open_channel(&opening(a, b, Side::A, 0))
        .await
        .unwrap();
    let duplicate = store.open_channel(&opening(a, b, Side::A, 0)).await;
    assert!(matches!(duplicate, Err(StoreError::ChannelExists(id)) if id == state.id()));

    let event = Event::DepositConfirmed {
        side: Side::A,
        total: U256::from(5),
    };
    let unknown = B256::repeat_byte(0x99);
    let (bad, good) = tokio::join!(
        store.append(unknown, &event),
        store.append(state.id(), &event)
    );
    assert!(matches!(bad, Err(StoreError::UnknownChannel(id)) if id == unknown));
    good.unwrap();
    assert_eq!(
        store.load_all().await.unwrap()[0].ledger(Side::A).0,
        U256::from(5)
    );

    // Queued together, the events share one multi-row statement; the refused one is singled
    // out and the others still commit, in order, in that one transaction.
    let commits = store.commits();
    let deposit = |total: u64| Event::DepositConfirmed {
        side: Side::B,
        total: U256::from(total),
    };
    let mut queued = Vec::new();
    for (id, total) in [
        (state.id(), 1),
        (unknown, 2),
        (state.id(), 3),
        (state.id(), 4),
    ] {
        queued.push(store.enqueue(id, &deposit(total)).await.unwrap());
    }
    let mut answers = Vec::new();
    for commit in queued {
        answers.push(commit.durable().await);
    }
    assert!(answers[0].is_ok() && answers[2].is_ok() && answers[3].is_ok());
    assert!(matches!(answers[1], Err(StoreError::UnknownChannel(id)) if id == unknown));
    assert_eq!(store.commits(), commits + 1, "one transaction");
    assert_eq!(
        store.load_all().await.unwrap()[0].ledger(Side::B).0,
        U256::from(4)
    );
    store.close().await;
}

/// A new invoice is looked up from memory, and a later write of it is what the next lookup
/// returns, never the remembered first version (a paid invoice must not look unpaid), also
/// after a restart.
#[tokio::test]
async fn an_invoice_written_again_is_never_read_as_its_first_version() {
    let db = TempDb::new();
    let store = db.store().await;
    let hash = B256::repeat_byte(0x77);
    let issued = Invoice {
        secret: B256::repeat_byte(0x11),
        amount: U256::from(1_000),
        expiry: NOW + 3_600,
        paid: false,
        hold: false,
    };
    store.insert_invoice(hash, &issued).await.unwrap();
    assert_eq!(store.invoice(hash).await.unwrap(), Some(issued));
    let paid = Invoice {
        paid: true,
        ..issued
    };
    store.put_invoice(hash, &paid).await.unwrap();
    assert_eq!(store.invoice(hash).await.unwrap(), Some(paid));
    assert_eq!(store.invoice(B256::repeat_byte(0x78)).await.unwrap(), None);
    store.close().await;
    let store = db.store().await;
    assert_eq!(store.invoice(hash).await.unwrap(), Some(paid));
    store.close().await;
}

/// A failed commit stops the writer: a later write must not become durable while one queued
/// before it is lost, or a hub could send the lock it forwards without the one that pays for it.
#[tokio::test]
async fn after_a_failed_commit_no_later_write_is_stored() {
    let db = TempDb::new();
    let (store, state) = db.store_with_channel().await;
    let deposit = |total: u64| Event::DepositConfirmed {
        side: Side::A,
        total: U256::from(total),
    };
    store.append(state.id(), &deposit(1)).await.unwrap();
    // The notice's table vanishes under the writer: its next transaction fails as a whole.
    db.tamper("DROP TABLE notices").await;
    let lost = store.enqueue_notice(vec![1, 2, 3]).await.unwrap();
    assert!(matches!(lost.durable().await, Err(StoreError::Commit(_))));
    let later = store.append(state.id(), &deposit(2)).await;
    assert!(matches!(later, Err(StoreError::Failed(_))), "{later:?}");
    assert_eq!(
        store.load_all().await.unwrap()[0].ledger(Side::A).0,
        U256::from(1),
        "nothing after the failed commit is stored"
    );
    store.close().await;
}

#[tokio::test]
async fn corrupt_or_unknown_rows_are_typed_errors() {
    let db = TempDb::new();
    let (store, state) = db.store_with_channel().await;
    let event = Event::DepositConfirmed {
        side: Side::A,
        total: U256::from(5),
    };
    store.append(state.id(), &event).await.unwrap();
    store.close().await;

    let cases: [(&str, DecodeError); 4] = [
        (
            "UPDATE events SET body = x'63'",
            DecodeError::UnsupportedVersion(0x63),
        ),
        ("UPDATE events SET body = x''", DecodeError::Truncated),
        (
            "UPDATE events SET body = x'02c8'",
            DecodeError::UnknownKind(200),
        ),
        (
            "UPDATE events SET body = x'020302'",
            DecodeError::Invalid("side"),
        ),
    ];
    for (sql, expected) in cases {
        db.tamper(sql).await;
        let store = db.store().await;
        match store.load_all().await {
            Err(StoreError::Corrupt {
                channel_id,
                seq: Some(_),
                source,
            }) => {
                assert_eq!(channel_id, state.id());
                assert_eq!(source, expected);
            }
            other => panic!("{sql}: {other:?}"),
        }
        store.close().await;
    }

    // A record in the previous layout (1), which held signatures under the old signed types.
    db.tamper("UPDATE channels SET opening = x'01'").await;
    let store = db.store().await;
    assert!(matches!(
        store.load_all().await,
        Err(StoreError::Corrupt {
            seq: None,
            source: DecodeError::UnsupportedVersion(1),
            ..
        })
    ));
    store.close().await;
}

#[tokio::test]
async fn an_event_the_state_machine_refuses_fails_the_load() {
    let db = TempDb::new();
    let (store, mut state) = db.store_with_channel().await;
    state.deposit_confirmed(Side::A, U256::from(10)).unwrap();
    let deposit = Event::DepositConfirmed {
        side: Side::A,
        total: U256::from(10),
    };
    store.append(state.id(), &deposit).await.unwrap();

    // A stored proof the change does not produce (wrong amount).
    let mut proof = state.send(&pay(1), NOW).unwrap();
    proof.transferredAmount = U256::from(2);
    let sent = Event::Sent {
        change: pay(1),
        proof,
        now: NOW,
    };
    store.append(state.id(), &sent).await.unwrap();
    let err = store.load_all().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Replay {
                source: ReplayError::Mismatch("sent proof"),
                ..
            }
        ),
        "{err:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn pipelined_enqueues_keep_their_order_and_share_commits() {
    const N: u64 = 200;
    let db = TempDb::new();
    let store = db.store().await;
    let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
    let mut state = store
        .open_channel(&opening(a, b, Side::B, 1))
        .await
        .unwrap();

    // One caller applies and enqueues events in order without waiting for each commit, then
    // waits for all of them: the log replays in that order, in fewer commits than events.
    let before = store.commits();
    let mut commits = Vec::new();
    for i in 1..=N {
        let event = Event::DepositConfirmed {
            side: Side::A,
            total: U256::from(i),
        };
        event.apply(&mut state).unwrap();
        commits.push(store.enqueue(state.id(), &event).await.unwrap());
    }
    for commit in commits {
        commit.durable().await.unwrap();
    }
    assert!(
        store.commits() - before < N,
        "pipelined events share commits"
    );
    assert_eq!(store.load_all().await.unwrap(), vec![state]);
    store.close().await;
}

#[tokio::test]
async fn a_snapshot_replaces_the_events_before_it_and_a_damaged_one_is_refused() {
    let db = TempDb::new();
    let store = db.store().await;
    let mut pair = Pair::open(&store).await;
    for side in [Side::A, Side::B] {
        let deposit = Event::DepositConfirmed {
            side,
            total: U256::from(1_000),
        };
        deposit.apply(&mut pair.alice).unwrap();
        pair.both(&store, deposit).await;
    }
    let secret = B256::repeat_byte(0x5e);
    pair.alice_sends(&store, pay(10), NOW).await;
    pair.bob_sends(&store, pay(4), NOW).await;
    let lock = Lock {
        expiration: NOW + 3_600,
        amount: U256::from(7),
        secret_hash: secret_hash(secret),
    };
    pair.bob_sends(&store, Change::AddLock(lock), NOW).await;
    let withdrawal = Withdrawal {
        channelId: pair.alice.id(),
        participant: pair.alice_key.address(),
        totalWithdrawn: U256::from(100),
        expiry: NOW + 600,
        target: Address::ZERO,
        targetSide: 0,
    };
    pair.alice.approve_withdrawal(&withdrawal, NOW).unwrap();
    store
        .append(
            pair.alice.id(),
            &Event::WithdrawalApproved {
                withdrawal,
                now: NOW,
            },
        )
        .await
        .unwrap();
    let status = keel_client::store::ChainStatus::Open;
    store
        .snapshot(&pair.alice, &status)
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();
    // Events after the snapshot are replayed on top of it.
    pair.alice_sends(&store, pay(5), NOW).await;
    pair.bob_sends(&store, Change::ClaimLock { secret }, NOW)
        .await;
    store.close().await;

    // The events the snapshot covers are no longer needed: drop them, and the load is the same.
    db.tamper("DELETE FROM events WHERE seq <= (SELECT seq FROM snapshots)")
        .await;
    let store = db.store().await;
    let loaded = store.load_channels().await.unwrap();
    assert_eq!(loaded, vec![(pair.alice.clone(), status)]);
    store.close().await;

    // A snapshot whose counterparty signature was altered is refused, not trusted. The
    // signature is the 65 bytes before the last two (closing flag, chain status): zero four of
    // its bytes.
    db.tamper(
        "UPDATE snapshots SET state = CAST(substr(state, 1, length(state) - 44) || \
         X'00000000' || substr(state, length(state) - 39) AS BLOB)",
    )
    .await;
    let store = db.store().await;
    let err = store.load_channels().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Replay { .. } | StoreError::Corrupt { .. }),
        "{err:?}"
    );
    // Cut short, it is a typed decoding error.
    db.tamper("UPDATE snapshots SET state = CAST(substr(state, 1, 40) AS BLOB)")
        .await;
    let err = store.load_channels().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                source: DecodeError::Truncated,
                ..
            }
        ),
        "{err:?}"
    );
    store.close().await;
}

/// A lock's onion is stored with the update adding it, read back for the nonces a peer asks
/// for, and dropped once the peer acknowledged its update; a row of the wrong length is a
/// typed error, not a packet.
#[tokio::test]
async fn lock_onions_are_stored_with_their_update_and_pruned_once_acknowledged() {
    let db = TempDb::new();
    let (store, mut state) = db.store_with_channel().await;
    let id = state.id();
    state.deposit_confirmed(Side::A, U256::from(100)).unwrap();
    let deposit = Event::DepositConfirmed {
        side: Side::A,
        total: U256::from(100),
    };
    store.append(id, &deposit).await.unwrap();
    let packet = |byte: u8| Packet(Box::new([byte; PACKET_LEN]));
    // Three locks, each with its onion; the peer had acknowledged nothing, then nonce 1.
    for (n, acknowledged) in [(1u8, 0), (2, 0), (3, 1)] {
        let change = Change::AddLock(Lock {
            expiration: NOW + 3_600,
            amount: U256::from(1),
            secret_hash: secret_hash(B256::repeat_byte(n)),
        });
        let proof = state.send(&change, NOW).unwrap();
        let event = Event::Sent {
            change,
            proof,
            now: NOW,
        };
        let onion = packet(n);
        store
            .enqueue_sent(id, &event, None, Some((&onion, acknowledged)))
            .await
            .unwrap()
            .durable()
            .await
            .unwrap();
    }
    // A plain update stores no onion and prunes nothing.
    let proof = state.send(&pay(1), NOW).unwrap();
    let event = Event::Sent {
        change: pay(1),
        proof,
        now: NOW,
    };
    store
        .enqueue_sent(id, &event, None, None)
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();

    let mut onions = store.lock_onions(id, 0).await.unwrap();
    assert_eq!(
        onions.len(),
        2,
        "nonce 1 was acknowledged: its onion is gone"
    );
    assert_eq!(onions.remove(&2), Some(packet(2)));
    assert_eq!(onions.remove(&3), Some(packet(3)));
    let after_two = store.lock_onions(id, 2).await.unwrap();
    assert_eq!(after_two.into_keys().collect::<Vec<_>>(), vec![3]);
    assert!(store
        .lock_onions(B256::repeat_byte(9), 0)
        .await
        .unwrap()
        .is_empty());

    db.tamper("UPDATE lock_onions SET packet = x'00' WHERE nonce = 3")
        .await;
    let err = store.lock_onions(id, 0).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                source: DecodeError::Invalid("lock onion length"),
                ..
            }
        ),
        "{err:?}"
    );
    store.close().await;
}

/// The onion of a lock a hop waits to forward is stored, read back at start, and dropped in the
/// same transaction as what settles its lock: our release of it, or the forward record pairing
/// it with the lock we send on. A row of the wrong length is a typed error.
#[tokio::test]
async fn an_incoming_onion_stays_until_its_lock_is_forwarded_or_released() {
    let db = TempDb::new();
    let store = db.store().await;
    let mut pair = Pair::open(&store).await;
    let id = pair.alice.id();
    for side in [Side::A, Side::B] {
        let deposit = Event::DepositConfirmed {
            side,
            total: U256::from(100),
        };
        deposit.apply(&mut pair.alice).unwrap();
        pair.both(&store, deposit).await;
    }
    let packet = |byte: u8| Packet(Box::new([byte; PACKET_LEN]));
    let lock = |n: u8| Lock {
        expiration: NOW + 3_600,
        amount: U256::from(1),
        secret_hash: secret_hash(B256::repeat_byte(n)),
    };
    // Bob adds two locks; Alice waits to forward each and stores its onion.
    for n in 1..=2 {
        pair.bob_sends(&store, Change::AddLock(lock(n)), NOW).await;
        store
            .put_incoming_onion(id, lock(n).secret_hash, &packet(n))
            .await
            .unwrap();
    }
    let held = || async {
        let mut rows = store.incoming_onions().await.unwrap();
        rows.sort_by_key(|(_, hash, _)| *hash);
        rows
    };
    let mut expected: Vec<_> = (1..=2)
        .map(|n| (id, lock(n).secret_hash, packet(n)))
        .collect();
    expected.sort_by_key(|(_, hash, _)| *hash);
    assert_eq!(held().await, expected);

    // Lock 1 we release.
    let release = pair
        .alice
        .lock_release(Side::B, lock(1).secret_hash)
        .unwrap();
    store
        .put_release(Released::Incoming, &release, &[7; 65])
        .await
        .unwrap();
    let left: Vec<_> = held().await.into_iter().map(|(_, h, _)| h).collect();
    assert_eq!(left, vec![lock(2).secret_hash]);

    // Lock 2 we forward: the record is written with our lock, and the onion goes with it.
    let out = lock(2);
    let proof = pair.alice.send(&Change::AddLock(out), NOW).unwrap();
    let sent = Event::Sent {
        change: Change::AddLock(out),
        proof,
        now: NOW,
    };
    let forward = Forward {
        incoming_channel: id,
        incoming: lock(2),
        outgoing_channel: id,
        outgoing: out,
        state: ForwardState::Pending,
    };
    store
        .enqueue_sent(id, &sent, Some(&forward), None)
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();
    assert!(held().await.is_empty());

    // A row of the wrong length is refused with a typed error.
    store
        .put_incoming_onion(id, lock(3).secret_hash, &packet(3))
        .await
        .unwrap();
    db.tamper("UPDATE incoming_onions SET packet = x'0102'")
        .await;
    let err = store.incoming_onions().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                source: DecodeError::Invalid("onion length"),
                ..
            }
        ),
        "{err:?}"
    );
    store.close().await;
}
