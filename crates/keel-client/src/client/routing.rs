//! What a payer routes over, and what a hub tells payers: the routing graph (our own channels,
//! known exactly, plus the announcements and policy updates we are given, verified by
//! keel-routing's `Gossip`), the scorer that learns from each attempt, node keys (a payer
//! encrypts each hop's layer of the onion to the hop's key), and our half of our channels'
//! announcements and our signed forwarding policy.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use k256::PublicKey;
use keel_core::{
    forwarding::{ChannelAnnouncement, ChannelUpdate, ExchangeRate},
    signing::VerifyingKey,
    wire::Signature,
    Address, B256, U256,
};
use keel_routing::{
    Asset, Channel as GraphChannel, Deployment, Gossip, GossipError, Scorer, SignedAnnouncement,
    SignedUpdate,
};

use super::{Client, ClientError, Result};
use crate::store::ForwardPolicy;

/// Most channels the routing graph holds (memory stays bounded whatever we are given).
const MAX_GRAPH_CHANNELS: usize = 100_000;
/// Seconds after which what the scorer learnt from a failure has half faded.
const SCORER_HALF_LIFE: u64 = 3_600;

/// What the payer knows of the network.
#[derive(Debug)]
pub(crate) struct Routing {
    gossip: Mutex<Gossip>,
    pub(crate) scorer: Mutex<Scorer>,
    node_keys: RwLock<HashMap<Address, PublicKey>>,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            gossip: Mutex::new(Gossip::new(MAX_GRAPH_CHANNELS)),
            scorer: Mutex::new(Scorer::new(SCORER_HALF_LIFE)),
            node_keys: RwLock::default(),
        }
    }
}

impl Routing {
    fn add_key(&self, key: &VerifyingKey) -> Address {
        let address = Address::from_public_key(key);
        self.node_keys
            .write()
            .expect("node keys poisoned")
            .insert(address, PublicKey::from(key));
        address
    }

    /// The capacity our graph holds for a channel, if it holds it.
    pub(crate) fn capacity(&self, id: &B256) -> Option<U256> {
        self.gossip
            .lock()
            .expect("gossip poisoned")
            .graph()
            .channel(id)
            .map(|c| c.capacity)
    }

    /// Checks an announcement's id and signatures without adding it (keel-routing's
    /// `Gossip::check`).
    pub(crate) fn check(
        &self,
        deployment: &Deployment,
        signed: &SignedAnnouncement,
    ) -> std::result::Result<(), GossipError> {
        self.gossip
            .lock()
            .expect("gossip poisoned")
            .check(deployment, signed)
            .map(|_| ())
    }

    /// Sets the capacity of a channel in the graph to what its vault now holds.
    pub(crate) fn resized(&self, id: &B256, capacity: U256) {
        // Not in the graph (closed meanwhile): nothing to resize.
        let _ = self
            .gossip
            .lock()
            .expect("gossip poisoned")
            .resized(id, capacity);
    }

    /// Takes a channel seen closed on chain out of the graph.
    pub(crate) fn closed(&self, id: &B256) {
        // Not in the graph: nothing to take out.
        let _ = self.gossip.lock().expect("gossip poisoned").closed(id);
    }

    pub(crate) fn key(&self, node: Address) -> Option<PublicKey> {
        self.node_keys
            .read()
            .expect("node keys poisoned")
            .get(&node)
            .copied()
    }
}

impl Client {
    /// Our node key: multi-hop payers encrypt our layer of their onions to it. Hand it to them
    /// with [`Client::add_node_key`] (our channel announcements carry it too).
    pub fn node_key(&self) -> VerifyingKey {
        *self.inner.config.signer.credential().verifying_key()
    }

    /// Learns another node's key (its address follows from it, so a key cannot be passed off
    /// for another node); returns that address.
    pub fn add_node_key(&self, key: &VerifyingKey) -> Address {
        self.inner.forwarding.routing.add_key(key)
    }

    /// Sets what we charge for forwarding into `channel_id`, and from which other assets at
    /// what rate (instead of [`Config::forward_policy`](super::Config::forward_policy)).
    /// Announce it with [`Client::channel_update`]. Stored before it applies, so a restarted
    /// client keeps it (forwards already made finish under the policy they were made with).
    /// Refused ([`ClientError::BadPolicy`]) with more than 16 rates, two from one asset, or
    /// one from the channel's own asset.
    pub async fn set_forward_policy(&self, channel_id: B256, policy: ForwardPolicy) -> Result<()> {
        let channel = self.inner.channel(channel_id)?;
        let token = channel.rt.lock().await.state.params().token;
        let own = Asset {
            chain_id: channel.chain_id,
            token,
        };
        policy.check(own).map_err(ClientError::BadPolicy)?;
        self.inner
            .store
            .save_forward_policy(channel_id, &policy)
            .await?;
        self.inner.forwarding.set_policy(channel_id, policy);
        super::gossip::publish_update(&self.inner, channel_id).await;
        Ok(())
    }

    /// What we charge for forwarding into `channel_id`: the policy set for it, else
    /// [`Config::forward_policy`](super::Config::forward_policy).
    pub fn forward_policy(&self, channel_id: B256) -> ForwardPolicy {
        self.inner
            .forwarding
            .policy(channel_id, &self.inner.config.forward_policy)
    }

    /// The announcement of one of our channels and our signature over it; with the peer's
    /// signature it makes the [`SignedAnnouncement`] others route with.
    pub async fn announcement_signature(
        &self,
        channel_id: B256,
    ) -> Result<(ChannelAnnouncement, Signature)> {
        let channel = self.inner.channel(channel_id)?;
        let params = *channel.rt.lock().await.state.params();
        let announcement = ChannelAnnouncement {
            channelId: channel_id,
            participantA: params.participant_a,
            participantB: params.participant_b,
            token: params.token,
            challengePeriod: params.challenge_period,
            salt: params.salt,
        };
        let signature = self.inner.sign(&channel.domain, &announcement)?;
        Ok((announcement, signature))
    }

    /// Our current forwarding policy for `channel_id`, signed, dated `now`: its fee, its rates
    /// from other assets, and an expiry delta that covers every hop it allows (the largest of
    /// our set delta and the ones derived from each incoming chain's and this chain's timing),
    /// so a route built with it passes our check.
    pub async fn channel_update(&self, channel_id: B256) -> Result<SignedUpdate> {
        let channel = self.inner.channel(channel_id)?;
        let policy = self.forward_policy(channel_id);
        let downstream = self.inner.chain_timing(channel.chain_id);
        let mut expiry_delta = policy
            .delta(&self.inner.chain_timing(channel.chain_id), &downstream)
            .map_err(ClientError::Forward)?;
        for (asset, _) in &policy.rates {
            let upstream = self.inner.chain_timing(asset.chain_id);
            let delta = policy
                .delta(&upstream, &downstream)
                .map_err(ClientError::Forward)?;
            expiry_delta = expiry_delta.max(delta);
        }
        let rates = policy
            .rates
            .iter()
            .map(|(asset, rate)| ExchangeRate {
                chainId: U256::from(asset.chain_id),
                token: asset.token,
                upstream: rate.upstream(),
                downstream: rate.downstream(),
            })
            .collect();
        let update = ChannelUpdate {
            channelId: channel_id,
            node: self.inner.address,
            timestamp: self.inner.config.clock.now(),
            feeBase: policy.fee.base,
            feeProportionalMillionths: policy.fee.proportional_millionths,
            expiryDelta: expiry_delta,
            minAmount: U256::ZERO,
            enabled: true,
            rates,
        };
        let signature = self.inner.sign(&channel.domain, &update)?;
        Ok(SignedUpdate { update, signature })
    }

    /// The capacity our routing graph holds for `channel_id`, or `None` if the channel is not
    /// in it (never announced to us, refused, or closed on chain). Our own channels enter the
    /// graph when a payment is routed.
    pub fn graph_capacity(&self, channel_id: B256) -> Option<U256> {
        self.inner.forwarding.routing.capacity(&channel_id)
    }

    /// Adds a channel both participants announced, on `chain_id` (a configured chain), holding
    /// `capacity`, to our routing graph, and learns both nodes' keys from the signatures.
    /// Refused, changing nothing, unless it verifies. Returns whether it was new. Peers also
    /// gossip announcements (docs/protocol.md, "Channel gossip"): this is for one carried by
    /// other means.
    pub fn add_announcement(
        &self,
        chain_id: u64,
        signed: &SignedAnnouncement,
        capacity: U256,
    ) -> Result<bool> {
        let deployment = self.deployment(chain_id)?;
        self.learn_announcement(&deployment, signed, capacity)
            .map_err(|e| ClientError::Gossip(e.to_string()))
    }

    /// [`Client::add_announcement`] on a resolved deployment, with keel-routing's typed error.
    pub(crate) fn learn_announcement(
        &self,
        deployment: &Deployment,
        signed: &SignedAnnouncement,
        capacity: U256,
    ) -> std::result::Result<bool, GossipError> {
        let routing = &self.inner.forwarding.routing;
        let new = routing
            .gossip
            .lock()
            .expect("gossip poisoned")
            .announce(deployment, signed, capacity)?;
        let vault = keel_core::vault_address(
            deployment.factory,
            deployment.implementation,
            signed.announcement.channelId,
            signed.announcement.token,
        );
        let digest = keel_core::ChannelDomain::new(deployment.chain_id, vault)
            .signing_hash(&signed.announcement);
        for signature in &signed.signatures {
            // Verified above: each recovers to its participant.
            if let Ok(key) = keel_core::signing::recover_key(&digest, signature) {
                routing.add_key(&key);
            }
        }
        Ok(new)
    }

    /// Applies a node's signed policy update for an announced channel to our routing graph.
    pub fn add_channel_update(&self, signed: &SignedUpdate) -> Result<()> {
        self.apply_update(signed)
            .map_err(|e| ClientError::Gossip(e.to_string()))
    }

    /// [`Client::add_channel_update`] with keel-routing's typed error.
    pub(crate) fn apply_update(
        &self,
        signed: &SignedUpdate,
    ) -> std::result::Result<(), GossipError> {
        let now = self.inner.config.clock.now();
        self.inner
            .forwarding
            .routing
            .gossip
            .lock()
            .expect("gossip poisoned")
            .update(signed, now)
    }

    /// Our routing graph with our own channels in it, each direction's balance known exactly.
    /// The gossip's graph as it is, shared, unless one of our channels is missing from it (not
    /// announced) or closed: then a copy with that put right.
    pub(crate) async fn graph(&self) -> Arc<keel_routing::Graph> {
        let routing = &self.inner.forwarding.routing;
        let mut graph = routing.gossip.lock().expect("gossip poisoned").snapshot();
        let mut own = Vec::new();
        let mut closed = Vec::new();
        for channel in self.inner.channel_list() {
            let rt = channel.rt.lock().await;
            if !rt.chain.is_open() {
                closed.push(channel.id);
                continue;
            }
            let params = *rt.state.params();
            let total = rt.state.balance(keel_core::Side::A) + rt.state.balance(keel_core::Side::B);
            let direction = u8::from(rt.state.me() == keel_core::Side::B);
            own.push((
                GraphChannel {
                    id: channel.id,
                    asset: Asset {
                        chain_id: channel.chain_id,
                        token: params.token,
                    },
                    nodes: [params.participant_a, params.participant_b],
                    capacity: total,
                },
                direction,
                rt.state.capacity(rt.state.me()),
            ));
        }
        // Our channels the chain saw closed leave the graph and our gossip (docs/protocol.md:
        // other nodes' closed channels stay until a restart, as we do not follow their vaults).
        for id in closed {
            if graph.channel(&id).is_some() {
                let _ = Arc::make_mut(&mut graph).remove_channel(&id);
                let _ = routing.gossip.lock().expect("gossip poisoned").closed(&id);
                self.inner.gossip.forget(&id);
            }
        }
        let mut scorer = routing.scorer.lock().expect("scorer poisoned");
        for (channel, direction, available) in own {
            if graph.channel(&channel.id).is_none() {
                // Refused only for a malformed channel, which ours are not.
                let _ = Arc::make_mut(&mut graph).add_channel(channel);
            }
            scorer.set_local(channel.id, direction, available);
        }
        graph
    }

    pub(crate) fn deployment(&self, chain_id: u64) -> Result<Deployment> {
        let chain = self
            .inner
            .config
            .chains
            .iter()
            .find(|c| c.chain_id() == chain_id)
            .ok_or(ClientError::NoChain(chain_id))?;
        Ok(Deployment {
            chain_id,
            factory: chain.deployment.channel_factory,
            implementation: chain.deployment.vault_implementation,
        })
    }
}
