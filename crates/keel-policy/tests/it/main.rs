//! keel-policy integration tests: properties of every plan, and a few worked cases.

mod cases;
mod properties;

use std::collections::BTreeMap;

use keel_policy::{
    Amount, ChainId, Channel, ChannelId, ChannelPolicy, Edge, Fee, GasTable, Graph, NodeId,
};

/// A node (0) with channels to peers 1..=k, on a graph where every peer links to the next.
pub(crate) struct World {
    pub(crate) channels: Vec<Channel>,
    pub(crate) graph: Graph,
    pub(crate) gas_price: BTreeMap<ChainId, Amount>,
    pub(crate) wallet: BTreeMap<ChainId, Amount>,
    pub(crate) gas: GasTable,
}

pub(crate) fn channel(id: u64, peer: u32, capacity: Amount, local: Amount) -> Channel {
    Channel {
        id: ChannelId(id),
        chain: ChainId(1),
        peer: NodeId(peer),
        capacity,
        local,
        remote: capacity - local,
        pending_out: 0,
        pending_in: 0,
        flow_out: capacity,
        flow_in: 0,
        failed_out: 0,
        peer_fee: Fee { base: 0, ppm: 100 },
        last_action: None,
        policy: ChannelPolicy::default(),
    }
}

/// A ring of peers 1..=k around node 0, each peer linked both ways to the next.
pub(crate) fn ring(k: u32, capacity: Amount, fee: Fee) -> Graph {
    let mut g = Graph::new(k as usize + 1);
    for p in 1..=k {
        let q = if p == k { 1 } else { p + 1 };
        for (from, to) in [(p, q), (q, p), (0, p), (p, 0)] {
            g.add_edge(Edge {
                from: NodeId(from),
                to: NodeId(to),
                fee,
                capacity,
            });
        }
    }
    g
}
