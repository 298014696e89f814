//! Crash safety: Alice's client runs in its own process (`crash_peer`), paying Bob in a loop
//! while Bob pays her back, and is killed with SIGKILL at random moments, 20 times. After each
//! restart the two must agree; at the end a cooperative close must pay exactly the agreed
//! balances.

use std::{process::Stdio, time::Duration};

use alloy::primitives::{Address, U256};
use eyre::{ensure, Result};
use keel_client::{Client, ClientError};

use crate::client_flow::{config, expect_settled, holdings, wait_agreed, wait_until, Pair};

const KILLS: usize = 20;

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

fn deployment_json(pair: &Pair) -> String {
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

    // Bob pays Alice whenever she is connected.
    let bob = pair.bob.clone();
    let bob_pays = tokio::spawn(async move {
        let mut paid = 0u64;
        loop {
            match bob.pay(id, U256::from(3)).await {
                Ok(()) => paid += 1,
                Err(ClientError::PeerOffline(_)) => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if paid >= 1_000_000 {
                return Ok(());
            }
        }
    });

    let key = alloy::hex::encode(pair.net.alice.signer.to_bytes());
    let mut received = Vec::new();
    for kill in 0..KILLS {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_crash_peer"))
            .env("KEEL_KEY", &key)
            .env("KEEL_STORE", &store)
            .env("KEEL_RPC", pair.net.rpc_url())
            .env("KEEL_DEPLOYMENT", deployment_json(&pair))
            .env("KEEL_PEER", pair.net.bob.address().to_string())
            .env("KEEL_PEER_ADDR", pair.bob_addr.to_string())
            .env("KEEL_CHANNEL", id.to_string())
            .env(
                "KEEL_NOW",
                keel_client::client::Clock::now(&pair.clock).to_string(),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // Let it connect and pay for a while, then kill it mid-stream.
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        if let Some(status) = child.try_wait()? {
            eyre::bail!("crash_peer exited early with {status} (kill {kill})");
        }
        child.start_kill()?;
        child.wait().await?;
        received.push(pair.bob.channel(id).await?.received_nonce);
    }
    ensure!(
        received.windows(2).filter(|w| w[1] > w[0]).count() >= KILLS / 4,
        "the payer made progress between most kills: {received:?}"
    );

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
    bob_pays.abort();
    let _ = bob_pays.await;
    let pair = Pair { alice, ..pair };
    // Bob's last payment, if one was in flight, lands; then both agree.
    wait_until(&pair.bob, id, |b| b.sent_nonce > 0).await?;
    let (a, b) = wait_agreed(&pair, id).await?;
    let info = pair.alice.channel(id).await?;
    ensure!(info.failed.is_none(), "{info:?}");
    ensure!(a + b == deposit + deposit, "funds are conserved");
    println!(
        "after {KILLS} kills: alice sent {} payments, bob {}",
        info.sent_nonce, info.received_nonce
    );

    let mut events = pair.bob.subscribe();
    pair.alice.close(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    ensure!(holdings(&pair.net, Address::ZERO, info.vault).await? == U256::ZERO);
    Ok(())
}
