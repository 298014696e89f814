//! Early release of a failed payment's locks, end to end: the receiver of a lock that will not
//! be claimed signs a `LockRelease`, the sender takes the lock back at once instead of at
//! expiry, hop by hop back to the payer; and in a dispute the payer's client records the
//! releases in the vault, so a close with an older proof that still holds a released lock, its
//! secret registered in time, returns the lock to the payer.

use alloy::primitives::{Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    chain::{ChainEvent, ChainEventKind},
    client::{ClientEvent, Clock},
    store::ChainStatus,
    ClientError,
};
use keel_core::{forwarding::FailureReason, locks_root, sign_message, BalanceProof, Side};
use keel_e2e::MIN_PERIOD;

use crate::{
    client_flow::{units, wait_for, wait_until},
    multihop::{policy, three},
};

/// Carol refuses a payment she never asked for: her release reaches Bob, who takes his lock
/// back and releases Alice's, who takes hers back: every lock is gone and every balance whole
/// with no clock moved (the locks had an hour to run), and each receiver hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_releases_every_hop_at_once() -> Result<()> {
    let deposit = units("1");
    let (line, ab, bc) = three("release-hops", deposit, Some(policy(500, 1_000))).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let (mut bob_events, mut carol_events) = (bob.subscribe(), carol.subscribe());
    let amount = units("0.1");
    let route = alice
        .find_route(line.net.chain_id, carol.address(), Address::ZERO, amount)
        .await?;
    let views = [(alice, ab), (bob, ab), (bob, bc), (carol, bc)];
    let mut before = Vec::new();
    for (client, id) in views {
        before.push(client.channel(id).await?);
    }
    let unknown = B256::repeat_byte(0x42);
    let started = line.clock.now();
    match alice.pay_route(&route, unknown).await {
        Err(ClientError::PaymentFailed { failure, hop }) => {
            ensure!(
                failure.reason == FailureReason::UnknownPayment,
                "{failure:?}"
            );
            ensure!(
                failure.node == carol.address() && hop == Some(1),
                "{failure:?}"
            );
        }
        other => return Err(eyre!("expected UnknownPayment, got {other:?}")),
    }
    for ((client, id), was) in views.into_iter().zip(before) {
        let info = wait_until(client, id, |i| {
            i.outgoing_locks.is_empty() && i.incoming_locks.is_empty()
        })
        .await?;
        ensure!(
            (info.balance, info.peer_balance) == (was.balance, was.peer_balance),
            "{info:?}"
        );
    }
    ensure!(
        line.clock.now() == started,
        "no lock may wait for its expiry"
    );
    for (events, id) in [(&mut bob_events, ab), (&mut carol_events, bc)] {
        wait_for(events, |e| {
            matches!(e, ClientEvent::LockReleased { channel_id, secret_hash }
                if *channel_id == id && *secret_hash == unknown)
        })
        .await?;
    }
    Ok(())
}

/// Bob refuses Alice's lock (its fee is short) and releases it; Alice takes it back. Bob then
/// closes with the proof of Alice's that still held the lock (signed by her, as she once
/// did), and the lock's secret is registered in time. Alice's client records Bob's release in
/// the vault, so after settlement `unlock` gives the lock back to Alice, not to Bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_close_cannot_claim_a_released_lock() -> Result<()> {
    let deposit = units("1");
    let (line, ab, bc) = three("release-dispute", deposit, Some(policy(1_000, 0))).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let amount = units("0.1");
    let (request, secret) = carol
        .create_hold_invoice(line.net.chain_id, Address::ZERO, amount, 3_600, "")
        .await?;
    let hash = request.request.paymentHash;
    let mut short_paid = alice
        .find_route(line.net.chain_id, carol.address(), Address::ZERO, amount)
        .await?;
    short_paid.locks[0].amount -= U256::from(1);
    let mut bob_events = bob.subscribe();
    let err = alice.pay_route(&short_paid, hash).await.unwrap_err();
    ensure!(
        matches!(&err, ClientError::PaymentFailed { failure, .. } if failure.reason == FailureReason::FeeTooLow),
        "{err:?}"
    );
    let ClientEvent::LockReceived { lock, .. } = wait_for(
        &mut bob_events,
        |e| matches!(e, ClientEvent::LockReceived { channel_id, .. } if *channel_id == ab),
    )
    .await?
    else {
        unreachable!()
    };
    let info = wait_until(alice, ab, |i| i.outgoing_locks.is_empty()).await?;
    ensure!(info.balance == deposit);
    wait_until(bob, ab, |i| i.incoming_locks.is_empty()).await?;
    ensure!(carol.channel(bc).await?.incoming_locks.is_empty());

    let (stale, signature) = stale_proof(
        bob,
        ab,
        lock,
        &line.net.alice.signer,
        line.net.chain_id,
        info.vault,
    )
    .await?;
    let params = bob.channel_params(ab).await?;
    let mut alice_events = alice.subscribe();
    let bobs_chain = line.net.chain(&line.net.bob).await?;
    bobs_chain
        .close(&params, Some((&stale, &signature)))
        .await?;
    let registered = bobs_chain.register_secret(secret).await?;
    ensure!(registered.status());

    let recorded = wait_for(
        &mut alice_events,
        |e| matches!(e, ClientEvent::LocksReleasedOnChain { channel_id, .. } if *channel_id == ab),
    )
    .await?;
    ensure!(
        matches!(recorded, ClientEvent::LocksReleasedOnChain { count: 1, .. }),
        "{recorded:?}"
    );

    line.advance(u64::from(MIN_PERIOD) + 1).await?;
    alice.settle(ab).await?;
    wait_until(alice, ab, |i| {
        matches!(i.chain, ChainStatus::Settled { locks: Some(_), .. })
    })
    .await?;
    let unlocked = alice.unlock(ab).await?;
    ensure!(unlocked.len() == 1, "{unlocked:?}");
    let kinds: Vec<ChainEventKind> =
        ChainEvent::from_receipt(line.net.chain_id, info.vault, ab, &unlocked[0])?
            .into_iter()
            .map(|e| e.kind)
            .collect();
    let alice_side = info.me;
    ensure!(alice_side == Side::A || alice_side == Side::B);
    ensure!(
        kinds.iter().any(
            |k| matches!(k, ChainEventKind::Unlocked { sender, to_receiver, to_sender, .. }
            if *sender == alice_side && to_receiver.is_zero() && *to_sender == lock.amount)
        ),
        "{kinds:?}"
    );
    Ok(())
}

/// The proof the sender of `lock` in `channel` signed when it added the lock, the one before its
/// removal, as the lock's `receiver` once held it: signed again with the sender's key (the
/// signature is deterministic, so it is the very one the sender sent).
pub(crate) async fn stale_proof(
    receiver: &keel_client::Client,
    channel: B256,
    lock: keel_core::Lock,
    sender: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    vault: Address,
) -> Result<(BalanceProof, [u8; 65])> {
    let latest = receiver
        .latest_peer_proof(channel)
        .await?
        .ok_or_else(|| eyre!("no proof of the sender's"))?
        .0;
    let stale = BalanceProof {
        nonce: latest.nonce - 1,
        lockedAmount: lock.amount,
        locksRoot: locks_root(&[lock]),
        ..latest
    };
    let signature = sign_message(sender, &stale, chain_id, vault)?;
    Ok((stale, signature))
}
