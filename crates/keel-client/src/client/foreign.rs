//! Channels other nodes announce (docs/protocol.md, "Channel gossip"): an announcement whose
//! signatures verify enters the graph only once its vault is found open on chain, with the
//! capacity the vault holds rather than the one the announcer claims, and the vault is then
//! followed, so that the channel leaves the graph when it closes ([`Config::check_announcements`],
//! on by default).
//!
//! Bounds: at most [`MAX_CHECKS`] announcements are being checked at once (one beyond it is
//! dropped, unread by the chain: the peer offers it again on its next connection, another peer
//! sooner), each check gives up after [`CHECK_TIMEOUT`], and the vaults followed are those of
//! channels in the graph, which holds at most `max_graph_channels`.
//!
//! [`Config::check_announcements`]: super::Config::check_announcements

use std::{collections::HashMap, sync::Arc, time::Duration};

use keel_chain::{ChainEvent, ChainEventKind};
use keel_core::{Address, B256};
use keel_routing::{Deployment, SignedAnnouncement, SignedUpdate};

use super::{Client, Inner};

/// Most announcements checked on chain at once.
pub(crate) const MAX_CHECKS: usize = 64;
/// How long one check (a handful of `eth_call`s) may take before the announcement is dropped.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The foreign channels being checked or followed, by channel id: their chain and vault.
#[derive(Debug, Default)]
pub(crate) struct Foreign {
    channels: std::sync::Mutex<ForeignState>,
    /// Announcements whose signatures verified but whose vault was not open on chain.
    without_vault: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct ForeignState {
    /// Being checked: not in the graph yet; with the channel's two participants.
    checking: HashMap<B256, ((u64, Address), [Address; 2])>,
    /// Policy updates that arrived for channels being checked (the announcer sends its update
    /// right behind its announcement), the newest per (channel, node), with who sent each:
    /// applied once the channel is in. At most two per channel being checked.
    held: HashMap<(B256, Address), (Address, SignedUpdate)>,
    /// In the graph, their vaults followed.
    followed: HashMap<B256, (u64, Address)>,
}

impl Foreign {
    fn lock(&self) -> std::sync::MutexGuard<'_, ForeignState> {
        self.channels.lock().expect("foreign channels poisoned")
    }

    /// Whether `id` is a foreign channel being checked or followed.
    pub(crate) fn contains(&self, id: &B256) -> bool {
        let state = self.lock();
        state.checking.contains_key(id) || state.followed.contains_key(id)
    }

    /// Reserves a check of `id`; false if it is checked or followed already, or too many
    /// checks run.
    fn start(&self, id: B256, place: (u64, Address), nodes: [Address; 2]) -> bool {
        let mut state = self.lock();
        if state.checking.len() >= MAX_CHECKS
            || state.checking.contains_key(&id)
            || state.followed.contains_key(&id)
        {
            return false;
        }
        state.checking.insert(id, (place, nodes));
        true
    }

    /// Keeps `signed`, from `from`, until the check of its channel ends; false if its channel
    /// is not being checked. A newer update from the same node replaces an older one.
    pub(crate) fn hold(&self, from: Address, signed: SignedUpdate) -> bool {
        let mut state = self.lock();
        let key = (signed.update.channelId, signed.update.node);
        // Only the participants' updates: a peer cannot fill this with strangers' names.
        let Some((_, nodes)) = state.checking.get(&key.0) else {
            return false;
        };
        if !nodes.contains(&key.1) {
            return false;
        }
        let newer = state
            .held
            .get(&key)
            .is_none_or(|(_, held)| held.update.timestamp < signed.update.timestamp);
        if newer {
            state.held.insert(key, (from, signed));
        }
        true
    }

    /// Ends the check of `id`, following it from now on if `follow`, and returns the updates
    /// held for it; false if its vault closed while it was checked ([`event`] took it out).
    fn finish(&self, id: B256, follow: bool) -> (bool, Vec<(Address, SignedUpdate)>) {
        let mut state = self.lock();
        let nodes: Vec<(B256, Address)> = state
            .held
            .keys()
            .filter(|(channel, _)| *channel == id)
            .copied()
            .collect();
        let held = nodes
            .into_iter()
            .filter_map(|key| state.held.remove(&key))
            .collect();
        let Some((place, _)) = state.checking.remove(&id) else {
            return (false, held);
        };
        if follow {
            state.followed.insert(id, place);
        }
        (true, held)
    }

    /// A check of `id` in progress saw its vault close: it must not follow it.
    fn closed_while_checking(&self, id: &B256) -> bool {
        self.lock().checking.remove(id).is_some()
    }

    /// Stops following `id`; its chain and vault if it was followed.
    fn drop_followed(&self, id: &B256) -> Option<(u64, Address)> {
        self.lock().followed.remove(id)
    }

    /// How many foreign vaults are followed.
    fn followed(&self) -> usize {
        self.lock().followed.len()
    }
}

impl Client {
    /// How many channels of other nodes we follow on chain: those announced to us whose vault
    /// was found open, until they close.
    pub fn announced_channels_followed(&self) -> usize {
        self.inner.foreign.followed()
    }

    /// How many announcements, since start, verified but named a channel whose vault was not
    /// open on chain (never opened, closing or settled): kept out of the graph, not relayed.
    pub fn announcements_without_vault(&self) -> u64 {
        self.inner
            .foreign
            .without_vault
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Checks the vault of a channel another node announced (its signatures verified already),
/// and adds the channel to the graph, with what the vault holds, and relays it, if the vault
/// is open. The vault is watched before it is read, so a close mined after the read is still
/// seen.
pub(crate) fn check(
    inner: &Arc<Inner>,
    from: Address,
    deployment: Deployment,
    signed: SignedAnnouncement,
) {
    let id = signed.announcement.channelId;
    let vault = keel_core::vault_address(
        deployment.factory,
        deployment.implementation,
        id,
        signed.announcement.token,
    );
    let Ok(link) = inner.link(deployment.chain_id) else {
        return;
    };
    let nodes = [
        signed.announcement.participantA,
        signed.announcement.participantB,
    ];
    if !inner.foreign.start(id, (deployment.chain_id, vault), nodes) {
        return;
    }
    link.monitor.watch(vault, id);
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let Ok(link) = inner.link(deployment.chain_id) else {
            return;
        };
        let read = tokio::time::timeout(CHECK_TIMEOUT, link.chain.open_vault_holdings(vault)).await;
        let added = match read {
            Ok(Ok(Some(capacity))) => {
                match super::gossip::client(&inner).learn_announcement(
                    &deployment,
                    &signed,
                    capacity,
                ) {
                    Ok(true) => {
                        super::gossip::learned_announcement(
                            &inner,
                            Some(from),
                            deployment.chain_id,
                            signed,
                        );
                        true
                    }
                    // Another check of the same channel got there first (it follows the vault),
                    // or the graph filled up meanwhile.
                    Ok(false) | Err(_) => false,
                }
            }
            Ok(Ok(None)) => {
                inner
                    .foreign
                    .without_vault
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(channel = %id, %vault, "announced channel not open on chain");
                false
            }
            Ok(Err(e)) => {
                tracing::debug!(channel = %id, error = %e, "could not check an announced channel");
                false
            }
            Err(_) => {
                tracing::debug!(channel = %id, "checking an announced channel timed out");
                false
            }
        };
        let (still_open, held) = inner.foreign.finish(id, added);
        if added && still_open {
            let client = super::gossip::client(&inner);
            for (from, update) in held {
                if client.apply_update(&update).is_ok() {
                    super::gossip::learned_update(&inner, Some(from), update);
                }
            }
        }
        if added && !still_open {
            // Closed while we read it: out again.
            inner.forwarding.routing.closed(&id);
            inner.gossip.forget(&id);
        }
        if !(added && still_open) {
            link.monitor.unwatch(vault);
        }
    });
}

/// A confirmed event from a foreign channel's vault: a close takes the channel out of the
/// graph, out of what we gossip, and out of the vaults followed. Whether `event` was one.
pub(crate) fn event(inner: &Inner, event: &ChainEvent) -> bool {
    let id = event.channel_id;
    if !inner.foreign.contains(&id) || inner.channel(id).is_ok() {
        return false;
    }
    let closed = matches!(
        event.kind,
        ChainEventKind::Closed(_)
            | ChainEventKind::CooperativelyClosed { .. }
            | ChainEventKind::Settled { .. }
    );
    if closed && !inner.foreign.closed_while_checking(&id) {
        forget(inner, &id);
    }
    // Deposits and withdrawals leave the capacity as it was checked: an upper bound the
    // scorer starts from, as every hop checks its own balance.
    true
}

/// Takes a foreign channel out of the graph and stops following its vault.
fn forget(inner: &Inner, id: &B256) {
    inner.forwarding.routing.closed(id);
    inner.gossip.forget(id);
    if let Some((chain_id, vault)) = inner.foreign.drop_followed(id) {
        if let Ok(link) = inner.link(chain_id) {
            link.monitor.unwatch(vault);
        }
        tracing::info!(channel = %id, "announced channel closed on chain: out of the graph");
    }
}
