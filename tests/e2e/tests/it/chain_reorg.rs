//! The monitor across `anvil_reorg`: a Closed event removed by a reorg and replaced by another
//! close. Within the confirmation depth the removed event is never delivered; deeper, the
//! monitor notices its checkpoint's block was replaced and delivers the canonical events again.

use alloy::primitives::{Address, U256};
use eyre::{ensure, eyre, Result};
use keel_client::chain::{BalanceData, Batch, ChainEvent, ChainEventKind, Monitor};
use keel_core::{BalanceProof, Side};
use keel_e2e::{Channel, Devnet};

use crate::chain_support::{
    kinds_of, proof, sign, units, wait_for, wait_for_checkpoint, Consumer, TempStore,
};

/// An ETH channel with alice's 1 and bob's 1; returns it and the block it was opened in.
async fn channel(net: &Devnet) -> Result<(Channel, u64)> {
    let ch = net.channel(net.params(Address::ZERO, 1));
    let receipt = net
        .chain(&net.alice)
        .await?
        .open(&ch.params, units("1"))
        .await?;
    net.chain(&net.bob)
        .await?
        .deposit(&ch.params, Side::B, units("1"))
        .await?;
    Ok((ch, receipt.block_number.ok_or_else(|| eyre!("no block"))?))
}

/// Bob's proof that he paid alice 0.5.
fn bobs_proof(ch: &Channel) -> BalanceProof {
    proof(ch, 1, units("0.5"), U256::ZERO, Default::default())
}

/// Alice closes with bob's proof (`Some`) or with none; returns the block.
async fn close(net: &Devnet, ch: &Channel, with_proof: bool) -> Result<u64> {
    let alice = net.chain(&net.alice).await?;
    let p = bobs_proof(ch);
    let sig = sign(net, ch, &net.bob, &p)?;
    let receipt = alice
        .close(&ch.params, with_proof.then_some((&p, &sig)))
        .await?;
    receipt.block_number.ok_or_else(|| eyre!("no block"))
}

/// The proof from bob on record in a Closed event, if `e` is one.
fn closed_with(e: &ChainEvent) -> Option<BalanceData> {
    match &e.kind {
        ChainEventKind::Closed(state) => Some(state.from_b),
        _ => None,
    }
}

#[tokio::test]
async fn reorg_within_the_confirmation_depth_is_never_delivered() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "shallow").await?;
    let (ch, opened_at) = channel(&net).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(3), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    net.mine(3).await?;
    assert_eq!(
        kinds_of(&consumer.events(1).await?, &ch).len(),
        1,
        "the deposit"
    );

    // Closed without a proof at b; one block on top; then both replaced.
    let b = close(&net, &ch, false).await?;
    net.mine(1).await?;
    wait_for(&monitor, "the head", |h| {
        h.head == Some(b + 1) && h.checkpoint.is_some_and(|cp| cp.block == b - 2)
    })
    .await?;
    net.reorg(2).await?;
    assert_eq!(net.block_number().await?, b + 1);

    // The replacement close, with bob's proof, and enough blocks to confirm it.
    let replaced = close(&net, &ch, true).await?;
    assert_eq!(replaced, b + 2);
    net.mine(3).await?;
    let batch = consumer.batch().await?;
    assert!(!batch.reorg);
    let closes: Vec<_> = batch.events.iter().filter_map(closed_with).collect();
    assert_eq!(closes, [BalanceData::from(&bobs_proof(&ch))]);
    assert_eq!(batch.events.len(), 1);
    batch.ack();
    let health = wait_for_checkpoint(&monitor, b + 2).await?;
    assert_eq!(health.reorgs, 0);
    wait_for_checkpoint(&monitor, net.block_number().await? - 3).await?;
    ensure!(consumer.is_empty(), "the removed close was delivered");
    Ok(())
}

/// Receives batches until one holds a Closed event; returns them all.
async fn until_closed(consumer: &mut Consumer) -> Result<Vec<(bool, Vec<ChainEvent>)>> {
    let mut seen = Vec::new();
    loop {
        let batch: Batch = consumer.batch().await?;
        let done = batch.events.iter().any(|e| closed_with(e).is_some());
        seen.push((batch.reorg, batch.events.clone()));
        batch.ack();
        if done {
            return Ok(seen);
        }
    }
}

#[tokio::test]
async fn reorg_deeper_than_the_confirmation_depth_is_detected_and_redelivered() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "deep").await?;
    let (ch, opened_at) = channel(&net).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(1), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    net.mine(1).await?;
    assert_eq!(
        kinds_of(&consumer.events(1).await?, &ch).len(),
        1,
        "the deposit"
    );

    let b = close(&net, &ch, false).await?;
    net.mine(1).await?;
    let first = until_closed(&mut consumer).await?;
    assert_eq!(
        first.iter().map(|(reorg, _)| *reorg).collect::<Vec<_>>(),
        [false]
    );
    assert_eq!(
        first[0]
            .1
            .iter()
            .filter_map(closed_with)
            .collect::<Vec<_>>(),
        [BalanceData::default()]
    );
    wait_for_checkpoint(&monitor, b).await?;

    // Three blocks replaced: the close's, the one before and the one after.
    net.reorg(3).await?;
    close(&net, &ch, true).await?;
    net.mine(1).await?;
    let again = until_closed(&mut consumer).await?;
    ensure!(
        again.iter().any(|(reorg, _)| *reorg),
        "no batch flagged the reorg: {again:#?}"
    );
    let events: Vec<ChainEvent> = again.into_iter().flat_map(|(_, e)| e).collect();
    assert_eq!(
        events.iter().filter_map(closed_with).collect::<Vec<_>>(),
        [BalanceData::from(&bobs_proof(&ch))],
        "only the canonical close"
    );
    let health = wait_for_checkpoint(&monitor, net.block_number().await? - 1).await?;
    assert_eq!(health.reorgs, 1);
    ensure!(consumer.is_empty(), "delivered more: the removed close?");
    Ok(())
}

/// After a restart the monitor knows only its saved checkpoint: if a reorg replaced that block
/// meanwhile, it rewinds `FALLBACK_REWIND` blocks (here: to genesis) and delivers everything
/// canonical since, flagged.
#[tokio::test]
async fn reorg_while_stopped_rewinds_by_the_fallback_depth() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "stopped").await?;
    let (ch, opened_at) = channel(&net).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    close(&net, &ch, false).await?;
    assert_eq!(
        consumer
            .events(2)
            .await?
            .iter()
            .filter_map(closed_with)
            .count(),
        1
    );
    wait_for_checkpoint(&monitor, net.block_number().await?).await?;
    monitor.stop().await;

    net.reorg(1).await?;
    close(&net, &ch, true).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    let again = until_closed(&mut consumer).await?;
    assert!(again.iter().all(|(reorg, _)| *reorg));
    let events: Vec<ChainEvent> = again.into_iter().flat_map(|(_, e)| e).collect();
    assert_eq!(
        kinds_of(&events, &ch).first(),
        Some(&ChainEventKind::Deposited {
            side: Side::B,
            total: units("1")
        })
    );
    assert_eq!(
        events.iter().filter_map(closed_with).collect::<Vec<_>>(),
        [BalanceData::from(&bobs_proof(&ch))]
    );
    assert_eq!(monitor.health().reorgs, 1);
    Ok(())
}
