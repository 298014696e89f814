//! The tower client against a stand-in tower (an axum server speaking the tower's API, whose
//! behaviour each test chooses): a burst of payments costs the tower far fewer appointments
//! than payments; payments do not wait for a tower that never answers; a wrong receipt is
//! reported and not stored; a pending incoming lock reaches the tower with the proof, and its
//! secret, learnt later, in an appointment of the same nonce. The real tower, on a real chain, is in tests/e2e (tower_client.rs).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use axum::{extract::State, http::StatusCode, routing::get, routing::post, Json, Router};
use keel_client::{
    client::{ClientEvent, Config, ManualClock, TowerHealth},
    store::ChannelOpening,
    Client, TowerConfig,
};
use keel_core::{Address, ChannelDomain, ChannelParams, Policy, Side, TowerReceipt, B256, U256};
use keel_tower_api::{
    AppointmentRequest, BatchItem, BatchJson, BatchRequest, ErrorJson, HealthJson, LockJson,
    ReceiptJson, RegistrationJson, RegistrationRequest,
};

const CHAIN_ID: u64 = 31337;
const FACTORY: Address = Address::repeat_byte(0xfa);
const IMPLEMENTATION: Address = Address::repeat_byte(0x1e);
const NOW: u64 = 1_700_000_000;
const DEPOSIT: u64 = 1_000_000_000;

/// How the stand-in tower behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers as the real tower does, after `delay` per request.
    Honest { delay: Duration },
    /// Never answers anything.
    Silent,
    /// Signs receipts with a key other than its own.
    Forger,
}

struct FakeTower {
    key: PrivateKeySigner,
    mode: Mode,
    /// Batch requests answered.
    requests: AtomicU64,
    /// Appointments in them.
    appointments: AtomicU64,
    /// Per channel, the nonce held.
    held: Mutex<HashMap<B256, u64>>,
    /// Per channel, the appointment held.
    last: Mutex<HashMap<B256, AppointmentRequest>>,
}

impl FakeTower {
    async fn start(mode: Mode) -> (Arc<Self>, SocketAddr) {
        let tower = Arc::new(Self {
            key: PrivateKeySigner::random(),
            mode,
            requests: AtomicU64::new(0),
            appointments: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/v1/health", get(health))
            .route("/v1/customers", post(register))
            .route("/v1/appointments/batch", post(batch))
            .with_state(Arc::clone(&tower));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (tower, at)
    }

    async fn behave(&self) {
        match self.mode {
            Mode::Silent => std::future::pending().await,
            Mode::Honest { delay } => tokio::time::sleep(delay).await,
            Mode::Forger => {}
        }
    }
}

async fn health(State(t): State<Arc<FakeTower>>) -> Json<HealthJson> {
    t.behave().await;
    Json(HealthJson {
        status: "ok".into(),
        tower: t.key.address(),
        chain_id: CHAIN_ID,
        checkpoint: None,
        head: None,
        last_error: None,
        appointments: 0,
        channels: 0,
        customers: 0,
    })
}

async fn register(
    State(t): State<Arc<FakeTower>>,
    Json(req): Json<RegistrationRequest>,
) -> (StatusCode, Json<RegistrationJson>) {
    t.behave().await;
    (
        StatusCode::CREATED,
        Json(RegistrationJson {
            customer: req.customer,
            quota: 10,
        }),
    )
}

async fn batch(State(t): State<Arc<FakeTower>>, Json(req): Json<BatchRequest>) -> Json<BatchJson> {
    t.behave().await;
    t.requests.fetch_add(1, Ordering::Relaxed);
    let mut results = Vec::new();
    for a in req.appointments {
        t.appointments.fetch_add(1, Ordering::Relaxed);
        let params: ChannelParams = a.channel.into();
        let channel_id = keel_core::channel_id(CHAIN_ID, FACTORY, &params);
        let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, channel_id, params.token);
        let mut held = t.held.lock().unwrap();
        let nonce = held.entry(channel_id).or_default();
        let mut last = t.last.lock().unwrap();
        // As the real tower: the same nonce only to add secrets.
        let adds = a.proof.nonce == *nonce
            && last
                .get(&channel_id)
                .is_some_and(|l| l.secrets.len() < a.secrets.len());
        if a.proof.nonce <= *nonce && !adds {
            results.push(BatchItem::Error(ErrorJson {
                error: "stale_nonce".into(),
                message: "held".into(),
            }));
            continue;
        }
        *nonce = a.proof.nonce;
        last.insert(channel_id, a.clone());
        let receipt = TowerReceipt {
            tower: t.key.address(),
            customer: a.customer,
            channelId: channel_id,
            nonce: a.proof.nonce,
            acceptedAt: NOW,
            watchUntil: NOW + 30 * 86_400,
        };
        let signer = match t.mode {
            Mode::Forger => PrivateKeySigner::random(),
            _ => t.key.clone(),
        };
        let digest = ChannelDomain::new(CHAIN_ID, vault).signing_hash(&receipt);
        let signature = keel_core::sign_hash(&signer, &digest).unwrap();
        results.push(BatchItem::Receipt(ReceiptJson {
            tower: receipt.tower,
            customer: receipt.customer,
            channel_id,
            nonce: receipt.nonce,
            accepted_at: receipt.acceptedAt,
            watch_until: receipt.watchUntil,
            signature: signature.to_vec().into(),
            batch_path: None,
        }));
    }
    Json(BatchJson { results })
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
        factory: FACTORY,
        implementation: IMPLEMENTATION,
        me,
        policy: Policy::default(),
    }
}

/// Alice pays Bob; Bob's client keeps the tower at `tower` informed.
struct Customers {
    dir: std::path::PathBuf,
    alice: Client,
    bob: Client,
    id: B256,
}

impl Drop for Customers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Customers {
    async fn start(name: &str, tower: &FakeTower, at: SocketAddr, timeout: Duration) -> Self {
        let dir =
            std::env::temp_dir().join(format!("keel-tower-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = Arc::new(ManualClock::new(NOW));
        let config = |signer: &PrivateKeySigner, file: &str| {
            let mut c = Config::new(signer.clone(), dir.join(file));
            c.clock = clock.clone();
            c
        };
        let (a, b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let alice = Client::start(config(&a, "alice.db")).await.unwrap();
        let mut bobs = config(&b, "bob.db");
        let mut towers = TowerConfig::new(format!("http://{at}"), tower.key.address());
        towers.timeout = timeout;
        towers.retry_delay = Duration::from_millis(20);
        towers.max_retry_delay = Duration::from_millis(100);
        bobs.towers = vec![towers];
        let bob = Client::start(bobs).await.unwrap();
        let id = alice
            .add_channel(&opening(a.address(), b.address(), Side::A))
            .await
            .unwrap()
            .id;
        bob.add_channel(&opening(a.address(), b.address(), Side::B))
            .await
            .unwrap();
        for client in [&alice, &bob] {
            client
                .deposit_confirmed(id, Side::A, U256::from(DEPOSIT))
                .await
                .unwrap();
        }
        let bob_at = bob.listen("127.0.0.1:0").await.unwrap();
        alice.connect(bob_at, b.address()).await.unwrap();
        Self {
            dir,
            alice,
            bob,
            id,
        }
    }

    /// Alice pays Bob `count` payments of 1, 64 in flight at a time.
    async fn pay_many(&self, count: u64) {
        let mut paying: tokio::task::JoinSet<Result<(), keel_client::ClientError>> =
            tokio::task::JoinSet::new();
        for i in 0..count {
            if i >= 64 {
                paying.join_next().await.unwrap().unwrap().unwrap();
            }
            let (alice, id) = (self.alice.clone(), self.id);
            paying.spawn(async move { alice.pay(id, U256::from(1)).await });
        }
        while let Some(paid) = paying.join_next().await {
            paid.unwrap().unwrap();
        }
    }

    fn health(&self) -> TowerHealth {
        self.bob.tower_health().pop().expect("one tower")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_payments_costs_the_tower_far_fewer_appointments_than_payments() {
    // A tower taking 10 ms per request, as over a network.
    let (tower, at) = FakeTower::start(Mode::Honest {
        delay: Duration::from_millis(10),
    })
    .await;
    let c = Customers::start("burst", &tower, at, Duration::from_secs(10)).await;
    const PAYMENTS: u64 = 3_000;
    c.pay_many(PAYMENTS).await;

    // The newest proof reaches the tower and its receipt is stored…
    let stored = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let stored = c
                .bob
                .tower_receipt(tower.key.address(), c.id)
                .await
                .unwrap();
            if stored.as_ref().is_some_and(|s| s.receipt.nonce == PAYMENTS) {
                return stored.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the newest proof reaches the tower");
    assert_eq!(stored.receipt.customer, c.bob.address());
    assert_eq!(tower.held.lock().unwrap()[&c.id], PAYMENTS);
    // …after far fewer appointments than payments: only the newest proof per channel goes.
    let sent = tower.appointments.load(Ordering::Relaxed);
    assert!(
        sent * 10 <= PAYMENTS,
        "{sent} appointments for {PAYMENTS} payments"
    );
    let health = c.health();
    assert!(health.healthy && health.registered, "{health:?}");
    assert_eq!(health.appointments, sent);
    assert_eq!(health.requests, tower.requests.load(Ordering::Relaxed));
    assert_eq!(health.pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_do_not_wait_for_a_tower_that_never_answers() {
    let (tower, at) = FakeTower::start(Mode::Silent).await;
    // Its requests would hang for an hour: the payments below finish only if none waits.
    let c = Customers::start("silent", &tower, at, Duration::from_secs(3_600)).await;
    const PAYMENTS: u64 = 1_000;
    c.pay_many(PAYMENTS).await;
    assert_eq!(c.bob.channel(c.id).await.unwrap().received_nonce, PAYMENTS);
    // What waits for the tower is one marked channel, not a queue of proofs.
    let health = c.health();
    assert!(!health.registered, "{health:?}");
    assert_eq!((health.requests, health.appointments), (0, 0));
    assert_eq!(health.pending, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_the_tower_did_not_sign_is_reported_and_not_stored() {
    let (tower, at) = FakeTower::start(Mode::Forger).await;
    let c = Customers::start("forger", &tower, at, Duration::from_secs(10)).await;
    let mut events = c.bob.subscribe();
    c.pay_many(5).await;
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ClientEvent::TowerTrouble { tower: t, reason }) = events.recv().await {
                assert_eq!(t, tower.key.address());
                return reason;
            }
        }
    })
    .await
    .expect("the bad receipt is reported");
    assert!(reason.contains("bad receipt"), "{reason}");
    assert_eq!(
        c.bob
            .tower_receipt(tower.key.address(), c.id)
            .await
            .unwrap(),
        None
    );
    let health = c.health();
    assert!(!health.healthy && health.receipts == 0, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_lock_and_its_secret_learnt_later_reach_the_tower() {
    let (tower, at) = FakeTower::start(Mode::Honest {
        delay: Duration::ZERO,
    })
    .await;
    let c = Customers::start("locks", &tower, at, Duration::from_secs(10)).await;
    let held = |nonce: u64, secrets: usize| {
        let tower = Arc::clone(&tower);
        let id = c.id;
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let last = tower.last.lock().unwrap().get(&id).cloned();
                    if let Some(a) =
                        last.filter(|a| a.proof.nonce == nonce && a.secrets.len() == secrets)
                    {
                        return a;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the tower never held nonce {nonce} with {secrets} secrets"))
        }
    };
    c.pay_many(2).await;
    let secret = B256::repeat_byte(0x5e);
    let lock = c
        .alice
        .pay_locked(
            c.id,
            U256::from(500),
            keel_core::secret_hash(secret),
            NOW + 3_600,
        )
        .await
        .unwrap();
    // The proof with the lock reaches the tower with the lock behind its root, no secret yet.
    let first = held(3, 0).await;
    assert_eq!(first.locks, vec![LockJson::from(&lock)]);
    assert_eq!(first.proof.locks_root, keel_core::locks_root(&[lock]));
    let appointments = tower.appointments.load(Ordering::Relaxed);

    // Alice goes away before Bob claims, so the lock stays pending; Bob's client hands the
    // secret to the tower in an appointment of the same proof.
    c.alice.clone().shutdown().await;
    let bob = c.bob.clone();
    let claiming = tokio::spawn(async move { bob.claim_lock(c.id, secret).await });
    let second = held(3, 1).await;
    assert_eq!(second.secrets, vec![secret]);
    assert_eq!((second.locks, second.proof), (first.locks, first.proof));
    let receipt = c
        .bob
        .tower_receipt(tower.key.address(), c.id)
        .await
        .unwrap();
    assert_eq!(receipt.map(|r| r.receipt.nonce), Some(3));
    // Acknowledged: not sent again while nothing changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tower.appointments.load(Ordering::Relaxed), appointments + 1);
    claiming.abort();
}
