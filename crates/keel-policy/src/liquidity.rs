//! What the node has learned about other channels' balances from its own circular rebalances.
//!
//! Balances are private, so without knowledge a direction's liquidity is taken as uniform on
//! `[0, capacity]` (Pickhardt and Richter's prior). An attempt that failed at a hop teaches that
//! its liquidity is below what it was asked to carry; the hops before it carried their share
//! (at least that much); a cycle that went through moved its amount out of every hop. Those
//! bounds narrow the uniform range — the model of keel-routing's `Scorer` and of LDK's
//! probabilistic scorer — and fade back towards `[0, capacity]` with a half-life, since other
//! payments keep moving liquidity the node cannot see.
//!
//! The policy only reads this (see [`crate::Inputs::liquidity`]); the caller records what its
//! attempts returned. Keyed by the [`crate::Graph`]'s edge indices (as in
//! [`crate::Route::edges`]) and kept in `u128` base units like the rest of the crate, so the
//! policy stays free of the protocol's 256-bit types.

use std::collections::HashMap;

use crate::types::Amount;

/// LDK's default `liquidity_offset_half_life`: six hours.
pub const DEFAULT_HALF_LIFE_SECS: u64 = 6 * 3_600;

/// Learned bounds of one direction: at least `min`, at most `max`, as of `updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    min: Amount,
    max: Amount,
    updated: u64,
}

/// Learned liquidity bounds per edge of the graph.
#[derive(Debug, Clone)]
pub struct Liquidity {
    learned: HashMap<u32, Bounds>,
    half_life: u64,
}

impl Default for Liquidity {
    fn default() -> Self {
        Self::new(DEFAULT_HALF_LIFE_SECS)
    }
}

impl Liquidity {
    /// Nothing learned yet; bounds fade halfway back to ignorance every `half_life_secs`.
    pub fn new(half_life_secs: u64) -> Self {
        Self {
            learned: HashMap::new(),
            half_life: half_life_secs.max(1),
        }
    }

    /// How many edges something was learned about.
    pub fn len(&self) -> usize {
        self.learned.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.learned.is_empty()
    }

    /// Edge `edge` (of `capacity`) could not carry `amount` at `now`.
    pub fn failed(&mut self, edge: u32, capacity: Amount, amount: Amount, now: u64) {
        let mut b = self.bounds(edge, capacity, now);
        b.max = b.max.min(amount.saturating_sub(1));
        b.min = b.min.min(b.max);
        self.store(edge, b, now);
    }

    /// Edge `edge` carried `amount` in an attempt that failed further on (nothing moved): it
    /// holds at least `amount`.
    pub fn held(&mut self, edge: u32, capacity: Amount, amount: Amount, now: u64) {
        let mut b = self.bounds(edge, capacity, now);
        b.min = b.min.max(amount.min(capacity));
        b.max = b.max.max(b.min);
        self.store(edge, b, now);
    }

    /// Edge `edge` carried `amount` in an attempt that went through: it held at least `amount`
    /// and now holds `amount` less.
    pub fn succeeded(&mut self, edge: u32, capacity: Amount, amount: Amount, now: u64) {
        let mut b = self.bounds(edge, capacity, now);
        b.min = b.min.max(amount.min(capacity)) - amount.min(capacity);
        b.max = b.max.max(amount.min(capacity)) - amount.min(capacity);
        self.store(edge, b, now);
    }

    /// The chance edge `edge` of `capacity` carries `amount` at `now`: uniform on the learned
    /// bounds, faded towards `[0, capacity]` (a score, not money).
    pub fn probability(&self, edge: u32, capacity: Amount, amount: Amount, now: u64) -> f64 {
        if amount > capacity {
            return 0.0;
        }
        let b = self.bounds(edge, capacity, now);
        if amount <= b.min {
            1.0
        } else if amount > b.max {
            0.0
        } else {
            // Floats only for the score. Uniform on [min, max]: P(liquidity >= amount).
            (b.max as f64 - amount as f64 + 1.0) / (b.max as f64 - b.min as f64 + 1.0)
        }
    }

    fn store(&mut self, edge: u32, mut b: Bounds, now: u64) {
        b.updated = now;
        self.learned.insert(edge, b);
    }

    /// The bounds in force at `now`: each half-life since they were learned halves their
    /// distance to `[0, capacity]`.
    fn bounds(&self, edge: u32, capacity: Amount, now: u64) -> Bounds {
        let ignorance = Bounds {
            min: 0,
            max: capacity,
            updated: now,
        };
        let Some(b) = self.learned.get(&edge) else {
            return ignorance;
        };
        let halvings = now.saturating_sub(b.updated) / self.half_life;
        if halvings >= 128 {
            return ignorance;
        }
        let max = b.max.min(capacity);
        Bounds {
            min: b.min.min(max) >> halvings,
            max: capacity - ((capacity - max) >> halvings),
            updated: b.updated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_rules_the_amount_out_until_it_fades() {
        let mut l = Liquidity::new(100);
        assert!((l.probability(7, 1_000, 500, 0) - 0.5).abs() < 0.01);
        l.failed(7, 1_000, 500, 0);
        assert_eq!(l.probability(7, 1_000, 500, 50), 0.0);
        assert!(l.probability(7, 1_000, 250, 50) > 0.4);
        // One half-life later the bound is halfway back: 500 is possible again, less likely
        // than knowing nothing.
        let p = l.probability(7, 1_000, 500, 100);
        assert!(p > 0.0 && p < 0.5, "{p}");
        assert!((l.probability(7, 1_000, 500, 100 * 200) - 0.5).abs() < 0.01);
    }

    #[test]
    fn held_and_succeeded_move_the_lower_bound() {
        let mut l = Liquidity::new(1_000);
        l.held(1, 1_000, 600, 0);
        assert_eq!(l.probability(1, 1_000, 600, 0), 1.0);
        l.succeeded(1, 1_000, 600, 0);
        // At least 0 and at most 400 left.
        assert_eq!(l.probability(1, 1_000, 401, 0), 0.0);
        assert!(l.probability(1, 1_000, 200, 0) > 0.4);
        assert_eq!(l.len(), 1);
    }
}
