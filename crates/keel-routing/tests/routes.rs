//! Routes over small graphs whose answer is known, and properties of every route found on
//! random graphs: it is connected, within capacities and limits, and each forwarding node's
//! check (keel-core `check_forward`) accepts its locks.

use std::collections::HashSet;

use keel_core::{
    forwarding::{check_forward, FeePolicy, ForwardInstruction, Rate},
    Address, Lock, B256, U256,
};
use keel_routing::{
    find_route, Asset, Channel, DirectionPolicy, Graph, GraphError, RouteError, RouteParams, Scorer,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;
const ETH: Asset = Asset {
    chain_id: 1,
    token: Address::ZERO,
};
const OTHER_CHAIN: Asset = Asset {
    chain_id: 10,
    token: Address::ZERO,
};

fn node(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn id(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn policy(base: u64, ppm: u32, delta: u64) -> DirectionPolicy {
    DirectionPolicy {
        fee: FeePolicy {
            base: U256::from(base),
            proportional_millionths: ppm,
        },
        expiry_delta: delta,
        enabled: true,
        updated: 1,
        ..DirectionPolicy::default()
    }
}

/// Adds channel `n` between `a` and `b` with both directions' policies.
fn connect(graph: &mut Graph, n: u8, a: u8, b: u8, capacity: u64, p: &DirectionPolicy) {
    connect_in(graph, n, a, b, capacity, p, ETH);
}

fn connect_in(
    graph: &mut Graph,
    n: u8,
    a: u8,
    b: u8,
    capacity: u64,
    p: &DirectionPolicy,
    asset: Asset,
) {
    graph
        .add_channel(Channel {
            id: id(n),
            asset,
            nodes: [node(a), node(b)],
            capacity: U256::from(capacity),
        })
        .unwrap();
    graph.update_policy(&id(n), node(a), p.clone()).unwrap();
    graph.update_policy(&id(n), node(b), p.clone()).unwrap();
}

fn route(
    graph: &Graph,
    scorer: &Scorer,
    from: u8,
    to: u8,
    amount: u64,
) -> Result<keel_routing::Route, RouteError> {
    find_route(
        graph,
        scorer,
        node(from),
        node(to),
        U256::from(amount),
        &RouteParams::default(),
        NOW,
    )
}

#[test]
fn two_hops_pay_the_middle_nodes_fee() {
    let mut graph = Graph::new();
    connect(&mut graph, 1, 1, 2, 1_000_000, &policy(10, 1_000, 900));
    connect(&mut graph, 2, 2, 3, 1_000_000, &policy(10, 1_000, 900));
    let found = route(&graph, &Scorer::default(), 1, 3, 100_000).unwrap();
    let path: Vec<_> = found.hops.iter().map(|hop| (hop.from, hop.to)).collect();
    assert_eq!(path, vec![(node(1), node(2)), (node(2), node(3))]);
    // Node 2 charges 10 + 100,000 × 0.1 %.
    assert_eq!(found.sent(), U256::from(100_110));
    assert_eq!(found.locks[1].amount, U256::from(100_000));
    assert_eq!(found.locks[0].expiration, found.locks[1].expiration + 900);
    assert_eq!(
        found.locks[1].expiration,
        NOW + RouteParams::default().final_lifetime
    );
}

#[test]
fn the_cheaper_route_wins_until_it_fails() {
    let mut graph = Graph::new();
    // 1 → 2 → 4 charges 1,000; 1 → 3 → 4 charges 50.
    connect(&mut graph, 1, 1, 2, 1_000_000, &policy(1_000, 0, 100));
    connect(&mut graph, 2, 2, 4, 1_000_000, &policy(1_000, 0, 100));
    connect(&mut graph, 3, 1, 3, 1_000_000, &policy(50, 0, 100));
    connect(&mut graph, 4, 3, 4, 1_000_000, &policy(50, 0, 100));
    let mut scorer = Scorer::default();
    let found = route(&graph, &scorer, 1, 4, 10_000).unwrap();
    assert_eq!(found.hops[0].channel, id(3));
    assert_eq!(found.sent(), U256::from(10_050));

    // Channel 4 could not carry it: the next search goes the other way.
    let failed = &found.hops[1];
    scorer.failed(
        failed.channel,
        failed.direction,
        found.locks[1].amount,
        U256::from(1_000_000),
        NOW,
    );
    let retry = route(&graph, &scorer, 1, 4, 10_000).unwrap();
    assert_eq!(retry.hops[0].channel, id(1));
    assert_eq!(retry.sent(), U256::from(11_000));
    // An hour later the lesson has half faded; a week later it is gone.
    let later = find_route(
        &graph,
        &scorer,
        node(1),
        node(4),
        U256::from(10_000),
        &RouteParams::default(),
        NOW + 7 * 86_400,
    )
    .unwrap();
    assert_eq!(later.hops[0].channel, id(3));
}

#[test]
fn avoided_disabled_and_small_channels_are_not_used() {
    let mut graph = Graph::new();
    connect(&mut graph, 1, 1, 2, 1_000_000, &policy(0, 0, 100));
    connect(&mut graph, 2, 2, 3, 5_000, &policy(0, 0, 100));
    let scorer = Scorer::default();
    assert_eq!(
        route(&graph, &scorer, 1, 3, 5_001),
        Err(RouteError::NoRoute(U256::from(5_001)))
    );
    assert!(route(&graph, &scorer, 1, 3, 5_000).is_ok());

    let mut params = RouteParams::default();
    params.avoid.insert(id(2));
    assert!(matches!(
        find_route(
            &graph,
            &scorer,
            node(1),
            node(3),
            U256::from(10),
            &params,
            NOW
        ),
        Err(RouteError::NoRoute(_))
    ));

    // Node 2 stops forwarding into channel 2.
    let mut closing = policy(0, 0, 100);
    closing.enabled = false;
    closing.updated = 2;
    graph.update_policy(&id(2), node(2), closing).unwrap();
    assert!(matches!(
        route(&graph, &scorer, 1, 3, 10),
        Err(RouteError::NoRoute(_))
    ));
    // The other direction still works.
    assert!(route(&graph, &scorer, 3, 1, 10).is_ok());
}

#[test]
fn a_node_forwards_across_chains_only_at_an_announced_rate() {
    let mut graph = Graph::new();
    connect_in(&mut graph, 1, 1, 2, 1_000_000, &policy(0, 0, 900), ETH);
    connect_in(
        &mut graph,
        2,
        2,
        3,
        1_000_000,
        &policy(5, 0, 900),
        OTHER_CHAIN,
    );
    let scorer = Scorer::default();
    assert!(matches!(
        route(&graph, &scorer, 1, 3, 1_000),
        Err(RouteError::NoRoute(_))
    ));

    // The hub takes 3 units on chain 1 for every 2 it pays on chain 10.
    let mut hub = policy(5, 0, 900);
    hub.rates = vec![(ETH, Rate::new(U256::from(3), U256::from(2)).unwrap())];
    hub.updated = 2;
    graph.update_policy(&id(2), node(2), hub).unwrap();
    let found = route(&graph, &scorer, 1, 3, 1_000).unwrap();
    assert_eq!(found.hops[0].asset, ETH);
    assert_eq!(found.hops[1].asset, OTHER_CHAIN);
    // (1,000 + 5) × 3 / 2, rounded up.
    assert_eq!(found.sent(), U256::from(1_508));

    let params = RouteParams {
        payee_asset: Some(ETH),
        ..RouteParams::default()
    };
    assert!(matches!(
        find_route(
            &graph,
            &scorer,
            node(1),
            node(3),
            U256::from(1_000),
            &params,
            NOW
        ),
        Err(RouteError::NoRoute(_))
    ));
}

#[test]
fn a_circular_route_returns_to_the_payer() {
    let mut graph = Graph::new();
    connect(&mut graph, 1, 1, 2, 1_000_000, &policy(1, 0, 100));
    connect(&mut graph, 2, 2, 3, 1_000_000, &policy(1, 0, 100));
    connect(&mut graph, 3, 3, 1, 1_000_000, &policy(1, 0, 100));
    let found = route(&graph, &Scorer::default(), 1, 1, 500).unwrap();
    assert_eq!(found.hops.len(), 3);
    assert_eq!(found.hops[0].from, node(1));
    assert_eq!(found.hops[2].to, node(1));
    assert_eq!(found.sent(), U256::from(502));
    // Told which channels to leave and return by.
    let params = RouteParams {
        first_channel: Some(id(3)),
        last_channel: Some(id(1)),
        ..RouteParams::default()
    };
    let found = find_route(
        &graph,
        &Scorer::default(),
        node(1),
        node(1),
        U256::from(500),
        &params,
        NOW,
    )
    .unwrap();
    let channels: Vec<_> = found.hops.iter().map(|hop| hop.channel).collect();
    assert_eq!(channels, vec![id(3), id(2), id(1)]);
    // Leaving and returning by one channel is not a route.
    let params = RouteParams {
        first_channel: Some(id(1)),
        last_channel: Some(id(1)),
        ..RouteParams::default()
    };
    assert!(matches!(
        find_route(
            &graph,
            &Scorer::default(),
            node(1),
            node(1),
            U256::from(500),
            &params,
            NOW
        ),
        Err(RouteError::NoRoute(_))
    ));
}

#[test]
fn the_hop_limit_and_lifetime_bound_the_route() {
    let mut graph = Graph::new();
    for n in 1..=5u8 {
        connect(&mut graph, n, n, n + 1, 1_000_000, &policy(0, 0, 1_000));
    }
    let scorer = Scorer::default();
    assert_eq!(route(&graph, &scorer, 1, 6, 10).unwrap().hops.len(), 5);
    let mut params = RouteParams {
        max_hops: 4,
        ..RouteParams::default()
    };
    assert!(matches!(
        find_route(
            &graph,
            &scorer,
            node(1),
            node(6),
            U256::from(10),
            &params,
            NOW
        ),
        Err(RouteError::NoRoute(_))
    ));
    params.max_hops = 5;
    // Four deltas of 1,000 s on top of the final lifetime.
    params.max_lifetime = params.final_lifetime + 3_999;
    assert!(matches!(
        find_route(
            &graph,
            &scorer,
            node(1),
            node(6),
            U256::from(10),
            &params,
            NOW
        ),
        Err(RouteError::NoRoute(_))
    ));
    params.max_lifetime += 1;
    assert!(find_route(
        &graph,
        &scorer,
        node(1),
        node(6),
        U256::from(10),
        &params,
        NOW
    )
    .is_ok());
}

#[test]
fn the_payers_own_liquidity_is_known_exactly() {
    let mut graph = Graph::new();
    connect(&mut graph, 1, 1, 2, 1_000_000, &policy(0, 0, 100));
    connect(&mut graph, 2, 2, 3, 1_000_000, &policy(0, 0, 100));
    let mut scorer = Scorer::default();
    scorer.set_local(id(1), 0, U256::from(400));
    assert!(route(&graph, &scorer, 1, 3, 400).is_ok());
    assert!(matches!(
        route(&graph, &scorer, 1, 3, 401),
        Err(RouteError::NoRoute(_))
    ));
}

#[test]
fn the_graph_refuses_bad_updates() {
    let mut graph = Graph::new();
    connect(&mut graph, 1, 1, 2, 1_000, &policy(0, 0, 100));
    assert_eq!(
        graph.update_policy(&id(1), node(1), policy(5, 0, 100)),
        Err(GraphError::Stale { got: 1, held: 1 })
    );
    assert_eq!(
        graph.update_policy(&id(1), node(9), policy(5, 0, 100)),
        Err(GraphError::NotANode(node(9)))
    );
    assert_eq!(
        graph.update_policy(&id(7), node(1), policy(5, 0, 100)),
        Err(GraphError::UnknownChannel(id(7)))
    );
    let conflicting = Channel {
        id: id(1),
        asset: OTHER_CHAIN,
        nodes: [node(1), node(2)],
        capacity: U256::from(1_000),
    };
    assert_eq!(
        graph.add_channel(conflicting),
        Err(GraphError::Conflict(id(1)))
    );
    let looped = Channel {
        id: id(3),
        asset: ETH,
        nodes: [node(1), node(1)],
        capacity: U256::from(1),
    };
    assert_eq!(graph.add_channel(looped), Err(GraphError::SelfLoop));
    graph.remove_channel(&id(1)).unwrap();
    assert_eq!(graph.channel_count(), 0);
    assert!(matches!(
        route(&graph, &Scorer::default(), 1, 2, 1),
        Err(RouteError::NoRoute(_))
    ));
    // A slot freed by a closed channel is reused.
    connect(&mut graph, 4, 2, 3, 1_000, &policy(0, 0, 100));
    assert!(route(&graph, &Scorer::default(), 2, 3, 1).is_ok());
}

type Spec = (u8, u8, u64, u64, u32, u64, bool);

fn graph_from(nodes: u8, specs: &[Spec]) -> Graph {
    let mut graph = Graph::new();
    for (n, &(a, b, capacity, base, ppm, delta, enabled)) in specs.iter().enumerate() {
        let (a, b) = (a % nodes + 1, b % nodes + 1);
        if a == b {
            continue;
        }
        let mut p = policy(base, ppm, delta);
        p.enabled = enabled;
        let id = B256::left_padding_from(&(n as u64 + 1).to_be_bytes());
        graph
            .add_channel(Channel {
                id,
                asset: ETH,
                nodes: [node(a), node(b)],
                capacity: U256::from(capacity),
            })
            .unwrap();
        graph.update_policy(&id, node(a), p.clone()).unwrap();
        graph.update_policy(&id, node(b), p).unwrap();
    }
    graph
}

proptest! {
    /// Whatever route is found is one connected walk from payer to payee, within every
    /// capacity and limit, using no channel twice, and every forwarding node accepts its lock.
    #[test]
    fn every_route_found_is_one_the_hops_accept(
        nodes in 3u8..12,
        specs in prop::collection::vec((0u8..12, 0u8..12, 1u64..1_000_000, 0u64..1_000, 0u32..20_000, 0u64..2_000, prop::bool::weighted(0.9)), 1..40),
        from in 0u8..12,
        to in 0u8..12,
        amount in 1u64..200_000,
    ) {
        let graph = graph_from(nodes, &specs);
        let (from, to) = (from % nodes + 1, to % nodes + 1);
        let params = RouteParams { max_hops: 6, ..RouteParams::default() };
        let found = match find_route(&graph, &Scorer::default(), node(from), node(to), U256::from(amount), &params, NOW) {
            Ok(found) => found,
            Err(RouteError::NoRoute(_) | RouteError::UnknownNode(_)) => return Ok(()),
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        };
        prop_assert!(!found.hops.is_empty() && found.hops.len() <= 6);
        prop_assert_eq!(found.hops[0].from, node(from));
        prop_assert_eq!(found.hops.last().unwrap().to, node(to));
        prop_assert_eq!(found.locks.last().unwrap().amount, U256::from(amount));
        let mut used = HashSet::new();
        for (i, hop) in found.hops.iter().enumerate() {
            prop_assert!(used.insert(hop.channel), "channel used twice");
            prop_assert!(found.locks[i].amount <= graph.channel(&hop.channel).unwrap().capacity);
            if i > 0 {
                prop_assert_eq!(found.hops[i - 1].to, hop.from);
                let policy = graph.policy(&hop.channel, hop.from).unwrap();
                prop_assert!(policy.enabled);
                let incoming = Lock { expiration: found.locks[i - 1].expiration, amount: found.locks[i - 1].amount, secret_hash: B256::ZERO };
                let instruction = ForwardInstruction { next_chain_id: 1, next_channel: hop.channel, amount: found.locks[i].amount, expiration: found.locks[i].expiration };
                let rules = policy.hop_policy(ETH, ETH).unwrap();
                prop_assert_eq!(rules, found.forwarders[i - 1]);
                check_forward(&incoming, &instruction, &rules, NOW, 0).unwrap();
            }
        }
    }
}
