//! A payment over a network whose balances the payer cannot see: each failure teaches the
//! scorer or removes a channel from the payment, no route is tried twice, and the attempts are
//! bounded.

use std::collections::{HashMap, HashSet};

use keel_core::{forwarding::FeePolicy, Address, B256, U256};
use keel_routing::{
    Asset, Channel, DirectionPolicy, Failure, Graph, PaymentError, PaymentSession, Route,
    RouteParams, Scorer,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn node(n: u8) -> Address {
    Address::repeat_byte(n)
}

/// A graph plus the balances only the network knows: `(channel, direction) -> balance`.
struct Network {
    graph: Graph,
    balances: HashMap<(B256, u8), U256>,
}

impl Network {
    fn new() -> Self {
        Self {
            graph: Graph::new(),
            balances: HashMap::new(),
        }
    }

    fn connect(&mut self, n: u64, a: u8, b: u8, capacity: u64, a_side: u64, fee: u64) {
        let id = B256::left_padding_from(&n.to_be_bytes());
        self.graph
            .add_channel(Channel {
                id,
                asset: Asset {
                    chain_id: 1,
                    token: Address::ZERO,
                },
                nodes: [node(a), node(b)],
                capacity: U256::from(capacity),
            })
            .unwrap();
        for from in [a, b] {
            let policy = DirectionPolicy {
                fee: FeePolicy {
                    base: U256::from(fee),
                    proportional_millionths: 0,
                },
                expiry_delta: 100,
                enabled: true,
                updated: 1,
                ..DirectionPolicy::default()
            };
            self.graph.update_policy(&id, node(from), policy).unwrap();
        }
        self.balances
            .insert((id, 0), U256::from(a_side.min(capacity)));
        self.balances
            .insert((id, 1), U256::from(capacity - a_side.min(capacity)));
    }

    /// What sending `route` does: the first hop without the balance fails it.
    fn send(&self, route: &Route) -> Result<(), Failure> {
        for (hop, (h, lock)) in route.hops.iter().zip(&route.locks).enumerate() {
            if self.balances[&(h.channel, h.direction)] < lock.amount {
                return Err(Failure::Liquidity { hop });
            }
        }
        Ok(())
    }
}

fn pay(
    net: &Network,
    scorer: &mut Scorer,
    from: u8,
    to: u8,
    amount: u64,
    max: usize,
) -> Result<(Route, usize, Vec<Route>), PaymentError> {
    let mut session = PaymentSession::new(
        node(from),
        node(to),
        U256::from(amount),
        RouteParams::default(),
        max,
    );
    let mut tried = Vec::new();
    loop {
        let route = session.next_route(&net.graph, scorer, NOW)?;
        tried.push(route.clone());
        match net.send(&route) {
            Ok(()) => {
                let attempts = session.attempts();
                let outcome = session.succeeded(scorer, &net.graph, route, NOW);
                assert_eq!(outcome.attempts, attempts);
                return Ok((outcome.route, attempts, tried));
            }
            Err(failure) => session.failed(scorer, &net.graph, &route, failure, NOW)?,
        }
    }
}

#[test]
fn a_dry_hop_sends_the_next_attempt_elsewhere_and_the_lesson_stays() {
    let mut net = Network::new();
    // Via 2 is cheaper, but 2 → 4 holds only 100 on 2's side.
    net.connect(1, 1, 2, 10_000, 10_000, 1);
    net.connect(2, 2, 4, 10_000, 100, 1);
    net.connect(3, 1, 3, 10_000, 10_000, 50);
    net.connect(4, 3, 4, 10_000, 10_000, 50);
    let mut scorer = Scorer::default();
    let (route, attempts, tried) = pay(&net, &mut scorer, 1, 4, 1_000, 5).unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(tried[0].hops[1].to, node(4));
    assert_eq!(tried[0].hops[0].to, node(2));
    assert_eq!(route.hops[0].to, node(3));
    // The next payment of that size goes the working way at once.
    let (_, attempts, _) = pay(&net, &mut scorer, 1, 4, 1_000, 5).unwrap();
    assert_eq!(attempts, 1);
}

#[test]
fn a_refusing_hop_is_left_out_and_attempts_are_bounded() {
    let mut net = Network::new();
    net.connect(1, 1, 2, 10_000, 10_000, 1);
    net.connect(2, 2, 4, 10_000, 10_000, 1);
    let mut scorer = Scorer::default();
    let mut session =
        PaymentSession::new(node(1), node(4), U256::from(10), RouteParams::default(), 3);
    let route = session.next_route(&net.graph, &scorer, NOW).unwrap();
    assert!(matches!(
        session.failed(
            &mut scorer,
            &net.graph,
            &route,
            Failure::Refused { hop: 7 },
            NOW
        ),
        Err(PaymentError::NoSuchHop { hop: 7, hops: 2 })
    ));
    session
        .failed(
            &mut scorer,
            &net.graph,
            &route,
            Failure::Refused { hop: 1 },
            NOW,
        )
        .unwrap();
    assert!(matches!(
        session.next_route(&net.graph, &scorer, NOW),
        Err(PaymentError::NoRoute(_))
    ));

    let mut once = PaymentSession::new(node(1), node(4), U256::from(10), RouteParams::default(), 1);
    let route = once.next_route(&net.graph, &scorer, NOW).unwrap();
    once.failed(
        &mut scorer,
        &net.graph,
        &route,
        Failure::Liquidity { hop: 0 },
        NOW,
    )
    .unwrap();
    assert_eq!(
        once.next_route(&net.graph, &scorer, NOW),
        Err(PaymentError::AttemptsExhausted(1))
    );
}

proptest! {
    /// On random networks with hidden balances: no route is tried twice, attempts stay within
    /// the bound, and a route reported as delivered had the balance on every hop.
    #[test]
    fn no_route_is_tried_twice(
        channels in prop::collection::vec((0u8..8, 0u8..8, 1u64..100_000, 0u64..100_000, 0u64..100), 4..30),
        amount in 1u64..50_000,
        from in 0u8..8,
        to in 0u8..8,
    ) {
        let mut net = Network::new();
        for (n, &(a, b, capacity, a_side, fee)) in channels.iter().enumerate() {
            if a % 8 != b % 8 {
                net.connect(n as u64 + 1, a % 8 + 1, b % 8 + 1, capacity, a_side, fee);
            }
        }
        let mut scorer = Scorer::default();
        match pay(&net, &mut scorer, from % 8 + 1, to % 8 + 1, amount, 12) {
            Ok((route, attempts, tried)) => {
                prop_assert!(attempts <= 12);
                prop_assert!(net.send(&route).is_ok());
                let distinct: HashSet<Vec<B256>> = tried.iter().map(|r| r.hops.iter().map(|h| h.channel).collect()).collect();
                prop_assert_eq!(distinct.len(), tried.len(), "a route was tried twice");
            }
            Err(PaymentError::NoRoute(_) | PaymentError::AttemptsExhausted(_)) => {}
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        }
    }
}
