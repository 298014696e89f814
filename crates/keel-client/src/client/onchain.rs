//! The client's chain side: one [`Chain`] (our transactions) and one [`Monitor`] (the vaults'
//! events) per configured chain, and the task that applies each monitor batch to the channels.
//!
//! A batch is acknowledged (so the monitor checkpoints past it) only once every event in it is
//! stored in the channel logs; re-delivered events are harmless, since totals only move forward
//! and a dispute state replaces the one before. When the peer closes a channel, the client
//! answers by itself: if it holds a newer proof of the closer's than the one on record, it
//! submits it (`refute`) before the deadline, once per dispute state.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use alloy::primitives::keccak256;
use keel_core::{Address, Side, B256, U256};
use tokio::sync::mpsc;

use super::{ChannelInfo, Client, ClientError, ClientEvent, Inner, Result};
use crate::{
    chain::{
        Batch, Chain, ChainConfig, ChainEvent, ChainEventKind, DisputeState, Monitor, TxReceipt,
    },
    store::{ChainStatus, ChannelOpening, Event},
};

/// One configured chain.
#[derive(Debug)]
pub(crate) struct ChainLink {
    /// Sends our transactions.
    pub(crate) chain: Chain,
    /// Follows our channels' vaults.
    pub(crate) monitor: Monitor,
    /// Dispute states we already answered with a refutation (by closer's nonce on record),
    /// so a re-delivered `Closed` is not answered twice.
    pub(crate) refuted: std::sync::Mutex<HashSet<(B256, u64)>>,
    /// Refutations started (see [`Client::refutations_started`]).
    pub(crate) refutations: AtomicU64,
}

/// Connects every configured chain and starts its monitor and the task applying its batches.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    chains: &[ChainConfig],
) -> Result<Vec<(u64, ChainLink)>> {
    let mut links = Vec::with_capacity(chains.len());
    for config in chains {
        // Nothing here waits for the node: a client starts, and pays off chain, while its RPC
        // node is down; the monitor catches up once it answers.
        let chain = Chain::new(config.clone(), inner.config.signer.clone())?;
        let (monitor, batches) = Monitor::spawn(config.clone(), inner.store.clone())?;
        tokio::spawn(report_health(
            Arc::downgrade(inner),
            config.chain_id(),
            monitor.subscribe(),
        ));
        monitor.watch_opened(inner.address);
        for channel in inner
            .channels
            .read()
            .expect("channel map poisoned")
            .values()
        {
            if channel.chain_id == config.chain_id() {
                monitor.watch(channel.vault, channel.id);
            }
        }
        links.push((
            config.chain_id(),
            ChainLink {
                chain,
                monitor,
                refuted: std::sync::Mutex::default(),
                refutations: AtomicU64::new(0),
            },
        ));
        tokio::spawn(follow(Arc::downgrade(inner), batches));
    }
    Ok(links)
}

/// Applies batches until the monitor or the client stops. A batch that fails to apply is
/// dropped unacknowledged, so the monitor delivers it again.
async fn follow(inner: std::sync::Weak<Inner>, mut batches: mpsc::Receiver<Batch>) {
    while let Some(batch) = batches.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.stopping.borrow() {
            return;
        }
        if batch.reorg {
            // Deeper than the confirmation depth: totals already recorded only move forward,
            // and a dispute state is replaced by the next one delivered, but an event the
            // reorg removed for good stays recorded. Tell the operator.
            inner.emit(ClientEvent::ChainTrouble {
                chain_id: batch.chain_id,
                reason: format!(
                    "reorganisation deeper than the confirmation depth around blocks {}..={}",
                    batch.from_block, batch.to_block
                ),
            });
        }
        let mut applied = true;
        for event in &batch.events {
            if let Err(e) = apply(&inner, event).await {
                inner.emit(ClientEvent::ChainTrouble {
                    chain_id: batch.chain_id,
                    reason: format!("applying {:?}: {}", event.kind, crate::chain::report(&e)),
                });
                applied = false;
                break;
            }
        }
        if applied {
            batch.ack();
        } else {
            // Let the next attempt find things changed (an RPC or disk back up).
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// Tells the application when a monitor turns unhealthy (a node on another chain, or failing
/// again and again) and when it recovers: while it is unhealthy, a peer's stale close would
/// not be refuted.
async fn report_health(
    inner: std::sync::Weak<Inner>,
    chain_id: u64,
    mut health: tokio::sync::watch::Receiver<crate::chain::Health>,
) {
    let mut healthy = true;
    while health.changed().await.is_ok() {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = health.borrow_and_update().clone();
        if now.is_healthy() == healthy {
            continue;
        }
        healthy = now.is_healthy();
        inner.emit(if healthy {
            ClientEvent::ChainRecovered { chain_id }
        } else {
            let reason = match (now.wrong_chain, &now.stopped, &now.last_error) {
                (Some(found), _, _) => format!("the RPC node is on chain {found}"),
                (_, Some(why), _) => format!("the monitor stopped: {why}"),
                (_, _, Some(error)) => format!("the monitor keeps failing: {error}"),
                _ => "the monitor is unhealthy".into(),
            };
            ClientEvent::ChainTrouble { chain_id, reason }
        });
    }
}

/// Applies one confirmed chain event to its channel.
async fn apply(inner: &Arc<Inner>, event: &ChainEvent) -> Result<()> {
    let id = event.channel_id;
    // A vault we follow for the graph, not one of ours.
    if super::foreign::event(inner, event) {
        return Ok(());
    }
    match &event.kind {
        ChainEventKind::Opened {
            params,
            opener,
            deposit,
        } => {
            let Some(me) = params.side_of(inner.address) else {
                return Ok(());
            };
            if inner.channel(id).is_err() {
                let peer = params.participant(me.other());
                // A channel we opened (`open_channel` may be recording it at this moment, or
                // crashed before it could) is ours; one a peer opened is taken only if the
                // application's rule accepts it.
                if *opener != me && !inner.config.accept_channels.accepts(peer, *deposit) {
                    inner
                        .note(ClientEvent::ChannelDeclined {
                            channel_id: id,
                            peer,
                            deposit: *deposit,
                        })
                        .await;
                    return Ok(());
                }
                let link = inner.link(event.chain_id)?;
                let deployment = link.chain.deployment();
                let opening = ChannelOpening {
                    params: *params,
                    chain_id: event.chain_id,
                    factory: deployment.channel_factory,
                    implementation: deployment.vault_implementation,
                    me,
                    policy: inner.config.policy,
                };
                let note = ClientEvent::ChannelOpened {
                    channel_id: id,
                    peer,
                };
                super::adopt_channel(inner, &opening, event.block, note).await?;
            }
            confirm_total(inner, id, *opener, *deposit, true).await
        }
        ChainEventKind::Deposited { side, total } => {
            confirm_total(inner, id, *side, *total, true).await
        }
        ChainEventKind::Withdrawn { side, total } => {
            confirm_total(inner, id, *side, *total, false).await
        }
        ChainEventKind::CooperativelyClosed { payout_a, payout_b }
        | ChainEventKind::Settled { payout_a, payout_b } => {
            let event = Event::ChainSettled {
                payout_a: *payout_a,
                payout_b: *payout_b,
            };
            let note = ClientEvent::Settled {
                channel_id: id,
                payout_a: *payout_a,
                payout_b: *payout_b,
            };
            record(inner, id, event, Some(note)).await
        }
        ChainEventKind::Closed(dispute) => {
            let me = inner.channel(id)?.rt.lock().await.state.me();
            let note = (dispute.closer != me).then_some(ClientEvent::ClosedByPeer {
                channel_id: id,
                deadline: dispute.deadline,
            });
            record(inner, id, Event::ChainClosed(*dispute), note).await?;
            answer_dispute(inner, event.chain_id, id, dispute).await;
            // Whoever closed, with whatever proof: the locks the peer released stay ours.
            let (inner, chain_id) = (Arc::clone(inner), event.chain_id);
            tokio::spawn(async move {
                super::forward::release::submit_releases(&inner, chain_id, id).await;
            });
            Ok(())
        }
        ChainEventKind::Refuted(dispute) => {
            let note = ClientEvent::DisputeAnswered {
                channel_id: id,
                closer_nonce: closer_proof(dispute).nonce,
            };
            record(inner, id, Event::ChainRefuted(*dispute), Some(note)).await?;
            answer_dispute(inner, event.chain_id, id, dispute).await;
            Ok(())
        }
        ChainEventKind::LocksRetained(locks) => {
            record(inner, id, Event::LocksRetained(*locks), None).await
        }
        ChainEventKind::Unlocked { state, .. } => {
            record(inner, id, Event::LocksRetained(*state), None).await
        }
        // Deferred payouts and claims concern the payee's wallet, not the channel.
        // Releases matter to the vault's `unlock`, which reads them itself.
        ChainEventKind::PayoutDeferred { .. }
        | ChainEventKind::Claimed { .. }
        | ChainEventKind::LocksReleased { .. } => Ok(()),
        ChainEventKind::SecretRevealed {
            secret_hash,
            secret,
        } => {
            super::forward::secret_registered(inner, event.chain_id, *secret_hash, *secret).await;
            Ok(())
        }
    }
}

/// Records a deposit (`deposit`) or withdrawal total seen on chain, unless it is not news (a
/// re-delivered event).
async fn confirm_total(
    inner: &Inner,
    id: B256,
    side: Side,
    total: U256,
    deposit: bool,
) -> Result<()> {
    let channel = inner.channel(id)?;
    let mut rt = channel.rt.lock().await;
    let (deposited, withdrawn) = rt.state.ledger(side);
    let event = if deposit {
        if total <= deposited {
            return Ok(());
        }
        Event::DepositConfirmed { side, total }
    } else {
        if total <= withdrawn {
            return Ok(());
        }
        Event::WithdrawalConfirmed { side, total }
    };
    super::apply_event(&mut rt.state, &event)?;
    let note = if deposit {
        ClientEvent::DepositConfirmed {
            channel_id: id,
            side,
            total,
        }
    } else {
        ClientEvent::WithdrawalConfirmed {
            channel_id: id,
            side,
            total,
        }
    };
    inner
        .persist_noted(&channel, &mut rt, &event, &[note])
        .await
}

/// Stores an on-chain outcome and folds it into the channel's status; `note` for the
/// application is stored with it (if the outcome is news).
async fn record(inner: &Inner, id: B256, event: Event, note: Option<ClientEvent>) -> Result<()> {
    let channel = inner.channel(id)?;
    let mut rt = channel.rt.lock().await;
    let mut status = rt.chain;
    status.apply(&event);
    if status == rt.chain {
        return Ok(());
    }
    // Folded in first, so a snapshot taken with the event covers it.
    rt.chain = status;
    let notes: Vec<ClientEvent> = note.into_iter().collect();
    inner
        .persist_noted(&channel, &mut rt, &event, &notes)
        .await?;
    if !status.is_open() {
        // Whatever was in flight can no longer change the outcome.
        rt.fail_waiters(|| ClientError::ChannelClosed(id));
    }
    Ok(())
}

/// The closer's proof on record in `dispute`.
const fn closer_proof(dispute: &DisputeState) -> &crate::chain::BalanceData {
    match dispute.closer {
        Side::A => &dispute.from_a,
        Side::B => &dispute.from_b,
    }
}

/// If the peer closed and we hold a newer proof of its than the one on record, submits it
/// (once per dispute state), in the background so the monitor goes on.
async fn answer_dispute(inner: &Arc<Inner>, chain_id: u64, id: B256, dispute: &DisputeState) {
    let Ok(channel) = inner.channel(id) else {
        return;
    };
    let (params, proof) = {
        let rt = channel.rt.lock().await;
        if dispute.closer == rt.state.me() {
            return;
        }
        (*rt.state.params(), rt.state.latest_counterparty_proof())
    };
    let Some((proof, signature)) = proof else {
        return;
    };
    let recorded = closer_proof(dispute).nonce;
    if proof.nonce <= recorded || inner.config.clock.now() > dispute.deadline {
        return;
    }
    let Ok(link) = inner.link(chain_id) else {
        return;
    };
    if !link
        .refuted
        .lock()
        .expect("refuted set poisoned")
        .insert((id, recorded))
    {
        return;
    }
    // Counted before the batch holding the close is acknowledged, so before the monitor's
    // checkpoint passes it.
    link.refutations.fetch_add(1, Ordering::Relaxed);
    let (inner, dispute) = (Arc::clone(inner), *dispute);
    tokio::spawn(async move {
        let Ok(link) = inner.link(chain_id) else {
            return;
        };
        match link
            .chain
            .refute(&params, &dispute, &proof, &signature)
            .await
        {
            Ok(receipt) => {
                inner
                    .note(ClientEvent::RefutationSubmitted {
                        channel_id: id,
                        nonce: proof.nonce,
                        tx_hash: receipt.transaction_hash,
                    })
                    .await;
            }
            Err(e) => {
                // Allow another attempt when the dispute is delivered again.
                link.refuted
                    .lock()
                    .expect("refuted set poisoned")
                    .remove(&(id, recorded));
                inner.emit(ClientEvent::ChainTrouble {
                    chain_id,
                    reason: format!("refuting the close of {id}: {}", crate::chain::report(&e)),
                });
            }
        }
    });
}

impl Inner {
    /// The configured chain `chain_id`.
    pub(crate) fn link(&self, chain_id: u64) -> Result<&ChainLink> {
        self.chains
            .get()
            .and_then(|links| links.iter().find(|(id, _)| *id == chain_id))
            .map(|(_, link)| link)
            .ok_or(ClientError::NoChain(chain_id))
    }
}

impl Client {
    /// Opens a channel with `peer` on `chain_id` holding `token` (`Address::ZERO` for ETH), with
    /// our opening deposit (approving the factory first for a token). Returns once the opening
    /// transaction is mined; the deposit counts once the monitor confirms it
    /// ([`ClientEvent::DepositConfirmed`]), and the channel takes payments once the peer, which
    /// learns of it from the chain, has resynchronised it.
    pub async fn open_channel(
        &self,
        chain_id: u64,
        peer: Address,
        token: Address,
        deposit: U256,
        challenge_period: u32,
    ) -> Result<ChannelInfo> {
        let inner = &self.inner;
        let link = inner.link(chain_id)?;
        let deployment = link.chain.deployment();
        let salt = keccak256(
            [
                inner.address.as_slice(),
                peer.as_slice(),
                &std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
                    .to_be_bytes(),
            ]
            .concat(),
        );
        let params = keel_core::ChannelParams {
            participant_a: inner.address,
            participant_b: peer,
            token,
            challenge_period,
            salt,
        };
        let opening = ChannelOpening {
            params,
            chain_id,
            factory: deployment.channel_factory,
            implementation: deployment.vault_implementation,
            me: Side::A,
            policy: inner.config.policy,
        };
        // Recorded only once the chain holds it, so a failed open leaves nothing behind. A
        // crash between the transaction and the record loses nothing either: the monitor
        // follows `ChannelOpened` naming us and records the channel when it sees it.
        let receipt = link.chain.open(&params, deposit).await?;
        let from = receipt.block_number.unwrap_or_default();
        super::add_channel_once(inner, &opening, Some(from)).await
    }

    /// Raises our deposit in the channel by `amount`; counts once the monitor confirms it.
    pub async fn top_up(&self, channel_id: B256, amount: U256) -> Result<TxReceipt> {
        let (params, me, chain_id) = self.inner.params_of(channel_id).await?;
        let link = self.inner.link(chain_id)?;
        Ok(link.chain.deposit(&params, me, amount).await?)
    }

    /// Closes the channel unilaterally with the peer's latest proof; the peer may add its newer
    /// one until the challenge period ends, then anyone may [`Client::settle`].
    pub async fn force_close(&self, channel_id: B256) -> Result<TxReceipt> {
        let channel = self.inner.channel(channel_id)?;
        let (params, latest, chain_id) = {
            let rt = channel.rt.lock().await;
            (
                *rt.state.params(),
                rt.state.latest_counterparty_proof(),
                rt.state.chain_id(),
            )
        };
        let link = self.inner.link(chain_id)?;
        let counterparty = latest.as_ref().map(|(proof, sig)| (proof, sig));
        Ok(link.chain.close(&params, counterparty).await?)
    }

    /// Settles a unilaterally closed channel once its challenge period is over, with the
    /// dispute state the monitor last confirmed.
    pub async fn settle(&self, channel_id: B256) -> Result<TxReceipt> {
        let channel = self.inner.channel(channel_id)?;
        let (params, status, chain_id) = {
            let rt = channel.rt.lock().await;
            (*rt.state.params(), rt.chain, rt.state.chain_id())
        };
        let ChainStatus::Disputed(dispute) = status else {
            return Err(ClientError::NotDisputed(channel_id));
        };
        let link = self.inner.link(chain_id)?;
        Ok(link.chain.settle(&params, &dispute).await?)
    }

    /// After settlement kept funds for pending locks, resolves every direction whose final
    /// locks we hold (those of the latest proofs we have, or for our own side, of whichever
    /// proof of ours the peer closed with): each lock goes to its receiver if its secret was
    /// registered in time and the receiver did not release it, else back to its sender.
    /// Returns the transactions.
    pub async fn unlock(&self, channel_id: B256) -> Result<Vec<TxReceipt>> {
        let channel = self.inner.channel(channel_id)?;
        let (params, status, chain_id, directions, me) = {
            let rt = channel.rt.lock().await;
            let dir = |side| {
                let d = rt.state.direction(side);
                (side, d.locks.clone(), keel_core::locks_root(&d.locks))
            };
            (
                *rt.state.params(),
                rt.chain,
                rt.state.chain_id(),
                [dir(Side::A), dir(Side::B)],
                rt.state.me(),
            )
        };
        let ChainStatus::Settled {
            locks: Some(mut state),
            ..
        } = status
        else {
            return Err(ClientError::NotDisputed(channel_id));
        };
        let link = self.inner.link(chain_id)?;
        let mut receipts = Vec::new();
        for (side, mut locks, root) in directions {
            let (retained, on_chain) = match side {
                Side::A => (state.retained_a, state.locks_root_a),
                Side::B => (state.retained_b, state.locks_root_b),
            };
            if retained.is_zero() {
                continue;
            }
            if root != on_chain && side == me {
                // The peer closed with an older proof of ours: its locks are in our log.
                match self
                    .inner
                    .store
                    .own_locks_with_root(channel_id, on_chain)
                    .await?
                {
                    Some(older) => locks = older,
                    None => continue,
                }
            } else if root != on_chain {
                continue;
            }
            if locks.is_empty() {
                continue;
            }
            let receipt = link.chain.unlock(&params, &state, side, &locks).await?;
            // The next direction's unlock takes the state this one left.
            let vault = channel.vault;
            for event in ChainEvent::from_receipt(chain_id, vault, channel_id, &receipt)? {
                if let ChainEventKind::Unlocked { state: left, .. } = event.kind {
                    state = left;
                }
            }
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    /// Reveals a lock's secret on `chain_id`'s registry, so the lock pays its receiver at
    /// settlement even if the sender never pays it out off-chain.
    pub async fn register_secret(&self, chain_id: u64, secret: B256) -> Result<TxReceipt> {
        Ok(self
            .inner
            .link(chain_id)?
            .chain
            .register_secret(secret)
            .await?)
    }

    /// The monitor's progress and trouble on `chain_id`.
    pub fn chain_health(&self, chain_id: u64) -> Result<crate::chain::Health> {
        Ok(self.inner.link(chain_id)?.monitor.health())
    }

    /// How many refutations this client has started on `chain_id` since it started: each one a
    /// transaction submitting the closer's newer proof ([`ClientEvent::RefutationSubmitted`]
    /// once mined, [`ClientEvent::ChainTrouble`] if it fails). A refutation is counted when the
    /// client decides on it, while applying the close's batch, so once
    /// [`Client::chain_health`]'s checkpoint has passed a close every refutation it prompted is
    /// in the count: what a check that a close was answered exactly once, or never, reads.
    pub fn refutations_started(&self, chain_id: u64) -> Result<u64> {
        Ok(self
            .inner
            .link(chain_id)?
            .refutations
            .load(Ordering::Relaxed))
    }
}

impl Client {
    /// The parameters a channel was opened with: what its vault's functions take, for an
    /// application that calls them itself.
    pub async fn channel_params(&self, channel_id: B256) -> Result<keel_core::ChannelParams> {
        Ok(self.inner.params_of(channel_id).await?.0)
    }
}

impl Inner {
    /// A channel's parameters, our side and its chain.
    pub(crate) async fn params_of(
        &self,
        channel_id: B256,
    ) -> Result<(keel_core::ChannelParams, Side, u64)> {
        let channel = self.channel(channel_id)?;
        let rt = channel.rt.lock().await;
        Ok((*rt.state.params(), rt.state.me(), rt.state.chain_id()))
    }
}
