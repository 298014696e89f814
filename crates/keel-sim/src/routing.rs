//! Routing over the balances the simulator knows: the cheapest single path on which every hop
//! can carry the amount plus the fees of the hops after it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use keel_policy::Amount;

use crate::network::Network;

/// A path: `(channel, side that sends)` per hop, and the amount each hop carries.
#[derive(Debug, Clone, Default)]
pub struct Path {
    /// Hops from the payer.
    pub hops: Vec<(u32, u8)>,
    /// What each hop carries (the amount delivered plus later hops' fees).
    pub carried: Vec<Amount>,
}

impl Path {
    /// The fees the payer pays on top of the amount.
    pub fn fees(&self) -> Amount {
        match (self.carried.first(), self.carried.last()) {
            (Some(first), Some(last)) => first - last,
            _ => 0,
        }
    }
}

/// Reusable buffers for path searches over one network.
#[derive(Debug)]
pub struct Router {
    need: Vec<Amount>,
    next: Vec<(u32, u8)>,
    hops: Vec<u8>,
    done: Vec<bool>,
    touched: Vec<u32>,
    heap: BinaryHeap<Reverse<(Amount, u32)>>,
    /// Longest path considered.
    pub max_hops: u8,
}

impl Router {
    /// Buffers for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Self {
            need: vec![Amount::MAX; nodes],
            next: vec![(u32::MAX, 0); nodes],
            hops: vec![0; nodes],
            done: vec![false; nodes],
            touched: Vec::new(),
            heap: BinaryHeap::new(),
            max_hops: 20,
        }
    }

    /// The cheapest path delivering `amount` from `src` to `dst`, searched backwards from
    /// `dst` so each hop knows what it must carry. With `by_capacity`, balances are ignored and
    /// only capacity limits a hop (the path a payer would try without knowing balances).
    /// `avoid` is never an intermediate hop.
    pub fn find(
        &mut self,
        net: &Network,
        src: u32,
        dst: u32,
        amount: Amount,
        by_capacity: bool,
        avoid: Option<u32>,
    ) -> Option<Path> {
        // Exact shortcuts: every hop carries at least `amount`, so without a channel at the
        // payer that can send it, or one at the payee that can bring it, no search can succeed
        // (a failed search would otherwise visit everything reachable). `at` is the payer's or
        // the payee's side of the channel; a channel whose other end is `avoid` counts only if
        // `avoid` is the path's other end, since it may not be an intermediate hop.
        let carries = |c: u32, at: u8, sends: bool, other_end: u32| {
            let ch = &net.channels[c as usize];
            let peer = ch.nodes[1 - at as usize];
            if avoid == Some(peer) && peer != other_end {
                return false;
            }
            let room = if by_capacity {
                ch.capacity()
            } else if sends {
                ch.balance[at as usize]
            } else {
                ch.balance[1 - at as usize]
            };
            room >= amount
        };
        let can_send = net.adj[src as usize]
            .iter()
            .any(|&(c, at)| carries(c, at, true, dst));
        let can_receive = net.adj[dst as usize]
            .iter()
            .any(|&(c, at)| carries(c, at, false, src));
        if !can_send || !can_receive {
            return None;
        }
        for &t in &self.touched {
            let t = t as usize;
            self.need[t] = Amount::MAX;
            self.done[t] = false;
            self.next[t] = (u32::MAX, 0);
            self.hops[t] = 0;
        }
        self.touched.clear();
        self.heap.clear();
        self.need[dst as usize] = amount;
        self.touched.push(dst);
        self.heap.push(Reverse((amount, dst)));
        let mut found = false;
        while let Some(Reverse((x, v))) = self.heap.pop() {
            let vi = v as usize;
            if self.done[vi] {
                continue;
            }
            self.done[vi] = true;
            if v == src {
                found = true;
                break;
            }
            if self.hops[vi] >= self.max_hops || (avoid == Some(v) && v != dst) {
                continue;
            }
            for &(c, side_v) in &net.adj[vi] {
                let ch = &net.channels[c as usize];
                let side_u = 1 - side_v as usize;
                let u = ch.nodes[side_u];
                let ui = u as usize;
                if self.done[ui] {
                    continue;
                }
                let room = if by_capacity {
                    ch.capacity()
                } else {
                    ch.balance[side_u]
                };
                if room < x {
                    continue;
                }
                let fee = if u == src {
                    0
                } else {
                    match ch.fee[side_u].for_amount(x) {
                        Some(f) => f,
                        None => continue,
                    }
                };
                let Some(xu) = x.checked_add(fee) else {
                    continue;
                };
                if xu < self.need[ui] {
                    if self.need[ui] == Amount::MAX {
                        self.touched.push(u);
                    }
                    self.need[ui] = xu;
                    self.next[ui] = (c, side_u as u8);
                    self.hops[ui] = self.hops[vi] + 1;
                    self.heap.push(Reverse((xu, u)));
                }
            }
        }
        if !found {
            return None;
        }
        let mut path = Path::default();
        let mut at = src;
        while at != dst {
            let (c, side) = self.next[at as usize];
            path.hops.push((c, side));
            let ch = &net.channels[c as usize];
            let to = ch.nodes[1 - side as usize];
            path.carried.push(self.need[to as usize]);
            at = to;
        }
        Some(path)
    }
}

/// A search by capacity, as asked: payer, payee, amount, node to avoid.
type Query = (u32, u32, Amount, Option<u32>);

/// Answers of searches by capacity, remembered. Such a search reads only capacities and fees,
/// which payments and circular rebalances never change, so the same question gets the same
/// answer; greedy rebalancing asks the same questions pass after pass for the channels that
/// did not move (most of a large network between two passes). Two generations, this pass's
/// answers and the last pass's, bound the memory; [`CapacityRoutes::forget`] drops everything
/// when a capacity changes.
#[derive(Debug, Default)]
pub struct CapacityRoutes {
    current: HashMap<Query, Option<Path>>,
    previous: HashMap<Query, Option<Path>>,
}

impl CapacityRoutes {
    /// What [`Router::find`] by capacity answers, from memory when it was asked this pass or
    /// the last.
    pub fn find(
        &mut self,
        router: &mut Router,
        net: &Network,
        src: u32,
        dst: u32,
        amount: Amount,
        avoid: Option<u32>,
    ) -> Option<Path> {
        let query = (src, dst, amount, avoid);
        if let Some(answer) = self.current.get(&query) {
            return answer.clone();
        }
        let answer = match self.previous.remove(&query) {
            Some(answer) => answer,
            None => router.find(net, src, dst, amount, true, avoid),
        };
        self.current.insert(query, answer.clone());
        answer
    }

    /// A new pass: what was not asked in the last one is dropped.
    pub fn next_pass(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    /// A capacity changed: nothing remembered holds any more.
    pub fn forget(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Moves a found path's amounts across its channels. The caller found it on current balances.
pub fn apply(net: &mut Network, path: &Path) {
    for (&(c, side), &x) in path.hops.iter().zip(&path.carried) {
        let ch = &mut net.channels[c as usize];
        let s = side as usize;
        ch.balance[s] -= x;
        ch.balance[1 - s] += x;
    }
}
