//! A hub killed with SIGKILL mid-forward, 10 times at random moments, while payments flow
//! through it: Bob runs in his own process (`hub_peer`), Alice pays Carol's invoices through
//! him, three at a time, and he is killed and restarted from his store after a random delay
//! each round. Afterwards every payment the payee was paid for is paid by the payer with the
//! hub's fee and no other moved anything: with no clock moved every lock settles (the hub
//! stores each onion with its lock, both ways, so it resumes whatever it was doing), each
//! channel holds exactly what the paid invoices say, and every payment the payer saw complete
//! is among them. A second test kills the hub while it waits to forward (the payee offline):
//! restarted, it forwards from the onion it stored before waiting.

use std::{collections::HashSet, process::Stdio, time::Duration};

use alloy::primitives::{Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{client::Clock, ClientError, ClientEvent};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};

use crate::{
    client_flow::{units, wait_until},
    multihop::{policy, settled_at, Line},
};

const KILLS: usize = 10;
/// Payments started before each kill.
const PER_ROUND: usize = 3;

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

/// How to start Bob's process.
struct Hub<'a> {
    line: &'a Line,
    channel: B256,
}

impl Hub<'_> {
    /// Starts `hub_peer` with the clients' current time; returns once it listens.
    async fn spawn(&self) -> Result<Child> {
        let net = &self.line.net;
        let d = &net.deployment;
        let deployment = format!(
            r#"{{"chainId":{},"deployedAtBlock":{},"channelFactory":"{}","vaultImplementation":"{}","secretRegistry":"{}","minChallengePeriod":{},"maxChallengePeriod":{}}}"#,
            d.chain_id,
            d.deployed_at_block,
            d.channel_factory,
            d.vault_implementation,
            d.secret_registry,
            d.min_challenge_period,
            d.max_challenge_period
        );
        let listen = self.line.addrs[1].ok_or_else(|| eyre!("bob listens"))?;
        let carol = self.line.addrs[2].ok_or_else(|| eyre!("carol listens"))?;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub_peer"))
            .env("KEEL_KEY", alloy::hex::encode(net.bob.signer.to_bytes()))
            .env("KEEL_STORE", self.line.dir.0.join("bob.db"))
            .env("KEEL_RPC", net.rpc_url())
            .env("KEEL_DEPLOYMENT", deployment)
            .env("KEEL_NOW", self.line.clock.now().to_string())
            .env("KEEL_LISTEN", listen.to_string())
            .env("KEEL_PEER", net.carol.address().to_string())
            .env("KEEL_PEER_ADDR", carol.to_string())
            .env("KEEL_CHANNEL", self.channel.to_string())
            .env("KEEL_FEE_BASE", HUB_FEE.0.to_string())
            .env("KEEL_FEE_PPM", HUB_FEE.1.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| eyre!("hub_peer did not start"))??;
        ensure!(
            first.as_deref().is_some_and(|l| l.starts_with("listening")),
            "hub_peer said {first:?}"
        );
        Ok(child)
    }
}

/// The payment hashes of the invoices Carol was paid, from her durable events.
async fn paid_invoices(carol: &keel_client::Client) -> Result<HashSet<B256>> {
    let mut events = carol.events_after(0);
    let mut paid = HashSet::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(300), events.next()).await {
        if let ClientEvent::InvoicePaid { payment_hash, .. } = next?.event {
            paid.insert(payment_hash);
        }
    }
    Ok(paid)
}

/// Bob's fee for forwarding into Bob–Carol: base (wei) and millionths.
const HUB_FEE: (u64, u32) = (700, 1_500);
/// Each channel's opening deposit, in ETH.
const DEPOSIT: &str = "1";

/// Alice–Bob–Carol on Anvil, Bob charging [`HUB_FEE`] into Bob–Carol and Alice told of that
/// channel; Bob then stopped, to run in his own process ([`Hub`]) from the same store and
/// address. Returns the line and its two channels.
async fn hub_line(name: &str) -> Result<(Line, B256, B256)> {
    let line = Line::start(name, 3).await?;
    let [alice, bob] = [&line.nodes[0], &line.nodes[1]];
    let deposit = units(DEPOSIT);
    let ab = line.open(0, Address::ZERO, deposit).await?;
    let bc = line.open(1, Address::ZERO, deposit).await?;
    bob.set_forward_policy(bc, policy(HUB_FEE.0, HUB_FEE.1))
        .await?;
    line.announce(alice, 1, bc, deposit).await?;
    bob.clone().shutdown().await;
    Ok((line, ab, bc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_forward_ten_times_settles_every_payment() -> Result<()> {
    let (line, ab, bc) = hub_line("multihop-crash").await?;
    let [alice, carol] = [&line.nodes[0], &line.nodes[2]];
    let (deposit, hub_policy) = (units(DEPOSIT), policy(HUB_FEE.0, HUB_FEE.1));
    let hub = Hub {
        line: &line,
        channel: bc,
    };
    let mut child = hub.spawn().await?;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let amount = units("0.001");
    let chain_id = line.net.chain_id;
    let mut payments = Vec::new();
    for _ in 0..KILLS {
        for _ in 0..PER_ROUND {
            let request = carol
                .create_invoice(chain_id, Address::ZERO, amount, 3_600, "")
                .await?;
            let payer = alice.clone();
            let hash = request.request.paymentHash;
            payments.push((
                hash,
                tokio::spawn(async move { payer.send_payment(&request, 1).await }),
            ));
            tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        child.start_kill()?;
        child.wait().await?;
        child = hub.spawn().await?;
    }
    // After the kills the hub forwards as before.
    let request = carol
        .create_invoice(chain_id, Address::ZERO, amount, 3_600, "after")
        .await?;
    let last = tokio::time::timeout(Duration::from_secs(60), alice.send_payment(&request, 3))
        .await
        .map_err(|_| eyre!("the payment after the kills did not complete"))??;
    ensure!(last.fees == hub_policy.fee.fee(amount)?);

    // Every lock settles with no clock moved: each onion is stored with its lock on both sides
    // of the hub, so a lock the hub had stored but not forwarded is forwarded after its restart,
    // and a lock it had stored but not sent leaves again with its onion; secrets are revealed
    // again after restarts.
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (a, c) = (alice.channel(ab).await?, carol.channel(bc).await?);
            if a.outgoing_locks.is_empty() && c.incoming_locks.is_empty() {
                return paid_invoices(carol).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let paid = settled
        .await
        .map_err(|_| eyre!("locks still pending with no clock moved"))??;

    // And every payment that locked anything completes for the payer too: none is left to its
    // lock's expiry. One may have found Bob down for longer than Alice's sync timeout and sent
    // nothing.
    let (started, mut completed) = (payments.len(), 0);
    for (hash, payment) in payments {
        let outcome = tokio::time::timeout(Duration::from_secs(30), payment)
            .await
            .map_err(|_| eyre!("payment {hash} never completed (seed {seed})"))??;
        match outcome {
            Ok(_) => {
                ensure!(
                    paid.contains(&hash),
                    "alice saw {hash} complete, carol was not paid"
                );
                completed += 1;
            }
            Err(ClientError::PeerOffline(_)) => {
                ensure!(
                    !paid.contains(&hash),
                    "carol was paid for {hash}, alice was told no"
                );
            }
            Err(e) => return Err(eyre!("payment {hash} failed: {e} (seed {seed})")),
        }
    }
    ensure!(
        paid.len() == completed + 1,
        "{} invoices paid for {completed} payments completed and the last",
        paid.len()
    );
    let n = U256::from(paid.len());
    let fee = hub_policy.fee.fee(amount)?;
    println!("after {KILLS} kills: {completed} of {started} payments and the last one completed");
    settled_at(carol, bc, n * amount, deposit - n * amount).await?;
    settled_at(alice, ab, deposit - n * (amount + fee), n * (amount + fee)).await?;
    Ok(())
}

/// Carol is offline, so Bob (his own process) stores Alice's lock and waits to forward it;
/// he is killed with SIGKILL while he waits. Restarted, with Carol back, he finds the onion he
/// stored before waiting and forwards the lock: the payment completes with no clock moved.
/// (Without the stored onion Bob would hold a lock he could neither forward nor claim, and
/// Alice's payment would end only with its expiry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_while_waiting_to_forward_forwards_after_its_restart() -> Result<()> {
    let (line, ab, bc) = hub_line("multihop-crash-wait").await?;
    let [alice, carol] = [&line.nodes[0], &line.nodes[2]];
    let (deposit, hub_policy) = (units(DEPOSIT), policy(HUB_FEE.0, HUB_FEE.1));
    let hub = Hub {
        line: &line,
        channel: bc,
    };
    let mut child = hub.spawn().await?;

    let amount = units("0.001");
    let request = carol
        .create_invoice(line.net.chain_id, Address::ZERO, amount, 3_600, "waited")
        .await?;
    carol.clone().shutdown().await;
    let payer = alice.clone();
    let paying = tokio::spawn(async move { payer.send_payment(&request, 1).await });
    wait_until(alice, ab, |i| !i.outgoing_locks.is_empty()).await?;
    // Bob stores the lock, then the onion, and waits for Carol (up to his sync timeout, 10 s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.start_kill()?;
    child.wait().await?;

    let carol = line.restart(2, false).await?;
    let _child = hub.spawn().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), paying)
        .await
        .map_err(|_| eyre!("the payment did not complete after the hub's restart"))???;
    ensure!(outcome.fees == hub_policy.fee.fee(amount)?);
    settled_at(&carol, bc, amount, deposit - amount).await?;
    settled_at(
        alice,
        ab,
        deposit - amount - outcome.fees,
        amount + outcome.fees,
    )
    .await?;
    Ok(())
}
