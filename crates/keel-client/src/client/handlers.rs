//! What the client does with each message a peer sends. A message that is invalid for any
//! reason gets a `Reject` and changes nothing; the connection and the channel stay usable.

use std::sync::{atomic::Ordering, Arc};

use keel_core::{
    secret_hash, signing::Verified, wire::Message, wire::Signature, Address, BalanceProof, Change,
    ChannelError, CooperativeClose, Withdrawal, B256,
};

use super::{
    channel::{Channel, Runtime},
    check_signer,
    peer::{self, Outgoing},
    ClientError, ClientEvent, Inner, RejectCode,
};
use crate::store::Event;

/// Dispatches one message from `from`; `verified`, for an update, is its signature already
/// checked against the channel's key table.
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    from: Address,
    msg: Message,
    verified: Option<Verified>,
) {
    let result = match msg {
        Message::Update {
            changes,
            proof,
            signature,
        } => update(inner, from, changes, proof, signature, verified).await,
        Message::Ack { channel_id, nonce } => ack(inner, from, channel_id, nonce).await,
        Message::WithdrawalRequest {
            withdrawal,
            signature,
        } => withdrawal_request(inner, from, withdrawal, signature).await,
        Message::WithdrawalApproval {
            withdrawal,
            signature,
        } => withdrawal_approval(inner, from, &withdrawal, signature).await,
        Message::CloseRequest { close, signature } => {
            close_request(inner, from, close, signature).await
        }
        Message::CloseApproval { close, signature } => {
            close_approval(inner, from, &close, signature).await
        }
        Message::RevealSecret { channel_id, secret } => {
            reveal_secret(inner, from, channel_id, secret).await
        }
        Message::Resync {
            channel_id,
            sent_nonce,
            received_nonce,
        } => resync(inner, from, channel_id, sent_nonce, received_nonce).await,
        Message::Reject { channel_id, code } => {
            reject(inner, from, channel_id, RejectCode::from_u16(code)).await;
            Ok(())
        }
        Message::LockOnion {
            channel_id,
            secret_hash,
            packet,
        } => channel_of(inner, from, channel_id)
            .map(|_| super::forward::onion_arrived(inner, channel_id, secret_hash, packet)),
        Message::LockFailed {
            channel_id,
            secret_hash,
            failure,
        } => lock_failed(inner, from, channel_id, secret_hash, failure).await,
        Message::LockReleased {
            channel_id,
            secret_hash,
            signature,
        } => match channel_of(inner, from, channel_id) {
            Ok(channel) => {
                super::forward::release::lock_released(inner, &channel, secret_hash, signature)
                    .await
            }
            Err(refusal) => Err(refusal),
        },
        Message::AnnouncementSignature {
            channel_id,
            signature,
        } => match channel_of(inner, from, channel_id) {
            Ok(channel) => super::gossip::signature_received(inner, from, channel, signature).await,
            Err(refusal) => Err(refusal),
        },
        // Gossip gets no Reject: a refusal is counted against the sender instead.
        Message::ChannelAnnouncement {
            chain_id,
            announcement,
            capacity,
            signatures,
        } => {
            super::gossip::announcement_received(
                inner,
                from,
                chain_id,
                announcement,
                capacity,
                signatures,
            );
            Ok(())
        }
        Message::ChannelUpdate { update, signature } => {
            super::gossip::update_received(inner, from, update, signature);
            Ok(())
        }
        // Only the first message of a connection may be a Hello; a repeat is harmless.
        Message::Hello { .. } => Ok(()),
    };
    if let Err((channel_id, code)) = result {
        let reject = Message::Reject {
            channel_id,
            code: code.to_u16(),
        };
        // If the peer is gone it does not need the refusal either.
        let _ = peer::send(inner, from, Outgoing::message(reject));
    }
}

/// A refusal to send back: the channel and why.
type Refusal = (B256, RejectCode);

/// The channel `channel_id`, if `from` is its counterparty.
fn channel_of(inner: &Inner, from: Address, channel_id: B256) -> Result<Arc<Channel>, Refusal> {
    let channel = inner
        .channel(channel_id)
        .map_err(|_| (channel_id, RejectCode::UnknownChannel))?;
    if channel.peer != from {
        return Err((channel_id, RejectCode::NotYourChannel));
    }
    Ok(channel)
}

fn refused(channel_id: B256, e: &ChannelError) -> Refusal {
    let code = match e {
        ChannelError::BadSignature(_) => RejectCode::BadSignature,
        _ => RejectCode::Refused,
    };
    (channel_id, code)
}

/// The peer's update to its direction: its changes verified and applied by the state machine
/// (all or none), stored as one event, then acknowledged with the last nonce.
async fn update(
    inner: &Arc<Inner>,
    from: Address,
    changes: Vec<Change>,
    proof: BalanceProof,
    signature: Signature,
    verified: Option<Verified>,
) -> Result<(), Refusal> {
    let id = proof.channelId;
    let channel = channel_of(inner, from, id)?;
    let mut rt = channel.rt.lock().await;
    if !rt.chain.is_open() {
        return Err((id, RejectCode::Refused));
    }
    let now = inner.config.clock.now();
    let them = rt.state.me().other();
    // The peer's locks before the batch: what each claim in it pays.
    let mut locks = rt.state.direction(them).locks.clone();
    let received = match &verified {
        // The token must cover exactly this proof and this signature; the state machine
        // checks the digest and the key.
        Some(v) if v.signature() == &signature => {
            rt.state.receive_verified(&changes, &proof, v, now)
        }
        _ => rt.state.receive(&changes, &proof, &signature, now),
    };
    received.map_err(|e| refused(id, &e))?;
    if channel.table.get().is_none() {
        if let Some(table) = rt.state.counterparty_table() {
            // Later updates are checked in parallel as they arrive.
            let _ = channel.table.set(table);
        }
    }
    // Locks that came with an onion: acted on behind the update's write.
    let arrived = super::forward::take_onions(inner, id, &changes);
    // Accepted: the changes took one nonce each, up to the proof's.
    let first_nonce = proof.nonce + 1 - changes.len() as u64;
    let events: Vec<ClientEvent> = changes
        .iter()
        .zip(first_nonce..)
        .map(|(change, nonce)| received_event(&mut rt, &mut locks, id, change, nonce))
        .collect();
    let nonce = proof.nonce;
    let stored = Event::Received {
        changes,
        proof,
        signature,
        now,
    };
    let commit = match inner
        .store
        .enqueue_noted(id, &stored, super::encode_notes(&events))
        .await
    {
        Ok(commit) => commit,
        Err(e) => {
            inner.fail_channel(
                id,
                &mut rt,
                format!("store failed: {}", crate::chain::report(&e)),
            );
            return Err((id, RejectCode::Storage));
        }
    };
    inner.count_event(&mut rt).await;
    // The watchtowers get the newest proof later, off this path, once per channel.
    inner.towers.updated(id);
    // What the application hears of it is stored with it, and read from the store.
    let ack = Outgoing::Message {
        commit: Some(commit),
        msg: Message::Ack {
            channel_id: id,
            nonce,
        },
    };
    // Sent while the channel is locked, so acks leave in nonce order.
    let _ = peer::send(inner, from, ack);
    super::forward::locks_arrived(inner, id, arrived);
    Ok(())
}

/// What the application hears about one accepted change (answering our claim's caller if it
/// was the peer paying out a lock we claimed). `locks` follows the peer's pending locks through
/// the batch, so a claim reports what its lock held even if the batch added it.
fn received_event(
    rt: &mut Runtime,
    locks: &mut Vec<keel_core::Lock>,
    channel_id: B256,
    change: &Change,
    nonce: u64,
) -> ClientEvent {
    let mut take = |hash: B256| {
        let at = locks.iter().position(|l| l.secret_hash == hash);
        at.map(|i| locks.remove(i).amount)
    };
    match change {
        Change::Pay { amount } => ClientEvent::PaymentReceived {
            channel_id,
            amount: *amount,
            nonce,
        },
        Change::AddLock(lock) => {
            locks.push(*lock);
            ClientEvent::LockReceived {
                channel_id,
                lock: *lock,
            }
        }
        Change::ClaimLock { secret } => {
            let hash = secret_hash(*secret);
            if let Some(reply) = rt.claims.remove(&hash) {
                let _ = reply.send(Ok(()));
            }
            ClientEvent::LockClaimed {
                channel_id,
                secret_hash: hash,
                secret: *secret,
                // The state machine accepted the claim, so the lock was there.
                amount: take(hash).unwrap_or_default(),
                incoming: true,
            }
        }
        Change::RemoveExpiredLock { secret_hash } => {
            take(*secret_hash);
            ClientEvent::LockExpired {
                channel_id,
                secret_hash: *secret_hash,
            }
        }
        Change::RemoveReleasedLock { secret_hash, .. } => {
            take(*secret_hash);
            ClientEvent::LockReleased {
                channel_id,
                secret_hash: *secret_hash,
            }
        }
    }
}

/// The peer stored our updates up to `nonce`.
async fn ack(inner: &Inner, from: Address, channel_id: B256, nonce: u64) -> Result<(), Refusal> {
    let channel = channel_of(inner, from, channel_id)?;
    let mut rt = channel.rt.lock().await;
    if nonce > rt.state.direction(rt.state.me()).nonce {
        // Acknowledges a proof we never made: ignore rather than free window slots.
        return Err((channel_id, RejectCode::OutOfSync));
    }
    let freed = rt.acknowledge(nonce);
    channel.window.add_permits(freed);
    Ok(())
}

/// The peer asks us to co-sign its withdrawal.
async fn withdrawal_request(
    inner: &Arc<Inner>,
    from: Address,
    withdrawal: Withdrawal,
    signature: Signature,
) -> Result<(), Refusal> {
    let id = withdrawal.channelId;
    let channel = channel_of(inner, from, id)?;
    let mut rt = channel.rt.lock().await;
    if withdrawal.participant != from || !rt.chain.is_open() {
        // Nobody withdraws for someone else.
        return Err((id, RejectCode::Refused));
    }
    let domain = *rt.state.domain();
    check_signer(&domain.signing_hash(&withdrawal), &signature, from)
        .map_err(|_| (id, RejectCode::BadSignature))?;
    let side = rt.state.me().other();
    if rt
        .state
        .pending_withdrawal(side)
        .is_some_and(|p| p.withdrawal == withdrawal)
    {
        // Approved and stored before; the peer lost our signature (a crash): sign again.
        return answer_again(
            inner,
            &channel,
            Message::WithdrawalApproval {
                signature: inner
                    .sign(&domain, &withdrawal)
                    .map_err(|_| (id, RejectCode::Refused))?,
                withdrawal,
            },
        );
    }
    let now = inner.config.clock.now();
    rt.state
        .approve_withdrawal(&withdrawal, now)
        .map_err(|e| refused(id, &e))?;
    let ours = inner
        .sign(&domain, &withdrawal)
        .map_err(|_| (id, RejectCode::Refused))?;
    let total_withdrawn = withdrawal.totalWithdrawn;
    let event = Event::WithdrawalApproved {
        withdrawal: withdrawal.clone(),
        now,
    };
    answer_after_storing(
        inner,
        &channel,
        &mut rt,
        &event,
        Message::WithdrawalApproval {
            withdrawal,
            signature: ours,
        },
        ClientEvent::WithdrawalApproved {
            channel_id: id,
            total_withdrawn,
        },
    )
    .await
}

/// The peer co-signed the withdrawal we asked for: checked and stored before the caller (if
/// one still waits) hears of it, so it survives a failed submission or a restart.
async fn withdrawal_approval(
    inner: &Inner,
    from: Address,
    withdrawal: &Withdrawal,
    signature: Signature,
) -> Result<(), Refusal> {
    let id = withdrawal.channelId;
    let channel = channel_of(inner, from, id)?;
    let mut rt = channel.rt.lock().await;
    let Some((ours, stored)) = rt.own_withdrawal().cloned() else {
        return Err((id, RejectCode::Refused));
    };
    if ours != *withdrawal {
        return Err((id, RejectCode::Refused));
    }
    if let Err(e) = check_signer(&channel.domain.signing_hash(withdrawal), &signature, from) {
        if let Some(reply) = rt.withdrawal.take() {
            let _ = reply.send(Err(e));
        }
        return Err((id, RejectCode::BadSignature));
    }
    if stored.is_none() {
        let event = Event::WithdrawalCoSigned { signature };
        inner
            .persist(&channel, &mut rt, &event)
            .await
            .map_err(|_| (id, RejectCode::Storage))?;
        rt.requests.withdrawal = Some((ours, Some(signature)));
    }
    if let Some(reply) = rt.withdrawal.take() {
        let _ = reply.send(Ok(signature));
    }
    Ok(())
}

/// The peer proposes a cooperative close.
async fn close_request(
    inner: &Arc<Inner>,
    from: Address,
    close: CooperativeClose,
    signature: Signature,
) -> Result<(), Refusal> {
    let id = close.channelId;
    let channel = channel_of(inner, from, id)?;
    let mut rt = channel.rt.lock().await;
    let domain = *rt.state.domain();
    check_signer(&domain.signing_hash(&close), &signature, from)
        .map_err(|_| (id, RejectCode::BadSignature))?;
    if !rt.chain.is_open() {
        return Err((id, RejectCode::Refused));
    }
    if rt.state.signed_close().is_some_and(|c| c == close) {
        // Approved and stored before; the peer lost our signature (a crash): sign again.
        return answer_again(
            inner,
            &channel,
            Message::CloseApproval {
                signature: inner
                    .sign(&domain, &close)
                    .map_err(|_| (id, RejectCode::Refused))?,
                close,
            },
        );
    }
    if !rt.unacked.is_empty() {
        // Our updates in flight would change the balances it pays.
        return Err((id, RejectCode::Refused));
    }
    rt.state
        .approve_close(&close)
        .map_err(|e| refused(id, &e))?;
    let ours = inner
        .sign(&domain, &close)
        .map_err(|_| (id, RejectCode::Refused))?;
    let event = Event::CloseApproved {
        close: close.clone(),
    };
    answer_after_storing(
        inner,
        &channel,
        &mut rt,
        &event,
        Message::CloseApproval {
            close,
            signature: ours,
        },
        ClientEvent::CloseApproved { channel_id: id },
    )
    .await
}

/// The peer co-signed the close we proposed: checked and stored first, as a withdrawal's.
async fn close_approval(
    inner: &Inner,
    from: Address,
    close: &CooperativeClose,
    signature: Signature,
) -> Result<(), Refusal> {
    let id = close.channelId;
    let channel = channel_of(inner, from, id)?;
    let mut rt = channel.rt.lock().await;
    let Some((ours, stored)) = rt.own_close().cloned() else {
        return Err((id, RejectCode::Refused));
    };
    if ours != *close {
        return Err((id, RejectCode::Refused));
    }
    if let Err(e) = check_signer(&channel.domain.signing_hash(close), &signature, from) {
        if let Some(reply) = rt.close.take() {
            let _ = reply.send(Err(e));
        }
        return Err((id, RejectCode::BadSignature));
    }
    if stored.is_none() {
        let event = Event::CloseCoSigned { signature };
        inner
            .persist(&channel, &mut rt, &event)
            .await
            .map_err(|_| (id, RejectCode::Storage))?;
        rt.requests.close = Some((ours, Some(signature)));
    }
    if let Some(reply) = rt.close.take() {
        let _ = reply.send(Ok(signature));
    }
    Ok(())
}

/// The receiver of one of our locks revealed its secret: pay the lock out.
async fn reveal_secret(
    inner: &Arc<Inner>,
    from: Address,
    channel_id: B256,
    secret: B256,
) -> Result<(), Refusal> {
    let channel = channel_of(inner, from, channel_id)?;
    let hash = secret_hash(secret);
    let amount = channel
        .outgoing_lock(hash)
        .await
        .ok_or((channel_id, RejectCode::Refused))?
        .amount;
    // A forward's secret is stored before anything is paid out downstream.
    super::forward::secret_learned(inner, channel_id, secret).await;
    // Sending waits for a window slot, which the reader must not: the acks that free slots
    // arrive through it.
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = inner
            .send_change(channel_id, Change::ClaimLock { secret }, Some(reply))
            .await;
        if sent.is_ok() && matches!(answer.await, Ok(Ok(()))) {
            inner
                .note(ClientEvent::LockClaimed {
                    channel_id,
                    secret_hash: hash,
                    secret,
                    amount,
                    incoming: false,
                })
                .await;
        }
    });
    Ok(())
}

/// The receiver of our lock in `channel_id` will not claim it.
async fn lock_failed(
    inner: &Arc<Inner>,
    from: Address,
    channel_id: B256,
    secret_hash: B256,
    failure: keel_core::forwarding::HopFailure,
) -> Result<(), Refusal> {
    let channel = channel_of(inner, from, channel_id)?;
    let ours = channel.outgoing_lock(secret_hash).await.is_some();
    // A lock the peer released may already be gone from our proof: its failure still counts.
    let released = || {
        inner
            .store
            .is_released(crate::store::Released::Outgoing, channel_id, secret_hash)
    };
    if ours || released().await.unwrap_or(false) {
        super::forward::lock_failed(inner, channel_id, secret_hash, failure).await;
    }
    // A failure for a lock we do not hold (claimed, or never sent) changes nothing and needs
    // no answer.
    Ok(())
}

/// The peer's view after a (re)connect: acknowledge what it has, resend what it lacks, and
/// from then on let updates through.
async fn resync(
    inner: &Arc<Inner>,
    from: Address,
    channel_id: B256,
    sent_nonce: u64,
    received_nonce: u64,
) -> Result<(), Refusal> {
    let channel = channel_of(inner, from, channel_id)?;
    let mut rt = channel.rt.lock().await;
    let me = rt.state.me();
    let ours = rt.state.direction(me).nonce;
    let theirs = rt.state.direction(me.other()).nonce;
    if received_nonce > ours || sent_nonce < theirs {
        // It holds proofs we never made, or lost proofs it made: one side lost data, and the
        // nonces no longer line up.
        let reason = format!(
            "out of sync: peer holds our nonce {received_nonce} (we sent {ours}), sent \
             {sent_nonce} (we hold {theirs})"
        );
        inner.fail_channel(channel_id, &mut rt, reason);
        return Err((channel_id, RejectCode::OutOfSync));
    }
    let freed = rt.acknowledge(received_nonce);
    channel.window.add_permits(freed);
    if *channel.synced.borrow() {
        // A repeat on this connection: resending again would duplicate what is in flight.
        return Ok(());
    }
    if received_nonce < ours {
        resend(inner, &channel, &mut rt, received_nonce, ours).await?;
    }
    channel.synced.send_replace(true);
    drop(rt);
    // The peer may have learnt of the channel only now, after refusing our first Resync.
    peer::announce(inner, &channel).await;
    super::requests::ask_again(inner, &channel).await;
    Ok(())
}

/// Queues our stored proofs with nonces in `(after, through]` for the peer, oldest first.
async fn resend(
    inner: &Inner,
    channel: &Channel,
    rt: &mut Runtime,
    after: u64,
    through: u64,
) -> Result<(), Refusal> {
    let id = channel.id;
    // Proofs applied but still queued for the disk are included once they are durable.
    let stored = async {
        inner.store.flush().await?;
        let sent = inner.store.sent_since(id, after).await?;
        let onions = inner.store.lock_onions(id, after).await?;
        Ok::<_, crate::store::StoreError>((sent, onions))
    }
    .await;
    let (sent, mut onions) = match stored {
        Ok(stored) => stored,
        Err(e) => {
            inner.fail_channel(
                id,
                rt,
                format!("store failed: {}", crate::chain::report(&e)),
            );
            return Err((id, RejectCode::Storage));
        }
    };
    let expected = usize::try_from(through - after).unwrap_or(usize::MAX);
    if sent.len() != expected || sent.last().map(|(_, p)| p.nonce) != Some(through) {
        inner.fail_channel(id, rt, "store lacks proofs the peer needs".into());
        return Err((id, RejectCode::OutOfSync));
    }
    let domain = *rt.state.domain();
    for (change, proof) in sent {
        // A lock's onion, lost with the update: it leads it again.
        let preface = onions
            .remove(&proof.nonce)
            .and_then(|packet| super::lock_onion(id, &change, packet));
        let update = Outgoing::Update {
            commit: None,
            change,
            proof,
            domain,
            preface,
        };
        peer::send(inner, channel.peer, update).map_err(|_| (id, RejectCode::Storage))?;
    }
    Ok(())
}

/// The peer refused one of our messages. A refused request fails only its caller; a refused
/// update means the peer does not hold a proof we signed and stored, so the channel fails.
async fn reject(inner: &Inner, from: Address, channel_id: B256, code: RejectCode) {
    let Ok(channel) = channel_of(inner, from, channel_id) else {
        return;
    };
    inner.emit(ClientEvent::PeerRejected { channel_id, code });
    match code {
        // Our Resync reached it before it learnt of the channel; its own Resync follows.
        RejectCode::UnknownChannel => {
            channel.resync_sent.store(false, Ordering::Relaxed);
            return;
        }
        // It could not store our update; the next Resync asks for it again.
        RejectCode::Storage => return,
        _ => {}
    }
    let mut rt = channel.rt.lock().await;
    let error = || ClientError::PeerRejected { channel_id, code };
    if let Some(reply) = rt.withdrawal.take() {
        let _ = reply.send(Err(error()));
    } else if let Some(reply) = rt.close.take() {
        let _ = reply.send(Err(error()));
    } else if !rt.unacked.is_empty() {
        inner.fail_channel(
            channel_id,
            &mut rt,
            format!("peer refused our update: {code:?}"),
        );
    }
}

/// Sends an approval that is stored already.
fn answer_again(inner: &Inner, channel: &Channel, answer: Message) -> Result<(), Refusal> {
    // A peer gone again asks again after its next reconnect.
    let _ = peer::send(inner, channel.peer, Outgoing::message(answer));
    Ok(())
}

/// Stores `event` (already applied), then sends `answer` and emits `note` once it is durable.
async fn answer_after_storing(
    inner: &Inner,
    channel: &Channel,
    rt: &mut Runtime,
    event: &Event,
    answer: Message,
    note: ClientEvent,
) -> Result<(), Refusal> {
    let commit = match inner
        .store
        .enqueue_noted(channel.id, event, super::encode_notes(&[note]))
        .await
    {
        Ok(commit) => commit,
        Err(e) => {
            inner.fail_channel(
                channel.id,
                rt,
                format!("store failed: {}", crate::chain::report(&e)),
            );
            return Err((channel.id, RejectCode::Storage));
        }
    };
    inner.count_event(rt).await;
    let _ = peer::send(
        inner,
        channel.peer,
        Outgoing::Message {
            commit: Some(commit),
            msg: answer,
        },
    );
    Ok(())
}
