//! The responder: follows the watched vaults with keel-chain's [`Monitor`] (over the tower's own
//! storage as its checkpoint) and, when a channel is closed with a proof from the closer older
//! than the one a customer gave the tower, submits the refutation at once through keel-chain's
//! [`Chain`], paying gas from the tower's key.
//!
//! Every dispute state is stored before the monitor's batch is acknowledged, so a tower killed at
//! any point finds it again on restart (in the database, or in the re-delivered batch) and
//! responds if the deadline has not passed. One task per disputed channel, at most
//! [`MAX_RESPONDERS`] at once; a task retries failed attempts (RPC outage, nonce taken by
//! another instance) with back-off until the deadline, and stops when the vault holds a proof
//! as new as the customer's (or refuses the refutation, which the next `Refuted` event
//! explains).
//!
//! Each refutation goes through keel-chain's [`Chain::refute_with_authorisation_by_deadline`]
//! under the tower's [`FeePolicy`]: sent at once at the estimated fees, replaced with higher
//! fees while it is not mined as the deadline nears (up to the caps), re-simulated before each
//! replacement (so it stops once a proof as new is on record), sent again if a reorganisation
//! drops it before it is `confirmations` deep. A refutation recorded as mined whose transaction
//! a deeper reorganisation later removed (the monitor delivers the canonical events again) is
//! sent anew.
//!
//! Several instances may share one database (PostgreSQL): each follows the chain and records
//! the same disputes, but before an attempt an instance claims the response
//! ([`Store::claim`]) and renews the claim while it works, so one instance sends at a time. The
//! others look again every [`CLAIM_POLL`]: once the response is mined they stop; if the holder
//! died, its lease runs out (after [`CLAIM_LEASE`] unless configured) and one of them takes
//! over.
//!
//! Appointments carrying locks get more once their channel is closed (`responder/locks.rs`):
//! the secrets registered, the channel settled after the challenge period, the customer's locks
//! unlocked. A settled channel is pruned only once nothing the tower holds is left to unlock.

mod locks;

pub use locks::{LOCK_POLL, SECRETS_PER_TX};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use keel_chain::{Batch, Chain, ChainError, ChainEventKind, FeePolicy, Monitor};
use keel_core::{Address, DisputeState, B256};
use tokio::sync::{mpsc, Semaphore};

use crate::{
    metrics::Metrics,
    store::{Appointment, Outcome, Response, Store},
};

/// Disputed channels responded to at once.
pub const MAX_RESPONDERS: usize = 256;

/// Channels read from the store per query at start: the watch set is filled page by page, so
/// a tower of millions of channels never holds them all in one list besides the watch set.
const WATCHED_PAGE: u32 = 10_000;

/// Pause before a batch whose events could not be stored is taken again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Longest pause between two attempts for one channel.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a claim on a response lasts unless renewed, by default: how long a dead instance's
/// response waits before another takes over. Renewed every third of it while an attempt runs.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// How often an instance waiting on another's claim looks again.
pub const CLAIM_POLL: Duration = Duration::from_secs(2);

/// Follows the chain and responds to stale closes.
pub struct Responder<S> {
    store: Arc<S>,
    /// The tower's own account: reads the chain, registers secrets, settles and unlocks, and
    /// sends refutations with `refuters`.
    chain: Chain,
    /// Further accounts sending refutations: each account's transactions take its nonces one
    /// at a time, so a mass close is answered as many times as fast as there are accounts.
    refuters: Vec<Chain>,
    monitor: Arc<Monitor>,
    /// Caps and pace of the refutations' fees.
    fees: FeePolicy,
    /// Channels with a response task, and whether it must look again when done.
    running: Mutex<HashMap<B256, bool>>,
    /// Channels with a lock task ([`locks`]), and whether it must look again when done.
    resolving: Mutex<HashMap<B256, bool>>,
    slots: Semaphore,
    metrics: Arc<Metrics>,
    clock: fn() -> u64,
    /// This instance's name in claims: unique per process.
    instance: String,
    /// How long this instance's claims last unless renewed.
    claim_lease: Duration,
}

impl<S> std::fmt::Debug for Responder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("tower", &self.chain.address())
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Responder<S> {
    /// A responder sending from `chain`'s account (and refutations from `refuters` too, each
    /// channel's from one account chosen by its id) under `fees`, following with `monitor`,
    /// named uniquely in claims (one of several instances over one database), its claims
    /// lasting `claim_lease` unless renewed.
    #[allow(clippy::too_many_arguments)] // Each is a separate part the host plugs in.
    pub fn new(
        store: Arc<S>,
        chain: Chain,
        refuters: Vec<Chain>,
        monitor: Arc<Monitor>,
        metrics: Arc<Metrics>,
        clock: fn() -> u64,
        fees: FeePolicy,
        claim_lease: Duration,
    ) -> Arc<Self> {
        Self::named(
            store,
            chain,
            refuters,
            monitor,
            metrics,
            clock,
            instance_name(),
            fees,
            claim_lease,
        )
    }

    /// [`new`](Self::new) named `instance` in claims. The only instance over its database
    /// takes a fixed name: restarted after a crash, it takes back its own claims at once
    /// instead of waiting out its lease.
    #[allow(clippy::too_many_arguments)] // Each is a separate part the host plugs in.
    pub fn named(
        store: Arc<S>,
        chain: Chain,
        refuters: Vec<Chain>,
        monitor: Arc<Monitor>,
        metrics: Arc<Metrics>,
        clock: fn() -> u64,
        instance: String,
        fees: FeePolicy,
        claim_lease: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            chain,
            refuters,
            monitor,
            fees,
            running: Mutex::default(),
            resolving: Mutex::default(),
            slots: Semaphore::new(MAX_RESPONDERS),
            metrics,
            clock,
            instance,
            claim_lease,
        })
    }

    /// This instance's name in claims.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Watches every stored channel and resumes the responses to every open dispute, then
    /// handles `batches` until the monitor stops.
    pub async fn run(self: Arc<Self>, mut batches: mpsc::Receiver<Batch>) -> crate::Result<()> {
        let mut after = None;
        loop {
            let page = self.store.watched(after, WATCHED_PAGE).await?;
            for &(channel_id, vault) in &page {
                self.monitor.watch(vault, channel_id);
            }
            match page.last() {
                Some(&(last, _)) if page.len() == WATCHED_PAGE as usize => after = Some(last),
                _ => break,
            }
        }
        for channel_id in self.store.open_disputes((self.clock)()).await? {
            self.clone().respond(channel_id);
        }
        for channel_id in self.store.lock_work().await? {
            self.clone().resolve_locks(channel_id);
        }
        while let Some(batch) = batches.recv().await {
            match self.apply(&batch).await {
                Ok((disputed, locked)) => {
                    // Durable: the checkpoint may move past these events.
                    batch.ack();
                    for channel_id in disputed {
                        self.clone().respond(channel_id);
                        self.clone().resolve_locks(channel_id);
                    }
                    for channel_id in locked {
                        self.clone().resolve_locks(channel_id);
                    }
                }
                Err(e) => {
                    // Not acknowledged: the monitor delivers the same batch again.
                    tracing::error!(error = %e, "storing a batch's events; it will be redelivered");
                    drop(batch);
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
        Ok(())
    }

    /// Stores what `batch` changed; returns the channels whose dispute state changed, and those
    /// whose lock state did.
    async fn apply(&self, batch: &Batch) -> Result<(Vec<B256>, Vec<B256>), crate::StoreError> {
        let mut disputed = Vec::new();
        let mut locked = Vec::new();
        // Dispute states not stored yet: written together, in one transaction, before any
        // other event's step (which may read them) and at the end.
        let mut disputes = Vec::new();
        for event in &batch.events {
            if let ChainEventKind::Closed(state) | ChainEventKind::Refuted(state) = &event.kind {
                disputes.push((event.channel_id, *state));
                disputed.push(event.channel_id);
                continue;
            }
            self.record_disputes(&mut disputes).await?;
            match &event.kind {
                ChainEventKind::LocksRetained(state) | ChainEventKind::Unlocked { state, .. } => {
                    self.store
                        .record_lock_state(event.channel_id, state)
                        .await?;
                    locked.push(event.channel_id);
                }
                // Settled keeping funds for locks the tower is to unlock: kept until unlocked.
                ChainEventKind::Settled { .. } if self.unlock_pending(event.channel_id).await? => {
                    disputed.retain(|id| *id != event.channel_id);
                }
                ChainEventKind::Settled { .. } | ChainEventKind::CooperativelyClosed { .. } => {
                    let removed = self.store.prune(event.channel_id).await?;
                    self.monitor.unwatch(event.vault);
                    disputed.retain(|id| *id != event.channel_id);
                    locked.retain(|id| *id != event.channel_id);
                    tracing::info!(channel = %event.channel_id, removed, "settled; pruned");
                }
                _ => {}
            }
        }
        self.record_disputes(&mut disputes).await?;
        // Settled, and the locks the tower held are all unlocked now: nothing is left to do.
        let mut done = Vec::new();
        for &channel_id in &locked {
            if !self.unlock_pending(channel_id).await? && !done.contains(&channel_id) {
                done.push(channel_id);
            }
        }
        for channel_id in done {
            let removed = self.store.prune(channel_id).await?;
            if let Some(vault) = batch
                .events
                .iter()
                .find(|e| e.channel_id == channel_id)
                .map(|e| e.vault)
            {
                self.monitor.unwatch(vault);
            }
            locked.retain(|id| *id != channel_id);
            tracing::info!(channel = %channel_id, removed, "locks resolved; pruned");
        }
        Ok((disputed, locked))
    }

    /// Stores `disputes` (if any) in one transaction and empties it.
    async fn record_disputes(
        &self,
        disputes: &mut Vec<(B256, DisputeState)>,
    ) -> Result<(), crate::StoreError> {
        if !disputes.is_empty() {
            self.store.record_disputes(disputes).await?;
            disputes.clear();
        }
        Ok(())
    }

    /// Starts (or asks the running task to repeat) the response for `channel_id`.
    fn respond(self: Arc<Self>, channel_id: B256) {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = running.get_mut(&channel_id) {
                *again = true;
                return;
            }
            running.insert(channel_id, false);
        }
        // When the tower saw the close (or restarted with it open): response latency runs from here.
        let seen = Instant::now();
        tokio::spawn(async move {
            let _slot = self.slots.acquire().await;
            loop {
                self.respond_once(channel_id, seen).await;
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                if running.get(&channel_id) == Some(&true) {
                    running.insert(channel_id, false);
                    continue;
                }
                running.remove(&channel_id);
                break;
            }
        });
    }

    /// Responds for every customer of `channel_id` whose proof beats the closer's on record,
    /// until done or the deadline passes.
    async fn respond_once(&self, channel_id: B256, seen: Instant) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let record = match self.store.channel(channel_id).await {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(channel = %channel_id, error = %e, "reading the store");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let Some(dispute) = record.dispute else {
                return;
            };
            let mut retry = false;
            let mut waiting = false;
            for a in &record.appointments {
                let closer = a.params.participant(dispute.closer);
                // The customer closed itself, or its proof is no newer than the one on record.
                if closer == a.customer || a.proof.nonce <= dispute.proof_from(dispute.closer).nonce
                {
                    continue;
                }
                // Already landed; the `Refuted` event that records it is on its way.
                match self.landed(a, &record.responses).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(channel = %channel_id, error = %keel_chain::report(&e), "looking up a mined refutation");
                        retry = true;
                        continue;
                    }
                }
                let claim = match Claim::take(
                    self.store.clone(),
                    a,
                    &self.instance,
                    self.claim_lease,
                )
                .await
                {
                    Ok(Some(claim)) => claim,
                    Ok(None) => {
                        waiting = true;
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(channel = %channel_id, error = %e, "claiming a response");
                        retry = true;
                        continue;
                    }
                };
                match self.attempt(a, &dispute, seen).await {
                    Ok(()) => claim.release().await,
                    // Kept until it runs out: this instance retries after its back-off, or
                    // another takes over if this one dies meanwhile.
                    Err(Retry) => retry = true,
                }
            }
            if retry {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else if waiting && (self.clock)() <= dispute.deadline {
                // Another instance holds the response: look again, to stop once it landed or
                // to take over if that instance dies.
                tokio::time::sleep(CLAIM_POLL).await;
            } else {
                return;
            }
        }
    }

    /// Whether a refutation for `a` with its proof (or a newer one) is recorded as mined and
    /// its transaction is still on chain: a reorganisation deeper than the confirmation depth
    /// may have removed it, and then the vault no longer holds the proof.
    async fn landed(&self, a: &Appointment, responses: &[Response]) -> Result<bool, ChainError> {
        let mined = responses.iter().filter(|r| {
            r.customer == a.customer && r.nonce >= a.proof.nonce && r.outcome == Outcome::Mined
        });
        for r in mined {
            let Some(tx_hash) = r.tx_hash else {
                return Ok(true);
            };
            let receipt = self.chain.receipt_of(tx_hash).await?;
            if receipt.is_some_and(|receipt| receipt.status()) {
                return Ok(true);
            }
            tracing::warn!(channel = %a.channel_id, tx = %tx_hash, "a mined refutation is no longer on chain (reorganisation); sending it again");
        }
        Ok(false)
    }

    /// One refutation for `a`; `Err(Retry)` if it should be tried again.
    async fn attempt(
        &self,
        a: &Appointment,
        dispute: &DisputeState,
        seen: Instant,
    ) -> Result<(), Retry> {
        let now = match self.chain.block_timestamp().await {
            Ok(now) => now,
            Err(e) => {
                self.record(a, Outcome::Failed, None, &keel_chain::report(&e))
                    .await;
                return Err(Retry);
            }
        };
        if now > dispute.deadline {
            self.record(a, Outcome::Missed, None, "the deadline passed")
                .await;
            return Ok(());
        }
        self.record(a, Outcome::Sending, None, "").await;
        let sent = self
            .refuter(a.channel_id)
            .refute_with_authorisation_by_deadline(
                &a.params,
                dispute,
                &a.proof,
                &a.sender_signature,
                &a.authorisation,
                &self.fees,
            )
            .await;
        match sent {
            Ok(receipt) => {
                tracing::info!(channel = %a.channel_id, nonce = a.proof.nonce, tx = %receipt.transaction_hash, "refuted");
                self.metrics.response(Outcome::Mined, Some(seen.elapsed()));
                self.record(a, Outcome::Mined, Some(receipt.transaction_hash), "")
                    .await;
                Ok(())
            }
            Err(e @ ChainError::Rejected { .. }) => {
                tracing::warn!(channel = %a.channel_id, error = %keel_chain::report(&e), "refutation refused");
                self.record(a, Outcome::Rejected, None, &keel_chain::report(&e))
                    .await;
                Ok(())
            }
            // Final: the chain's clock passed the deadline (at the fee cap, or before it).
            Err(e @ (ChainError::DeadlinePassed { .. } | ChainError::FeeCapReached { .. })) => {
                let tx = match e {
                    ChainError::FeeCapReached { tx_hash, .. } => Some(tx_hash),
                    ChainError::DeadlinePassed { tx_hash, .. } => tx_hash,
                    _ => None,
                };
                tracing::error!(channel = %a.channel_id, error = %keel_chain::report(&e), "refutation missed the deadline");
                self.record(a, Outcome::Missed, tx, &keel_chain::report(&e))
                    .await;
                Ok(())
            }
            Err(e) => {
                let tx = match &e {
                    ChainError::ReceiptTimeout { tx_hash, .. }
                    | ChainError::Reverted { tx_hash, .. } => Some(*tx_hash),
                    _ => None,
                };
                tracing::warn!(channel = %a.channel_id, error = %keel_chain::report(&e), "refutation failed; retrying");
                self.record(a, Outcome::Failed, tx, &keel_chain::report(&e))
                    .await;
                Err(Retry)
            }
        }
    }

    /// The account that refutes closes of `channel_id`: always the same one for a channel, so
    /// its replacements (and a retry after a restart) take the same nonce.
    fn refuter(&self, channel_id: B256) -> &Chain {
        let accounts = self.refuters.len() as u64 + 1;
        let pick = u64::from_be_bytes(channel_id[24..].try_into().expect("8 bytes")) % accounts;
        match pick {
            0 => &self.chain,
            n => &self.refuters[n as usize - 1],
        }
    }

    async fn record(&self, a: &Appointment, outcome: Outcome, tx_hash: Option<B256>, detail: &str) {
        if !matches!(outcome, Outcome::Sending | Outcome::Mined) {
            self.metrics.response(outcome, None);
        }
        let response = Response {
            channel_id: a.channel_id,
            customer: a.customer,
            nonce: a.proof.nonce,
            outcome,
            tx_hash,
            detail: detail.to_owned(),
            updated_at: (self.clock)(),
        };
        if let Err(e) = self.store.record_response(&response).await {
            tracing::error!(channel = %a.channel_id, error = %e, "recording a response");
        }
    }

    /// Starts following `vault` (of `channel_id`) for a newly stored appointment. A vault
    /// already closed is followed from the deployment block, so its `Closed` event is found, and
    /// its response is (re)started: the new proof may beat the one on record, and no event will
    /// say so.
    pub fn accepted(self: &Arc<Self>, vault: Address, channel_id: B256, closed: bool) {
        // Not `watched()`: it copies every watched vault, once per accepted appointment.
        if !self.monitor.is_watched(vault) {
            if closed {
                let from = self.chain.deployment().deployed_at_block;
                self.monitor.watch_from(vault, channel_id, from);
            } else {
                self.monitor.watch(vault, channel_id);
            }
        }
        if closed {
            self.clone().respond(channel_id);
            // It may carry secrets or locks the closed channel's lock task has not seen.
            self.clone().resolve_locks(channel_id);
        }
    }
}

/// An attempt that should be repeated.
#[derive(Debug)]
struct Retry;

/// This instance's claim on one response, renewed in the background until dropped or released.
struct Claim<S: Store> {
    store: Arc<S>,
    channel_id: B256,
    customer: Address,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl<S: Store> Claim<S> {
    /// Claims `a`'s response for `holder` for `lease`, renewed every third of it; `None` while
    /// another instance holds it.
    async fn take(
        store: Arc<S>,
        a: &Appointment,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Self>, crate::StoreError> {
        Self::take_key(store, a.channel_id, a.customer, holder, lease).await
    }

    /// Claims the work under (`channel_id`, `customer`) for `holder` (a response's key, or
    /// [`lock_claim_id`](crate::store::lock_claim_id)'s) for `lease`, renewed every third of it;
    /// `None` while another instance holds it.
    async fn take_key(
        store: Arc<S>,
        channel_id: B256,
        customer: Address,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Self>, crate::StoreError> {
        // At least a millisecond: an interval of zero is refused.
        let renew_every = (lease / 3).max(Duration::from_millis(1));
        let lease = millis(lease);
        if !store
            .claim(channel_id, customer, holder, unix_ms(), lease)
            .await?
        {
            return Ok(None);
        }
        let renewal = tokio::spawn({
            let (store, holder) = (store.clone(), holder.to_owned());
            async move {
                let mut every = tokio::time::interval(renew_every);
                every.tick().await;
                loop {
                    every.tick().await;
                    match store
                        .claim(channel_id, customer, &holder, unix_ms(), lease)
                        .await
                    {
                        Ok(true) => {}
                        // Taken over after a stall longer than the lease: the attempt under way
                        // finishes (a second refutation of the same proof only fails), and the
                        // next one asks again.
                        Ok(false) => {
                            tracing::warn!(channel = %channel_id, "claim taken over by another instance");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(channel = %channel_id, error = %e, "renewing a claim")
                        }
                    }
                }
            }
        });
        Ok(Some(Self {
            store,
            channel_id,
            customer,
            holder: holder.to_owned(),
            renewal,
        }))
    }

    /// Gives the claim up: the response is done (mined, refused, or past its deadline).
    async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self
            .store
            .release(self.channel_id, self.customer, &self.holder)
            .await
        {
            // It runs out by itself.
            tracing::warn!(channel = %self.channel_id, error = %e, "releasing a claim");
        }
    }
}

impl<S: Store> Drop for Claim<S> {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// A name for this responder in claims: the process id, the start time and a count, unique
/// across hosts in practice.
fn instance_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), unix_ms())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
