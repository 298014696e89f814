//! One payment's attempts: find a route, send it, learn from how it failed, try another, until
//! it succeeds or the attempts run out. The caller sends each route and reports the outcome; the
//! session keeps the lessons in the scorer, so later payments profit too.
//!
//! A failure names the hop that refused and why. For lack of liquidity the scorer learns that
//! the direction holds less than what it was asked to carry, and that every hop before it held
//! enough; any other refusal (a stale policy, a node offline, an expiry it would not take)
//! takes the channel out of this payment's searches.

use keel_core::{Address, U256};

use crate::{
    graph::Graph,
    pathfind::{find_route, Route, RouteError, RouteParams},
    scorer::Scorer,
};

/// Why hop `hop` (an index into the route's hops) did not pass the payment on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its channel did not have the balance for the lock.
    Liquidity {
        /// The hop.
        hop: usize,
    },
    /// It refused for another reason: its policy changed, its node is offline, the lock's
    /// amount or expiry was not what it needs.
    Refused {
        /// The hop.
        hop: usize,
    },
}

/// How a payment ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The route that delivered it.
    pub route: Route,
    /// Routes tried, this one included.
    pub attempts: usize,
}

/// Why a payment gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Every attempt allowed failed.
    #[error("no route delivered the payment in {0} attempts")]
    AttemptsExhausted(usize),
    /// No route is left to try.
    #[error(transparent)]
    NoRoute(#[from] RouteError),
    /// An outcome was reported for a hop the route does not have.
    #[error("a failure at hop {hop} of a {hops}-hop route")]
    NoSuchHop {
        /// The hop reported.
        hop: usize,
        /// The route's length.
        hops: usize,
    },
}

/// The attempts of one payment.
#[derive(Debug, Clone)]
pub struct PaymentSession {
    payer: Address,
    payee: Address,
    amount: U256,
    params: RouteParams,
    max_attempts: usize,
    attempts: usize,
}

impl PaymentSession {
    /// A payment of `amount` from `payer` to `payee`, tried at most `max_attempts` times.
    pub fn new(
        payer: Address,
        payee: Address,
        amount: U256,
        params: RouteParams,
        max_attempts: usize,
    ) -> Self {
        Self {
            payer,
            payee,
            amount,
            params,
            max_attempts,
            attempts: 0,
        }
    }

    /// Routes tried so far.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The route to try next, or why there is none.
    pub fn next_route(
        &mut self,
        graph: &Graph,
        scorer: &Scorer,
        now: u64,
    ) -> Result<Route, PaymentError> {
        if self.attempts >= self.max_attempts {
            return Err(PaymentError::AttemptsExhausted(self.attempts));
        }
        let route = find_route(
            graph,
            scorer,
            self.payer,
            self.payee,
            self.amount,
            &self.params,
            now,
        )?;
        self.attempts += 1;
        Ok(route)
    }

    /// `route` failed as `failure` says: the scorer and this payment's searches learn from it.
    pub fn failed(
        &mut self,
        scorer: &mut Scorer,
        graph: &Graph,
        route: &Route,
        failure: Failure,
        now: u64,
    ) -> Result<(), PaymentError> {
        let hop = match failure {
            Failure::Liquidity { hop } | Failure::Refused { hop } => hop,
        };
        let hops = route.hops.len();
        if hop >= hops {
            return Err(PaymentError::NoSuchHop { hop, hops });
        }
        // The hops before the one that failed carried their locks, which were then removed
        // again: they had the liquidity, and still have it.
        for (i, before) in route.hops[..hop].iter().enumerate() {
            if let Some(channel) = graph.channel(&before.channel) {
                scorer.held(
                    before.channel,
                    before.direction,
                    route.locks[i].amount,
                    channel.capacity,
                    now,
                );
            }
        }
        let failing = &route.hops[hop];
        match failure {
            Failure::Liquidity { .. } => {
                if let Some(channel) = graph.channel(&failing.channel) {
                    scorer.failed(
                        failing.channel,
                        failing.direction,
                        route.locks[hop].amount,
                        channel.capacity,
                        now,
                    );
                }
            }
            Failure::Refused { .. } => {
                self.params.avoid.insert(failing.channel);
            }
        }
        Ok(())
    }

    /// `route` delivered the payment: every hop had the liquidity, and now has that much less.
    pub fn succeeded(self, scorer: &mut Scorer, graph: &Graph, route: Route, now: u64) -> Outcome {
        for (hop, lock) in route.hops.iter().zip(&route.locks) {
            if let Some(channel) = graph.channel(&hop.channel) {
                scorer.succeeded(
                    hop.channel,
                    hop.direction,
                    lock.amount,
                    channel.capacity,
                    now,
                );
            }
        }
        Outcome {
            route,
            attempts: self.attempts,
        }
    }
}
