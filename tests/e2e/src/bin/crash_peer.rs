//! A payer for the crash-safety test (tests/it/crash.rs): runs one `keel_client::Client` that
//! pays its peer in a loop until the test kills it with SIGKILL.
//!
//! Reports on stdout, one line per event, so the test can account for every payment:
//! `start <payer> <amount>` before a `pay` call and `done <payer> <amount>` once it returned
//! `Ok`. Payer `p` (0..8) pays `256·j + 2^p` wei: the low byte of a sum of payments that were
//! in flight at a kill, one per payer at most, says which of them landed.
//!
//! Configured by environment: `KEEL_KEY` (hex private key), `KEEL_STORE` (SQLite path),
//! `KEEL_RPC` (node URL), `KEEL_DEPLOYMENT` (the deployments file's JSON), `KEEL_PEER` (address),
//! `KEEL_PEER_ADDR` (host:port), `KEEL_CHANNEL` (channel id), `KEEL_NOW` (Unix time for the
//! client's clock: the devnet's).
//!
//! The hostile-peer suite (tests/it/hostile.rs) runs it too, as the attacked client in a
//! process of its own so that its resident memory can be read from `/proc`. Optional:
//! `KEEL_LISTEN` (host:port to listen on; the bound address is reported as
//! `listening <addr>` before any payment), `KEEL_PAYERS` (1 to 8, default 8), and overrides of
//! the client's limits, `KEEL_PEER_QUEUE`, `KEEL_MAX_PEERS`, `KEEL_MAX_HANDSHAKES`,
//! `KEEL_MAX_HANDSHAKES_PER_IP`, `KEEL_HANDSHAKE_TIMEOUT_MS` (to show a hostile case failing
//! without its protection), `KEEL_IDLE_TIMEOUT_MS`.
//!
//! With `KEEL_EVENTS=<name>` it also consumes its durable events as the consumer `<name>`, as
//! an application would: `event <seq> <nonce> <amount>` for each payment received, before it
//! is marked handled, and `handled <seq>` once the mark is durable.
#![forbid(unsafe_code)]

use std::{sync::Arc, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use eyre::{Result, WrapErr};
use keel_bindings::Deployment;
use keel_client::{
    chain::ChainConfig,
    client::{ClientError, ManualClock},
    Client, Config,
};
use keel_core::{Address, B256, U256};

fn var(name: &str) -> Result<String> {
    std::env::var(name).wrap_err_with(|| format!("{name} is not set"))
}

/// An optional numeric setting: `None` when unset.
fn number(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(
            v.parse()
                .wrap_err_with(|| format!("{name} is not a number"))?,
        )),
        Err(_) => Ok(None),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let signer: PrivateKeySigner = var("KEEL_KEY")?.parse()?;
    let deployment: Deployment = var("KEEL_DEPLOYMENT")?.parse()?;
    let peer: Address = var("KEEL_PEER")?.parse()?;
    // host:port; a host name is resolved by `connect`.
    let peer_addr = var("KEEL_PEER_ADDR")?;
    let channel: B256 = var("KEEL_CHANNEL")?.parse()?;
    let mut config = Config::new(signer, var("KEEL_STORE")?);
    config.clock = Arc::new(ManualClock::new(var("KEEL_NOW")?.parse()?));
    config.chains = vec![ChainConfig {
        confirmations: 0,
        poll_interval: Duration::from_millis(50),
        ..ChainConfig::new(var("KEEL_RPC")?, deployment)
    }];
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    // Frequent snapshots, so kills also land around them and restarts load from them.
    config.snapshot_every = 100;
    for (name, field) in [
        ("KEEL_PEER_QUEUE", &mut config.peer_queue),
        ("KEEL_MAX_PEERS", &mut config.max_peers),
        ("KEEL_MAX_HANDSHAKES", &mut config.max_handshakes),
        (
            "KEEL_MAX_HANDSHAKES_PER_IP",
            &mut config.max_handshakes_per_ip,
        ),
    ] {
        if let Some(n) = number(name)? {
            *field = n;
        }
    }
    if let Some(ms) = number("KEEL_HANDSHAKE_TIMEOUT_MS")? {
        config.handshake_timeout = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = number("KEEL_IDLE_TIMEOUT_MS")? {
        config.idle_timeout = Duration::from_millis(ms as u64);
    }
    let payers = number("KEEL_PAYERS")?.unwrap_or(8).clamp(1, 8) as u64;
    let client = Client::start(config).await?;
    if let Ok(at) = std::env::var("KEEL_LISTEN") {
        let bound = client.listen(at.as_str()).await?;
        println!("listening {bound}");
    }
    client.connect(peer_addr, peer).await?;
    if let Ok(name) = std::env::var("KEEL_EVENTS") {
        let mut events = client.events(&name).await?;
        tokio::spawn(async move {
            let failure = loop {
                let stored = match events.next().await {
                    Ok(stored) => stored,
                    Err(e) => break e,
                };
                if let keel_client::ClientEvent::PaymentReceived { nonce, amount, .. } =
                    stored.event
                {
                    println!("event {} {nonce} {amount}", stored.seq);
                }
                if let Err(e) = events.handled(stored.seq).await {
                    break e;
                }
                println!("handled {}", stored.seq);
            };
            // Not a line the test knows: it fails the run.
            println!("events-failed {failure}");
        });
    }
    // Eight payers keep updates in flight, so a kill lands between store and send, between
    // send and ack, and inside group commits.
    let payers: Vec<_> = (0..payers)
        .map(|p| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut j = 0u64;
                loop {
                    let amount = U256::from(((j % 997 + 1) << 8) | (1 << p));
                    // A line is one write (stdout is line-buffered), so a kill never splits one.
                    println!("start {p} {amount}");
                    match client.pay(channel, amount).await {
                        Ok(()) => {
                            println!("done {p} {amount}");
                            j += 1;
                        }
                        Err(ClientError::PeerOffline(_)) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
        })
        .collect();
    for payer in payers {
        payer.await??;
    }
    Ok(())
}
