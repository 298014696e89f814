//! keel-sim integration tests, at a reduced size (seconds in a debug build).

use std::path::{Path, PathBuf};

use keel_sim::{lp, plot, Generate, Kind, Network, SimConfig, Strategy, Workload};

fn small() -> Network {
    Network::generate(&Generate {
        nodes: 150,
        channels: 600,
        seed: 7,
        ..Generate::default()
    })
    .unwrap()
}

fn workload(net: &Network, kind: Kind, payments: usize) -> (Workload, SimConfig) {
    let e = net.median_capacity() / 10;
    (
        Workload {
            kind,
            payments,
            expected_amount: e,
            rate: 1.0,
            sink_share: 0.1,
            sink_bias: 0.8,
            seed: 7,
        },
        SimConfig {
            expected_amount: e,
            ..SimConfig::default()
        },
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-sim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_seed_gives_the_same_network_and_workload() {
    let (a, b) = (small(), small());
    assert_eq!(a.channels.len(), 600);
    assert_eq!(a.node_count(), 150);
    assert_eq!(a.total_capacity(), b.total_capacity());
    let (w, _) = workload(&a, Kind::Directional, 500);
    let (pa, pb) = (w.generate(&a), w.generate(&b));
    assert!(pa
        .iter()
        .zip(&pb)
        .all(|(x, y)| (x.src, x.dst, x.amount) == (y.src, y.dst, y.amount)));
}

#[test]
fn every_strategy_runs_and_keel_beats_no_rebalancing_under_directional_demand() {
    let net = small();
    let (w, cfg) = workload(&net, Kind::Directional, 6_000);
    let payments = w.generate(&net);
    let mut reports = Vec::new();
    for s in Strategy::ALL {
        let r = keel_sim::run(&net, &payments, s, &cfg, &mut |_| {}).unwrap();
        assert_eq!(r.payments, 6_000);
        assert_eq!(r.by_size.iter().map(|b| b.attempted).sum::<u64>(), 6_000);
        assert!(r.every_reason_known(), "{:?}", r.decisions);
        reports.push(r);
    }
    let none = &reports[0];
    let keel = &reports[4];
    // Off-chain strategies move money around, never create or destroy it.
    for r in &reports[..] {
        if r.strategy == "greedy" || r.strategy == "lp" || r.strategy == "none" {
            assert_eq!(
                r.liquidity_locked_end, r.liquidity_locked_start,
                "{}",
                r.strategy
            );
        }
    }
    assert!(
        keel.success_ratio > none.success_ratio,
        "keel {} none {}",
        keel.success_ratio,
        none.success_ratio
    );
    let dir = temp_dir("plots");
    plot::over_time(&reports, "test", &dir.join("t.svg")).unwrap();
    plot::by_size(&reports, "test", &dir.join("s.svg")).unwrap();
    let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("keel"));
    let text = keel_sim::table(&reports);
    assert!(text.contains("| keel |"));
}

#[test]
fn the_lp_conserves_every_nodes_balance() {
    let mut net = small();
    let before = balances(&net);
    let c = lp::revive(&net, 0).unwrap();
    assert!(!c.moves.is_empty());
    lp::apply(&mut net, &c);
    assert_eq!(before, balances(&net));
}

/// The exact circulation finds the simplex's optimum to the base unit on networks small enough
/// for the simplex to count in base units (capacities below 2^40), and never moves more than a
/// channel's excess.
#[test]
fn the_circulation_finds_the_simplex_optimum() {
    for seed in 1..=4 {
        let mut net = Network::generate(&Generate {
            nodes: 60,
            channels: 240,
            median_capacity: 1_000_000_000,
            seed,
        })
        .unwrap();
        // Skew every channel by a different share so most are far from even.
        for (i, ch) in net.channels.iter_mut().enumerate() {
            let cap = ch.capacity();
            let share = ((i as u128 * 37 + seed as u128 * 11) % 100) * cap / 100;
            ch.balance = [share, cap - share];
        }
        let exact = lp::revive(&net, 0).unwrap();
        let simplex = lp::revive_simplex(&net, 0).unwrap();
        let total = |c: &lp::Circulation| c.moves.iter().map(|m| m.2).sum::<u128>();
        assert!(total(&exact) > 0, "seed {seed}: nothing to circulate");
        assert_eq!(total(&exact), total(&simplex), "seed {seed}");
        for &(c, side, x) in &exact.moves {
            let ch = &net.channels[c as usize];
            assert!(x <= ch.balance[side as usize] - ch.capacity() / 2);
        }
        let before = balances(&net);
        lp::apply(&mut net, &exact);
        assert_eq!(before, balances(&net), "seed {seed}");
    }
}

fn balances(net: &Network) -> Vec<u128> {
    let mut b = vec![0u128; net.node_count()];
    for ch in &net.channels {
        b[ch.nodes[0] as usize] += ch.balance[0];
        b[ch.nodes[1] as usize] += ch.balance[1];
    }
    b
}

#[test]
fn a_topology_in_the_snapshot_format_is_read_with_any_node_ids() {
    let dir = temp_dir("snapshot");
    std::fs::write(
        dir.join("channels_ln.csv"),
        "id,edge1_id,edge2_id,node1_id,node2_id,capacity\n7,70,71,100,205,1000\n8,80,81,205,9,500\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("edges_ln.csv"),
        "id,channel_id,counter_edge_id,from_node_id,to_node_id,balance,fee_base,fee_proportional,min_htlc,timelock\n\
         70,7,71,100,205,300,1000,1,1000,144\n71,7,70,205,100,700,0,5,1000,144\n\
         80,8,81,205,9,250,1,1,1000,144\n81,8,80,9,205,250,1,1,1000,144\n",
    )
    .unwrap();
    let net = Network::read_snapshot(&dir).unwrap();
    assert_eq!(net.node_count(), 3);
    assert_eq!(net.channels.len(), 2);
    assert_eq!(net.channels[0].balance, [300, 700]);
    assert_eq!(net.channels[0].fee[1].ppm, 5);
    assert_eq!(net.unit, "msat");
    assert!(Network::read_snapshot(Path::new("/nonexistent")).is_err());
}

#[test]
fn the_lightning_snapshot_reads_whole_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ln-snapshot");
    if !dir.join("channels_ln.csv").exists() {
        return; // The product does not depend on the snapshot; CI machines may lack it.
    }
    let net = Network::read_snapshot(&dir).unwrap();
    assert_eq!(net.channels.len(), 30_457);
    assert!(net.node_count() <= 6_006);
}

/// The command runs strategies on several threads; the results are the same as one at a time,
/// in the same order (only the measured run times differ).
#[test]
fn strategies_run_in_parallel_give_the_same_reports() {
    let run = |jobs: &str| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel-sim"))
            .args([
                "run",
                "--nodes",
                "60",
                "--channels",
                "240",
                "--payments",
                "1500",
                "--strategies",
                "none,threshold,greedy,keel",
                "--json",
                "--jobs",
                jobs,
            ])
            .output()
            .expect("keel-sim runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for report in json["reports"].as_array_mut().unwrap() {
            report.as_object_mut().unwrap().remove("runtime_secs");
        }
        json
    };
    let (serial, parallel) = (run("1"), run("3"));
    let names: Vec<_> = parallel["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["strategy"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["none", "threshold", "greedy", "keel"]);
    assert_eq!(serial, parallel);
}

/// With a budget of nothing but what routing earned (100 %), Keel's nodes together never spend
/// more on rebalancing than the network's forwarders earned; with a fixed budget on top they
/// may, and do here (so the first bound is the ledger's doing, not the workload's).
#[test]
fn an_earnings_budget_keeps_rebalancing_within_routing_income() {
    let net = small();
    let (w, cfg) = workload(&net, Kind::Directional, 6_000);
    let payments = w.generate(&net);
    let run = |budget_ppm, earnings_share_ppm| {
        let cfg = SimConfig {
            budget_ppm,
            earnings_share_ppm,
            ..cfg.clone()
        };
        keel_sim::run(&net, &payments, Strategy::Keel, &cfg, &mut |_| {}).unwrap()
    };
    let earned_only = run(0, 1_000_000);
    let cost = |r: &keel_sim::Report| r.rebalancing_fees + r.gas_spent;
    assert!(cost(&earned_only) > 0, "{earned_only:?}");
    assert!(cost(&earned_only) <= earned_only.routing_fees_earned);
    let unbounded = run(20_000, 0);
    assert!(cost(&unbounded) > unbounded.routing_fees_earned);
    assert!(
        earned_only
            .decisions
            .get("over_budget")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

/// Nodes that learn from their cycles' outcomes skip hops that failed: fewer failed attempts
/// than nodes that estimate from capacities alone, on the same payments.
#[test]
fn learning_from_failed_cycles_means_fewer_failed_attempts() {
    let net = small();
    let (w, cfg) = workload(&net, Kind::Directional, 6_000);
    let payments = w.generate(&net);
    let run = |learn| {
        let cfg = SimConfig {
            learn,
            ..cfg.clone()
        };
        keel_sim::run(&net, &payments, Strategy::Keel, &cfg, &mut |_| {}).unwrap()
    };
    let (blind, learning) = (run(false), run(true));
    assert!(blind.failed_rebalances > 0);
    assert!(
        learning.failed_rebalances < blind.failed_rebalances,
        "learning {} blind {}",
        learning.failed_rebalances,
        blind.failed_rebalances
    );
}

/// A remembered search by capacity answers what a fresh search answers, for the pass it was
/// asked in and the next; after that, or after `forget`, it is searched again.
#[test]
fn remembered_routes_answer_as_a_fresh_search() {
    use keel_sim::routing::{CapacityRoutes, Router};
    let net = small();
    let mut router = Router::new(net.node_count());
    let mut memo = CapacityRoutes::default();
    // Half the questions ask for a tenth of a median channel (found), half for ten channels'
    // worth (no channel carries it).
    let (small_amount, big_amount) = (net.median_capacity() / 10, net.median_capacity() * 10);
    let amount_for = |s: u32| {
        if s.is_multiple_of(2) {
            small_amount
        } else {
            big_amount
        }
    };
    let queries: Vec<(u32, u32)> = (0..40).map(|i| (i, (i * 7 + 3) % 150)).collect();
    let fresh: Vec<_> = queries
        .iter()
        .map(|&(s, d)| {
            router
                .find(&net, s, d, amount_for(s), true, Some(5))
                .map(|p| p.hops)
        })
        .collect();
    assert!(fresh.iter().any(Option::is_some) && fresh.iter().any(Option::is_none));
    for pass in 0..3 {
        for (&(s, d), want) in queries.iter().zip(&fresh) {
            let got = memo
                .find(&mut router, &net, s, d, amount_for(s), Some(5))
                .map(|p| p.hops);
            assert_eq!(&got, want, "pass {pass}");
        }
        assert_eq!(memo.len(), queries.len());
        memo.next_pass();
    }
    memo.next_pass();
    assert!(
        memo.is_empty(),
        "answers not asked for a whole pass are dropped"
    );
    memo.find(&mut router, &net, 0, 3, small_amount, None);
    memo.forget();
    assert!(memo.is_empty());
}
