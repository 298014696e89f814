//! Crash safety: Alice's client runs in its own process (`crash_peer`), paying Bob in a loop
//! while Bob pays her back, and is killed with SIGKILL at random moments, 20 times. Every
//! payment either side's API reported complete must be in the final balances, and none twice:
//! after each kill, what Alice's store holds is checked against what the killed process
//! reported; at the end both directions are checked against those totals, and a cooperative
//! close must pay exactly the agreed balances.
//!
//! The applications' events are checked too. Bob's durable event log must hold one
//! `PaymentReceived` per payment Alice made (each nonce once, summing to what she sent), however
//! she died. Alice's process consumes its own events as an application does (reports each
//! payment, then marks it handled); after the kills Alice resumes that consumer from its cursor:
//! it must hand out nothing already marked handled, and what the runs reported plus what it
//! hands out must be each of Bob's payments exactly once.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use alloy::primitives::{Address, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{store::Store, Client, ClientError};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client_flow::{config, expect_settled, holdings, wait_agreed, Pair};

const KILLS: usize = 20;

/// Payers in `crash_peer`; payer `p`'s amounts are `2^p` modulo 256.
const PAYERS: usize = 8;

/// Longest wait for a run of `crash_peer` to report its payments; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// A small deterministic generator, so a failing run can be replayed from its printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What one run of `crash_peer` reported on stdout.
#[derive(Debug, Default)]
struct Reported {
    /// Payments whose `pay` returned `Ok`, and their sum.
    done: u64,
    done_sum: U256,
    /// Per payer, the payment it had started and not seen complete when the run ended.
    in_flight: [Option<U256>; PAYERS],
    /// Payments its event consumer reported, as (seq, nonce, amount).
    events: Vec<(u64, u64, U256)>,
    /// The last event its consumer marked handled.
    handled: u64,
}

impl Reported {
    fn note(&mut self, line: &str) -> Result<()> {
        let mut words = line.split_whitespace();
        let number = |word: Option<&str>| -> Result<u64> {
            Ok(word.ok_or_else(|| eyre!("bad line {line:?}"))?.parse()?)
        };
        match line.split_whitespace().next() {
            Some("event") => {
                words.next();
                let (seq, nonce) = (number(words.next())?, number(words.next())?);
                let amount = words.next().ok_or_else(|| eyre!("bad line {line:?}"))?;
                self.events.push((seq, nonce, amount.parse()?));
                return Ok(());
            }
            Some("handled") => {
                words.next();
                self.handled = number(words.next())?;
                return Ok(());
            }
            _ => {}
        }
        let (what, payer, amount) = (words.next(), words.next(), words.next());
        let payer: usize = payer.ok_or_else(|| eyre!("bad line {line:?}"))?.parse()?;
        let amount: U256 = amount.ok_or_else(|| eyre!("bad line {line:?}"))?.parse()?;
        ensure!(payer < PAYERS, "bad payer in {line:?}");
        match what {
            Some("start") => self.in_flight[payer] = Some(amount),
            Some("done") => {
                ensure!(
                    self.in_flight[payer].take() == Some(amount),
                    "payer {payer} finished a payment it did not start: {line:?}"
                );
                self.done += 1;
                self.done_sum += amount;
            }
            _ => eyre::bail!("bad line {line:?}"),
        }
        Ok(())
    }
}

/// Alice's side of the channel as her store holds it: (nonce, cumulative amount sent).
async fn stored_direction(path: &std::path::Path) -> Result<(u64, U256)> {
    let store = Store::open(path).await?;
    let states = store.load_all().await;
    store.close().await;
    let state = states?
        .pop()
        .ok_or_else(|| eyre!("alice's store has no channel"))?;
    let own = state.direction(state.me());
    Ok((own.nonce, own.transferred))
}

/// Checks a killed run against Alice's store: it moved from `before` to `after` by every
/// payment reported complete plus some of those in flight, each at most once.
fn account(kill: usize, run: &Reported, before: (u64, U256), after: (u64, U256)) -> Result<()> {
    let context = || format!("kill {kill}: {run:?}, store {before:?} -> {after:?}");
    ensure!(
        after.1 >= before.1 + run.done_sum,
        "payments reported complete are missing from the store: {}",
        context()
    );
    // The rest came from payments in flight at the kill, at most one per payer, and payer p's
    // amounts are 2^p modulo 256: the low byte names the payers whose payment landed.
    let rest = after.1 - before.1 - run.done_sum;
    let landed: Vec<usize> = (0..PAYERS).filter(|p| rest.bit(*p)).collect();
    let mut expected = U256::ZERO;
    for &p in &landed {
        expected += run.in_flight[p]
            .ok_or_else(|| eyre!("payer {p} had nothing in flight: {}", context()))?;
    }
    ensure!(
        rest == expected,
        "the store holds {rest} beyond the completed payments, not the sum of in-flight ones          (a payment counted twice?): {}",
        context()
    );
    ensure!(
        after.0 - before.0 == run.done + landed.len() as u64,
        "nonces moved by {}, payments by {} + {}: {}",
        after.0 - before.0,
        run.done,
        landed.len(),
        context()
    );
    Ok(())
}

/// Reads durable events from `events` until `done` says the payments seen, as (seq, nonce,
/// amount), are complete; at most [`PATIENCE`].
async fn payments(
    events: &mut keel_client::Events,
    channel: alloy::primitives::B256,
    mut seen: Vec<(u64, u64, U256)>,
    done: impl Fn(&[(u64, u64, U256)]) -> bool,
) -> Result<Vec<(u64, u64, U256)>> {
    tokio::time::timeout(PATIENCE, async {
        while !done(&seen) {
            let stored = events.next().await?;
            if let keel_client::ClientEvent::PaymentReceived {
                channel_id,
                nonce,
                amount,
            } = stored.event
            {
                if channel_id == channel {
                    seen.push((stored.seq, nonce, amount));
                }
            }
        }
        Ok::<_, eyre::Report>(seen)
    })
    .await
    .map_err(|_| eyre!("payments missing from the event log"))?
}

/// Each payment once in each payee's events: Bob's log holds Alice's `sent` payments; Alice's
/// consumer (the killed runs' `reported` events, marked up to `handled`, and what it hands out
/// once resumed) holds Bob's `bob_paid` payments of 3 wei.
async fn check_events(
    pair: &Pair,
    id: alloy::primitives::B256,
    bob_paid: u64,
    reported: Vec<(u64, u64, U256)>,
    handled: u64,
    sent: (u64, U256),
) -> Result<()> {
    // Alice's last payment (after the kills) is nonce sent.0 + 1.
    let alice_nonces = sent.0 + 1;
    let mut bob_log = pair.bob.events_after(0);
    let bob_got = payments(&mut bob_log, id, Vec::new(), |seen| {
        seen.last().is_some_and(|p| p.1 >= alice_nonces)
    })
    .await?;
    let nonces: Vec<u64> = bob_got.iter().map(|p| p.1).collect();
    ensure!(
        nonces == (1..=alice_nonces).collect::<Vec<_>>(),
        "bob's events do not hold each of alice's {alice_nonces} payments once, in order"
    );
    let sum = bob_got.iter().fold(U256::ZERO, |s, p| s + p.2);
    ensure!(
        sum == sent.1 + U256::from(1),
        "bob's events sum to {sum}, alice sent {}",
        sent.1 + U256::from(1)
    );

    let mut resumed = pair.alice.events("app").await?;
    // A run can be killed after a mark is durable and before it prints `handled`: the cursor is
    // then past the last mark reported, never before it. The checks below still catch a lost
    // or repeated payment: the resumed consumer hands out nothing at or below its cursor, and
    // the reported and resumed events together must hold each payment once.
    let cursor = resumed.position();
    ensure!(
        cursor >= handled,
        "alice's cursor is at {cursor}, behind the runs' marks up to {handled}"
    );
    // Read until the runs' reports and the resumed consumer together name every nonce.
    let known: std::collections::BTreeSet<u64> = reported.iter().map(|p| p.1).collect();
    let fresh = payments(&mut resumed, id, Vec::new(), |seen| {
        let mut all = known.clone();
        all.extend(seen.iter().map(|p| p.1));
        all.len() as u64 >= bob_paid
    })
    .await?;
    ensure!(
        fresh.iter().all(|p| p.0 > cursor),
        "the resumed consumer handed out an event marked handled before (cursor {cursor})"
    );
    let mut all: std::collections::BTreeMap<u64, (u64, U256)> = Default::default();
    for (seq, nonce, amount) in reported.into_iter().chain(fresh) {
        if let Some(before) = all.insert(seq, (nonce, amount)) {
            ensure!(before == (nonce, amount), "event {seq} changed");
        }
    }
    let nonces: Vec<u64> = all.values().map(|v| v.0).collect();
    ensure!(
        nonces == (1..=bob_paid).collect::<Vec<_>>(),
        "alice's consumer did not get each of bob's {bob_paid} payments once: {} events",
        nonces.len()
    );
    ensure!(all.values().all(|v| v.1 == U256::from(3)));
    Ok(())
}

pub(crate) fn deployment_json(pair: &Pair) -> String {
    let d = &pair.net.deployment;
    format!(
        r#"{{"chainId":{},"deployedAtBlock":{},"channelFactory":"{}","vaultImplementation":"{}","secretRegistry":"{}","minChallengePeriod":{},"maxChallengePeriod":{}}}"#,
        d.chain_id,
        d.deployed_at_block,
        d.channel_factory,
        d.vault_implementation,
        d.secret_registry,
        d.min_challenge_period,
        d.max_challenge_period
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_killed_twenty_times_loses_nothing() -> Result<()> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let pair = Pair::start("crash").await?;
    let deposit = crate::client_flow::units("1");
    let id = pair.open(Address::ZERO, deposit).await?;
    // From here Alice runs in the child process, on the same store.
    let store = pair.dir.0.join("alice.db");
    pair.alice.clone().shutdown().await;

    // Bob pays Alice whenever she is connected, until told to stop; returns how many of his
    // payments completed (all of 3 wei).
    let stop = Arc::new(AtomicBool::new(false));
    let bob = pair.bob.clone();
    let stopping = stop.clone();
    let bob_pays = tokio::spawn(async move {
        let mut paid = 0u64;
        while !stopping.load(Ordering::SeqCst) {
            match bob.pay(id, U256::from(3)).await {
                Ok(()) => paid += 1,
                Err(ClientError::PeerOffline(_)) => {}
                Err(e) => return Err(e),
            }
            // Leaves Alice's payers most of the channel.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(paid)
    });

    let key = alloy::hex::encode(pair.net.alice.signer.to_bytes());
    let mut stored = stored_direction(&store).await?;
    // What Alice's event consumer reported over the runs, and the last event it marked.
    let (mut reported, mut handled) = (Vec::new(), 0u64);
    for kill in 0..KILLS {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_crash_peer"))
            .env("KEEL_KEY", &key)
            .env("KEEL_STORE", &store)
            .env("KEEL_RPC", pair.net.rpc_url())
            .env("KEEL_DEPLOYMENT", deployment_json(&pair))
            .env("KEEL_PEER", pair.net.bob.address().to_string())
            .env("KEEL_PEER_ADDR", pair.bob_addr.to_string())
            .env("KEEL_CHANNEL", id.to_string())
            .env("KEEL_EVENTS", "app")
            .env(
                "KEEL_NOW",
                keel_client::client::Clock::now(&pair.clock).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        // Kill it mid-stream, once it has completed a random number of payments (so every run
        // makes progress, and the kills land at random points of the payment pipeline).
        let target = 1 + rng.below(400);
        let mut run = Reported::default();
        tokio::time::timeout(PATIENCE, async {
            while run.done < target {
                match lines.next_line().await? {
                    Some(line) => run.note(&line)?,
                    None => eyre::bail!("crash_peer exited early (kill {kill}): {run:?}"),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| {
            eyre!("crash_peer made no {target} payments in time (kill {kill}): {run:?}")
        })??;
        child.start_kill()?;
        child.wait().await?;
        // Whatever it wrote before dying.
        while let Some(line) = lines.next_line().await? {
            run.note(&line)?;
        }
        let now = stored_direction(&store).await?;
        account(kill, &run, stored, now)?;
        stored = now;
        handled = handled.max(run.handled);
        reported.extend(run.events);
    }

    // Alice comes back in-process on the same store; both sides agree after the resync.
    let alice = Client::start(config(
        &pair.net,
        &pair.dir,
        &pair.clock,
        &pair.net.alice,
        "alice",
    ))
    .await?;
    alice.connect(pair.bob_addr, pair.net.bob.address()).await?;
    alice.pay(id, U256::from(1)).await?;
    stop.store(true, Ordering::SeqCst);
    // Bob's last payment completes now that Alice is back; then his task ends.
    let bob_paid = bob_pays.await??;
    ensure!(bob_paid > 0, "bob paid nothing in {KILLS} runs");
    let pair = Pair { alice, ..pair };
    let (a, b) = wait_agreed(&pair, id).await?;
    check_events(&pair, id, bob_paid, reported, handled, stored).await?;
    let info = pair.alice.channel(id).await?;
    ensure!(info.failed.is_none(), "{info:?}");

    // Each direction holds exactly what its payer's API reported, plus the in-flight payments
    // the store accounted for above.
    let alice_sent = (stored.0 + 1, stored.1 + U256::from(1));
    let bob_sent = (bob_paid, U256::from(3 * bob_paid));
    let latest = |proof: Option<(keel_core::BalanceProof, _)>| {
        proof.map(|(p, _)| (p.nonce, p.transferredAmount))
    };
    ensure!(latest(pair.bob.latest_peer_proof(id).await?) == Some(alice_sent));
    ensure!(latest(pair.alice.latest_peer_proof(id).await?) == Some(bob_sent));
    ensure!(
        a == deposit - alice_sent.1 + bob_sent.1,
        "alice's balance {a}"
    );
    ensure!(
        b == deposit + alice_sent.1 - bob_sent.1,
        "bob's balance {b}"
    );
    println!(
        "after {KILLS} kills: alice sent {} payments, bob {}",
        alice_sent.0, bob_sent.0
    );

    let mut events = pair.bob.subscribe();
    pair.alice.close(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    ensure!(holdings(&pair.net, Address::ZERO, info.vault).await? == U256::ZERO);
    Ok(())
}
