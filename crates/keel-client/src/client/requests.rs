//! Co-signed requests: withdrawals while the channel stays open, and cooperative closes.
//!
//! A request is applied and stored before our signature leaves (from then on its amount is
//! reserved, or the channel frozen, because the peer may submit it), and the peer's signature
//! is stored the moment it arrives, before the caller hears of it. So what was co-signed is
//! never lost: a failed submission (an RPC outage) is retried in the background with back-off
//! and by the application calling `withdraw` or `close` again, and a restarted client submits
//! it. A request the peer has not signed yet is asked again, by the caller's retry and after
//! every reconnect; the peer, which stored its approval, signs the same request again. Nothing
//! is stored while the peer is away: a request waits for it as a payment does.

use std::{sync::Arc, time::Duration};

use keel_core::{
    wire::{Message, Signature},
    Address, ChannelError, CooperativeClose, Side, Withdrawal, B256, U256,
};
use tokio::sync::oneshot;

use super::{
    channel::{Channel, Runtime, Submissions},
    ordered,
    peer::{self, Outgoing},
    Client, ClientError, ClientEvent, Inner, Result, SignedClose, SignedWithdrawal,
};
use crate::{
    chain::{ChainError, TxReceipt},
    store::Event,
};

/// First wait before the background submits a co-signed request again; doubles per failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between background submissions.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Outcomes remembered per channel (a channel has at most one withdrawal and one close live).
const REMEMBERED: usize = 4;

/// A request both participants signed, ready for the vault.
#[derive(Debug, Clone)]
pub(crate) enum Signed {
    Withdrawal(SignedWithdrawal),
    Close(SignedClose),
}

impl Signed {
    /// The EIP-712 digest both signed: identifies the request.
    fn digest(&self, channel: &Channel) -> B256 {
        match self {
            Self::Withdrawal(w) => channel.domain.signing_hash(&w.withdrawal),
            Self::Close(c) => channel.domain.signing_hash(&c.close),
        }
    }

    const fn what(&self) -> &'static str {
        match self {
            Self::Withdrawal(_) => "withdrawal",
            Self::Close(_) => "close",
        }
    }
}

/// Where a withdrawal's funds go. Both participants sign it, and the vault executes a
/// withdrawal only the way it was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Paid to us (the vault's `withdraw`).
    Own,
    /// Deposited for `side` in another vault of the same factory and asset (the vault's
    /// `withdrawInto`): a hub's on-chain move of liquidity between two of its channels.
    Vault {
        /// The target channel's vault.
        vault: Address,
        /// Our side in the target channel.
        side: Side,
    },
}

impl Destination {
    /// The signed `(target, targetSide)` fields.
    const fn fields(self) -> (Address, u8) {
        match self {
            Self::Own => (Address::ZERO, 0),
            Self::Vault { vault, side } => (vault, if matches!(side, Side::A) { 0 } else { 1 }),
        }
    }
}

impl Client {
    /// Agrees a withdrawal of `amount` from our side with the peer: reserves it (no payment can
    /// spend it), and returns the withdrawal with both signatures, ready for the vault. The
    /// reservation ends when the withdrawal is seen on chain or expires.
    ///
    /// Waits up to [`Config::sync_timeout`](super::Config::sync_timeout) for the peer; nothing
    /// is stored while it is away. Called again with the same amount while our withdrawal is
    /// pending, it returns that withdrawal (asking the peer again if its signature never came).
    pub async fn request_withdrawal(
        &self,
        channel_id: B256,
        amount: U256,
    ) -> Result<SignedWithdrawal> {
        self.request_withdrawal_to(channel_id, amount, Destination::Own)
            .await
    }

    /// [`Client::request_withdrawal`] with its destination: our own address, or our side of
    /// another channel's vault (a move, which the vault executes with `withdrawInto`).
    pub async fn request_withdrawal_to(
        &self,
        channel_id: B256,
        amount: U256,
        destination: Destination,
    ) -> Result<SignedWithdrawal> {
        let inner = &self.inner;
        let channel = inner.channel(channel_id)?;
        peer::wait_synced(inner, &channel).await?;
        let now = inner.config.clock.now();
        let (withdrawal, answer) = {
            let mut rt = channel.rt.lock().await;
            rt.ensure_usable()?;
            let me = rt.state.me();
            let withdrawal = match rt.own_withdrawal().cloned() {
                Some((withdrawal, signature)) => {
                    let pending = rt.state.pending_withdrawal(me).map(|p| p.amount);
                    let signed_to = (withdrawal.target, withdrawal.targetSide);
                    if pending != Some(amount) || signed_to != destination.fields() {
                        return Err(ChannelError::WithdrawalPending(inner.address).into());
                    }
                    if let Some(theirs) = signature {
                        return signed_withdrawal(inner, &rt, withdrawal, theirs);
                    }
                    withdrawal
                }
                None => {
                    let withdrawal = Withdrawal {
                        channelId: channel_id,
                        participant: inner.address,
                        totalWithdrawn: rt
                            .state
                            .ledger(me)
                            .1
                            .checked_add(amount)
                            .ok_or(ChannelError::InvalidWithdrawal("total overflows"))?,
                        expiry: now.saturating_add(inner.config.signature_lifetime),
                        target: destination.fields().0,
                        targetSide: destination.fields().1,
                    };
                    rt.state.approve_withdrawal(&withdrawal, now)?;
                    let event = Event::WithdrawalApproved {
                        withdrawal: withdrawal.clone(),
                        now,
                    };
                    inner.persist(&channel, &mut rt, &event).await?;
                    rt.requests.withdrawal = Some((withdrawal.clone(), None));
                    withdrawal
                }
            };
            let (reply, answer) = oneshot::channel();
            rt.withdrawal = Some(reply);
            (withdrawal, answer)
        };
        let request = Message::WithdrawalRequest {
            signature: inner.sign(&channel.domain, &withdrawal)?,
            withdrawal: withdrawal.clone(),
        };
        peer::send(inner, channel.peer, Outgoing::message(request))?;
        // The handler checked and stored the signature before answering.
        let theirs = inner.await_reply(answer, "withdrawal co-signature").await?;
        let rt = channel.rt.lock().await;
        signed_withdrawal(inner, &rt, withdrawal, theirs)
    }

    /// Agrees the cooperative close that pays both current balances with the peer, and returns
    /// it with both signatures, ready for the vault. The channel takes no more updates unless
    /// the close expires unexecuted. Needs no pending locks or withdrawals.
    ///
    /// Waits for the peer as [`Client::request_withdrawal`]. Called again while our close is
    /// pending, it returns that close (asking the peer again if its signature never came).
    pub async fn request_close(&self, channel_id: B256) -> Result<SignedClose> {
        let inner = &self.inner;
        let channel = inner.channel(channel_id)?;
        peer::wait_synced(inner, &channel).await?;
        let now = inner.config.clock.now();
        let (close, answer) = {
            let mut rt = channel.rt.lock().await;
            rt.ensure_usable()?;
            let close = match rt.own_close().cloned() {
                Some((close, Some(theirs))) => return signed_close(inner, &rt, close, theirs),
                Some((close, None)) => close,
                None => {
                    check_closable(channel_id, &rt)?;
                    let close = rt
                        .state
                        .propose_close(now.saturating_add(inner.config.signature_lifetime))?;
                    let event = Event::CloseProposed {
                        close: close.clone(),
                    };
                    inner.persist(&channel, &mut rt, &event).await?;
                    rt.requests.close = Some((close.clone(), None));
                    close
                }
            };
            let (reply, answer) = oneshot::channel();
            rt.close = Some(reply);
            (close, answer)
        };
        let request = Message::CloseRequest {
            signature: inner.sign(&channel.domain, &close)?,
            close: close.clone(),
        };
        peer::send(inner, channel.peer, Outgoing::message(request))?;
        let theirs = inner.await_reply(answer, "close co-signature").await?;
        let rt = channel.rt.lock().await;
        signed_close(inner, &rt, close, theirs)
    }

    /// Withdraws `amount` of our balance while the channel stays open: agrees it with the peer
    /// ([`Client::request_withdrawal`]) and submits it. Our balance drops once the monitor
    /// confirms it. If submitting fails (the node is down), the co-signed withdrawal is kept
    /// and submitted again in the background; calling this again with the same amount submits
    /// it now.
    pub async fn withdraw(&self, channel_id: B256, amount: U256) -> Result<TxReceipt> {
        self.withdraw_to(channel_id, amount, Destination::Own).await
    }

    /// [`Client::withdraw`] to `destination`: with [`Destination::Vault`], moves `amount` of our
    /// balance in this channel into our side of another channel in one transaction (a hub's
    /// on-chain rebalancing step). Anyone may submit the co-signed move; it can execute only as
    /// that move.
    pub async fn withdraw_to(
        &self,
        channel_id: B256,
        amount: U256,
        destination: Destination,
    ) -> Result<TxReceipt> {
        let signed = self
            .request_withdrawal_to(channel_id, amount, destination)
            .await?;
        let channel = self.inner.channel(channel_id)?;
        submit(&self.inner, &channel, &Signed::Withdrawal(signed)).await
    }

    /// Closes the channel cooperatively: agrees the final balances with the peer
    /// ([`Client::request_close`]) and submits them; both are paid at once. If submitting
    /// fails, the co-signed close is kept and submitted again in the background; calling this
    /// again submits it now.
    pub async fn close(&self, channel_id: B256) -> Result<TxReceipt> {
        let signed = self.request_close(channel_id).await?;
        let channel = self.inner.channel(channel_id)?;
        submit(&self.inner, &channel, &Signed::Close(signed)).await
    }
}

/// Our withdrawal with our signature (deterministic, so the same as the one sent) and theirs.
fn signed_withdrawal(
    inner: &Inner,
    rt: &Runtime,
    withdrawal: Withdrawal,
    theirs: Signature,
) -> Result<SignedWithdrawal> {
    let ours = inner.sign(rt.state.domain(), &withdrawal)?;
    let (signature_a, signature_b) = ordered(rt.state.me(), ours, theirs);
    Ok(SignedWithdrawal {
        withdrawal,
        signature_a,
        signature_b,
    })
}

/// Our close with both signatures, as [`signed_withdrawal`].
fn signed_close(
    inner: &Inner,
    rt: &Runtime,
    close: CooperativeClose,
    theirs: Signature,
) -> Result<SignedClose> {
    let ours = inner.sign(rt.state.domain(), &close)?;
    let (signature_a, signature_b) = ordered(rt.state.me(), ours, theirs);
    Ok(SignedClose {
        close,
        signature_a,
        signature_b,
    })
}

/// Submits `signed` unless it was mined already (then its receipt), one submission per channel
/// at a time.
async fn submit(inner: &Inner, channel: &Channel, signed: &Signed) -> Result<TxReceipt> {
    let mut submissions = channel.submitting.lock().await;
    submit_locked(inner, channel, &mut submissions, signed).await
}

async fn submit_locked(
    inner: &Inner,
    channel: &Channel,
    submissions: &mut Submissions,
    signed: &Signed,
) -> Result<TxReceipt> {
    let digest = signed.digest(channel);
    if let Some((_, receipt)) = submissions.mined.iter().find(|(d, _)| *d == digest) {
        return Ok(receipt.clone());
    }
    let link = inner.link(channel.chain_id)?;
    let params = *channel.rt.lock().await.state.params();
    let result = match signed {
        Signed::Withdrawal(w) => {
            link.chain
                .withdraw(&params, &w.withdrawal, &w.signature_a, &w.signature_b)
                .await
        }
        Signed::Close(c) => {
            link.chain
                .cooperative_close(&params, &c.close, &c.signature_a, &c.signature_b)
                .await
        }
    };
    match &result {
        Ok(receipt) => {
            remember(&mut submissions.mined, (digest, receipt.clone()));
            submissions.failures = 0;
            submissions.next_try = None;
        }
        // The vault refused it: it can never execute (already executed, or expired).
        Err(ChainError::Rejected { .. } | ChainError::Reverted { .. }) => {
            remember(&mut submissions.refused, digest);
        }
        Err(_) => {
            submissions.failures = submissions.failures.saturating_add(1);
            let factor = 1u32 << submissions.failures.saturating_sub(1).min(6);
            let wait = RETRY_FIRST.saturating_mul(factor).min(RETRY_MAX);
            submissions.next_try = Some(tokio::time::Instant::now() + wait);
        }
    }
    Ok(result?)
}

fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= REMEMBERED {
        list.remove(0);
    }
    list.push(item);
}

/// Our co-signed requests in `rt` that may still execute: what the background submits.
pub(crate) fn co_signed(inner: &Inner, rt: &Runtime) -> Vec<Signed> {
    let mut due = Vec::new();
    if let Some((withdrawal, Some(theirs))) = rt.own_withdrawal().cloned() {
        if let Ok(signed) = signed_withdrawal(inner, rt, withdrawal, theirs) {
            due.push(Signed::Withdrawal(signed));
        }
    }
    if let Some((close, Some(theirs))) = rt.own_close().cloned() {
        if let Ok(signed) = signed_close(inner, rt, close, theirs) {
            due.push(Signed::Close(signed));
        }
    }
    due
}

/// Submits `signed` in the background unless a submission is running, it was mined or refused,
/// or its back-off has not passed; failures are reported as [`ClientEvent::ChainTrouble`].
pub(crate) fn resubmit(inner: &Arc<Inner>, channel: &Arc<Channel>, signed: Signed) {
    if inner.link(channel.chain_id).is_err() {
        return;
    }
    let (inner, channel) = (Arc::clone(inner), Arc::clone(channel));
    tokio::spawn(async move {
        let Ok(mut submissions) = channel.submitting.try_lock() else {
            return;
        };
        let digest = signed.digest(&channel);
        let settled = submissions.mined.iter().any(|(d, _)| *d == digest)
            || submissions.refused.contains(&digest);
        let waiting = submissions
            .next_try
            .is_some_and(|at| at > tokio::time::Instant::now());
        if settled || waiting {
            return;
        }
        if let Err(e) = submit_locked(&inner, &channel, &mut submissions, &signed).await {
            inner.emit(ClientEvent::ChainTrouble {
                chain_id: channel.chain_id,
                reason: format!(
                    "submitting our co-signed {} in channel {}: {}",
                    signed.what(),
                    channel.id,
                    crate::chain::report(&e)
                ),
            });
        }
    });
}

/// Asks the peer again to sign our requests it has not signed (after a reconnect: it may
/// have signed and stored its approval while we were down). The approval handlers store the
/// signature; the background submits.
pub(crate) async fn ask_again(inner: &Inner, channel: &Channel) {
    let rt = channel.rt.lock().await;
    let mut requests = Vec::new();
    if let Some((withdrawal, None)) = rt.own_withdrawal().cloned() {
        if let Ok(signature) = inner.sign(&channel.domain, &withdrawal) {
            requests.push(Message::WithdrawalRequest {
                withdrawal,
                signature,
            });
        }
    }
    if let Some((close, None)) = rt.own_close().cloned() {
        if let Ok(signature) = inner.sign(&channel.domain, &close) {
            requests.push(Message::CloseRequest { close, signature });
        }
    }
    for request in requests {
        // A peer gone again is asked on the next reconnect.
        let _ = peer::send(inner, channel.peer, Outgoing::message(request));
    }
}

/// Why the channel cannot close cooperatively now, as a typed error: what the close would pay
/// is still moving.
fn check_closable(channel_id: B256, rt: &super::channel::Runtime) -> Result<()> {
    if !rt.unacked.is_empty() {
        return Err(ClientError::PaymentsInFlight {
            channel_id,
            in_flight: rt.unacked.len(),
        });
    }
    let pending: usize = [Side::A, Side::B]
        .into_iter()
        .map(|side| rt.state.direction(side).locks.len())
        .sum();
    if pending > 0 {
        return Err(ClientError::LocksPending {
            channel_id,
            pending,
        });
    }
    if [Side::A, Side::B]
        .into_iter()
        .any(|side| rt.state.pending_withdrawal(side).is_some())
    {
        return Err(ClientError::WithdrawalUnconfirmed(channel_id));
    }
    Ok(())
}
