//! End-to-end payment throughput and latency: two clients in one process, over loopback TCP
//! (the Noise transport), each with its own SQLite store (persistence on), one ETH channel.
//! Payments flow one way, then both ways; prints a markdown table row per scenario and, beside
//! it, the bound that signing and verifying alone put on the rate.
//! Run: `cargo bench -p keel-client --bench payments`. Results go to docs/benchmarks.md by hand.
//!
//! Per payment: the payer applies `Change::Pay` (`ChannelState::send`), appends `Sent` to its
//! store, and once that is durable signs the proof and sends an `Update`; the payee applies it
//! (`ChannelState::receive`, which verifies the signature), appends `Received`, and once that is
//! durable sends an `Ack`. Latency is from the payer's `send` to that `Ack`. Up to [`WINDOW`]
//! payments per direction are in flight, so concurrent appends share a commit.

// A bench binary reports on stdout.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    hint::black_box,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::{
    store::{ChannelOpening, Commit, Event, Store},
    transport::{Connection, Receiver, Sender, Transport},
};
use keel_core::{
    channel::Policy,
    sign_message, signing, signing_hash,
    wire::{Message, Signature},
    Address, BalanceProof, Change, ChannelParams, ChannelState, Side, B256, U256,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, Semaphore},
};

const CHAIN_ID: u64 = 31337;
/// Most unacknowledged payments per direction.
const WINDOW: usize = 64;
/// Payments per measured scenario (both directions together).
const PAYMENTS: usize = 20_000;
/// Payments of the discarded run before each measured one.
const WARM_UP: usize = 2_000;

/// What one scenario measured.
struct Outcome {
    name: &'static str,
    payments: usize,
    elapsed: Duration,
    /// Per payment, payer's `send` to its `Ack`; sorted.
    latencies: Vec<Duration>,
    /// Store commits of both peers during the run.
    commits: u64,
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
        format!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.3} | {:.0} |",
            self.name,
            self.payments,
            self.per_second(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.commits as f64 / self.payments as f64,
            bound,
        )
    }
}

/// One client: its view of the channel, its store, its key and its connection to the other.
struct Peer {
    state: ChannelState,
    store: Arc<Store>,
    signer: PrivateKeySigner,
    conn: Connection,
    dir: PathBuf,
}

/// A message to send once the event behind it is durable. Proofs are signed only then.
// Most queued items are updates; boxing them would add an allocation per payment.
#[allow(clippy::large_enum_variant)]
enum Outgoing {
    Update { change: Change, proof: BalanceProof },
    Ack { nonce: u64 },
}

/// A fresh directory for one store.
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

impl Peer {
    /// Opens a store in a fresh directory with the channel recorded and both deposits confirmed.
    async fn open(signer: PrivateKeySigner, opening: ChannelOpening, conn: Connection) -> Self {
        let dir = temp_dir();
        let store = Store::open(dir.join("keel.db")).await.expect("store");
        let mut state = store.open_channel(&opening).await.expect("channel");
        for side in [Side::A, Side::B] {
            let event = Event::DepositConfirmed {
                side,
                total: U256::from(10u64).pow(U256::from(24)),
            };
            event.apply(&mut state).expect("deposit");
            store.append(state.id(), &event).await.expect("append");
        }
        Self {
            state,
            store: Arc::new(store),
            signer,
            conn,
            dir,
        }
    }

    /// Checks the store's log replays (appends went in order), closes it and deletes its
    /// directory.
    async fn remove(store: Arc<Store>, dir: PathBuf) {
        assert_eq!(store.load_all().await.expect("the log replays").len(), 1);
        if let Ok(store) = Arc::try_unwrap(store) {
            store.close().await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Sends `to_send` payments and accepts `to_receive`; returns the latencies of its own.
    async fn run(self, to_send: usize, to_receive: usize, now: u64) -> Vec<Duration> {
        let Self {
            mut state,
            store,
            signer,
            conn,
            ..
        } = self;
        let (sender, receiver) = conn.split();
        let window = Arc::new(Semaphore::new(WINDOW));
        let starts = Arc::new(Mutex::new(Vec::with_capacity(to_send)));
        let (inbox_tx, mut inbox) = mpsc::channel(2 * WINDOW);
        let (out, out_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read(
            receiver,
            inbox_tx,
            Arc::clone(&window),
            Arc::clone(&starts),
            to_send,
            to_receive,
        ));
        let writer = tokio::spawn(write(sender, out_rx, signer, state.id(), state.vault()));

        let id = state.id();
        let (mut sent, mut received) = (0, 0);
        while sent < to_send || received < to_receive {
            tokio::select! {
                Some((change, proof, signature)) = inbox.recv(), if received < to_receive => {
                    state.receive(&change, &proof, &signature, now).expect("valid update");
                    let nonce = proof.nonce;
                    let event = Event::Received { change, proof, signature, now };
                    let commit = store.enqueue(id, &event).await.expect("enqueue");
                    out.send((commit, Outgoing::Ack { nonce })).expect("writer");
                    received += 1;
                }
                permit = window.acquire(), if sent < to_send => {
                    permit.expect("window open").forget();
                    starts.lock().expect("starts").push(Instant::now());
                    let change = Change::Pay { amount: U256::from(1) };
                    let proof = state.send(&change, now).expect("capacity");
                    let event = Event::Sent { change: change.clone(), proof: proof.clone(), now };
                    let commit = store.enqueue(id, &event).await.expect("enqueue");
                    out.send((commit, Outgoing::Update { change, proof })).expect("writer");
                    sent += 1;
                }
            }
        }
        drop(out);
        writer.await.expect("writer task");
        reader.await.expect("reader task")
    }
}

/// Sends each outgoing message, in order, once its event is durable; signs updates then.
async fn write(
    mut sender: Sender,
    mut queue: mpsc::UnboundedReceiver<(Commit, Outgoing)>,
    signer: PrivateKeySigner,
    channel_id: B256,
    vault: Address,
) {
    while let Some((commit, outgoing)) = queue.recv().await {
        commit.durable().await.expect("append");
        let msg = match outgoing {
            Outgoing::Update { change, proof } => {
                let signature = sign_message(&signer, &proof, CHAIN_ID, vault).expect("sign");
                Message::Update {
                    change,
                    proof,
                    signature,
                }
            }
            Outgoing::Ack { nonce } => Message::Ack { channel_id, nonce },
        };
        sender.send(&msg).await.expect("send");
    }
}

/// Forwards updates to the state's owner; on each ack, records the payment's latency and frees
/// a slot of the window. Returns once every expected message arrived.
async fn read(
    mut receiver: Receiver,
    inbox: mpsc::Sender<(Change, BalanceProof, Signature)>,
    window: Arc<Semaphore>,
    starts: Arc<Mutex<Vec<Instant>>>,
    to_send: usize,
    to_receive: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(to_send);
    let mut updates = 0;
    while latencies.len() < to_send || updates < to_receive {
        match receiver.recv().await.expect("recv") {
            Message::Update {
                change,
                proof,
                signature,
            } => {
                inbox.send((change, proof, signature)).await.expect("inbox");
                updates += 1;
            }
            Message::Ack { nonce, .. } => {
                // Nonces start at 1 in a fresh channel, and starts are pushed in nonce order.
                let start = starts.lock().expect("starts")[nonce as usize - 1];
                latencies.push(start.elapsed());
                window.add_permits(1);
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    latencies
}

/// Two connected clients (A dials B over 127.0.0.1) sharing a fresh channel.
async fn pair() -> (Peer, Peer) {
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
    let (opening_a, opening_b) = (opening(Side::A), opening(Side::B));
    let transport_a = Transport::new(signer_a.clone()).expect("transport");
    let transport_b = Transport::new(signer_b.clone()).expect("transport");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (conn_a, conn_b) = tokio::join!(transport_a.connect(addr, signer_b.address()), async {
        let (stream, _) = listener.accept().await.expect("accept");
        transport_b.accept(stream).await
    });
    let a = Peer::open(signer_a, opening_a, conn_a.expect("connect")).await;
    let b = Peer::open(signer_b, opening_b, conn_b.expect("handshake")).await;
    (a, b)
}

/// A pays B `a_to_b` times while B pays A `b_to_a` times, all at once.
async fn run(name: &'static str, a_to_b: usize, b_to_a: usize) -> Outcome {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (a, b) = pair().await;
    let stores = [Arc::clone(&a.store), Arc::clone(&b.store)];
    let dirs = [a.dir.clone(), b.dir.clone()];
    let commits = || stores.iter().map(|s| s.commits()).sum::<u64>();
    let commits_before = commits();

    let start = Instant::now();
    let a = tokio::spawn(a.run(a_to_b, b_to_a, now));
    let b = tokio::spawn(b.run(b_to_a, a_to_b, now));
    let (a, b) = (a.await.expect("peer A"), b.await.expect("peer B"));
    let elapsed = start.elapsed();

    let commits = commits() - commits_before;
    let mut latencies = [a, b].concat();
    latencies.sort_unstable();
    for (store, dir) in stores.into_iter().zip(dirs) {
        Peer::remove(store, dir).await;
    }
    Outcome {
        name,
        payments: a_to_b + b_to_a,
        elapsed,
        latencies,
        commits,
    }
}

/// Payments from A to B only.
async fn one_way(payments: usize) -> Outcome {
    run("one way", payments, 0).await
}

/// Half the payments from A to B, half from B to A, concurrently.
async fn both_ways(payments: usize) -> Outcome {
    run("both ways", payments / 2, payments / 2).await
}

/// Mean time of one `sign_message` and one `verify_with_key` of a balance proof, in seconds.
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
    let key = signing::verifying_key(&signer);
    let digest = signing_hash(&proof(7), CHAIN_ID, vault);
    let signature = sign_message(&signer, &proof(7), CHAIN_ID, vault).expect("sign");
    let verify = mean(Box::new(|_| {
        signing::verify_with_key(&key, black_box(&digest), &signature).expect("valid");
    }));
    (sign, verify)
}

fn main() {
    let (sign, verify) = signature_costs();
    let per_core = 1.0 / (sign + verify);
    let cores = 2;
    println!(
        "sign_message {:.1} µs + verify_with_key {:.1} µs: signature-bound limit {per_core:.0} \
         payments/s per core, {:.0} on {cores} cores",
        sign * 1e6,
        verify * 1e6,
        per_core * f64::from(cores),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes = runtime.block_on(async {
        one_way(WARM_UP).await;
        let one = one_way(PAYMENTS).await;
        both_ways(WARM_UP).await;
        let both = both_ways(PAYMENTS).await;
        [one, both]
    });
    println!();
    println!(
        "| scenario (window {WINDOW}/direction) | payments | payments/s | p50 latency | \
         p99 latency | commits/payment | signature bound, {cores} cores (payments/s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for outcome in &outcomes {
        println!("{}", outcome.row(per_core * f64::from(cores)));
    }
}
