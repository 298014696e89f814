//! The fee schedule of a transaction that must be mined before a deadline: where its EIP-1559
//! fees start, and how each replacement raises them as the deadline approaches. Pure functions
//! of the fees, the window and the chain's clock, so they are tested without a chain.
//!
//! A replacement (same nonce, new fees) is accepted by a node only if it raises both the max
//! fee and the priority fee by its price bump: 10 % in geth, reth, Erigon and Anvil. The
//! schedule always raises both by at least [`MIN_BUMP_PERMILLE`] (12.5 %), and by more as the
//! deadline nears: from 12.5 % at the start of the window to 100 % (doubling) at its end, so a
//! transaction priced out by a rising base fee (which itself rises at most 12.5 % a block)
//! catches up while there is still time, without overpaying early on.

use std::time::Duration;

/// The smallest raise of each fee from one version to the next, in thousandths: 12.5 %, above
/// every common client's replacement bump (10 %).
pub const MIN_BUMP_PERMILLE: u128 = 125;

/// The raise of each fee in the window's last instant, in thousandths: the fees double.
pub const MAX_BUMP_PERMILLE: u128 = 1_000;

/// The EIP-1559 fees of one version of a transaction, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// The most the sender pays per gas, base fee and tip together.
    pub max_fee_per_gas: u128,
    /// The most of it that goes to the block's producer (the tip).
    pub max_priority_fee_per_gas: u128,
}

/// What a sender with a deadline may spend: the caps it never exceeds and how often it
/// replaces a transaction that is not mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePolicy {
    /// The highest max fee per gas any version may offer, in wei (the priority fee is never
    /// above the max fee, so it is capped too). The first version offers the node's estimate,
    /// or this cap if the estimate is higher.
    pub max_fee_cap: u128,
    /// The highest gas limit: a transaction whose estimate is above it is not sent.
    pub gas_limit_cap: u64,
    /// The shortest time between two versions. A version is replaced only once this has passed
    /// and at least one block was mined without it.
    pub bump_interval: Duration,
}

impl FeePolicy {
    /// 500 gwei at most per gas, 1,000,000 gas, a replacement at most every 12 s (one
    /// Ethereum block): a refutation (about 54,000 gas) then costs at most 0.027 ETH.
    pub const DEFAULT: Self = Self {
        max_fee_cap: 500 * GWEI,
        gas_limit_cap: 1_000_000,
        bump_interval: Duration::from_secs(12),
    };
}

impl Default for FeePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Wei in a gwei.
pub const GWEI: u128 = 1_000_000_000;

/// The fees of the first version: the node's estimate, each fee brought down to `cap` if
/// above (and the priority fee never above the max fee).
pub fn initial_fees(estimate: Fees, cap: u128) -> Fees {
    let max_fee_per_gas = estimate.max_fee_per_gas.min(cap);
    Fees {
        max_fee_per_gas,
        max_priority_fee_per_gas: estimate.max_priority_fee_per_gas.min(max_fee_per_gas),
    }
}

/// What to do with a version that is still not mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// Replace it with these fees: a valid replacement, within the cap.
    Replace(Fees),
    /// The cap leaves no valid replacement: keep the version as it is.
    AtCap,
    /// The deadline has passed: nothing sent now can count.
    DeadlinePassed,
}

/// The next version's fees for a transaction first sent at chain time `start` that must be
/// mined by `deadline` (inclusive, as the vault checks it), at chain time `now`, currently
/// offering `current`. Each fee is raised by [`bump_permille`] (at least 12.5 % and at least 1
/// wei), the max fee then brought down to `cap`; if that is no longer a valid replacement,
/// [`Bump::AtCap`].
pub fn next_fees(current: Fees, start: u64, deadline: u64, now: u64, cap: u128) -> Bump {
    if now > deadline {
        return Bump::DeadlinePassed;
    }
    let permille = bump_permille(start, deadline, now);
    let (Some(max_fee), Some(priority)) = (
        raised(current.max_fee_per_gas, permille),
        raised(current.max_priority_fee_per_gas, permille),
    ) else {
        return Bump::AtCap;
    };
    let max_fee = max_fee.min(cap);
    let next = Fees {
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: priority.min(max_fee),
    };
    if is_valid_replacement(current, next) {
        Bump::Replace(next)
    } else {
        Bump::AtCap
    }
}

/// The raise for a replacement at `now` in the window `start..=deadline`, in thousandths:
/// [`MIN_BUMP_PERMILLE`] at its start growing linearly to [`MAX_BUMP_PERMILLE`] at its end (and
/// the most if the window is empty).
pub fn bump_permille(start: u64, deadline: u64, now: u64) -> u128 {
    let window = u128::from(deadline.saturating_sub(start));
    if window == 0 {
        return MAX_BUMP_PERMILLE;
    }
    let elapsed = u128::from(now.saturating_sub(start)).min(window);
    MIN_BUMP_PERMILLE + (MAX_BUMP_PERMILLE - MIN_BUMP_PERMILLE) * elapsed / window
}

/// Whether a node accepts `next` in place of `current`: both fees raised by at least
/// [`MIN_BUMP_PERMILLE`] (rounded up) and strictly, and the priority fee not above the max fee.
pub fn is_valid_replacement(current: Fees, next: Fees) -> bool {
    let enough =
        |old: u128, new: u128| raised(old, MIN_BUMP_PERMILLE).is_some_and(|min| new >= min);
    enough(current.max_fee_per_gas, next.max_fee_per_gas)
        && enough(
            current.max_priority_fee_per_gas,
            next.max_priority_fee_per_gas,
        )
        && next.max_priority_fee_per_gas <= next.max_fee_per_gas
}

/// `fee` raised by `permille` thousandths, rounded up, and by at least 1 wei (nodes want each
/// fee strictly higher); `None` on overflow.
fn raised(fee: u128, permille: u128) -> Option<u128> {
    let raise = fee.checked_mul(permille)?.div_ceil(1_000).max(1);
    fee.checked_add(raise)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fees(max_fee_per_gas: u128, max_priority_fee_per_gas: u128) -> Fees {
        Fees {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        }
    }

    #[test]
    fn the_first_version_offers_the_estimate_within_the_cap() {
        assert_eq!(initial_fees(fees(30, 2), 100), fees(30, 2));
        assert_eq!(initial_fees(fees(300, 2), 100), fees(100, 2));
        assert_eq!(initial_fees(fees(300, 250), 100), fees(100, 100));
    }

    #[test]
    fn the_raise_grows_from_an_eighth_to_double_as_the_deadline_nears() {
        assert_eq!(bump_permille(1_000, 2_000, 1_000), 125);
        assert_eq!(bump_permille(1_000, 2_000, 1_500), 562);
        assert_eq!(bump_permille(1_000, 2_000, 2_000), 1_000);
        // The chain's clock may read before the first send (another node) or the window be empty.
        assert_eq!(bump_permille(1_000, 2_000, 900), 125);
        assert_eq!(bump_permille(2_000, 2_000, 2_000), 1_000);
        assert_eq!(bump_permille(3_000, 2_000, 2_000), 1_000);
    }

    #[test]
    fn replacements_raise_both_fees_by_the_schedule() {
        // 1 gwei max fee, 0.1 gwei tip, at the start of the window: +12.5 % each.
        let first = fees(GWEI, GWEI / 10);
        let Bump::Replace(second) = next_fees(first, 0, 1_000, 0, 100 * GWEI) else {
            panic!("a replacement within the cap");
        };
        assert_eq!(second, fees(1_125_000_000, 112_500_000));
        // At the deadline itself (still in time): the fees double.
        let Bump::Replace(last) = next_fees(first, 0, 1_000, 1_000, 100 * GWEI) else {
            panic!("a replacement within the cap");
        };
        assert_eq!(last, fees(2 * GWEI, GWEI / 5));
    }

    #[test]
    fn the_cap_bounds_the_raise_and_then_stops_it() {
        let current = fees(90, 10);
        assert_eq!(
            next_fees(current, 0, 1_000, 1_000, 120),
            Bump::Replace(fees(120, 20))
        );
        // 12.5 % of 110 rounds up to 14: 124 would be needed, the cap allows 120.
        assert_eq!(next_fees(fees(110, 10), 0, 1_000, 0, 120), Bump::AtCap);
        assert_eq!(next_fees(fees(120, 20), 0, 1_000, 0, 120), Bump::AtCap);
    }

    #[test]
    fn zero_fees_are_raised_by_at_least_one_wei() {
        assert_eq!(
            next_fees(fees(0, 0), 0, 10, 0, 10),
            Bump::Replace(fees(1, 1))
        );
    }

    #[test]
    fn nothing_is_sent_after_the_deadline() {
        assert_eq!(
            next_fees(fees(GWEI, 1), 0, 1_000, 1_001, u128::MAX),
            Bump::DeadlinePassed
        );
    }

    #[test]
    fn fees_near_the_top_of_the_range_stop_at_the_cap_instead_of_overflowing() {
        assert_eq!(
            next_fees(fees(u128::MAX / 2, 1), 0, 10, 5, u128::MAX),
            Bump::AtCap
        );
    }

    prop_compose! {
        /// Fees as a node estimates them (tip no higher than max fee) and a cap at least as
        /// high as the max fee offered so far.
        fn fees_and_cap()(max in 0u128..10u128.pow(24), tip_share in 0u128..=1_000, headroom in 0u128..10u128.pow(24))
            -> (Fees, u128) {
            (fees(max, max * tip_share / 1_000), max + headroom)
        }
    }

    proptest! {
        /// Every replacement the schedule proposes is one a node accepts, never exceeds the cap,
        /// and raises each fee at least as much as the window's elapsed share demands.
        #[test]
        fn every_replacement_is_valid_and_within_the_cap(
            (current, cap) in fees_and_cap(),
            start in 0u64..2_000_000_000,
            window in 0u64..1_000_000,
            offset in 0u64..1_000_000,
        ) {
            let deadline = start + window;
            let now = start + offset.min(window);
            match next_fees(current, start, deadline, now, cap) {
                Bump::Replace(next) => {
                    prop_assert!(is_valid_replacement(current, next));
                    prop_assert!(next.max_fee_per_gas <= cap);
                    prop_assert!(next.max_priority_fee_per_gas <= next.max_fee_per_gas);
                    let wanted = raised(current.max_fee_per_gas, bump_permille(start, deadline, now));
                    prop_assert!(
                        next.max_fee_per_gas == cap || Some(next.max_fee_per_gas) == wanted,
                        "the max fee is raised by the schedule, or to the cap"
                    );
                }
                Bump::AtCap => {
                    let min = raised(current.max_fee_per_gas, MIN_BUMP_PERMILLE);
                    prop_assert!(min.is_none_or(|min| min > cap), "stopped below the cap");
                }
                Bump::DeadlinePassed => prop_assert!(false, "now is within the window"),
            }
        }

        /// Replacing again and again from the estimate climbs to the cap in finitely many
        /// versions, each valid, and then stops.
        #[test]
        fn a_chain_of_replacements_reaches_the_cap_and_stops(
            (estimate, cap) in fees_and_cap(),
            window in 1u64..100_000,
            step in 1u64..10_000,
        ) {
            let mut current = initial_fees(estimate, cap);
            let mut now = 0;
            let mut versions = 1;
            loop {
                match next_fees(current, 0, window, now.min(window), cap) {
                    Bump::Replace(next) => {
                        prop_assert!(is_valid_replacement(current, next));
                        prop_assert!(next.max_fee_per_gas <= cap);
                        current = next;
                        versions += 1;
                        now += step;
                    }
                    Bump::AtCap => break,
                    Bump::DeadlinePassed => prop_assert!(false, "the clock is held in the window"),
                }
                // 12.5 % a step from 1 wei passes 10^24 well within 600 versions.
                prop_assert!(versions < 600, "still climbing after {versions} versions");
            }
            prop_assert!(raised(current.max_fee_per_gas, MIN_BUMP_PERMILLE).is_none_or(|m| m > cap));
        }
    }
}
