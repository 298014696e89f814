//! Properties of every plan, over random channels, policies, graphs, gas prices and budgets:
//! never above budget (also with planners running concurrently on one ledger), never more than
//! a channel or the wallet holds, never two actions on one channel within its cooldown, and a
//! reason and a sentence for every action and every channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keel_policy::{
    plan, ActionKind, Amount, BudgetLedger, ChainId, Channel, ChannelId, ChannelPolicy, Config,
    Edge, Fee, GasTable, Graph, Inputs, NodeId, Plan,
};
use proptest::prelude::*;

const NOW: u64 = 100_000;

#[derive(Debug, Clone)]
struct Case {
    channels: Vec<Channel>,
    graph_edges: Vec<(u32, u32, Amount, u32, Amount)>,
    nodes: u32,
    gas_price: Amount,
    wallet: Amount,
    node_budget: Amount,
    /// Share of routing earnings the node may spend (ppm), and what it earned.
    earnings: (u32, Amount),
}

impl Case {
    fn ledger(&self) -> BudgetLedger {
        let ledger =
            BudgetLedger::new(86_400, self.node_budget).with_earnings_share(self.earnings.0);
        ledger.earned(self.earnings.1, NOW).expect("no overflow");
        ledger
    }

    /// The most the node may spend: its fixed budget plus its share of earnings.
    fn node_allowance(&self) -> Amount {
        self.node_budget
            .saturating_add(self.earnings.1 * Amount::from(self.earnings.0) / 1_000_000)
    }
}

fn policy() -> impl Strategy<Value = ChannelPolicy> {
    (
        0u32..=1_000_000,
        0u32..=1_000_000,
        0u32..=1_000_000,
        0u128..5_000,
        0u32..200_000,
        prop_oneof![Just(u128::MAX), 0u128..200_000, 0u128..2_000],
        0u64..20_000,
        0u32..500_000,
        any::<bool>(),
    )
        .prop_map(
            |(a, b, c, min_amount, max_fee_ppm, budget, cooldown, value, withdraw_idle)| {
                let mut t = [a, b, c];
                t.sort();
                ChannelPolicy {
                    low_ppm: t[0],
                    target_local_ppm: t[1],
                    high_ppm: t[2],
                    min_amount,
                    max_fee_ppm,
                    budget_per_period: budget,
                    cooldown_secs: cooldown,
                    value_ppm: value,
                    withdraw_idle,
                }
            },
        )
}

fn channel(nodes: u32) -> impl Strategy<Value = Channel> {
    (
        1u128..10_000_000,
        0u32..=1_000_000,
        0u32..=100_000,
        1..nodes,
        // No demand, a trickle (too little to repay most actions), or real demand.
        prop_oneof![Just(0u128), 1u128..2_000, 0u128..20_000_000],
        prop_oneof![Just(0u128), 0u128..5_000_000],
        prop::option::of(80_000u64..NOW),
        1u64..3,
        policy(),
        0u32..3_000,
    )
        .prop_map(
            move |(
                capacity,
                local_ppm,
                pending_ppm,
                peer,
                flow_out,
                failed,
                last,
                chain,
                policy,
                fee,
            )| {
                let pending_out = capacity * u128::from(pending_ppm) / 1_000_000;
                let rest = capacity - pending_out;
                let local = rest * u128::from(local_ppm) / 1_000_000;
                Channel {
                    id: ChannelId(0),
                    chain: ChainId(chain),
                    peer: NodeId(peer),
                    capacity,
                    local,
                    remote: rest - local,
                    pending_out,
                    pending_in: 0,
                    flow_out,
                    flow_in: 0,
                    failed_out: failed,
                    peer_fee: Fee {
                        base: u128::from(fee),
                        ppm: fee,
                    },
                    last_action: last,
                    policy,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (3u32..12).prop_flat_map(|nodes| {
        (
            prop::collection::vec(channel(nodes), 0..10),
            prop::collection::vec(
                (
                    1..nodes,
                    1..nodes,
                    1u128..20_000_000,
                    0u32..3_000,
                    0u128..100,
                ),
                0..40,
            ),
            Just(nodes),
            prop_oneof![Just(0u128), 0u128..3],
            0u128..20_000_000,
            prop_oneof![Just(u128::MAX), 0u128..300_000, 0u128..3_000, Just(0u128)],
            (
                prop_oneof![Just(0u32), 0u32..=2_000_000],
                prop_oneof![Just(0u128), 0u128..300_000],
            ),
        )
            .prop_map(
                |(mut channels, graph_edges, nodes, gas_price, wallet, node_budget, earnings)| {
                    for (i, c) in channels.iter_mut().enumerate() {
                        c.id = ChannelId(i as u64);
                    }
                    Case {
                        channels,
                        graph_edges,
                        nodes,
                        gas_price,
                        wallet,
                        node_budget,
                        earnings,
                    }
                },
            )
    })
}

fn graph(case: &Case) -> Graph {
    let mut g = Graph::new(case.nodes as usize);
    for &(a, b, capacity, ppm, base) in &case.graph_edges {
        if a != b {
            g.add_edge(Edge {
                from: NodeId(a),
                to: NodeId(b),
                fee: Fee { base, ppm },
                capacity,
            });
        }
    }
    for c in &case.channels {
        for (from, to) in [(0, c.peer.0), (c.peer.0, 0)] {
            g.add_edge(Edge {
                from: NodeId(from),
                to: NodeId(to),
                fee: c.peer_fee,
                capacity: c.capacity,
            });
        }
    }
    g
}

fn run(case: &Case, graph: &Graph, ledger: &BudgetLedger) -> Plan {
    run_at(case, graph, ledger, NOW)
}

fn run_at(case: &Case, graph: &Graph, ledger: &BudgetLedger, now: u64) -> Plan {
    let gas_price = BTreeMap::from([(ChainId(1), case.gas_price), (ChainId(2), case.gas_price)]);
    let wallet = BTreeMap::from([(ChainId(1), case.wallet)]);
    let inputs = Inputs {
        me: NodeId(0),
        channels: &case.channels,
        graph,
        gas_price: &gas_price,
        gas: GasTable::ETH,
        wallet: &wallet,
        now,
        liquidity: None,
    };
    plan(&inputs, &Config::default(), ledger).expect("valid inputs plan")
}

fn check_plan(case: &Case, p: &Plan) -> Result<(), TestCaseError> {
    let by_id: BTreeMap<ChannelId, &Channel> = case.channels.iter().map(|c| (c.id, c)).collect();
    // Every channel has exactly one decision, every decision and action a reason and sentence.
    prop_assert_eq!(p.decisions.len(), case.channels.len());
    for (d, c) in p.decisions.iter().zip(&case.channels) {
        prop_assert_eq!(d.channel, c.id);
        prop_assert!(!d.sentence.is_empty() && !d.reason.code().is_empty());
    }
    let mut touched = BTreeSet::new();
    let mut per_budget: BTreeMap<ChannelId, Amount> = BTreeMap::new();
    let mut top_ups: Amount = 0;
    for a in &p.actions {
        prop_assert!(!a.sentence.is_empty() && !a.reason.code().is_empty());
        prop_assert!(a.amount > 0);
        // Never two actions on one channel, never one on a channel cooling down.
        for ch in a.kind.channels() {
            prop_assert!(touched.insert(ch), "channel {} in two actions", ch);
            prop_assert!(!by_id[&ch].cooling_down(NOW), "channel {} cooling down", ch);
        }
        // Never more than a channel (or the wallet) holds.
        match &a.kind {
            ActionKind::Circular { from, .. } => {
                prop_assert!(a.amount + a.cost <= by_id[from].local);
            }
            ActionKind::Move { from, to } => {
                prop_assert!(a.amount <= by_id[from].local);
                prop_assert_eq!(by_id[from].chain, by_id[to].chain);
            }
            ActionKind::Withdraw { channel } => prop_assert!(a.amount <= by_id[channel].local),
            ActionKind::TopUp { channel } => {
                prop_assert_eq!(by_id[channel].chain, ChainId(1));
                top_ups += a.amount;
            }
        }
        // Only where it pays for itself (withdrawals free capital, they earn nothing).
        if !matches!(a.kind, ActionKind::Withdraw { .. }) {
            prop_assert!(a.expected_earnings > a.cost);
        }
        *per_budget.entry(a.budget_channel).or_default() += a.cost;
    }
    prop_assert!(top_ups <= case.wallet);
    // Never above budget, per channel and for the node.
    for (ch, spent) in &per_budget {
        prop_assert!(*spent <= by_id[ch].policy.budget_per_period);
    }
    prop_assert!(p.total_cost() <= case.node_allowance());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_plan_keeps_the_rules(case in case()) {
        let g = graph(&case);
        let ledger = case.ledger();
        let p = run(&case, &g, &ledger);
        check_plan(&case, &p)?;
    }

    #[test]
    fn concurrent_planners_never_overspend(case in case()) {
        // Four planners share one ledger and plan at once; none releases, so together their
        // reservations must fit each channel's and the node's budget.
        let g = Arc::new(graph(&case));
        let case = Arc::new(case);
        let ledger = Arc::new(case.ledger());
        let plans: Vec<Plan> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (case, g, ledger) = (case.clone(), g.clone(), ledger.clone());
                    s.spawn(move || run(&case, &g, &ledger))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut per_budget: BTreeMap<ChannelId, Amount> = BTreeMap::new();
        let mut total: Amount = 0;
        for p in &plans {
            check_plan(&case, p)?;
            for a in &p.actions {
                *per_budget.entry(a.budget_channel).or_default() += a.cost;
                total += a.cost;
            }
        }
        for (ch, spent) in &per_budget {
            let budget = case.channels[ch.0 as usize].policy.budget_per_period;
            prop_assert!(*spent <= budget, "channel {} spent {} of {}", ch, spent, budget);
        }
        prop_assert!(total <= case.node_allowance());
    }

    #[test]
    fn committing_and_releasing_never_lets_the_node_spend_more_than_granted(
        case in case(),
        keep in prop::collection::vec(0u32..=1_000_000, 1..40),
        rounds in 1usize..4,
    ) {
        // Planners run in rounds, with earnings credited and periods passing between them;
        // each action is committed at a share of its reservation (`keep`) or released. What
        // was committed over all rounds never exceeds the fixed budget of each period plus the
        // share of everything earned.
        let g = graph(&case);
        let ledger = case.ledger();
        let mut committed: Amount = 0;
        let mut k = 0;
        for round in 0..rounds {
            let now = NOW + 86_400 * round as u64;
            if round > 0 {
                ledger.earned(case.earnings.1, now).unwrap();
            }
            let p = run_at(&case, &g, &ledger, now);
            for a in &p.actions {
                let share = keep[k % keep.len()];
                k += 1;
                if share == 0 {
                    ledger.release(a.reservation, now).unwrap();
                } else {
                    let actual = a.cost * Amount::from(share) / 1_000_000;
                    ledger.commit(a.reservation, actual, now).unwrap();
                    committed += actual;
                }
            }
        }
        let rounds = rounds as u128;
        let granted = case
            .node_budget
            .saturating_mul(rounds)
            .saturating_add(case.earnings.1 * rounds * Amount::from(case.earnings.0) / 1_000_000);
        prop_assert!(committed <= granted, "committed {} of {}", committed, granted);
    }
}

#[test]
fn budget_resets_each_period_but_reservations_in_flight_still_count() {
    let ledger = BudgetLedger::new(100, 1_000);
    let c = ChannelId(1);
    let r = ledger.reserve(c, 600, 500, 0).unwrap();
    assert!(ledger.reserve(c, 600, 200, 50).is_err());
    ledger.commit(r, 400, 60).unwrap();
    assert_eq!(ledger.available(c, 600, 60), 200);
    let held = ledger.reserve(c, 600, 150, 99).unwrap();
    // A new period forgets the 400 spent, not the 150 still reserved.
    assert_eq!(ledger.available(c, 600, 100), 450);
    ledger.release(held, 100).unwrap();
    assert_eq!(ledger.available(c, 600, 100), 600);
    assert!(ledger.commit(held, 0, 100).is_err());
}

#[test]
fn earnings_fund_tops_up_the_period_budget_and_carries_over() {
    // 100 a period, plus half of what routing earned.
    let ledger = BudgetLedger::new(100, 100).with_earnings_share(500_000);
    let c = ChannelId(1);
    ledger.earned(300, 0).unwrap();
    assert_eq!(ledger.available(c, u128::MAX, 0), 250);
    assert!(ledger.reserve(c, u128::MAX, 251, 0).is_err());
    // 100 from the period, 80 from the fund; the action costs 120 in the end: the saving goes
    // back to the fund.
    let r = ledger.reserve(c, u128::MAX, 180, 0).unwrap();
    ledger.commit(r, 120, 10).unwrap();
    assert_eq!(ledger.available(c, u128::MAX, 10), 130);
    // A new period restores the fixed budget, not what the fund spent.
    assert_eq!(ledger.available(c, u128::MAX, 100), 230);
    // A channel's own budget still caps it.
    assert_eq!(ledger.available(c, 50, 100), 50);
    let r = ledger.reserve(c, u128::MAX, 230, 100).unwrap();
    ledger.release(r, 100).unwrap();
    assert_eq!(ledger.available(c, u128::MAX, 100), 230);
}

/// The properties above mean something only if random cases do produce actions of every kind
/// and decisions of the main reasons; count them over 400 generated cases.
#[test]
fn random_cases_reach_every_kind_of_action() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(RunnerConfig::default().rng_algorithm),
    );
    let strategy = case();
    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..400 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let g = graph(&case);
        let ledger = case.ledger();
        let p = run(&case, &g, &ledger);
        for a in &p.actions {
            *kinds.entry(a.kind.code()).or_default() += 1;
        }
        for d in &p.decisions {
            *reasons.entry(d.reason.code()).or_default() += 1;
        }
    }
    for kind in ["circular", "move", "top_up", "withdraw"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) >= 5,
            "{kind}: {kinds:?}"
        );
    }
    for reason in [
        "nothing_to_do",
        "depleted",
        "cooling_down",
        "not_worth_it",
        "no_demand",
        "over_budget",
        "no_affordable_cycle",
    ] {
        assert!(
            reasons.get(reason).copied().unwrap_or(0) >= 3,
            "{reason}: {reasons:?}"
        );
    }
}
