//! The simulation: one seeded workload over one network, with one rebalancing strategy acting
//! at fixed intervals, and on-chain actions that land after a confirmation delay.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use keel_policy::{mul_ppm, Amount, BudgetLedger, GasTable, Liquidity};
use serde::Serialize;

use crate::demand::Demand;
use crate::error::Result;
use crate::lp;
use crate::network::Network;
use crate::report::{Bucket, Report};
use crate::routing::{self, CapacityRoutes, Router};
use crate::workload::Payment;

mod keel;

/// The strategies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// No rebalancing.
    None,
    /// Top up from the wallet any channel below the low threshold, back to the target.
    Threshold,
    /// For each depleted channel, a circular rebalance from the node's largest surplus.
    Greedy,
    /// One Revive-style linear program over the whole network per interval.
    Lp,
    /// keel-policy, run by every node on its own channels.
    Keel,
}

impl Strategy {
    /// Every strategy, in report order.
    pub const ALL: [Strategy; 5] = [
        Strategy::None,
        Strategy::Threshold,
        Strategy::Greedy,
        Strategy::Lp,
        Strategy::Keel,
    ];

    /// Its name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Threshold => "threshold",
            Strategy::Greedy => "greedy",
            Strategy::Lp => "lp",
            Strategy::Keel => "keel",
        }
    }
}

/// Simulation parameters shared by every strategy.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Seconds between rebalancing passes.
    pub interval: f64,
    /// Seconds before an on-chain action's funds arrive.
    pub confirmation_delay: f64,
    /// Base units per unit of gas.
    #[serde(serialize_with = "crate::report::amount")]
    pub gas_price: Amount,
    /// Local share strategies restore to (ppm).
    pub target_ppm: u32,
    /// Below this share a channel is depleted (ppm).
    pub low_ppm: u32,
    /// Above this share a channel holds surplus (ppm).
    pub high_ppm: u32,
    /// The most any strategy pays per unit moved, fees plus gas (ppm).
    pub max_fee_ppm: u32,
    /// keel: what a unit of restored outbound flow is worth (ppm).
    pub value_ppm: u32,
    /// keel: the node's budget per day, shared by its channels, in ppm of its capacity.
    pub budget_ppm: u32,
    /// keel: each channel's own budget per day, in ppm of its capacity (none if `None`).
    pub channel_budget_ppm: Option<u32>,
    /// keel: share of the node's routing earnings added to its budget (ppm), carried over.
    pub earnings_share_ppm: u32,
    /// keel: nodes learn liquidity bounds from their circular rebalances' outcomes.
    pub learn: bool,
    /// keel: seconds of history the recent demand the policy reads is summed over (whole
    /// intervals, at least one); the restored liquidity is expected to serve a day of demand
    /// at that rate. One interval by default: a day of history made Keel act more often for
    /// no more success (docs/benchmarks.md).
    pub demand_window: f64,
    /// keel: seconds between two actions on one channel.
    pub cooldown: u64,
    /// Each node's wallet at the start, in ppm of its channel capacity.
    pub wallet_ppm: u32,
    /// keel: withdraw idle surplus to the wallet.
    pub withdraw_idle: bool,
    /// Points in the success-over-time series.
    pub windows: usize,
    /// The expected payment amount, which the size buckets are relative to.
    #[serde(serialize_with = "crate::report::amount")]
    pub expected_amount: Amount,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            interval: 1_800.0,
            confirmation_delay: 60.0,
            gas_price: 1_000_000_000,
            target_ppm: 500_000,
            low_ppm: 200_000,
            high_ppm: 800_000,
            max_fee_ppm: 5_000,
            value_ppm: 10_000,
            budget_ppm: 20_000,
            channel_budget_ppm: None,
            earnings_share_ppm: 0,
            learn: true,
            demand_window: 1_800.0,
            cooldown: 3_600,
            wallet_ppm: 500_000,
            withdraw_idle: false,
            windows: 50,
            expected_amount: 1,
        }
    }
}

const DAY: u64 = 86_400;

impl SimConfig {
    /// How many intervals the demand window spans.
    fn demand_windows(&self) -> usize {
        ((self.demand_window / self.interval).round() as usize).max(1)
    }
}

/// How long a lesson about another channel's liquidity takes to fade halfway: LDK's default.
const LEARNING_HALF_LIFE: u64 = keel_policy::liquidity::DEFAULT_HALF_LIFE_SECS;

#[derive(Debug, Clone, Copy)]
enum Landing {
    Channel {
        channel: u32,
        side: u8,
        amount: Amount,
    },
    Wallet {
        node: u32,
        amount: Amount,
    },
}

/// Counters every run keeps.
#[derive(Debug, Default)]
struct Totals {
    fees: Amount,
    gas: Amount,
    onchain: u64,
    offchain: u64,
    failed_rebalances: u64,
    earned: Amount,
    moved: Amount,
    lp_max_secs: f64,
    lp_variables: usize,
    decisions: BTreeMap<String, u64>,
    actions: BTreeMap<&'static str, u64>,
}

struct State<'a> {
    net: Network,
    cfg: &'a SimConfig,
    gas: GasTable,
    router: Router,
    /// Greedy's searches by capacity, remembered between passes.
    capacity_routes: CapacityRoutes,
    wallet: Vec<Amount>,
    landing: VecDeque<(f64, Landing)>,
    in_flight: Vec<[bool; 2]>,
    demand: Demand,
    last_action: Vec<[Option<u64>; 2]>,
    ledgers: Vec<BudgetLedger>,
    learned: Vec<Liquidity>,
    totals: Totals,
}

/// Why a circular rebalance did not go through.
#[derive(Debug)]
enum CycleFailure {
    /// The fees came to more than allowed.
    Fee,
    /// Hop `at` could not carry its share; `carried` is what each hop had to carry.
    Hop { at: usize, carried: Vec<Amount> },
}

/// Runs `payments` over a copy of `net` with `strategy`; `progress` hears how many payments
/// are done every 1,000.
pub fn run(
    net: &Network,
    payments: &[Payment],
    strategy: Strategy,
    cfg: &SimConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<Report> {
    let started = Instant::now();
    let caps = net.node_capacity();
    let n_ch = net.channels.len();
    let mut st = State {
        net: net.clone(),
        cfg,
        gas: GasTable::ETH,
        router: Router::new(net.node_count()),
        capacity_routes: CapacityRoutes::default(),
        wallet: caps
            .iter()
            .map(|&c| mul_ppm(c, cfg.wallet_ppm).unwrap_or(0))
            .collect(),
        landing: VecDeque::new(),
        in_flight: vec![[false; 2]; n_ch],
        demand: Demand::new(n_ch, cfg.demand_windows()),
        last_action: vec![[None; 2]; n_ch],
        ledgers: caps
            .iter()
            .map(|&c| {
                BudgetLedger::new(DAY, mul_ppm(c, cfg.budget_ppm).unwrap_or(0))
                    .with_earnings_share(cfg.earnings_share_ppm)
            })
            .collect(),
        learned: if strategy == Strategy::Keel && cfg.learn {
            vec![Liquidity::new(LEARNING_HALF_LIFE); net.node_count()]
        } else {
            Vec::new()
        },
        totals: Totals::default(),
    };
    let e = cfg.expected_amount.max(1);
    let edges = [e / 10, e, e.saturating_mul(10), e.saturating_mul(100)];
    let labels = ["< E/10", "E/10 - E", "E - 10E", "10E - 100E", ">= 100E"];
    let mut buckets: Vec<Bucket> = labels
        .iter()
        .map(|l| Bucket {
            label: (*l).to_string(),
            attempted: 0,
            succeeded: 0,
            success_ratio: 0.0,
        })
        .collect();
    let windows = cfg.windows.max(1);
    let mut series = vec![(0u64, 0u64); windows];
    let mut succeeded = 0u64;
    let mut volume: Amount = 0;
    let mut next_pass = cfg.interval;
    let total = payments.len().max(1);
    for (i, p) in payments.iter().enumerate() {
        while next_pass <= p.time {
            st.land(next_pass);
            st.demand.close_window();
            if strategy != Strategy::None {
                st.rebalance(strategy, next_pass)?;
            }
            next_pass += cfg.interval;
        }
        st.land(p.time);
        let ok = st.pay(p, strategy == Strategy::Keel, p.time as u64)?;
        let b = edges.iter().take_while(|&&edge| p.amount >= edge).count();
        buckets[b].attempted += 1;
        let w = &mut series[i * windows / total];
        w.0 += 1;
        if ok {
            buckets[b].succeeded += 1;
            succeeded += 1;
            volume += p.amount;
            w.1 += 1;
        }
        if (i + 1) % 1_000 == 0 {
            progress(1_000);
        }
    }
    progress((payments.len() % 1_000) as u64);
    for b in &mut buckets {
        b.success_ratio = ratio(b.succeeded, b.attempted);
    }
    let in_flight: Amount = st
        .landing
        .iter()
        .map(|(_, l)| match *l {
            Landing::Channel { amount, .. } => amount,
            Landing::Wallet { .. } => 0,
        })
        .sum();
    let t = &st.totals;
    let cost = t.fees + t.gas;
    Ok(Report {
        strategy: strategy.name().to_string(),
        payments: payments.len() as u64,
        succeeded,
        success_ratio: ratio(succeeded, payments.len() as u64),
        by_size: buckets,
        volume_delivered: volume,
        rebalancing_fees: t.fees,
        routing_fees_earned: t.earned,
        gas_spent: t.gas,
        cost_per_success: if succeeded == 0 {
            0.0
        } else {
            cost as f64 / succeeded as f64
        },
        onchain_actions: t.onchain,
        offchain_rebalances: t.offchain,
        failed_rebalances: t.failed_rebalances,
        rebalanced_volume: t.moved,
        liquidity_locked_start: net.total_capacity(),
        liquidity_locked_end: st.net.total_capacity() + in_flight,
        series: series.iter().map(|&(a, s)| ratio(s, a)).collect(),
        lp_max_solve_secs: t.lp_max_secs,
        lp_variables: t.lp_variables,
        decisions: t.decisions.clone(),
        actions: t.actions.clone(),
        unit: net.unit.to_string(),
        runtime_secs: started.elapsed().as_secs_f64(),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl State<'_> {
    fn land(&mut self, now: f64) {
        while self.landing.front().is_some_and(|(t, _)| *t <= now) {
            let (_, l) = self.landing.pop_front().expect("front exists");
            match l {
                Landing::Channel {
                    channel,
                    side,
                    amount,
                } => {
                    self.net.channels[channel as usize].balance[side as usize] += amount;
                    self.capacity_routes.forget();
                    self.in_flight[channel as usize][side as usize] = false;
                }
                Landing::Wallet { node, amount } => self.wallet[node as usize] += amount,
            }
        }
    }

    fn pay(&mut self, p: &Payment, attribute_failures: bool, now: u64) -> Result<bool> {
        if let Some(path) = self
            .router
            .find(&self.net, p.src, p.dst, p.amount, false, None)
        {
            for (&(c, s), &x) in path.hops.iter().zip(&path.carried) {
                self.demand.sent(c, s, x);
            }
            self.pay_forwarders(&path, now)?;
            routing::apply(&mut self.net, &path);
            return Ok(true);
        }
        if attribute_failures {
            // The path a payer would try without knowing balances: each hop that could not
            // carry its share saw (and refused) that demand.
            if let Some(path) = self
                .router
                .find(&self.net, p.src, p.dst, p.amount, true, None)
            {
                for (&(c, s), &x) in path.hops.iter().zip(&path.carried) {
                    if self.net.channels[c as usize].balance[s as usize] < x {
                        self.demand.refused(c, s, x);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Credits each forwarding node of `path` (every hop's sender but the first) with the fee
    /// it keeps: what it received minus what it sent on. Keel's nodes may spend a share of it.
    fn pay_forwarders(&mut self, path: &routing::Path, now: u64) -> Result<()> {
        for i in 1..path.hops.len() {
            let (c, s) = path.hops[i];
            let fee = path.carried[i - 1] - path.carried[i];
            self.totals.earned += fee;
            if fee > 0 && self.cfg.earnings_share_ppm > 0 {
                let node = self.net.channels[c as usize].nodes[s as usize] as usize;
                self.ledgers[node].earned(fee, now)?;
            }
        }
        Ok(())
    }

    fn rebalance(&mut self, strategy: Strategy, now: f64) -> Result<()> {
        match strategy {
            Strategy::None => Ok(()),
            Strategy::Threshold => {
                self.threshold(now);
                Ok(())
            }
            Strategy::Greedy => self.greedy(now as u64),
            Strategy::Lp => {
                let c = lp::revive(&self.net, 0)?;
                let secs = c.solve_time.as_secs_f64();
                self.totals.lp_max_secs = self.totals.lp_max_secs.max(secs);
                self.totals.lp_variables = self.totals.lp_variables.max(c.variables);
                self.totals.offchain += c.moves.len() as u64;
                self.totals.moved += lp::apply(&mut self.net, &c);
                Ok(())
            }
            Strategy::Keel => self.keel(now),
        }
    }

    fn share_ppm(&self, c: usize, side: usize) -> u32 {
        let ch = &self.net.channels[c];
        keel_policy::share_ppm(ch.balance[side], ch.capacity())
    }

    fn threshold(&mut self, now: f64) {
        let cost = self.cfg.gas_price * u128::from(self.gas.deposit);
        for c in 0..self.net.channels.len() {
            for side in 0..2 {
                if self.in_flight[c][side] || self.share_ppm(c, side) >= self.cfg.low_ppm {
                    continue;
                }
                let ch = &self.net.channels[c];
                let node = ch.nodes[side] as usize;
                let target = mul_ppm(ch.capacity(), self.cfg.target_ppm).unwrap_or(0);
                let amount = target
                    .saturating_sub(ch.balance[side])
                    .min(self.wallet[node]);
                if amount == 0 || cost > mul_ppm(amount, self.cfg.max_fee_ppm).unwrap_or(0) {
                    continue;
                }
                self.wallet[node] -= amount;
                self.onchain(now, cost);
                self.in_flight[c][side] = true;
                self.landing.push_back((
                    now + self.cfg.confirmation_delay,
                    Landing::Channel {
                        channel: c as u32,
                        side: side as u8,
                        amount,
                    },
                ));
            }
        }
    }

    fn onchain(&mut self, _now: f64, cost: Amount) {
        self.totals.gas += cost;
        self.totals.onchain += 1;
    }

    /// Pays a cycle of hops (the first sent by the node itself, which charges no fee), if the
    /// fee stays within `max_fee` and every hop can carry its share. Returns the fee paid and
    /// what each hop carried, or where it failed (the first hop without the balance, as a
    /// payment's error would name it).
    fn cycle(
        &mut self,
        hops: &[(u32, u8)],
        amount: Amount,
        max_fee: Amount,
        now: u64,
    ) -> Result<std::result::Result<(Amount, Vec<Amount>), CycleFailure>> {
        let mut carried = vec![0; hops.len()];
        let mut x = amount;
        for i in (0..hops.len()).rev() {
            carried[i] = x;
            if i > 0 {
                let (c, s) = hops[i];
                let fee = self.net.channels[c as usize].fee[s as usize].for_amount(x);
                let Some(next) = fee.and_then(|f| x.checked_add(f)) else {
                    self.totals.failed_rebalances += 1;
                    return Ok(Err(CycleFailure::Fee));
                };
                x = next;
            }
        }
        let fee = carried[0] - amount;
        if fee > max_fee {
            self.totals.failed_rebalances += 1;
            return Ok(Err(CycleFailure::Fee));
        }
        let short = hops
            .iter()
            .zip(&carried)
            .position(|(&(c, s), &x)| self.net.channels[c as usize].balance[s as usize] < x);
        if let Some(at) = short {
            self.totals.failed_rebalances += 1;
            return Ok(Err(CycleFailure::Hop { at, carried }));
        }
        let path = routing::Path {
            hops: hops.to_vec(),
            carried,
        };
        self.pay_forwarders(&path, now)?;
        routing::apply(&mut self.net, &path);
        self.totals.fees += fee;
        self.totals.offchain += 1;
        self.totals.moved += amount;
        Ok(Ok((fee, path.carried)))
    }

    fn greedy(&mut self, now: u64) -> Result<()> {
        self.capacity_routes.next_pass();
        for u in 0..self.net.node_count() as u32 {
            let chans = self.net.adj[u as usize].clone();
            let mut depleted = Vec::new();
            let mut surplus = Vec::new();
            for &(c, s) in &chans {
                let (ci, si) = (c as usize, s as usize);
                let ch = &self.net.channels[ci];
                let target = mul_ppm(ch.capacity(), self.cfg.target_ppm).unwrap_or(0);
                let share = self.share_ppm(ci, si);
                if share < self.cfg.low_ppm {
                    depleted.push((c, s, target.saturating_sub(ch.balance[si])));
                } else if ch.balance[si] > target {
                    surplus.push((c, s, ch.balance[si] - target));
                }
            }
            if depleted.is_empty() || surplus.is_empty() {
                continue;
            }
            depleted.sort_by_key(|d| std::cmp::Reverse(d.2));
            for &(d, ds, need) in &depleted {
                surplus.sort_by_key(|s| std::cmp::Reverse(s.2));
                for k in 0..surplus.len().min(3) {
                    let (sc, ss, have) = surplus[k];
                    let dch = &self.net.channels[d as usize];
                    let amount = need.min(have).min(dch.balance[1 - ds as usize]);
                    if amount == 0 {
                        continue;
                    }
                    let s_peer = self.net.channels[sc as usize].nodes[1 - ss as usize];
                    let d_peer = dch.nodes[1 - ds as usize];
                    let mut hops = vec![(sc, ss)];
                    if s_peer != d_peer {
                        let Some(path) = self.capacity_routes.find(
                            &mut self.router,
                            &self.net,
                            s_peer,
                            d_peer,
                            amount,
                            Some(u),
                        ) else {
                            continue;
                        };
                        hops.extend(path.hops);
                    }
                    hops.push((d, 1 - ds));
                    let max_fee = mul_ppm(amount, self.cfg.max_fee_ppm).unwrap_or(0);
                    if self.cycle(&hops, amount, max_fee, now)?.is_ok() {
                        surplus[k].2 = have - amount;
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
