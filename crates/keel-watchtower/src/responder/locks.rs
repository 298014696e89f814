//! Locks: what the tower does for an appointment's locks once the channel is closed.
//!
//! An appointment may carry the locks behind its proof's locks root (the customer's pending
//! incoming locks), secrets the customer knows for some of them, and releases of the customer's
//! outgoing locks signed by the counterparty. Once the channel is closed (by anyone), one task
//! per channel, for each such appointment:
//!
//! 0. records its releases in the vault (`releaseLocks`, the customer's side as the locks'
//!    sender, all in one transaction), once: again only for an appointment accepted after the
//!    last `released` step, which may carry more. A close with an old proof of the customer's
//!    still holding a released lock then returns it to the customer at `unlock`, even if its
//!    secret is registered;
//! 1. registers the held secrets not yet registered whose locks have not expired, in
//!    `registerSecrets` transactions of at most [`SECRETS_PER_TX`], the earliest-expiring
//!    first, each mined by the earliest of its locks' expirations (with the fee raises a
//!    refutation gets: [`keel_chain::Chain::register_secrets_by_deadline`]);
//! 2. after the challenge period, settles the channel if nobody has (anyone may), when the
//!    customer has locks to be paid;
//! 3. once the vault published the lock state (`LocksRetained`), and every lock is decided (its
//!    secret registered in time, or expired), unlocks the customer's incoming locks: each goes to
//!    the customer if its secret was registered by its expiration, back to the sender otherwise.
//!
//! Every step reads the chain before it sends (registered secrets, the vault's status, the lock
//! state on record), so a restarted tower or a second instance repeats nothing done; the state
//! it needs (appointment, dispute, lock state) is on disk, and [`Store::lock_work`] names the
//! channels to resume at start. Each step runs under a claim on
//! ([`lock_claim_id`], customer), so of several instances one sends. Between steps the task
//! looks at the chain's clock every [`LOCK_POLL`].

use std::{collections::HashSet, sync::Arc, time::Duration};

use keel_chain::ChainError;
use keel_core::{Lock, LockState, B256};

use super::{Claim, Responder, MAX_BACKOFF};
use crate::{
    intake::{ChannelLookup, VaultStatus},
    store::{lock_claim_id, Appointment, ChannelRecord, LockStep, LockStepKind, Store},
};

/// How often a channel's lock task looks at the chain's clock while it waits (for the end of
/// the challenge period, a lock's expiry, an event).
pub const LOCK_POLL: Duration = Duration::from_secs(2);

/// Most secrets registered in one transaction. A new secret costs under 29,000 gas (the gas
/// snapshot's `test_RegisterSecretsAllNewReturnsTrue`: 87,186 for three, read back included),
/// so a full transaction stays under half the default gas cap (1,000,000).
pub const SECRETS_PER_TX: usize = 16;

/// What a lock task does next for one appointment.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing is left to do.
    Done,
    /// Look again after [`LOCK_POLL`].
    Wait,
}

impl<S: Store> Responder<S> {
    /// Starts (or asks the running task to repeat) the lock work for `channel_id`.
    pub(super) fn resolve_locks(self: Arc<Self>, channel_id: B256) {
        {
            let mut resolving = self.resolving.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = resolving.get_mut(&channel_id) {
                *again = true;
                return;
            }
            resolving.insert(channel_id, false);
        }
        tokio::spawn(async move {
            // Secrets seen registered in this run: not asked about again.
            let mut registered = HashSet::new();
            loop {
                self.resolve_locks_once(channel_id, &mut registered).await;
                let mut resolving = self.resolving.lock().unwrap_or_else(|e| e.into_inner());
                if resolving.get(&channel_id) == Some(&true) {
                    resolving.insert(channel_id, false);
                    continue;
                }
                resolving.remove(&channel_id);
                break;
            }
        });
    }

    /// Whether `channel_id` settled keeping funds for locks of an appointment the tower holds,
    /// not unlocked yet.
    pub(super) async fn unlock_pending(&self, channel_id: B256) -> Result<bool, crate::StoreError> {
        let record = self.store.channel(channel_id).await?;
        let Some(state) = record.lock_state else {
            return Ok(false);
        };
        Ok(record
            .appointments
            .iter()
            .any(|a| unlockable(a, &state).is_some()))
    }

    /// Works on `channel_id`'s locks until nothing is left to do.
    async fn resolve_locks_once(&self, channel_id: B256, registered: &mut HashSet<B256>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let next = match self.store.channel(channel_id).await {
                Ok(record) => self.lock_steps(&record, registered).await,
                Err(e) => {
                    tracing::error!(channel = %channel_id, error = %e, "reading the store");
                    Err(Retry)
                }
            };
            match next {
                Ok(Next::Done) => return,
                Ok(Next::Wait) => {
                    backoff = Duration::from_millis(500);
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Err(Retry) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One step for each appointment of `record` with locks or secrets, each under its claim.
    async fn lock_steps(
        &self,
        record: &ChannelRecord,
        registered: &mut HashSet<B256>,
    ) -> Result<Next, Retry> {
        // Open (nothing to do yet), or settled and pruned.
        if record.dispute.is_none() && record.lock_state.is_none() {
            return Ok(Next::Done);
        }
        let work: Vec<&Appointment> = record
            .appointments
            .iter()
            .filter(|a| !a.locks.is_empty() || !a.secrets.is_empty() || !a.releases.is_empty())
            .collect();
        if work.is_empty() {
            return Ok(Next::Done);
        }
        let now = self.chain.block_timestamp().await.map_err(|e| {
            tracing::warn!(error = %keel_chain::report(&e), "reading the chain's clock");
            Retry
        })?;
        let mut next = Next::Done;
        for a in work {
            // Only the challenge period to wait out: no claim taken, no other call made.
            if !releases_due(a, record) && waiting_for_deadline(a, record, now, registered) {
                next = Next::Wait;
                continue;
            }
            let claim = Claim::take_key(
                self.store.clone(),
                lock_claim_id(a.channel_id),
                a.customer,
                &self.instance,
                self.claim_lease,
            )
            .await
            .map_err(|e| {
                tracing::error!(channel = %a.channel_id, error = %e, "claiming lock work");
                Retry
            })?;
            // Another instance is at it: look again later (it may die).
            let Some(claim) = claim else {
                next = Next::Wait;
                continue;
            };
            let step = self.lock_step(a, record, now, registered).await;
            claim.release().await;
            if step? == Next::Wait {
                next = Next::Wait;
            }
        }
        Ok(next)
    }

    /// The next thing to do for `a`'s locks: register, settle, unlock, or wait.
    async fn lock_step(
        &self,
        a: &Appointment,
        record: &ChannelRecord,
        now: u64,
        registered: &mut HashSet<B256>,
    ) -> Result<Next, Retry> {
        self.record_releases(a, record).await?;
        self.register_secrets(a, now, registered).await?;
        match &record.lock_state {
            None => self.settle(a, record, now).await,
            Some(state) => self.unlock(a, state, now, registered).await,
        }
    }

    /// Records `a`'s releases in the vault, unless a `released` step already did (for this
    /// appointment or a newer one). A refusal is logged and left: the vault refuses only a
    /// channel not closed, or one whose releases no longer matter, and a release it rejects as
    /// badly signed was checked at intake.
    async fn record_releases(&self, a: &Appointment, record: &ChannelRecord) -> Result<(), Retry> {
        if !releases_due(a, record) {
            return Ok(());
        }
        let Some(side) = a.customer_side() else {
            return Ok(());
        };
        let releases: Vec<(keel_core::LockRelease, [u8; 65])> = a
            .releases
            .iter()
            .map(|r| {
                let release = keel_core::LockRelease {
                    channelId: a.channel_id,
                    secretHash: r.lock.secret_hash,
                    amount: r.lock.amount,
                    expiration: r.lock.expiration,
                };
                (release, r.signature)
            })
            .collect();
        match self.chain.release_locks(&a.params, side, &releases).await {
            Ok(receipt) => {
                tracing::info!(channel = %a.channel_id, customer = %a.customer, releases = releases.len(), tx = %receipt.transaction_hash, "recorded lock releases");
                let detail = format!("{} releases", releases.len());
                self.stepped(a, LockStepKind::Released, receipt.transaction_hash, detail)
                    .await;
                Ok(())
            }
            Err(e @ ChainError::Rejected { .. }) => {
                tracing::error!(channel = %a.channel_id, error = %keel_chain::report(&e), "recording lock releases refused");
                Ok(())
            }
            Err(e) => Err(self.failed(a, "recording lock releases", &e)),
        }
    }

    /// Registers `a`'s secrets that are not registered yet and whose locks have not expired,
    /// the earliest-expiring first, [`SECRETS_PER_TX`] a transaction.
    async fn register_secrets(
        &self,
        a: &Appointment,
        now: u64,
        registered: &mut HashSet<B256>,
    ) -> Result<(), Retry> {
        // (expiration of its lock, secret)
        let mut due = Vec::new();
        for secret in &a.secrets {
            let hash = keel_core::secret_hash(*secret);
            let Some(lock) = a.locks.iter().find(|l| l.secret_hash == hash) else {
                continue;
            };
            // Registered after its expiration, a secret pays nothing.
            if registered.contains(&hash) || lock.expiration < now {
                continue;
            }
            let at = self
                .chain
                .revealed_at(hash)
                .await
                .map_err(|e| self.failed(a, "looking up a secret", &e))?;
            if at.is_some() {
                registered.insert(hash);
                continue;
            }
            due.push((lock.expiration, *secret));
        }
        due.sort_unstable();
        for chunk in due.chunks(SECRETS_PER_TX) {
            let secrets: Vec<B256> = chunk.iter().map(|(_, s)| *s).collect();
            // Sorted: the first lock expires first, and its secret must be on chain by then.
            let deadline = chunk[0].0;
            match self
                .chain
                .register_secrets_by_deadline(&secrets, deadline, &self.fees)
                .await
            {
                Ok(receipt) => {
                    tracing::info!(channel = %a.channel_id, customer = %a.customer, secrets = secrets.len(), tx = %receipt.transaction_hash, "registered secrets");
                    registered.extend(secrets.iter().map(|s| keel_core::secret_hash(*s)));
                    let detail = format!("{} secrets", secrets.len());
                    self.stepped(
                        a,
                        LockStepKind::Registered,
                        receipt.transaction_hash,
                        detail,
                    )
                    .await;
                }
                // Too late for the earliest lock: the next attempt leaves it out (it expired).
                Err(e @ (ChainError::DeadlinePassed { .. } | ChainError::FeeCapReached { .. })) => {
                    tracing::error!(channel = %a.channel_id, error = %keel_chain::report(&e), "secrets missed a lock's expiry");
                    return Err(Retry);
                }
                // Nothing sent; tried again on the next look (the settlement goes on meanwhile).
                Err(e @ (ChainError::GasCapExceeded { .. } | ChainError::Rejected { .. })) => {
                    tracing::error!(channel = %a.channel_id, error = %keel_chain::report(&e), "registering secrets refused");
                    return Ok(());
                }
                Err(e) => return Err(self.failed(a, "registering secrets", &e)),
            }
        }
        Ok(())
    }

    /// Before the vault published its lock state: settles once the challenge period is over, if
    /// nobody has and the customer has locks to be paid.
    async fn settle(
        &self,
        a: &Appointment,
        record: &ChannelRecord,
        now: u64,
    ) -> Result<Next, Retry> {
        let Some(dispute) = &record.dispute else {
            return Ok(Next::Done);
        };
        if a.locks.is_empty() {
            return Ok(Next::Done);
        }
        if now <= dispute.deadline {
            return Ok(Next::Wait);
        }
        let status = self.chain.status(a.vault).await.map_err(|e| {
            tracing::warn!(channel = %a.channel_id, error = %e, "reading the vault's status");
            Retry
        })?;
        // Settled by someone: its `LocksRetained` (or `Settled`, which prunes) is on its way.
        if status != VaultStatus::Closed {
            return Ok(Next::Wait);
        }
        match self.chain.settle(&a.params, dispute).await {
            Ok(receipt) => {
                tracing::info!(channel = %a.channel_id, customer = %a.customer, tx = %receipt.transaction_hash, "settled");
                self.stepped(
                    a,
                    LockStepKind::Settled,
                    receipt.transaction_hash,
                    String::new(),
                )
                .await;
                Ok(Next::Wait)
            }
            // The state changed under us (a refutation not recorded yet, someone settled).
            Err(e @ ChainError::Rejected { .. }) => {
                tracing::info!(channel = %a.channel_id, error = %keel_chain::report(&e), "settlement refused; looking again");
                Ok(Next::Wait)
            }
            Err(e) => Err(self.failed(a, "settling", &e)),
        }
    }

    /// After settlement: unlocks the customer's incoming locks once each is decided.
    async fn unlock(
        &self,
        a: &Appointment,
        state: &LockState,
        now: u64,
        registered: &mut HashSet<B256>,
    ) -> Result<Next, Retry> {
        let Some(sender) = unlockable(a, state) else {
            return Ok(Next::Done);
        };
        for lock in &a.locks {
            if !self.decided(a, lock, now, registered).await? {
                return Ok(Next::Wait);
            }
        }
        match self.chain.unlock(&a.params, state, sender, &a.locks).await {
            Ok(receipt) => {
                tracing::info!(channel = %a.channel_id, customer = %a.customer, tx = %receipt.transaction_hash, "unlocked");
                let detail = format!("{} locks", a.locks.len());
                self.stepped(a, LockStepKind::Unlocked, receipt.transaction_hash, detail)
                    .await;
                // Its `Unlocked` event records the state left, and prunes when nothing is.
                Ok(Next::Wait)
            }
            Err(e @ ChainError::Rejected { .. }) => {
                tracing::info!(channel = %a.channel_id, error = %keel_chain::report(&e), "unlock refused; looking again");
                Ok(Next::Wait)
            }
            Err(e) => Err(self.failed(a, "unlocking", &e)),
        }
    }

    /// Whether the vault can decide `lock` now: expired, or its secret registered by then.
    async fn decided(
        &self,
        a: &Appointment,
        lock: &Lock,
        now: u64,
        registered: &mut HashSet<B256>,
    ) -> Result<bool, Retry> {
        if now > lock.expiration || registered.contains(&lock.secret_hash) {
            return Ok(true);
        }
        let at = self
            .chain
            .revealed_at(lock.secret_hash)
            .await
            .map_err(|e| self.failed(a, "looking up a secret", &e))?;
        if at.is_some_and(|at| at <= lock.expiration) {
            registered.insert(lock.secret_hash);
            return Ok(true);
        }
        Ok(false)
    }

    /// Counts and records a mined lock step, for the operator and the customer
    /// (`GET /v1/channels/{id}`). A record that fails to store is logged, not retried: the
    /// transaction is on chain either way.
    async fn stepped(&self, a: &Appointment, kind: LockStepKind, tx_hash: B256, detail: String) {
        self.metrics.lock_step(kind.as_str());
        let step = LockStep {
            channel_id: a.channel_id,
            customer: a.customer,
            kind,
            tx_hash,
            detail,
            updated_at: (self.clock)(),
        };
        if let Err(e) = self.store.record_lock_step(&step).await {
            tracing::error!(channel = %a.channel_id, error = %e, "recording a lock step");
        }
    }

    fn failed(&self, a: &Appointment, what: &str, e: &ChainError) -> Retry {
        tracing::warn!(channel = %a.channel_id, customer = %a.customer, error = %keel_chain::report(e), "{what} failed; retrying");
        Retry
    }
}

/// Whether `a`'s releases are still to be recorded: it holds some, and no `released` step for
/// its customer was mined after the tower accepted it (a newer appointment may add releases;
/// recording one again changes nothing on chain).
fn releases_due(a: &Appointment, record: &ChannelRecord) -> bool {
    !a.releases.is_empty()
        && !record.lock_steps.iter().any(|s| {
            s.customer == a.customer
                && s.kind == LockStepKind::Released
                && s.updated_at > a.accepted_at
        })
}

/// Whether all that is left for `a` before the challenge period ends is to wait for it: the
/// channel closed, not settled, its secrets registered (seen in this run) or expired.
fn waiting_for_deadline(
    a: &Appointment,
    record: &ChannelRecord,
    now: u64,
    registered: &HashSet<B256>,
) -> bool {
    let Some(dispute) = &record.dispute else {
        return false;
    };
    let secrets_done = a.secrets.iter().all(|s| {
        let hash = keel_core::secret_hash(*s);
        registered.contains(&hash)
            || a.locks
                .iter()
                .any(|l| l.secret_hash == hash && l.expiration < now)
    });
    record.lock_state.is_none() && now <= dispute.deadline && secrets_done
}

/// The side whose locks `a` holds, if the vault keeps funds for them and they are the ones it
/// committed to (`a`'s locks hash to the root on record); else nothing for the tower to unlock.
fn unlockable(a: &Appointment, state: &LockState) -> Option<keel_core::Side> {
    if a.locks.is_empty() {
        return None;
    }
    let sender = a.sender_side()?;
    let (retained, root) = state.retained_from(sender);
    (!retained.is_zero() && keel_core::locks_root(&a.locks) == root).then_some(sender)
}

/// A step that should be repeated after a back-off.
#[derive(Debug)]
struct Retry;
