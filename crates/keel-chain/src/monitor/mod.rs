//! [`Monitor`]: follows the vaults of our channels on one chain and hands their events to the
//! client in chain order, exactly once per confirmed block range, across restarts and reorgs.
//!
//! # Delivery and checkpoints
//!
//! The monitor runs as a task. It scans block ranges (at most `max_block_range` blocks, never
//! nearer the head than `confirmations`) and sends each range's events as one [`Batch`] over a
//! channel, then waits. The consumer applies the events and calls [`Batch::ack`]; only then does
//! the monitor save the range's last block and hash as the chain's [`Checkpoint`] in its
//! [`Checkpoints`] (keel-client's `Store`, or a watchtower's own storage)
//! and move on. A crash anywhere before the save re-delivers the batch on
//! restart, so consumers must be idempotent (deposit and withdrawal totals are cumulative; a
//! dispute state replaces the previous one). Ranges without events are checkpointed without
//! being delivered. A batch dropped without an ack is delivered again; dropping the receiver
//! stops the monitor.
//!
//! With no checkpoint the scan starts at the deployment's `deployed_at_block`; after downtime
//! it backfills from the checkpoint.
//!
//! # Watching
//!
//! [`Monitor::watch`] adds a vault from the checkpoint at the time of the call;
//! [`Monitor::watch_from`] from an earlier block (a channel learnt about late, or every channel
//! again after a restart if the client did not persist their events). Such a vault's history
//! up to the checkpoint is delivered first, in its own batches, before it joins the regular
//! scan, so each vault's events always arrive in chain order (older events of one vault may
//! follow newer events of another). [`Monitor::watch_opened`] follows the factory's
//! `ChannelOpened` for channels naming a participant and watches each such vault from its
//! opening block.
//!
//! # Reorgs
//!
//! Events are read only from blocks `confirmations` deep, so a reorg no deeper than that is
//! never seen. Before each range the monitor checks that its checkpoint block still has the
//! saved hash. If not, the chain reorganised deeper than `confirmations`: the monitor walks
//! back through the checkpoints of this run to the newest one still canonical (or, with none,
//! rewinds [`FALLBACK_REWIND`] blocks), rescans from there and marks the batches up to the old
//! checkpoint with [`Batch::reorg`], even when empty: events delivered before from that range
//! may have been removed or replaced, and the consumer should rebuild what it derived from
//! them (for instance by reading the vault's state). A range is also rescanned if its last
//! block changed while its logs were being read.
//!
//! # Failures
//!
//! A failed RPC call, a timeout, malformed JSON or a log that does not decode never skips a
//! block: the monitor logs a `tracing` warning, counts it in [`Monitor::health`], waits (the
//! poll interval, doubling with each consecutive failure up to 32 times it or 30 s) and retries
//! the same range from its checkpoint. A node that comes back behind the checkpoint (restarted
//! without its state) is waited for, not treated as a reorg. A node that names another chain
//! is retried the same way (one such answer may be a stray node behind a load balancer); after
//! [`WRONG_CHAIN_REPORT`] in a row [`Health::wrong_chain`] says so, until the node is right
//! again and the monitor resumes from its checkpoint. [`Monitor::subscribe`] tells when the
//! monitor turns unhealthy and when it recovers.

mod checkpoint;
mod scan;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use alloy::{
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
};
use tokio::{
    sync::{mpsc, oneshot, watch, Notify},
    task::JoinHandle,
};

use super::{
    config::ChainConfig,
    error::{ChainError, Result},
    event::ChainEvent,
    rpc,
};
pub use checkpoint::{BoxFuture, Checkpoint, CheckpointError, Checkpoints};
pub use scan::FALLBACK_REWIND;

/// The events of one scanned block range, in chain order; acknowledge once applied.
#[derive(Debug)]
pub struct Batch {
    /// The chain.
    pub chain_id: u64,
    /// The events, ordered by block then log index.
    pub events: Vec<ChainEvent>,
    /// First block of the range.
    pub from_block: u64,
    /// Last block of the range.
    pub to_block: u64,
    /// That block's hash.
    pub to_hash: B256,
    /// The range follows a reorg deeper than the confirmation depth: events delivered earlier
    /// for these blocks may be gone or different.
    pub reorg: bool,
    ack: oneshot::Sender<()>,
}

impl Batch {
    /// Tells the monitor the events are applied (and durable, if the consumer persists them):
    /// it may checkpoint past them.
    pub fn ack(self) {
        // The monitor may have stopped meanwhile; then there is no one left to tell.
        let _ = self.ack.send(());
    }
}

/// The monitor's state, for status displays and alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The last block processed (delivered, acknowledged and saved).
    pub checkpoint: Option<Checkpoint>,
    /// The latest head the node reported.
    pub head: Option<u64>,
    /// Steps completed since the monitor started, each one a read of the head followed by
    /// whatever it called for (a range scanned and delivered, a backfill, a rewind, or nothing
    /// new). Once it has grown past its value in a snapshot whose `head` was `h`, the monitor
    /// has finished a step with a head of at least `h`.
    pub steps: u64,
    /// Failed attempts since the last success; non-zero means the monitor is retrying.
    pub consecutive_failures: u32,
    /// Failed attempts since the monitor started.
    pub failures: u64,
    /// The latest failure.
    pub last_error: Option<String>,
    /// Reorgs deeper than the confirmation depth seen since the monitor started.
    pub reorgs: u64,
    /// Why the monitor stopped, if it has (only when the consumer dropped the batches).
    pub stopped: Option<String>,
    /// The chain id the node named instead of ours, while it persists (at least
    /// [`WRONG_CHAIN_REPORT`] answers in a row): nothing is read from such a node, and the
    /// monitor resumes from its checkpoint once the node is right again.
    pub wrong_chain: Option<u64>,
}

impl Health {
    /// Whether the monitor is following the chain: not stopped, not facing a node on another
    /// chain, and not failing ([`Health::consecutive_failures`] below [`UNHEALTHY_AFTER`]).
    pub fn is_healthy(&self) -> bool {
        self.stopped.is_none()
            && self.wrong_chain.is_none()
            && self.consecutive_failures < UNHEALTHY_AFTER
    }
}

/// `eth_chainId` answers naming another chain, in a row, before [`Health::wrong_chain`] reports
/// it: one such answer (a load balancer's stray node) is retried like any fault.
pub const WRONG_CHAIN_REPORT: u32 = 3;

/// Consecutive failures after which [`Health::is_healthy`] turns false.
pub const UNHEALTHY_AFTER: u32 = 3;

/// Follows the watched vaults of one chain. Dropping it stops the task.
#[derive(Debug)]
pub struct Monitor {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// What the handle and the task share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes an idle task when a vault is added, so its backfill does not wait a poll interval.
    wake: Notify,
    /// The health, published whenever it turns unhealthy or healthy, or the wrong chain
    /// changes.
    published: watch::Sender<Health>,
}

#[derive(Debug, Default)]
struct State {
    /// Vaults in the regular scan, with their channel ids.
    active: BTreeMap<Address, B256>,
    /// Vaults whose history up to the checkpoint is still to be delivered, from the given block
    /// (`None`: from the saved checkpoint, not loaded yet).
    pending: BTreeMap<Address, (B256, Option<u64>)>,
    /// Whether the task has loaded the saved checkpoint into `health.checkpoint`.
    loaded: bool,
    /// Participants whose channels' `ChannelOpened` events are delivered.
    opened_by: BTreeSet<Address>,
    /// Secret hashes whose registration in the SecretRegistry is delivered.
    secrets: BTreeSet<B256>,
    health: Health,
}

impl Monitor {
    /// Starts following `config`'s chain from the checkpoint in `store` (or the deployment
    /// block). Returns the handle and the receiver of batches. Must be called inside a tokio
    /// runtime.
    ///
    /// ```no_run
    /// # async fn demo(
    /// #     config: keel_chain::ChainConfig,
    /// #     store: std::sync::Arc<dyn keel_chain::monitor::Checkpoints>,
    /// #     vault: keel_core::Address,
    /// #     channel_id: keel_core::B256,
    /// #     opened_at: u64,
    /// # ) -> keel_chain::Result<()> {
    /// use keel_chain::{ChainEventKind, Monitor};
    ///
    /// let (monitor, mut batches) = Monitor::spawn(config, store)?;
    /// monitor.watch_from(vault, channel_id, opened_at);
    /// while let Some(batch) = batches.recv().await {
    ///     for event in &batch.events {
    ///         if let ChainEventKind::Closed(state) = &event.kind {
    ///             // Refute if we hold a newer proof from the closer than state records.
    ///         }
    ///     }
    ///     // Only once the effects are durable: the checkpoint moves past these events.
    ///     batch.ack();
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn(
        config: ChainConfig,
        store: Arc<dyn Checkpoints>,
    ) -> Result<(Self, mpsc::Receiver<Batch>)> {
        if config.max_block_range == 0 {
            return Err(ChainError::Invalid("max_block_range must be positive"));
        }
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(rpc::client(&config)?)
            .erased();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Notify::new(),
            published: watch::Sender::new(Health::default()),
        });
        // One batch in flight: the monitor waits for its ack before scanning on anyway.
        let (tx, rx) = mpsc::channel(1);
        let scanner = scan::Scanner::new(config, provider, store, shared.clone());
        let task = tokio::spawn(scanner.run(tx));
        Ok((Self { shared, task }, rx))
    }

    /// Watches `vault` (of `channel_id`) from the block after the current checkpoint (the saved
    /// one, for a monitor that has just started): the range being scanned while this is called
    /// is covered too.
    pub fn watch(&self, vault: Address, channel_id: B256) {
        let mut state = self.shared.lock();
        let from = state.loaded.then(|| {
            state
                .health
                .checkpoint
                .map_or(0, |cp| cp.block.saturating_add(1))
        });
        Self::queue(&mut state, vault, channel_id, from);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Watches `vault` (of `channel_id`) from `from_block`: its events from there up to the
    /// checkpoint are delivered first, then it joins the regular scan.
    pub fn watch_from(&self, vault: Address, channel_id: B256, from_block: u64) {
        Self::queue(&mut self.shared.lock(), vault, channel_id, Some(from_block));
        self.shared.wake.notify_one();
    }

    /// Stops watching `vault`; ranges scanned from now on leave it out.
    pub fn unwatch(&self, vault: Address) {
        let mut state = self.shared.lock();
        state.active.remove(&vault);
        state.pending.remove(&vault);
    }

    /// Also delivers the factory's `ChannelOpened` for channels in which `participant` is A or
    /// B, and watches each such vault from its opening block.
    pub fn watch_opened(&self, participant: Address) {
        self.shared.lock().opened_by.insert(participant);
    }

    /// Also delivers the registration of the secret of `secret_hash` in the deployment's
    /// SecretRegistry ([`ChainEventKind::SecretRevealed`](crate::ChainEventKind::SecretRevealed))
    /// from the next range scanned on. A registration in an earlier block is not delivered:
    /// ask [`Chain::revealed_secret`](crate::Chain::revealed_secret) once, after this call, for
    /// what happened before.
    pub fn watch_secret(&self, secret_hash: B256) {
        self.shared.lock().secrets.insert(secret_hash);
    }

    /// Stops delivering the registration of `secret_hash`.
    pub fn unwatch_secret(&self, secret_hash: B256) {
        self.shared.lock().secrets.remove(&secret_hash);
    }

    /// Whether `vault` is watched (or queued to be): without copying the whole set, as
    /// [`watched`](Self::watched) does, for callers that ask once per update.
    pub fn is_watched(&self, vault: Address) -> bool {
        let state = self.shared.lock();
        state.active.contains_key(&vault) || state.pending.contains_key(&vault)
    }

    /// The vaults watched, with their channel ids.
    pub fn watched(&self) -> BTreeMap<Address, B256> {
        let state = self.shared.lock();
        let mut all = state.active.clone();
        all.extend(state.pending.iter().map(|(v, (id, _))| (*v, *id)));
        all
    }

    /// A snapshot of the monitor's progress and trouble.
    pub fn health(&self) -> Health {
        self.shared.lock().health.clone()
    }

    /// The health whenever the monitor turns unhealthy ([`Health::is_healthy`]), healthy
    /// again, or finds the node on another chain: for alerts, without polling.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.shared.published.subscribe()
    }

    /// Stops the task and waits until it has; no batch is sent after this returns.
    pub async fn stop(mut self) {
        self.task.abort();
        // Cancelled is the expected outcome; a panic would already have been reported.
        let _ = (&mut self.task).await;
    }

    fn queue(state: &mut State, vault: Address, channel_id: B256, from: Option<u64>) {
        state.active.remove(&vault);
        let entry = state.pending.entry(vault).or_insert((channel_id, from));
        // The earlier start wins; an unresolved one resolves to the checkpoint, which is no
        // earlier than any block known to the caller after it was loaded.
        let earliest = match (entry.1, from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        *entry = (channel_id, earliest);
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await point and no code panics while holding the
        // lock, so a poisoned lock still holds valid data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the health if what subscribers are told about changed.
    fn publish(&self) {
        let health = self.lock().health.clone();
        self.published.send_if_modified(|old| {
            let key = |h: &Health| (h.is_healthy(), h.wrong_chain, h.stopped.clone());
            if key(old) == key(&health) {
                return false;
            }
            *old = health;
            true
        });
    }
}
