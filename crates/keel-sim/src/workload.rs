//! Payments to simulate: SimLN-style random activity, and directional demand towards a share
//! of receiving nodes (merchants, exchanges).

use keel_policy::Amount;
use serde::Serialize;

use crate::network::Network;
use crate::rng::{Rng, Weighted};

/// One payment.
#[derive(Debug, Clone, Copy)]
pub struct Payment {
    /// When it is sent, in simulated seconds.
    pub time: f64,
    /// Payer.
    pub src: u32,
    /// Payee.
    pub dst: u32,
    /// Amount delivered, in base units.
    pub amount: Amount,
}

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// SimLN random activity: any node pays any other, destinations weighted by capacity.
    Random,
    /// A share of nodes mostly receive, so channels towards them drain steadily.
    Directional,
}

/// Workload parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Which workload.
    pub kind: Kind,
    /// How many payments.
    pub payments: usize,
    /// Expected payment amount (the log-normal's mean), in base units.
    #[serde(serialize_with = "crate::report::amount")]
    pub expected_amount: Amount,
    /// Payments per simulated second over the whole network (Poisson arrivals).
    pub rate: f64,
    /// Directional: the share of nodes that mostly receive.
    pub sink_share: f64,
    /// Directional: the chance a payment goes to a receiving node.
    pub sink_bias: f64,
    /// Seed.
    pub seed: u64,
}

impl Workload {
    /// The payments, in time order. Amounts follow SimLN: log-normal with mean `E` and
    /// `sigma^2 = 2 (ln L - ln E)`, `L = min(source capacity, destination capacity) / 2`
    /// (sigma at least 0.1 when `L <= E`); inter-arrival times are exponential.
    pub fn generate(&self, net: &Network) -> Vec<Payment> {
        let mut rng = Rng::new(self.seed, 2);
        let n = net.node_count();
        let caps = net.node_capacity();
        let all: Vec<u32> = (0..n as u32).collect();
        let weights: Vec<f64> = caps.iter().map(|&c| c as f64).collect();
        let by_capacity = Weighted::new(all.clone(), &weights);
        let (sinks, sources) = match self.kind {
            Kind::Random => (None, None),
            Kind::Directional => {
                let k = ((n as f64 * self.sink_share).round() as usize).clamp(1, n - 1);
                let mut order = all.clone();
                for i in 0..k {
                    let j = i + rng.below(n - i);
                    order.swap(i, j);
                }
                let sink_ids: Vec<u32> = order[..k].to_vec();
                let sink_w: Vec<f64> = sink_ids.iter().map(|&s| caps[s as usize] as f64).collect();
                let source_ids: Vec<u32> = order[k..].to_vec();
                (Some(Weighted::new(sink_ids, &sink_w)), Some(source_ids))
            }
        };
        let e = self.expected_amount.max(1) as f64;
        let mut time = 0.0;
        let mut out = Vec::with_capacity(self.payments);
        while out.len() < self.payments {
            time += rng.exponential(self.rate);
            let src = match &sources {
                Some(s) => s[rng.below(s.len())],
                None => all[rng.below(n)],
            };
            let dst = match &sinks {
                Some(w) if rng.unit() < self.sink_bias => w.draw(&mut rng),
                _ => by_capacity.draw(&mut rng),
            };
            if src == dst || caps[src as usize] == 0 || caps[dst as usize] == 0 {
                continue;
            }
            let l = caps[src as usize].min(caps[dst as usize]) as f64 / 2.0;
            let sigma2 = (2.0 * (l.ln() - e.ln())).max(0.01);
            let mu = e.ln() - sigma2 / 2.0;
            let amount = rng.log_normal(mu, sigma2.sqrt()).max(1.0) as Amount;
            out.push(Payment {
                time,
                src,
                dst,
                amount,
            });
        }
        out
    }
}
