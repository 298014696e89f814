//! What a node accepts into its graph from its peers: announcements both participants signed
//! for a channel whose id follows from the announced parameters, and policy updates signed by
//! one of the channel's participants. Everything else is refused with a typed reason and leaves
//! the graph as it was. The client checks the part this crate cannot see (that the vault
//! exists on chain and what it holds) and passes the capacity in.

use std::{collections::HashMap, sync::Arc};

use keel_core::{
    channel_id,
    eip712::ChannelDomain,
    forwarding::{
        verify_announcement, verify_update, AnnouncementError, ChannelAnnouncement, ChannelUpdate,
        ForwardError, Rate,
    },
    signing::SIGNATURE_LEN,
    vault_address, Address, B256, U256,
};

use crate::graph::{Asset, Channel, DirectionPolicy, Graph, GraphError};

/// Most exchange rates one update may announce.
pub const MAX_RATES: usize = 16;
/// How far in the future (seconds) an update's timestamp may be: one further ahead would
/// shadow the node's real updates until then.
pub const MAX_CLOCK_SKEW: u64 = 600;

/// Where Keel's contracts are on one chain: what a channel id and its vault derive from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The chain.
    pub chain_id: u64,
    /// The channel factory.
    pub factory: Address,
    /// The vault implementation the factory clones.
    pub implementation: Address,
}

/// A channel announcement with both participants' signatures (A's, then B's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAnnouncement {
    /// The announcement.
    pub announcement: ChannelAnnouncement,
    /// A's and B's signatures.
    pub signatures: [[u8; SIGNATURE_LEN]; 2],
}

/// A policy update with its node's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpdate {
    /// The update.
    pub update: ChannelUpdate,
    /// The node's signature.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Why an announcement or update was refused.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// The announced id is not the one its parameters give on this deployment.
    #[error("channel id {announced} does not follow from the announced parameters ({derived})")]
    WrongChannelId {
        /// The id announced.
        announced: B256,
        /// The id the parameters give.
        derived: B256,
    },
    /// A signature did not verify, or a field is out of range.
    #[error(transparent)]
    Signature(#[from] AnnouncementError),
    /// An update for a channel not announced (or already closed).
    #[error("update for unannounced channel {0}")]
    Unannounced(B256),
    /// Too many rates, a rate of zero, a chain id beyond 64 bits.
    #[error("bad policy: {0}")]
    BadPolicy(&'static str),
    /// The update's timestamp is further ahead than [`MAX_CLOCK_SKEW`].
    #[error("update dated {timestamp}, ahead of now ({now}) by more than the allowed skew")]
    FromTheFuture {
        /// The update's timestamp.
        timestamp: u64,
        /// Now.
        now: u64,
    },
    /// The graph holds as many channels as it may.
    #[error("the graph is full ({0} channels)")]
    Full(usize),
    /// The graph refused it (stale update, conflicting channel).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// The graph and the announcements behind it.
#[derive(Debug, Clone)]
pub struct Gossip {
    /// Shared with the searches under way ([`Gossip::snapshot`]); a change while one holds it
    /// copies it first.
    graph: Arc<Graph>,
    domains: HashMap<B256, (ChannelAnnouncement, ChannelDomain)>,
    max_channels: usize,
}

impl Gossip {
    /// An empty graph that holds at most `max_channels` channels (memory stays bounded
    /// whatever peers send).
    pub fn new(max_channels: usize) -> Self {
        Self {
            graph: Arc::new(Graph::new()),
            domains: HashMap::new(),
            max_channels,
        }
    }

    /// The graph, for pathfinding.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The graph as it is now, to search without holding the gossip: sharing it costs nothing,
    /// where copying a 10,000-channel graph takes longer than searching it
    /// (docs/benchmarks.md, "Pathfinding"). The next change copies it if the snapshot is
    /// still held.
    pub fn snapshot(&self) -> Arc<Graph> {
        Arc::clone(&self.graph)
    }

    /// Checks an announcement of a channel of `deployment` without adding it: its id follows
    /// from its parameters, both signatures verify, and the graph has room for it if it is new.
    /// The caller checks it so before asking the chain about the channel, so that a forgery
    /// costs no RPC call.
    pub fn check(
        &self,
        deployment: &Deployment,
        signed: &SignedAnnouncement,
    ) -> Result<ChannelDomain, GossipError> {
        let announcement = &signed.announcement;
        let params = announcement.params();
        let derived = channel_id(deployment.chain_id, deployment.factory, &params);
        if derived != announcement.channelId {
            return Err(GossipError::WrongChannelId {
                announced: announcement.channelId,
                derived,
            });
        }
        if !self.domains.contains_key(&derived) && self.domains.len() >= self.max_channels {
            return Err(GossipError::Full(self.max_channels));
        }
        let vault = vault_address(
            deployment.factory,
            deployment.implementation,
            derived,
            params.token,
        );
        let domain = ChannelDomain::new(deployment.chain_id, vault);
        verify_announcement(
            announcement,
            &domain,
            [&signed.signatures[0], &signed.signatures[1]],
        )?;
        Ok(domain)
    }

    /// Verifies an announcement of a channel of `deployment` holding `capacity` (read from its
    /// vault by the caller) and adds the channel; returns whether it was new. Announcing a
    /// known channel again updates its capacity.
    pub fn announce(
        &mut self,
        deployment: &Deployment,
        signed: &SignedAnnouncement,
        capacity: U256,
    ) -> Result<bool, GossipError> {
        let domain = self.check(deployment, signed)?;
        let announcement = &signed.announcement;
        let params = announcement.params();
        let id = announcement.channelId;
        let known = self.domains.contains_key(&id);
        Arc::make_mut(&mut self.graph).add_channel(Channel {
            id,
            asset: Asset {
                chain_id: deployment.chain_id,
                token: params.token,
            },
            nodes: [params.participant_a, params.participant_b],
            capacity,
        })?;
        self.domains.insert(id, (announcement.clone(), domain));
        Ok(!known)
    }

    /// Verifies a policy update for an announced channel and applies it if newer.
    pub fn update(&mut self, signed: &SignedUpdate, now: u64) -> Result<(), GossipError> {
        let update = &signed.update;
        let (announcement, domain) = self
            .domains
            .get(&update.channelId)
            .ok_or(GossipError::Unannounced(update.channelId))?;
        if update.timestamp > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(GossipError::FromTheFuture {
                timestamp: update.timestamp,
                now,
            });
        }
        let policy = policy_of(update)?;
        verify_update(update, announcement, domain, &signed.signature)?;
        Arc::make_mut(&mut self.graph).update_policy(&update.channelId, update.node, policy)?;
        Ok(())
    }

    /// Sets the capacity of an announced channel to `capacity`, what its vault now holds (a
    /// deposit or a withdrawal changed it).
    pub fn resized(&mut self, id: &B256, capacity: U256) -> Result<(), GossipError> {
        let mut channel = *self
            .graph
            .channel(id)
            .filter(|_| self.domains.contains_key(id))
            .ok_or(GossipError::Unannounced(*id))?;
        channel.capacity = capacity;
        Arc::make_mut(&mut self.graph).add_channel(channel)?;
        Ok(())
    }

    /// Drops a channel seen closed on chain.
    pub fn closed(&mut self, id: &B256) -> Result<(), GossipError> {
        self.domains.remove(id);
        Arc::make_mut(&mut self.graph).remove_channel(id)?;
        Ok(())
    }
}

/// The graph's form of a signed update.
fn policy_of(update: &ChannelUpdate) -> Result<DirectionPolicy, GossipError> {
    if update.rates.len() > MAX_RATES {
        return Err(GossipError::BadPolicy("more than 16 exchange rates"));
    }
    let rates = update
        .rates
        .iter()
        .map(|rate| {
            let chain_id = u64::try_from(rate.chainId)
                .map_err(|_| GossipError::BadPolicy("a chain id beyond 64 bits"))?;
            let value = Rate::new(rate.upstream, rate.downstream).map_err(|e| match e {
                ForwardError::Invalid(why) => GossipError::BadPolicy(why),
                _ => GossipError::BadPolicy("a bad rate"),
            })?;
            Ok((
                Asset {
                    chain_id,
                    token: rate.token,
                },
                value,
            ))
        })
        .collect::<Result<Vec<_>, GossipError>>()?;
    Ok(DirectionPolicy {
        fee: keel_core::forwarding::FeePolicy {
            base: update.feeBase,
            proportional_millionths: update.feeProportionalMillionths,
        },
        expiry_delta: update.expiryDelta,
        min_amount: update.minAmount,
        enabled: update.enabled,
        rates,
        updated: update.timestamp,
    })
}
