//! The planner: from a node's channels to a plan of actions, each with its cost, the liquidity
//! it restores and why; and a decision with a reason for every channel, acted on or not.

use std::collections::BTreeMap;
use std::fmt;

use crate::budget::{BudgetLedger, ReservationId};
use crate::error::{Error, Result};
use crate::graph::{Graph, Known, Route};
use crate::liquidity::Liquidity;
use crate::types::{mul_ppm, Amount, ChainId, Channel, ChannelId, GasTable, NodeId, PPM};

/// Everything the planner reads about the node and the network at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The node itself, as a node of `graph`.
    pub me: NodeId,
    /// The node's channels.
    pub channels: &'a [Channel],
    /// The known graph, with fees and capacities.
    pub graph: &'a Graph,
    /// Gas price per chain, in base units per unit of gas. A chain missing here has no
    /// on-chain actions.
    pub gas_price: &'a BTreeMap<ChainId, Amount>,
    /// Gas each on-chain operation uses.
    pub gas: GasTable,
    /// The node's wallet balance per chain, which top-ups draw on.
    pub wallet: &'a BTreeMap<ChainId, Amount>,
    /// The caller's time in seconds (cooldowns and budget periods are measured on it).
    pub now: u64,
    /// What the node learned of other channels' liquidity from its earlier circular
    /// rebalances (the caller records their outcomes); `None` estimates from capacities only.
    pub liquidity: Option<&'a Liquidity>,
}

/// How hard the planner searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Longest route a circular rebalance may take between the two peers.
    pub max_hops: u8,
    /// How many surplus channels are tried as the start of a circular rebalance (largest
    /// surplus first); each costs one search of the graph.
    pub max_sources: usize,
    /// How many windows of demand the restored liquidity is expected to serve, a window being
    /// whatever span the caller measured [`Channel`]'s recent flow over: the expected earnings
    /// of an action are `min(restored, demand_out * horizon) * value_ppm`.
    pub horizon_periods: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_hops: 6,
            max_sources: 4,
            horizon_periods: 4,
        }
    }
}

/// Why the planner did or did not act on a channel. [`Reason::code`] is the machine-readable
/// form; every decision and action also carries a sentence for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Nothing to do: the local share is within the thresholds.
    Balanced,
    /// An action restores this depleted channel.
    Depleted,
    /// An action gives surplus of this channel to a depleted one.
    Source,
    /// An action withdraws surplus that the channel's demand does not use.
    IdleSurplus,
    /// Above the high threshold, but recent demand would use the surplus.
    SurplusInUse,
    /// Depleted, but the amount needed is below the policy's minimum.
    BelowMinimum,
    /// Touched by an action less than a cooldown ago.
    CoolingDown,
    /// Depleted, but no surplus channel, no route and no wallet balance could supply it.
    NoSource,
    /// Depleted, but every cycle and on-chain option costs more than the maximum fee.
    NoAffordableCycle,
    /// An on-chain withdrawal would cost more than the maximum fee.
    TooExpensive,
    /// Affordable options exist, but the earnings expected from the restored flow do not
    /// exceed their cost.
    NotWorthIt,
    /// Depleted, but nothing went out or was refused in the last window: restoring it would
    /// earn nothing, so no option is searched for.
    NoDemand,
    /// Worthwhile options exist, but the channel's or node's budget for this period cannot
    /// cover them.
    OverBudget,
    /// Worthwhile options exist, but every one needs a channel another action already uses.
    Busy,
}

impl Reason {
    /// A stable machine-readable name (`snake_case`).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Balanced => "nothing_to_do",
            Reason::Depleted => "depleted",
            Reason::Source => "source",
            Reason::IdleSurplus => "idle_surplus",
            Reason::SurplusInUse => "surplus_in_use",
            Reason::BelowMinimum => "below_minimum",
            Reason::CoolingDown => "cooling_down",
            Reason::NoSource => "no_source",
            Reason::NoAffordableCycle => "no_affordable_cycle",
            Reason::TooExpensive => "too_expensive",
            Reason::NotWorthIt => "not_worth_it",
            Reason::NoDemand => "no_demand",
            Reason::OverBudget => "over_budget",
            Reason::Busy => "busy",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// Pay yourself out through `from` and back in through `to` along `route` (off-chain; pays
    /// routing fees).
    Circular {
        /// The channel with surplus the payment leaves through.
        from: ChannelId,
        /// The depleted channel the payment comes back through.
        to: ChannelId,
        /// The nodes from `from`'s peer to `to`'s peer.
        route: Vec<NodeId>,
        /// The graph's edges between them (indices as [`Route::edges`]), so an executor pays
        /// along exactly the edges that were priced.
        edges: Vec<u32>,
        /// The chance the route carries the amount (a score).
        probability: f64,
    },
    /// `withdrawInto`: one transaction moves surplus from one vault into another of the
    /// node's vaults on the same chain.
    Move {
        /// The channel with surplus.
        from: ChannelId,
        /// The depleted channel.
        to: ChannelId,
    },
    /// A deposit from the wallet into a depleted channel.
    TopUp {
        /// The depleted channel.
        channel: ChannelId,
    },
    /// A withdrawal of idle surplus to the wallet.
    Withdraw {
        /// The channel with idle surplus.
        channel: ChannelId,
    },
}

impl ActionKind {
    /// A stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            ActionKind::Circular { .. } => "circular",
            ActionKind::Move { .. } => "move",
            ActionKind::TopUp { .. } => "top_up",
            ActionKind::Withdraw { .. } => "withdraw",
        }
    }

    /// The node's channels the action touches (one or two).
    pub fn channels(&self) -> Vec<ChannelId> {
        match *self {
            ActionKind::Circular { from, to, .. } | ActionKind::Move { from, to } => vec![from, to],
            ActionKind::TopUp { channel } | ActionKind::Withdraw { channel } => vec![channel],
        }
    }
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// How much it moves, in base units.
    pub amount: Amount,
    /// What it is expected to cost (routing fees or gas), in base units.
    pub cost: Amount,
    /// The liquidity it is expected to restore: the amount times the chance it succeeds
    /// (rounded down); for a withdrawal, the surplus it frees.
    pub restores: Amount,
    /// The earnings expected from the flow it restores.
    pub expected_earnings: Amount,
    /// The channel whose budget pays for it.
    pub budget_channel: ChannelId,
    /// The budget reservation holding its cost: commit it with what the action really cost,
    /// or release it if the action did not run.
    pub reservation: ReservationId,
    /// Why.
    pub reason: Reason,
    /// Why, for people.
    pub sentence: String,
}

/// The planner's verdict on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The channel.
    pub channel: ChannelId,
    /// Why the planner did or did not act on it.
    pub reason: Reason,
    /// The same, for people.
    pub sentence: String,
    /// The index in [`Plan::actions`] of the action touching it, if any.
    pub action: Option<usize>,
}

/// The planner's output: actions to run, and one decision per channel in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Actions, cheapest per unit of liquidity restored first.
    pub actions: Vec<Action>,
    /// One decision per input channel, in the order given.
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// Gives every reservation back (for a dry run, or a plan that will not be executed).
    pub fn release(&self, ledger: &BudgetLedger, now: u64) -> Result<()> {
        for action in &self.actions {
            ledger.release(action.reservation, now)?;
        }
        Ok(())
    }

    /// The sum of the actions' expected costs.
    pub fn total_cost(&self) -> Amount {
        self.actions
            .iter()
            .fold(0u128, |acc, a| acc.saturating_add(a.cost))
    }
}

fn pct(ppm: u32) -> String {
    format!("{}.{}%", ppm / 10_000, (ppm % 10_000) / 1_000)
}

#[derive(Debug, Clone)]
enum Option_ {
    Circular { src: usize, route: Route },
    Move { src: usize },
    TopUp,
}

#[derive(Debug, Clone)]
struct Candidate {
    dst: usize,
    option: Option_,
    amount: Amount,
    cost: Amount,
    restores: Amount,
    earnings: Amount,
    score: f64,
}

impl Candidate {
    fn src(&self) -> Option<usize> {
        match self.option {
            Option_::Circular { src, .. } | Option_::Move { src } => Some(src),
            Option_::TopUp => None,
        }
    }
}

/// How far a depleted channel's options got; the furthest stage names the reason when
/// nothing was chosen.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    any_option: bool,
    any_circular: bool,
    cheapest_rate_ppm: Option<u128>,
    affordable: bool,
    worth_it: bool,
    best_earnings_gap: Option<(Amount, Amount)>,
    over_budget: bool,
    busy: bool,
}

/// Plans actions for one node. Each chosen action's cost is reserved in `ledger` (charged to
/// the channel whose liquidity it restores); execute the plan, then commit or release each
/// reservation.
///
/// ```
/// use std::collections::BTreeMap;
/// use keel_policy::{plan, BudgetLedger, ChainId, Channel, ChannelId, ChannelPolicy, Config,
///     Fee, GasTable, Graph, Inputs, NodeId, Reason};
///
/// let channel = Channel {
///     id: ChannelId(1), chain: ChainId(1), peer: NodeId(1),
///     capacity: 1_000, local: 500, remote: 500, pending_out: 0, pending_in: 0,
///     flow_out: 0, flow_in: 0, failed_out: 0, peer_fee: Fee::default(),
///     last_action: None, policy: ChannelPolicy::default(),
/// };
/// let graph = Graph::new(2);
/// let ledger = BudgetLedger::new(86_400, 1_000_000);
/// let gas_price = BTreeMap::from([(ChainId(1), 1)]);
/// let wallet = BTreeMap::new();
/// let inputs = Inputs { me: NodeId(0), channels: &[channel], graph: &graph,
///     gas_price: &gas_price, gas: GasTable::ETH, wallet: &wallet, now: 0, liquidity: None };
/// let plan = plan(&inputs, &Config::default(), &ledger).unwrap();
/// assert!(plan.actions.is_empty());
/// assert_eq!(plan.decisions[0].reason, Reason::Balanced);
/// ```
pub fn plan(inputs: &Inputs<'_>, config: &Config, ledger: &BudgetLedger) -> Result<Plan> {
    let channels = inputs.channels;
    for ch in channels {
        ch.validate()?;
    }
    let now = inputs.now;
    let n = channels.len();
    let mut decisions: Vec<Option<Decision>> = vec![None; n];
    let mut deficits: Vec<(usize, Amount)> = Vec::new();
    let mut sources: Vec<(usize, Amount)> = Vec::new();

    for (i, ch) in channels.iter().enumerate() {
        let share = ch.local_ppm();
        let target = ch.target_local()?;
        let p = &ch.policy;
        let depleted = ch.capacity > 0 && share < p.low_ppm;
        let surplus = ch.capacity > 0 && ch.local > target;
        if ch.cooling_down(now) && (depleted || share > p.high_ppm) {
            let until = ch.last_action.unwrap_or(0).saturating_add(p.cooldown_secs);
            decisions[i] = Some(decision(
                ch,
                Reason::CoolingDown,
                format!(
                    "Local share {} is outside [{}, {}], but an action touched the channel at {}s; \
                     it may be touched again at {until}s.",
                    pct(share),
                    pct(p.low_ppm),
                    pct(p.high_ppm),
                    ch.last_action.unwrap_or(0)
                ),
            ));
            continue;
        }
        if ch.cooling_down(now) {
            continue;
        }
        if depleted {
            let need = target.saturating_sub(ch.local);
            if ch.demand_out() == 0 {
                // Earnings are `min(restored, demand × horizon) × value`: zero, which no option
                // exceeds. Skipping the search matters on large graphs, where most channels
                // see no traffic in a window.
                decisions[i] = Some(decision(
                    ch,
                    Reason::NoDemand,
                    format!(
                        "Local share {} is below {}, but nothing went out or was refused in the                          last period, so restoring it would earn nothing.",
                        pct(share),
                        pct(p.low_ppm)
                    ),
                ));
            } else if need < p.min_amount || need == 0 {
                decisions[i] = Some(decision(
                    ch,
                    Reason::BelowMinimum,
                    format!(
                        "Local share {} is below {}, but restoring it takes {need}, less than the \
                         minimum of {}.",
                        pct(share),
                        pct(p.low_ppm),
                        p.min_amount
                    ),
                ));
            } else {
                deficits.push((i, need));
            }
        } else if surplus {
            sources.push((i, ch.local - target));
        }
    }

    let mut candidates: Vec<Candidate> = Vec::new();
    let mut progress: Vec<Progress> = vec![Progress::default(); n];
    let horizon = u128::from(config.horizon_periods);
    let known = Known {
        liquidity: inputs.liquidity,
        now,
    };

    // Circular routes: one search of the graph per source, towards every depleted peer.
    let mut by_surplus = sources.clone();
    by_surplus.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let max_deficit = deficits.iter().map(|d| d.1).max().unwrap_or(0);
    let targets: Vec<NodeId> = deficits.iter().map(|&(d, _)| channels[d].peer).collect();
    let max_fee_ppm = deficits
        .iter()
        .map(|&(d, _)| channels[d].policy.max_fee_ppm)
        .max()
        .unwrap_or(0);
    if !deficits.is_empty() {
        for &(s, surplus) in by_surplus.iter().take(config.max_sources) {
            let src = &channels[s];
            let price_at = surplus.min(max_deficit);
            // A cycle for any smaller amount costs at least as much per unit (base fees), so
            // nothing above this bound at `price_at` could be afforded by any depleted channel.
            let bound = mul_ppm(price_at, max_fee_ppm).unwrap_or(Amount::MAX);
            let routes = inputs.graph.cheapest_from(
                src.peer,
                inputs.me,
                price_at,
                config.max_hops,
                bound,
                &targets,
                known,
            );
            for &(d, need) in &deficits {
                let dst = &channels[d];
                let Some(route) = inputs.graph.route_to(&routes, dst.peer, price_at, known) else {
                    // Unreached only because every route cost more than any channel allows.
                    if routes.pruned() {
                        progress[d].any_option = true;
                        progress[d].any_circular = true;
                    }
                    continue;
                };
                let amount = need.min(surplus).min(dst.remote);
                if amount < dst.policy.min_amount || amount == 0 {
                    continue;
                }
                // The peer of the depleted channel charges on the amount, every hop before it
                // on what it forwards.
                let Some(cost) = dst.peer_fee.for_amount(amount).and_then(|last| {
                    let delivered = amount.checked_add(last)?;
                    last.checked_add(inputs.graph.fee_along(&route, delivered)?)
                }) else {
                    continue;
                };
                // The payment leaves through `src` carrying the amount and every fee.
                if amount.checked_add(cost).is_none_or(|x| x > src.local) {
                    continue;
                }
                let probability = inputs.graph.probability_along(&route, amount, known);
                // Floats only for the score; the restored amount is rounded down.
                let restores = (amount as f64 * probability) as Amount;
                progress[d].any_circular = true;
                candidates.push(Candidate {
                    dst: d,
                    option: Option_::Circular { src: s, route },
                    amount,
                    cost,
                    restores,
                    earnings: 0,
                    score: 0.0,
                });
            }
        }
    }

    // On-chain options: a move from a surplus channel on the same chain, or a top-up.
    for &(d, need) in &deficits {
        let dst = &channels[d];
        let Some(&price) = inputs.gas_price.get(&dst.chain) else {
            continue;
        };
        let move_cost = price
            .checked_mul(u128::from(inputs.gas.withdraw_into))
            .ok_or(Error::Overflow)?;
        let sized = onchain_amount(dst, need, horizon)?;
        for &(s, surplus) in &sources {
            let src = &channels[s];
            if src.chain != dst.chain {
                continue;
            }
            let amount = sized.min(surplus);
            if amount < dst.policy.min_amount || amount == 0 {
                continue;
            }
            candidates.push(Candidate {
                dst: d,
                option: Option_::Move { src: s },
                amount,
                cost: move_cost,
                restores: amount,
                earnings: 0,
                score: 0.0,
            });
        }
        let wallet = inputs.wallet.get(&dst.chain).copied().unwrap_or(0);
        let amount = sized.min(wallet);
        if amount >= dst.policy.min_amount && amount > 0 {
            let cost = price
                .checked_mul(u128::from(inputs.gas.deposit))
                .ok_or(Error::Overflow)?;
            candidates.push(Candidate {
                dst: d,
                option: Option_::TopUp,
                amount,
                cost,
                restores: amount,
                earnings: 0,
                score: 0.0,
            });
        }
    }

    // Keep what is affordable and pays for itself; score by cost per unit restored.
    candidates.retain_mut(|c| {
        let dst = &channels[c.dst];
        let p = &mut progress[c.dst];
        p.any_option = true;
        if c.restores == 0 {
            return false;
        }
        let rate = c.cost.saturating_mul(1_000_000) / c.amount.max(1);
        p.cheapest_rate_ppm = Some(p.cheapest_rate_ppm.map_or(rate, |r| r.min(rate)));
        let Some(max_cost) = mul_ppm(c.amount, dst.policy.max_fee_ppm) else {
            return false;
        };
        if c.cost > max_cost {
            return false;
        }
        p.affordable = true;
        let served = c.restores.min(dst.demand_out().saturating_mul(horizon));
        c.earnings = mul_ppm(served, dst.policy.value_ppm).unwrap_or(Amount::MAX);
        if c.earnings <= c.cost {
            if p.best_earnings_gap.is_none_or(|(e, _)| c.earnings > e) {
                p.best_earnings_gap = Some((c.earnings, c.cost));
            }
            return false;
        }
        p.worth_it = true;
        c.score = c.cost as f64 / c.restores as f64;
        true
    });
    candidates.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then(b.restores.cmp(&a.restores))
            .then(a.dst.cmp(&b.dst))
            .then(a.src().cmp(&b.src()))
    });

    let mut used = vec![false; n];
    let mut wallet_left: BTreeMap<ChainId, Amount> = inputs.wallet.clone();
    let mut actions: Vec<Action> = Vec::new();
    for c in candidates {
        let dst = &channels[c.dst];
        if used[c.dst] {
            continue;
        }
        if c.src().is_some_and(|s| used[s]) {
            progress[c.dst].busy = true;
            continue;
        }
        let mut amount = c.amount;
        if let Option_::TopUp = c.option {
            let left = wallet_left.get(&dst.chain).copied().unwrap_or(0);
            amount = amount.min(left);
            if amount < dst.policy.min_amount || amount == 0 {
                progress[c.dst].busy = true;
                continue;
            }
        }
        let reservation = match ledger.reserve(dst.id, dst.policy.budget_per_period, c.cost, now) {
            Ok(r) => r,
            Err(Error::OverBudget { .. }) => {
                progress[c.dst].over_budget = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        used[c.dst] = true;
        let restores = if amount == c.amount {
            c.restores
        } else {
            amount
        };
        let index = actions.len();
        let (kind, how) = match &c.option {
            Option_::Circular { src, route } => {
                used[*src] = true;
                let s = &channels[*src];
                decisions[*src] = Some(Decision {
                    channel: s.id,
                    reason: Reason::Source,
                    sentence: format!(
                        "Surplus of {} above target gives {amount} to depleted channel {} through \
                         a circular rebalance.",
                        s.local.saturating_sub(s.target_local()?),
                        dst.id
                    ),
                    action: Some(index),
                });
                (
                    ActionKind::Circular {
                        from: s.id,
                        to: dst.id,
                        route: route.hops.clone(),
                        edges: route.edges.clone(),
                        probability: route.probability,
                    },
                    format!(
                        "a circular rebalance from channel {} over {} hops (success chance {:.0}%)",
                        s.id,
                        route.hops.len() + 1,
                        route.probability * 100.0
                    ),
                )
            }
            Option_::Move { src } => {
                used[*src] = true;
                let s = &channels[*src];
                decisions[*src] = Some(Decision {
                    channel: s.id,
                    reason: Reason::Source,
                    sentence: format!(
                        "Surplus of {} above target gives {amount} to depleted channel {} by \
                         withdrawInto.",
                        s.local.saturating_sub(s.target_local()?),
                        dst.id
                    ),
                    action: Some(index),
                });
                (
                    ActionKind::Move {
                        from: s.id,
                        to: dst.id,
                    },
                    format!("withdrawInto from channel {} (one transaction)", s.id),
                )
            }
            Option_::TopUp => {
                let left = wallet_left.entry(dst.chain).or_insert(0);
                *left -= amount;
                (
                    ActionKind::TopUp { channel: dst.id },
                    "a top-up from the wallet".to_string(),
                )
            }
        };
        let sentence = format!(
            "Local share {} is below {}: restoring {amount} by {how} costs {} ({} ppm of the \
             amount), the cheapest per unit restored; expected earnings {} from recent demand of \
             {} per period exceed it.",
            pct(dst.local_ppm()),
            pct(dst.policy.low_ppm),
            c.cost,
            c.cost.saturating_mul(1_000_000) / amount.max(1),
            c.earnings,
            dst.demand_out(),
        );
        decisions[c.dst] = Some(Decision {
            channel: dst.id,
            reason: Reason::Depleted,
            sentence: sentence.clone(),
            action: Some(index),
        });
        actions.push(Action {
            kind,
            amount,
            cost: c.cost,
            restores,
            expected_earnings: c.earnings,
            budget_channel: dst.id,
            reservation,
            reason: Reason::Depleted,
            sentence,
        });
    }

    // Depleted channels left without an action: the furthest stage their options reached.
    for &(d, need) in &deficits {
        if decisions[d].is_some() {
            continue;
        }
        let ch = &channels[d];
        let p = progress[d];
        let share = pct(ch.local_ppm());
        let (reason, sentence) = if p.busy {
            (
                Reason::Busy,
                format!(
                    "Local share {share} is low and worthwhile options exist, but each needs a \
                     channel another action of this plan already uses."
                ),
            )
        } else if p.over_budget {
            (
                Reason::OverBudget,
                format!(
                    "Local share {share} is low and restoring {need} would pay for itself, but \
                     the budget left this period ({}) cannot cover it.",
                    ledger.available(ch.id, ch.policy.budget_per_period, now)
                ),
            )
        } else if p.affordable {
            let (earn, cost) = p.best_earnings_gap.unwrap_or((0, 0));
            (
                Reason::NotWorthIt,
                format!(
                    "Local share {share} is low, but the best affordable option costs {cost} and \
                     recent demand ({} per period) would earn only {earn} from what it restores.",
                    ch.demand_out()
                ),
            )
        } else if p.any_option {
            let reason = if p.any_circular {
                Reason::NoAffordableCycle
            } else {
                Reason::TooExpensive
            };
            (
                reason,
                match p.cheapest_rate_ppm {
                    Some(rate) => format!(
                        "Local share {share} is low, but the cheapest option costs {rate} ppm of \
                         the amount, above the maximum of {} ppm{}.",
                        ch.policy.max_fee_ppm,
                        if p.any_circular {
                            ""
                        } else {
                            " (no cycle through the graph either)"
                        }
                    ),
                    None => format!(
                        "Local share {share} is low, but every cycle through the graph costs \
                         more than the maximum of {} ppm and no on-chain option exists.",
                        ch.policy.max_fee_ppm
                    ),
                },
            )
        } else {
            (
                Reason::NoSource,
                format!(
                    "Local share {share} is low, but no channel has surplus, no cycle reaches it \
                     and the wallet holds too little on its chain."
                ),
            )
        };
        decisions[d] = Some(decision(ch, reason, sentence));
    }

    // Surplus above the high threshold that recent demand does not use goes back to the wallet.
    for (i, ch) in channels.iter().enumerate() {
        if decisions[i].is_some() || used[i] || ch.cooling_down(now) {
            continue;
        }
        let share = ch.local_ppm();
        let p = &ch.policy;
        if ch.capacity == 0 || share <= p.high_ppm {
            continue;
        }
        if !p.withdraw_idle {
            decisions[i] = Some(decision(
                ch,
                Reason::SurplusInUse,
                format!(
                    "Local share {} is above {}; the policy keeps surplus in the channel \
                     (withdraw_idle is off).",
                    pct(share),
                    pct(p.high_ppm)
                ),
            ));
            continue;
        }
        let surplus = ch.local.saturating_sub(ch.target_local()?);
        let idle = surplus.saturating_sub(ch.demand_out().saturating_mul(horizon));
        if idle < p.min_amount || idle == 0 {
            decisions[i] = Some(decision(
                ch,
                Reason::SurplusInUse,
                format!(
                    "Local share {} is above {}, but recent demand ({} per period) would use the \
                     surplus of {surplus}.",
                    pct(share),
                    pct(p.high_ppm),
                    ch.demand_out()
                ),
            ));
            continue;
        }
        let Some(&price) = inputs.gas_price.get(&ch.chain) else {
            decisions[i] = Some(decision(
                ch,
                Reason::TooExpensive,
                format!(
                    "Local share {} is above {} with {idle} idle, but no gas price is known for \
                     its chain.",
                    pct(share),
                    pct(p.high_ppm)
                ),
            ));
            continue;
        };
        let cost = price
            .checked_mul(u128::from(inputs.gas.withdraw))
            .ok_or(Error::Overflow)?;
        let max_cost = mul_ppm(idle, p.max_fee_ppm).ok_or(Error::Overflow)?;
        if cost > max_cost {
            decisions[i] = Some(decision(
                ch,
                Reason::TooExpensive,
                format!(
                    "Local share {} is above {} with {idle} idle, but withdrawing it costs {cost}, \
                     above the maximum of {max_cost}.",
                    pct(share),
                    pct(p.high_ppm)
                ),
            ));
            continue;
        }
        let reservation = match ledger.reserve(ch.id, p.budget_per_period, cost, now) {
            Ok(r) => r,
            Err(Error::OverBudget { available, .. }) => {
                decisions[i] = Some(decision(
                    ch,
                    Reason::OverBudget,
                    format!(
                        "Withdrawing {idle} idle surplus costs {cost}, but the budget left this \
                         period is {available}."
                    ),
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        used[i] = true;
        let sentence = format!(
            "Local share {} is above {} and recent demand ({} per period) leaves {idle} idle: \
             withdrawing it to the wallet costs {cost}.",
            pct(share),
            pct(p.high_ppm),
            ch.demand_out()
        );
        let index = actions.len();
        decisions[i] = Some(Decision {
            channel: ch.id,
            reason: Reason::IdleSurplus,
            sentence: sentence.clone(),
            action: Some(index),
        });
        actions.push(Action {
            kind: ActionKind::Withdraw { channel: ch.id },
            amount: idle,
            cost,
            restores: idle,
            expected_earnings: 0,
            budget_channel: ch.id,
            reservation,
            reason: Reason::IdleSurplus,
            sentence,
        });
    }

    let decisions = decisions
        .into_iter()
        .zip(channels)
        .map(|(d, ch)| {
            d.unwrap_or_else(|| {
                decision(
                    ch,
                    Reason::Balanced,
                    format!(
                        "Nothing to do: local share {} is within [{}, {}].",
                        pct(ch.local_ppm()),
                        pct(ch.policy.low_ppm),
                        pct(ch.policy.high_ppm)
                    ),
                )
            })
        })
        .collect();
    Ok(Plan { actions, decisions })
}

/// How much an on-chain action should bring to a depleted channel that needs `need` to reach
/// its target. A transaction costs the same gas whatever it carries, so it brings what the
/// channel's recent outbound demand would use over the horizon (as an order quantity covers a
/// period of demand), at least `need`; but never so much that the channel ends above its high
/// threshold, where it would count as surplus and could be moved away again. The deposit grows
/// the capacity too: `(local + a) / (capacity + a) <= high`.
fn onchain_amount(dst: &Channel, need: Amount, horizon: Amount) -> Result<Amount> {
    let demand = dst.demand_out().saturating_mul(horizon);
    if demand <= need {
        return Ok(need);
    }
    let high = u128::from(dst.policy.high_ppm);
    let up_to_high = if high >= PPM {
        Amount::MAX
    } else {
        let room = mul_ppm(dst.capacity, dst.policy.high_ppm)
            .ok_or(Error::Overflow)?
            .saturating_sub(dst.local);
        room.checked_mul(PPM).ok_or(Error::Overflow)? / (PPM - high)
    };
    Ok(need.max(demand.min(up_to_high)))
}

fn decision(ch: &Channel, reason: Reason, sentence: String) -> Decision {
    Decision {
        channel: ch.id,
        reason,
        sentence,
        action: None,
    }
}
