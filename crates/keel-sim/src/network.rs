//! The simulated network: nodes, channels with balances the simulator knows, fees; generated
//! (seeded scale-free) or read from files in the ln-snapshot format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use keel_policy::{Amount, Edge, Fee, Graph, NodeId};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// One channel between nodes `a` (side 0) and `b` (side 1).
#[derive(Debug, Clone)]
pub struct SimChannel {
    /// The two ends.
    pub nodes: [u32; 2],
    /// Each side's spendable balance.
    pub balance: [Amount; 2],
    /// What each side charges to forward over the channel to the other.
    pub fee: [Fee; 2],
    /// The chain the vault lives on.
    pub chain: u64,
}

impl SimChannel {
    /// Both balances together.
    pub fn capacity(&self) -> Amount {
        self.balance[0] + self.balance[1]
    }

    /// The side `node` is on (0 or 1).
    pub fn side_of(&self, node: u32) -> usize {
        usize::from(self.nodes[0] != node)
    }
}

/// Nodes and channels; `adj[node]` lists `(channel, side of node)`.
#[derive(Debug, Clone)]
pub struct Network {
    /// The channels.
    pub channels: Vec<SimChannel>,
    /// For each node, its channels and its side in each.
    pub adj: Vec<Vec<(u32, u8)>>,
    /// What one base unit is ("wei" or "msat"), for reports.
    pub unit: &'static str,
}

/// Parameters of a generated network.
#[derive(Debug, Clone)]
pub struct Generate {
    /// Nodes.
    pub nodes: usize,
    /// Channels.
    pub channels: usize,
    /// Median channel capacity (log-normal, sigma 1), in base units.
    pub median_capacity: Amount,
    /// Seed.
    pub seed: u64,
}

impl Default for Generate {
    fn default() -> Self {
        Self {
            nodes: 1_000,
            channels: 5_000,
            median_capacity: 500_000_000_000_000_000,
            seed: 1,
        }
    }
}

impl Network {
    fn from_channels(nodes: usize, channels: Vec<SimChannel>, unit: &'static str) -> Self {
        let mut adj = vec![Vec::new(); nodes];
        for (i, c) in channels.iter().enumerate() {
            adj[c.nodes[0] as usize].push((i as u32, 0));
            adj[c.nodes[1] as usize].push((i as u32, 1));
        }
        Self {
            channels,
            adj,
            unit,
        }
    }

    /// A scale-free network (Barabási-Albert preferential attachment, then extra channels
    /// between nodes drawn by degree until the count is reached), capacities log-normal around
    /// the median, each split uniformly between the two sides, forwarding fees log-uniform on
    /// 1..1,000 ppm. Amounts in wei.
    pub fn generate(p: &Generate) -> Result<Self> {
        if p.nodes < 3 || p.channels < p.nodes - 1 {
            return Err(Error::Topology(format!(
                "need at least 3 nodes and nodes - 1 channels, got {} and {}",
                p.nodes, p.channels
            )));
        }
        let mut rng = Rng::new(p.seed, 1);
        let m = (p.channels / p.nodes).max(1);
        let mut pairs: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut order: Vec<(u32, u32)> = Vec::new();
        // Each node appears in `ends` once per channel end: drawing from it is drawing by degree.
        let mut ends: Vec<u32> = Vec::new();
        let mut add = |a: u32, b: u32, ends: &mut Vec<u32>, order: &mut Vec<(u32, u32)>| -> bool {
            let key = (a.min(b), a.max(b));
            if a == b || !pairs.insert(key) {
                return false;
            }
            order.push(key);
            ends.push(a);
            ends.push(b);
            true
        };
        let core = (m + 1).min(p.nodes) as u32;
        for a in 0..core {
            for b in a + 1..core {
                add(a, b, &mut ends, &mut order);
            }
        }
        for v in core..p.nodes as u32 {
            let mut made = 0;
            let mut tries = 0;
            while made < m && tries < 100 * m {
                tries += 1;
                let u = ends[rng.below(ends.len())];
                if add(v, u, &mut ends, &mut order) {
                    made += 1;
                }
            }
        }
        let mut tries = 0;
        while order.len() < p.channels && tries < 100 * p.channels {
            tries += 1;
            let a = ends[rng.below(ends.len())];
            let b = if rng.unit() < 0.5 {
                ends[rng.below(ends.len())]
            } else {
                rng.below(p.nodes) as u32
            };
            add(a, b, &mut ends, &mut order);
        }
        let ln_median = (p.median_capacity as f64).ln();
        let channels = order
            .into_iter()
            .map(|(a, b)| {
                let capacity = rng.log_normal(ln_median, 1.0) as Amount;
                let split = rng.unit();
                let left = (capacity as f64 * split) as Amount;
                let mut fee = || Fee {
                    base: 0,
                    ppm: (1000f64.powf(rng.unit())) as u32,
                };
                SimChannel {
                    nodes: [a, b],
                    balance: [left, capacity - left],
                    fee: [fee(), fee()],
                    chain: 1,
                }
            })
            .collect();
        Ok(Self::from_channels(p.nodes, channels, "wei"))
    }

    /// A topology in the ln-snapshot format (`channels_ln.csv`, `edges_ln.csv` in `dir`; see
    /// `../shared/data/ln-snapshot/README.md`): node ids may be any integers, balances and fees
    /// come from the edges, a channel's capacity is the sum of its two balances. Amounts in msat.
    pub fn read_snapshot(dir: &Path) -> Result<Self> {
        let channels_csv = read(&dir.join("channels_ln.csv"))?;
        let edges_csv = read(&dir.join("edges_ln.csv"))?;
        // edge id -> (from, balance, fee_base, fee_ppm)
        let mut edges: BTreeMap<u64, (u64, Amount, Amount, u32)> = BTreeMap::new();
        for (line, row) in rows(&edges_csv, "edges_ln.csv", 8)? {
            let num = |i: usize| parse(row[i], "edges_ln.csv", line);
            let fee_ppm = u32::try_from(num(7)?)
                .map_err(|_| Error::Parse(format!("edges_ln.csv:{line}: fee too large")))?;
            edges.insert(num(0)? as u64, (num(3)? as u64, num(5)?, num(6)?, fee_ppm));
        }
        let mut ids: BTreeMap<u64, u32> = BTreeMap::new();
        let mut channels = Vec::new();
        for (line, row) in rows(&channels_csv, "channels_ln.csv", 6)? {
            let num = |i: usize| parse(row[i], "channels_ln.csv", line);
            let (e1, e2) = (num(1)? as u64, num(2)? as u64);
            let (n1, n2) = (num(3)? as u64, num(4)? as u64);
            let capacity = num(5)?;
            if n1 == n2 {
                continue;
            }
            let mut dense = |n: u64| {
                let next = ids.len() as u32;
                *ids.entry(n).or_insert(next)
            };
            let (a, b) = (dense(n1), dense(n2));
            let side = |e: u64, from: u64| -> Option<(Amount, Fee)> {
                let &(f, balance, base, ppm) = edges.get(&e)?;
                (f == from).then_some((balance, Fee { base, ppm }))
            };
            // A channel whose edges are missing gets its capacity split in half at no fee.
            let (ba, fa) = side(e1, n1)
                .or_else(|| side(e2, n1))
                .unwrap_or((capacity / 2, Fee::default()));
            let (bb, fb) = side(e2, n2)
                .or_else(|| side(e1, n2))
                .unwrap_or((capacity - capacity / 2, Fee::default()));
            channels.push(SimChannel {
                nodes: [a, b],
                balance: [ba, bb],
                fee: [fa, fb],
                chain: 1,
            });
        }
        if channels.is_empty() {
            return Err(Error::Topology("no channels in channels_ln.csv".into()));
        }
        Ok(Self::from_channels(ids.len(), channels, "msat"))
    }

    /// How many nodes.
    pub fn node_count(&self) -> usize {
        self.adj.len()
    }

    /// Each node's total capacity over its channels.
    pub fn node_capacity(&self) -> Vec<Amount> {
        self.adj
            .iter()
            .map(|chs| {
                chs.iter()
                    .map(|&(c, _)| self.channels[c as usize].capacity())
                    .sum()
            })
            .collect()
    }

    /// The median channel capacity.
    pub fn median_capacity(&self) -> Amount {
        let mut caps: Vec<Amount> = self.channels.iter().map(|c| c.capacity()).collect();
        caps.sort_unstable();
        caps.get(caps.len() / 2).copied().unwrap_or(0)
    }

    /// Sum of all channel capacities.
    pub fn total_capacity(&self) -> Amount {
        self.channels.iter().map(|c| c.capacity()).sum()
    }

    /// The graph a node knows: every direction with its fee and the channel's capacity (not
    /// its balance). Edge `2 * c + side` is channel `c` forwarded from `side`.
    pub fn public_graph(&self) -> Graph {
        let mut g = Graph::new(self.node_count());
        for c in &self.channels {
            for side in 0..2 {
                g.add_edge(Edge {
                    from: NodeId(c.nodes[side]),
                    to: NodeId(c.nodes[1 - side]),
                    fee: c.fee[side],
                    capacity: c.capacity(),
                });
            }
        }
        g
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Io(path.display().to_string(), e))
}

fn rows<'a>(text: &'a str, file: &str, min_cols: usize) -> Result<Vec<(usize, Vec<&'a str>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row: Vec<&str> = line.split(',').map(str::trim).collect();
        // A header is any first line whose first field is not a number.
        if i == 0 && row[0].parse::<u64>().is_err() {
            continue;
        }
        if row.len() < min_cols {
            return Err(Error::Parse(format!(
                "{file}:{}: expected {min_cols} columns, got {}",
                i + 1,
                row.len()
            )));
        }
        out.push((i + 1, row));
    }
    Ok(out)
}

fn parse(field: &str, file: &str, line: usize) -> Result<Amount> {
    field
        .parse::<Amount>()
        .or_else(|_| field.parse::<f64>().map(|f| f.max(0.0) as Amount))
        .map_err(|_| Error::Parse(format!("{file}:{line}: not a number: {field:?}")))
}
