//! What a restarted node picks up at start, beside its forwards (`maintain`): the secrets of
//! paid invoices whose locks are not paid out yet, and the locks it was waiting to forward.

use std::{collections::HashSet, sync::Arc};

use super::{lock_arrived, Forwarding, LockKey};
use crate::{
    client::{channel::Channel, Inner},
    store::{Released, Store, StoreError},
};

/// At start: the locks in `channel` paying invoices of ours that were paid (their secret
/// revealed) but not yet paid out go back to the maintenance, which reveals their secrets
/// again until they are, so a payee restarted between its reveal and the payout is still paid.
/// A hold invoice is paid once the application claimed it ([`super::hold_invoice_claimed`]).
pub(crate) async fn resume_claims(
    forwarding: &Forwarding,
    store: &Store,
    channel: &Channel,
) -> Result<(), StoreError> {
    for hash in channel.incoming_locks().await.iter().map(|l| l.secret_hash) {
        if let Some(invoice) = store.invoice(hash).await? {
            if invoice.paid {
                let mut claims = forwarding.claims.lock().expect("claims poisoned");
                claims.insert((channel.id, hash), invoice.secret);
            }
        }
    }
    Ok(())
}

/// At start: the locks the peer sent us that a hop was waiting to forward when the process
/// stopped (the next peer offline, or its window full: the onion is stored first, see
/// [`super::forward`]) are forwarded now. Onions of locks no longer pending, forwarded or released are
/// dropped.
pub(crate) async fn resume_arrivals(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let forwarded: HashSet<LockKey> = {
        let forwards = inner.forwarding.forwards.lock().expect("forwards poisoned");
        forwards
            .values()
            .map(|f| (f.incoming_channel, f.incoming.secret_hash))
            .collect()
    };
    for (channel_id, hash, packet) in inner.store.incoming_onions().await? {
        let lock = match inner.channel(channel_id) {
            Ok(channel) => channel.incoming_lock(hash).await,
            Err(_) => None,
        };
        let settled = forwarded.contains(&(channel_id, hash))
            || inner
                .store
                .is_released(Released::Incoming, channel_id, hash)
                .await?;
        match lock {
            Some(lock) if !settled => {
                tracing::info!(%channel_id, secret_hash = %hash, "forwarding a lock held before the restart");
                tokio::spawn(lock_arrived(Arc::clone(inner), channel_id, lock, packet));
            }
            _ => inner.store.drop_incoming_onion(channel_id, hash).await?,
        }
    }
    Ok(())
}
