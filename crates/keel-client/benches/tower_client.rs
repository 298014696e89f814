//! What a watchtower costs the payments: the one-way closed-loop payment rate of
//! `benches/payments.rs` (two clients in one process over loopback TCP, SQLite stores, 24
//! payments in flight), without a tower and with one configured on the payee, whose tower
//! client sends appointments to a stand-in tower over loopback HTTP. The stand-in answers as
//! the tower does (a signed receipt per appointment) but checks nothing; it runs in the same
//! process, so its signing counts against the payments too. Measured: the client's side
//! (marking channels, signing authorisations, HTTP, checking and storing receipts), with the
//! tower client sending as soon as the last request was answered and with its default 100 ms
//! pause between requests. Runs alternate, three of each, on fresh pairs. Run:
//! `cargo bench -p keel-client --bench tower_client`. Results go to docs/benchmarks.md.
#![forbid(unsafe_code)]
// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use axum::{extract::State, http::StatusCode, routing::get, routing::post, Json, Router};
use keel_client::{store::ChannelOpening, Client, Config, TowerConfig};
use keel_core::{
    channel::Policy, Address, ChannelDomain, ChannelParams, Side, TowerReceipt, B256, U256,
};
use keel_tower_api::{
    BatchItem, BatchJson, BatchRequest, HealthJson, ReceiptJson, RegistrationJson,
    RegistrationRequest,
};

const CHAIN_ID: u64 = 31337;
const FACTORY: Address = Address::repeat_byte(0xfa);
const IMPLEMENTATION: Address = Address::repeat_byte(0x1e);
const PAYMENTS: usize = 20_000;
const WARM_UP: usize = 2_000;
const IN_FLIGHT: usize = 24;
const RUNS: usize = 3;

/// A tower that signs a receipt for every appointment at once.
struct StandIn {
    key: PrivateKeySigner,
    appointments: AtomicU64,
}

async fn health(State(t): State<Arc<StandIn>>) -> Json<HealthJson> {
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

async fn register(Json(req): Json<RegistrationRequest>) -> (StatusCode, Json<RegistrationJson>) {
    let customer = req.customer;
    (
        StatusCode::CREATED,
        Json(RegistrationJson {
            customer,
            quota: 10,
        }),
    )
}

async fn batch(State(t): State<Arc<StandIn>>, Json(req): Json<BatchRequest>) -> Json<BatchJson> {
    let results = req
        .appointments
        .into_iter()
        .map(|a| {
            t.appointments.fetch_add(1, Ordering::Relaxed);
            let params: ChannelParams = a.channel.into();
            let channel_id = keel_core::channel_id(CHAIN_ID, FACTORY, &params);
            let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, channel_id, params.token);
            let receipt = TowerReceipt {
                tower: t.key.address(),
                customer: a.customer,
                channelId: channel_id,
                nonce: a.proof.nonce,
                acceptedAt: 1,
                watchUntil: u64::MAX / 2,
            };
            let digest = ChannelDomain::new(CHAIN_ID, vault).signing_hash(&receipt);
            let signature = keel_core::sign_hash(&t.key, &digest).expect("sign");
            BatchItem::Receipt(ReceiptJson {
                tower: receipt.tower,
                customer: receipt.customer,
                channel_id,
                nonce: receipt.nonce,
                accepted_at: receipt.acceptedAt,
                watch_until: receipt.watchUntil,
                signature: signature.to_vec().into(),
                batch_path: None,
            })
        })
        .collect();
    Json(BatchJson { results })
}

async fn stand_in() -> (Arc<StandIn>, String) {
    let tower = Arc::new(StandIn {
        key: PrivateKeySigner::random(),
        appointments: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/customers", post(register))
        .route("/v1/appointments/batch", post(batch))
        .with_state(Arc::clone(&tower));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (tower, url)
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keel-bench-tower-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A pays B; B's client keeps `tower` informed if given.
async fn pair(dir: &Path, tower: Option<TowerConfig>) -> (Client, Client, B256) {
    let (signer_a, signer_b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let opening = |me| ChannelOpening {
        params: ChannelParams {
            participant_a: signer_a.address(),
            participant_b: signer_b.address(),
            token: Address::ZERO,
            challenge_period: 86_400,
            salt: B256::ZERO,
        },
        chain_id: CHAIN_ID,
        factory: FACTORY,
        implementation: IMPLEMENTATION,
        me,
        policy: Policy::default(),
    };
    let a = Client::start(Config::new(signer_a.clone(), dir.join("a.db")))
        .await
        .expect("client A");
    let mut config_b = Config::new(signer_b.clone(), dir.join("b.db"));
    config_b.towers = tower.into_iter().collect();
    let b = Client::start(config_b).await.expect("client B");
    let id = a.add_channel(&opening(Side::A)).await.expect("channel").id;
    b.add_channel(&opening(Side::B)).await.expect("channel");
    let deposit = U256::from(10u64).pow(U256::from(24));
    for client in [&a, &b] {
        client
            .deposit_confirmed(id, Side::A, deposit)
            .await
            .expect("deposit");
    }
    let addr = b.listen("127.0.0.1:0").await.expect("listen");
    a.connect(addr, signer_b.address()).await.expect("connect");
    (a, b, id)
}

/// `payments` payments of 1 wei from `client`, `IN_FLIGHT` payer tasks in closed loop.
async fn pay(client: &Client, id: B256, payments: usize) {
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let client = client.clone();
            let count = payments / IN_FLIGHT + usize::from(i < payments % IN_FLIGHT);
            tokio::spawn(async move {
                for _ in 0..count {
                    client.pay(id, U256::from(1)).await.expect("payment");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("payer");
    }
}

/// One measured run, with a tower paced by `min_interval` if given: payments per second, and
/// the appointments the tower got for them.
async fn run(min_interval: Option<Duration>) -> (f64, Option<u64>) {
    let dir = temp_dir();
    let tower = match min_interval {
        Some(_) => Some(stand_in().await),
        None => None,
    };
    let config = tower
        .as_ref()
        .zip(min_interval)
        .map(|((t, url), pause)| TowerConfig {
            min_interval: pause,
            ..TowerConfig::new(url.clone(), t.key.address())
        });
    let (a, b, id) = pair(&dir, config).await;
    pay(&a, id, WARM_UP).await;
    let before = tower
        .as_ref()
        .map(|(t, _)| t.appointments.load(Ordering::Relaxed));
    let start = Instant::now();
    pay(&a, id, PAYMENTS).await;
    let rate = PAYMENTS as f64 / start.elapsed().as_secs_f64();
    let mut sent = None;
    if let (Some((t, _)), Some(before)) = (&tower, before) {
        // Until the newest proof is acknowledged, so the count covers the whole run.
        let newest = (WARM_UP + PAYMENTS) as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stored = b.tower_receipt(t.key.address(), id).await.expect("store");
            if stored.is_some_and(|s| s.receipt.nonce == newest) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tower never got the newest proof"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent = Some(t.appointments.load(Ordering::Relaxed) - before);
    }
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    (rate, sent)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| run | no tower (payments/s) | tower, no pause (payments/s; appointments for \
         {PAYMENTS} payments) | tower, 100 ms pause, the default (payments/s; appointments) |"
    );
    println!("|---:|---:|---:|---:|");
    runtime.block_on(async {
        for i in 1..=RUNS {
            let (without, _) = run(None).await;
            let (eager, eager_sent) = run(Some(Duration::ZERO)).await;
            let (paced, paced_sent) = run(Some(Duration::from_millis(100))).await;
            println!(
                "| {i} | {without:.0} | {eager:.0} ({}) | {paced:.0} ({}) |",
                eager_sent.unwrap_or_default(),
                paced_sent.unwrap_or_default()
            );
        }
    });
}
