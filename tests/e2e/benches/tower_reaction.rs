//! The watchtower's reaction latency: from the block holding a stale close reaching the tower to
//! the tower sending its refutation, on a real Anvil with Keel's real contracts (keel-e2e's
//! [`Devnet`]) and a real tower (`keel_watchtower::Tower`, in this process, over a SQLite file,
//! or over PostgreSQL when `KEEL_TEST_POSTGRES_URL` names a fresh database, as
//! `script/postgres.sh` does; with the daemon's defaults but polling every 500 ms and acting at once: no confirmation
//! depth).
//!
//! The tower reaches Anvil through a recording proxy (in this process) that notes, on one
//! monotonic clock:
//! - *log delivered*: when the `eth_getLogs` answer carrying a vault's `Closed` event is handed
//!   to the tower (the moment its follower receives the log), and
//! - *sent*: when the tower's `eth_sendRawTransaction` for that vault reaches the proxy (the
//!   refutation leaving the tower; the vault is the signed transaction's recipient).
//!
//! The bench also notes when Anvil finished mining the block (`evm_mine` returned to the
//! bench), so *mined → sent* adds the follower's polling and scanning to the tower's own
//! reaction (*log delivered → sent*).
//!
//! Two scenarios over one devnet and one tower: single closes (one channel closes in a block,
//! the refutation is mined and the tower is idle again before the next; `KEEL_BENCH_SINGLES`
//! times, default 100), then `KEEL_BENCH_CHANNELS` channels (default 10,000) closing in one block
//! (automine off, the closes queued, the block gas limit raised, one block mined; then a block
//! every second holding the refutations that arrived). Each channel: Alice deposited 1,000 wei, Bob
//! holds Alice's proof of 1 wei (nonce 1) at the tower, Alice closes with nothing of Bob's.
//! Every refutation is checked mined at the end. `KEEL_BENCH_REFUTERS=n` gives the tower `n`
//! accounts that refute besides its own (fresh keys, funded by Dave);
//! `KEEL_BENCH_RPC_DELAY_MS=d` holds every request of the tower's `d` ms before it reaches
//! Anvil, as a remote node's round trip would. `KEEL_BENCH_TRACE=1`
//! prints each single
//! close's figures and the set-up's phases. Run:
//! `cargo bench -p keel-e2e --bench tower_reaction`; results go to docs/benchmarks.md by hand.
#![forbid(unsafe_code)]
// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    consensus::{Transaction, TxEnvelope},
    eips::eip2718::Decodable2718,
    primitives::{Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolEvent,
};
use eyre::{ensure, eyre, Result, WrapErr};
use keel_bindings::ChannelVault;
use keel_client::chain::{ChainConfig, FeePolicy, VaultAbi};
use keel_core::{BalanceData, TowerRegistration};
use keel_e2e::{
    bench::env_or,
    http::{body, forward, read_message},
    to_abi, to_vault_abi,
    tower::{appointment, proof},
    Channel, Devnet,
};
use keel_watchtower::{
    api::{BatchItem, BatchJson, BatchRequest, ChannelJsonView, RegistrationRequest},
    responder::CLAIM_LEASE,
    Limits, Tower, TowerConfig,
};
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// Channels closing in one block, unless `KEEL_BENCH_CHANNELS` says otherwise.
const CHANNELS: usize = 10_000;
/// Single closes, unless `KEEL_BENCH_SINGLES` says otherwise.
const SINGLES: usize = 100;
/// Each channel's deposit (Alice's) and what Alice's proof gives Bob, in wei.
const DEPOSIT: u64 = 1_000;
const PAID: u64 = 1;
/// Channels opened per block while setting up: Anvil takes longer per transaction the more
/// one sender has queued, and the opens need not share a block.
const OPENS_PER_BLOCK: usize = 1_000;
/// Appointments per batch request (the API's default limit).
const BATCH: usize = 512;
/// Fees of the set-up transactions: far above Anvil's base fee.
const MAX_FEE: u128 = 50_000_000_000;
const TIP: u128 = 1_000_000_000;
/// How often the tower's follower asks for new blocks (the daemon's default: 2 s).
const POLL: Duration = Duration::from_millis(500);
/// Longest wait for the tower to act on a scenario.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Whether to print each single close's latencies and the set-up's phases.
fn trace() -> bool {
    std::env::var_os("KEEL_BENCH_TRACE").is_some()
}

/// What the proxy saw, by vault: the first delivery of its `Closed` log, the first refutation.
#[derive(Default)]
struct Seen {
    closed: HashMap<Address, Instant>,
    sent: HashMap<Address, Instant>,
}

/// The tower's RPC endpoint: forwards everything to Anvil and notes [`Seen`].
struct Recorder {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    tokio::spawn(serve(conn, upstream.clone(), seen.clone()));
                }
            }
        });
        Ok(Self { url, seen, task })
    }

    fn sent(&self, vault: Address) -> Option<Instant> {
        self.seen.lock().unwrap().sent.get(&vault).copied()
    }

    fn closed(&self, vault: Address) -> Option<Instant> {
        self.seen.lock().unwrap().closed.get(&vault).copied()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The recipient of the signed transaction in an `eth_sendRawTransaction` call.
fn raw_transaction_to(call: &serde_json::Value) -> Option<Address> {
    let raw: Bytes = serde_json::from_value(call["params"][0].clone()).ok()?;
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).ok()?;
    tx.to()
}

/// The vaults whose `Closed` log is in an `eth_getLogs` answer.
fn closed_vaults(answer: &[u8]) -> Vec<Address> {
    let Some(body) = body(answer) else {
        return Vec::new();
    };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let topic = format!("{:#x}", ChannelVault::Closed::SIGNATURE_HASH);
    answer["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|log| log["topics"][0].as_str() == Some(topic.as_str()))
        .filter_map(|log| log["address"].as_str()?.parse().ok())
        .collect()
}

async fn serve(conn: TcpStream, upstream: String, seen: Arc<Mutex<Seen>>) {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut read).await {
        let arrived = Instant::now();
        let call: serde_json::Value = body(&request)
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let method = call["method"].as_str().unwrap_or_default();
        if method == "eth_sendRawTransaction" {
            if let Some(vault) = raw_transaction_to(&call) {
                seen.lock().unwrap().sent.entry(vault).or_insert(arrived);
            }
        }
        // A remote node, if asked for: every request waits before it goes on.
        let delay = Duration::from_millis(env_or("KEEL_BENCH_RPC_DELAY_MS", 0) as u64);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // A new upstream connection per request, as the test proxy does: its cost (loopback,
        // well under a millisecond) is in every RPC the tower makes.
        let Ok(answer) = forward(&upstream, &request).await else {
            return;
        };
        let delivered = Instant::now();
        if write.write_all(&answer).await.is_err() {
            return;
        }
        // Looked into after it is handed on, so the looking costs the tower nothing.
        if method == "eth_getLogs" {
            let vaults = closed_vaults(&answer);
            let mut seen = seen.lock().unwrap();
            for vault in vaults {
                seen.closed.entry(vault).or_insert(delivered);
            }
        }
    }
}

async fn rpc(net: &Devnet, method: &'static str, params: serde_json::Value) -> Result<()> {
    let _: serde_json::Value = net
        .alice
        .provider
        .raw_request(method.into(), params)
        .await?;
    Ok(())
}

/// Mines one block with whatever is queued; returns when Anvil has mined it.
async fn mine_one(net: &Devnet) -> Result<Instant> {
    rpc(net, "evm_mine", serde_json::json!([])).await?;
    Ok(Instant::now())
}

/// Queues Alice's `calls` (automine off), each with `gas`, in nonce order, mines them in one
/// block and checks every one succeeded.
async fn queue_and_mine(net: &Devnet, calls: Vec<TransactionRequest>, gas: u64) -> Result<Instant> {
    let from = net.alice.address();
    let first = net
        .alice
        .provider
        .get_transaction_count(from)
        .pending()
        .await?;
    let (started, count) = (Instant::now(), calls.len());
    let mut hashes = Vec::with_capacity(count);
    for (nonce, call) in (first..).zip(calls) {
        let tx = call
            .from(from)
            .nonce(nonce)
            .gas_limit(gas)
            .max_fee_per_gas(MAX_FEE)
            .max_priority_fee_per_gas(TIP);
        hashes.push(*net.alice.provider.send_transaction(tx).await?.tx_hash());
    }
    let queued = Instant::now();
    let mined = mine_one(net).await?;
    let block = net.block_number().await?;
    for hash in hashes {
        let receipt = net
            .alice
            .provider
            .get_transaction_receipt(hash)
            .await?
            .ok_or_else(|| eyre!("{hash} was not mined"))?;
        ensure!(receipt.status(), "{hash} reverted");
        ensure!(
            receipt.block_number == Some(block),
            "{hash} was not in the one block"
        );
    }
    if trace() {
        println!(
            "{count} transactions: queued in {:.1?}, mined in {:.1?}, checked in {:.1?}",
            queued - started,
            mined - queued,
            mined.elapsed()
        );
    }
    Ok(mined)
}

/// Gas for each of a set of like calls: the first one's estimate with a margin.
async fn gas_for(net: &Devnet, call: &TransactionRequest) -> Result<u64> {
    let estimate = net
        .alice
        .provider
        .estimate_gas(call.clone().from(net.alice.address()))
        .await?;
    Ok(estimate + estimate / 2)
}

fn open_call(net: &Devnet, ch: &Channel) -> TransactionRequest {
    let deposit = U256::from(DEPOSIT);
    net.factory_for(&net.alice)
        .open(to_abi(&ch.params), deposit)
        .value(deposit)
        .into_transaction_request()
}

/// Alice's close with nothing from Bob: her payments to him are left off the record.
fn close_call(net: &Devnet, ch: &Channel) -> TransactionRequest {
    ChannelVault::new(ch.vault, net.alice.provider.clone())
        .close(
            to_vault_abi(&ch.params),
            BalanceData::default().to_abi(),
            Bytes::new(),
        )
        .into_transaction_request()
}

/// Opens `count` channels (salts from `first_salt`), [`OPENS_PER_BLOCK`] a block.
async fn open_all(net: &Devnet, first_salt: u64, count: usize) -> Result<Vec<Channel>> {
    let channels: Vec<Channel> = (first_salt..)
        .take(count)
        .map(|salt| net.channel(net.params(Address::ZERO, salt)))
        .collect();
    let gas = gas_for(net, &open_call(net, &channels[0])).await?;
    for chunk in channels.chunks(OPENS_PER_BLOCK) {
        let calls = chunk.iter().map(|ch| open_call(net, ch)).collect();
        queue_and_mine(net, calls, gas).await?;
    }
    Ok(channels)
}

async fn post(url: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>)> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.bytes().await?.to_vec()))
}

/// Bob registers with the tower.
async fn register(net: &Devnet, api: &str) -> Result<()> {
    let registration = TowerRegistration {
        customer: net.bob.address(),
        tower: net.carol.address(),
    };
    let signature = keel_core::sign_message(
        &net.bob.signer,
        &registration,
        net.chain_id,
        net.carol.address(),
    )?;
    let request = RegistrationRequest {
        customer: net.bob.address(),
        signature: signature.to_vec().into(),
    };
    let (status, body) = post(
        &format!("{api}/v1/customers"),
        serde_json::to_vec(&request)?,
    )
    .await?;
    ensure!(
        status == 201,
        "registration: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// Bob hands the tower Alice's proof of [`PAID`] for each channel, in batches.
async fn appoint_all(net: &Devnet, api: &str, channels: &[Channel]) -> Result<()> {
    for chunk in channels.chunks(BATCH) {
        let appointments = chunk
            .iter()
            .map(|ch| {
                let p = proof(ch, 1, U256::from(PAID));
                appointment(net, ch, &net.alice, &net.bob, &p)
            })
            .collect::<Result<Vec<_>>>()?;
        let (status, body) = post(
            &format!("{api}/v1/appointments/batch"),
            serde_json::to_vec(&BatchRequest { appointments })?,
        )
        .await?;
        ensure!(
            status == 200,
            "batch: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let answer: BatchJson = serde_json::from_slice(&body)?;
        for item in answer.results {
            if let BatchItem::Error(e) = item {
                eyre::bail!("appointment refused: {e:?}");
            }
        }
    }
    Ok(())
}

/// Whether the tower's refutation for `ch` is mined.
async fn refuted(api: &str, ch: &Channel) -> Result<bool> {
    let view: ChannelJsonView = reqwest::Client::new()
        .get(format!("{api}/v1/channels/{}", ch.id))
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .json()
        .await?;
    Ok(view.responses.iter().any(|r| r.outcome == "mined"))
}

/// Waits until `done` holds, polling every 10 ms, for at most [`TIMEOUT`].
async fn until(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        ensure!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Latencies, sorted.
struct Sample(Vec<Duration>);

impl Sample {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }

    fn quantile(&self, q: f64) -> Duration {
        // Nearest rank.
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    fn row(&self, what: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.0.len(),
            ms(self.0[0]),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(*self.0.last().expect("not empty")),
        )
    }
}

/// The two latencies of every channel in `channels`, closed in a block mined at `mined`.
fn latencies(
    recorder: &Recorder,
    channels: &[Channel],
    mined: Instant,
) -> Result<(Sample, Sample)> {
    let (mut from_log, mut from_block) = (Vec::new(), Vec::new());
    for ch in channels {
        let sent = recorder
            .sent(ch.vault)
            .ok_or_else(|| eyre!("no refutation for {}", ch.vault))?;
        let closed = recorder
            .closed(ch.vault)
            .ok_or_else(|| eyre!("the tower never got the close of {}", ch.vault))?;
        from_log.push(sent.saturating_duration_since(closed));
        from_block.push(sent.saturating_duration_since(mined));
    }
    Ok((Sample::new(from_log), Sample::new(from_block)))
}

fn main() -> Result<()> {
    let singles = env_or("KEEL_BENCH_SINGLES", SINGLES);
    let many = env_or("KEEL_BENCH_CHANNELS", CHANNELS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let net = Devnet::start().await?;
        // Room for every open, and every close, in one block.
        rpc(
            &net,
            "evm_setBlockGasLimit",
            serde_json::json!([format!("{:#x}", 1u64 << 40)]),
        )
        .await?;
        rpc(&net, "evm_setAutomine", serde_json::json!([false])).await?;
        let started = Instant::now();
        let channels = open_all(&net, 1, singles + many).await?;
        let (single, block) = channels.split_at(singles);
        println!(
            "opened {} channels in {:.1?}",
            channels.len(),
            started.elapsed()
        );

        println!(
            "store: {}",
            if std::env::var("KEEL_TEST_POSTGRES_URL").is_ok() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
        let recorder = Recorder::start(net.rpc_url()).await?;
        let database = std::env::temp_dir().join(format!(
            "keel-bench-tower-{}-{}.db",
            std::process::id(),
            net.chain_id
        ));
        // The daemon's defaults (request and receipt timeouts, log ranges), but acting at
        // once and polling every 500 ms rather than 2 s.
        let chain = ChainConfig {
            confirmations: 0,
            poll_interval: POLL,
            ..ChainConfig::new(recorder.url.clone(), net.deployment.clone())
        };
        let refuters = funded_refuters(&net, env_or("KEEL_BENCH_REFUTERS", 0)).await?;
        let tower = Tower::start(
            TowerConfig {
                chain,
                database: match std::env::var("KEEL_TEST_POSTGRES_URL") {
                    Ok(url) => keel_watchtower::Database::Postgres(url),
                    Err(_) => database.clone().into(),
                },
                listen: "127.0.0.1:0".parse()?,
                quota: u32::try_from(channels.len())?,
                watch_period: 30 * 86_400,
                limits: Limits {
                    per_source: None,
                    per_customer: None,
                    ..Limits::default()
                },
                fees: FeePolicy::DEFAULT,
                claim_lease: CLAIM_LEASE,
                refuters,
            },
            net.carol.signer.clone(),
        )
        .await
        .wrap_err("starting the tower")?;
        let api = format!("http://{}", tower.local_addr());
        register(&net, &api).await?;

        // One channel closes in a block; the tower refutes, the refutation is mined.
        appoint_all(&net, &api, single).await?;
        let close_gas = gas_for(&net, &close_call(&net, &single[0])).await?;
        let mut mined_at = Vec::new();
        for ch in single {
            let mined = queue_and_mine(&net, vec![close_call(&net, ch)], close_gas).await?;
            until("a single refutation sent", || {
                recorder.sent(ch.vault).is_some()
            })
            .await?;
            // Blocks until the refutation is in one: the proxy notes it before Anvil has it.
            let deadline = Instant::now() + TIMEOUT;
            while !refuted(&api, ch).await? {
                ensure!(
                    Instant::now() < deadline,
                    "the single refutation was not mined"
                );
                mine_one(&net).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            mined_at.push(mined);
        }
        let (mut log_single, mut block_single) = (Vec::new(), Vec::new());
        for (ch, mined) in single.iter().zip(mined_at) {
            let (from_log, from_block) = latencies(&recorder, std::slice::from_ref(ch), mined)?;
            if trace() {
                println!("single {}: {:?} {:?}", ch.vault, from_log.0, from_block.0);
            }
            log_single.extend(from_log.0);
            block_single.extend(from_block.0);
        }
        let (log_single, block_single) = (Sample::new(log_single), Sample::new(block_single));

        // `many` channels close in one block.
        let started = Instant::now();
        appoint_all(&net, &api, block).await?;
        println!(
            "{} appointments stored in {:.1?}",
            block.len(),
            started.elapsed()
        );
        let calls = block.iter().map(|ch| close_call(&net, ch)).collect();
        let mined = queue_and_mine(&net, calls, close_gas).await?;
        // A block a second from now on, each holding what arrived, as on a fast chain with
        // room in its blocks. (Automine, a block per refutation, makes Anvil the bottleneck:
        // each block's cost grows with the 20,000 vaults' state.)
        rpc(&net, "evm_setIntervalMining", serde_json::json!([1])).await?;
        until("every refutation sent", || {
            block.iter().all(|ch| recorder.sent(ch.vault).is_some())
        })
        .await?;
        let (log_block, block_block) = latencies(&recorder, block, mined)?;
        for ch in block {
            let deadline = Instant::now() + TIMEOUT;
            while !refuted(&api, ch).await? {
                ensure!(Instant::now() < deadline, "a refutation was not mined");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        println!("\n| | closes | min (ms) | p50 (ms) | p99 (ms) | max (ms) |");
        println!("|---|---:|---:|---:|---:|---:|");
        println!(
            "{}",
            log_single.row("1 channel per block: log delivered → refutation sent")
        );
        println!(
            "{}",
            block_single.row("1 channel per block: block mined → refutation sent")
        );
        let label = format!("{} channels in one block", block.len());
        println!(
            "{}",
            log_block.row(&format!("{label}: log delivered → refutation sent"))
        );
        println!(
            "{}",
            block_block.row(&format!("{label}: block mined → refutation sent"))
        );
        drop(tower);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
        }
        Ok(())
    })
}

/// `n` fresh accounts, each given 100 ETH by Dave, for the tower to refute from. The bench
/// mines by hand by now: the transfers are sent, then one block mined.
async fn funded_refuters(
    net: &Devnet,
    n: usize,
) -> Result<Vec<alloy::signers::local::PrivateKeySigner>> {
    let mut keys = Vec::with_capacity(n);
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let key = alloy::signers::local::PrivateKeySigner::random();
        let funding = TransactionRequest::default()
            .to(key.address())
            .value(U256::from(100u128 * 10u128.pow(18)));
        pending.push(net.dave.provider.send_transaction(funding).await?);
        keys.push(key);
    }
    if n > 0 {
        net.mine(1).await?;
    }
    for tx in pending {
        ensure!(tx.get_receipt().await?.status(), "funding a refuter failed");
    }
    Ok(keys)
}
