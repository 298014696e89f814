//! What an open vault took in and paid out, per side: read once from the chain, then kept
//! current from the vault's `Deposited` and `Withdrawn` events, which carry cumulative totals.

use keel_core::U256;

use crate::ChainEventKind;

/// Each side's cumulative deposit and withdrawal of one vault, indexed by [`Side::index`](keel_core::Side::index) (A is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VaultHoldings {
    /// Cumulative deposits.
    pub deposits: [U256; 2],
    /// Cumulative withdrawals.
    pub withdrawn: [U256; 2],
}

impl VaultHoldings {
    /// What the vault holds: both deposits less both withdrawals; `None` if that is not a
    /// number (a vault that paid out more than it took in, or totals beyond 256 bits).
    pub fn capacity(&self) -> Option<U256> {
        let deposits = self.deposits[0].checked_add(self.deposits[1])?;
        let withdrawn = self.withdrawn[0].checked_add(self.withdrawn[1])?;
        deposits.checked_sub(withdrawn)
    }

    /// Takes in `event`'s totals if it is a deposit or a withdrawal; whether it was one. The
    /// totals only grow, so an event already counted (the read saw it, or it came twice) changes
    /// nothing, and events may arrive in any order.
    pub fn apply(&mut self, event: &ChainEventKind) -> bool {
        let (totals, side, total) = match *event {
            ChainEventKind::Deposited { side, total } => (&mut self.deposits, side, total),
            ChainEventKind::Withdrawn { side, total } => (&mut self.withdrawn, side, total),
            _ => return false,
        };
        let slot = &mut totals[side.index()];
        *slot = (*slot).max(total);
        true
    }

    /// The larger of each total in `self` and `other`: two views of one vault, merged.
    pub fn merge(&mut self, other: &Self) {
        for i in 0..2 {
            self.deposits[i] = self.deposits[i].max(other.deposits[i]);
            self.withdrawn[i] = self.withdrawn[i].max(other.withdrawn[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_core::Side;

    use super::*;

    fn held(deposits: [u64; 2], withdrawn: [u64; 2]) -> VaultHoldings {
        VaultHoldings {
            deposits: deposits.map(U256::from),
            withdrawn: withdrawn.map(U256::from),
        }
    }

    #[test]
    fn capacity_is_deposits_less_withdrawals() {
        assert_eq!(held([5, 3], [1, 2]).capacity(), Some(U256::from(5)));
        assert_eq!(held([1, 0], [0, 2]).capacity(), None);
        let huge = VaultHoldings {
            deposits: [U256::MAX, U256::from(1)],
            withdrawn: [U256::ZERO; 2],
        };
        assert_eq!(huge.capacity(), None);
    }

    #[test]
    fn totals_only_grow_whatever_order_events_come_in() {
        let mut h = held([5, 0], [0, 0]);
        let later = ChainEventKind::Deposited {
            side: Side::B,
            total: U256::from(7),
        };
        let earlier = ChainEventKind::Deposited {
            side: Side::B,
            total: U256::from(4),
        };
        assert!(h.apply(&later));
        assert!(h.apply(&earlier));
        assert!(h.apply(&later));
        assert_eq!(h, held([5, 7], [0, 0]));
        assert!(h.apply(&ChainEventKind::Withdrawn {
            side: Side::A,
            total: U256::from(2),
        }));
        assert_eq!(h.capacity(), Some(U256::from(10)));
        assert!(!h.apply(&ChainEventKind::CooperativelyClosed {
            payout_a: U256::ZERO,
            payout_b: U256::ZERO,
        }));
        assert_eq!(h.capacity(), Some(U256::from(10)));
    }

    #[test]
    fn merging_keeps_the_larger_of_each_total() {
        let mut read = held([5, 0], [1, 0]);
        read.merge(&held([3, 2], [0, 0]));
        assert_eq!(read, held([5, 2], [1, 0]));
    }
}
