//! Multi-hop payments through a hub: three [`Client`]s in one process (payer, hub, payee) over
//! loopback TCP, each with its own SQLite store (persistence on) and chain monitor, their two
//! ETH channels opened on a real Anvil with the real contracts (keel-e2e's [`Devnet`]). The hub
//! charges a fee; the payer routes over the hub's announced channel. Each payment is one
//! `Client::send_payment` of a payee invoice made beforehand: invoice check, route, onion, lock
//! to the hub, the hub's peel, check, lock to the payee, the payee's reveal, and the secret back
//! through the hub; it returns with the secret. Latency is each call's duration.
//!
//! Two loads: closed loop ([`IN_FLIGHT`] payer tasks each paying again as soon as its last
//! payment returns), and a fixed offered rate ([`RATE_IN_FLIGHT`] at most at once), latency
//! from when each payment fell due. At the
//! end every lock has settled and every balance is checked to the wei. Run:
//! `cargo bench -p keel-e2e --bench multihop` (`KEEL_BENCH_PAYMENTS`, `KEEL_BENCH_IN_FLIGHT`,
//! `KEEL_BENCH_OFFERED` change the run); results go to docs/benchmarks.md.
#![forbid(unsafe_code)]
// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    client::{ChannelInfo, ClientEvent, ForwardPolicy, SignedRequest},
    Client, Config,
};
use keel_core::forwarding::FeePolicy;
use keel_e2e::{bench::env_or, Devnet, Participant, MIN_PERIOD};
use keel_routing::SignedAnnouncement;

/// Payments in flight in the closed-loop scenario, unless `KEEL_BENCH_IN_FLIGHT` says otherwise.
/// A channel holds at most 32 pending locks each way (`Policy::max_pending_locks`, bounding the
/// gas of unlocking them on chain), and a paid lock stays pending until its payout lands just
/// after the payer's call returns: fewer than 32 in flight leaves room for those.
const IN_FLIGHT: usize = 16;
/// Most payments in flight in the fixed-rate scenario: one due while that many are out waits
/// for one to finish (its latency, counted from when it fell due, includes the wait).
const RATE_IN_FLIGHT: usize = 24;
/// Payments per measured scenario, unless `KEEL_BENCH_PAYMENTS` says otherwise.
const PAYMENTS: usize = 5_000;
/// Payments of the discarded warm-up before each scenario.
const WARM_UP: usize = 500;
/// Offered rate (payments a second) in the fixed-rate scenario, unless `KEEL_BENCH_OFFERED`
/// says otherwise: the target.
const OFFERED: usize = 2_500;
/// Each payment's amount, and the hub's fee policy (base, proportional).
const AMOUNT: u64 = 1_000_000;
const FEE_BASE: u64 = 10;
const FEE_PPM: u32 = 100;

/// Processor time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux), in clock ticks of 10 ms. Anvil is another process: not counted.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

struct Line {
    net: Devnet,
    dir: PathBuf,
    payer: Client,
    hub: Client,
    payee: Client,
    ab: B256,
    bc: B256,
    policy: ForwardPolicy,
}

fn config(net: &Devnet, dir: &Path, who: &Participant, name: &str) -> Config {
    let mut config = Config::new(who.signer.clone(), dir.join(format!("{name}.db")));
    config.chains = vec![net.chain_config(0)];
    // Room for every payment in flight on each channel.
    config.window = 256;
    // The store's group-commit pacing (µs between commit starts), to measure its trade-off.
    if let Ok(us) = std::env::var("KEEL_BENCH_COMMIT_US") {
        if let Ok(us) = us.parse() {
            config.min_commit_interval = Duration::from_micros(us);
        }
    }
    config
}

async fn open(net: &Devnet, opener: &Client, peer: &Client, deposit: U256) -> Result<B256> {
    let mut events = peer.subscribe();
    let id = opener
        .open_channel(
            net.chain_id,
            peer.address(),
            Address::ZERO,
            deposit,
            MIN_PERIOD,
        )
        .await?
        .id;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(ClientEvent::ChannelOpened { channel_id, .. }) if channel_id == id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    })
    .await
    .map_err(|_| eyre!("the peer never saw channel {id}"))?;
    for client in [opener, peer] {
        settled(client, id, |i| i.deposits[0] == deposit).await?;
    }
    Ok(id)
}

/// Waits until `client`'s view of `id` passes `done`.
async fn settled(
    client: &Client,
    id: B256,
    done: impl Fn(&ChannelInfo) -> bool,
) -> Result<ChannelInfo> {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if let Ok(info) = client.channel(id).await {
                if done(&info) {
                    return info;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| eyre!("channel {id} never got there"))
}

impl Line {
    async fn start() -> Result<Self> {
        let net = Devnet::start().await?;
        let dir = std::env::temp_dir().join(format!("keel-bench-multihop-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let payer = Client::start(config(&net, &dir, &net.alice, "payer")).await?;
        let hub = Client::start(config(&net, &dir, &net.bob, "hub")).await?;
        let payee = Client::start(config(&net, &dir, &net.carol, "payee")).await?;
        let at = hub.listen("127.0.0.1:0").await?;
        payer.connect(at, hub.address()).await?;
        let at = payee.listen("127.0.0.1:0").await?;
        hub.connect(at, payee.address()).await?;
        let deposit = U256::from(10u64).pow(U256::from(18));
        let ab = open(&net, &payer, &hub, deposit).await?;
        let bc = open(&net, &hub, &payee, deposit).await?;
        let policy = ForwardPolicy::new(
            FeePolicy {
                base: U256::from(FEE_BASE),
                proportional_millionths: FEE_PPM,
            },
            keel_client::client::DEFAULT_EXPIRY_DELTA,
        );
        hub.set_forward_policy(bc, policy.clone()).await?;
        let (announcement, by_hub) = hub.announcement_signature(bc).await?;
        let (_, by_payee) = payee.announcement_signature(bc).await?;
        let signatures = if announcement.participantA == hub.address() {
            [by_hub, by_payee]
        } else {
            [by_payee, by_hub]
        };
        let signed = SignedAnnouncement {
            announcement,
            signatures,
        };
        payer.add_announcement(net.chain_id, &signed, deposit)?;
        payer.add_channel_update(&hub.channel_update(bc).await?)?;
        Ok(Self {
            net,
            dir,
            payer,
            hub,
            payee,
            ab,
            bc,
            policy,
        })
    }

    async fn invoices(&self, count: usize) -> Result<Vec<SignedRequest>> {
        let mut invoices = Vec::with_capacity(count);
        for _ in 0..count {
            let request = self
                .payee
                .create_invoice(
                    self.net.chain_id,
                    Address::ZERO,
                    U256::from(AMOUNT),
                    3_600,
                    "",
                )
                .await?;
            invoices.push(request);
        }
        Ok(invoices)
    }
}

/// How the payments are driven.
#[derive(Clone, Copy)]
enum Load {
    Closed(usize),
    Rate(f64),
}

/// Pays every invoice under `load`; returns the latencies and the elapsed time.
async fn drive(
    payer: &Client,
    invoices: Vec<SignedRequest>,
    load: Load,
) -> Result<(Vec<Duration>, Duration)> {
    let start = Instant::now();
    let latencies = match load {
        Load::Closed(payers) => {
            let queue = Arc::new(std::sync::Mutex::new(invoices));
            let tasks: Vec<_> = (0..payers)
                .map(|_| {
                    let (payer, queue) = (payer.clone(), Arc::clone(&queue));
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        loop {
                            let next = queue.lock().expect("queue").pop();
                            let Some(invoice) = next else {
                                return Ok::<_, eyre::Report>(latencies);
                            };
                            let started = Instant::now();
                            payer.send_payment(&invoice, 1).await?;
                            latencies.push(started.elapsed());
                        }
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            for task in tasks {
                latencies.extend(task.await??);
            }
            latencies
        }
        Load::Rate(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let first = ticks.tick().await;
            let total = invoices.len();
            let mut invoices = invoices.into_iter();
            let mut tasks = Vec::with_capacity(total);
            let slots = Arc::new(tokio::sync::Semaphore::new(RATE_IN_FLIGHT));
            while tasks.len() < total {
                let due = ticks.tick().await;
                let due_by_now = (((due - first).as_secs_f64() * rate) as usize).min(total);
                while tasks.len() < due_by_now {
                    let Some(invoice) = invoices.next() else {
                        break;
                    };
                    let (payer, slots) = (payer.clone(), Arc::clone(&slots));
                    tasks.push(tokio::spawn(async move {
                        let _slot = slots.acquire_owned().await?;
                        payer.send_payment(&invoice, 1).await?;
                        Ok::<_, eyre::Report>(due.elapsed())
                    }));
                }
            }
            let mut latencies = Vec::with_capacity(total);
            for task in tasks {
                latencies.push(task.await??);
            }
            latencies
        }
    };
    Ok((latencies, start.elapsed()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

async fn run(line: &Line, name: &str, load: Load, payments: usize) -> Result<String> {
    drive(
        &line.payer,
        line.invoices(WARM_UP.min(payments)).await?,
        load,
    )
    .await?;
    let invoices = line.invoices(payments).await?;
    let cpu_before = process_cpu();
    let (mut latencies, elapsed) = drive(&line.payer, invoices, load).await?;
    let cpu = process_cpu().zip(cpu_before).map(|(a, b)| a - b);
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cpu = cpu.map_or_else(
        || "n/a".to_owned(),
        |cpu| format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / payments as f64),
    );
    Ok(format!(
        "| {name} | {payments} | {:.0} | {:.2} ms | {:.2} ms | {cpu} |",
        payments as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
    ))
}

/// Every lock settled, and each side of each channel holds what the payments and fees say.
async fn check_balances(line: &Line, payments: usize, deposit: U256) -> Result<()> {
    let amount = U256::from(AMOUNT);
    let fee = line.policy.fee.fee(amount)?;
    let count = U256::from(payments);
    let (to_payee, to_hub) = (amount * count, (amount + fee) * count);
    let no_locks = |i: &ChannelInfo| i.incoming_locks.is_empty() && i.outgoing_locks.is_empty();
    let ab = settled(&line.hub, line.ab, |i| no_locks(i) && i.balance == to_hub).await?;
    let bc = settled(&line.payee, line.bc, |i| {
        no_locks(i) && i.balance == to_payee
    })
    .await?;
    ensure!(
        ab.peer_balance == deposit - to_hub,
        "payer's balance {ab:?}"
    );
    ensure!(
        bc.peer_balance == deposit - to_payee,
        "hub's balance {bc:?}"
    );
    Ok(())
}

fn main() -> Result<()> {
    let payments = env_or("KEEL_BENCH_PAYMENTS", PAYMENTS);
    let in_flight = env_or("KEEL_BENCH_IN_FLIGHT", IN_FLIGHT);
    let offered = env_or("KEEL_BENCH_OFFERED", OFFERED);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let line = Line::start().await?;
        let mut rows = Vec::new();
        rows.push(
            run(
                &line,
                &format!("closed loop, {in_flight} in flight"),
                Load::Closed(in_flight),
                payments,
            )
            .await?,
        );
        rows.push(
            run(
                &line,
                &format!("{offered}/s offered"),
                Load::Rate(offered as f64),
                payments,
            )
            .await?,
        );
        let total = 2 * (payments + WARM_UP.min(payments));
        check_balances(&line, total, U256::from(10u64).pow(U256::from(18))).await?;
        for client in [&line.payer, &line.hub, &line.payee] {
            client.clone().shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&line.dir);
        Ok::<_, eyre::Report>(rows)
    })?;
    println!("| scenario | payments | payments/s | p50 latency | p99 latency | CPU per payment (3 clients) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
