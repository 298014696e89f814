//! The client against a flaky chain: its RPC node stopped and restarted mid-run, and a close
//! that a chain reorganisation removes.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use alloy::{primitives::Address, providers::Provider};
use eyre::{ensure, Result};
use keel_client::{chain::Health, client::ClientEvent, store::ChainStatus, ClientError};

use crate::client_flow::{agreed, expect_settled, units, wait_for, wait_until, Pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_restart_mid_run_misses_nothing() -> Result<()> {
    let mut pair = Pair::start("rpc-restart").await?;
    let chain_id = pair.net.chain_id;
    let id = pair.open(Address::ZERO, units("1")).await?;

    pair.net.stop_rpc();
    // Payments need no chain.
    for _ in 0..50 {
        pair.alice.pay(id, units("0.001")).await?;
        pair.bob.pay(id, units("0.0005")).await?;
    }
    // Transactions fail with a typed error, and the monitors notice.
    let err = pair.bob.top_up(id, units("0.5")).await.unwrap_err();
    ensure!(matches!(err, ClientError::Chain(_)), "{err:?}");
    for client in [&pair.alice, &pair.bob] {
        tokio::time::timeout(Duration::from_secs(30), async {
            while client
                .chain_health(chain_id)
                .map(|h| h.consecutive_failures)?
                == 0
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, ClientError>(())
        })
        .await??;
    }

    pair.net.restart_rpc().await?;
    pair.bob.top_up(id, units("0.5")).await?;
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.deposits[1] == units("1.5")).await?;
        // Back to healthy (a slow answer under load may count one more failure first).
        tokio::time::timeout(Duration::from_secs(30), async {
            while client.chain_health(chain_id)?.consecutive_failures != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, ClientError>(())
        })
        .await??;
    }
    let (a, b) = agreed(&pair, id).await?;
    ensure!((a, b) == (units("0.975"), units("1.525")), "{a} {b}");
    let mut events = pair.alice.subscribe();
    pair.bob.close(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    Ok(())
}

/// Mines a block every 50 ms unless paused, so confirmations accrue.
fn miner(pair: &Pair, paused: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let provider = pair.net.alice.provider.clone();
    tokio::spawn(async move {
        loop {
            if !paused.load(Ordering::SeqCst) {
                let _: Result<serde_json::Value, _> =
                    provider.raw_request("evm_mine".into(), ()).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Waits until Bob's monitor's health satisfies `done`; returns that snapshot.
async fn bob_health(pair: &Pair, mut done: impl FnMut(&Health) -> bool) -> Result<Health> {
    let chain_id = pair.net.chain_id;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let health = pair.bob.chain_health(chain_id)?;
            if done(&health) {
                return Ok::<_, ClientError>(health);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| eyre::eyre!("bob's monitor did not get there in time"))?
    .map_err(Into::into)
}

/// Waits until Bob's monitor has checkpointed `block`: every event up to it has been applied
/// (and every refutation it prompted counted in `refutations_started`).
async fn bob_checkpointed(pair: &Pair, block: u64) -> Result<()> {
    bob_health(pair, |h| h.checkpoint.is_some_and(|c| c.block >= block)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_removed_by_a_reorg_is_never_answered_and_the_real_one_once() -> Result<()> {
    const CONFIRMATIONS: u64 = 3;
    let pair = Pair::start_with("reorg", CONFIRMATIONS).await?;
    let paused = Arc::new(AtomicBool::new(false));
    let mining = miner(&pair, paused.clone());
    let id = pair.open(Address::ZERO, units("1")).await?;
    for _ in 0..3 {
        pair.alice.pay(id, units("0.1")).await?;
    }
    let (a, b) = agreed(&pair, id).await?;
    let chain_id = pair.net.chain_id;
    let mut events = pair.bob.subscribe();

    // Alice's close lands in a block that a reorg then replaces before it is confirmed.
    paused.store(true, Ordering::SeqCst);
    let receipt = pair.alice.force_close(id).await?;
    let close_block = receipt.block_number.expect("mined");
    // Bob's monitor sees the close at the head, unconfirmed (mining is paused), and finishes a
    // step on that head: a monitor that read unconfirmed blocks would deliver the close here.
    let saw = bob_health(&pair, |h| h.head.is_some_and(|head| head >= close_block)).await?;
    bob_health(&pair, |h| h.steps > saw.steps).await?;
    let head = pair.net.block_number().await?;
    pair.net.reorg(head - close_block + 1).await?;
    paused.store(false, Ordering::SeqCst);
    // Once Bob's monitor is past the old close block, the removed close was never delivered.
    bob_checkpointed(&pair, close_block + 3).await?;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    ensure!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::ClosedByPeer { .. })),
        "the removed close was never delivered: {seen:?}"
    );
    let started = pair.bob.refutations_started(chain_id)?;
    ensure!(
        started == 0,
        "{started} refutations of a removed close: {seen:?}"
    );
    ensure!(pair.bob.channel(id).await?.chain == ChainStatus::Open);

    // The close that stays is answered exactly once.
    pair.alice.force_close(id).await?;
    wait_for(&mut events, |e| {
        seen.push(e.clone());
        matches!(
            e,
            ClientEvent::DisputeAnswered {
                closer_nonce: 3,
                ..
            }
        )
    })
    .await?;
    // A duplicate would be started while Bob's monitor applies a later batch (the close or
    // the refutation delivered again): let it scan well past both, then count.
    pair.net.mine(2 * CONFIRMATIONS).await?;
    bob_checkpointed(&pair, pair.net.block_number().await? - CONFIRMATIONS).await?;
    let started = pair.bob.refutations_started(chain_id)?;
    ensure!(started == 1, "{started} refutations of one close: {seen:?}");
    // The one started was submitted (its event may still be on its way).
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let submitted = |seen: &[ClientEvent]| {
        seen.iter()
            .filter(|e| matches!(e, ClientEvent::RefutationSubmitted { .. }))
            .count()
    };
    if submitted(&seen) == 0 {
        let event = wait_for(&mut events, |e| {
            matches!(e, ClientEvent::RefutationSubmitted { .. })
        })
        .await?;
        seen.push(event);
    }
    ensure!(submitted(&seen) == 1, "{seen:?}");

    pair.advance(u64::from(keel_e2e::MIN_PERIOD) + 1).await?;
    pair.bob.settle(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    mining.abort();
    Ok(())
}
