//! A watchtower in a process of its own, for the test that kills it with SIGKILL
//! (tests/it/tower.rs): `keel_watchtower::Tower` over a SQLite file, polling the devnet every
//! 50 ms with no confirmation depth.
//!
//! Configured by environment: `KEEL_KEY` (hex private key: pays refutations, signs receipts),
//! `KEEL_RPC` (node URL), `KEEL_DEPLOYMENT` (the deployments file's JSON), `KEEL_TOWER_DB`
//! (a SQLite path or a `postgres://` URL), `KEEL_LISTEN` (host:port), optionally
//! `KEEL_CLAIM_LEASE_MS` (how long its claims on responses last unless renewed; the daemon's
//! `--claim-lease-secs`). Reports `listening <addr>` on stdout once the API is up, then runs
//! until killed.
#![forbid(unsafe_code)]

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use eyre::{Result, WrapErr};
use keel_bindings::Deployment;
use keel_client::chain::{ChainConfig, FeePolicy};
use keel_watchtower::{responder::CLAIM_LEASE, Limits, Tower, TowerConfig};

fn var(name: &str) -> Result<String> {
    std::env::var(name).wrap_err_with(|| format!("{name} is not set"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let key: PrivateKeySigner = var("KEEL_KEY")?.parse()?;
    let deployment: Deployment = var("KEEL_DEPLOYMENT")?.parse()?;
    let chain = ChainConfig {
        confirmations: 0,
        poll_interval: Duration::from_millis(50),
        max_block_range: 5,
        request_timeout: Duration::from_secs(2),
        receipt_timeout: Duration::from_secs(10),
        rebroadcast_interval: Duration::from_secs(1),
        ..ChainConfig::new(var("KEEL_RPC")?, deployment)
    };
    let claim_lease = match std::env::var("KEEL_CLAIM_LEASE_MS") {
        Ok(ms) => Duration::from_millis(ms.parse().wrap_err("KEEL_CLAIM_LEASE_MS")?),
        Err(_) => CLAIM_LEASE,
    };
    let config = TowerConfig {
        chain,
        database: var("KEEL_TOWER_DB")?.into(),
        listen: var("KEEL_LISTEN")?.parse()?,
        quota: 10,
        watch_period: 30 * 86_400,
        limits: Limits::default(),
        fees: FeePolicy {
            bump_interval: Duration::from_millis(500),
            ..FeePolicy::DEFAULT
        },
        claim_lease,
        refuters: Vec::new(),
    };
    let tower = Tower::start(config, key).await?;
    // The test reads this line; stdout carries nothing else.
    println!("listening {}", tower.local_addr());
    tower.wait().await;
    eyre::bail!("the tower stopped")
}
