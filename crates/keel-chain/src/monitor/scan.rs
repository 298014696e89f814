//! The monitor's task: scan, deliver, checkpoint, and recover.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
};
use keel_bindings::ChannelVault::ChannelVaultEvents;
use tokio::sync::{mpsc, oneshot};

use super::{Batch, Shared};
use crate::{
    config::ChainConfig,
    error::ChainError,
    event::{ChainEvent, OPENED_TOPIC, SECRET_TOPIC},
    monitor::{Checkpoint, Checkpoints},
};

/// Blocks rewound when the checkpoint's block was reorganised away and no earlier checkpoint of
/// this run is still canonical (after a restart only the saved one is known).
pub const FALLBACK_REWIND: u64 = 256;

/// Earlier checkpoints kept to find where a deep reorg forked.
const RECENT: usize = 128;

/// Addresses (or topics) per `eth_getLogs` query; providers cap filter sizes.
const ADDRESSES_PER_QUERY: usize = 256;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a scan reads: the vaults' events, `ChannelOpened` naming a participant, and the
/// registration of secrets.
#[derive(Clone, Copy)]
struct Watching<'a> {
    vaults: &'a BTreeMap<Address, B256>,
    opened_by: &'a [Address],
    secrets: &'a [B256],
}

/// Why a step did not complete.
enum Halt {
    /// Worth retrying after a pause; says what failed.
    Retry(String),
    /// The node named another chain: retried too, and reported once it persists.
    WrongChain(ChainError),
    /// The monitor cannot go on.
    Stop(String),
}

impl From<ChainError> for Halt {
    fn from(e: ChainError) -> Self {
        Self::Retry(crate::report(&e))
    }
}

/// What a completed step leaves to do.
enum Next {
    /// More to scan right away.
    Continue,
    /// Caught up with the confirmed head: wait for new blocks.
    Wait,
}

type Step = Result<Next, Halt>;

pub(super) struct Scanner {
    config: ChainConfig,
    provider: DynProvider,
    store: Arc<dyn Checkpoints>,
    shared: Arc<Shared>,
    /// Loaded from the store on the first step.
    loaded: bool,
    /// Whether the node's chain id was checked since its last failure.
    chain_checked: bool,
    /// The last block processed; `None` before the deployment block.
    cursor: Option<Checkpoint>,
    /// Checkpoints of this run, oldest first, the cursor last.
    recent: VecDeque<Checkpoint>,
    /// After a deep reorg: batches up to this block are flagged.
    reorg_until: Option<u64>,
    /// `eth_chainId` answers naming another chain, in a row.
    wrong_chain: u32,
}

impl Scanner {
    pub(super) fn new(
        config: ChainConfig,
        provider: DynProvider,
        store: Arc<dyn Checkpoints>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            config,
            provider,
            store,
            shared,
            loaded: false,
            chain_checked: false,
            cursor: None,
            recent: VecDeque::new(),
            reorg_until: None,
            wrong_chain: 0,
        }
    }

    fn chain_id(&self) -> u64 {
        self.config.chain_id()
    }

    pub(super) async fn run(mut self, batches: mpsc::Sender<Batch>) {
        loop {
            match self.step(&batches).await {
                Ok(next) => {
                    let recovered = {
                        let mut state = self.shared.lock();
                        state.health.steps = state.health.steps.saturating_add(1);
                        std::mem::replace(&mut state.health.consecutive_failures, 0)
                    };
                    if recovered > 0 {
                        self.shared.publish();
                        tracing::info!(
                            chain_id = self.chain_id(),
                            failures = recovered,
                            "chain monitor recovered"
                        );
                    }
                    if let Next::Wait = next {
                        tokio::select! {
                            () = tokio::time::sleep(self.config.poll_interval) => {}
                            () = self.shared.wake.notified() => {}
                        }
                    }
                }
                Err(Halt::Retry(e)) => self.retry(e, None).await,
                Err(Halt::WrongChain(e)) => {
                    self.wrong_chain = self.wrong_chain.saturating_add(1);
                    let found = match e {
                        ChainError::WrongChain { found, .. } => Some(found),
                        _ => None,
                    };
                    let persists = self.wrong_chain >= super::WRONG_CHAIN_REPORT;
                    self.retry(crate::report(&e), found.filter(|_| persists))
                        .await;
                }
                Err(Halt::Stop(why)) => {
                    tracing::error!(chain_id = self.chain_id(), reason = %why, "chain monitor stopped");
                    self.shared.lock().health.stopped = Some(why);
                    self.shared.publish();
                    return;
                }
            }
        }
    }

    /// Counts a failure, publishes the health, and waits before the next attempt; `wrong_chain`
    /// is the other chain the node persists in naming, if it does.
    async fn retry(&mut self, error: String, wrong_chain: Option<u64>) {
        // The node may have restarted as something else: check again once it answers.
        self.chain_checked = false;
        let failures = {
            let mut state = self.shared.lock();
            let h = &mut state.health;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            h.failures = h.failures.saturating_add(1);
            h.last_error = Some(error.clone());
            if wrong_chain.is_some() {
                h.wrong_chain = wrong_chain;
            }
            h.consecutive_failures
        };
        self.shared.publish();
        tracing::warn!(chain_id = self.chain_id(), failures, error = %error, "chain monitor retrying");
        tokio::time::sleep(self.backoff(failures)).await;
    }

    /// The poll interval, doubled per consecutive failure (at most 32 times), capped.
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(5);
        self.config
            .poll_interval
            .saturating_mul(factor)
            .min(MAX_BACKOFF)
    }

    /// One unit of work: a reorg check and then either one vault's backfill or one range.
    async fn step(&mut self, batches: &mpsc::Sender<Batch>) -> Step {
        if !self.loaded {
            self.cursor = self
                .store
                .load(self.chain_id())
                .await
                .map_err(store_error)?;
            self.recent.extend(self.cursor);
            let mut state = self.shared.lock();
            state.health.checkpoint = self.cursor;
            state.loaded = true;
            // Vaults watched "from the checkpoint" before it was known start after it.
            let start = self.cursor.map_or(0, |cp| cp.block.saturating_add(1));
            for (_, from) in state.pending.values_mut() {
                from.get_or_insert(start);
            }
            drop(state);
            self.loaded = true;
        }
        if !self.chain_checked {
            let found = self
                .provider
                .get_chain_id()
                .await
                .map_err(ChainError::transport)?;
            if found != self.chain_id() {
                return Err(Halt::WrongChain(ChainError::WrongChain {
                    expected: self.chain_id(),
                    found,
                }));
            }
            self.chain_checked = true;
            self.wrong_chain = 0;
            self.shared.lock().health.wrong_chain = None;
        }
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(ChainError::transport)?;
        self.shared.lock().health.head = Some(head);
        let Some(safe) = head.checked_sub(self.config.confirmations) else {
            return Ok(Next::Wait);
        };

        if let Some(cp) = self.cursor {
            if cp.block > safe {
                // Waiting for confirmations, or a node that restarted behind us: not a reorg.
                return Ok(Next::Wait);
            }
            if self.hash_at(cp.block).await? != cp.hash {
                self.rewind(cp).await?;
                return Ok(Next::Continue);
            }
        }

        if let Some((vault, channel_id, from)) = self.next_backfill() {
            return self.backfill(batches, vault, channel_id, from).await;
        }

        let next = self
            .cursor
            .map_or(self.config.deployment.deployed_at_block, |cp| cp.block + 1);
        if next > safe {
            return Ok(Next::Wait);
        }
        let end = next
            .saturating_add(self.config.max_block_range - 1)
            .min(safe);
        let (active, opened_by, secrets) = {
            let state = self.shared.lock();
            (
                state.active.clone(),
                state.opened_by.iter().copied().collect::<Vec<_>>(),
                state.secrets.iter().copied().collect::<Vec<_>>(),
            )
        };
        let watching = Watching {
            vaults: &active,
            opened_by: &opened_by,
            secrets: &secrets,
        };
        let (events, end_hash) = self.scan(watching, next, end).await?;
        let reorg = self.reorg_until.is_some_and(|until| next <= until);
        if !events.is_empty() || reorg {
            self.deliver(batches, events, next, end, end_hash, reorg)
                .await?;
        }
        let cp = Checkpoint {
            block: end,
            hash: end_hash,
        };
        self.store
            .save(self.chain_id(), cp)
            .await
            .map_err(store_error)?;
        if self.reorg_until.is_some_and(|until| end >= until) {
            self.reorg_until = None;
        }
        self.advance(cp);
        Ok(if end < safe {
            Next::Continue
        } else {
            Next::Wait
        })
    }

    /// The next vault whose history must be delivered before it joins the regular scan; vaults
    /// with nothing to backfill join it here.
    fn next_backfill(&mut self) -> Option<(Address, B256, u64)> {
        let mut state = self.shared.lock();
        let cursor = self.cursor.map(|cp| cp.block);
        let ready: Vec<Address> = state
            .pending
            .iter()
            .filter(|(_, (_, from))| cursor.is_none_or(|c| from.is_none_or(|f| f > c)))
            .map(|(vault, _)| *vault)
            .collect();
        for vault in ready {
            if let Some((id, _)) = state.pending.remove(&vault) {
                state.active.insert(vault, id);
            }
        }
        state
            .pending
            .iter()
            .find_map(|(vault, (id, from))| from.map(|from| (*vault, *id, from)))
    }

    /// Delivers `vault`'s events from `from` up to the cursor, one range at a time; then the
    /// vault joins the regular scan.
    async fn backfill(
        &mut self,
        batches: &mpsc::Sender<Batch>,
        vault: Address,
        channel_id: B256,
        from: u64,
    ) -> Step {
        let Some(cursor) = self.cursor else {
            return Ok(Next::Continue);
        };
        let end = from
            .saturating_add(self.config.max_block_range - 1)
            .min(cursor.block);
        let one = BTreeMap::from([(vault, channel_id)]);
        let watching = Watching {
            vaults: &one,
            opened_by: &[],
            secrets: &[],
        };
        let (events, end_hash) = self.scan(watching, from, end).await?;
        if !events.is_empty() {
            self.deliver(batches, events, from, end, end_hash, false)
                .await?;
        }
        let mut state = self.shared.lock();
        // Unless the vault was unwatched or re-watched meanwhile, record the progress.
        if state.pending.get(&vault) == Some(&(channel_id, Some(from))) {
            if end >= cursor.block {
                state.pending.remove(&vault);
                state.active.insert(vault, channel_id);
            } else {
                state.pending.insert(vault, (channel_id, Some(end + 1)));
            }
        }
        Ok(Next::Continue)
    }

    /// The events `watching` asks for in blocks `from..=to`, and `to`'s hash. Fails if block
    /// `to` changed while the logs were read, so the events and the hash are of one chain.
    async fn scan(
        &self,
        watching: Watching<'_>,
        from: u64,
        to: u64,
    ) -> Result<(Vec<ChainEvent>, B256), ChainError> {
        let Watching {
            vaults,
            opened_by,
            secrets,
        } = watching;
        let before = self.hash_at(to).await?;
        let range = Filter::new().from_block(from).to_block(to);
        let mut logs = Vec::new();
        if vaults.len() > self.config.max_filter_addresses {
            // By topic: every vault's events, of which only the watched vaults' are kept.
            let topics: Vec<B256> = ChannelVaultEvents::SELECTORS
                .iter()
                .map(|topic| B256::from(*topic))
                .collect();
            let all = self.logs(&range.clone().event_signature(topics)).await?;
            logs.extend(
                all.into_iter()
                    .filter(|log| vaults.contains_key(&log.address())),
            );
        } else {
            let addresses: Vec<Address> = vaults.keys().copied().collect();
            for group in addresses.chunks(ADDRESSES_PER_QUERY) {
                logs.extend(self.logs(&range.clone().address(group.to_vec())).await?);
            }
        }
        let factory = self.config.deployment.channel_factory;
        if !opened_by.is_empty() {
            let opened = range.clone().address(factory).event_signature(OPENED_TOPIC);
            // participantA and participantB are the second and third topics.
            let topics: Vec<B256> = opened_by.iter().map(|a| a.into_word()).collect();
            logs.extend(self.logs(&opened.clone().topic2(topics.clone())).await?);
            logs.extend(self.logs(&opened.topic3(topics)).await?);
        }
        let registry = self.config.deployment.secret_registry;
        let revealed = range
            .clone()
            .address(registry)
            .event_signature(SECRET_TOPIC);
        for group in secrets.chunks(ADDRESSES_PER_QUERY) {
            logs.extend(self.logs(&revealed.clone().topic1(group.to_vec())).await?);
        }
        if self.hash_at(to).await? != before {
            return Err(ChainError::Inconsistent(format!(
                "block {to} changed during the scan"
            )));
        }

        let mut events = Vec::with_capacity(logs.len());
        for log in &logs {
            if log.removed {
                return Err(ChainError::Inconsistent(
                    "a log was removed during the scan".into(),
                ));
            }
            let event = if log.address() == registry {
                ChainEvent::from_secret_log(self.chain_id(), log)?
            } else if log.address() == factory {
                let event = ChainEvent::from_opened_log(self.chain_id(), log)?;
                self.opened(&event);
                event
            } else {
                let channel_id = vaults.get(&log.address()).ok_or_else(|| {
                    ChainError::garbage(format!("log from unwatched address {}", log.address()))
                })?;
                ChainEvent::from_vault_log(self.chain_id(), *channel_id, log)?
            };
            if !(from..=to).contains(&event.block) {
                return Err(ChainError::garbage(format!(
                    "log in block {} outside the range {from}..={to}",
                    event.block
                )));
            }
            events.push(event);
        }
        events.sort_by_key(|e| (e.block, e.log_index));
        // A channel whose participants are both watched is returned by both opened queries.
        events.dedup_by_key(|e| (e.block, e.log_index));
        Ok((events, before))
    }

    /// A vault opened for a participant we follow: watch it from its opening block.
    fn opened(&self, event: &ChainEvent) {
        let mut state = self.shared.lock();
        if !state.active.contains_key(&event.vault) && !state.pending.contains_key(&event.vault) {
            state
                .pending
                .insert(event.vault, (event.channel_id, Some(event.block)));
        }
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, ChainError> {
        self.provider
            .get_logs(filter)
            .await
            .map_err(ChainError::transport)
    }

    /// The canonical hash of block `number`.
    async fn hash_at(&self, number: u64) -> Result<B256, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(ChainError::transport)?
            .ok_or_else(|| {
                ChainError::Inconsistent(format!("the node does not have block {number}"))
            })?;
        Ok(block.header.hash)
    }

    /// Sends a batch and waits for its ack. A batch dropped unacknowledged is a failure (the
    /// range is delivered again); a dropped receiver stops the monitor.
    async fn deliver(
        &self,
        batches: &mpsc::Sender<Batch>,
        events: Vec<ChainEvent>,
        from_block: u64,
        to_block: u64,
        to_hash: B256,
        reorg: bool,
    ) -> Result<(), Halt> {
        let (ack, acked) = oneshot::channel();
        let count = events.len();
        let batch = Batch {
            chain_id: self.chain_id(),
            events,
            from_block,
            to_block,
            to_hash,
            reorg,
            ack,
        };
        batches
            .send(batch)
            .await
            .map_err(|_| Halt::Stop("the batch receiver was dropped".into()))?;
        tracing::debug!(
            chain_id = self.chain_id(),
            from_block,
            to_block,
            count,
            reorg,
            "chain events delivered"
        );
        acked.await.map_err(|_| {
            Halt::Retry(format!(
                "batch {from_block}..={to_block} dropped without an ack; delivering it again"
            ))
        })
    }

    /// The cursor's block was replaced: go back to the newest earlier checkpoint that is still
    /// canonical, or [`FALLBACK_REWIND`] blocks, and flag the batches up to the old cursor.
    async fn rewind(&mut self, stale: Checkpoint) -> Result<(), ChainError> {
        let mut base = None;
        while let Some(cp) = self.recent.pop_back() {
            if cp.block < stale.block && self.hash_at(cp.block).await? == cp.hash {
                base = Some(cp);
                break;
            }
        }
        if base.is_none() {
            let block = stale.block.saturating_sub(FALLBACK_REWIND);
            if block >= self.config.deployment.deployed_at_block && block < stale.block {
                base = Some(Checkpoint {
                    block,
                    hash: self.hash_at(block).await?,
                });
            }
        }
        tracing::warn!(
            chain_id = self.chain_id(),
            checkpoint = stale.block,
            rewound_to = ?base.map(|cp| cp.block),
            "reorg deeper than the confirmation depth: delivering the canonical events again"
        );
        self.reorg_until = Some(self.reorg_until.map_or(stale.block, |u| u.max(stale.block)));
        self.cursor = base;
        self.recent.extend(base);
        let mut state = self.shared.lock();
        state.health.reorgs = state.health.reorgs.saturating_add(1);
        state.health.checkpoint = base;
        Ok(())
    }

    fn advance(&mut self, cp: Checkpoint) {
        self.cursor = Some(cp);
        self.recent.push_back(cp);
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        self.shared.lock().health.checkpoint = Some(cp);
    }
}

fn store_error(e: crate::monitor::CheckpointError) -> Halt {
    ChainError::Checkpoint(e).into()
}
