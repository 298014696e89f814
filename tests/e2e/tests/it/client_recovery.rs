//! The client recovering from failed requests: nothing is stored from an operation that
//! failed before it reached the chain, and what was co-signed is not lost to an RPC outage or
//! a crash.

use alloy::primitives::{Address, B256};
use eyre::{ensure, Result};
use keel_client::{
    chain::ChainError,
    client::{ClientEvent, ManualClock},
    Client, ClientError,
};
use keel_e2e::{Devnet, MIN_PERIOD};

use crate::{
    chain_proxy::{Fault, Proxy},
    client_flow::{
        agreed, chain_time, config, expect_settled, units, wait_for, wait_until, Pair, TempDir,
    },
};

/// An `open_channel` the factory refuses (a challenge period below its minimum) stores
/// nothing: no channel now, none after a restart, none announced to the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_open_stores_nothing() -> Result<()> {
    let pair = Pair::start("refused-open").await?;
    let err = pair
        .alice
        .open_channel(
            pair.net.chain_id,
            pair.net.bob.address(),
            Address::ZERO,
            units("1"),
            MIN_PERIOD - 1,
        )
        .await
        .unwrap_err();
    ensure!(
        // Refused before sending since the bounds are checked first (it was the factory's
        // revert, found by simulating, before).
        matches!(
            err,
            ClientError::Chain(ChainError::ChallengePeriodOutOfRange { .. })
        ),
        "{err:?}"
    );
    ensure!(
        pair.alice.channels().await.is_empty(),
        "stored after a refused open"
    );

    pair.alice.clone().shutdown().await;
    let alice = Client::start(config(
        &pair.net,
        &pair.dir,
        &pair.clock,
        &pair.net.alice,
        "alice",
    ))
    .await?;
    ensure!(
        alice.channels().await.is_empty(),
        "a refused open survives a restart"
    );
    // A real open still works afterwards.
    alice
        .open_channel(
            pair.net.chain_id,
            pair.net.bob.address(),
            Address::ZERO,
            units("1"),
            MIN_PERIOD,
        )
        .await?;
    ensure!(alice.channels().await.len() == 1);
    Ok(())
}

/// A close and a withdrawal whose submission fails while the node is down are not lost: the
/// application's retry submits what was co-signed (before the fix the channel refused every
/// request until the signature expired, an hour later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_fail_in_an_rpc_outage_are_submitted_once_the_node_is_back() -> Result<()> {
    let mut pair = Pair::start("request-outage").await?;
    let id = pair.open(Address::ZERO, units("1")).await?;
    pair.alice.pay(id, units("0.25")).await?;

    pair.net.stop_rpc();
    let err = pair.alice.withdraw(id, units("0.1")).await.unwrap_err();
    ensure!(matches!(err, ClientError::Chain(_)), "{err:?}");
    pair.net.restart_rpc().await?;
    pair.alice.withdraw(id, units("0.1")).await?;
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.withdrawn[0] == units("0.1")).await?;
    }
    // The reservation is gone with the withdrawal: the rest of Alice's balance moves.
    pair.alice.pay(id, units("0.65")).await?;

    let (a, b) = agreed(&pair, id).await?;
    let mut events = pair.bob.subscribe();
    pair.net.stop_rpc();
    let err = pair.alice.close(id).await.unwrap_err();
    ensure!(matches!(err, ClientError::Chain(_)), "{err:?}");
    pair.net.restart_rpc().await?;
    pair.alice.close(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    Ok(())
}

/// What the peer co-signed survives a crash before it was submitted: the restarted client
/// submits it by itself (before the fix both sides refused payments until the signature
/// expired, about an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_co_signed_before_a_crash_are_submitted_after_the_restart() -> Result<()> {
    let pair = Pair::start("request-crash").await?;
    let id = pair.open(Address::ZERO, units("1")).await?;
    pair.alice.pay(id, units("0.25")).await?;
    let restart = |pair: &Pair| {
        Client::start(config(
            &pair.net,
            &pair.dir,
            &pair.clock,
            &pair.net.alice,
            "alice",
        ))
    };

    // Co-signed, never submitted: Alice stops right after.
    pair.alice.request_withdrawal(id, units("0.1")).await?;
    pair.alice.clone().shutdown().await;
    let alice = restart(&pair).await?;
    alice.connect(pair.bob_addr, pair.net.bob.address()).await?;
    let pair = Pair { alice, ..pair };
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.withdrawn[0] == units("0.1")).await?;
    }

    let (a, b) = agreed(&pair, id).await?;
    let mut events = pair.bob.subscribe();
    pair.alice.request_close(id).await?;
    pair.alice.clone().shutdown().await;
    let alice = restart(&pair).await?;
    alice.connect(pair.bob_addr, pair.net.bob.address()).await?;
    expect_settled(&mut events, id, a, b).await?;
    Ok(())
}

/// A client started while its RPC node is down starts (before the fix `Client::start`
/// failed), pays off chain, and catches up with the chain once the node is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_started_during_an_rpc_outage_pays_and_catches_up() -> Result<()> {
    let mut pair = Pair::start("start-outage").await?;
    let id = pair.open(Address::ZERO, units("1")).await?;
    pair.alice.clone().shutdown().await;
    pair.net.stop_rpc();
    let alice = Client::start(config(
        &pair.net,
        &pair.dir,
        &pair.clock,
        &pair.net.alice,
        "alice",
    ))
    .await?;
    alice.connect(pair.bob_addr, pair.net.bob.address()).await?;
    let pair = Pair { alice, ..pair };
    for _ in 0..10 {
        pair.alice.pay(id, units("0.01")).await?;
        pair.bob.pay(id, units("0.02")).await?;
    }
    let mut pair = pair;
    pair.net.restart_rpc().await?;
    pair.bob.top_up(id, units("0.5")).await?;
    // Each side's monitor reports the top-up in its own time: compare once both have it.
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.deposits[1] == units("1.5")).await?;
    }
    let (a, b) = agreed(&pair, id).await?;
    ensure!((a, b) == (units("1.1"), units("1.4")), "{a} {b}");
    Ok(())
}

/// Alice and Bob with a funded channel and three payments from Alice, Bob's node behind
/// `proxy`; `tune` adjusts Bob's chain configuration.
async fn behind_a_proxy(
    name: &str,
    tune: impl FnOnce(&mut keel_client::chain::ChainConfig),
) -> Result<(Pair, Proxy, B256)> {
    let net = Devnet::start().await?;
    let proxy = Proxy::start(net.rpc_url()).await?;
    let dir = TempDir::new(name);
    let clock = ManualClock::new(chain_time(&net).await?);
    let alice = Client::start(config(&net, &dir, &clock, &net.alice, "alice")).await?;
    let mut bob_config = config(&net, &dir, &clock, &net.bob, "bob");
    bob_config.chains[0].rpc_url = proxy.url.clone();
    tune(&mut bob_config.chains[0]);
    let bob = Client::start(bob_config).await?;
    let bob_addr = bob.listen("127.0.0.1:0").await?;
    alice.connect(bob_addr, net.bob.address()).await?;
    let pair = Pair {
        net,
        dir,
        clock,
        alice,
        bob,
        bob_addr,
    };
    let id = pair.open(Address::ZERO, units("1")).await?;
    for _ in 0..3 {
        pair.alice.pay(id, units("0.1")).await?;
    }
    Ok((pair, proxy, id))
}

/// Alice closes with Bob's proof (nonce 0 of hers); Bob must answer with her latest, nonce 3.
async fn stale_close_is_refuted(
    pair: &Pair,
    id: B256,
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
) -> Result<()> {
    pair.alice.force_close(id).await?;
    wait_for(events, |e| {
        matches!(e, ClientEvent::DisputeAnswered { channel_id, closer_nonce: 3 } if *channel_id == id)
    })
    .await?;
    Ok(())
}

/// Bob's node names another chain for a while: Bob is told (`ChainTrouble`), told again once
/// it is right (`ChainRecovered`), and his monitor, resumed from its checkpoint, still refutes
/// Alice's stale close (before the fix it had stopped for good, and with it the refutations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_close_is_refuted_after_the_node_named_another_chain() -> Result<()> {
    let (pair, proxy, id) = behind_a_proxy("wrong-chain-refute", |_| {}).await?;
    let chain_id = pair.net.chain_id;
    let mut events = pair.bob.subscribe();

    // A dropped request makes the monitor check the chain again; the node then names chain 1.
    proxy.set(Fault::Drop);
    wait_for_health(&pair.bob, chain_id, |h| h.consecutive_failures >= 1).await?;
    proxy.set(Fault::WrongChain);
    wait_for(&mut events, |e| {
        matches!(e, ClientEvent::ChainTrouble { .. })
    })
    .await?;
    wait_for_health(&pair.bob, chain_id, |h| h.wrong_chain == Some(1)).await?;

    proxy.set(Fault::None);
    wait_for(&mut events, |e| {
        matches!(e, ClientEvent::ChainRecovered { .. })
    })
    .await?;
    stale_close_is_refuted(&pair, id, &mut events).await
}

/// Bob's node accepts requests and never answers: each request ends at the request timeout
/// (2 s here) with a typed error, the monitor counts the failures and retries, and once the node
/// answers again it is healthy and still refutes Alice's stale close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_close_is_refuted_after_the_node_hung() -> Result<()> {
    let (pair, proxy, id) = behind_a_proxy("hung-node-refute", |chain| {
        chain.request_timeout = std::time::Duration::from_secs(2);
    })
    .await?;
    let chain_id = pair.net.chain_id;
    let mut events = pair.bob.subscribe();
    proxy.set(Fault::Hang);
    wait_for(&mut events, |e| {
        matches!(e, ClientEvent::ChainTrouble { .. })
    })
    .await?;
    let health = pair.bob.chain_health(chain_id)?;
    ensure!(
        !health.is_healthy() && health.consecutive_failures >= 3,
        "{health:?}"
    );
    proxy.set(Fault::None);
    wait_for(&mut events, |e| {
        matches!(e, ClientEvent::ChainRecovered { .. })
    })
    .await?;
    ensure!(pair.bob.chain_health(chain_id)?.is_healthy());
    stale_close_is_refuted(&pair, id, &mut events).await
}

/// Bob's node is stopped and started again on the same port with its state: the monitor
/// fails, retries, and resumes from its checkpoint, and still refutes Alice's stale close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_close_is_refuted_after_the_node_restarted() -> Result<()> {
    let (mut pair, _proxy, id) = behind_a_proxy("restarted-node-refute", |_| {}).await?;
    let chain_id = pair.net.chain_id;
    let mut events = pair.bob.subscribe();
    pair.net.stop_rpc();
    wait_for_health(&pair.bob, chain_id, |h| h.consecutive_failures >= 1).await?;
    pair.net.restart_rpc().await?;
    wait_for_health(&pair.bob, chain_id, |h| h.is_healthy()).await?;
    stale_close_is_refuted(&pair, id, &mut events).await
}

/// Waits until `client`'s monitor of `chain_id` satisfies `done` (polling its health).
async fn wait_for_health(
    client: &Client,
    chain_id: u64,
    done: impl Fn(&keel_client::chain::Health) -> bool,
) -> Result<()> {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while !done(&client.chain_health(chain_id)?) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok::<_, ClientError>(())
    })
    .await
    .map_err(|_| eyre::eyre!("timed out waiting for the monitor's health"))??;
    Ok(())
}
