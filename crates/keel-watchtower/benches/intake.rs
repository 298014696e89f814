//! Intake throughput with full signature checks: appointments per second through
//! `POST /v1/appointments` (one per request, one after another) and through
//! `POST /v1/appointments/batch` (512 per request, two kept in flight), over SQLite and, when
//! a server is named, PostgreSQL; and the bytes stored per channel.
//!
//! One sender pays many customers, each with 1,000 channels (the daemon's default quota). In
//! process (the axum router without a socket), rate limits off, the chain lookup answered
//! from memory (a real tower asks its RPC node once per appointment; that call is not timed).
//! Run: `script/postgres.sh cargo bench -p keel-watchtower --bench intake` (without the script,
//! SQLite only). `KEEL_BENCH_APPOINTMENTS` sets the batch run's size (default 20,000). Results go
//! to docs/benchmarks.md by hand.
//!
//! Then the resident memory a watched channel costs the running tower: what the chain
//! follower (keel-chain's `Monitor`, which the tower tells about every channel it holds) keeps
//! per vault, measured as the growth of this process's resident set while
//! `KEEL_BENCH_WATCHED` (default 1,000,000) vaults are watched. The follower's RPC node is a
//! closed port, so nothing is scanned; the rest of the tower's memory does not grow with the
//! channels (the store is on disk; SQLite's page cache is bounded).

// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use axum::{
    body::{to_bytes, Body},
    http::{header, Method, Request, StatusCode},
    Router,
};
use keel_chain::{ChainConfig, Deployment, Monitor};
use keel_core::{
    Address, BalanceProof, ChannelDomain, ChannelParams, TowerAuthorisation, TowerRegistration,
    B256, U256,
};
use keel_watchtower::{
    api::{
        self, ApiState, AppointmentRequest, BatchItem, BatchJson, ChannelJson, ProofJson,
        RegistrationRequest,
    },
    ChannelLookup, Intake, IntakeConfig, Limits, PostgresStore, SqliteStore, Store, VaultStatus,
};
use tower::ServiceExt;

const CHAIN_ID: u64 = 31337;
const FACTORY: Address = Address::repeat_byte(0xfa);
const IMPLEMENTATION: Address = Address::repeat_byte(0x1e);
const NOW: u64 = 1_800_000_000;
const BATCH: usize = 512;
/// Batch requests kept in flight (`KEEL_BENCH_CONCURRENT` changes it).
const CONCURRENT_BATCHES: usize = 2;

fn concurrent_batches() -> usize {
    std::env::var("KEEL_BENCH_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONCURRENT_BATCHES)
}
const SINGLES: usize = 1_000;
const CHANNELS_PER_CUSTOMER: u64 = 1_000;

/// Every vault is open.
struct Open;

impl ChannelLookup for Open {
    async fn status(&self, _vault: Address) -> Result<VaultStatus, String> {
        Ok(VaultStatus::Open)
    }
}

struct Keys {
    alice: PrivateKeySigner,
    /// The customers, each with [`CHANNELS_PER_CUSTOMER`] channels (the daemon's default quota).
    customers: Vec<PrivateKeySigner>,
    tower: PrivateKeySigner,
}

/// Alice's proof to Bob in the channel salted `salt`, signed by her and authorised by him.
fn appointment(k: &Keys, salt: u64) -> AppointmentRequest {
    let bob = &k.customers[usize::try_from(salt / CHANNELS_PER_CUSTOMER).unwrap()];
    let params = ChannelParams {
        participant_a: k.alice.address(),
        participant_b: bob.address(),
        token: Address::ZERO,
        challenge_period: 3_600,
        salt: B256::from(U256::from(salt)),
    };
    let channel_id = keel_core::channel_id(CHAIN_ID, FACTORY, &params);
    let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, channel_id, params.token);
    let proof = BalanceProof {
        channelId: channel_id,
        nonce: 1,
        transferredAmount: U256::from(1_000),
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    let domain = ChannelDomain::new(CHAIN_ID, vault);
    let sender = keel_core::sign_hash(&k.alice, &domain.signing_hash(&proof)).unwrap();
    let auth = TowerAuthorisation {
        balanceProof: proof.clone(),
    };
    let authorisation = keel_core::sign_hash(bob, &domain.signing_hash(&auth)).unwrap();
    AppointmentRequest {
        chain_id: CHAIN_ID,
        channel: ChannelJson {
            participant_a: params.participant_a,
            participant_b: params.participant_b,
            token: params.token,
            challenge_period: params.challenge_period,
            salt: params.salt,
        },
        customer: bob.address(),
        proof: ProofJson {
            nonce: 1,
            transferred_amount: proof.transferredAmount,
            locked_amount: proof.lockedAmount,
            locks_root: proof.locksRoot,
        },
        sender_signature: sender.to_vec().into(),
        authorisation: authorisation.to_vec().into(),
        locks: Vec::new(),
        secrets: Vec::new(),
        releases: Vec::new(),
    }
}

async fn post(router: &Router, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap()
            .to_vec(),
    )
}

fn router<S: Store>(k: &Keys, store: Arc<S>) -> Router {
    let intake = Intake::new(
        IntakeConfig {
            chain_id: CHAIN_ID,
            factory: FACTORY,
            vault_implementation: IMPLEMENTATION,
            quota: CHANNELS_PER_CUSTOMER as u32,
            watch_period: 30 * 86_400,
        },
        k.tower.clone(),
        store.clone(),
        Open,
        Arc::new(|_, _, _| {}),
    );
    api::router(Arc::new(ApiState {
        intake,
        store,
        health: Arc::new(keel_chain::Health::default),
        limits: Limits {
            max_body: 4 << 20,
            max_batch: BATCH,
            per_source: None,
            per_customer: None,
        },
        clock: || NOW,
        metrics: Arc::default(),
    }))
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn run<S: Store>(
    name: &str,
    k: &Keys,
    store: S,
    singles: &[AppointmentRequest],
    batched: &[AppointmentRequest],
) {
    let store = Arc::new(store);
    let r = router(k, store.clone());
    for bob in &k.customers {
        let registration = TowerRegistration {
            customer: bob.address(),
            tower: k.tower.address(),
        };
        let digest = ChannelDomain::new(CHAIN_ID, k.tower.address()).signing_hash(&registration);
        let signature = keel_core::sign_hash(bob, &digest).unwrap();
        let body = serde_json::to_vec(&RegistrationRequest {
            customer: bob.address(),
            signature: signature.to_vec().into(),
        })
        .unwrap();
        assert_eq!(post(&r, "/v1/customers", body).await.0, StatusCode::CREATED);
    }

    let start = Instant::now();
    for a in singles {
        let (status, body) = post(&r, "/v1/appointments", serde_json::to_vec(a).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let single = rate(singles.len(), start.elapsed());

    let bodies: Vec<Vec<u8>> = batched
        .chunks(BATCH)
        .map(|chunk| serde_json::to_vec(&serde_json::json!({ "appointments": chunk })).unwrap())
        .collect();
    // A client that keeps `concurrent` requests in flight: the next goes out as one returns.
    let concurrent = concurrent_batches();
    let start = Instant::now();
    let mut accepted = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut pending = bodies.into_iter();
    loop {
        while in_flight.len() < concurrent {
            let Some(body) = pending.next() else { break };
            let r = r.clone();
            in_flight.spawn(async move { post(&r, "/v1/appointments/batch", body).await });
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::OK);
        let results: BatchJson = serde_json::from_slice(&body).unwrap();
        for item in results.results {
            match item {
                BatchItem::Receipt(_) => accepted += 1,
                BatchItem::Error(e) => panic!("refused: {e:?}"),
            }
        }
    }
    let batch = rate(batched.len(), start.elapsed());
    assert_eq!(accepted, batched.len());
    let counts = store.counts().await.unwrap();
    println!(
        "{name:<10} single {single:>8.0} appointments/s ({} requests)   batch {batch:>8.0} appointments/s ({} in batches of {BATCH}, {concurrent} in flight)   {} bytes for {} channels: {:.0} bytes/channel",
        singles.len(),
        batched.len(),
        counts.bytes,
        counts.channels,
        counts.bytes as f64 / counts.channels as f64,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("KEEL_BENCH_APPOINTMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let k = Keys {
        alice: PrivateKeySigner::random(),
        customers: (0..(SINGLES + n).div_ceil(CHANNELS_PER_CUSTOMER as usize))
            .map(|_| PrivateKeySigner::random())
            .collect(),
        tower: PrivateKeySigner::random(),
    };
    let start = Instant::now();
    let all: Vec<AppointmentRequest> = (0..(SINGLES + n) as u64)
        .map(|i| appointment(&k, i))
        .collect();
    println!(
        "signed {} appointments in {:.1} s",
        all.len(),
        start.elapsed().as_secs_f64()
    );
    let (singles, batched) = all.split_at(SINGLES);

    let path = std::env::temp_dir().join(format!("keel-tower-bench-{}.db", std::process::id()));
    run(
        "sqlite",
        &k,
        SqliteStore::open(&path).await.unwrap(),
        singles,
        batched,
    )
    .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    match std::env::var("KEEL_TEST_POSTGRES_URL") {
        Ok(url) => {
            let store = PostgresStore::connect(&url).await.unwrap();
            run("postgres", &k, store, singles, batched).await;
        }
        Err(_) => {
            println!("postgres   skipped: KEEL_TEST_POSTGRES_URL is not set (script/postgres.sh)")
        }
    }

    let watched: usize = std::env::var("KEEL_BENCH_WATCHED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    watch_memory(watched).await;
}

/// This process's resident set, in bytes (Linux).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn watch_memory(n: usize) {
    let path = std::env::temp_dir().join(format!("keel-tower-bench-mem-{}.db", std::process::id()));
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let deployment = Deployment {
        chain_id: CHAIN_ID,
        deployed_at_block: 0,
        channel_factory: FACTORY,
        vault_implementation: IMPLEMENTATION,
        secret_registry: Address::repeat_byte(0x5e),
        min_challenge_period: 60,
        max_challenge_period: 86_400,
    };
    let config = ChainConfig::new("http://127.0.0.1:9", deployment);
    let (monitor, _batches) = Monitor::spawn(config, store).unwrap();
    let before = resident();
    for i in 0..n as u64 {
        let channel_id = B256::from(U256::from(i));
        let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, channel_id, Address::ZERO);
        monitor.watch(vault, channel_id);
    }
    let grown = resident().saturating_sub(before);
    println!(
        "watching  {n} vaults: resident set +{:.1} MiB, {:.0} bytes/channel; 10 million would take {:.2} GiB",
        grown as f64 / (1 << 20) as f64,
        grown as f64 / n as f64,
        grown as f64 / n as f64 * 1e7 / (1u64 << 30) as f64,
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
