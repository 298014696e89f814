//! Circular rebalancing: a payment from us to ourselves that leaves by one of our channels and
//! comes back by another, so the first's balance on our side drains and the second's refills,
//! the hops between earning their fees (docs/protocol.md, "Circular rebalancing"). It is an
//! ordinary multi-hop payment to an invoice of our own, so it completes on every hop or unwinds
//! on every hop, like any other.

use keel_core::{B256, U256};

use super::{pay::PaymentOutcome, Client, ClientError, Result};

/// How long the invoice behind a rebalance stays payable, in seconds.
const INVOICE_LIFETIME: u64 = 3_600;

impl Client {
    /// Moves `amount` of our balance out of channel `from` and back into channel `to` (two
    /// open channels of ours in the same asset on the same chain) by paying ourselves over a
    /// route through the network that leaves by `from` and returns by `to`. The route's fees
    /// come out of `from` on top of `amount` and may be at most `max_fee`: a dearer route ends
    /// it with [`ClientError::FeeAboveLimit`] before anything is locked. Failed routes are
    /// retried as by [`Client::send_payment`], at most `max_attempts` in all.
    ///
    /// The application hears `PaymentSent` for it and `InvoicePaid` for its own invoice.
    pub async fn rebalance(
        &self,
        from: B256,
        to: B256,
        amount: U256,
        max_fee: U256,
        max_attempts: usize,
    ) -> Result<PaymentOutcome> {
        let asset = |id: B256| async move {
            let channel = self.inner.channel(id)?;
            let rt = channel.rt.lock().await;
            rt.ensure_usable()?;
            Ok::<_, ClientError>((channel.chain_id, rt.state.params().token))
        };
        if amount.is_zero() || max_attempts == 0 {
            return Err(ClientError::Routing(format!(
                "nothing to rebalance: {amount} in {max_attempts} attempts"
            )));
        }
        let (source, target) = (asset(from).await?, asset(to).await?);
        if from == to || source != target {
            return Err(ClientError::Routing(format!(
                "a rebalance moves funds between two of our channels in one asset: {from} and {to}"
            )));
        }
        let (chain_id, token) = source;
        let (invoice, _secret) = self
            .issue_invoice(
                chain_id,
                token,
                amount,
                INVOICE_LIFETIME,
                "rebalance",
                false,
            )
            .await?;
        let request = &invoice.request;
        let mut params = self.route_params(chain_id, token, request.minFinalLifetime);
        params.first_channel = Some(from);
        params.last_channel = Some(to);
        self.pay_request(request, params, max_attempts, Some(max_fee))
            .await
    }
}
