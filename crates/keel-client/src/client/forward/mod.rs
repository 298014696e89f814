//! Multi-hop payments, as a hub and as a payee: a lock that arrives with an onion
//! (`LockOnion`, then the update adding the lock) is peeled with our node key once the lock is
//! stored. `Forward`: the instruction is checked against our policy for the outgoing channel
//! (keel-core's `check_forward`) and the lock forwarded there, same secret hash, smaller amount,
//! earlier expiry, its record (which incoming lock pays for it) stored in the same transaction.
//! `Receive`: the lock is checked against the invoice and the onion, and the secret revealed.
//!
//! When the secret comes back from downstream it is stored first, then the upstream lock is
//! claimed (revealing it there) and the downstream one paid out: no hop pays out without the
//! means to claim. When the downstream lock fails (`LockFailed`) or expires unclaimed, the
//! failure is stored and relayed upstream unchanged, and the downstream lock taken back once it
//! expires. A restarted hub finds its forwards in the store and finishes each ([`maintain`]).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use k256::SecretKey;
use keel_core::{
    forwarding::{
        check_forward,
        onion::{self, Packet, Peeled},
        FailureReason, ForwardInstruction, HopFailure,
    },
    wire::Message,
    Change, ChannelError, Lock, B256, U256,
};
use tokio::sync::oneshot;

mod maintain;
mod pending;
mod policy;
mod registry;
pub(crate) mod release;
mod resume;

pub(crate) use maintain::maintain;
pub(crate) use policy::chain_timing;
pub(crate) use registry::{secret_registered, watch_pending};
pub(crate) use resume::{resume_arrivals, resume_claims};

use keel_routing::Asset;

use super::{
    peer::{self, Outgoing},
    Client, ClientError, ClientEvent, Inner,
};
use crate::store::{Forward, ForwardPolicy, ForwardState, Invoice, Released};

/// What a payer waiting for a payment hears: the secret (the payee's receipt), or where the
/// payment stopped.
pub(crate) type PaymentReply = oneshot::Sender<std::result::Result<B256, HopFailure>>;

/// A lock's channel and secret hash.
type LockKey = (B256, B256);

/// The client's multi-hop state.
#[derive(Debug)]
pub(crate) struct Forwarding {
    /// Our node key: the onion's layers for us are encrypted to it.
    pub(crate) node_key: SecretKey,
    /// Onions that arrived ahead of their locks, per channel.
    onions: Mutex<pending::PendingOnions>,
    /// Our forwards, by (outgoing channel, secret hash).
    forwards: Mutex<HashMap<(B256, B256), Forward>>,
    /// Payers waiting, by payment hash.
    pub(crate) payments: Mutex<HashMap<B256, PaymentReply>>,
    /// Our fee policy per outgoing channel, set by the operator.
    policies: RwLock<HashMap<B256, ForwardPolicy>>,
    /// Invoices paid whose lock the sender has not paid out yet, by (channel, secret hash): the
    /// secret is revealed again until it does (the hub may have died before storing it).
    claims: Mutex<HashMap<LockKey, B256>>,
    /// What a payer knows of the network: the routing graph, the scorer, node keys.
    pub(crate) routing: super::routing::Routing,
    /// Forwards whose secret this process has passed upstream, or whose downstream lock it is
    /// paying out or taking back: done once per run (a restart does it again if need be).
    done: Mutex<HashSet<(B256, B256, u8)>>,
}

/// Which of a forward's follow-ups [`Forwarding::done`] records.
const REVEALED: u8 = 0;
const PAID_OUT: u8 = 1;
const TAKEN_BACK: u8 = 2;
/// A payee's reveal of a paid invoice's secret in progress (keyed by the incoming channel).
const RECLAIMING: u8 = 3;
/// A lock claimed on chain: its secret registered and its channel closed (keyed by the
/// incoming channel).
const ON_CHAIN: u8 = 4;

impl Forwarding {
    pub(crate) fn new(node_key: SecretKey, forwards: Vec<Forward>) -> Self {
        let forwards = forwards
            .into_iter()
            .map(|f| ((f.outgoing_channel, f.incoming.secret_hash), f))
            .collect();
        Self {
            node_key,
            onions: Mutex::default(),
            forwards: Mutex::new(forwards),
            payments: Mutex::default(),
            policies: RwLock::default(),
            claims: Mutex::default(),
            routing: super::routing::Routing::default(),
            done: Mutex::default(),
        }
    }

    /// Our policy for forwarding into `channel`.
    pub(crate) fn policy(&self, channel: B256, default: &ForwardPolicy) -> ForwardPolicy {
        self.policies
            .read()
            .expect("policies poisoned")
            .get(&channel)
            .unwrap_or(default)
            .clone()
    }

    pub(crate) fn set_policy(&self, channel: B256, policy: ForwardPolicy) {
        self.policies
            .write()
            .expect("policies poisoned")
            .insert(channel, policy);
    }

    fn forward(&self, outgoing: B256, hash: B256) -> Option<Forward> {
        let forwards = self.forwards.lock().expect("forwards poisoned");
        forwards.get(&(outgoing, hash)).copied()
    }

    fn set_forward(&self, forward: Forward) {
        let key = (forward.outgoing_channel, forward.incoming.secret_hash);
        let mut forwards = self.forwards.lock().expect("forwards poisoned");
        forwards.insert(key, forward);
    }

    fn first_time(&self, forward: &Forward, what: u8) -> bool {
        self.begin((forward.outgoing_channel, forward.incoming.secret_hash, what))
    }

    /// The follow-up `what` failed: the maintenance tries it again.
    fn not_done(&self, forward: &Forward, what: u8) {
        self.again((forward.outgoing_channel, forward.incoming.secret_hash, what));
    }

    /// Marks the follow-up `key` (channel, secret hash, what) as started in this run; false if
    /// it already was.
    fn begin(&self, key: (B256, B256, u8)) -> bool {
        self.done.lock().expect("done poisoned").insert(key)
    }

    /// The follow-up `key` may be started again.
    fn again(&self, key: (B256, B256, u8)) {
        self.done.lock().expect("done poisoned").remove(&key);
    }

    /// Keeps revealing `secret` to the sender of our lock in `channel` until it pays the lock
    /// out, and claims it on chain near its expiry if it does not (see [`maintain`]).
    pub(crate) fn keep_claim(&self, channel: B256, secret: B256) {
        let hash = keel_core::secret_hash(secret);
        let mut claims = self.claims.lock().expect("claims poisoned");
        claims.insert((channel, hash), secret);
    }

    /// The secrets we hold for locks the peer sent us in `channel`, by secret hash: what the
    /// watchtowers are given, to register if the channel closes while we are away.
    pub(crate) fn claim_secrets(&self, channel: B256) -> HashMap<B256, B256> {
        let claims = self.claims.lock().expect("claims poisoned");
        claims
            .iter()
            .filter(|((c, _), _)| *c == channel)
            .map(|((_, hash), secret)| (*hash, *secret))
            .collect()
    }

    /// Drops a finished forward from memory (its record stays in the store).
    fn forget(&self, forward: &Forward) {
        let (channel, hash) = (forward.outgoing_channel, forward.incoming.secret_hash);
        self.forwards
            .lock()
            .expect("forwards poisoned")
            .remove(&(channel, hash));
        let mut done = self.done.lock().expect("done poisoned");
        for what in [REVEALED, PAID_OUT, TAKEN_BACK] {
            done.remove(&(channel, hash, what));
        }
    }
}

/// The peer sent the onion for a lock it is about to add in `channel_id`.
pub(crate) fn onion_arrived(inner: &Inner, channel_id: B256, secret_hash: B256, packet: Packet) {
    let mut onions = inner.forwarding.onions.lock().expect("onions poisoned");
    onions.hold(channel_id, secret_hash, packet);
}

/// The onions held for the locks `changes` (the peer's accepted update in `channel_id`) add,
/// taken out of the pending ones to be acted on behind the update ([`locks_arrived`]). No
/// lock is taken for an update that adds none.
pub(crate) fn take_onions(
    inner: &Inner,
    channel_id: B256,
    changes: &[Change],
) -> Vec<(Lock, Packet)> {
    let mut added = changes.iter().filter_map(|change| match change {
        Change::AddLock(lock) => Some(*lock),
        _ => None,
    });
    let Some(first) = added.next() else {
        return Vec::new();
    };
    let mut onions = inner.forwarding.onions.lock().expect("onions poisoned");
    std::iter::once(first)
        .chain(added)
        .filter_map(|lock| {
            let packet = onions.take(channel_id, lock.secret_hash)?;
            Some((lock, packet))
        })
        .collect()
}

/// The peer's update adding `locks` in `channel_id`, each with its onion, was accepted and
/// queued for the store: each is peeled and acted on behind it.
pub(crate) fn locks_arrived(inner: &Arc<Inner>, channel_id: B256, locks: Vec<(Lock, Packet)>) {
    for (lock, packet) in locks {
        tokio::spawn(lock_arrived(Arc::clone(inner), channel_id, lock, packet));
    }
}

async fn lock_arrived(inner: Arc<Inner>, channel_id: B256, lock: Lock, packet: Packet) {
    // The incoming lock is ours to claim only once it is stored, and its update was queued
    // for the store before this task started. Nothing below waits for it on its own: whatever
    // acts on the lock (the lock forwarded downstream, the paid invoice before its secret
    // leaves) is queued after it and waited for, and the store makes a write durable only
    // with every write queued before it (`store::writer`), so the two share a commit.
    let failure = match onion::peel(&inner.forwarding.node_key, &packet, &lock.secret_hash) {
        Err(e) => {
            tracing::warn!(%channel_id, error = %e, "unreadable onion");
            Some((FailureReason::BadOnion, channel_id))
        }
        Ok(Peeled::Receive { amount, expiration }) => {
            receive(&inner, channel_id, lock, amount, expiration)
                .await
                .err()
                .map(|reason| (reason, channel_id))
        }
        Ok(Peeled::Forward(instruction, next)) => {
            forward(&inner, channel_id, lock, instruction, (&packet, next))
                .await
                .err()
                .map(|reason| (reason, instruction.next_channel))
        }
    };
    if let Some((reason, channel)) = failure {
        refuse(&inner, channel_id, lock.secret_hash, reason, channel).await;
    }
}

/// We will not take the lock with `secret_hash` in `channel_id`, for `reason` (about
/// `channel`): no lock of ours stands on it, so it is released and the sender told at once.
async fn refuse(
    inner: &Inner,
    channel_id: B256,
    secret_hash: B256,
    reason: FailureReason,
    channel: B256,
) {
    if *inner.stopping.borrow() {
        // Cut short by our own stop, not refused: the lock (and its onion) are stored, and the
        // restart acts on them ([`resume_arrivals`]).
        return;
    }
    let failure = HopFailure {
        node: inner.address,
        channel,
        reason,
    };
    tracing::info!(%channel_id, ?failure, "refused a multi-hop lock");
    fail_upstream(inner, channel_id, secret_hash, failure, true).await;
}

/// Tells the sender of our incoming lock that it will not be claimed, releasing the lock first
/// if `release` (nothing downstream can cost us any more).
async fn fail_upstream(
    inner: &Inner,
    channel_id: B256,
    secret_hash: B256,
    failure: HopFailure,
    release: bool,
) {
    let Ok(channel) = inner.channel(channel_id) else {
        return;
    };
    if release {
        if let Err(e) = release::release_incoming(inner, channel_id, secret_hash).await {
            // The sender takes the lock back at expiry instead.
            tracing::warn!(%channel_id, error = %e, "failed lock not released");
        }
    }
    let msg = Message::LockFailed {
        channel_id,
        secret_hash,
        failure,
    };
    // An offline sender learns nothing, and takes its lock back once it expires.
    let _ = peer::send(inner, channel.peer, Outgoing::message(msg));
}

/// We are the payee: the lock must pay the invoice and what the payer meant to deliver,
/// expiring no earlier than the payer said; then the secret is revealed.
async fn receive(
    inner: &Arc<Inner>,
    channel_id: B256,
    lock: Lock,
    amount: U256,
    expiration: u64,
) -> Result<(), FailureReason> {
    let hash = lock.secret_hash;
    let now = inner.config.clock.now();
    let invoice = match inner.store.invoice(hash).await {
        Ok(Some(invoice)) if !invoice.paid && now <= invoice.expiry => invoice,
        _ => return Err(FailureReason::UnknownPayment),
    };
    if lock.amount < amount || amount < invoice.amount {
        return Err(FailureReason::WrongAmount);
    }
    if lock.expiration < expiration {
        return Err(FailureReason::WrongExpiry);
    }
    // Unpaid off chain, the lock must leave time to claim it on chain.
    if lock.expiration < now.saturating_add(inner.config.claim_margin) {
        return Err(FailureReason::ExpiryTooSoon);
    }
    if invoice.hold {
        // The application settles it (claim_lock) or lets it expire; LockReceived told it.
        return Ok(());
    }
    // Paid before the secret leaves: a second lock under the same hash is refused.
    let paid = Invoice {
        paid: true,
        ..invoice
    };
    let note = ClientEvent::InvoicePaid {
        payment_hash: hash,
        channel_id,
        amount: lock.amount,
    };
    let stored = inner
        .store
        .put_invoice_noted(hash, &paid, super::encode_notes(&[note]))
        .await;
    if stored.is_err() {
        return Err(FailureReason::UnknownPayment);
    }
    {
        let mut claims = inner.forwarding.claims.lock().expect("claims poisoned");
        claims.insert((channel_id, hash), invoice.secret);
    }
    // The towers learn the secret too, in case the sender never pays the lock out.
    inner.towers.updated(channel_id);
    claim_paid(inner, channel_id, hash, invoice.secret).await;
    Ok(())
}

/// The application claims the lock with hash `hash` in `channel`: if it pays a hold invoice of
/// ours (a lock of ours pending for it), the invoice is stored as paid before the secret
/// leaves, so [`resume_claims`] keeps revealing it after a restart. Other claims are not ours
/// to store (a hub's upstream claims are in its forwards).
pub(crate) async fn hold_invoice_claimed(
    inner: &Inner,
    channel: &super::channel::Channel,
    hash: B256,
) -> Result<(), ClientError> {
    if channel.incoming_lock(hash).await.is_none() {
        return Ok(());
    }
    match inner.store.invoice(hash).await? {
        Some(invoice) if invoice.hold && !invoice.paid => {
            let paid = Invoice {
                paid: true,
                ..invoice
            };
            inner.store.put_invoice(hash, &paid).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Reveals a paid invoice's secret to the sender of its lock; kept for the maintenance to
/// reveal again until the lock is paid out.
async fn claim_paid(inner: &Arc<Inner>, channel_id: B256, hash: B256, secret: B256) {
    let client = Client {
        inner: Arc::clone(inner),
    };
    // The invoice is stored as paid: no hold invoice to record first.
    match client.reveal_secret(channel_id, secret).await {
        Ok(()) => {
            let mut claims = inner.forwarding.claims.lock().expect("claims poisoned");
            claims.remove(&(channel_id, hash));
        }
        // The lock is ours (we hold the secret): revealed again each second while it is
        // pending; the secret can also be registered on chain before the lock expires.
        Err(e) => tracing::warn!(%channel_id, error = %e, "invoice paid, claim not answered yet"),
    }
}

/// We are a hop: check the instruction against our policy and forward the lock. `onions` are
/// the one the lock came with and the one for the next hop.
async fn forward(
    inner: &Arc<Inner>,
    channel_id: B256,
    lock: Lock,
    instruction: ForwardInstruction,
    (incoming_onion, next): (&Packet, Packet),
) -> Result<(), FailureReason> {
    let incoming = inner
        .channel(channel_id)
        .map_err(|_| FailureReason::UnknownNextChannel)?;
    let outgoing = inner
        .channel(instruction.next_channel)
        .map_err(|_| FailureReason::UnknownNextChannel)?;
    if outgoing.id == incoming.id || outgoing.chain_id != instruction.next_chain_id {
        return Err(FailureReason::UnknownNextChannel);
    }
    // One at a time: holding two channels' locks could deadlock with a forward the other way.
    let token = incoming.rt.lock().await.state.params().token;
    let (out_token, min_lifetime) = {
        let rt = outgoing.rt.lock().await;
        (rt.state.params().token, rt.state.policy().min_lock_lifetime)
    };
    let (from, into) = (
        Asset {
            chain_id: incoming.chain_id,
            token,
        },
        Asset {
            chain_id: outgoing.chain_id,
            token: out_token,
        },
    );
    // Both chains' timing: the delta is what it takes to see a secret registered on the
    // outgoing chain and register it on the incoming one in time.
    let (upstream, downstream) = (
        inner.chain_timing(incoming.chain_id),
        inner.chain_timing(outgoing.chain_id),
    );
    let policy = inner
        .forwarding
        .policy(outgoing.id, &inner.config.forward_policy)
        .hop(from, into, &upstream, &downstream)
        .ok_or(FailureReason::NoRate)?
        .map_err(|e| FailureReason::from(&e))?;
    let now = inner.config.clock.now();
    let out_lock = check_forward(&lock, &instruction, &policy, now, min_lifetime)
        .map_err(|e| FailureReason::from(&e))?;
    let record = Forward {
        incoming_channel: channel_id,
        incoming: lock,
        outgoing_channel: outgoing.id,
        outgoing: out_lock,
        state: ForwardState::Pending,
    };
    if !outgoing.ready() {
        // The lock waits for the next peer (offline, or its window full): a restart meanwhile
        // must still be able to forward it, so its onion is stored first. (Otherwise the
        // forward is written right behind the incoming lock, usually in the same commit.)
        let stored = inner
            .store
            .put_incoming_onion(channel_id, lock.secret_hash, incoming_onion)
            .await;
        if let Err(e) = stored {
            tracing::warn!(%channel_id, error = %e, "onion not stored: forwarding anyway");
        }
    }
    // Known before the lock leaves, so a secret coming straight back finds it, whether off
    // chain or registered on chain.
    inner.forwarding.set_forward(record);
    registry::watch(inner, &record);
    // The onion leaves just before the lock, in the same write, and is stored with it.
    let sent = inner
        .send_change_recorded(
            outgoing.id,
            Change::AddLock(out_lock),
            None,
            Some(&record),
            Some(next),
        )
        .await;
    if let Err(e) = sent {
        // Nothing was stored: the lock never left.
        registry::unwatch(inner, &record);
        let mut forwards = inner.forwarding.forwards.lock().expect("forwards poisoned");
        forwards.remove(&(outgoing.id, lock.secret_hash));
        return Err(reason_of(&e));
    }
    Ok(())
}

/// The failure to report for a lock we could not add downstream.
fn reason_of(e: &ClientError) -> FailureReason {
    match e {
        ClientError::Channel(
            ChannelError::InsufficientCapacity { .. }
            | ChannelError::TooManyLocks(_)
            | ChannelError::DuplicateLock(_),
        ) => FailureReason::Liquidity,
        ClientError::Channel(ChannelError::LockExpirationOutOfRange { .. }) => {
            FailureReason::OutgoingTooShort
        }
        _ => FailureReason::PeerOffline,
    }
}

/// The receiver of our lock in `channel_id` revealed its secret (the caller checked the lock
/// is ours): a waiting payer has its receipt; a forward stores the secret before anything is
/// paid out, then claims upstream.
pub(crate) async fn secret_learned(inner: &Arc<Inner>, channel_id: B256, secret: B256) {
    let hash = keel_core::secret_hash(secret);
    let payer = {
        let mut payments = inner.forwarding.payments.lock().expect("payments poisoned");
        payments.remove(&hash)
    };
    if let Some(payer) = payer {
        let _ = payer.send(Ok(secret));
    }
    let Some(mut forward) = inner.forwarding.forward(channel_id, hash) else {
        return;
    };
    if matches!(forward.state, ForwardState::Settled { .. }) {
        return;
    }
    forward.state = ForwardState::Settled { secret };
    let note = ClientEvent::PaymentForwarded {
        incoming_channel: forward.incoming_channel,
        outgoing_channel: forward.outgoing_channel,
        secret_hash: hash,
        fee: forward.fee(),
    };
    // Queued, not awaited: the payout downstream is queued after it (the caller sends it once
    // this returns), so the store makes the payout durable only with the secret. Revealing
    // the secret upstream needs no record: it only lets the upstream node pay us, and if we
    // restart before the record is durable the payee reveals it again.
    match inner
        .store
        .enqueue_forward(&forward, super::encode_notes(&[note]))
        .await
    {
        Ok(commit) => drop(commit),
        Err(e) => {
            // Not paid downstream either: the store is failing.
            tracing::error!(%channel_id, error = %e, "forward's secret not stored");
            return;
        }
    }
    inner.forwarding.set_forward(forward);
    reveal_upstream(inner, &forward, secret);
}

/// Claims the upstream lock of a settled forward, once per run.
fn reveal_upstream(inner: &Arc<Inner>, forward: &Forward, secret: B256) {
    if !inner.forwarding.first_time(forward, REVEALED) {
        return;
    }
    let client = Client {
        inner: Arc::clone(inner),
    };
    let (channel_id, forward) = (forward.incoming_channel, *forward);
    tokio::spawn(async move {
        // The secret is in the forward's record, queued before this.
        if let Err(e) = client.reveal_secret(channel_id, secret).await {
            tracing::warn!(%channel_id, error = %e, "upstream claim not answered yet");
            // Tried again by the maintenance.
            client.inner.forwarding.not_done(&forward, REVEALED);
        }
    });
}

/// The receiver of our lock in `channel_id` says it will not be claimed: a waiting payer
/// hears where and why; a forward stores the failure and relays it upstream.
pub(crate) async fn lock_failed(
    inner: &Arc<Inner>,
    channel_id: B256,
    secret_hash: B256,
    failure: HopFailure,
) {
    let payer = {
        let mut payments = inner.forwarding.payments.lock().expect("payments poisoned");
        payments.remove(&secret_hash)
    };
    if let Some(payer) = payer {
        let _ = payer.send(Err(failure));
    }
    if let Some(forward) = inner.forwarding.forward(channel_id, secret_hash) {
        if forward.state == ForwardState::Pending {
            fail_forward(inner, forward, failure).await;
        }
    }
}

/// Stores a forward's failure, relays it upstream and tells the application.
async fn fail_forward(inner: &Inner, mut forward: Forward, failure: HopFailure) {
    forward.state = ForwardState::Failed { failure };
    if inner.store.update_forward(&forward).await.is_err() {
        return;
    }
    inner.forwarding.set_forward(forward);
    let hash = forward.incoming.secret_hash;
    // Our downstream lock can still be claimed unless its receiver released it.
    let released = inner
        .store
        .is_released(Released::Outgoing, forward.outgoing_channel, hash)
        .await
        .unwrap_or(false);
    fail_upstream(inner, forward.incoming_channel, hash, failure, released).await;
    inner
        .note(ClientEvent::ForwardFailed {
            incoming_channel: forward.incoming_channel,
            secret_hash: hash,
            failure,
        })
        .await;
}

/// The node key behind a signer's address, as the onion uses it.
pub(crate) fn node_key(signer: &alloy::signers::local::PrivateKeySigner) -> SecretKey {
    SecretKey::from(signer.credential().as_nonzero_scalar())
}

#[cfg(test)]
mod tests {
    use keel_core::forwarding::expiry_delta;

    use super::super::{DEFAULT_CLAIM_MARGIN, DEFAULT_EXPIRY_DELTA, MAINNET_TIMING};

    /// The default expiry delta and claim margin are the derivation's figures for mainnet, not
    /// numbers picked.
    #[test]
    fn the_default_expiry_delta_is_mainnets_derived_one() {
        assert_eq!(
            expiry_delta(&MAINNET_TIMING, &MAINNET_TIMING),
            Ok(DEFAULT_EXPIRY_DELTA)
        );
        assert_eq!(MAINNET_TIMING.registration_time(), Ok(DEFAULT_CLAIM_MARGIN));
    }
}
