//! Invoices issued by this process and not changed since, kept in memory: a payee looks up
//! the invoice of every lock that pays it, and reading it from SQLite costs a hand-off to a
//! reader thread and back, a tenth of the payee's work for a payment.
//!
//! Only an invoice as first stored is kept, once it is durable; any later write of the same
//! invoice (marking it paid) drops it first, so a hit is always the stored row. Bounded: the
//! oldest entries leave first, and a miss reads the database.

use std::collections::{HashMap, VecDeque};

use keel_core::B256;

use super::Invoice;

/// Most invoices kept (about 100 bytes each).
pub(super) const MAX_FRESH_INVOICES: usize = 16_384;

#[derive(Debug, Default)]
pub(super) struct FreshInvoices {
    by_hash: HashMap<B256, Invoice>,
    /// Insertion order, for eviction; may name hashes already dropped.
    order: VecDeque<B256>,
}

impl FreshInvoices {
    /// Keeps a newly stored invoice.
    pub(super) fn insert(&mut self, hash: B256, invoice: Invoice) {
        while self.by_hash.len() >= MAX_FRESH_INVOICES || self.order.len() >= 2 * MAX_FRESH_INVOICES
        {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.by_hash.remove(&oldest);
                }
                None => break,
            }
        }
        if self.by_hash.insert(hash, invoice).is_none() {
            self.order.push_back(hash);
        }
    }

    /// Forgets an invoice about to be written again.
    pub(super) fn remove(&mut self, hash: &B256) {
        self.by_hash.remove(hash);
    }

    pub(super) fn get(&self, hash: &B256) -> Option<Invoice> {
        self.by_hash.get(hash).copied()
    }
}

#[cfg(test)]
mod tests {
    use keel_core::U256;

    use super::*;

    fn invoice(n: u64) -> Invoice {
        Invoice {
            secret: B256::with_last_byte(1),
            amount: U256::from(n),
            expiry: n,
            paid: false,
            hold: false,
        }
    }

    #[test]
    fn the_oldest_leave_first_and_a_removed_one_is_gone() {
        let mut fresh = FreshInvoices::default();
        let hash = |n: u64| B256::from(U256::from(n));
        for n in 0..MAX_FRESH_INVOICES as u64 + 10 {
            fresh.insert(hash(n), invoice(n));
        }
        assert_eq!(fresh.by_hash.len(), MAX_FRESH_INVOICES);
        assert_eq!(fresh.get(&hash(9)), None);
        assert_eq!(fresh.get(&hash(10)), Some(invoice(10)));
        fresh.remove(&hash(10));
        assert_eq!(fresh.get(&hash(10)), None);
        // Removing and adding again never lets the order queue grow without bound.
        for _ in 0..3 * MAX_FRESH_INVOICES {
            fresh.remove(&hash(1));
            fresh.insert(hash(1), invoice(1));
        }
        assert!(fresh.order.len() <= 2 * MAX_FRESH_INVOICES);
        assert_eq!(fresh.get(&hash(1)), Some(invoice(1)));
    }
}
