//! End-to-end payment throughput and latency through the client API: two [`Client`]s in one
//! process, over loopback TCP (the Noise transport), each with its own SQLite store
//! (persistence on), one ETH channel. Payments flow one way, then both ways; prints a markdown
//! table row per scenario and, beside it, the bound that signing and verifying alone put on the
//! rate. Run: `cargo bench -p keel-client --bench payments`. Results go to docs/benchmarks.md.
//!
//! The CPU column is the processor time the whole process (both clients) spent per payment:
//! on two cores it, not the wire, is what bounds the rate.
//!
//! Each payment is one `Client::pay` call: apply, store, sign and send on the payer; verify,
//! store and acknowledge on the payee; it returns on the acknowledgement. Two kinds of load:
//! closed loop, where [`IN_FLIGHT`] payer tasks (split between the directions) each pay again
//! as soon as the last payment returns — the rate sustained with that many in flight, latency
//! being each call's duration — and a fixed offered rate of [`OFFERED`] payments a second,
//! latency counted from when each payment fell due. The target (≥ 10,000/s with p99 < 5 ms) is
//! judged on both.
#![forbid(unsafe_code)]
// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    hint::black_box,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::{store::ChannelOpening, Client, Config};
use keel_core::{
    channel::Policy, sign_message, signing, signing_hash, Address, BalanceProof, ChannelParams,
    Side, B256, U256,
};

const CHAIN_ID: u64 = 31337;
/// Payments in flight in the closed-loop scenarios, both directions together (one payer task
/// each), unless `KEEL_BENCH_IN_FLIGHT` says otherwise: fewer trade throughput for latency.
const IN_FLIGHT: usize = 24;

fn in_flight() -> usize {
    std::env::var("KEEL_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 1)
        .unwrap_or(IN_FLIGHT)
}
/// Payments per measured scenario (both directions together).
const PAYMENTS: usize = 20_000;
/// Payments offered per second (both directions together) in the fixed-rate scenarios: the
/// target rate, at which the p99 latency is judged.
const OFFERED: f64 = 10_000.0;
/// Payments of the discarded warm-up before each measured run, on the same pair.
const WARM_UP: usize = 2_000;

/// What one scenario measured.
struct Outcome {
    name: &'static str,
    payments: usize,
    elapsed: Duration,
    /// Per payment, the duration of its `pay` call; sorted.
    latencies: Vec<Duration>,
    /// Processor time the whole process spent (both clients, every thread), if readable.
    cpu: Option<Duration>,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.payments as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let rank = ((self.latencies.len() as f64 * p).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1]
    }

    fn row(&self, bound: f64) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let cpu = self.cpu.map_or_else(
            || "n/a".to_owned(),
            |cpu| format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / self.payments as f64),
        );
        format!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {cpu} | {:.0} |",
            self.name,
            self.payments,
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            bound,
        )
    }
}

/// Processor time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Counted in clock ticks, assumed 100 per second
/// (USER_HZ on every Linux architecture we build for).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A fresh directory for one pair's stores.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keel-bench-payments-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Two connected clients (A dials B over 127.0.0.1) sharing a fresh channel with ample
/// deposits on both sides.
async fn pair(dir: &std::path::Path) -> (Client, Client, B256) {
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
        factory: Address::repeat_byte(0xfa),
        implementation: Address::repeat_byte(0x1e),
        me,
        policy: Policy::default(),
    };
    let config =
        |signer: &PrivateKeySigner, name: &str| Config::new(signer.clone(), dir.join(name));
    let a = Client::start(config(&signer_a, "a.db"))
        .await
        .expect("client A");
    let b = Client::start(config(&signer_b, "b.db"))
        .await
        .expect("client B");
    let id = a.add_channel(&opening(Side::A)).await.expect("channel").id;
    b.add_channel(&opening(Side::B)).await.expect("channel");
    let deposit = U256::from(10u64).pow(U256::from(24));
    for client in [&a, &b] {
        for side in [Side::A, Side::B] {
            client
                .deposit_confirmed(id, side, deposit)
                .await
                .expect("deposit");
        }
    }
    let addr = b.listen("127.0.0.1:0").await.expect("listen");
    a.connect(addr, signer_b.address()).await.expect("connect");
    (a, b, id)
}

/// `payers` tasks on `client` make `payments` payments of 1 wei in all, each paying again as
/// soon as its last payment returns; returns latencies.
async fn pay(client: Client, id: B256, payments: usize, payers: usize) -> Vec<Duration> {
    let tasks: Vec<_> = (0..payers)
        .map(|i| {
            let client = client.clone();
            let count = payments / payers + usize::from(i < payments % payers);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count);
                for _ in 0..count {
                    let start = Instant::now();
                    client.pay(id, U256::from(1)).await.expect("payment");
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(payments);
    for task in tasks {
        latencies.extend(task.await.expect("payer task"));
    }
    latencies
}

/// `client` makes `payments` payments of 1 wei at `rate` per second, whatever the answers: at
/// each millisecond tick the payments that fell due are issued, each on its own task. A
/// payment's latency runs from the tick it was due at, so a pacer that falls behind cannot
/// hide slow answers (no coordinated omission). Returns latencies.
async fn pay_at_rate(client: Client, id: B256, payments: usize, rate: f64) -> Vec<Duration> {
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    // Ticks missed while the runtime was busy are delivered at once, with their due instants.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = ticks.tick().await;
    let mut tasks = Vec::with_capacity(payments);
    while tasks.len() < payments {
        let due = ticks.tick().await;
        let due_by_now = ((due - start).as_secs_f64() * rate) as usize;
        while tasks.len() < due_by_now.min(payments) {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                client.pay(id, U256::from(1)).await.expect("payment");
                due.elapsed()
            }));
        }
    }
    let mut latencies = Vec::with_capacity(payments);
    for task in tasks {
        latencies.push(task.await.expect("payment task"));
    }
    latencies
}

/// How a scenario drives the payers.
#[derive(Clone, Copy)]
enum Load {
    /// [`in_flight`] payers in all, split between the directions that pay, each paying again
    /// as soon as its last payment returns: the rate the pair sustains with that many in flight.
    Closed,
    /// Payments offered at this many per second per direction: measures latency at that rate.
    Rate(f64),
}

/// On a fresh pair, a warm-up of `WARM_UP / PAYMENTS` of the load, discarded, then the load
/// measured: A pays B `a_to_b` times while B pays A `b_to_a` times, all at once. The warm-up
/// runs on the pair it measures, so what a channel builds once (the peer's key table, after
/// its first proofs; the stores' first pages) is built before the clock starts.
async fn run(name: &'static str, load: Load, a_to_b: usize, b_to_a: usize) -> Outcome {
    let dir = temp_dir();
    let (a, b, id) = pair(&dir).await;
    let warm_up = |n: usize| n * WARM_UP / PAYMENTS;
    drive(&a, &b, id, load, warm_up(a_to_b), warm_up(b_to_a)).await;
    let cpu_before = process_cpu();
    let start = Instant::now();
    let (from_a, from_b) = drive(&a, &b, id, load, a_to_b, b_to_a).await;
    let elapsed = start.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let (info_a, info_b) = (
        a.channel(id).await.expect("A"),
        b.channel(id).await.expect("B"),
    );
    assert_eq!(info_a.balance, info_b.peer_balance, "both sides agree");
    let expected = |n: usize| (n + warm_up(n)) as u64;
    assert_eq!(
        (info_a.sent_nonce, info_b.sent_nonce),
        (expected(a_to_b), expected(b_to_a)),
        "every payment, warm-up included, went through"
    );
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    let mut latencies = [from_a, from_b].concat();
    latencies.sort_unstable();
    Outcome {
        name,
        payments: a_to_b + b_to_a,
        elapsed,
        latencies,
        cpu,
    }
}

/// A pays B `a_to_b` times while B pays A `b_to_a` times under `load`, all at once; returns
/// each side's latencies.
async fn drive(
    a: &Client,
    b: &Client,
    id: B256,
    load: Load,
    a_to_b: usize,
    b_to_a: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let start = |client: &Client, payments| {
        let client = client.clone();
        match load {
            Load::Closed => {
                let directions = 1 + usize::from(a_to_b > 0 && b_to_a > 0);
                tokio::spawn(pay(client, id, payments, in_flight() / directions))
            }
            Load::Rate(rate) => tokio::spawn(pay_at_rate(client, id, payments, rate)),
        }
    };
    let (from_a, from_b) = (start(a, a_to_b), start(b, b_to_a));
    (from_a.await.expect("A"), from_b.await.expect("B"))
}

/// Mean time of one `sign_message` and one check of a balance proof against the signer's key
/// table (what the client does once a counterparty has signed a few proofs), in seconds.
fn signature_costs() -> (f64, f64) {
    const ITERATIONS: u32 = 2_000;
    let signer = PrivateKeySigner::random();
    let vault = Address::repeat_byte(0x44);
    let proof = |nonce: u32| BalanceProof {
        channelId: B256::repeat_byte(0x11),
        nonce: u64::from(nonce) + 1,
        transferredAmount: U256::from(nonce),
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    let mean = |mut f: Box<dyn FnMut(u32) + '_>| {
        (0..ITERATIONS / 10).for_each(&mut f);
        let start = Instant::now();
        (0..ITERATIONS).for_each(&mut f);
        start.elapsed().as_secs_f64() / f64::from(ITERATIONS)
    };
    let sign = mean(Box::new(|i| {
        black_box(sign_message(&signer, &proof(i), CHAIN_ID, vault).expect("sign"));
    }));
    let table = signing::KeyTable::new(signing::verifying_key(&signer));
    let digest = signing_hash(&proof(7), CHAIN_ID, vault);
    let signature = sign_message(&signer, &proof(7), CHAIN_ID, vault).expect("sign");
    let verify = mean(Box::new(|_| {
        table.verify(black_box(&digest), &signature).expect("valid");
    }));
    (sign, verify)
}

fn main() {
    let (sign, verify) = signature_costs();
    let per_core = 1.0 / (sign + verify);
    let cores: usize = 2;
    println!(
        "sign_message {:.1} µs + KeyTable::verify {:.1} µs: signature-bound limit {per_core:.0} \
         payments/s per core, {:.0} on {cores} cores",
        sign * 1e6,
        verify * 1e6,
        per_core * cores as f64,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes = runtime.block_on(async {
        let mut outcomes = Vec::new();
        for (name, load, a_to_b, b_to_a) in [
            ("one way, closed loop", Load::Closed, PAYMENTS, 0),
            (
                "both ways, closed loop",
                Load::Closed,
                PAYMENTS / 2,
                PAYMENTS / 2,
            ),
            (
                "one way at 10,000/s offered",
                Load::Rate(OFFERED),
                PAYMENTS,
                0,
            ),
            (
                "both ways at 5,000/s each offered",
                Load::Rate(OFFERED / 2.0),
                PAYMENTS / 2,
                PAYMENTS / 2,
            ),
        ] {
            outcomes.push(run(name, load, a_to_b, b_to_a).await);
        }
        outcomes
    });
    println!();
    println!(
        "| scenario ({} in flight in closed loop) | payments | payments/s | p50 latency | \
         p99 latency | CPU per payment | signature bound, {cores} cores (payments/s) |",
        in_flight()
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for outcome in &outcomes {
        println!("{}", outcome.row(per_core * cores as f64));
    }
}
