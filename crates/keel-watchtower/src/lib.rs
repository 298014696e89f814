#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A library: output goes through return values and `tracing`, never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod api;
pub mod error;
pub mod intake;
pub mod keys;
pub mod metrics;
pub mod ratelimit;
pub mod responder;
pub mod store;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use alloy::signers::local::PrivateKeySigner;
use keel_chain::{monitor::Checkpoints, Chain, ChainConfig, FeePolicy, Monitor};
use keel_core::Address;
use tokio::{net::TcpListener, task::JoinHandle};

pub use api::Limits;
pub use error::{Error, Refusal, Result, StoreError};
pub use intake::{ChannelLookup, Intake, IntakeConfig, SignedReceipt, VaultStatus};
pub use metrics::Metrics;
pub use ratelimit::Rate;
pub use responder::Responder;
pub use store::{Database, PostgresStore, SqliteStore, Store};

/// The claims' holder name of a tower over SQLite, the only instance over its file.
const SINGLE_INSTANCE: &str = "single";

/// Everything a tower needs to run.
#[derive(Debug, Clone)]
pub struct TowerConfig {
    /// The chain: RPC, deployment, confirmations, timeouts.
    pub chain: ChainConfig,
    /// The database: a SQLite file, or a PostgreSQL URL (several instances may share one).
    pub database: Database,
    /// Where the HTTP API listens (port 0: any free port).
    pub listen: SocketAddr,
    /// Channels a registered customer may have watched.
    pub quota: u32,
    /// Seconds a receipt promises watching, from acceptance.
    pub watch_period: u64,
    /// Request bounds.
    pub limits: Limits,
    /// The refutations' gas and fee caps and how often a pending one is replaced with higher
    /// fees (keel-chain's [`FeePolicy`]; [`FeePolicy::DEFAULT`] unless configured).
    pub fees: FeePolicy,
    /// How long an instance's claim on a response lasts unless renewed: how long the others
    /// wait before taking over from an instance that died while responding
    /// ([`responder::CLAIM_LEASE`] by default).
    pub claim_lease: Duration,
    /// Further accounts that send refutations besides the tower's key, each channel's from one
    /// account chosen by its id: one account's transactions take its nonces one at a time (about
    /// 90 refutations a second from one account on a local node, fewer over a remote one), so
    /// a tower guarding many channels gives itself several. Each must hold ETH for gas. Empty
    /// by default.
    pub refuters: Vec<PrivateKeySigner>,
}

/// A running tower: the HTTP API, the chain follower and the responder. Dropping it stops them.
#[derive(Debug)]
pub struct Tower {
    address: Address,
    local_addr: SocketAddr,
    monitor: Arc<Monitor>,
    /// The API server and the responder.
    tasks: [JoinHandle<()>; 2],
}

/// Unix seconds by the system clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tower {
    /// Opens the database, starts following the chain from its checkpoint, resumes open
    /// disputes, and serves the API. `key` pays for refutations and signs receipts. Needs no
    /// answer from the RPC node to start.
    pub async fn start(config: TowerConfig, key: PrivateKeySigner) -> Result<Self> {
        match &config.database {
            // One instance per file: a fixed name, so a restart takes back its own claims.
            Database::Sqlite(path) => {
                let store = SqliteStore::open(path).await?;
                Self::start_over(store, config, key, Some(SINGLE_INSTANCE)).await
            }
            Database::Postgres(url) => {
                let store = PostgresStore::connect(url).await?;
                Self::start_over(store, config, key, None).await
            }
        }
    }

    /// Runs over `store`, named `instance` in claims (`None`: a name unique to this process).
    async fn start_over<S: Store>(
        store: S,
        config: TowerConfig,
        key: PrivateKeySigner,
        instance: Option<&str>,
    ) -> Result<Self> {
        let store = Arc::new(store);
        let address = key.address();
        let chain = Chain::new(config.chain.clone(), key.clone())?;
        let refuters = config
            .refuters
            .iter()
            .map(|key| Chain::new(config.chain.clone(), key.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpoints: Arc<dyn Checkpoints> = store.clone();
        let (monitor, batches) = Monitor::spawn(config.chain.clone(), checkpoints)?;
        let monitor = Arc::new(monitor);
        let metrics = Arc::new(Metrics::default());
        let responder = match instance {
            Some(name) => Responder::named(
                store.clone(),
                chain.clone(),
                refuters,
                monitor.clone(),
                metrics.clone(),
                unix_now,
                name.to_owned(),
                config.fees,
                config.claim_lease,
            ),
            None => Responder::new(
                store.clone(),
                chain.clone(),
                refuters,
                monitor.clone(),
                metrics.clone(),
                unix_now,
                config.fees,
                config.claim_lease,
            ),
        };
        let on_accepted = {
            let responder = responder.clone();
            Arc::new(move |vault, channel_id, status| {
                responder.accepted(vault, channel_id, status == VaultStatus::Closed);
            })
        };
        let deployment = &config.chain.deployment;
        let mut intake = Intake::new(
            IntakeConfig {
                chain_id: deployment.chain_id,
                factory: deployment.channel_factory,
                vault_implementation: deployment.vault_implementation,
                quota: config.quota,
                watch_period: config.watch_period,
            },
            key,
            store.clone(),
            chain,
            on_accepted,
        );
        if let Some(rate) = config.limits.per_customer {
            intake = intake.with_customer_rate(rate);
        }
        let health = {
            let monitor = monitor.clone();
            Arc::new(move || monitor.health())
        };
        let router = api::router(Arc::new(api::ApiState {
            intake,
            store,
            health,
            limits: config.limits,
            clock: unix_now,
            metrics,
        }));
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let serve = tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener,
                // The peer's address: the per-source rate limit's key.
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        });
        let respond = tokio::spawn(async move {
            if let Err(e) = responder.run(batches).await {
                tracing::error!(error = %e, "the responder stopped");
            }
        });
        tracing::info!(%address, %local_addr, "tower started");
        Ok(Self {
            address,
            local_addr,
            monitor,
            tasks: [serve, respond],
        })
    }

    /// The tower's address (receipts' signer, refutations' sender).
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Where the API listens.
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The chain follower's health.
    pub fn health(&self) -> keel_chain::Health {
        self.monitor.health()
    }

    /// Waits until the API or the responder stops (an error, or the monitor's end).
    pub async fn wait(mut self) {
        let [serve, respond] = &mut self.tasks;
        tokio::select! {
            _ = serve => {}
            _ = respond => {}
        }
    }
}

impl Drop for Tower {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
