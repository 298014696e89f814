//! Giving a lock up before it expires (keel-core's `LockRelease`). A lock's receiver that will
//! never claim it (the payment failed at or after it) signs a release, stores it and sends it
//! ahead of the `LockFailed`; the sender checks it, stores it and takes the lock back at once
//! (`Change::RemoveReleasedLock`) instead of at expiry. A hub releases its incoming lock only
//! once nothing can cost it downstream: the downstream lock never left, or its receiver
//! released it. A payer retries under the same payment hash only once its own lock is released
//! ([`retry_is_safe`]): an unreleased lock of a failed attempt could otherwise be claimed by a
//! hop that learns the secret from the retry, and the payee be paid for twice.
//!
//! In a dispute the stored releases of our locks go to the vault's `releaseLocks`
//! ([`submit_releases`]), so a close with an older proof still holding a released lock cannot
//! pay the receiver for it. Each release received also goes to our watchtowers with the
//! channel's next appointment (`client::tower`), which record them if we are away.

use std::{sync::Arc, time::Duration};

use keel_core::{wire::Message, wire::Signature, Change, ChannelError, B256};

use super::super::{
    channel::Channel,
    peer::{self, Outgoing},
    ClientError, ClientEvent, Inner, RejectCode,
};
use crate::store::Released;

/// How long a payer waits for its released lock to leave its proof before retrying.
const REMOVAL_WAIT: Duration = Duration::from_secs(5);

/// We received the lock with `secret_hash` in `channel_id` and will never claim it: the
/// release is signed, stored (durable) and sent to the lock's sender.
pub(crate) async fn release_incoming(
    inner: &Inner,
    channel_id: B256,
    secret_hash: B256,
) -> Result<(), ClientError> {
    let channel = inner.channel(channel_id)?;
    let (release, digest) = {
        let rt = channel.rt.lock().await;
        let release = rt.state.lock_release(rt.state.me().other(), secret_hash)?;
        let digest = rt.state.domain().signing_hash(&release);
        (release, digest)
    };
    let signature =
        keel_core::sign_hash(&inner.config.signer, &digest).map_err(ClientError::Signing)?;
    inner
        .store
        .put_release(Released::Incoming, &release, &signature)
        .await?;
    let msg = Message::LockReleased {
        channel_id,
        secret_hash,
        signature,
    };
    peer::send(inner, channel.peer, Outgoing::message(msg))
}

/// The peer released our lock with `secret_hash`: the signature is checked against the lock we
/// hold, the release stored before anything relies on it, and the lock taken back in the
/// background (an update waits for a window slot, which the peer's acknowledgements, handled
/// by this same loop, free).
pub(crate) async fn lock_released(
    inner: &Arc<Inner>,
    channel: &Channel,
    secret_hash: B256,
    signature: Signature,
) -> Result<(), (B256, RejectCode)> {
    let id = channel.id;
    let release = {
        let rt = channel.rt.lock().await;
        rt.state
            .check_release(rt.state.me(), secret_hash, &signature)
    };
    let release = match release {
        Ok(release) => release,
        // Already taken back (a release sent again after a reconnect): nothing to do.
        Err(ChannelError::UnknownLock(_)) => return Ok(()),
        Err(ChannelError::BadSignature(_)) => return Err((id, RejectCode::BadSignature)),
        Err(_) => return Err((id, RejectCode::Refused)),
    };
    if inner
        .store
        .put_release(Released::Outgoing, &release, &signature)
        .await
        .is_err()
    {
        return Err((id, RejectCode::Storage));
    }
    // Our towers carry it too, for a dispute while we are away.
    inner.towers.updated(id);
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let removal = Change::RemoveReleasedLock {
            secret_hash,
            release: signature,
        };
        if let Err(e) = inner.send_change(id, removal, None).await {
            // Still ours to take back at expiry, and the release is on record for a dispute.
            tracing::warn!(channel_id = %id, error = %e, "released lock not taken back yet");
        }
    });
    Ok(())
}

/// Whether a payer may send another attempt under `payment_hash` after one through `channel`
/// failed: only if our lock of the failed attempt never left or its receiver released it.
/// Waits (briefly) for a released lock to leave our proof, so the retry's lock is not refused
/// as a duplicate.
pub(crate) async fn retry_is_safe(
    inner: &Inner,
    channel_id: B256,
    payment_hash: B256,
) -> Result<bool, ClientError> {
    let channel = inner.channel(channel_id)?;
    let pending = || async { channel.outgoing_lock(payment_hash).await.is_some() };
    if !pending().await {
        return Ok(true);
    }
    if !inner
        .store
        .is_released(Released::Outgoing, channel_id, payment_hash)
        .await?
    {
        return Ok(false);
    }
    let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
    while pending().await && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(true)
}

/// The vault of `channel_id` is in dispute: every release of our locks we hold goes on chain,
/// in one transaction, so `unlock` returns those locks to us whatever proof the peer closed
/// with.
pub(crate) async fn submit_releases(inner: &Arc<Inner>, chain_id: u64, channel_id: B256) {
    let releases = match inner.store.outgoing_releases(channel_id).await {
        Ok(releases) if !releases.is_empty() => releases,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(%channel_id, error = %e, "lock releases unreadable");
            return;
        }
    };
    let Ok(channel) = inner.channel(channel_id) else {
        return;
    };
    let (params, me) = {
        let rt = channel.rt.lock().await;
        (*rt.state.params(), rt.state.me())
    };
    let Ok(link) = inner.link(chain_id) else {
        return;
    };
    // A channel's releases accumulate over its life; one transaction of them all could outgrow
    // a block, so they go in chunks of the size a tower takes (about 4M gas each).
    for chunk in releases.chunks(keel_tower_api::MAX_RELEASES) {
        let count = chunk.len() as u64;
        match link.chain.release_locks(&params, me, chunk).await {
            Ok(receipt) => {
                inner
                    .note(ClientEvent::LocksReleasedOnChain {
                        channel_id,
                        count,
                        tx_hash: receipt.transaction_hash,
                    })
                    .await;
            }
            Err(e) => inner.emit(ClientEvent::ChainTrouble {
                chain_id,
                reason: format!(
                    "recording {count} lock releases of {channel_id}: {}",
                    crate::chain::report(&e)
                ),
            }),
        }
    }
}
