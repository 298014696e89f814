//! How [`Chain`] gets a transaction mined: [`Chain::submit`] sends it once at the node's
//! estimated fees and re-broadcasts it until a receipt comes; [`Chain::submit_by`] must get it
//! mined before a deadline, replacing it with higher fees (the [`fees`](crate::fees) schedule)
//! while it is not, and sending it again if a reorganisation drops the block that held it.

use alloy::{
    contract::{CallBuilder, CallDecoder, Error as CallError},
    eips::BlockNumberOrTag,
    primitives::B256,
    providers::Provider,
    rpc::types::TransactionRequest,
};
use tokio::time::Instant;

use super::{Chain, TxReceipt};
use crate::{
    error::{ChainError, Result},
    fees::{self, Bump, FeePolicy, Fees},
};

/// Polls in a row that find the account's nonce used but none of our versions' receipts before
/// the nonce counts as taken by another transaction (a node behind a load balancer may answer
/// the count from a newer block than the receipt).
const NONCE_TAKEN_AFTER: u32 = 3;

/// A transaction sent and not yet final: its first version's request, the hashes of every
/// version (any one of them may be the one mined), and the fees of the newest.
struct Sent {
    request: TransactionRequest,
    nonce: u64,
    fees: Fees,
    versions: Vec<B256>,
}

impl Sent {
    fn newest(&self) -> B256 {
        *self.versions.last().expect("one version is sent first")
    }

    /// The newest version's full request: same nonce, gas and call, the newest fees.
    fn current(&self) -> TransactionRequest {
        self.request
            .clone()
            .max_fee_per_gas(self.fees.max_fee_per_gas)
            .max_priority_fee_per_gas(self.fees.max_priority_fee_per_gas)
    }
}

impl Chain {
    /// Simulates, sends and waits for `call` to be mined; a revert at any point is an error.
    ///
    /// Every field of the transaction is filled here (nonce, gas, fees), so sending it again
    /// signs the very same transaction: a re-broadcast can never be a second one.
    pub(super) async fn submit<P: Provider, D: CallDecoder>(
        &self,
        what: &'static str,
        call: CallBuilder<P, D>,
    ) -> Result<TxReceipt> {
        let call = self.request(call);
        let sent = self.send_first(what, &call, None, |fees| fees).await?;
        self.receipt(what, sent.newest(), &sent.current()).await
    }

    /// Gets `call` mined by chain time `deadline` (inclusive) within `policy`'s caps, and
    /// `confirmations` deep ([`ChainConfig::confirmations`](crate::ChainConfig)).
    ///
    /// Sent at once at the node's estimated fees (at most the cap). While no version is mined,
    /// each [`FeePolicy::bump_interval`] in which a block was mined without it the transaction
    /// is replaced (same nonce) with the fees [`fees::next_fees`] gives for the chain's time,
    /// or sent again as it is once the cap is reached. Before each replacement the call is
    /// simulated again: if it would now revert (the state it acts on changed, say a newer
    /// proof is already on record), it is given up as [`ChainError::Rejected`]. A version mined
    /// and then dropped by a reorganisation is sent again at once. Past the deadline:
    /// [`ChainError::FeeCapReached`] if the fees had reached the cap, else
    /// [`ChainError::DeadlinePassed`].
    pub(super) async fn submit_by(
        &self,
        what: &'static str,
        mut call: TransactionRequest,
        deadline: u64,
        policy: &FeePolicy,
    ) -> Result<TxReceipt> {
        call.from = Some(self.address);
        let (_, start) = self.head(what, deadline).await?;
        let cap = policy.max_fee_cap;
        let sent = self
            .send_first(what, &call, Some(policy.gas_limit_cap), |estimate| {
                fees::initial_fees(estimate, cap)
            })
            .await?;
        self.watch(what, &call, sent, start, deadline, policy).await
    }

    /// The call as a request from this account, unsigned and without nonce, gas or fees: what
    /// is simulated.
    fn request<P: Provider, D: CallDecoder>(&self, call: CallBuilder<P, D>) -> TransactionRequest {
        let mut request = call.into_transaction_request();
        request.from = Some(self.address);
        request
    }

    /// The head's number and time; [`ChainError::DeadlinePassed`] (nothing sent) if that is
    /// past `deadline`.
    async fn head(&self, what: &'static str, deadline: u64) -> Result<(u64, u64)> {
        let (number, now) = self.latest().await?;
        if now > deadline {
            return Err(ChainError::DeadlinePassed {
                what,
                deadline,
                now,
                tx_hash: None,
            });
        }
        Ok((number, now))
    }

    /// The latest block's number and timestamp.
    async fn latest(&self) -> Result<(u64, u64)> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(ChainError::transport)?
            .ok_or_else(|| ChainError::garbage("no latest block"))?;
        Ok((block.header.number, block.header.timestamp))
    }

    /// Simulates `call` (estimating its gas), fills nonce, gas and the fees `price` makes of
    /// the node's estimate, and sends it. With `gas_cap`, a call needing more gas is not sent.
    async fn send_first(
        &self,
        what: &'static str,
        call: &TransactionRequest,
        gas_cap: Option<u64>,
        price: impl FnOnce(Fees) -> Fees,
    ) -> Result<Sent> {
        let _sending = self.send_lock.lock().await;
        // The simulation, the nonce and the fees do not depend on one another: asked at once,
        // they cost one round trip to the node under the lock instead of three (a tower
        // answering a block of closes sends one transaction after another).
        let (gas, nonce, estimate) = tokio::join!(
            // Estimating the gas runs the call: a revert surfaces here and nothing is sent.
            self.simulate(what, call),
            async {
                self.provider
                    .get_transaction_count(self.address)
                    .pending()
                    .await
            },
            self.provider.estimate_eip1559_fees(),
        );
        // A revert first: it says why nothing was sent whatever else failed.
        let gas = gas?;
        if let Some(cap) = gas_cap.filter(|cap| gas > *cap) {
            return Err(ChainError::GasCapExceeded {
                what,
                estimated: gas,
                cap,
            });
        }
        let nonce = nonce.map_err(ChainError::transport)?;
        let estimate = estimate.map_err(ChainError::transport)?;
        let fees = price(Fees {
            max_fee_per_gas: estimate.max_fee_per_gas,
            max_priority_fee_per_gas: estimate.max_priority_fee_per_gas,
        });
        let mut sent = Sent {
            request: call.clone().nonce(nonce).gas_limit(gas),
            nonce,
            fees,
            versions: Vec::new(),
        };
        let tx_hash = self
            .provider
            .send_transaction(sent.current())
            .await
            .map_err(|e| ChainError::call(what, CallError::TransportError(e)))?;
        sent.versions.push(*tx_hash.tx_hash());
        Ok(sent)
    }

    /// Runs `call` on the latest state and returns its gas; a revert is
    /// [`ChainError::Rejected`].
    async fn simulate(&self, what: &'static str, call: &TransactionRequest) -> Result<u64> {
        self.provider
            .estimate_gas(call.clone())
            .await
            .map_err(|e| ChainError::call(what, CallError::TransportError(e)))
    }

    /// [`simulate`](Self::simulate) on the latest block: a node's default may be its pending
    /// state, where our own pending version has already run and the call would revert.
    async fn simulate_on_latest(
        &self,
        what: &'static str,
        call: &TransactionRequest,
    ) -> Result<u64> {
        self.provider
            .estimate_gas(call.clone())
            .block(BlockNumberOrTag::Latest.into())
            .await
            .map_err(|e| ChainError::call(what, CallError::TransportError(e)))
    }

    /// Polls for `tx_hash`'s receipt until [`ChainConfig::receipt_timeout`], sending the
    /// transaction again every [`ChainConfig::rebroadcast_interval`] (a node that restarted or
    /// evicted it has forgotten it). Polling `eth_getTransactionReceipt` (rather than a block
    /// filter) survives a node restart. Past the deadline: [`ChainError::ReceiptTimeout`] with
    /// the hash, so the caller can look the transaction up later.
    ///
    /// [`ChainConfig::receipt_timeout`]: crate::ChainConfig::receipt_timeout
    /// [`ChainConfig::rebroadcast_interval`]: crate::ChainConfig::rebroadcast_interval
    async fn receipt(
        &self,
        what: &'static str,
        tx_hash: B256,
        request: &TransactionRequest,
    ) -> Result<TxReceipt> {
        let started = Instant::now();
        let deadline = started + self.config.receipt_timeout;
        let mut next_broadcast = started + self.config.rebroadcast_interval;
        let (mut rebroadcasts, mut last_error) = (0, None);
        loop {
            match self.provider.get_transaction_receipt(tx_hash).await {
                Ok(Some(receipt)) if receipt.status() => return Ok(receipt),
                Ok(Some(_)) => return Err(ChainError::Reverted { what, tx_hash }),
                Ok(None) => {}
                Err(e) => last_error = Some(Box::new(ChainError::transport(e))),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ChainError::ReceiptTimeout {
                    what,
                    tx_hash,
                    waited: now - started,
                    rebroadcasts,
                    last_error,
                });
            }
            if now >= next_broadcast {
                next_broadcast = now + self.config.rebroadcast_interval;
                rebroadcasts += 1;
                if let Err(e) = self.broadcast(request).await {
                    last_error = Some(Box::new(e));
                }
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// Hands `request` to the node. "Already known" or "nonce too low" (mined meanwhile) come
    /// back as errors and are fine: the receipt lookups tell.
    async fn broadcast(&self, request: &TransactionRequest) -> Result<B256> {
        let _sending = self.send_lock.lock().await;
        let pending = self
            .provider
            .send_transaction(request.clone())
            .await
            .map_err(ChainError::transport)?;
        Ok(*pending.tx_hash())
    }

    /// [`submit_by`](Self::submit_by)'s loop once the first version is sent.
    async fn watch(
        &self,
        what: &'static str,
        call: &TransactionRequest,
        mut sent: Sent,
        start: u64,
        deadline: u64,
        policy: &FeePolicy,
    ) -> Result<TxReceipt> {
        let config = &self.config;
        let tick = policy.bump_interval.min(config.rebroadcast_interval);
        // The chain's clock is the deadline that counts, but a node that stops answering must
        // not hold the caller forever: the window in our own time, plus the receipt timeout.
        let give_up = Instant::now()
            + std::time::Duration::from_secs(deadline.saturating_sub(start))
            + config.receipt_timeout;
        let mut last_sent = Instant::now();
        let (mut head_at_send, mut last_now) = self.latest().await.unwrap_or((0, start));
        let mut next_tick = last_sent + tick;
        let mut at_cap = false;
        let mut mined: Option<TxReceipt> = None;
        let mut unexplained = 0;
        loop {
            tokio::time::sleep(config.poll_interval).await;
            if let Some(receipt) = &mined {
                match self.still_mined(receipt).await {
                    Ok(Some(true)) => return Ok(mined.take().expect("checked")),
                    Ok(Some(false)) => continue,
                    Ok(None) => {
                        tracing::warn!(what, tx = %receipt.transaction_hash, "a reorganisation dropped the transaction; sending it again");
                        mined = None;
                        if let Err(e) = self.broadcast(&sent.current()).await {
                            tracing::debug!(what, error = %e, "re-sending after a reorganisation");
                        }
                        last_sent = Instant::now();
                        next_tick = last_sent + tick;
                    }
                    Err(e) => tracing::debug!(what, error = %e, "checking a mined transaction"),
                }
                continue;
            }
            match self.find_mined(what, &sent).await {
                Ok(Some(receipt)) => {
                    unexplained = 0;
                    mined = Some(receipt);
                    continue;
                }
                Ok(None) => unexplained = 0,
                Err(FindError::Unexplained) => {
                    unexplained += 1;
                    if unexplained >= NONCE_TAKEN_AFTER {
                        return Err(ChainError::NonceTaken {
                            what,
                            nonce: sent.nonce,
                        });
                    }
                    continue;
                }
                Err(FindError::Chain(e @ ChainError::Reverted { .. })) => return Err(e),
                Err(FindError::Chain(e)) => {
                    tracing::debug!(what, error = %e, "looking for the receipt");
                }
            }
            let wall = Instant::now();
            if wall >= give_up {
                return Err(self.late(what, &sent, policy, deadline, last_now, at_cap));
            }
            if wall < next_tick {
                continue;
            }
            next_tick = wall + tick;
            let (head, now) = match self.latest().await {
                Ok(latest) => {
                    last_now = latest.1;
                    latest
                }
                Err(e) => {
                    tracing::debug!(what, error = %e, "reading the head");
                    continue;
                }
            };
            if now > deadline {
                // One last look: a version may have been mined in the block that passed it.
                if let Ok(Some(receipt)) = self.find_mined(what, &sent).await {
                    mined = Some(receipt);
                    continue;
                }
                return Err(self.late(what, &sent, policy, deadline, now, at_cap));
            }
            let bump_due =
                wall.duration_since(last_sent) >= policy.bump_interval && head > head_at_send;
            let rebroadcast_due = wall.duration_since(last_sent) >= config.rebroadcast_interval;
            if !bump_due && !rebroadcast_due {
                continue;
            }
            // The state may have changed since it was sent: a refutation as new may already be
            // on record, and then every version of ours would revert.
            if let Err(e) = self.simulate_on_latest(what, call).await {
                match self.find_mined(what, &sent).await {
                    // Our own transaction changed the state.
                    Ok(Some(receipt)) => {
                        mined = Some(receipt);
                        continue;
                    }
                    Err(FindError::Chain(reverted @ ChainError::Reverted { .. })) => {
                        return Err(reverted)
                    }
                    _ if matches!(e, ChainError::Rejected { .. }) => return Err(e),
                    _ => {
                        tracing::debug!(what, error = %e, "simulating before a replacement");
                        continue;
                    }
                }
            }
            let next = if bump_due {
                fees::next_fees(sent.fees, start, deadline, now, policy.max_fee_cap)
            } else {
                Bump::AtCap
            };
            match next {
                Bump::Replace(fees) => {
                    // Kept even if the node refuses this version: reth and Anvil refuse (and
                    // evict) a transaction whose max fee is below the base fee, so on a
                    // congested chain the schedule must keep climbing without each step being
                    // accepted. The next version is then raised from this one, which is more
                    // than the replacement rule asks of whatever version the node holds.
                    sent.fees = fees;
                    match self.broadcast(&sent.current()).await {
                        Ok(tx_hash) => {
                            tracing::info!(what, tx = %tx_hash, nonce = sent.nonce, max_fee = fees.max_fee_per_gas, priority_fee = fees.max_priority_fee_per_gas, deadline, now, "replaced with higher fees");
                            sent.versions.push(tx_hash);
                        }
                        Err(e) => {
                            tracing::warn!(what, error = %e, max_fee = fees.max_fee_per_gas, "the node refused a replacement; raising again next time");
                        }
                    }
                }
                Bump::AtCap => {
                    at_cap |= bump_due;
                    if let Err(e) = self.broadcast(&sent.current()).await {
                        tracing::debug!(what, error = %e, "re-broadcasting");
                    }
                }
                Bump::DeadlinePassed => {
                    return Err(self.late(what, &sent, policy, deadline, now, at_cap))
                }
            }
            last_sent = wall;
            head_at_send = head;
        }
    }

    /// Whether the mined `receipt` is final (`Some(true)`: `confirmations` deep), not yet
    /// (`Some(false)`), or gone from the chain (`None`: a reorganisation dropped its block).
    async fn still_mined(&self, receipt: &TxReceipt) -> Result<Option<bool>> {
        let now = self
            .provider
            .get_transaction_receipt(receipt.transaction_hash)
            .await
            .map_err(ChainError::transport)?;
        let Some(block) = now.map(|receipt| receipt.block_number) else {
            return Ok(None);
        };
        let (head, _) = self.latest().await?;
        Ok(Some(block.is_some_and(|block| {
            head >= block.saturating_add(self.config.confirmations)
        })))
    }

    /// The receipt of whichever version was mined, once the account's nonce shows one was;
    /// a mined version that reverted is [`ChainError::Reverted`].
    async fn find_mined(
        &self,
        what: &'static str,
        sent: &Sent,
    ) -> Result<Option<TxReceipt>, FindError> {
        let used = self
            .provider
            .get_transaction_count(self.address)
            .latest()
            .await
            .map_err(|e| FindError::Chain(ChainError::transport(e)))?;
        if used <= sent.nonce {
            return Ok(None);
        }
        // Newest first: the likeliest to be the one mined.
        for &tx_hash in sent.versions.iter().rev() {
            match self.provider.get_transaction_receipt(tx_hash).await {
                Ok(Some(receipt)) if receipt.status() => return Ok(Some(receipt)),
                Ok(Some(_)) => {
                    return Err(FindError::Chain(ChainError::Reverted { what, tx_hash }))
                }
                Ok(None) => {}
                Err(e) => return Err(FindError::Chain(ChainError::transport(e))),
            }
        }
        Err(FindError::Unexplained)
    }

    /// The error for a transaction not mined by `deadline`.
    fn late(
        &self,
        what: &'static str,
        sent: &Sent,
        policy: &FeePolicy,
        deadline: u64,
        now: u64,
        at_cap: bool,
    ) -> ChainError {
        if at_cap {
            ChainError::FeeCapReached {
                what,
                deadline,
                cap: policy.max_fee_cap,
                max_fee_per_gas: sent.fees.max_fee_per_gas,
                tx_hash: sent.newest(),
            }
        } else {
            ChainError::DeadlinePassed {
                what,
                deadline,
                now,
                tx_hash: Some(sent.newest()),
            }
        }
    }
}

/// Why no mined version was found.
enum FindError {
    /// The account's nonce is used, by none of our versions (so far).
    Unexplained,
    /// A lookup failed, or the mined version reverted.
    Chain(ChainError),
}
