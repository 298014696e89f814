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

use keel_chain::{ChainEvent, ChainEventKind, VaultHoldings};
use keel_core::{Address, B256, U256};
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
    /// Being checked: not in the graph yet.
    checking: HashMap<B256, Checking>,
    /// Policy updates that arrived for channels being checked (the announcer sends its update
    /// right behind its announcement), the newest per (channel, node), with who sent each:
    /// applied once the channel is in. At most two per channel being checked.
    held: HashMap<(B256, Address), (Address, SignedUpdate)>,
    /// In the graph, their vaults followed.
    followed: HashMap<B256, Followed>,
}

/// A foreign channel whose vault is being read.
#[derive(Debug)]
struct Checking {
    /// Its chain and vault.
    place: (u64, Address),
    /// Its two participants.
    nodes: [Address; 2],
    /// The deposits and withdrawals its vault's events reported meanwhile: the read may have
    /// come before them.
    seen: VaultHoldings,
}

/// A foreign channel in the graph.
#[derive(Debug)]
struct Followed {
    /// Its chain and vault.
    place: (u64, Address),
    /// What its vault took in and paid out, kept current from its events: the capacity the
    /// graph holds for it.
    holdings: VaultHoldings,
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
        state.checking.insert(
            id,
            Checking {
                place,
                nodes,
                seen: VaultHoldings::default(),
            },
        );
        true
    }

    /// Keeps `signed`, from `from`, until the check of its channel ends; false if its channel
    /// is not being checked. A newer update from the same node replaces an older one.
    pub(crate) fn hold(&self, from: Address, signed: SignedUpdate) -> bool {
        let mut state = self.lock();
        let key = (signed.update.channelId, signed.update.node);
        // Only the participants' updates: a peer cannot fill this with strangers' names.
        let Some(checking) = state.checking.get(&key.0) else {
            return false;
        };
        if !checking.nodes.contains(&key.1) {
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

    /// Ends the check of `id`, following it from now on if its vault was `read` (and added to
    /// the graph), and returns the updates held for it and, when followed, its capacity with
    /// the events seen during the check counted in. Not followed if its vault closed while it
    /// was checked ([`event`] took it out).
    fn finish(&self, id: B256, read: Option<VaultHoldings>) -> Finished {
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
        let Some(checking) = state.checking.remove(&id) else {
            return Finished {
                still_open: false,
                held,
                capacity: None,
            };
        };
        let capacity = read.map(|mut holdings| {
            holdings.merge(&checking.seen);
            state.followed.insert(
                id,
                Followed {
                    place: checking.place,
                    holdings,
                },
            );
            holdings.capacity()
        });
        Finished {
            still_open: true,
            held,
            capacity: capacity.flatten(),
        }
    }

    /// Counts a deposit or withdrawal of `id`'s vault; the channel's new capacity if it is
    /// followed and the event changed it.
    fn resize(&self, id: &B256, event: &ChainEventKind) -> Option<U256> {
        let mut state = self.lock();
        if let Some(checking) = state.checking.get_mut(id) {
            checking.seen.apply(event);
            return None;
        }
        let followed = state.followed.get_mut(id)?;
        let before = followed.holdings;
        if !followed.holdings.apply(event) || followed.holdings == before {
            return None;
        }
        followed.holdings.capacity()
    }

    /// A check of `id` in progress saw its vault close: it must not follow it.
    fn closed_while_checking(&self, id: &B256) -> bool {
        self.lock().checking.remove(id).is_some()
    }

    /// Stops following `id`; its chain and vault if it was followed.
    fn drop_followed(&self, id: &B256) -> Option<(u64, Address)> {
        self.lock().followed.remove(id).map(|f| f.place)
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
            Ok(Ok(Some(holdings))) => {
                // `open_vault_holdings` checked that it is a number.
                let capacity = holdings.capacity().unwrap_or_default();
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
                        Some((holdings, capacity))
                    }
                    // Another check of the same channel got there first (it follows the vault),
                    // or the graph filled up meanwhile.
                    Ok(false) | Err(_) => None,
                }
            }
            Ok(Ok(None)) => {
                inner
                    .foreign
                    .without_vault
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(channel = %id, %vault, "announced channel not open on chain");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(channel = %id, error = %e, "could not check an announced channel");
                None
            }
            Err(_) => {
                tracing::debug!(channel = %id, "checking an announced channel timed out");
                None
            }
        };
        let Finished {
            still_open,
            held,
            capacity,
        } = inner
            .foreign
            .finish(id, added.map(|(holdings, _)| holdings));
        let read_capacity = added.map(|(_, capacity)| capacity);
        let added = added.is_some();
        if added && still_open {
            // A deposit or withdrawal confirmed while the vault was read.
            if let Some(capacity) = capacity.filter(|c| Some(*c) != read_capacity) {
                inner.forwarding.routing.resized(&id, capacity);
            }
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
    // A deposit or withdrawal: the graph holds what the vault now holds.
    if let Some(capacity) = inner.foreign.resize(&id, &event.kind) {
        inner.forwarding.routing.resized(&id, capacity);
        tracing::debug!(channel = %id, %capacity, "announced channel resized on chain");
    }
    true
}

/// How a check of a foreign channel ended ([`Foreign::finish`]).
struct Finished {
    /// Its vault did not close during the check.
    still_open: bool,
    /// The policy updates held for it, with who sent each.
    held: Vec<(Address, SignedUpdate)>,
    /// Its capacity, events seen during the check counted, if it is followed now.
    capacity: Option<U256>,
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
