//! Worked cases: each kind of action and each reason for not acting.

use std::collections::BTreeMap;

use keel_policy::{
    plan, ActionKind, BudgetLedger, ChainId, Config, Fee, GasTable, Inputs, Liquidity, NodeId,
    Reason,
};

use crate::{channel, ring, World};

fn world(locals: &[u128]) -> World {
    World {
        channels: locals
            .iter()
            .enumerate()
            .map(|(i, &l)| channel(i as u64, i as u32 + 1, 1_000_000, l))
            .collect(),
        graph: ring(locals.len() as u32, 10_000_000, Fee { base: 0, ppm: 100 }),
        gas_price: BTreeMap::from([(ChainId(1), 1)]),
        wallet: BTreeMap::new(),
        gas: GasTable::ETH,
    }
}

fn run(w: &World, ledger: &BudgetLedger) -> keel_policy::Plan {
    run_knowing(w, ledger, None, 10_000)
}

fn run_knowing(
    w: &World,
    ledger: &BudgetLedger,
    liquidity: Option<&Liquidity>,
    now: u64,
) -> keel_policy::Plan {
    let inputs = Inputs {
        me: NodeId(0),
        channels: &w.channels,
        graph: &w.graph,
        gas_price: &w.gas_price,
        gas: w.gas,
        wallet: &w.wallet,
        now,
        liquidity,
    };
    plan(&inputs, &Config::default(), ledger).unwrap()
}

#[test]
fn circular_rebalance_when_the_cycle_is_cheapest() {
    // Gas of 68,790 on 400,000 is 17 % of the amount: only the cycle (200 ppm) is affordable.
    let w = world(&[100_000, 900_000]);
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&w, &ledger);
    assert_eq!(p.actions.len(), 1, "{p:#?}");
    let a = &p.actions[0];
    assert!(matches!(a.kind, ActionKind::Circular { .. }), "{a:#?}");
    assert_eq!(a.amount, 400_000);
    assert_eq!(a.reason, Reason::Depleted);
    assert_eq!(p.decisions[0].reason, Reason::Depleted);
    assert_eq!(p.decisions[1].reason, Reason::Source);
}

fn circular_edges(p: &keel_policy::Plan) -> Vec<u32> {
    match &p.actions[0].kind {
        ActionKind::Circular { edges, .. } => edges.clone(),
        other => panic!("not circular: {other:?}"),
    }
}

#[test]
fn a_cycle_that_failed_is_not_retried_until_the_lesson_fades() {
    // Peers 1, 2, 3 in a ring: from peer 2 back to peer 1 directly, or round through peer 3.
    let w = world(&[100_000, 900_000, 500_000]);
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let first = run_knowing(&w, &ledger, None, 10_000);
    first.release(&ledger, 10_000).unwrap();
    let direct = circular_edges(&first);
    assert_eq!(direct.len(), 1, "{first:#?}");
    // The direct hop could not carry the amount: the next plan goes round the other way.
    let mut learned = Liquidity::new(3_600);
    learned.failed(direct[0], 10_000_000, first.actions[0].amount, 10_000);
    let second = run_knowing(&w, &ledger, Some(&learned), 10_100);
    second.release(&ledger, 10_100).unwrap();
    let round = circular_edges(&second);
    assert_eq!(round.len(), 2, "{second:#?}");
    assert!(!round.contains(&direct[0]));
    // Without another way round, the failed cycle is not planned at all.
    let mut both = learned.clone();
    both.failed(round[0], 10_000_000, second.actions[0].amount, 10_100);
    let third = run_knowing(&w, &ledger, Some(&both), 10_200);
    assert!(third.actions.is_empty(), "{third:#?}");
    assert_eq!(third.decisions[0].reason, Reason::TooExpensive);
    // Days later the lessons have faded and the direct cycle is tried again.
    let later = run_knowing(&w, &ledger, Some(&both), 10_200 + 3_600 * 40);
    assert_eq!(circular_edges(&later), direct);
}

#[test]
fn withdraw_into_when_gas_is_cheaper_than_fees() {
    let mut w = world(&[100_000, 900_000]);
    w.graph = ring(
        2,
        10_000_000,
        Fee {
            base: 0,
            ppm: 2_000,
        },
    );
    w.gas_price = BTreeMap::from([(ChainId(1), 0)]);
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&w, &ledger);
    // Gas at price 0 costs nothing, which earnings (positive) exceed.
    assert!(
        matches!(p.actions[0].kind, ActionKind::Move { .. }),
        "{p:#?}"
    );
}

#[test]
fn top_up_from_the_wallet_when_no_channel_has_surplus() {
    let mut w = world(&[100_000, 500_000]);
    w.wallet = BTreeMap::from([(ChainId(1), 10_000_000)]);
    w.channels[0].policy.max_fee_ppm = 100_000;
    w.channels[0].policy.value_ppm = 100_000;
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&w, &ledger);
    assert!(
        matches!(p.actions[0].kind, ActionKind::TopUp { .. }),
        "{p:#?}"
    );
    // Recent demand (the whole capacity per window) would use far more than the 400,000 to the
    // target, so the one transaction brings as much as leaves the channel at its high share:
    // (100,000 + 3,500,000) / (1,000,000 + 3,500,000) = 80 %.
    assert_eq!(p.actions[0].amount, 3_500_000);
    assert_eq!(p.decisions[1].reason, Reason::Balanced);
    assert_eq!(p.decisions[1].reason.code(), "nothing_to_do");
}

#[test]
fn a_top_up_brings_what_demand_uses_and_at_least_the_target() {
    let mut w = world(&[100_000, 500_000]);
    w.wallet = BTreeMap::from([(ChainId(1), 10_000_000)]);
    w.channels[0].policy.max_fee_ppm = 100_000;
    w.channels[0].policy.value_ppm = 100_000;
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    // Demand of 150,000 per window over the default horizon of 4 windows: 600,000, between
    // the 400,000 the target needs and the 3,500,000 the high share allows.
    w.channels[0].flow_out = 150_000;
    let p = run(&w, &ledger);
    assert_eq!(p.actions.len(), 1, "{p:#?}");
    assert_eq!(p.actions[0].amount, 600_000, "{p:#?}");
    // Demand below what the target needs (and worth more, so the top-up still pays): the
    // target decides.
    w.channels[0].flow_out = 50_000;
    w.channels[0].policy.value_ppm = 500_000;
    let p = run(&w, &ledger);
    assert_eq!(p.actions[0].amount, 400_000, "{p:#?}");
}

#[test]
fn nothing_to_do_no_affordable_cycle_over_budget_not_worth_it_cooling_down() {
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&world(&[500_000, 500_000]), &ledger);
    assert!(p.actions.is_empty());
    assert!(p.decisions.iter().all(|d| d.reason == Reason::Balanced));

    let mut w = world(&[100_000, 900_000]);
    w.channels[0].policy.max_fee_ppm = 10;
    let p = run(&w, &ledger);
    assert_eq!(p.decisions[0].reason, Reason::NoAffordableCycle, "{p:#?}");

    let mut w = world(&[100_000, 900_000]);
    w.channels[0].policy.budget_per_period = 1;
    let p = run(&w, &ledger);
    assert_eq!(p.decisions[0].reason, Reason::OverBudget, "{p:#?}");

    let mut w = world(&[100_000, 900_000]);
    w.channels[0].flow_out = 1;
    let p = run(&w, &ledger);
    assert_eq!(p.decisions[0].reason, Reason::NotWorthIt, "{p:#?}");

    let mut w = world(&[100_000, 900_000]);
    w.channels[0].flow_out = 0;
    let p = run(&w, &ledger);
    assert_eq!(p.decisions[0].reason, Reason::NoDemand, "{p:#?}");
    assert_eq!(p.decisions[0].reason.code(), "no_demand");

    let mut w = world(&[100_000, 900_000]);
    w.channels[0].last_action = Some(9_000);
    let p = run(&w, &ledger);
    assert_eq!(p.decisions[0].reason, Reason::CoolingDown, "{p:#?}");
    assert!(p.decisions.iter().all(|d| !d.sentence.is_empty()));
}

#[test]
fn idle_surplus_goes_back_to_the_wallet() {
    let mut w = world(&[950_000]);
    w.channels[0].flow_out = 0;
    w.channels[0].policy.max_fee_ppm = 500_000;
    w.channels[0].policy.withdraw_idle = true;
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&w, &ledger);
    assert!(
        matches!(p.actions[0].kind, ActionKind::Withdraw { .. }),
        "{p:#?}"
    );
    assert_eq!(p.actions[0].amount, 450_000);
    assert_eq!(p.decisions[0].reason, Reason::IdleSurplus);
}

#[test]
fn a_plan_not_executed_gives_its_budget_back() {
    let mut w = world(&[100_000, 900_000]);
    w.channels[0].policy.budget_per_period = 100;
    let ledger = BudgetLedger::new(86_400, u128::MAX);
    let p = run(&w, &ledger);
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.decisions[0].reason, Reason::Depleted);
    // A second planner sees the first one's reservation.
    let q = run(&w, &ledger);
    assert_eq!(q.decisions[0].reason, Reason::OverBudget, "{q:#?}");
    p.release(&ledger, 10_000).unwrap();
    let r = run(&w, &ledger);
    assert_eq!(r.decisions[0].reason, Reason::Depleted);
}
