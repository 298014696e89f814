//! Multi-hop payments as the payer and as the payee that asks to be paid: invoices (keel-core's
//! signed `PaymentRequest`, the secret kept in our store) and the payment itself: one route
//! ([`Client::pay_route`]) or routes found over our routing graph (`routing.rs`) and retried by
//! keel-routing's `PaymentSession` ([`Client::send_payment`]).

use keel_core::{
    forwarding::{
        onion::{self, HopPayload},
        FailureReason, ForwardInstruction, HopFailure, PaymentRequest,
    },
    wire::Signature,
    Address, B256, U256,
};
use keel_routing::{Asset, Failure, PaymentSession, Route, RouteParams};
use tokio::sync::oneshot;

use super::{peer, Client, ClientError, ClientEvent, Result};
use crate::store::Invoice;

/// A payment request and its payee's signature: what a payee hands a payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The request.
    pub request: PaymentRequest,
    /// The payee's signature over it (EIP-712, under the deployment's domain).
    pub signature: Signature,
}

/// How a multi-hop payment ended.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentOutcome {
    /// The route that delivered it.
    pub route: Route,
    /// What the hops kept, in our asset: what we locked less what the payee received (converted
    /// back at the route's rates when it crosses assets).
    pub fees: U256,
    /// Routes tried, this one included.
    pub attempts: usize,
    /// The payee's secret: proof that it was paid.
    pub secret: B256,
}

impl Client {
    /// Asks to be paid `amount` of `token` on `chain_id` within `lifetime` seconds: a fresh
    /// secret is stored (durable when this returns) and the request carrying its hash signed.
    pub async fn create_invoice(
        &self,
        chain_id: u64,
        token: Address,
        amount: U256,
        lifetime: u64,
        description: &str,
    ) -> Result<SignedRequest> {
        let (request, _) = self
            .issue_invoice(chain_id, token, amount, lifetime, description, false)
            .await?;
        Ok(request)
    }

    /// [`Client::create_invoice`] for a hold invoice: a payment's lock is checked against it
    /// and kept, and the secret (returned here) revealed only when the application claims the
    /// lock with [`Client::claim_lock`], e.g. once it delivered what was paid for. Unclaimed,
    /// the lock expires and every hop gets its funds back.
    pub async fn create_hold_invoice(
        &self,
        chain_id: u64,
        token: Address,
        amount: U256,
        lifetime: u64,
        description: &str,
    ) -> Result<(SignedRequest, B256)> {
        self.issue_invoice(chain_id, token, amount, lifetime, description, true)
            .await
    }

    pub(crate) async fn issue_invoice(
        &self,
        chain_id: u64,
        token: Address,
        amount: U256,
        lifetime: u64,
        description: &str,
        hold: bool,
    ) -> Result<(SignedRequest, B256)> {
        let deployment = self.deployment(chain_id)?;
        // A fresh random secp256k1 key's bytes: 32 uniformly random bytes (bar a negligible
        // range), from the same source the signer crate draws keys from.
        let secret = B256::from(alloy::signers::local::PrivateKeySigner::random().to_bytes());
        let payment_hash = keel_core::secret_hash(secret);
        let expiry =
            self.inner
                .config
                .clock
                .now()
                .checked_add(lifetime)
                .ok_or(ClientError::Forward(
                    keel_core::forwarding::ForwardError::Overflow("the invoice expiry"),
                ))?;
        let request = PaymentRequest {
            paymentHash: payment_hash,
            payee: self.inner.address,
            chainId: U256::from(chain_id),
            token,
            amount,
            expiry,
            // Time for the payer's hub to pay the lock out off chain (what our channels ask
            // of any lock), then for us to claim it on chain if it does not.
            minFinalLifetime: self.final_lifetime(),
            description: description.to_owned(),
        };
        let digest = request
            .signing_hash(deployment.factory)
            .map_err(ClientError::Forward)?;
        let signature = keel_core::sign_hash(&self.inner.config.signer, &digest)
            .map_err(ClientError::Signing)?;
        let invoice = Invoice {
            secret,
            amount,
            expiry,
            paid: false,
            hold,
        };
        self.inner
            .store
            .insert_invoice(payment_hash, &invoice)
            .await?;
        Ok((SignedRequest { request, signature }, secret))
    }

    /// Pays along `route` (from keel-routing: its first channel is ours) under
    /// `payment_hash`: the onion goes to the first hop with our lock, and this returns when
    /// the payee's secret comes back, or fails with [`ClientError::PaymentFailed`] saying which
    /// hop stopped it and why (our lock then comes back at once if the first hop released it,
    /// otherwise after it expires: [`Client::remove_expired_locks`]).
    pub async fn pay_route(&self, route: &Route, payment_hash: B256) -> Result<PaymentOutcome> {
        let secret = self.attempt(route, payment_hash).await?;
        let outcome = outcome(route.clone(), 1, secret);
        self.note_sent(payment_hash, &outcome).await;
        Ok(outcome)
    }

    /// Pays a payee's signed request: verified, then routed over our graph, each failure
    /// teaching the scorer and the next route avoiding the hop that failed, at most
    /// `max_attempts` routes. Every attempt uses the request's payment hash, so the payee is
    /// paid at most once. Fails with the last attempt's [`ClientError::PaymentFailed`] once no
    /// attempt or route is left, or as soon as an attempt fails without its first hop
    /// releasing our lock (see docs/protocol.md, "Releasing a failed lock"): retrying while that
    /// lock is pending could pay the payee twice.
    pub async fn send_payment(
        &self,
        signed: &SignedRequest,
        max_attempts: usize,
    ) -> Result<PaymentOutcome> {
        let request = &signed.request;
        let chain_id =
            u64::try_from(request.chainId).map_err(|_| ClientError::NoChain(u64::MAX))?;
        let deployment = self.deployment(chain_id)?;
        let now = self.inner.config.clock.now();
        request
            .verify(deployment.factory, &signed.signature, now)
            .map_err(|e| ClientError::Gossip(e.to_string()))?;
        let params = self.route_params(chain_id, request.token, request.minFinalLifetime);
        self.pay_request(request, params, max_attempts, None).await
    }

    /// [`Client::send_payment`]'s attempts, over routes found under `params`; with `max_fee`,
    /// a route costing more ends the payment before anything is locked.
    pub(crate) async fn pay_request(
        &self,
        request: &PaymentRequest,
        params: RouteParams,
        max_attempts: usize,
        max_fee: Option<U256>,
    ) -> Result<PaymentOutcome> {
        let mut session = PaymentSession::new(
            self.inner.address,
            request.payee,
            request.amount,
            params,
            max_attempts,
        );
        let mut last_failure = None;
        loop {
            let graph = self.graph().await;
            let now = self.inner.config.clock.now();
            let next = {
                let routing = &self.inner.forwarding.routing;
                let scorer = routing.scorer.lock().expect("scorer poisoned");
                session.next_route(&graph, &scorer, now)
            };
            let route = match (next, last_failure.take()) {
                (Ok(route), _) => route,
                // Out of attempts or routes: how the last one ended says more.
                (Err(_), Some(failed)) => return Err(failed),
                (Err(e), None) => return Err(ClientError::Routing(e.to_string())),
            };
            if let Some(limit) = max_fee {
                let fee = fees_of(&route);
                if fee > limit {
                    return Err(ClientError::FeeAboveLimit { fee, limit });
                }
            }
            match self.attempt(&route, request.paymentHash).await {
                Ok(secret) => {
                    let attempts = session.attempts();
                    let done = {
                        let routing = &self.inner.forwarding.routing;
                        let mut scorer = routing.scorer.lock().expect("scorer poisoned");
                        session.succeeded(&mut scorer, &graph, route, now)
                    };
                    let outcome = outcome(done.route, attempts, secret);
                    self.note_sent(request.paymentHash, &outcome).await;
                    return Ok(outcome);
                }
                Err(ClientError::PaymentFailed { failure, hop }) => {
                    // Another attempt under the same hash is safe only once the failed one's
                    // lock is back: a hop that learns the secret from the retry could still
                    // claim it.
                    let first = route.hops.first().map(|h| h.channel).unwrap_or_default();
                    if !super::forward::release::retry_is_safe(
                        &self.inner,
                        first,
                        request.paymentHash,
                    )
                    .await?
                    {
                        tracing::info!(?failure, ?hop, "route failed, its lock not released");
                        return Err(ClientError::PaymentFailed { failure, hop });
                    }
                    tracing::info!(?failure, ?hop, "route failed, trying another");
                    // The scorer learns about the channel the failing node could not use (the
                    // one it forwards into, as it reported), not the one that reached it.
                    let failed = route.hops.iter().position(|h| h.channel == failure.channel);
                    let at = failed.or(hop).unwrap_or(0);
                    let lesson = if failure.reason.is_liquidity() {
                        Failure::Liquidity { hop: at }
                    } else {
                        Failure::Refused { hop: at }
                    };
                    let learnt = {
                        let routing = &self.inner.forwarding.routing;
                        let mut scorer = routing.scorer.lock().expect("scorer poisoned");
                        session.failed(&mut scorer, &graph, &route, lesson, now)
                    };
                    learnt.map_err(|e| ClientError::Routing(e.to_string()))?;
                    last_failure = Some(ClientError::PaymentFailed { failure, hop });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The cheapest route (by fees and the chance each hop carries the amount) from us to
    /// `payee`, delivering `amount` of `token` on `chain_id`, over our routing graph: what
    /// [`Client::pay_route`] takes.
    pub async fn find_route(
        &self,
        chain_id: u64,
        payee: Address,
        token: Address,
        amount: U256,
    ) -> Result<Route> {
        let params = self.route_params(chain_id, token, self.final_lifetime());
        let graph = self.graph().await;
        let scorer = self
            .inner
            .forwarding
            .routing
            .scorer
            .lock()
            .expect("scorer poisoned");
        let now = self.inner.config.clock.now();
        keel_routing::find_route(
            &graph,
            &scorer,
            self.inner.address,
            payee,
            amount,
            &params,
            now,
        )
        .map_err(|e| ClientError::Routing(e.to_string()))
    }

    /// The least lifetime our invoices ask of the lock that pays them: the channels' minimum
    /// plus [`Config::claim_margin`](super::Config::claim_margin).
    fn final_lifetime(&self) -> u64 {
        let config = &self.inner.config;
        config
            .policy
            .min_lock_lifetime
            .saturating_add(config.claim_margin)
    }

    pub(crate) fn route_params(
        &self,
        chain_id: u64,
        token: Address,
        final_lifetime: u64,
    ) -> RouteParams {
        RouteParams {
            payee_asset: Some(Asset { chain_id, token }),
            final_lifetime: final_lifetime
                .max(self.inner.config.policy.min_lock_lifetime)
                .saturating_add(FINAL_MARGIN),
            ..RouteParams::default()
        }
    }

    /// One attempt along `route`: the secret, or where it stopped.
    async fn attempt(&self, route: &Route, payment_hash: B256) -> Result<B256> {
        let first = route
            .hops
            .first()
            .filter(|hop| hop.from == self.inner.address)
            .ok_or(ClientError::Routing(
                "the route does not start with us".into(),
            ))?;
        let packet = self.onion(route, payment_hash)?;
        let channel = self.inner.channel(first.channel)?;
        // As for any payment: wait (up to `Config::sync_timeout`) for the first hop to be
        // connected and in sync, so the onion is not sent into a connection being replaced.
        peer::wait_synced(&self.inner, &channel).await?;
        let (reply, answer) = oneshot::channel();
        {
            let mut payments = self
                .inner
                .forwarding
                .payments
                .lock()
                .expect("payments poisoned");
            payments.insert(payment_hash, reply);
        }
        let forget = || {
            let mut payments = self
                .inner
                .forwarding
                .payments
                .lock()
                .expect("payments poisoned");
            payments.remove(&payment_hash);
        };
        let lock = route.locks[0];
        if let Err(e) = self
            .pay_locked_with(
                channel.id,
                lock.amount,
                payment_hash,
                lock.expiration,
                // It leaves with the lock, in the same write, and is stored with it.
                Some(packet),
            )
            .await
        {
            forget();
            return Err(e);
        }
        // The payment is out: it ends with the secret or a failure, or (if every hop stays
        // silent) when our lock expires.
        let wait = lock
            .expiration
            .saturating_sub(self.inner.config.clock.now())
            .saturating_add(1);
        let answer = tokio::time::timeout(std::time::Duration::from_secs(wait), answer).await;
        forget();
        match answer {
            Ok(Ok(Ok(secret))) => Ok(secret),
            Ok(Ok(Err(failure))) => Err(ClientError::PaymentFailed {
                hop: route.hops.iter().position(|h| h.to == failure.node),
                failure,
            }),
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::PaymentFailed {
                hop: None,
                failure: HopFailure {
                    node: first.to,
                    channel: first.channel,
                    reason: FailureReason::Expired,
                },
            }),
        }
    }

    /// The onion for `route`: each node after us gets its instruction, encrypted to its key.
    fn onion(&self, route: &Route, payment_hash: B256) -> Result<onion::Packet> {
        let n = route.hops.len();
        if n == 0 || route.locks.len() != n {
            return Err(ClientError::Routing("a route without hops".into()));
        }
        let mut hops = Vec::with_capacity(n);
        for (i, hop) in route.hops.iter().enumerate() {
            let key = self
                .inner
                .forwarding
                .routing
                .key(hop.to)
                .ok_or(ClientError::UnknownNodeKey(hop.to))?;
            let payload = match route.hops.get(i + 1) {
                Some(next) => HopPayload::Forward(ForwardInstruction {
                    next_chain_id: next.asset.chain_id,
                    next_channel: next.channel,
                    amount: route.locks[i + 1].amount,
                    expiration: route.locks[i + 1].expiration,
                }),
                None => HopPayload::Receive {
                    amount: route.locks[i].amount,
                    expiration: route.locks[i].expiration,
                },
            };
            hops.push((key, payload));
        }
        // Fresh for each packet: a random key's bytes.
        let session = alloy::signers::local::PrivateKeySigner::random().to_bytes();
        onion::build(&session.0, &hops, &payment_hash).map_err(ClientError::Onion)
    }

    async fn note_sent(&self, payment_hash: B256, outcome: &PaymentOutcome) {
        let delivered = outcome.route.locks.last().map_or(U256::ZERO, |l| l.amount);
        self.inner
            .note(ClientEvent::PaymentSent {
                payment_hash,
                amount: delivered,
                fees: outcome.fees,
                hops: outcome.route.hops.len() as u64,
            })
            .await;
    }
}

/// What the payee received, in our asset: converted back up the route at each hop's rate
/// (rounded up, as the hops convert), so that what we locked less this is what the hops kept,
/// also across assets.
fn worth(route: &Route) -> U256 {
    let delivered = route.locks.last().map_or(U256::ZERO, |l| l.amount);
    route
        .forwarders
        .iter()
        .rev()
        .try_fold(delivered, |amount, hop| hop.rate.upstream_for(amount))
        // The route's own locks were computed from these rates without overflowing.
        .unwrap_or(delivered)
}

/// Seconds the payee's lock lives beyond its channel's minimum, so it is still acceptable
/// after the moments the route takes to cross.
const FINAL_MARGIN: u64 = 120;

fn outcome(route: Route, attempts: usize, secret: B256) -> PaymentOutcome {
    PaymentOutcome {
        fees: fees_of(&route),
        route,
        attempts,
        secret,
    }
}

/// What the hops of `route` keep, in our asset: what we lock less what the payee receives.
fn fees_of(route: &Route) -> U256 {
    let sent = route.locks.first().map_or(U256::ZERO, |l| l.amount);
    sent.saturating_sub(worth(route))
}
