//! The payer's search for a route: cheapest by fees plus a penalty for the risk that a hop
//! lacks the liquidity, under the forwarding rules of keel-core.
//!
//! The search runs backwards from the payee (Dijkstra over node labels), because what a lock
//! must carry into a node depends on what that node forwards after it: its fee, its rate when
//! the next channel holds another asset, and its expiry delta. Each node is settled once, with
//! the lock it would forward; the payer is never an intermediate node, so a route from a node to
//! itself (a circular rebalance) is found like any other. The locks of the route found are then
//! computed by [`route_locks`], the same function a hop's
//! check is consistent with.

use std::{cmp::Reverse, collections::BinaryHeap, collections::HashSet};

use keel_core::{
    forwarding::{route_locks, FeePolicy, ForwardError, HopLock, HopPolicy, Rate},
    Address, B256, U256,
};

use crate::{
    graph::{Asset, Graph, NodeIndex},
    scorer::{approx, Scorer},
};

/// Limits and weights of a search.
#[derive(Debug, Clone)]
pub struct RouteParams {
    /// Most channels on a route.
    pub max_hops: u8,
    /// Seconds the payer's lock may live at most (the sum of expiry deltas plus the final
    /// lifetime); bounds how long a payment can tie up the payer's funds.
    pub max_lifetime: u64,
    /// Seconds the payee's lock lives: at least its channel's minimum lock lifetime.
    pub final_lifetime: u64,
    /// Cost per hop, in the payer's units: prefers shorter routes among equally cheap ones.
    pub hop_penalty: f64,
    /// Risk cost per unit of `-ln(probability)`, plus `risk_per_unit` per unit carried.
    pub risk_base: f64,
    /// See `risk_base`.
    pub risk_per_unit: f64,
    /// The asset the payee wants to be paid in, if it says (else any).
    pub payee_asset: Option<Asset>,
    /// Channels not to use (those that failed in this payment's earlier attempts).
    pub avoid: HashSet<B256>,
    /// The payer's channel to leave by, if it must be that one (a circular rebalance drains
    /// the channel with too much on the payer's side).
    pub first_channel: Option<B256>,
    /// The payee's channel to arrive by, if it must be that one (a circular rebalance refills
    /// the channel with too little on the payer's side).
    pub last_channel: Option<B256>,
}

impl Default for RouteParams {
    fn default() -> Self {
        Self {
            max_hops: 20,
            max_lifetime: 14 * 86_400,
            final_lifetime: 3_600,
            hop_penalty: 1.0,
            risk_base: 1_000.0,
            risk_per_unit: 0.001,
            payee_asset: None,
            avoid: HashSet::new(),
            first_channel: None,
            last_channel: None,
        }
    }
}

/// One channel of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHop {
    /// The channel.
    pub channel: B256,
    /// Its asset (and so its chain).
    pub asset: Asset,
    /// The node that locks on it.
    pub from: Address,
    /// The node that receives the lock.
    pub to: Address,
    /// The direction (0: from `nodes[0]`).
    pub direction: u8,
}

/// A route and its locks.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The channels, payer's first.
    pub hops: Vec<RouteHop>,
    /// The rules each intermediate node applies: `forwarders[i]` sits between `hops[i]` and
    /// `hops[i + 1]`.
    pub forwarders: Vec<HopPolicy>,
    /// The lock on each channel, payer's first; the last delivers the amount.
    pub locks: Vec<HopLock>,
    /// Estimated probability that every hop has the liquidity.
    pub probability: f64,
    /// What the search minimised: fees plus risk and hop penalties, in the payer's units.
    pub cost: f64,
}

impl Route {
    /// What the payer locks (the amount plus every fee, in the first channel's asset).
    pub fn sent(&self) -> U256 {
        self.locks.first().map_or(U256::ZERO, |lock| lock.amount)
    }
}

/// Why no route was returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The payer or payee has no channel in the graph.
    #[error("{0} is not in the graph")]
    UnknownNode(Address),
    /// No route within the limits can carry the amount.
    #[error("no route carries {0}")]
    NoRoute(U256),
    /// The forwarding rules refused the amounts (a zero payment, an overflow).
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

#[derive(Debug, Clone, Copy)]
struct Label {
    cost: f64,
    probability: f64,
    /// The lock this node forwards (for the payee: the one it receives).
    amount: U256,
    expiration: u64,
    /// The asset of the lock it forwards (for the payee: the one it wants), as the graph
    /// indexes assets.
    asset: Option<u32>,
    /// The channel direction it forwards over; `None` for the payee.
    next: Option<(u32, u8)>,
    /// Its policy for that direction (a copy, so that settling the node reads no entry).
    fee: FeePolicy,
    expiry_delta: u64,
    min_amount: U256,
    /// The channel into the payee, which a route from a node to itself must not leave by.
    last: Option<u32>,
    hops: u8,
}

const DONE: NodeIndex = NodeIndex::MAX;

/// The lock a node needs to receive to forward `here`'s under `rules`: its amount, expiration
/// and the fee in it (as a float, for the search's cost); `None` if it overflows.
fn lock_into(here: &Label, rules: HopPolicy) -> Option<(U256, u64, f64)> {
    let carried = rules.required_incoming(here.amount).ok()?;
    let expiration = here.expiration.checked_add(rules.expiry_delta)?;
    let converted = if rules.rate == Rate::PAR {
        approx(here.amount)
    } else {
        approx(here.amount) * approx(rules.rate.upstream()) / approx(rules.rate.downstream())
    };
    Some((carried, expiration, approx(carried) - converted))
}

/// The cheapest route from `payer` to `payee` delivering `amount`, at `now`.
///
/// A route from a node to itself never leaves and returns by the same channel. Unless
/// `params.last_channel` names the channel to return by, each of the payer's channels is tried
/// as the last one (one search each, since which channel is last changes which routes are
/// allowed) and the cheapest route is kept.
pub fn find_route(
    graph: &Graph,
    scorer: &Scorer,
    payer: Address,
    payee: Address,
    amount: U256,
    params: &RouteParams,
    now: u64,
) -> Result<Route, RouteError> {
    if payer != payee || params.last_channel.is_some() {
        return search(graph, scorer, payer, payee, amount, params, now);
    }
    let node = graph
        .index_of(payer)
        .ok_or(RouteError::UnknownNode(payer))?;
    let mut best: Result<Route, RouteError> = Err(RouteError::NoRoute(amount));
    for edge in &graph.inbound[node as usize] {
        let channel = graph.entries[edge.slot as usize]
            .as_ref()
            .expect("inbound lists hold live entries")
            .channel
            .id;
        let fixed = RouteParams {
            last_channel: Some(channel),
            ..params.clone()
        };
        match search(graph, scorer, payer, payee, amount, &fixed, now) {
            Ok(route) if best.as_ref().is_ok_and(|held| held.cost <= route.cost) => {}
            Ok(route) => best = Ok(route),
            Err(RouteError::NoRoute(_)) => {}
            Err(other) => return Err(other),
        }
    }
    best
}

fn search(
    graph: &Graph,
    scorer: &Scorer,
    payer: Address,
    payee: Address,
    amount: U256,
    params: &RouteParams,
    now: u64,
) -> Result<Route, RouteError> {
    if amount.is_zero() {
        return Err(ForwardError::Invalid("a payment of zero").into());
    }
    let source = graph
        .index_of(payer)
        .ok_or(RouteError::UnknownNode(payer))?;
    let target = graph
        .index_of(payee)
        .ok_or(RouteError::UnknownNode(payee))?;
    let final_expiration = now
        .checked_add(params.final_lifetime)
        .ok_or(ForwardError::Overflow("the final expiration"))?;
    let deadline = now.saturating_add(params.max_lifetime);
    // Channels and assets by their dense indices, so the loop compares integers.
    let avoid: HashSet<u32> = params
        .avoid
        .iter()
        .filter_map(|id| graph.slot_of(id))
        .collect();
    let slot_or_none = |id: Option<B256>| match id {
        None => Ok(None),
        Some(id) => graph
            .slot_of(&id)
            .map(Some)
            .ok_or(RouteError::NoRoute(amount)),
    };
    let (first_slot, last_slot) = (
        slot_or_none(params.first_channel)?,
        slot_or_none(params.last_channel)?,
    );
    let payee_asset = match params.payee_asset {
        None => None,
        Some(asset) => Some(
            graph
                .asset_index(&asset)
                .ok_or(RouteError::NoRoute(amount))?,
        ),
    };
    let learned = !scorer.knows_nothing();

    let mut labels: Vec<Option<Label>> = vec![None; graph.node_count()];
    let mut settled = vec![false; graph.node_count()];
    let mut best: Option<(Label, (u32, u8))> = None;
    let mut heap = BinaryHeap::new();
    labels[target as usize] = Some(Label {
        cost: 0.0,
        probability: 1.0,
        amount,
        expiration: final_expiration,
        asset: payee_asset,
        next: None,
        fee: FeePolicy::default(),
        expiry_delta: 0,
        min_amount: U256::ZERO,
        last: None,
        hops: 0,
    });
    heap.push(Reverse((0f64.to_bits(), target)));

    while let Some(Reverse((_, node))) = heap.pop() {
        if node == DONE {
            break;
        }
        if std::mem::replace(&mut settled[node as usize], true) {
            continue;
        }
        let here = labels[node as usize].expect("queued nodes are labelled");
        if here.hops >= params.max_hops {
            continue;
        }
        if here.next.is_some() && here.amount < here.min_amount {
            continue;
        }
        // The lock into the node here from a channel of the asset it forwards is the same for
        // every such channel, so it is computed once.
        let same_asset = here.next.and_then(|_| {
            lock_into(
                &here,
                HopPolicy {
                    fee: here.fee,
                    rate: Rate::PAR,
                    expiry_delta: here.expiry_delta,
                },
            )
        });
        for edge in &graph.inbound[node as usize] {
            let (slot, sender) = (edge.slot, edge.sender);
            if sender != source && (settled[sender as usize] || !edge.forwards) {
                continue;
            }
            if !avoid.is_empty() && avoid.contains(&slot) {
                continue;
            }
            if here.next.is_none() && last_slot.is_some_and(|last| last != slot) {
                continue;
            }
            // A circular route leaving by the channel it returns on would pay fees for nothing.
            if sender == source
                && (here.last == Some(slot) || first_slot.is_some_and(|first| first != slot))
            {
                continue;
            }
            // The lock on this channel: what the node here needs to forward its own.
            let (carried, expiration, fee_cost) = match here.next {
                None => {
                    if here.asset.is_some_and(|asset| asset != edge.asset) {
                        continue;
                    }
                    (here.amount, here.expiration, 0.0)
                }
                Some(_) if here.asset == Some(edge.asset) => match same_asset {
                    Some(lock) => lock,
                    None => continue,
                },
                Some((next_slot, next_direction)) => {
                    // Another asset: only at a rate the node announced.
                    let next = graph.entries[next_slot as usize]
                        .as_ref()
                        .expect("labels name live entries");
                    let from = graph.assets[edge.asset as usize];
                    let rules = next.policies[next_direction as usize]
                        .as_ref()
                        .and_then(|policy| policy.hop_policy(from, next.channel.asset));
                    match rules.and_then(|rules| lock_into(&here, rules)) {
                        Some(lock) => lock,
                        None => continue,
                    }
                }
            };
            if carried > edge.capacity || expiration > deadline {
                continue;
            }
            let probability = if learned {
                let id = graph.entries[slot as usize]
                    .as_ref()
                    .expect("inbound lists hold live entries")
                    .channel
                    .id;
                scorer.probability(id, edge.direction, carried, edge.capacity, now)
            } else {
                Scorer::prior(carried, edge.capacity)
            };
            if probability <= 0.0 {
                continue;
            }
            let risk =
                -probability.ln() * (params.risk_base + approx(carried) * params.risk_per_unit);
            let label = Label {
                cost: here.cost + fee_cost.max(0.0) + risk + params.hop_penalty,
                probability: here.probability * probability,
                amount: carried,
                expiration,
                asset: Some(edge.asset),
                next: Some((slot, edge.direction)),
                fee: edge.fee,
                expiry_delta: edge.expiry_delta,
                min_amount: edge.min_amount,
                last: here.last.or(Some(slot)),
                hops: here.hops + 1,
            };
            if sender == source {
                if best.is_none_or(|(held, _)| label.cost < held.cost) {
                    best = Some((label, (slot, edge.direction)));
                    heap.push(Reverse((label.cost.to_bits(), DONE)));
                }
            } else if labels[sender as usize].is_none_or(|held| label.cost < held.cost) {
                labels[sender as usize] = Some(label);
                heap.push(Reverse((label.cost.to_bits(), sender)));
            }
        }
    }

    let (first, (slot, direction)) = best.ok_or(RouteError::NoRoute(amount))?;
    build(
        graph,
        &labels,
        first,
        (slot, direction),
        amount,
        final_expiration,
    )
}

/// Follows the labels from the payer's first channel to the payee and computes the locks.
fn build(
    graph: &Graph,
    labels: &[Option<Label>],
    first: Label,
    mut edge: (u32, u8),
    amount: U256,
    final_expiration: u64,
) -> Result<Route, RouteError> {
    let mut hops = Vec::with_capacity(first.hops as usize);
    let mut forwarders = Vec::with_capacity(first.hops as usize);
    loop {
        let entry = graph.entries[edge.0 as usize]
            .as_ref()
            .expect("labels name live entries");
        let (direction, receiver) = (edge.1, entry.ends[1 - edge.1 as usize]);
        hops.push(RouteHop {
            channel: entry.channel.id,
            asset: entry.channel.asset,
            from: entry.channel.nodes[direction as usize],
            to: graph.address(receiver),
            direction,
        });
        let next = labels[receiver as usize].and_then(|label| label.next);
        let Some(next) = next.filter(|_| hops.len() < first.hops as usize) else {
            break;
        };
        let next_entry = graph.entries[next.0 as usize]
            .as_ref()
            .expect("labels name live entries");
        let rules = next_entry.policies[next.1 as usize]
            .as_ref()
            .and_then(|policy| policy.hop_policy(entry.channel.asset, next_entry.channel.asset))
            .expect("labelled hops have a policy");
        forwarders.push(rules);
        edge = next;
    }
    let locks = route_locks(&forwarders, amount, final_expiration)?;
    Ok(Route {
        hops,
        forwarders,
        locks,
        probability: first.probability,
        cost: first.cost,
    })
}
