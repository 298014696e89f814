//! Keel's strategy in the simulator: every node plans with keel-policy on what it can see, the
//! plan runs as written, and what the node's cycles taught it goes back into its next plan.

use std::collections::BTreeMap;

use keel_policy::{
    mul_ppm, ActionKind, Amount, ChainId, Channel, ChannelId, ChannelPolicy, Config, Inputs, NodeId,
};

use super::{CycleFailure, Landing, State, DAY};
use crate::error::Result;

impl State<'_> {
    /// What node `u` learns from its cycle over `hops`: the middle hops are other nodes'
    /// channels (its own, the first and the last, it knows exactly). A success moved each
    /// hop's share; a failure at a hop says it had less, and the hops before it held theirs.
    fn learn(
        &mut self,
        u: u32,
        hops: &[(u32, u8)],
        outcome: &std::result::Result<(Amount, Vec<Amount>), CycleFailure>,
        now: u64,
    ) {
        let Some(learned) = self.learned.get_mut(u as usize) else {
            return;
        };
        let last = hops.len().saturating_sub(1);
        for (i, &(c, s)) in hops.iter().enumerate().take(last).skip(1) {
            let edge = 2 * c + u32::from(s);
            let capacity = self.net.channels[c as usize].capacity();
            match outcome {
                Ok((_, carried)) => learned.succeeded(edge, capacity, carried[i], now),
                Err(CycleFailure::Hop { at, carried }) if i < *at => {
                    learned.held(edge, capacity, carried[i], now);
                }
                Err(CycleFailure::Hop { at, carried }) if i == *at => {
                    learned.failed(edge, capacity, carried[i], now);
                }
                Err(_) => {}
            }
        }
    }

    pub(super) fn keel(&mut self, now_f: f64) -> Result<()> {
        let now = now_f as u64;
        let graph = self.net.public_graph();
        let gas_price = BTreeMap::from([(ChainId(1), self.cfg.gas_price)]);
        // The restored liquidity serves a day; demand was measured over the demand window.
        let span = self.cfg.demand_windows() as f64 * self.cfg.interval;
        let horizon = ((DAY as f64 / span).round() as u32).max(1);
        let config = Config {
            horizon_periods: horizon,
            ..Config::default()
        };
        for u in 0..self.net.node_count() as u32 {
            let chans = self.net.adj[u as usize].clone();
            let out_of_range = chans.iter().any(|&(c, s)| {
                let share = self.share_ppm(c as usize, s as usize);
                share < self.cfg.low_ppm || share > self.cfg.high_ppm
            });
            if !out_of_range {
                continue;
            }
            let channels: Vec<Channel> = chans
                .iter()
                .map(|&(c, s)| {
                    let (ci, si) = (c as usize, s as usize);
                    let ch = &self.net.channels[ci];
                    let capacity = ch.capacity();
                    Channel {
                        id: ChannelId(u64::from(c)),
                        chain: ChainId(ch.chain),
                        peer: NodeId(ch.nodes[1 - si]),
                        capacity,
                        local: ch.balance[si],
                        remote: ch.balance[1 - si],
                        pending_out: 0,
                        pending_in: 0,
                        flow_out: self.demand.sent_over_span(c, s),
                        flow_in: self.demand.sent_over_span(c, 1 - s),
                        failed_out: self.demand.refused_over_span(c, s),
                        peer_fee: ch.fee[1 - si],
                        last_action: self.last_action[ci][si],
                        policy: ChannelPolicy {
                            target_local_ppm: self.cfg.target_ppm,
                            low_ppm: self.cfg.low_ppm,
                            high_ppm: self.cfg.high_ppm,
                            min_amount: 1,
                            max_fee_ppm: self.cfg.max_fee_ppm,
                            budget_per_period: self
                                .cfg
                                .channel_budget_ppm
                                .map_or(Amount::MAX, |ppm| mul_ppm(capacity, ppm).unwrap_or(0)),
                            cooldown_secs: self.cfg.cooldown,
                            value_ppm: self.cfg.value_ppm,
                            withdraw_idle: self.cfg.withdraw_idle,
                        },
                    }
                })
                .collect();
            let wallet = BTreeMap::from([(ChainId(1), self.wallet[u as usize])]);
            let inputs = Inputs {
                me: NodeId(u),
                channels: &channels,
                graph: &graph,
                gas_price: &gas_price,
                gas: self.gas,
                wallet: &wallet,
                now,
                liquidity: self.learned.get(u as usize),
            };
            let ledger = &self.ledgers[u as usize];
            let plan = keel_policy::plan(&inputs, &config, ledger)?;
            for d in &plan.decisions {
                *self
                    .totals
                    .decisions
                    .entry(d.reason.code().to_string())
                    .or_default() += 1;
            }
            let sides: BTreeMap<u32, u8> = chans.iter().copied().collect();
            let side_of = |c: ChannelId| -> (u32, u8) {
                let c = c.0 as u32;
                (c, sides[&c])
            };
            let mut outcomes = Vec::new();
            for a in &plan.actions {
                let ran = match &a.kind {
                    ActionKind::Circular {
                        from, to, edges, ..
                    } => {
                        let (fc, fs) = side_of(*from);
                        let (tc, ts) = side_of(*to);
                        // Edge `2 c + side` of the public graph is channel `c` sent from `side`.
                        let mut hops = vec![(fc, fs)];
                        hops.extend(edges.iter().map(|&e| (e / 2, (e % 2) as u8)));
                        hops.push((tc, 1 - ts));
                        let outcome = self.cycle(&hops, a.amount, a.cost, now)?;
                        self.learn(u, &hops, &outcome, now);
                        outcome.ok().map(|(f, _)| (f, vec![(fc, fs), (tc, ts)]))
                    }
                    ActionKind::Move { from, to } => {
                        let (fc, fs) = side_of(*from);
                        let (tc, ts) = side_of(*to);
                        let bal = &mut self.net.channels[fc as usize].balance[fs as usize];
                        if *bal >= a.amount {
                            *bal -= a.amount;
                            self.onchain(now_f, a.cost);
                            self.totals.moved += a.amount;
                            self.landing.push_back((
                                now_f + self.cfg.confirmation_delay,
                                Landing::Channel {
                                    channel: tc,
                                    side: ts,
                                    amount: a.amount,
                                },
                            ));
                            Some((a.cost, vec![(fc, fs), (tc, ts)]))
                        } else {
                            None
                        }
                    }
                    ActionKind::TopUp { channel } => {
                        let (c, s) = side_of(*channel);
                        if self.wallet[u as usize] >= a.amount {
                            self.wallet[u as usize] -= a.amount;
                            self.onchain(now_f, a.cost);
                            self.landing.push_back((
                                now_f + self.cfg.confirmation_delay,
                                Landing::Channel {
                                    channel: c,
                                    side: s,
                                    amount: a.amount,
                                },
                            ));
                            Some((a.cost, vec![(c, s)]))
                        } else {
                            None
                        }
                    }
                    ActionKind::Withdraw { channel } => {
                        let (c, s) = side_of(*channel);
                        let bal = &mut self.net.channels[c as usize].balance[s as usize];
                        if *bal >= a.amount {
                            *bal -= a.amount;
                            self.onchain(now_f, a.cost);
                            self.landing.push_back((
                                now_f + self.cfg.confirmation_delay,
                                Landing::Wallet {
                                    node: u,
                                    amount: a.amount,
                                },
                            ));
                            Some((a.cost, vec![(c, s)]))
                        } else {
                            None
                        }
                    }
                };
                if ran.is_some() {
                    *self.totals.actions.entry(a.kind.code()).or_default() += 1;
                }
                outcomes.push((a.reservation, ran));
            }
            let ledger = &self.ledgers[u as usize];
            for (reservation, ran) in outcomes {
                match ran {
                    Some((cost, touched)) => {
                        ledger.commit(reservation, cost, now)?;
                        for (c, s) in touched {
                            self.last_action[c as usize][s as usize] = Some(now);
                        }
                    }
                    None => ledger.release(reservation, now)?,
                }
            }
        }
        Ok(())
    }
}
