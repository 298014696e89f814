//! A forwarding hub for the hub crash test (tests/it/multihop_crash.rs): runs one
//! `keel_client::Client` that listens for its upstream peer, dials its downstream peer, and
//! forwards multi-hop payments until the test kills it with SIGKILL.
//!
//! Configured by environment: `KEEL_KEY` (hex private key), `KEEL_STORE` (SQLite path),
//! `KEEL_RPC` (node URL), `KEEL_DEPLOYMENT` (the deployments file's JSON), `KEEL_NOW` (Unix
//! time for the client's clock: the devnet's), `KEEL_LISTEN` (host:port, the same on every
//! restart so the upstream peer's redials find it), `KEEL_PEER` and `KEEL_PEER_ADDR` (the
//! downstream peer's address and host:port), `KEEL_CHANNEL` (the channel to forward into),
//! `KEEL_FEE_BASE` and `KEEL_FEE_PPM` (the hub's fee for it). Prints `listening <addr>` once it
//! accepts connections.
#![forbid(unsafe_code)]

use std::{sync::Arc, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use eyre::{Result, WrapErr};
use keel_bindings::Deployment;
use keel_client::{
    chain::ChainConfig,
    client::{ForwardPolicy, ManualClock},
    Client, Config,
};
use keel_core::{forwarding::FeePolicy, Address, B256, U256};

fn var(name: &str) -> Result<String> {
    std::env::var(name).wrap_err_with(|| format!("{name} is not set"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let signer: PrivateKeySigner = var("KEEL_KEY")?.parse()?;
    let deployment: Deployment = var("KEEL_DEPLOYMENT")?.parse()?;
    let mut config = Config::new(signer, var("KEEL_STORE")?);
    config.clock = Arc::new(ManualClock::new(var("KEEL_NOW")?.parse()?));
    config.chains = vec![ChainConfig {
        confirmations: 0,
        poll_interval: Duration::from_millis(50),
        ..ChainConfig::new(var("KEEL_RPC")?, deployment)
    }];
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    let client = Client::start(config).await?;
    let channel: B256 = var("KEEL_CHANNEL")?.parse()?;
    client
        .set_forward_policy(
            channel,
            ForwardPolicy::new(
                FeePolicy {
                    base: var("KEEL_FEE_BASE")?.parse::<U256>()?,
                    proportional_millionths: var("KEEL_FEE_PPM")?.parse()?,
                },
                keel_client::client::DEFAULT_EXPIRY_DELTA,
            ),
        )
        .await?;
    let listen = var("KEEL_LISTEN")?;
    // The killed run's socket may hold the port for a moment.
    let mut bound = client.listen(listen.as_str()).await;
    for _ in 0..100 {
        if bound.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        bound = client.listen(listen.as_str()).await;
    }
    println!("listening {}", bound?);
    let peer: Address = var("KEEL_PEER")?.parse()?;
    client
        .connect(var("KEEL_PEER_ADDR")?.as_str(), peer)
        .await?;
    // Forwarding happens in the client's tasks; this one only keeps the process alive.
    loop {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
}
