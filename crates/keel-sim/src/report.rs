//! What a run measured, as a table for people and JSON for programs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keel_policy::Amount;
use serde::Serialize;

/// Success in one payment-size bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// The bucket's range, relative to the expected amount E.
    pub label: String,
    /// Payments in it.
    pub attempted: u64,
    /// Of which delivered.
    pub succeeded: u64,
    /// `succeeded / attempted`.
    pub success_ratio: f64,
}

/// One run of one strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The strategy's name.
    pub strategy: String,
    /// Payments attempted.
    pub payments: u64,
    /// Payments delivered.
    pub succeeded: u64,
    /// `succeeded / payments`.
    pub success_ratio: f64,
    /// Success by payment size.
    pub by_size: Vec<Bucket>,
    /// Sum of delivered amounts.
    #[serde(serialize_with = "crate::report::amount")]
    pub volume_delivered: Amount,
    /// Routing fees paid by circular rebalances.
    #[serde(serialize_with = "crate::report::amount")]
    pub rebalancing_fees: Amount,
    /// Gas paid by on-chain actions (at the configured gas price).
    #[serde(serialize_with = "crate::report::amount")]
    pub gas_spent: Amount,
    /// Fees every forwarding node kept, from payments and from others' circular rebalances:
    /// what routing earned the network, beside what rebalancing cost.
    #[serde(serialize_with = "crate::report::amount")]
    pub routing_fees_earned: Amount,
    /// `(fees + gas) / succeeded`.
    pub cost_per_success: f64,
    /// On-chain transactions (top-ups, moves, withdrawals).
    pub onchain_actions: u64,
    /// Circular rebalances that ran (for the LP, channels it shifted).
    pub offchain_rebalances: u64,
    /// Circular rebalances attempted that found a hop without the balance or cost more than
    /// allowed once priced hop by hop.
    pub failed_rebalances: u64,
    /// Total moved by rebalancing.
    #[serde(serialize_with = "crate::report::amount")]
    pub rebalanced_volume: Amount,
    /// Capacity in channels at the start.
    #[serde(serialize_with = "crate::report::amount")]
    pub liquidity_locked_start: Amount,
    /// Capacity in channels at the end, including deposits still confirming.
    #[serde(serialize_with = "crate::report::amount")]
    pub liquidity_locked_end: Amount,
    /// Success ratio in consecutive windows of equal payment count.
    pub series: Vec<f64>,
    /// The LP's slowest solve in this run (seconds; 0 for other strategies).
    pub lp_max_solve_secs: f64,
    /// The LP's largest number of variables.
    pub lp_variables: usize,
    /// keel: how many channel decisions carried each reason, over all passes.
    pub decisions: BTreeMap<String, u64>,
    /// keel: the actions that ran, by kind (`circular`, `move`, `top_up`, `withdraw`).
    pub actions: BTreeMap<&'static str, u64>,
    /// What one base unit is.
    pub unit: String,
    /// Wall-clock time of the run.
    pub runtime_secs: f64,
}

/// Serialises an amount as a decimal string: JSON numbers cannot hold every `u128`.
pub fn amount<S: serde::Serializer>(x: &Amount, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(x)
}

impl Report {
    /// Whether every decision reason counted is one keel-policy defines (a guard against
    /// reports that lose track of why).
    pub fn every_reason_known(&self) -> bool {
        const KNOWN: [&str; 14] = [
            "nothing_to_do",
            "depleted",
            "source",
            "idle_surplus",
            "surplus_in_use",
            "below_minimum",
            "cooling_down",
            "no_source",
            "no_affordable_cycle",
            "too_expensive",
            "not_worth_it",
            "no_demand",
            "over_budget",
            "busy",
        ];
        self.decisions.keys().all(|k| KNOWN.contains(&k.as_str()))
    }
}

fn eng(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    format!("{x:.3e}")
}

/// A Markdown table comparing runs, then success by payment size.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    let unit = reports.first().map_or("", |r| r.unit.as_str());
    let _ = writeln!(
        s,
        "| strategy | success | volume delivered ({unit}) | rebalancing fees | gas | cost per success | on-chain tx | circular (failed) | routing fees earned | locked start -> end | run time |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let _ = writeln!(
            s,
            "| {} | {:.1} % | {} | {} | {} | {} | {} | {} ({}) | {} | {} -> {} | {:.1} s |",
            r.strategy,
            r.success_ratio * 100.0,
            eng(r.volume_delivered as f64),
            eng(r.rebalancing_fees as f64),
            eng(r.gas_spent as f64),
            eng(r.cost_per_success),
            r.onchain_actions,
            r.offchain_rebalances,
            r.failed_rebalances,
            eng(r.routing_fees_earned as f64),
            eng(r.liquidity_locked_start as f64),
            eng(r.liquidity_locked_end as f64),
            r.runtime_secs
        );
    }
    if let Some(first) = reports.first() {
        let _ = writeln!(s);
        let _ = write!(s, "| size (E = expected amount) | payments |");
        for r in reports {
            let _ = write!(s, " {} |", r.strategy);
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---|---:|");
        for _ in reports {
            let _ = write!(s, "---:|");
        }
        let _ = writeln!(s);
        for (i, b) in first.by_size.iter().enumerate() {
            let _ = write!(s, "| {} | {} |", b.label, b.attempted);
            for r in reports {
                let _ = write!(s, " {:.1} % |", r.by_size[i].success_ratio * 100.0);
            }
            let _ = writeln!(s);
        }
    }
    s
}
