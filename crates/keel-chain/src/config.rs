//! Where a chain is and how closely to follow it.

use std::time::Duration;

use keel_bindings::Deployment;

/// One chain: its RPC endpoint, Keel's contracts on it, and how the client follows it.
/// [`Chain`](super::Chain) and [`Monitor`](super::Monitor) each take one; nothing is global, so
/// a client on several chains holds one of each per chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    /// JSON-RPC endpoint, `http://…` or `https://…` (TLS through rustls, verified against the
    /// platform's roots and [`ChainConfig::extra_root_certs`]).
    pub rpc_url: String,
    /// PEM certificates (one or more per entry) trusted, besides the platform's roots, to sign
    /// an `https` endpoint's certificate: a private node's or a company proxy's own authority,
    /// or a self-signed test endpoint. Empty by default.
    pub extra_root_certs: Vec<String>,
    /// Chain id and contract addresses (`deployments/<chainId>.json`).
    pub deployment: Deployment,
    /// How deep a block must be before the monitor delivers its events: an event in block `b`
    /// is delivered once the head is at least `b + confirmations` (0 = at the head). A reorg no
    /// deeper than this is never seen.
    pub confirmations: u64,
    /// How often the monitor asks for the head when it has caught up, and how often a
    /// transaction's receipt is polled.
    pub poll_interval: Duration,
    /// Largest block range of one `eth_getLogs` query (providers cap it, often at 1,000–10,000).
    pub max_block_range: u64,
    /// Longest wait for one RPC answer before it counts as a failure.
    pub request_timeout: Duration,
    /// Longest wait for a sent transaction's receipt before it is reported as
    /// [`ChainError::ReceiptTimeout`](super::ChainError::ReceiptTimeout).
    pub receipt_timeout: Duration,
    /// How often a sent transaction without a receipt is sent to the node again (the same
    /// signed transaction: it cannot execute twice).
    pub rebroadcast_interval: Duration,
    /// Most vaults whose logs the monitor asks for by address. Past this, a scan asks for the
    /// vault events by topic from any address, one query per block range instead of one per
    /// 256 vaults, and keeps only the watched vaults' (a tower following millions of channels
    /// would otherwise send thousands of queries per range). The node then returns every Keel
    /// vault's events, and any contract's that copies their signatures, which the monitor
    /// drops; below the threshold it downloads nothing it does not watch.
    pub max_filter_addresses: usize,
}

impl ChainConfig {
    /// A configuration with defaults suited to a public chain: 12 confirmations, a 2-second
    /// poll, 1,000-block log queries, 30-second requests, receipts waited for 10 minutes with
    /// a re-broadcast every minute, vaults filtered by address up to 1,024.
    pub fn new(rpc_url: impl Into<String>, deployment: Deployment) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            extra_root_certs: Vec::new(),
            deployment,
            confirmations: 12,
            poll_interval: Duration::from_secs(2),
            max_block_range: 1_000,
            request_timeout: Duration::from_secs(30),
            receipt_timeout: Duration::from_secs(600),
            rebroadcast_interval: Duration::from_secs(60),
            max_filter_addresses: 1_024,
        }
    }

    /// A configuration for a local development chain (Anvil, Hardhat): no confirmation depth,
    /// a 100 ms poll, 5-second requests, receipts waited for 30 s with a re-broadcast every
    /// 2 s.
    ///
    /// Such a node mines a block only when a transaction arrives, so on [`ChainConfig::new`]'s
    /// 12 confirmations an idle chain never confirms anything, and its 2-second poll makes
    /// every step slow. Never use it on a public chain: without confirmations a reorganisation
    /// can take back what the client already counted.
    ///
    /// ```
    /// # fn demo(deployment: keel_bindings::Deployment) {
    /// let config = keel_chain::ChainConfig::development("http://127.0.0.1:8545", deployment);
    /// assert_eq!(config.confirmations, 0);
    /// # }
    /// ```
    pub fn development(rpc_url: impl Into<String>, deployment: Deployment) -> Self {
        Self {
            confirmations: 0,
            poll_interval: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            receipt_timeout: Duration::from_secs(30),
            rebroadcast_interval: Duration::from_secs(2),
            ..Self::new(rpc_url, deployment)
        }
    }

    /// The chain id the deployment is for.
    pub fn chain_id(&self) -> u64 {
        self.deployment.chain_id
    }
}
