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
use keel_client::{client::ClientEvent, store::ChainStatus, ClientError};
use tokio::sync::broadcast;

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

/// Counts `RefutationSubmitted` events received so far.
fn refutations(
    events: &mut broadcast::Receiver<ClientEvent>,
    seen: &mut Vec<ClientEvent>,
) -> usize {
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    seen.iter()
        .filter(|e| matches!(e, ClientEvent::RefutationSubmitted { .. }))
        .count()
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
    let mut events = pair.bob.subscribe();
    let mut seen = Vec::new();

    // Alice's close lands in a block that a reorg then replaces before it is confirmed.
    paused.store(true, Ordering::SeqCst);
    let receipt = pair.alice.force_close(id).await?;
    let close_block = receipt.block_number.expect("mined");
    // Several polls of Bob's monitor see the close at the head, unconfirmed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let head = pair.net.block_number().await?;
    pair.net.reorg(head - close_block + 1).await?;
    paused.store(false, Ordering::SeqCst);
    // Wait until Bob's monitor is well past the old close block.
    let chain_id = pair.net.chain_id;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let health = pair.bob.chain_health(chain_id)?;
            if health.checkpoint.is_some_and(|c| c.block > close_block + 2) {
                return Ok::<_, ClientError>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await??;
    ensure!(refutations(&mut events, &mut seen) == 0, "{seen:?}");
    ensure!(
        !seen
            .iter()
            .any(|e| matches!(e, ClientEvent::ClosedByPeer { .. })),
        "the removed close was never delivered: {seen:?}"
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
    // Give a duplicate the time to show up, if there were one.
    pair.net.mine(2 * CONFIRMATIONS).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(refutations(&mut events, &mut seen) == 1, "{seen:?}");

    pair.advance(u64::from(keel_e2e::MIN_PERIOD) + 1).await?;
    pair.bob.settle(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    mining.abort();
    Ok(())
}
