//! keel-client's `Monitor` on a real Anvil: every event kind with its fields, the confirmation
//! depth, checkpoints across monitor restarts, a node that goes away and comes back, logs that
//! do not decode, and two chains side by side.

use std::collections::BTreeMap;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::Provider,
};
use eyre::{ensure, eyre, Result};
use keel_client::chain::{ChainConfig, ChainEvent, ChainEventKind, Monitor};
use keel_core::Side;
use keel_e2e::{Channel, Devnet};

use crate::chain_support::{
    cooperative_flow, deferred_payout_flow, dispute_flow, kinds_of, units, wait_for,
    wait_for_checkpoint, Consumer, TempStore,
};

/// The canonical hash of `block`.
async fn hash_at(net: &Devnet, block: u64) -> Result<B256> {
    Ok(net
        .alice
        .provider
        .get_block_by_number(BlockNumberOrTag::Number(block))
        .await?
        .ok_or_else(|| eyre!("no block {block}"))?
        .header
        .hash)
}

/// An ETH channel alice opened with 1; returns it and the block it was opened in.
async fn open(net: &Devnet, salt: u64) -> Result<(Channel, u64)> {
    let ch = net.channel(net.params(Address::ZERO, salt));
    let receipt = net
        .chain(&net.alice)
        .await?
        .open(&ch.params, units("1"))
        .await?;
    Ok((ch, receipt.block_number.ok_or_else(|| eyre!("no block"))?))
}

/// Bob raises his deposit in `ch` by `amount`; returns the block.
async fn deposit(net: &Devnet, ch: &Channel, amount: &str) -> Result<u64> {
    let receipt = net
        .chain(&net.bob)
        .await?
        .deposit(&ch.params, Side::B, units(amount))
        .await?;
    receipt.block_number.ok_or_else(|| eyre!("no block"))
}

fn deposited(total: &str) -> ChainEventKind {
    ChainEventKind::Deposited {
        side: Side::B,
        total: units(total),
    }
}

#[tokio::test]
async fn monitor_delivers_every_event_kind_with_its_fields() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "kinds").await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    let mut consumer = Consumer::new(rx);
    // The factory's ChannelOpened names alice; each such vault is then watched from its opening.
    monitor.watch_opened(net.alice.address());

    let flows = [
        cooperative_flow(&net, Address::ZERO, 1).await?,
        dispute_flow(&net, net.token, 2).await?,
        deferred_payout_flow(&net, 3).await?,
    ];
    let count = flows.iter().map(|f| f.events.len() + 1).sum();
    let events = consumer.events(count).await?;

    for flow in &flows {
        let ch = &flow.channel;
        let deposit = if ch.params.token == net.blocklist_token {
            "3"
        } else {
            "10"
        };
        let mut expected = vec![ChainEventKind::Opened {
            params: ch.params,
            opener: Side::A,
            deposit: units(deposit),
        }];
        expected.extend(flow.events.iter().cloned());
        assert_eq!(kinds_of(&events, ch), expected);
        let mine: Vec<&ChainEvent> = events.iter().filter(|e| e.vault == ch.vault).collect();
        assert_eq!(mine[0].block, flow.opened_at);
        for pair in mine.windows(2) {
            ensure!(
                (pair[0].block, pair[0].log_index) < (pair[1].block, pair[1].log_index),
                "out of order: {pair:#?}"
            );
        }
        for e in mine {
            assert_eq!((e.chain_id, e.channel_id), (net.chain_id, ch.id));
            assert_eq!(e.block_hash, hash_at(&net, e.block).await?);
            let receipt = net
                .alice
                .provider
                .get_transaction_receipt(e.tx_hash)
                .await?
                .ok_or_else(|| eyre!("no receipt"))?;
            assert_eq!(receipt.block_number, Some(e.block));
        }
    }
    assert_eq!(monitor.watched().len(), 3);
    for vault in monitor.watched().keys() {
        assert!(monitor.is_watched(*vault));
    }
    assert!(!monitor.is_watched(Address::repeat_byte(0x99)));
    assert_eq!(monitor.health().failures, 0);
    Ok(())
}

/// An event in block `b` is delivered once the head reaches `b + confirmations`, not before.
#[tokio::test]
async fn events_are_delivered_only_at_the_confirmation_depth() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "depth").await?;
    let (ch, opened_at) = open(&net, 1).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(3), store.store.clone())?;
    let mut consumer = Consumer::new(rx);
    monitor.watch_from(ch.vault, ch.id, opened_at);

    let b = deposit(&net, &ch, "2").await?;
    for head in b..b + 3 {
        assert_eq!(net.block_number().await?, head);
        // The monitor has looked at this head and processed all it may: nothing is out yet.
        wait_for(&monitor, "the head", |h| {
            h.head == Some(head) && h.checkpoint.is_some_and(|cp| cp.block == head - 3)
        })
        .await?;
        ensure!(consumer.is_empty(), "delivered at depth {}", head - b);
        net.mine(1).await?;
    }
    let batch = consumer.batch().await?;
    assert_eq!(
        batch
            .events
            .iter()
            .map(|e| (e.block, e.kind.clone()))
            .collect::<Vec<_>>(),
        [(b, deposited("2"))]
    );
    assert_eq!(batch.to_block, b);
    assert!(!batch.reorg);
    batch.ack();
    wait_for_checkpoint(&monitor, b).await?;
    Ok(())
}

/// Past `max_filter_addresses` watched vaults the monitor asks for the vault events by topic,
/// from any address, and keeps the watched vaults' only: their deposits arrive as by address,
/// and the deposit into a vault it does not watch is dropped, not delivered and not an error.
#[tokio::test]
async fn past_the_address_limit_vault_events_are_read_by_topic_and_only_watched_ones_kept(
) -> Result<()> {
    let net = Devnet::start().await?;
    let proxy = crate::chain_proxy::Proxy::start(net.rpc_url()).await?;
    let store = TempStore::new(&net, "by-topic").await?;
    let (first, _) = open(&net, 1).await?;
    let (second, _) = open(&net, 2).await?;
    let (stranger, _) = open(&net, 3).await?;
    let config = ChainConfig {
        rpc_url: proxy.url.clone(),
        max_filter_addresses: 1,
        ..net.chain_config(0)
    };
    let (monitor, rx) = Monitor::spawn(config, store.store.clone())?;
    let mut consumer = Consumer::new(rx);
    let from = net.block_number().await? + 1;
    monitor.watch_from(first.vault, first.id, from);
    monitor.watch_from(second.vault, second.id, from);
    deposit(&net, &first, "2").await?;
    deposit(&net, &second, "3").await?;
    let events = consumer.events(2).await?;
    assert_eq!(kinds_of(&events, &first), [deposited("2")]);
    assert_eq!(kinds_of(&events, &second), [deposited("3")]);

    // Both vaults are in the regular scan now: the stranger's deposit, between two of the
    // first's, is read and dropped.
    deposit(&net, &first, "1").await?;
    deposit(&net, &stranger, "5").await?;
    deposit(&net, &first, "1").await?;
    let events = consumer.events(2).await?;
    assert_eq!(kinds_of(&events, &first), [deposited("3"), deposited("4")]);
    wait_for_checkpoint(&monitor, net.block_number().await?).await?;
    ensure!(
        consumer.is_empty(),
        "the unwatched vault's deposit was delivered"
    );
    ensure!(
        proxy.unaddressed_log_queries() > 0,
        "the scan never asked by topic"
    );
    Ok(())
}

/// A monitor started again from the store delivers what happened while it was down, and
/// nothing it had delivered before.
#[tokio::test]
async fn restarted_monitor_backfills_from_its_checkpoint_without_duplicates() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "restart").await?;
    let (ch, opened_at) = open(&net, 1).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    deposit(&net, &ch, "1").await?;
    assert_eq!(kinds_of(&consumer.events(1).await?, &ch), [deposited("1")]);
    let head = net.block_number().await?;
    wait_for_checkpoint(&monitor, head).await?;
    monitor.stop().await;
    let saved = store
        .store
        .checkpoint(net.chain_id)
        .await?
        .ok_or_else(|| eyre!("no checkpoint"))?;
    assert_eq!(saved.block, head);
    assert_eq!(saved.hash, hash_at(&net, head).await?);

    // Two deposits while no monitor runs.
    deposit(&net, &ch, "2").await?;
    deposit(&net, &ch, "3").await?;

    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    // After a restart the client watches its channels again from the checkpoint.
    monitor.watch(ch.vault, ch.id);
    let mut consumer = Consumer::new(rx);
    assert_eq!(
        kinds_of(&consumer.events(2).await?, &ch),
        [deposited("3"), deposited("6")]
    );
    let head = net.block_number().await?;
    wait_for_checkpoint(&monitor, head).await?;
    ensure!(consumer.is_empty(), "something delivered twice");
    Ok(())
}

/// A batch the consumer never acknowledged (it crashed while applying it) is delivered again
/// by the next monitor.
#[tokio::test]
async fn unacknowledged_batch_is_delivered_again_after_a_restart() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "unacked").await?;
    let (ch, opened_at) = open(&net, 1).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    let b = deposit(&net, &ch, "1").await?;
    let batch = consumer.batch().await?;
    assert_eq!(kinds_of(&batch.events, &ch), [deposited("1")]);
    monitor.stop().await;
    drop(batch);
    let saved = store.store.checkpoint(net.chain_id).await?;
    assert!(
        saved.is_none_or(|cp| cp.block < b),
        "checkpointed past an unacknowledged batch: {saved:?}"
    );

    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    assert_eq!(kinds_of(&consumer.events(1).await?, &ch), [deposited("1")]);
    Ok(())
}

/// The node stops and comes back with its state: the monitor retries with backoff, reports
/// the failures, recovers, and misses nothing (the node's blocks keep their hashes, so it is
/// no reorg).
#[tokio::test]
async fn monitor_recovers_when_the_node_restarts() -> Result<()> {
    let mut net = Devnet::start().await?;
    let store = TempStore::new(&net, "node").await?;
    let (ch, opened_at) = open(&net, 1).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    deposit(&net, &ch, "1").await?;
    assert_eq!(kinds_of(&consumer.events(1).await?, &ch), [deposited("1")]);

    net.stop_rpc();
    let down = wait_for(&monitor, "failures", |h| h.consecutive_failures >= 3).await?;
    assert!(down.last_error.is_some());
    net.restart_rpc().await?;
    deposit(&net, &ch, "2").await?;
    deposit(&net, &ch, "3").await?;
    assert_eq!(
        kinds_of(&consumer.events(2).await?, &ch),
        [deposited("3"), deposited("6")]
    );
    let head = net.block_number().await?;
    let health = wait_for_checkpoint(&monitor, head).await?;
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.failures >= 3);
    assert_eq!(health.reorgs, 0);
    ensure!(consumer.is_empty(), "something delivered twice");
    Ok(())
}

/// Logs from a watched address that are not vault events (here: a token's, watched by
/// mistake) are never skipped: the monitor retries the range and reports it, and delivers
/// nothing past it, not even a good event in the same range, until the address is unwatched.
#[tokio::test]
async fn a_log_that_does_not_decode_holds_the_monitor_until_unwatched() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "garbage").await?;
    let (ch, opened_at) = open(&net, 1).await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    let mut consumer = Consumer::new(rx);
    monitor.watch_from(ch.vault, ch.id, opened_at);
    monitor.watch(net.token, B256::repeat_byte(0xee));

    // A token transfer (approve + open of a token channel) and a deposit right after.
    let token_channel = net.channel(net.params(net.token, 2));
    let receipt = net
        .chain(&net.alice)
        .await?
        .open(&token_channel.params, units("1"))
        .await?;
    let bad = receipt.block_number.ok_or_else(|| eyre!("no block"))?;
    deposit(&net, &ch, "1").await?;

    let stuck = wait_for(&monitor, "repeated failures", |h| {
        h.consecutive_failures >= 3
    })
    .await?;
    let error = stuck.last_error.clone().unwrap_or_default();
    ensure!(error.contains("undecodable"), "{error}");
    ensure!(
        stuck.checkpoint.is_none_or(|cp| cp.block < bad),
        "skipped past block {bad}: {stuck:?}"
    );
    ensure!(consumer.is_empty(), "delivered past an undecodable log");

    monitor.unwatch(net.token);
    assert_eq!(kinds_of(&consumer.events(1).await?, &ch), [deposited("1")]);
    let health = wait_for_checkpoint(&monitor, net.block_number().await?).await?;
    assert_eq!(health.consecutive_failures, 0);
    Ok(())
}

/// A node on another chain is never read from: the monitor keeps retrying, says so in its
/// health, and delivers nothing.
#[tokio::test]
async fn monitor_pointed_at_another_chain_reports_it_and_reads_nothing() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "wrong").await?;
    let mut config = net.chain_config(0);
    config.deployment.chain_id = net.chain_id + 1;
    let (monitor, rx) = Monitor::spawn(config, store.store.clone())?;
    let health = wait_for(&monitor, "the wrong chain", |h| h.wrong_chain.is_some()).await?;
    ensure!(health.wrong_chain == Some(net.chain_id), "{health:?}");
    ensure!(
        health.stopped.is_none() && !health.is_healthy(),
        "{health:?}"
    );
    let why = health.last_error.unwrap_or_default();
    ensure!(why.contains(&format!("chain {}", net.chain_id)), "{why}");
    ensure!(health.checkpoint.is_none(), "read from the wrong chain");
    ensure!(Consumer::new(rx).is_empty());
    Ok(())
}

/// One monitor per chain, sharing one store: each keeps its own checkpoint and tags its events
/// with its chain.
#[tokio::test]
async fn monitors_of_two_chains_keep_their_own_checkpoints() -> Result<()> {
    let (one, two) = (Devnet::start().await?, Devnet::start().await?);
    let store = TempStore::new(&one, "two-chains").await?;
    let mut heads = BTreeMap::new();
    let mut monitors = Vec::new();
    for (net, amount) in [(&one, "1"), (&two, "2")] {
        let (ch, opened_at) = open(net, 1).await?;
        let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
        monitor.watch_from(ch.vault, ch.id, opened_at);
        deposit(net, &ch, amount).await?;
        let events = Consumer::new(rx).events(1).await?;
        assert_eq!(events[0].chain_id, net.chain_id);
        assert_eq!(kinds_of(&events, &ch), [deposited(amount)]);
        heads.insert(
            net.chain_id,
            wait_for_checkpoint(&monitor, net.block_number().await?).await?,
        );
        monitors.push(monitor);
    }
    for net in [&one, &two] {
        let saved = store
            .store
            .checkpoint(net.chain_id)
            .await?
            .ok_or_else(|| eyre!("no checkpoint"))?;
        assert_eq!(Some(saved), heads[&net.chain_id].checkpoint);
        assert_eq!(saved.hash, hash_at(net, saved.block).await?);
    }
    Ok(())
}

/// A watched secret's registration is delivered (checked against its hash), an unwatched one's
/// is not, and `revealed_secret` finds a registration made before the watch began.
#[tokio::test]
async fn monitor_delivers_the_registration_of_watched_secrets() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "secrets").await?;
    let (monitor, rx) = Monitor::spawn(net.chain_config(0), store.store.clone())?;
    let mut consumer = Consumer::new(rx);
    let chain = net.chain(&net.alice).await?;
    let [early, watched, ignored] = [1u8, 2, 3].map(B256::repeat_byte);
    let hash = keel_core::secret_hash;

    // Registered before anyone watched it: only the point lookup finds it.
    let receipt = chain.register_secret(early).await?;
    let block = receipt.block_number.ok_or_else(|| eyre!("no block"))?;
    let time = net
        .alice
        .provider
        .get_block_by_number(BlockNumberOrTag::Number(block))
        .await?
        .ok_or_else(|| eyre!("no block {block}"))?
        .header
        .timestamp;
    wait_for_checkpoint(&monitor, block).await?;
    monitor.watch_secret(hash(early));
    assert_eq!(
        chain.revealed_secret(hash(early)).await?,
        Some((early, time))
    );
    assert_eq!(chain.revealed_secret(hash(watched)).await?, None);
    // Older than one range of a provider that serves 2 blocks a query: found range by range,
    // newest first.
    net.mine(7).await?;
    let mut narrow = net.chain_config(0);
    narrow.max_block_range = 2;
    let narrow = keel_client::chain::Chain::connect(narrow, net.alice.signer.clone()).await?;
    assert_eq!(
        narrow.revealed_secret(hash(early)).await?,
        Some((early, time))
    );

    monitor.watch_secret(hash(watched));
    chain.register_secret(ignored).await?;
    let at = chain.register_secret(watched).await?.block_number;
    let events = consumer.events(1).await?;
    assert_eq!(
        events[0].kind,
        ChainEventKind::SecretRevealed {
            secret_hash: hash(watched),
            secret: watched,
        }
    );
    assert_eq!(events[0].block, at.ok_or_else(|| eyre!("no block"))?);
    assert_eq!(events[0].vault, net.deployment.secret_registry);

    // Unwatched: a second registration (a no-op on chain) and the ignored one stay silent.
    monitor.unwatch_secret(hash(watched));
    let last = chain.register_secret(watched).await?.block_number;
    wait_for_checkpoint(&monitor, last.ok_or_else(|| eyre!("no block"))?).await?;
    ensure!(
        consumer.is_empty(),
        "an unwatched registration was delivered"
    );
    Ok(())
}
