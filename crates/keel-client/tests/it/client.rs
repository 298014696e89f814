//! The client API between two real clients over loopback TCP, each with its own SQLite store.
//! Deposits are reported the way the chain monitor reports them; the on-chain side is covered
//! by the end-to-end tests (tests/e2e).

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::{
    client::{ChannelInfo, ClientError, ClientEvent, Config, ManualClock, RejectCode},
    store::ChannelOpening,
    transport::Transport,
    Client,
};
use keel_core::{
    recover, secret_hash, sign_message, signing_hash, wire::Message, Address, Change, ChannelError,
    ChannelParams, Policy, Side, B256, U256,
};
use tokio::sync::broadcast;

const CHAIN_ID: u64 = 31337;
const NOW: u64 = 1_700_000_000;
const DEPOSIT: u64 = 1_000_000;

/// A directory for one test's stores, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keel-client-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opening(a: Address, b: Address, me: Side) -> ChannelOpening {
    ChannelOpening {
        params: ChannelParams {
            participant_a: a,
            participant_b: b,
            token: Address::ZERO,
            challenge_period: 86_400,
            salt: B256::ZERO,
        },
        chain_id: CHAIN_ID,
        factory: Address::repeat_byte(0xfa),
        implementation: Address::repeat_byte(0x1e),
        me,
        policy: Policy::default(),
    }
}

/// Two connected clients sharing one channel with `DEPOSIT` on each side.
struct Pair {
    dir: TempDir,
    clock: ManualClock,
    signers: [PrivateKeySigner; 2],
    a: Client,
    b: Client,
    b_addr: SocketAddr,
    id: B256,
}

impl Pair {
    fn config(&self, which: usize) -> Config {
        config(&self.dir, &self.signers[which], which, &self.clock)
    }

    async fn new() -> Self {
        let dir = TempDir::new();
        let clock = ManualClock::new(NOW);
        let signers = [PrivateKeySigner::random(), PrivateKeySigner::random()];
        let a = Client::start(config(&dir, &signers[0], 0, &clock))
            .await
            .unwrap();
        let b = Client::start(config(&dir, &signers[1], 1, &clock))
            .await
            .unwrap();
        let (addr_a, addr_b) = (signers[0].address(), signers[1].address());
        let info = a
            .add_channel(&opening(addr_a, addr_b, Side::A))
            .await
            .unwrap();
        b.add_channel(&opening(addr_a, addr_b, Side::B))
            .await
            .unwrap();
        for client in [&a, &b] {
            for side in [Side::A, Side::B] {
                client
                    .deposit_confirmed(info.id, side, U256::from(DEPOSIT))
                    .await
                    .unwrap();
            }
        }
        let b_addr = b.listen("127.0.0.1:0").await.unwrap();
        a.connect(b_addr, addr_b).await.unwrap();
        Self {
            dir,
            clock,
            signers,
            a,
            b,
            b_addr,
            id: info.id,
        }
    }

    async fn infos(&self) -> (ChannelInfo, ChannelInfo) {
        (
            self.a.channel(self.id).await.unwrap(),
            self.b.channel(self.id).await.unwrap(),
        )
    }

    /// Both sides hold the same balances and nonces.
    async fn assert_agree(&self) -> (U256, U256) {
        let (a, b) = self.infos().await;
        assert_eq!(a.balance, b.peer_balance);
        assert_eq!(a.peer_balance, b.balance);
        assert_eq!(a.sent_nonce, b.received_nonce);
        assert_eq!(a.received_nonce, b.sent_nonce);
        assert_eq!(a.outgoing_locks, b.incoming_locks);
        let held = a.deposits[0] + a.deposits[1] - a.withdrawn[0] - a.withdrawn[1];
        assert_eq!(
            a.balance + a.peer_balance + locked(&a),
            held,
            "funds are conserved"
        );
        (a.balance, b.balance)
    }
}

fn locked(info: &ChannelInfo) -> U256 {
    info.outgoing_locks
        .iter()
        .chain(&info.incoming_locks)
        .fold(U256::ZERO, |sum, l| sum + l.amount)
}

fn config(dir: &TempDir, signer: &PrivateKeySigner, which: usize, clock: &ManualClock) -> Config {
    let mut config = Config::new(signer.clone(), dir.0.join(format!("peer-{which}.db")));
    config.clock = std::sync::Arc::new(clock.clone());
    config.sync_timeout = Duration::from_secs(10);
    config.reply_timeout = Duration::from_secs(10);
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    // Snapshots every few events, so restarts here load from them.
    config.snapshot_every = 7;
    config
}

/// The next event matching `pick`, skipping others.
async fn next<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(found) = pick(events.recv().await.expect("event stream")) {
                return found;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_flow_both_ways_and_both_sides_agree() {
    let pair = Pair::new().await;
    let mut b_events = pair.b.subscribe();
    let (a, b, id) = (pair.a.clone(), pair.b.clone(), pair.id);
    let a_pays = tokio::spawn(async move {
        let payments: Vec<_> = (1..=200u64)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move { a.pay(id, U256::from(i)).await })
            })
            .collect();
        for p in payments {
            p.await.unwrap().unwrap();
        }
    });
    let b_pays = tokio::spawn(async move {
        for _ in 0..100 {
            b.pay(id, U256::from(3)).await.unwrap();
        }
    });
    a_pays.await.unwrap();
    b_pays.await.unwrap();

    let (a_balance, b_balance) = pair.assert_agree().await;
    let a_paid: u64 = (1..=200).sum();
    assert_eq!(a_balance, U256::from(DEPOSIT - a_paid + 300));
    assert_eq!(b_balance, U256::from(DEPOSIT + a_paid - 300));
    let (a, b) = pair.infos().await;
    assert_eq!((a.sent_nonce, b.sent_nonce), (200, 100));

    // Concurrent payments travel in batches; each is still reported once, in nonce order.
    let mut amounts = Vec::new();
    for expected in 1..=200u64 {
        let (amount, nonce) = next(&mut b_events, |e| match e {
            ClientEvent::PaymentReceived { amount, nonce, .. } => Some((amount, nonce)),
            _ => None,
        })
        .await;
        assert_eq!(nonce, expected);
        amounts.push(amount.to::<u64>());
    }
    amounts.sort_unstable();
    assert_eq!(amounts, (1..=200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overspending_is_refused_and_the_channel_stays_usable() {
    let pair = Pair::new().await;
    let err = pair
        .a
        .pay(pair.id, U256::from(DEPOSIT + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Channel(ChannelError::InsufficientCapacity { .. })
        ),
        "{err:?}"
    );
    let err = pair.a.pay(pair.id, U256::ZERO).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Channel(ChannelError::ZeroAmount)
    ));
    let err = pair
        .a
        .pay(B256::repeat_byte(9), U256::from(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnknownChannel(_)));
    pair.a.pay(pair.id, U256::from(DEPOSIT)).await.unwrap();
    let (a, b) = pair.assert_agree().await;
    assert_eq!((a, b), (U256::ZERO, U256::from(2 * DEPOSIT)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_locked_payment_is_claimed_with_its_secret() {
    let pair = Pair::new().await;
    let mut a_events = pair.a.subscribe();
    let mut b_events = pair.b.subscribe();
    let secret = B256::repeat_byte(0x5e);
    let hash = secret_hash(secret);
    pair.a
        .pay_locked(pair.id, U256::from(500), hash, NOW + 3_600)
        .await
        .unwrap();
    let lock = next(&mut b_events, |e| match e {
        ClientEvent::LockReceived { lock, .. } => Some(lock),
        _ => None,
    })
    .await;
    assert_eq!((lock.amount, lock.secret_hash), (U256::from(500), hash));
    let (a, _) = pair.assert_agree().await;
    assert_eq!(a, U256::from(DEPOSIT - 500), "the lock is reserved");

    // A wrong secret is refused locally; the right one makes A pay the lock out.
    let err = pair
        .b
        .claim_lock(pair.id, B256::repeat_byte(1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Channel(ChannelError::WrongSecret(h)) if h == keel_core::secret_hash(B256::repeat_byte(1))
    ));
    pair.b.claim_lock(pair.id, secret).await.unwrap();
    let (a, b) = pair.assert_agree().await;
    assert_eq!(
        (a, b),
        (U256::from(DEPOSIT - 500), U256::from(DEPOSIT + 500))
    );
    assert!(pair.infos().await.0.outgoing_locks.is_empty());
    let claimed = next(&mut a_events, |e| match e {
        ClientEvent::LockClaimed {
            incoming: false,
            secret: s,
            amount,
            ..
        } => Some((s, amount)),
        _ => None,
    })
    .await;
    assert_eq!(claimed, (secret, U256::from(500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_goes_back_to_its_sender() {
    let pair = Pair::new().await;
    let mut b_events = pair.b.subscribe();
    let hash = secret_hash(B256::repeat_byte(0x77));
    let expiration = NOW + 600;
    pair.a
        .pay_locked(pair.id, U256::from(250), hash, expiration)
        .await
        .unwrap();
    // Not expired yet: nothing to remove.
    assert_eq!(pair.a.remove_expired_locks(pair.id).await.unwrap(), 0);
    pair.clock.set(expiration + 1);
    assert_eq!(pair.a.remove_expired_locks(pair.id).await.unwrap(), 1);
    let expired = next(&mut b_events, |e| match e {
        ClientEvent::LockExpired { secret_hash, .. } => Some(secret_hash),
        _ => None,
    })
    .await;
    assert_eq!(expired, hash);
    let (a, b) = pair.assert_agree().await;
    assert_eq!((a, b), (U256::from(DEPOSIT), U256::from(DEPOSIT)));
    // A lock whose expiry is outside the policy window is refused before anything is sent.
    let err = pair
        .a
        .pay_locked(pair.id, U256::from(1), hash, pair.clock_now() + 10)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Channel(ChannelError::LockExpirationOutOfRange { .. })
    ));
}

impl Pair {
    fn clock_now(&self) -> u64 {
        keel_client::client::Clock::now(&self.clock)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawals_and_closes_come_back_signed_by_both() {
    let pair = Pair::new().await;
    pair.a.pay(pair.id, U256::from(100)).await.unwrap();
    let signed = pair
        .b
        .request_withdrawal(pair.id, U256::from(40))
        .await
        .unwrap();
    let b_info = pair.infos().await.1;
    let digest = signing_hash(&signed.withdrawal, CHAIN_ID, b_info.vault);
    assert_eq!(
        recover(&digest, &signed.signature_a).unwrap(),
        pair.signers[0].address()
    );
    assert_eq!(
        recover(&digest, &signed.signature_b).unwrap(),
        pair.signers[1].address()
    );
    assert_eq!(signed.withdrawal.totalWithdrawn, U256::from(40));
    assert_eq!(b_info.capacity, b_info.balance - U256::from(40), "reserved");
    // A second withdrawal while one is pending is refused.
    let err = pair
        .b
        .request_withdrawal(pair.id, U256::from(1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Channel(ChannelError::WithdrawalPending(_))
    ));
    // The withdrawal executes on chain; both sides learn it from the chain.
    for client in [&pair.a, &pair.b] {
        client
            .withdrawal_confirmed(pair.id, Side::B, U256::from(40))
            .await
            .unwrap();
    }
    let (a, b) = pair.assert_agree().await;
    assert_eq!(
        (a, b),
        (U256::from(DEPOSIT - 100), U256::from(DEPOSIT + 60))
    );

    let close = pair.a.request_close(pair.id).await.unwrap();
    assert_eq!(close.close.payoutA, U256::from(DEPOSIT - 100));
    assert_eq!(close.close.payoutB, U256::from(DEPOSIT + 60));
    assert_eq!(close.close.depositA, U256::from(DEPOSIT));
    assert_eq!(close.close.depositB, U256::from(DEPOSIT));
    assert_eq!(close.close.totalWithdrawn, U256::from(40));
    let digest = signing_hash(&close.close, CHAIN_ID, b_info.vault);
    assert_eq!(
        recover(&digest, &close.signature_a).unwrap(),
        pair.signers[0].address()
    );
    assert_eq!(
        recover(&digest, &close.signature_b).unwrap(),
        pair.signers[1].address()
    );
    // Both sides froze the channel.
    for client in [&pair.a, &pair.b] {
        let err = client.pay(pair.id, U256::from(1)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Channel(ChannelError::NotOpen)),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_resumes_and_missed_updates_are_resent() {
    let mut pair = Pair::new().await;
    for _ in 0..50 {
        pair.a.pay(pair.id, U256::from(1)).await.unwrap();
    }
    // B stops, and A sees it go.
    let mut events = pair.a.subscribe();
    pair.b.clone().shutdown().await;
    let b_address = pair.signers[1].address();
    next(&mut events, |e| {
        (e == ClientEvent::PeerDisconnected(b_address)).then_some(())
    })
    .await;
    // A's payments now wait for B to come back: each, polled once, goes as far as it can
    // without B (one that did not wait would fail at once with PeerOffline), and none is
    // applied meanwhile.
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let mut paying = Vec::new();
    for _ in 0..50 {
        let (a, id) = (pair.a.clone(), pair.id);
        let mut payment = Box::pin(async move { a.pay(id, U256::from(2)).await });
        assert!(payment.as_mut().poll(&mut context).is_pending());
        paying.push(tokio::spawn(payment));
    }
    assert_eq!(pair.a.channel(pair.id).await.unwrap().sent_nonce, 50);
    pair.b = Client::start(pair.config(1)).await.unwrap();
    // B comes back on the same port; A redials it and they resync.
    pair.b.listen(pair.b_addr).await.unwrap();
    for payment in paying {
        payment.await.unwrap().unwrap();
    }
    let (a, b) = pair.assert_agree().await;
    assert_eq!(
        (a, b),
        (U256::from(DEPOSIT - 150), U256::from(DEPOSIT + 150))
    );
    assert_eq!(pair.infos().await.0.sent_nonce, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_rejected_and_change_nothing() {
    let pair = Pair::new().await;
    pair.a.pay(pair.id, U256::from(10)).await.unwrap();
    let before = pair.infos().await.1;

    // Mallory authenticates as herself and sends B messages about A and B's channel.
    let mallory = PrivateKeySigner::random();
    let mut conn = crate::raw_peer(&mallory, pair.b_addr, pair.signers[1].address()).await;
    let _hello = conn.recv().await.unwrap();
    let proof = keel_core::BalanceProof {
        channelId: pair.id,
        nonce: 2,
        transferredAmount: U256::from(1_000),
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    let signature = sign_message(&mallory, &proof, CHAIN_ID, before.vault).unwrap();
    conn.send(&Message::Update {
        changes: vec![Change::Pay {
            amount: U256::from(990),
        }],
        proof: proof.clone(),
        signature,
    })
    .await
    .unwrap();
    assert_eq!(
        conn.recv().await.unwrap(),
        Message::Reject {
            channel_id: pair.id,
            code: RejectCode::NotYourChannel.to_u16()
        }
    );
    conn.send(&Message::Ack {
        channel_id: B256::repeat_byte(3),
        nonce: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        conn.recv().await.unwrap(),
        Message::Reject {
            channel_id: B256::repeat_byte(3),
            code: RejectCode::UnknownChannel.to_u16()
        }
    );
    assert_eq!(pair.infos().await.1, before, "nothing changed");
    pair.a.pay(pair.id, U256::from(5)).await.unwrap();
    pair.assert_agree().await;
}

/// A's side played by hand over a raw transport, against B's real client.
struct RawPeer {
    conn: keel_client::transport::Connection,
    signer: PrivateKeySigner,
    vault: Address,
    id: B256,
}

impl RawPeer {
    async fn update(
        &mut self,
        amount: u64,
        nonce: u64,
        transferred: u64,
        chain_id: u64,
    ) -> Message {
        self.batch(&[amount], nonce, transferred, chain_id).await
    }

    /// One update paying each of `amounts`, signed over the proof claiming `nonce` and
    /// `transferred` after them.
    async fn batch(
        &mut self,
        amounts: &[u64],
        nonce: u64,
        transferred: u64,
        chain_id: u64,
    ) -> Message {
        let proof = keel_core::BalanceProof {
            channelId: self.id,
            nonce,
            transferredAmount: U256::from(transferred),
            lockedAmount: U256::ZERO,
            locksRoot: B256::ZERO,
        };
        let signature = sign_message(&self.signer, &proof, chain_id, self.vault).unwrap();
        let changes = amounts
            .iter()
            .map(|&amount| Change::Pay {
                amount: U256::from(amount),
            })
            .collect();
        self.exchange(Message::Update {
            changes,
            proof,
            signature,
        })
        .await
    }

    async fn exchange(&mut self, msg: Message) -> Message {
        self.conn.send(&msg).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.conn.recv())
            .await
            .expect("an answer")
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_gets_typed_rejections_and_nothing_is_stored() {
    let dir = TempDir::new();
    let clock = ManualClock::new(NOW);
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let b = Client::start(config(&dir, &bob, 1, &clock)).await.unwrap();
    let info = b
        .add_channel(&opening(alice.address(), bob.address(), Side::B))
        .await
        .unwrap();
    for side in [Side::A, Side::B] {
        b.deposit_confirmed(info.id, side, U256::from(DEPOSIT))
            .await
            .unwrap();
    }
    let addr = b.listen("127.0.0.1:0").await.unwrap();
    let transport = Transport::new(alice.clone()).unwrap();
    let conn = transport.connect(addr, bob.address()).await.unwrap();
    let mut a = RawPeer {
        conn,
        signer: alice.clone(),
        vault: info.vault,
        id: info.id,
    };
    assert!(
        matches!(a.conn.recv().await.unwrap(), Message::Hello { address, .. } if address == bob.address())
    );
    a.conn
        .send(&Message::Hello {
            address: alice.address(),
        })
        .await
        .unwrap();
    let resync = a
        .exchange(Message::Resync {
            channel_id: info.id,
            sent_nonce: 0,
            received_nonce: 0,
        })
        .await;
    assert_eq!(
        resync,
        Message::Resync {
            channel_id: info.id,
            sent_nonce: 0,
            received_nonce: 0
        }
    );

    let ack = |nonce| Message::Ack {
        channel_id: info.id,
        nonce,
    };
    let reject = |code: RejectCode| Message::Reject {
        channel_id: info.id,
        code: code.to_u16(),
    };
    assert_eq!(a.update(10, 1, 10, CHAIN_ID).await, ack(1));
    // Replayed nonce, skipped nonce, amount that does not match the proof, overspending.
    assert_eq!(
        a.update(10, 1, 20, CHAIN_ID).await,
        reject(RejectCode::Refused)
    );
    assert_eq!(
        a.update(10, 3, 20, CHAIN_ID).await,
        reject(RejectCode::Refused)
    );
    assert_eq!(
        a.update(10, 2, 25, CHAIN_ID).await,
        reject(RejectCode::Refused)
    );
    assert_eq!(
        a.update(DEPOSIT, 2, DEPOSIT + 10, CHAIN_ID).await,
        reject(RejectCode::Refused)
    );
    // Signed for another chain (another EIP-712 domain), or by someone else.
    assert_eq!(
        a.update(10, 2, 20, 1).await,
        reject(RejectCode::BadSignature)
    );
    a.signer = PrivateKeySigner::random();
    assert_eq!(
        a.update(10, 2, 20, CHAIN_ID).await,
        reject(RejectCode::BadSignature)
    );
    a.signer = alice.clone();
    // A proof for a channel B does not have.
    a.id = B256::repeat_byte(0x42);
    assert_eq!(
        a.update(10, 2, 20, CHAIN_ID).await,
        Message::Reject {
            channel_id: a.id,
            code: RejectCode::UnknownChannel.to_u16()
        }
    );
    a.id = info.id;
    // An ack for a proof B never sent, and a withdrawal for B's funds.
    assert_eq!(a.exchange(ack(5)).await, reject(RejectCode::OutOfSync));
    let theft = keel_core::Withdrawal {
        channelId: info.id,
        participant: bob.address(),
        totalWithdrawn: U256::from(DEPOSIT),
        expiry: NOW + 600,
        target: Address::ZERO,
        targetSide: 0,
    };
    let signature = sign_message(&alice, &theft, CHAIN_ID, info.vault).unwrap();
    assert_eq!(
        a.exchange(Message::WithdrawalRequest {
            withdrawal: theft,
            signature
        })
        .await,
        reject(RejectCode::Refused)
    );

    // The channel still works.
    assert_eq!(a.update(10, 2, 20, CHAIN_ID).await, ack(2));
    // A batch whose middle payment does not lead to the signed proof is refused whole.
    assert_eq!(
        a.batch(&[1, 5, 3], 5, 26, CHAIN_ID).await,
        reject(RejectCode::Refused)
    );
    // A batch one signature covers: acknowledged with its last nonce, reported change by change.
    // (The event of nonce 2 may reach this subscription after its ack: passed over.)
    let mut events = b.subscribe();
    assert_eq!(a.batch(&[1, 2, 3], 5, 26, CHAIN_ID).await, ack(5));
    for (amount, nonce) in [(1u64, 3u64), (2, 4), (3, 5)] {
        let received = next(&mut events, |e| match e {
            ClientEvent::PaymentReceived { amount, nonce, .. } if nonce > 2 => {
                Some((amount, nonce))
            }
            _ => None,
        })
        .await;
        assert_eq!(received, (U256::from(amount), nonce));
    }
    // Only the valid updates were stored.
    let before = b.channel(info.id).await.unwrap();
    assert_eq!(
        (before.received_nonce, before.balance),
        (5, U256::from(DEPOSIT + 26))
    );
    b.shutdown().await;
    let b = Client::start(config(&dir, &bob, 1, &clock)).await.unwrap();
    assert_eq!(b.channel(info.id).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexecuted_withdrawals_and_closes_expire_and_free_the_channel() {
    let pair = Pair::new().await;
    pair.a
        .request_withdrawal(pair.id, U256::from(300))
        .await
        .unwrap();
    let close = pair.b.request_close(pair.id).await;
    assert!(close.is_err(), "no close while a withdrawal is pending");
    let (a, b) = pair.infos().await;
    assert_eq!(a.capacity, U256::from(DEPOSIT - 300));
    assert_eq!(a.withdrawing, [U256::from(300), U256::ZERO]);
    assert_eq!(b.withdrawing, a.withdrawing);
    let lifetime = Config::new(PrivateKeySigner::random(), "unused").signature_lifetime;
    pair.clock
        .advance(lifetime + keel_client::client::EXPIRY_GRACE + 1);
    // The maintenance task releases the reservation on both sides within a second or so.
    for client in [&pair.a, &pair.b] {
        tokio::time::timeout(Duration::from_secs(10), async {
            while client.channel(pair.id).await.unwrap().withdrawing != [U256::ZERO; 2] {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("reservation released");
    }

    pair.b.request_close(pair.id).await.unwrap();
    let err = pair.a.pay(pair.id, U256::from(1)).await.unwrap_err();
    assert!(matches!(err, ClientError::Channel(ChannelError::NotOpen)));
    pair.clock
        .advance(lifetime + keel_client::client::EXPIRY_GRACE + 1);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (a, b) = pair.infos().await;
            if !a.closing && !b.closing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("close expired on both sides");
    pair.a.pay(pair.id, U256::from(1)).await.unwrap();
    pair.assert_agree().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_naming_someone_else_ends_the_connection() {
    let pair = Pair::new().await;
    // Mallory authenticates as herself, then claims to be Alice in her Hello.
    let mallory = PrivateKeySigner::random();
    let transport = Transport::new(mallory.clone()).unwrap();
    let mut conn = transport
        .connect(pair.b_addr, pair.signers[1].address())
        .await
        .unwrap();
    conn.send(&Message::Hello {
        address: pair.signers[0].address(),
    })
    .await
    .unwrap();
    let _bobs_hello = conn.recv().await.unwrap();
    // Bob hangs up without answering anything else.
    let next = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .expect("bob hangs up");
    assert!(next.is_err(), "{next:?}");
    // The real Alice is unaffected.
    pair.a.pay(pair.id, U256::from(1)).await.unwrap();
    pair.assert_agree().await;
}

/// `connect` takes a host name as `listen` does. "localhost" may resolve to `::1` first, where
/// nobody listens: the next address is tried. The peer is still authenticated: the same name
/// with another expected address fails with the transport's typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_resolves_host_names() {
    let pair = Pair::new().await;
    let signer = PrivateKeySigner::random();
    let carol = Client::start(config(&pair.dir, &signer, 2, &pair.clock))
        .await
        .unwrap();
    let mut events = pair.b.subscribe();
    let by_name = format!("localhost:{}", pair.b_addr.port());
    carol
        .connect(by_name.as_str(), pair.b.address())
        .await
        .unwrap();
    next(&mut events, |e| {
        matches!(e, ClientEvent::PeerConnected(who) if who == signer.address()).then_some(())
    })
    .await;
    let wrong = carol
        .connect(("localhost", pair.b_addr.port()), Address::repeat_byte(1))
        .await;
    assert!(
        matches!(
            wrong,
            Err(ClientError::Transport(
                keel_client::transport::Error::UnexpectedPeer { .. }
            ))
        ),
        "{wrong:?}"
    );
    let unresolvable = carol
        .connect("no-such-host.invalid:9735", pair.b.address())
        .await;
    assert!(
        matches!(
            unresolvable,
            Err(ClientError::Transport(keel_client::transport::Error::Io(_)))
        ),
        "{unresolvable:?}"
    );
}

/// The next durable event that is a payment, as (seq, nonce, amount), within 10 s.
async fn next_payment(events: &mut keel_client::Events) -> (u64, u64, U256) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stored = events.next().await.expect("event log");
            if let ClientEvent::PaymentReceived { nonce, amount, .. } = stored.event {
                return (stored.seq, nonce, amount);
            }
        }
    })
    .await
    .expect("payment in time")
}

/// Pays `count` payments of `amount` from `from`, 64 in flight at a time.
async fn pay_many(from: &Client, id: B256, count: u64, amount: u64) {
    let mut paying: tokio::task::JoinSet<Result<(), ClientError>> = tokio::task::JoinSet::new();
    for i in 0..count {
        if i >= 64 {
            paying.join_next().await.unwrap().unwrap().unwrap();
        }
        let from = from.clone();
        paying.spawn(async move { from.pay(id, U256::from(amount)).await });
    }
    while let Some(paid) = paying.join_next().await {
        paid.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_lags_behind_the_broadcast_gets_every_event_from_the_log() {
    let pair = Pair::new().await;
    let mut live = pair.b.subscribe();
    let mut log = pair.b.events("app").await.unwrap();
    // More payments than the broadcast holds, while nobody reads.
    const PAYMENTS: u64 = 4_500;
    pay_many(&pair.a, pair.id, PAYMENTS, 1).await;
    // The broadcast dropped some…
    let lagged = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match live.recv().await {
                Err(broadcast::error::RecvError::Lagged(n)) => return n,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the broadcast lags");
    assert!(lagged > 0);
    // …the log has every one, once, in nonce order.
    let mut last_seq = 0;
    for expected in 1..=PAYMENTS {
        let (seq, nonce, amount) = next_payment(&mut log).await;
        assert_eq!((nonce, amount), (expected, U256::from(1)));
        assert!(seq > last_seq);
        last_seq = seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_from_its_cursor_and_gets_each_event_once() {
    let mut pair = Pair::new().await;
    pay_many(&pair.a, pair.id, 20, 2).await;
    let mut log = pair.b.events("app").await.unwrap();
    // Handles the first ten payments, reads five more without marking them.
    for expected in 1..=10 {
        let (seq, nonce, _) = next_payment(&mut log).await;
        assert_eq!(nonce, expected);
        log.handled(seq).await.unwrap();
    }
    for expected in 11..=15 {
        assert_eq!(next_payment(&mut log).await.1, expected);
    }
    // A second consumer with its own name starts from the beginning.
    let mut other = pair.b.events("audit").await.unwrap();
    assert_eq!(next_payment(&mut other).await.1, 1);
    drop((log, other));
    pair.b.clone().shutdown().await;
    pair.b = Client::start(pair.config(1)).await.unwrap();
    pair.b.listen(pair.b_addr).await.unwrap();
    pay_many(&pair.a, pair.id, 20, 2).await;

    // The restarted consumer gets exactly the payments it had not marked handled: 11 to 40.
    let mut log = pair.b.events("app").await.unwrap();
    for expected in 11..=40 {
        let (seq, nonce, amount) = next_payment(&mut log).await;
        assert_eq!((nonce, amount), (expected, U256::from(2)));
        log.handled(seq).await.unwrap();
    }
    // Everything stored by now was handed out: a reader from its cursor finds nothing left
    // that is not newer than the last payment.
    let position = log.position();
    let mut again = pair.b.events("app").await.unwrap();
    assert_eq!(again.position(), position);
    pair.a.pay(pair.id, U256::from(9)).await.unwrap();
    let (seq, nonce, _) = next_payment(&mut again).await;
    assert_eq!(nonce, 41);
    assert!(seq > position);
}

#[test]
fn the_node_key_loads_from_a_keystore_file_cast_wrote() {
    // Written by `cast wallet new tests/fixtures --unsafe-password keel-test-password`.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cast-keystore.json"
    );
    let expected: Address = "0x0032DAe4EE60a4aa15603d46E32E57D7Fe448194"
        .parse()
        .unwrap();
    let signer = keel_client::client::load_keystore(path, "keel-test-password").unwrap();
    assert_eq!(signer.address(), expected);
    let config = Config::from_keystore(path, "keel-test-password", "unused.db").unwrap();
    assert_eq!(config.signer.address(), expected);
    // The signer type is the client's own re-export.
    let _: &keel_client::PrivateKeySigner = &config.signer;

    match keel_client::client::load_keystore(path, "wrong") {
        Err(ClientError::Keystore { path: p, .. }) => assert_eq!(p, std::path::Path::new(path)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        keel_client::client::load_keystore("no/such/file.json", "x"),
        Err(ClientError::Keystore { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_locks_or_an_unconfirmed_withdrawal_pending_says_so() {
    let pair = Pair::new().await;
    let secret = B256::repeat_byte(3);
    pair.a
        .pay_locked(pair.id, U256::from(5), secret_hash(secret), NOW + 3_600)
        .await
        .unwrap();
    match pair.a.request_close(pair.id).await {
        Err(ClientError::LocksPending {
            channel_id,
            pending: 1,
        }) => assert_eq!(channel_id, pair.id),
        other => panic!("{other:?}"),
    }
    pair.b.claim_lock(pair.id, secret).await.unwrap();
    wait_until_no_locks(&pair).await;
    // Co-signed, never executed (no chain here): the close would pay the wrong amounts.
    pair.a
        .request_withdrawal(pair.id, U256::from(10))
        .await
        .unwrap();
    assert!(matches!(
        pair.b.request_close(pair.id).await,
        Err(ClientError::WithdrawalUnconfirmed(id)) if id == pair.id
    ));
}

/// Waits until neither side holds a lock (a claim completes on the sender's side last).
async fn wait_until_no_locks(pair: &Pair) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (a, b) = pair.infos().await;
            if locked(&a).is_zero() && locked(&b).is_zero() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the lock settles in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_payments_in_flight_says_so() {
    let dir = TempDir::new();
    let clock = ManualClock::new(NOW);
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let b = Client::start(config(&dir, &bob, 1, &clock)).await.unwrap();
    let info = b
        .add_channel(&opening(alice.address(), bob.address(), Side::B))
        .await
        .unwrap();
    for side in [Side::A, Side::B] {
        b.deposit_confirmed(info.id, side, U256::from(DEPOSIT))
            .await
            .unwrap();
    }
    let addr = b.listen("127.0.0.1:0").await.unwrap();
    // Alice is a raw peer that resynchronises and then never acknowledges anything.
    let transport = Transport::new(alice.clone()).unwrap();
    let mut conn = transport.connect(addr, bob.address()).await.unwrap();
    conn.send(&Message::Hello {
        address: alice.address(),
    })
    .await
    .unwrap();
    conn.send(&Message::Resync {
        channel_id: info.id,
        sent_nonce: 0,
        received_nonce: 0,
    })
    .await
    .unwrap();
    let (payer, id) = (b.clone(), info.id);
    let paying = tokio::spawn(async move { payer.pay(id, U256::from(7)).await });
    // Bob's update reaches Alice: it is in flight.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Message::Update { .. } = conn.recv().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("bob's update arrives");
    match b.request_close(info.id).await {
        Err(ClientError::PaymentsInFlight {
            channel_id,
            in_flight: 1,
        }) => assert_eq!(channel_id, info.id),
        other => panic!("{other:?}"),
    }
    paying.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_policy_set_for_a_channel_survives_a_restart() {
    use keel_client::client::ForwardPolicy;
    use keel_core::forwarding::{FeePolicy, Rate};
    use keel_routing::Asset;
    let mut pair = Pair::new().await;
    let default = pair.a.forward_policy(pair.id);
    let elsewhere = Asset {
        chain_id: 77,
        token: Address::repeat_byte(5),
    };
    let set = ForwardPolicy::new(
        FeePolicy {
            base: U256::from(1_234),
            proportional_millionths: 2_500,
        },
        default.expiry_delta + 60,
    )
    .with_rate(elsewhere, Rate::new(U256::from(3), U256::from(2)).unwrap());
    assert_ne!(default, set);
    pair.a
        .set_forward_policy(pair.id, set.clone())
        .await
        .unwrap();
    assert_eq!(pair.a.forward_policy(pair.id), set);
    // A policy that could not be announced changes nothing.
    let twice = ForwardPolicy {
        rates: vec![(elsewhere, Rate::PAR), (elsewhere, Rate::PAR)],
        ..set.clone()
    };
    assert!(matches!(
        pair.a.set_forward_policy(pair.id, twice).await,
        Err(ClientError::BadPolicy(_))
    ));
    assert_eq!(pair.a.forward_policy(pair.id), set);
    // Another channel keeps the default.
    assert_eq!(pair.a.forward_policy(B256::repeat_byte(9)), default);
    pair.a.clone().shutdown().await;
    pair.a = Client::start(pair.config(0)).await.unwrap();
    assert_eq!(pair.a.forward_policy(pair.id), set);
    assert_eq!(pair.a.forward_policy(B256::repeat_byte(9)), default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_restarted_after_its_invoice_was_paid_reveals_again_and_is_paid_out() {
    use keel_client::store::{Invoice, Store};
    let mut pair = Pair::new().await;
    let secret = B256::repeat_byte(0x5e);
    let hash = secret_hash(secret);
    let amount = U256::from(700);
    pair.a
        .pay_locked(pair.id, amount, hash, NOW + 3_600)
        .await
        .unwrap();
    let before = pair.infos().await.1;
    assert_eq!(before.incoming_locks.len(), 1);
    // B stops with the lock pending; its store says the invoice the lock pays was paid (the
    // mark a payee stores before revealing), as if it died right after revealing.
    pair.b.clone().shutdown().await;
    let store = Store::open(pair.dir.0.join("peer-1.db")).await.unwrap();
    let invoice = Invoice {
        secret,
        amount,
        expiry: NOW + 3_600,
        paid: true,
        hold: false,
    };
    store.put_invoice(hash, &invoice).await.unwrap();
    store.close().await;
    // Restarted, B reveals the secret again on its own and A pays the lock out.
    pair.b = Client::start(pair.config(1)).await.unwrap();
    pair.b.listen(pair.b_addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = pair.infos().await;
        if b.incoming_locks.is_empty() && a.outgoing_locks.is_empty() {
            assert_eq!(b.balance, before.balance + amount);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the paid invoice's lock is still pending: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
