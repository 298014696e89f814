//! `keel-tower`: runs a Keel watchtower for one chain.
//!
//! ```text
//! KEEL_TOWER_KEY=0x… keel-tower --rpc-url http://127.0.0.1:8545 --chain-id 31337 \
//!     --deployments deployments --database tower.db --listen 127.0.0.1:8080
//! KEEL_TOWER_DATABASE=postgres://tower:…@db.internal/keel KEEL_TOWER_KEY=0x… keel-tower …
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use clap::Parser;
use eyre::{Result, WrapErr};
use keel_chain::{fees::GWEI, ChainConfig, Deployment, FeePolicy};
use keel_watchtower::{
    api::{DEFAULT_PER_CUSTOMER, DEFAULT_PER_SOURCE},
    Database, Limits, Rate, Tower, TowerConfig,
};

/// Guards Keel channels for offline customers: refutes stale closes with their newest proofs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "KEEL_TOWER_RPC_URL")]
    rpc_url: String,
    /// The chain's id: `<deployments>/<chain id>.json` names Keel's contracts on it.
    #[arg(long, env = "KEEL_TOWER_CHAIN_ID")]
    chain_id: u64,
    /// Directory of deployment files.
    #[arg(long, default_value = "deployments")]
    deployments: PathBuf,
    /// The database: a SQLite file (created if missing), or a `postgres://` URL for several
    /// instances over one database (set it by environment to keep a password out of `ps`).
    #[arg(long, env = "KEEL_TOWER_DATABASE", default_value = "keel-tower.db")]
    database: Database,
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Blocks an event must be deep before the tower acts on it.
    #[arg(long, default_value_t = 12)]
    confirmations: u64,
    /// How often to poll the chain, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    poll_ms: u64,
    /// Channels one customer may have watched.
    #[arg(long, default_value_t = 1_000)]
    quota: u32,
    /// Days a receipt promises watching.
    #[arg(long, default_value_t = 30)]
    watch_days: u64,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = keel_watchtower::api::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Appointments (and other requests) per second from one source address; 0: unlimited
    /// (behind a proxy, where every request comes from the proxy's address).
    #[arg(long, default_value_t = keel_watchtower::api::DEFAULT_PER_SOURCE.per_second)]
    rate_per_source: u32,
    /// Appointments per second from one customer; 0: unlimited.
    #[arg(long, default_value_t = keel_watchtower::api::DEFAULT_PER_CUSTOMER.per_second)]
    rate_per_customer: u32,
    /// The most a refutation may offer per gas (max fee, base fee and tip together), in gwei:
    /// its fees start at the node's estimate and are raised up to this as the deadline nears.
    #[arg(long, default_value_t = default_max_fee_gwei())]
    max_fee_gwei: u64,
    /// The most gas a refutation may use (about 54,000 is typical); one needing more is not
    /// sent.
    #[arg(long, default_value_t = FeePolicy::DEFAULT.gas_limit_cap)]
    gas_limit_cap: u64,
    /// Seconds between two fee raises of a refutation that is not mined (a raise also waits
    /// for a block mined without it).
    #[arg(long, default_value_t = FeePolicy::DEFAULT.bump_interval.as_secs())]
    fee_bump_secs: u64,
    /// Seconds a claim on a response lasts unless renewed (every third of it): with several
    /// instances over one database, how long the others wait before taking over a response
    /// from an instance that died while sending it.
    #[arg(long, default_value_t = keel_watchtower::responder::CLAIM_LEASE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    claim_lease_secs: u64,
}

fn default_max_fee_gwei() -> u64 {
    u64::try_from(FeePolicy::DEFAULT.max_fee_cap / GWEI).unwrap_or(u64::MAX)
}

/// `per_second` with the default burst; none for 0.
fn rate(per_second: u32, default: Rate) -> Option<Rate> {
    (per_second > 0).then_some(Rate {
        per_second,
        burst: default.burst.max(per_second),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // The key stays out of the command line (visible in `ps`).
    let key: PrivateKeySigner = std::env::var("KEEL_TOWER_KEY")
        .wrap_err("KEEL_TOWER_KEY (the tower's private key, 0x-hex) is not set")?
        .parse()
        .wrap_err("KEEL_TOWER_KEY is not a private key")?;
    // Further accounts for refutations, also kept out of `ps`: comma-separated keys.
    let refuters = std::env::var("KEEL_TOWER_REFUTER_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| {
            k.parse::<PrivateKeySigner>().wrap_err_with(|| {
                format!(
                    "KEEL_TOWER_REFUTER_KEYS: key {} is not a private key",
                    i + 1
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let deployment = Deployment::load(&args.deployments, args.chain_id)
        .wrap_err_with(|| format!("loading the deployment of chain {}", args.chain_id))?;
    let chain = ChainConfig {
        confirmations: args.confirmations,
        poll_interval: Duration::from_millis(args.poll_ms),
        ..ChainConfig::new(args.rpc_url, deployment)
    };
    let config = TowerConfig {
        chain,
        database: args.database,
        listen: args.listen,
        quota: args.quota,
        watch_period: args
            .watch_days
            .checked_mul(86_400)
            .ok_or_else(|| eyre::eyre!("--watch-days is too large"))?,
        limits: Limits {
            max_body: args.max_body,
            per_source: rate(args.rate_per_source, DEFAULT_PER_SOURCE),
            per_customer: rate(args.rate_per_customer, DEFAULT_PER_CUSTOMER),
            ..Limits::default()
        },
        fees: FeePolicy {
            max_fee_cap: u128::from(args.max_fee_gwei) * GWEI,
            gas_limit_cap: args.gas_limit_cap,
            bump_interval: Duration::from_secs(args.fee_bump_secs),
        },
        claim_lease: Duration::from_secs(args.claim_lease_secs),
        refuters,
    };
    let tower = Tower::start(config, key)
        .await
        .wrap_err("starting the tower")?;
    tokio::select! {
        () = tower.wait() => eyre::bail!("the tower stopped"),
        signal = tokio::signal::ctrl_c() => signal.wrap_err("waiting for Ctrl-C")?,
    }
    Ok(())
}
