//! The part of the network the node knows: directed edges with fees and capacities, and the
//! cheapest routes through it for a circular rebalance.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::liquidity::Liquidity;
use crate::types::{Amount, Fee, NodeId};

/// One direction of a channel in the known graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The node that forwards over this edge (and charges its fee).
    pub from: NodeId,
    /// The node that receives.
    pub to: NodeId,
    /// What `from` charges to forward over this edge.
    pub fee: Fee,
    /// The channel's capacity (the most this direction could hold; its balance is private).
    pub capacity: Amount,
}

/// The known graph: directed edges, indexed by the node they leave.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    edges: Vec<Edge>,
    out: Vec<Vec<u32>>,
    into: Vec<Vec<u32>>,
}

/// A route found in the graph, from its first forwarding node to the node that pays itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The nodes visited, first the route's source, last its destination.
    pub hops: Vec<NodeId>,
    /// The graph's edges along the route (indices into [`Graph`]'s edge list), in order.
    pub edges: Vec<u32>,
    /// Fees charged along the route for the amount it was priced at.
    pub fee: Amount,
    /// The chance every hop can carry the amount, if balances are uniform on `[0, capacity]`
    /// (a score, not money).
    pub probability: f64,
}

impl Graph {
    /// An empty graph over `node_count` nodes.
    pub fn new(node_count: usize) -> Self {
        Self {
            edges: Vec::new(),
            out: vec![Vec::new(); node_count],
            into: vec![Vec::new(); node_count],
        }
    }

    /// Adds a directed edge; grows the node set to include both ends.
    pub fn add_edge(&mut self, edge: Edge) {
        let need = edge.from.0.max(edge.to.0) as usize + 1;
        if self.out.len() < need {
            self.out.resize(need, Vec::new());
            self.into.resize(need, Vec::new());
        }
        let index = u32::try_from(self.edges.len()).expect("fewer than 2^32 edges");
        self.out[edge.from.0 as usize].push(index);
        self.into[edge.to.0 as usize].push(index);
        self.edges.push(edge);
    }

    /// How many nodes the graph spans.
    pub fn node_count(&self) -> usize {
        self.out.len()
    }

    /// How many directed edges it holds.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Cheapest routes from `source` to every node reachable in at most `max_hops` edges, for
    /// forwarding `amount`, never passing through `avoid` (the node itself: a circular route
    /// leaves and re-enters it only through its own channels). Edges with less capacity than
    /// `amount` are skipped. Fees are priced on `amount` at every hop, which slightly
    /// underestimates a route's fee (each hop really forwards the amount plus later fees).
    /// Routes whose fee so priced exceeds `max_fee` are not explored (no such route could be
    /// afforded). Edges `known` says cannot carry `amount` at its time (an earlier attempt
    /// failed there and the lesson has not faded enough) are skipped too, so a cycle that
    /// failed is not retried blindly. Stops early once every node in `targets` is settled.
    #[allow(clippy::too_many_arguments)]
    pub fn cheapest_from(
        &self,
        source: NodeId,
        avoid: NodeId,
        amount: Amount,
        max_hops: u8,
        max_fee: Amount,
        targets: &[NodeId],
        known: Known<'_>,
    ) -> Routes {
        let n = self.out.len();
        let mut routes = Routes {
            source,
            fee: vec![None; n],
            prev_edge: vec![u32::MAX; n],
            hops: vec![0; n],
            pruned: false,
        };
        if source.0 as usize >= n || source == avoid {
            return routes;
        }
        // Sorted once: a hub can have hundreds of depleted peers, and every settled node is
        // looked up among them. A target no edge could enter (only from `avoid`, or with too
        // little capacity: a peer whose one channel is the node's own) is never reached, and
        // waiting for it would search everything reachable.
        let enterable = |t: &NodeId| {
            *t == source
                || self.into[t.0 as usize].iter().any(|&e| {
                    self.edges[e as usize].from != avoid
                        && self.edges[e as usize].capacity >= amount
                })
        };
        let mut targets: Vec<NodeId> = targets
            .iter()
            .copied()
            .filter(|t| (t.0 as usize) < n && enterable(t))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let mut remaining = targets.len();
        let mut settled = vec![false; n];
        let mut heap = BinaryHeap::new();
        routes.fee[source.0 as usize] = Some(0);
        heap.push(Reverse((0u128, source.0)));
        while let Some(Reverse((fee, node))) = heap.pop() {
            let u = node as usize;
            if settled[u] {
                continue;
            }
            settled[u] = true;
            if targets.binary_search(&NodeId(node)).is_ok() {
                remaining -= 1;
                if remaining == 0 {
                    break;
                }
            }
            if routes.hops[u] >= max_hops {
                continue;
            }
            for &e in &self.out[u] {
                let edge = &self.edges[e as usize];
                let v = edge.to.0 as usize;
                if edge.to == avoid || settled[v] || edge.capacity < amount {
                    continue;
                }
                if known.probability(e, edge, amount) == 0.0 {
                    continue;
                }
                let Some(next) = edge.fee.for_amount(amount).and_then(|f| f.checked_add(fee))
                else {
                    continue;
                };
                if next > max_fee {
                    routes.pruned = true;
                    continue;
                }
                if routes.fee[v].is_none_or(|old| next < old) {
                    routes.fee[v] = Some(next);
                    routes.prev_edge[v] = e;
                    routes.hops[v] = routes.hops[u] + 1;
                    heap.push(Reverse((next, edge.to.0)));
                }
            }
        }
        routes
    }

    /// The route from `routes`' source to `to`, with its fee and probability for `amount`.
    pub fn route_to(
        &self,
        routes: &Routes,
        to: NodeId,
        amount: Amount,
        known: Known<'_>,
    ) -> Option<Route> {
        let fee = (*routes.fee.get(to.0 as usize)?)?;
        let mut hops = vec![to];
        let mut edges = Vec::new();
        let mut at = to;
        while at != routes.source {
            let e = routes.prev_edge[at.0 as usize];
            let edge = self.edges.get(e as usize)?;
            edges.push(e);
            at = edge.from;
            hops.push(at);
        }
        hops.reverse();
        edges.reverse();
        let mut route = Route {
            hops,
            edges,
            fee,
            probability: 1.0,
        };
        route.probability = self.probability_along(&route, amount, known);
        Some(route)
    }

    /// The fees along `route` for delivering `amount` to its last node: computed from the last
    /// hop back, each hop charging on what it forwards (the amount plus later hops' fees), as a
    /// payment really pays them.
    pub fn fee_along(&self, route: &Route, amount: Amount) -> Option<Amount> {
        let mut x = amount;
        for &e in route.edges.iter().rev() {
            x = x.checked_add(self.edges.get(e as usize)?.fee.for_amount(x)?)?;
        }
        x.checked_sub(amount)
    }

    /// The chance every edge of `route` can carry `amount`: [`success_probability`], or what
    /// `known` learned of an edge.
    pub fn probability_along(&self, route: &Route, amount: Amount, known: Known<'_>) -> f64 {
        route
            .edges
            .iter()
            .map(|&e| {
                self.edges
                    .get(e as usize)
                    .map_or(0.0, |edge| known.probability(e, edge, amount))
            })
            .product()
    }

    /// The edge with index `index`, as listed by [`Route::edges`].
    pub fn edge(&self, index: u32) -> Option<&Edge> {
        self.edges.get(index as usize)
    }
}

/// What the node learned of the graph's liquidity, as of `now`; `Known::prior()` knows
/// nothing and estimates from capacities alone.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// Learned bounds, if any.
    pub liquidity: Option<&'a Liquidity>,
    /// The caller's time, which learned bounds fade with.
    pub now: u64,
}

impl Known<'_> {
    /// No knowledge: the uniform prior on capacities.
    pub fn prior() -> Self {
        Known {
            liquidity: None,
            now: 0,
        }
    }

    fn probability(&self, index: u32, edge: &Edge, amount: Amount) -> f64 {
        match self.liquidity {
            Some(l) => l.probability(index, edge.capacity, amount, self.now),
            None => success_probability(edge.capacity, amount),
        }
    }
}

/// Cheapest routes from one source, as [`Graph::cheapest_from`] found them.
#[derive(Debug, Clone)]
pub struct Routes {
    source: NodeId,
    fee: Vec<Option<Amount>>,
    prev_edge: Vec<u32>,
    hops: Vec<u8>,
    pruned: bool,
}

impl Routes {
    /// Whether the search left out some route for costing more than its `max_fee`: a node it
    /// did not reach may still be reachable at an unaffordable fee.
    pub fn pruned(&self) -> bool {
        self.pruned
    }
}

/// The chance a channel of `capacity` can forward `amount` if its balance is uniform on
/// `[0, capacity]` (Pickhardt and Richter's prior): `(capacity + 1 - amount) / (capacity + 1)`.
pub fn success_probability(capacity: Amount, amount: Amount) -> f64 {
    if amount > capacity {
        return 0.0;
    }
    // Floats only for the score: precision loss on huge amounts changes a probability slightly.
    let c = capacity as f64 + 1.0;
    (c - amount as f64) / c
}
