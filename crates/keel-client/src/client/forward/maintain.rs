//! What pending forwards still need after the moment they were made, looked at once a second:
//! a settled forward's secret goes upstream and its downstream lock is paid out (again after a
//! restart, if that had not happened), an expired downstream lock comes back (unless the next
//! node registered its secret on chain), and a claimed lock's secret is revealed again until
//! the lock is paid out, or claimed on chain near its expiry ([`registry`]).

use std::{sync::Arc, time::Duration};

use keel_core::{
    forwarding::{FailureReason, HopFailure},
    Change, B256,
};

use super::{
    claim_paid, fail_forward, registry, reveal_upstream, Inner, LockKey, PAID_OUT, RECLAIMING,
    TAKEN_BACK,
};
use crate::store::{Forward, ForwardState};

/// How often pending forwards are looked at (expired downstream locks, secrets to pass on).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Finishes what pending forwards still need, once a second, until the client stops: a
/// settled forward's secret goes upstream and its downstream lock is paid out (both again
/// after a restart, if they had not happened); a downstream lock that expired unclaimed is
/// taken back and, if nothing had come back for it, its failure relayed upstream.
pub(crate) async fn maintain(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(MAINTENANCE_INTERVAL).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.stopping.borrow() {
            return;
        }
        let forwards: Vec<Forward> = {
            let forwards = inner.forwarding.forwards.lock().expect("forwards poisoned");
            forwards.values().copied().collect()
        };
        for forward in forwards {
            follow_up(&inner, forward).await;
        }
        reclaim(&inner).await;
    }
}

/// Reveals again the secrets of locks we claimed (paid invoices, settled forwards' upstream
/// locks) that are still pending, one attempt at a time each, and claims on chain those near
/// their expiry; forgets those whose lock is gone (paid out, or expired and taken back).
async fn reclaim(inner: &Arc<Inner>) {
    let claims: Vec<(LockKey, B256)> = {
        let claims = inner.forwarding.claims.lock().expect("claims poisoned");
        claims.iter().map(|(k, s)| (*k, *s)).collect()
    };
    for ((channel_id, hash), secret) in claims {
        let pending = match inner.channel(channel_id) {
            Ok(channel) => channel.incoming_lock(hash).await,
            Err(_) => None,
        };
        let Some(lock) = pending else {
            let mut claims = inner.forwarding.claims.lock().expect("claims poisoned");
            claims.remove(&(channel_id, hash));
            continue;
        };
        if registry::due_on_chain(inner, lock.expiration) {
            registry::claim_on_chain(inner, channel_id, secret);
        }
        let key = (channel_id, hash, RECLAIMING);
        if !inner.forwarding.begin(key) {
            continue;
        }
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            claim_paid(&inner, channel_id, hash, secret).await;
            inner.forwarding.again(key);
        });
    }
}

async fn follow_up(inner: &Arc<Inner>, forward: Forward) {
    let hash = forward.incoming.secret_hash;
    let (Ok(incoming), Ok(outgoing)) = (
        inner.channel(forward.incoming_channel),
        inner.channel(forward.outgoing_channel),
    ) else {
        return;
    };
    let upstream_pending = incoming.incoming_lock(hash).await.is_some();
    let (downstream, downstream_open) = {
        let rt = outgoing.rt.lock().await;
        let me = rt.state.me();
        let lock = rt
            .state
            .direction(me)
            .locks
            .iter()
            .find(|l| l.secret_hash == hash);
        (lock.copied(), rt.chain.is_open())
    };
    // A downstream channel closed on chain settles its locks there (unlock: to the next node
    // if it registered the secret in time, else back to us): nothing more to send off chain.
    let off_chain = downstream.filter(|_| downstream_open);
    let now = inner.config.clock.now();
    match forward.state {
        ForwardState::Settled { secret } => {
            if upstream_pending {
                reveal_upstream(inner, &forward, secret);
            }
            if off_chain.is_some() && inner.forwarding.first_time(&forward, PAID_OUT) {
                let claim = Change::ClaimLock { secret };
                spawn_change(inner, &forward, PAID_OUT, claim);
            }
            if !upstream_pending && off_chain.is_none() {
                // Claimed on both sides: nothing left to do for it in this run.
                registry::unwatch(inner, &forward);
                inner.forwarding.forget(&forward);
            }
        }
        ForwardState::Failed { .. } if off_chain.is_none() => {
            registry::unwatch(inner, &forward);
            inner.forwarding.forget(&forward);
        }
        ForwardState::Pending | ForwardState::Failed { .. } => {
            let Some(lock) = downstream.filter(|l| l.expiration < now) else {
                return;
            };
            if forward.state == ForwardState::Pending {
                // Not revealed to us: the next node may have registered it on chain, even
                // before our lock reached it, which the monitor would not have delivered.
                if registry::look_up(inner, &forward).await {
                    return;
                }
                let failure = HopFailure {
                    node: outgoing.peer,
                    channel: forward.outgoing_channel,
                    reason: FailureReason::Expired,
                };
                fail_forward(inner, forward, failure).await;
            }
            if downstream_open && inner.forwarding.first_time(&forward, TAKEN_BACK) {
                let remove = Change::RemoveExpiredLock {
                    secret_hash: lock.secret_hash,
                };
                spawn_change(inner, &forward, TAKEN_BACK, remove);
            }
        }
    }
}

/// Sends a forward's downstream `change` (the follow-up `what`) without holding up the
/// maintenance, which it would (it waits for the peer's window); if it cannot be sent (the
/// peer is offline) the next round tries again.
fn spawn_change(inner: &Arc<Inner>, forward: &Forward, what: u8, change: Change) {
    let inner = Arc::clone(inner);
    let forward = *forward;
    tokio::spawn(async move {
        let channel_id = forward.outgoing_channel;
        if let Err(e) = inner.send_change(channel_id, change, None).await {
            tracing::warn!(%channel_id, error = %e, "forward follow-up not sent yet");
            inner.forwarding.not_done(&forward, what);
        }
    });
}
