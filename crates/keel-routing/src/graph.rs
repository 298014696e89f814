//! The channel graph a node knows: channels, their capacity, and each direction's forwarding
//! policy as its sending node announced it.

use std::collections::HashMap;

use keel_core::{
    forwarding::{FeePolicy, HopPolicy, Rate},
    Address, B256, U256,
};

/// What a channel holds: a token on a chain (`token` zero for the chain's native coin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asset {
    /// The chain.
    pub chain_id: u64,
    /// The ERC-20 token, or zero for native.
    pub token: Address,
}

/// A public channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The channel id (binds chain, factory, participants, token).
    pub id: B256,
    /// Its asset.
    pub asset: Asset,
    /// Its two nodes; direction 0 sends from `nodes[0]` to `nodes[1]`.
    pub nodes: [Address; 2],
    /// Total deposits, an upper bound on what either direction can carry.
    pub capacity: U256,
}

/// How a node forwards into one of its channels (one direction of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionPolicy {
    /// Its fee, in the channel's asset.
    pub fee: FeePolicy,
    /// Seconds its incoming lock must outlive the outgoing one.
    pub expiry_delta: u64,
    /// Smallest lock it forwards.
    pub min_amount: U256,
    /// Whether it forwards at all (a node disables a channel it is closing).
    pub enabled: bool,
    /// Rates at which it forwards from other assets into this channel; the channel's own asset
    /// is always 1:1. A node forwards from an asset not listed here not at all.
    pub rates: Vec<(Asset, Rate)>,
    /// The announcement's time (unix seconds): a newer one replaces an older one.
    pub updated: u64,
}

impl DirectionPolicy {
    /// The forwarding rules for a lock arriving in `incoming` and leaving through a channel
    /// holding `outgoing`, if the node forwards between the two.
    pub fn hop_policy(&self, incoming: Asset, outgoing: Asset) -> Option<HopPolicy> {
        let rate = if incoming == outgoing {
            Rate::PAR
        } else {
            self.rates.iter().find(|(asset, _)| *asset == incoming)?.1
        };
        Some(HopPolicy {
            fee: self.fee,
            rate,
            expiry_delta: self.expiry_delta,
        })
    }
}

/// Why the graph refused an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A policy or removal named a channel the graph does not hold.
    #[error("unknown channel {0}")]
    UnknownChannel(B256),
    /// A policy was announced by an address that is not one of the channel's nodes.
    #[error("{0} is not a node of the channel")]
    NotANode(Address),
    /// The channel is already known, with other parameters.
    #[error("channel {0} is already known with other parameters")]
    Conflict(B256),
    /// A policy older than (or as old as) the one held.
    #[error("policy update of {got} is not newer than the one of {held}")]
    Stale {
        /// The update's time.
        got: u64,
        /// The held policy's time.
        held: u64,
    },
    /// A channel from a node to itself.
    #[error("a channel needs two distinct nodes")]
    SelfLoop,
}

/// Dense index of a node.
pub(crate) type NodeIndex = u32;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) channel: Channel,
    pub(crate) ends: [NodeIndex; 2],
    pub(crate) policies: [Option<DirectionPolicy>; 2],
}

/// One channel direction as the search reads it, stored with the node it arrives at, with a
/// copy of the sender's policy: the search then touches a channel's entry (a cache miss each on
/// a large graph) only to convert between assets or to ask the scorer what it learned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InEdge {
    pub(crate) capacity: U256,
    pub(crate) min_amount: U256,
    pub(crate) fee: FeePolicy,
    pub(crate) expiry_delta: u64,
    pub(crate) slot: u32,
    pub(crate) sender: NodeIndex,
    pub(crate) asset: u32,
    pub(crate) direction: u8,
    /// The sender announced a policy for this direction and forwards over it.
    pub(crate) forwards: bool,
}

/// Channels by id, nodes by address, and for each node the channel directions that end there
/// (a route is searched backwards, from the payee).
#[derive(Debug, Default, Clone)]
pub struct Graph {
    nodes: HashMap<Address, NodeIndex>,
    addresses: Vec<Address>,
    by_id: HashMap<B256, usize>,
    pub(crate) entries: Vec<Option<Entry>>,
    /// Per node, every direction arriving at it.
    pub(crate) inbound: Vec<Vec<InEdge>>,
    /// Assets by dense index.
    pub(crate) assets: Vec<Asset>,
    asset_index: HashMap<Asset, u32>,
    free: Vec<usize>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Channels held.
    pub fn channel_count(&self) -> usize {
        self.by_id.len()
    }

    /// Nodes seen (a node stays known after its channels close).
    pub fn node_count(&self) -> usize {
        self.addresses.len()
    }

    /// The channel with `id`, if held.
    pub fn channel(&self, id: &B256) -> Option<&Channel> {
        self.entry(id).map(|entry| &entry.channel)
    }

    /// The policy for sending over `id` from `from`, if announced.
    pub fn policy(&self, id: &B256, from: Address) -> Option<&DirectionPolicy> {
        let entry = self.entry(id)?;
        let direction = entry.channel.nodes.iter().position(|node| *node == from)?;
        entry.policies[direction].as_ref()
    }

    /// Adds a channel (announced and checked on chain by the caller). Adding it again with the
    /// same parameters is a no-op; the capacity may change (a deposit or withdrawal).
    pub fn add_channel(&mut self, channel: Channel) -> Result<(), GraphError> {
        if channel.nodes[0] == channel.nodes[1] {
            return Err(GraphError::SelfLoop);
        }
        if let Some(&slot) = self.by_id.get(&channel.id) {
            let entry = self.entries[slot].as_mut().expect("indexed entries exist");
            let held = entry.channel;
            if held.asset != channel.asset || held.nodes != channel.nodes {
                return Err(GraphError::Conflict(channel.id));
            }
            entry.channel.capacity = channel.capacity;
            let (ends, slot) = (entry.ends, slot as u32);
            for end in ends {
                for edge in self.inbound[end as usize]
                    .iter_mut()
                    .filter(|e| e.slot == slot)
                {
                    edge.capacity = channel.capacity;
                }
            }
            return Ok(());
        }
        let ends = [self.node(channel.nodes[0]), self.node(channel.nodes[1])];
        let asset = self.asset(channel.asset);
        let entry = Entry {
            channel,
            ends,
            policies: [None, None],
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        self.by_id.insert(channel.id, slot);
        let slot = u32::try_from(slot).expect("fewer than 2^32 channels");
        for direction in [0u8, 1] {
            let (sender, receiver) = (ends[direction as usize], ends[1 - direction as usize]);
            self.inbound[receiver as usize].push(InEdge {
                capacity: channel.capacity,
                min_amount: U256::ZERO,
                fee: FeePolicy::default(),
                expiry_delta: 0,
                slot,
                sender,
                asset,
                direction,
                forwards: false,
            });
        }
        Ok(())
    }

    /// Sets the policy `from` announced for sending over channel `id`; only a newer one
    /// replaces the one held.
    pub fn update_policy(
        &mut self,
        id: &B256,
        from: Address,
        policy: DirectionPolicy,
    ) -> Result<(), GraphError> {
        let slot = *self.by_id.get(id).ok_or(GraphError::UnknownChannel(*id))?;
        let entry = self.entries[slot].as_mut().expect("indexed entries exist");
        let direction = entry
            .channel
            .nodes
            .iter()
            .position(|node| *node == from)
            .ok_or(GraphError::NotANode(from))?;
        if let Some(held) = &entry.policies[direction] {
            if policy.updated <= held.updated {
                return Err(GraphError::Stale {
                    got: policy.updated,
                    held: held.updated,
                });
            }
        }
        let receiver = entry.ends[1 - direction];
        let slot = slot as u32;
        for edge in self.inbound[receiver as usize].iter_mut() {
            if edge.slot == slot {
                edge.forwards = policy.enabled;
                edge.fee = policy.fee;
                edge.expiry_delta = policy.expiry_delta;
                edge.min_amount = policy.min_amount;
            }
        }
        entry.policies[direction] = Some(policy);
        Ok(())
    }

    /// Drops a channel seen closed on chain.
    pub fn remove_channel(&mut self, id: &B256) -> Result<Channel, GraphError> {
        let slot = self
            .by_id
            .remove(id)
            .ok_or(GraphError::UnknownChannel(*id))?;
        let entry = self.entries[slot].take().expect("indexed entries exist");
        let slot32 = slot as u32;
        for end in entry.ends {
            self.inbound[end as usize].retain(|edge| edge.slot != slot32);
        }
        self.free.push(slot);
        Ok(entry.channel)
    }

    pub(crate) fn entry(&self, id: &B256) -> Option<&Entry> {
        self.entries[*self.by_id.get(id)?].as_ref()
    }

    pub(crate) fn slot_of(&self, id: &B256) -> Option<u32> {
        self.by_id.get(id).map(|&slot| slot as u32)
    }

    pub(crate) fn asset_index(&self, asset: &Asset) -> Option<u32> {
        self.asset_index.get(asset).copied()
    }

    fn asset(&mut self, asset: Asset) -> u32 {
        if let Some(&index) = self.asset_index.get(&asset) {
            return index;
        }
        let index = u32::try_from(self.assets.len()).expect("fewer than 2^32 assets");
        self.asset_index.insert(asset, index);
        self.assets.push(asset);
        index
    }

    pub(crate) fn index_of(&self, node: Address) -> Option<NodeIndex> {
        self.nodes.get(&node).copied()
    }

    pub(crate) fn address(&self, node: NodeIndex) -> Address {
        self.addresses[node as usize]
    }

    fn node(&mut self, address: Address) -> NodeIndex {
        if let Some(&index) = self.nodes.get(&address) {
            return index;
        }
        let index = NodeIndex::try_from(self.addresses.len()).expect("fewer than 2^32 nodes");
        self.nodes.insert(address, index);
        self.addresses.push(address);
        self.inbound.push(Vec::new());
        index
    }
}
