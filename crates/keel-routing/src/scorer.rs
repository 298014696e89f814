//! How likely a channel direction is to carry an amount: what the payer learned from earlier
//! attempts, fading back to ignorance over time.
//!
//! Without knowledge, the liquidity of a direction is taken as uniform between zero and the
//! capacity (Pickhardt and Richter's model, which LDK's scorer uses too), so carrying `a` out of
//! capacity `c` succeeds with probability `(c + 1 − a) / (c + 1)`. A failure at `a` teaches
//! that the liquidity is below `a`; a success, that it was at least `a` (and is now `a` less).
//! Those bounds narrow the uniform range; they decay towards `[0, c]` with a half-life, since
//! other payments keep moving the liquidity the payer cannot see.

use std::collections::HashMap;

use keel_core::{B256, U256};

/// What is known of one direction's liquidity: at least `min`, at most `max`, as of `updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Liquidity known to be available.
    pub min: U256,
    /// Liquidity known not to be exceeded.
    pub max: U256,
    /// When this was learned (unix seconds).
    pub updated: u64,
}

/// Learned liquidity bounds per channel direction, and exact liquidity of the payer's own
/// channels (which it knows).
#[derive(Debug, Clone)]
pub struct Scorer {
    learned: HashMap<(B256, u8), Bounds>,
    local: HashMap<(B256, u8), U256>,
    /// Seconds after which a learned bound has moved halfway back to ignorance.
    pub half_life: u64,
}

impl Default for Scorer {
    fn default() -> Self {
        Self::new(3_600)
    }
}

impl Scorer {
    /// A scorer that knows nothing yet.
    pub fn new(half_life: u64) -> Self {
        Self {
            learned: HashMap::new(),
            local: HashMap::new(),
            half_life: half_life.max(1),
        }
    }

    /// The exact liquidity the payer has in its own channel `id`, direction `direction`.
    pub fn set_local(&mut self, id: B256, direction: u8, available: U256) {
        self.local.insert((id, direction), available);
    }

    /// A lock of `amount` failed for lack of liquidity on `id` in `direction`.
    pub fn failed(&mut self, id: B256, direction: u8, amount: U256, capacity: U256, now: u64) {
        let mut bounds = self.bounds(id, direction, capacity, now);
        let below = amount.saturating_sub(U256::from(1));
        bounds.max = bounds.max.min(below);
        bounds.min = bounds.min.min(bounds.max);
        bounds.updated = now;
        self.learned.insert((id, direction), bounds);
    }

    /// `id` in `direction` carried a lock of `amount` that was later removed: it holds at least
    /// `amount`.
    pub fn held(&mut self, id: B256, direction: u8, amount: U256, capacity: U256, now: u64) {
        let mut bounds = self.bounds(id, direction, capacity, now);
        bounds.min = bounds.min.max(amount.min(capacity));
        bounds.max = bounds.max.max(bounds.min);
        bounds.updated = now;
        self.learned.insert((id, direction), bounds);
    }

    /// A lock of `amount` went through `id` in `direction`: there was at least `amount`, and
    /// there is now `amount` less.
    pub fn succeeded(&mut self, id: B256, direction: u8, amount: U256, capacity: U256, now: u64) {
        let mut bounds = self.bounds(id, direction, capacity, now);
        bounds.min = bounds.min.max(amount).saturating_sub(amount);
        bounds.max = bounds.max.max(amount).saturating_sub(amount);
        bounds.updated = now;
        self.learned.insert((id, direction), bounds);
    }

    /// The bounds in force at `now`: learned ones, faded towards `[0, capacity]`.
    pub fn bounds(&self, id: B256, direction: u8, capacity: U256, now: u64) -> Bounds {
        if self.local.is_empty() && self.learned.is_empty() {
            return Bounds {
                min: U256::ZERO,
                max: capacity,
                updated: now,
            };
        }
        if let Some(&available) = self.local.get(&(id, direction)) {
            return Bounds {
                min: available,
                max: available,
                updated: now,
            };
        }
        let Some(learned) = self.learned.get(&(id, direction)) else {
            return Bounds {
                min: U256::ZERO,
                max: capacity,
                updated: now,
            };
        };
        // Each half-life halves the distance to ignorance; after 64 it is gone.
        let halvings = now.saturating_sub(learned.updated) / self.half_life;
        if halvings >= 64 {
            return Bounds {
                min: U256::ZERO,
                max: capacity,
                updated: now,
            };
        }
        let max = learned.max.min(capacity);
        Bounds {
            min: learned.min.min(max) >> halvings as usize,
            max: capacity - ((capacity - max) >> halvings as usize),
            updated: learned.updated,
        }
    }

    /// Whether nothing was learned and no local liquidity set: every direction has the prior.
    pub fn knows_nothing(&self) -> bool {
        self.local.is_empty() && self.learned.is_empty()
    }

    /// The probability that a direction of `capacity`, of which nothing is known, carries
    /// `amount`: `(capacity + 1 − amount) / (capacity + 1)`.
    pub fn prior(amount: U256, capacity: U256) -> f64 {
        if amount > capacity {
            0.0
        } else {
            (approx(capacity - amount) + 1.0) / (approx(capacity) + 1.0)
        }
    }

    /// Probability that `id` in `direction` carries `amount` now.
    pub fn probability(
        &self,
        id: B256,
        direction: u8,
        amount: U256,
        capacity: U256,
        now: u64,
    ) -> f64 {
        let Bounds { min, max, .. } = self.bounds(id, direction, capacity, now);
        if amount <= min {
            1.0
        } else if amount > max {
            0.0
        } else {
            // Uniform on [min, max]: P(liquidity >= amount).
            let span = approx(max - min) + 1.0;
            (approx(max - amount) + 1.0) / span
        }
    }
}

/// `x` as a float, for costs and probabilities only (exact amounts stay `U256`).
pub(crate) fn approx(x: U256) -> f64 {
    let bits = x.bit_len();
    if bits <= 64 {
        x.to::<u64>() as f64
    } else {
        let shift = bits - 64;
        (x >> shift).to::<u64>() as f64 * 2f64.powi(shift as i32)
    }
}
