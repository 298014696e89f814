//! Locks resolved on chain, through the deployment's SecretRegistry.
//!
//! As a hub: the next node may reveal a forward's secret only by registering it (its upstream
//! peer, us, was offline, or it prefers the chain). The chain monitor delivers the registration
//! of every pending forward's secret hash; a restarted hub, and one whose downstream lock
//! expires unrevealed, also asks the registry once for a registration it may have missed. The
//! secret then settles the forward as if the next node had revealed it to us.
//!
//! As the receiver of a lock whose secret we hold (a paid invoice, a settled forward's upstream
//! lock): while the sender does not pay it out, the secret is revealed again each second; once
//! the lock is within [`Config::claim_margin`](super::super::Config::claim_margin) of its
//! expiry, the secret is registered on chain and the channel closed, so that the lock pays us at
//! settlement whatever the sender does (the registration's time is what the vault checks).

use std::sync::Arc;

use keel_core::B256;

use super::{secret_learned, Inner, ON_CHAIN};
use crate::{
    client::Client,
    store::{ChainStatus, Forward, ForwardState},
};

/// From now on, the monitor of `forward`'s outgoing chain delivers its secret's registration.
pub(super) fn watch(inner: &Inner, forward: &Forward) {
    if let Some(link) = outgoing_link(inner, forward) {
        link.monitor.watch_secret(forward.incoming.secret_hash);
    }
}

/// `forward` is finished: its secret's registration no longer matters.
pub(super) fn unwatch(inner: &Inner, forward: &Forward) {
    if let Some(link) = outgoing_link(inner, forward) {
        link.monitor.unwatch_secret(forward.incoming.secret_hash);
    }
}

/// At start: watches the secret of every pending forward, and asks the registry once for each
/// whether it was registered while we were away.
pub(crate) fn watch_pending(inner: &Arc<Inner>) {
    let pending: Vec<Forward> = {
        let forwards = inner.forwarding.forwards.lock().expect("forwards poisoned");
        forwards
            .values()
            .filter(|f| !matches!(f.state, ForwardState::Settled { .. }))
            .copied()
            .collect()
    };
    for forward in pending {
        watch(inner, &forward);
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            look_up(&inner, &forward).await;
        });
    }
}

/// Asks the registry whether `forward`'s secret was registered; if so, settles the forward with
/// it. Returns whether it was.
pub(super) async fn look_up(inner: &Arc<Inner>, forward: &Forward) -> bool {
    let Some(link) = outgoing_link(inner, forward) else {
        return false;
    };
    match link
        .chain
        .revealed_secret(forward.incoming.secret_hash)
        .await
    {
        Ok(Some((secret, _))) => {
            secret_learned(inner, forward.outgoing_channel, secret).await;
            true
        }
        Ok(None) => false,
        Err(e) => {
            // The monitor still delivers a registration from now on.
            tracing::warn!(
                channel_id = %forward.outgoing_channel,
                error = %crate::chain::report(&e),
                "could not ask the secret registry"
            );
            false
        }
    }
}

/// The monitor of `chain_id` saw a watched secret registered: every unsettled forward into a
/// channel on that chain with its hash is settled with it.
pub(crate) async fn secret_registered(
    inner: &Arc<Inner>,
    chain_id: u64,
    secret_hash: B256,
    secret: B256,
) {
    let outgoing: Vec<B256> = {
        let forwards = inner.forwarding.forwards.lock().expect("forwards poisoned");
        forwards
            .values()
            .filter(|f| f.incoming.secret_hash == secret_hash)
            .filter(|f| !matches!(f.state, ForwardState::Settled { .. }))
            .map(|f| f.outgoing_channel)
            .collect()
    };
    for channel_id in outgoing {
        let on_chain = inner.channel(channel_id).map(|c| c.chain_id);
        if on_chain.is_ok_and(|id| id == chain_id) {
            secret_learned(inner, channel_id, secret).await;
        }
    }
}

/// Whether an incoming lock expiring at `expiration`, whose secret we hold, must now be claimed
/// on chain: within the claim margin of its expiry, and not past it (a registration after the
/// expiry pays nothing).
pub(super) fn due_on_chain(inner: &Inner, expiration: u64) -> bool {
    let now = inner.config.clock.now();
    now <= expiration && now.saturating_add(inner.config.claim_margin) >= expiration
}

/// Registers `secret` on `channel_id`'s chain and closes the channel if it is still open, once
/// per run (again on the next round if either failed): the lock it pays is then ours at
/// settlement. The peer that comes back in time may still pay it out off chain instead.
pub(super) fn claim_on_chain(inner: &Arc<Inner>, channel_id: B256, secret: B256) {
    let hash = keel_core::secret_hash(secret);
    let key = (channel_id, hash, ON_CHAIN);
    if !inner.forwarding.begin(key) {
        return;
    }
    let client = Client {
        inner: Arc::clone(inner),
    };
    tokio::spawn(async move {
        if let Err(e) = register_and_close(&client, channel_id, secret).await {
            tracing::warn!(%channel_id, error = %e, "lock not claimed on chain yet");
            client.inner.forwarding.again(key);
        }
    });
}

async fn register_and_close(
    client: &Client,
    channel_id: B256,
    secret: B256,
) -> crate::client::Result<()> {
    let channel = client.inner.channel(channel_id)?;
    let hash = keel_core::secret_hash(secret);
    let link = client.inner.link(channel.chain_id)?;
    if link.chain.revealed_secret(hash).await?.is_none() {
        client.register_secret(channel.chain_id, secret).await?;
        tracing::info!(%channel_id, %hash, "secret registered on chain");
    }
    let open = matches!(channel.rt.lock().await.chain, ChainStatus::Open);
    if open {
        client.force_close(channel_id).await?;
        tracing::info!(%channel_id, "closed to claim a lock on chain");
    }
    Ok(())
}

fn outgoing_link<'a>(
    inner: &'a Inner,
    forward: &Forward,
) -> Option<&'a super::super::onchain::ChainLink> {
    let chain_id = inner.channel(forward.outgoing_channel).ok()?.chain_id;
    inner.link(chain_id).ok()
}
