//! Final payouts when a channel settles; a line-for-line mirror of the vault's settlement
//! so clients and watchtowers can predict what the chain will pay.

use crate::error::{Error, Result};
use alloy::primitives::U256;

/// The latest balance proof's cumulative amounts for one direction (sender → receiver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Direction {
    /// Cumulative amount the sender has transferred to the receiver.
    pub transferred: U256,
    /// Sum of the sender's pending locks.
    pub locked: U256,
}

/// What the vault does with `total` at settlement. The four fields always sum to `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Paid to participant A now.
    pub payout_a: U256,
    /// Paid to participant B now.
    pub payout_b: U256,
    /// Held back for A's pending locks (A → B), released as locks are claimed or expire.
    pub retained_a: U256,
    /// Held back for B's pending locks (B → A).
    pub retained_b: U256,
}

/// Splits `total` between the participants.
///
/// `total` is what the vault holds for the pair at close (`depositA + depositB - withdrawnA -
/// withdrawnB`); `a_to_b` / `b_to_a` are the final balance proofs of each direction. A is
/// paid first and capped at `total`, then locks are reserved (A's first), then B gets the rest,
/// so a dishonest or inconsistent pair of proofs can shift funds but never create them.
/// Fails only where the contract's checked arithmetic would revert.
///
/// ```
/// use keel_core::{settle, Direction, Settlement, U256};
///
/// // A deposited 10 and paid B 3; B deposited 5 and has 1 locked towards A.
/// let s = settle(
///     U256::from(15),
///     U256::from(10),
///     U256::ZERO,
///     Direction { transferred: U256::from(3), locked: U256::ZERO },
///     Direction { transferred: U256::ZERO, locked: U256::from(1) },
/// )?;
/// let want = Settlement { payout_a: U256::from(7), payout_b: U256::from(7), retained_a: U256::ZERO, retained_b: U256::from(1) };
/// assert_eq!(s, want);
/// # Ok::<(), keel_core::Error>(())
/// ```
pub fn settle(
    total: U256,
    deposit_a: U256,
    withdrawn_a: U256,
    a_to_b: Direction,
    b_to_a: Direction,
) -> Result<Settlement> {
    let credit_a = deposit_a
        .checked_add(b_to_a.transferred)
        .ok_or(Error::Overflow("creditA"))?;
    let debit_a = withdrawn_a
        .checked_add(a_to_b.transferred)
        .and_then(|d| d.checked_add(a_to_b.locked))
        .ok_or(Error::Overflow("debitA"))?;

    let payout_a = credit_a.saturating_sub(debit_a).min(total);
    let mut remaining = total - payout_a;
    let retained_a = a_to_b.locked.min(remaining);
    remaining -= retained_a;
    let retained_b = b_to_a.locked.min(remaining);
    let payout_b = remaining - retained_b;

    Ok(Settlement {
        payout_a,
        payout_b,
        retained_a,
        retained_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(x: u64) -> U256 {
        U256::from(x)
    }

    proptest! {
        /// Whatever the proofs say, nothing is created or lost.
        #[test]
        fn conserves_total(
            total: [u64; 4], deposit_a: [u64; 4], withdrawn_a: [u64; 4],
            t_ab: [u64; 4], l_ab: [u64; 4], t_ba: [u64; 4], l_ba: [u64; 4],
        ) {
            let w = |x: [u64; 4]| U256::from_limbs(x);
            let d = |t, l| Direction { transferred: w(t), locked: w(l) };
            match settle(w(total), w(deposit_a), w(withdrawn_a), d(t_ab, l_ab), d(t_ba, l_ba)) {
                Ok(s) => prop_assert_eq!(s.payout_a + s.payout_b + s.retained_a + s.retained_b, w(total)),
                Err(Error::Overflow(_)) => {} // the contract reverts too
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        /// Consistent proofs pay each side exactly its off-chain balance and retain the locks.
        #[test]
        fn honest_state_pays_honest_balances(
            own_a: u64, own_b: u64, lock_a: u64, lock_b: u64,
            withdrawn_a: u64, withdrawn_b: u64, base: u64, net: u64, a_pays: bool,
        ) {
            // One side has sent `net` more than the other; it must have deposited that much.
            let (t_ab, t_ba) = if a_pays { (u(base) + u(net), u(base)) } else { (u(base), u(base) + u(net)) };
            let (bal_a, bal_b) = if a_pays { (u(own_a), u(own_b) + u(net)) } else { (u(own_a) + u(net), u(own_b)) };
            let deposit_a = bal_a + u(withdrawn_a) + u(lock_a) + t_ab - t_ba;
            let deposit_b = bal_b + u(withdrawn_b) + u(lock_b) + t_ba - t_ab;
            let total = deposit_a + deposit_b - u(withdrawn_a) - u(withdrawn_b);

            let s = settle(
                total, deposit_a, u(withdrawn_a),
                Direction { transferred: t_ab, locked: u(lock_a) },
                Direction { transferred: t_ba, locked: u(lock_b) },
            ).unwrap();
            prop_assert_eq!(s, Settlement { payout_a: bal_a, payout_b: bal_b, retained_a: u(lock_a), retained_b: u(lock_b) });
        }
    }

    #[test]
    fn overdrawn_a_gets_nothing() {
        let s = settle(
            u(10),
            u(5),
            u(0),
            Direction {
                transferred: u(9),
                locked: u(0),
            },
            Direction::default(),
        )
        .unwrap();
        assert_eq!(
            s,
            Settlement {
                payout_a: u(0),
                payout_b: u(10),
                retained_a: u(0),
                retained_b: u(0)
            }
        );
    }
}
