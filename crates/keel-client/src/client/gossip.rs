//! Channel graph gossip over the peer connections (docs/protocol.md, "Channel gossip"): the
//! two participants of a channel made public exchange their halves of its announcement
//! (`AnnouncementSignature`); every node sends the announcements and policy updates it knows
//! to each peer that connects, and relays each one it learns, once, to its other peers.
//!
//! Bounds: gossip never fills a peer's queue (it is offered only while the queue is at most
//! half full, so it never costs the connection); what we send on connect leaves in bursts of
//! [`GOSSIP_BURST`] with a pause between them; what a peer sends is taken at most at
//! [`GOSSIP_RATE`] a second (the rest is dropped, not stored); an announcement or update that
//! does not verify is refused, counted, and after [`MAX_GOSSIP_STRIKES`] on one connection the
//! peer is disconnected.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use keel_core::{
    forwarding::{ChannelAnnouncement, ChannelUpdate},
    wire::{Message, Signature},
    Address, Side, B256, U256,
};
use keel_routing::{GossipError, SignedAnnouncement, SignedUpdate};
use tokio::time::Instant;

use super::{
    channel::Channel,
    peer::{self, Outgoing},
    Client, Inner, RejectCode,
};

/// Most gossip messages sent to one peer back to back before a pause of [`GOSSIP_PAUSE`].
pub const GOSSIP_BURST: usize = 64;
/// The pause between two bursts to one peer (so at most about 1,280 a second).
pub const GOSSIP_PAUSE: Duration = Duration::from_millis(50);
/// Most gossip messages taken from one peer a second (and in one burst); beyond it they are
/// dropped unread, so a flooding peer costs at most this many signature checks a second.
pub const GOSSIP_RATE: u64 = 2_000;
/// Announcements or updates that do not verify a peer may send on one connection before it is
/// disconnected (a few are tolerated: a relay passes on what it could not check either).
pub const MAX_GOSSIP_STRIKES: u32 = 8;
/// How many pauses an offer waits for room in a peer's queue before it gives up.
const OFFER_TRIES: u32 = 40;

/// What we know to gossip, beside the graph itself (keel-routing's `Gossip`).
#[derive(Debug, Default)]
pub(crate) struct Known {
    state: Mutex<KnownState>,
    /// Announcements and updates refused because they did not verify, since start.
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct KnownState {
    /// Every announcement in the graph, with its chain, as it was signed.
    announcements: HashMap<B256, (u64, SignedAnnouncement)>,
    /// The newest update per (channel, node) in the graph.
    updates: HashMap<(B256, Address), SignedUpdate>,
    /// Our channels we asked to make public (besides `Config::announce_channels`).
    public: HashSet<B256>,
    /// The peer's half of our channels' announcements.
    peer_signatures: HashMap<B256, Signature>,
}

/// One connection's gossip budget and strikes (reset with each connection).
#[derive(Debug)]
pub(crate) struct PeerGossip {
    tokens: u64,
    refilled: Instant,
    strikes: u32,
}

impl Default for PeerGossip {
    fn default() -> Self {
        Self {
            tokens: GOSSIP_RATE,
            refilled: Instant::now(),
            strikes: 0,
        }
    }
}

impl PeerGossip {
    /// Takes one message's worth of budget at `now`, if there is any left.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.refilled).as_millis();
        let refill = u64::try_from(elapsed)
            .unwrap_or(u64::MAX)
            .saturating_mul(GOSSIP_RATE)
            / 1_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(GOSSIP_RATE);
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Known {
    fn lock(&self) -> std::sync::MutexGuard<'_, KnownState> {
        self.state.lock().expect("gossip state poisoned")
    }

    /// Forgets a channel (closed on chain).
    pub(crate) fn forget(&self, id: &B256) {
        let mut state = self.lock();
        state.announcements.remove(id);
        state.updates.retain(|(channel, _), _| channel != id);
        state.public.remove(id);
        state.peer_signatures.remove(id);
    }
}

impl Client {
    /// Makes one of our channels public: sends the peer our half of its announcement and, once
    /// the peer has sent its half (it does when it makes the channel public too), adds the
    /// channel to our graph and gossips it and our policy to every peer. Not stored: call it
    /// again after a restart, or set [`Config::announce_channels`](super::Config) to make
    /// every channel public.
    pub async fn announce_channel(&self, channel_id: B256) -> super::Result<()> {
        let channel = self.inner.channel(channel_id)?;
        self.inner.gossip.lock().public.insert(channel_id);
        let (_, signature) = self.announcement_signature(channel_id).await?;
        // Offline: it goes with the next connect.
        let _ = peer::send(
            &self.inner,
            channel.peer,
            Outgoing::message(Message::AnnouncementSignature {
                channel_id,
                signature,
            }),
        );
        complete(&self.inner, &channel).await;
        Ok(())
    }

    /// Announcements and policy updates peers sent that did not verify, since start.
    pub fn gossip_refused(&self) -> u64 {
        self.inner.gossip.refused.load(Ordering::Relaxed)
    }
}

pub(crate) fn client(inner: &Arc<Inner>) -> Client {
    Client {
        inner: Arc::clone(inner),
    }
}

fn is_public(inner: &Inner, id: &B256) -> bool {
    inner.config.announce_channels || inner.gossip.lock().public.contains(id)
}

/// The peer's half of the announcement of a channel we share: checked, kept, and the
/// channel announced if we made it public too. Refused if it is not the peer's signature.
pub(crate) async fn signature_received(
    inner: &Arc<Inner>,
    from: Address,
    channel: Arc<Channel>,
    signature: Signature,
) -> Result<(), (B256, RejectCode)> {
    let refuse = |code| (channel.id, code);
    let (announcement, _) = client(inner)
        .announcement_signature(channel.id)
        .await
        .map_err(|_| refuse(RejectCode::UnknownChannel))?;
    let digest = channel.domain.signing_hash(&announcement);
    keel_core::signing::verify(&digest, &signature, from)
        .map_err(|_| refuse(RejectCode::BadSignature))?;
    inner
        .gossip
        .lock()
        .peer_signatures
        .insert(channel.id, signature);
    if complete(inner, &channel).await {
        // The peer may not hold our half yet (it made the channel public first).
        if let Ok((_, ours)) = client(inner).announcement_signature(channel.id).await {
            let _ = peer::send(
                inner,
                from,
                Outgoing::message(Message::AnnouncementSignature {
                    channel_id: channel.id,
                    signature: ours,
                }),
            );
        }
    }
    Ok(())
}

/// Announces one of our channels if it is public and the peer's half is here: into our graph
/// and to every peer (unless a peer gossiped it to us already), then our policy for it, once.
/// Whether it did anything.
async fn complete(inner: &Arc<Inner>, channel: &Channel) -> bool {
    if !is_public(inner, &channel.id) {
        return false;
    }
    let (announced, published, peer_signature) = {
        let state = inner.gossip.lock();
        (
            state.announcements.contains_key(&channel.id),
            state.updates.contains_key(&(channel.id, inner.address)),
            state.peer_signatures.get(&channel.id).copied(),
        )
    };
    let Some(peer_signature) = peer_signature else {
        return false;
    };
    if announced && published {
        return false;
    }
    if !announced && !announce_own(inner, channel, peer_signature).await {
        return false;
    }
    publish_update(inner, channel.id).await;
    true
}

/// Puts the announcement of our `channel`, completed with the peer's half, into our graph at
/// its exact capacity, and gossips it. Whether it did.
async fn announce_own(inner: &Arc<Inner>, channel: &Channel, peer_signature: Signature) -> bool {
    let client = client(inner);
    let Ok((announcement, ours)) = client.announcement_signature(channel.id).await else {
        return false;
    };
    let (capacity, me) = {
        let rt = channel.rt.lock().await;
        if !rt.chain.is_open() {
            return false;
        }
        (
            rt.state.balance(Side::A) + rt.state.balance(Side::B),
            rt.state.me(),
        )
    };
    let signatures = match me {
        Side::A => [ours, peer_signature],
        Side::B => [peer_signature, ours],
    };
    let signed = SignedAnnouncement {
        announcement,
        signatures,
    };
    let learned = client
        .deployment(channel.chain_id)
        .map_err(|e| e.to_string())
        .and_then(|deployment| {
            client
                .learn_announcement(&deployment, &signed, capacity)
                .map_err(|e| e.to_string())
        });
    if let Err(error) = learned {
        tracing::warn!(channel = %channel.id, %error, "our own announcement was refused");
        return false;
    }
    learned_announcement(inner, None, channel.chain_id, signed);
    true
}

/// Signs our current policy for an announced channel of ours and gossips it (after a policy
/// change too). Nothing for a channel not announced.
pub(crate) async fn publish_update(inner: &Arc<Inner>, channel_id: B256) {
    if !inner.gossip.lock().announcements.contains_key(&channel_id) {
        return;
    }
    let client = client(inner);
    let Ok(signed) = client.channel_update(channel_id).await else {
        return;
    };
    // Refused only as stale (a second policy change within one second of the clock).
    if client.apply_update(&signed).is_ok() {
        learned_update(inner, None, signed);
    }
}

/// Records an announcement that entered the graph and relays it to every peer but `from`.
pub(crate) fn learned_announcement(
    inner: &Arc<Inner>,
    from: Option<Address>,
    chain_id: u64,
    signed: SignedAnnouncement,
) {
    let msg = announcement_message(inner, chain_id, &signed);
    inner
        .gossip
        .lock()
        .announcements
        .insert(signed.announcement.channelId, (chain_id, signed));
    relay(inner, from, msg);
}

/// Records an update that entered the graph and relays it to every peer but `from`.
pub(crate) fn learned_update(inner: &Arc<Inner>, from: Option<Address>, signed: SignedUpdate) {
    let msg = Message::ChannelUpdate {
        update: signed.update.clone(),
        signature: signed.signature,
    };
    inner
        .gossip
        .lock()
        .updates
        .insert((signed.update.channelId, signed.update.node), signed);
    relay(inner, from, msg);
}

/// The announcement message, with the capacity our graph holds for the channel.
fn announcement_message(inner: &Inner, chain_id: u64, signed: &SignedAnnouncement) -> Message {
    let capacity = inner
        .forwarding
        .routing
        .capacity(&signed.announcement.channelId)
        .unwrap_or(U256::ZERO);
    Message::ChannelAnnouncement {
        chain_id,
        announcement: signed.announcement.clone(),
        capacity,
        signatures: signed.signatures,
    }
}

/// Whether an error means the sender passed on something forged or malformed (counted), rather
/// than something stale, unknown here or beyond our bounds (dropped quietly).
fn is_forgery(e: &GossipError) -> bool {
    matches!(
        e,
        GossipError::WrongChannelId { .. }
            | GossipError::Signature(_)
            | GossipError::BadPolicy(_)
            | GossipError::FromTheFuture { .. }
    )
}

/// Takes one gossip message's budget from `from`'s connection.
fn admit(inner: &Inner, from: Address) -> bool {
    peer::with_gossip(inner, from, |g| g.admit(Instant::now())).unwrap_or(false)
}

/// Counts a refused message against `from`; disconnects it at [`MAX_GOSSIP_STRIKES`].
fn strike(inner: &Inner, from: Address, e: &GossipError) {
    inner.gossip.refused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(peer = %from, error = %e, "gossip refused");
    let strikes = peer::with_gossip(inner, from, |g| {
        g.strikes += 1;
        g.strikes
    });
    if strikes.is_some_and(|s| s >= MAX_GOSSIP_STRIKES) {
        tracing::warn!(peer = %from, "too much gossip that does not verify: disconnecting");
        peer::disconnect(inner, from);
    }
}

/// A channel announcement from a peer: verified, then (unless
/// [`Config::check_announcements`](super::Config::check_announcements) is off) checked on chain
/// (`foreign.rs`), into the graph, and relayed if new.
///
/// With the check off, its capacity is the sender's claim: the first claim for a channel is
/// what our graph keeps, as an upper bound the scorer starts from (a wrong one costs payers a
/// failed attempt, never funds: every hop checks its own balance). Our own channels'
/// capacities are always our exact deposits.
pub(crate) fn announcement_received(
    inner: &Arc<Inner>,
    from: Address,
    chain_id: u64,
    announcement: ChannelAnnouncement,
    capacity: U256,
    signatures: [Signature; 2],
) {
    if !admit(inner, from) {
        return;
    }
    let id = announcement.channelId;
    if inner.gossip.lock().announcements.contains_key(&id) {
        // Known: neither stored again nor relayed again (nor its capacity changed).
        return;
    }
    let signed = SignedAnnouncement {
        announcement,
        signatures,
    };
    let client = client(inner);
    // A chain we do not follow: we cannot check it, so we do not pass it on.
    let Ok(deployment) = client.deployment(chain_id) else {
        return;
    };
    if inner.config.check_announcements {
        // Signatures first, so that a forgery costs no RPC call; our own channels are
        // announced by us (`announce_own`).
        let checked = inner.forwarding.routing.check(&deployment, &signed);
        match checked {
            Ok(_) if inner.channel(id).is_err() => {
                super::foreign::check(inner, from, deployment, signed);
            }
            Ok(_) => {}
            Err(e) if is_forgery(&e) => strike(inner, from, &e),
            Err(_) => {}
        }
        return;
    }
    match client.learn_announcement(&deployment, &signed, capacity) {
        Ok(true) => learned_announcement(inner, Some(from), chain_id, signed),
        // Another peer's copy got in first: that one was relayed.
        Ok(false) => {}
        Err(e) if is_forgery(&e) => strike(inner, from, &e),
        // A full graph: dropped, not passed on.
        Err(_) => {}
    }
}

/// A policy update from a peer: verified into the graph and relayed if newer.
pub(crate) fn update_received(
    inner: &Arc<Inner>,
    from: Address,
    update: ChannelUpdate,
    signature: Signature,
) {
    if !admit(inner, from) {
        return;
    }
    let signed = SignedUpdate { update, signature };
    match client(inner).apply_update(&signed) {
        Ok(()) => learned_update(inner, Some(from), signed),
        // Its channel's vault is being checked: applied (verified then) once it is in.
        Err(GossipError::Unannounced(_)) if inner.foreign.hold(from, signed.clone()) => {}
        Err(e) if is_forgery(&e) => strike(inner, from, &e),
        // Stale (we have it, or newer) or for a channel we do not know: dropped.
        Err(_) => {}
    }
}

/// Sends a peer that just connected our half of each public channel we share with it, then
/// every announcement and update we know, in bursts.
pub(crate) async fn connected(inner: Arc<Inner>, address: Address) {
    let mut msgs = Vec::new();
    for channel in peer::channels_with(&inner, address) {
        if is_public(&inner, &channel.id) {
            if let Ok((_, signature)) = client(&inner).announcement_signature(channel.id).await {
                msgs.push(Message::AnnouncementSignature {
                    channel_id: channel.id,
                    signature,
                });
            }
        }
    }
    {
        let state = inner.gossip.lock();
        for (chain_id, signed) in state.announcements.values() {
            msgs.push(announcement_message(&inner, *chain_id, signed));
        }
        for signed in state.updates.values() {
            msgs.push(Message::ChannelUpdate {
                update: signed.update.clone(),
                signature: signed.signature,
            });
        }
    }
    // Announcements first: an update for a channel the peer has not seen would be dropped.
    msgs.sort_by_key(|m| !matches!(m, Message::ChannelAnnouncement { .. }));
    for burst in msgs.chunks(GOSSIP_BURST) {
        for msg in burst {
            if !offer_patiently(&inner, address, msg).await {
                return;
            }
        }
        tokio::time::sleep(GOSSIP_PAUSE).await;
    }
}

/// Offers `msg` to `address`, waiting for room in its queue a few pauses at most. False when
/// the peer is gone or never makes room: the rest waits for the next connect.
async fn offer_patiently(inner: &Inner, address: Address, msg: &Message) -> bool {
    for _ in 0..OFFER_TRIES {
        match peer::offer(inner, address, msg.clone()) {
            Some(true) => return true,
            Some(false) => tokio::time::sleep(GOSSIP_PAUSE).await,
            None => return false,
        }
    }
    false
}

/// Offers `msg` to every connected peer but `except`, once; a peer whose queue is busy misses
/// it (it gets it with the rest on its next connect).
fn relay(inner: &Inner, except: Option<Address>, msg: Message) {
    let peers: Vec<Address> = peer::connected_peers(inner);
    for address in peers.into_iter().filter(|a| Some(*a) != except) {
        let _ = peer::offer(inner, address, msg.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer gets `GOSSIP_RATE` messages at once, then as many a second as the rate refills,
    /// never more than one second's worth saved up.
    #[test]
    fn the_budget_refills_at_the_rate_and_saves_up_one_second() {
        let start = Instant::now();
        let mut budget = PeerGossip {
            tokens: GOSSIP_RATE,
            refilled: start,
            strikes: 0,
        };
        for _ in 0..GOSSIP_RATE {
            assert!(budget.admit(start));
        }
        assert!(!budget.admit(start), "the burst is spent");
        // One millisecond refills GOSSIP_RATE / 1000 messages.
        let later = start + Duration::from_millis(1);
        for _ in 0..GOSSIP_RATE / 1_000 {
            assert!(budget.admit(later));
        }
        assert!(!budget.admit(later));
        // A long silence saves up one burst, not more.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..GOSSIP_RATE {
            assert!(budget.admit(much_later));
        }
        assert!(!budget.admit(much_later));
    }
}
