//! The budget ledger: spending per channel and per node in each period, with reservations so
//! that decisions taken concurrently cannot together spend more than the budget.
//!
//! The node's allowance has two parts. A fixed budget per period, shared by all its channels
//! (use it or lose it: a new period starts from the full amount). And, if the operator asks
//! for it, a share of what the node's routing earned ([`BudgetLedger::earned`]): that part is
//! a fund that carries over from period to period, since what was earned stays earned — the
//! rule CLBOSS and rebalance-lnd users ask for ("never spend more on rebalancing than a share
//! of the fees it brought in"). Spending draws on the period's budget first, then on the fund.
//!
//! A planner reserves an action's expected cost before putting it in a plan; whoever executes
//! the action commits what it really cost (at most the reservation) or releases the reservation
//! if the action did not run. Reservations count against the budget until then, so two planners
//! running at once see each other's intentions — the overshoot CLBOSS users reported (#323)
//! cannot happen.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::types::{mul_ppm, Amount, ChannelId};

/// Names one reservation held by a [`BudgetLedger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReservationId(pub u64);

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    spent: Amount,
    reserved: Amount,
}

impl Usage {
    fn used(&self) -> Amount {
        self.spent.saturating_add(self.reserved)
    }
}

#[derive(Debug, Clone, Copy)]
struct Reservation {
    channel: ChannelId,
    amount: Amount,
    /// The part of `amount` held against the earnings fund (the rest is on the period budget).
    from_fund: Amount,
}

/// The earnings fund: `share × earnings` credited, minus what was spent from it.
#[derive(Debug, Clone, Copy, Default)]
struct Fund {
    credited: Amount,
    spent: Amount,
    reserved: Amount,
}

impl Fund {
    fn left(&self) -> Amount {
        self.credited
            .saturating_sub(self.spent)
            .saturating_sub(self.reserved)
    }
}

#[derive(Debug, Default)]
struct State {
    period: u64,
    node: Usage,
    fund: Fund,
    channels: BTreeMap<ChannelId, Usage>,
    reservations: BTreeMap<u64, Reservation>,
    next_id: u64,
}

/// Spending per period, shared by every planner of one node (wrap it in an `Arc`).
///
/// Periods are `now / period_secs` of the time callers pass in (the ledger reads no clock).
/// When a new period starts, what was spent is forgotten; open reservations keep counting
/// until they are committed or released, so a period change never frees money still in flight.
#[derive(Debug)]
pub struct BudgetLedger {
    period_secs: u64,
    node_budget: Amount,
    earnings_share_ppm: u32,
    state: Mutex<State>,
}

impl BudgetLedger {
    /// A ledger with periods of `period_secs` seconds (at least 1) and a budget for the whole
    /// node per period on top of each channel's own.
    pub fn new(period_secs: u64, node_budget: Amount) -> Self {
        Self {
            period_secs: period_secs.max(1),
            node_budget,
            earnings_share_ppm: 0,
            state: Mutex::new(State::default()),
        }
    }

    /// Also lets the node spend `share_ppm` of what its routing earns (credited with
    /// [`BudgetLedger::earned`]), on top of the fixed budget per period; unspent, it carries
    /// over to later periods.
    pub fn with_earnings_share(mut self, share_ppm: u32) -> Self {
        self.earnings_share_ppm = share_ppm;
        self
    }

    /// Credits the share of `fees` (what the node's routing earned) to the earnings fund.
    pub fn earned(&self, fees: Amount, now: u64) -> Result<()> {
        let credit = mul_ppm(fees, self.earnings_share_ppm).ok_or(Error::Overflow)?;
        let mut state = self.state(now);
        state.fund.credited = state
            .fund
            .credited
            .checked_add(credit)
            .ok_or(Error::Overflow)?;
        Ok(())
    }

    /// What the node has been granted so far beyond the fixed budgets: its share of earnings.
    pub fn fund_credited(&self, now: u64) -> Amount {
        self.state(now).fund.credited
    }

    /// What the node may still spend this period: the fixed budget left plus the fund left.
    fn node_left(&self, state: &State) -> Amount {
        self.node_budget
            .saturating_sub(state.node.used())
            .saturating_add(state.fund.left())
    }

    /// The length of a period in seconds.
    pub fn period_secs(&self) -> u64 {
        self.period_secs
    }

    fn state(&self, now: u64) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters half-updated (each update
        // is a few integer writes), so a poisoned lock is still safe to use.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let period = now / self.period_secs;
        if period > state.period {
            state.period = period;
            state.node.spent = 0;
            for usage in state.channels.values_mut() {
                usage.spent = 0;
            }
        }
        state
    }

    /// What `channel` may still spend this period: the lesser of its own budget and the node's,
    /// after spending and reservations.
    pub fn available(&self, channel: ChannelId, channel_budget: Amount, now: u64) -> Amount {
        let state = self.state(now);
        let used = state.channels.get(&channel).copied().unwrap_or_default();
        channel_budget
            .saturating_sub(used.used())
            .min(self.node_left(&state))
    }

    /// Reserves `amount` for an action on `channel`, whose budget this period is
    /// `channel_budget`; fails with [`Error::OverBudget`] if the channel or the node cannot
    /// cover it. The check and the reservation are one step under the lock.
    pub fn reserve(
        &self,
        channel: ChannelId,
        channel_budget: Amount,
        amount: Amount,
        now: u64,
    ) -> Result<ReservationId> {
        let mut state = self.state(now);
        let used = state.channels.get(&channel).copied().unwrap_or_default();
        let available = channel_budget
            .saturating_sub(used.used())
            .min(self.node_left(&state));
        if amount > available {
            return Err(Error::OverBudget {
                requested: amount,
                available,
            });
        }
        // The period's budget first; the rest (at most the fund left, as checked) from the fund.
        let from_period = amount.min(self.node_budget.saturating_sub(state.node.used()));
        let from_fund = amount - from_period;
        let id = state.next_id;
        state.next_id += 1;
        state.node.reserved = state
            .node
            .reserved
            .checked_add(from_period)
            .ok_or(Error::Overflow)?;
        state.fund.reserved = state
            .fund
            .reserved
            .checked_add(from_fund)
            .ok_or(Error::Overflow)?;
        let usage = state.channels.entry(channel).or_default();
        usage.reserved = usage.reserved.checked_add(amount).ok_or(Error::Overflow)?;
        state.reservations.insert(
            id,
            Reservation {
                channel,
                amount,
                from_fund,
            },
        );
        Ok(ReservationId(id))
    }

    /// Records that the reserved action ran and cost `actual` (at most what was reserved).
    pub fn commit(&self, id: ReservationId, actual: Amount, now: u64) -> Result<()> {
        let mut state = self.state(now);
        let r = *state
            .reservations
            .get(&id.0)
            .ok_or(Error::UnknownReservation(id.0))?;
        if actual > r.amount {
            return Err(Error::CommitExceedsReservation {
                reserved: r.amount,
                actual,
            });
        }
        state.reservations.remove(&id.0);
        // What the action saved is given back to the fund first: it was the last resort.
        let from_period = r.amount - r.from_fund;
        let spent_period = actual.min(from_period);
        state.node.reserved -= from_period;
        state.node.spent = state.node.spent.saturating_add(spent_period);
        state.fund.reserved -= r.from_fund;
        state.fund.spent = state.fund.spent.saturating_add(actual - spent_period);
        let usage = state.channels.entry(r.channel).or_default();
        usage.reserved -= r.amount;
        usage.spent = usage.spent.saturating_add(actual);
        Ok(())
    }

    /// Gives back a reservation whose action did not run.
    pub fn release(&self, id: ReservationId, now: u64) -> Result<()> {
        let mut state = self.state(now);
        let r = state
            .reservations
            .remove(&id.0)
            .ok_or(Error::UnknownReservation(id.0))?;
        state.node.reserved -= r.amount - r.from_fund;
        state.fund.reserved -= r.from_fund;
        if let Some(usage) = state.channels.get_mut(&r.channel) {
            usage.reserved -= r.amount;
        }
        Ok(())
    }

    /// Spent plus reserved this period, for the node (on its fixed budget and on the earnings
    /// fund together) and for `channel`.
    pub fn used(&self, channel: ChannelId, now: u64) -> (Amount, Amount) {
        let state = self.state(now);
        let c = state.channels.get(&channel).copied().unwrap_or_default();
        let fund = state.fund.spent.saturating_add(state.fund.reserved);
        (state.node.used().saturating_add(fund), c.used())
    }
}
