//! The client README's "API on a page" runs here against Anvil: the code between the markers
//! below is, character for character, the README's code block (the first test checks it), and
//! the second runs it as Alice with Bob's client as the peer. Also: the deployment's
//! challenge-period bounds are checked before a transaction is sent.

use alloy::providers::Provider;
use eyre::{ensure, eyre};
use keel_client::chain::ChainError;
use keel_e2e::{MAX_PERIOD, MIN_PERIOD};

use crate::client_flow::{units, Pair, TempDir};

// README: begin
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use keel_client::{
    chain::ChainConfig, Client, ClientError, ClientEvent, Config, Events, PrivateKeySigner,
};
use keel_core::{secret_hash, Address, B256, U256};

/// Alice's side of a channel with `peer`: open, pay, a hash-locked payment, a withdrawal, and
/// a cooperative close, on the chain `chain` (e.g. `ChainConfig::development(rpc, deployment)`
/// for Anvil, `ChainConfig::new` for a public chain).
async fn api_on_a_page(
    signer: PrivateKeySigner, // or keel_client::client::load_keystore(file, password)?
    chain: ChainConfig,
    store: PathBuf,
    peer: Address,
    peer_at: SocketAddr,
    secret: B256, // shared with the peer out of band, for the locked payment
) -> Result<(), Box<dyn std::error::Error>> {
    let chain_id = chain.chain_id();
    // One client per identity: its key, its SQLite file, the chains it follows.
    let mut config = Config::new(signer, store);
    config.chains = vec![chain];
    let client = Client::start(config).await?; // resumes every stored channel
                                               // Durable events: read from the "app" consumer's cursor, nothing lost across restarts.
    let mut events = client.events("app").await?;

    client.listen("127.0.0.1:0").await?; // accept peers, and/or
    client.connect(peer_at, peer).await?; // dial one (redialled after drops)

    // On chain: open (ETH = Address::ZERO, or an ERC-20), top up, withdraw while open.
    let eth = U256::from(10u64.pow(18));
    let id = client
        .open_channel(chain_id, peer, Address::ZERO, eth, 86_400) // 1 ETH, 1-day challenge
        .await?
        .id;
    client.top_up(id, eth / U256::from(2)).await?; // 0.5 ETH more
    let total = eth + eth / U256::from(2);
    wait_for(
        &mut events,
        |e| matches!(e, ClientEvent::DepositConfirmed { total: t, .. } if *t == total),
    )
    .await?;

    // Off chain: each call returns once the peer has stored the proof.
    let gwei = U256::from(10u64.pow(9));
    client.pay(id, U256::from(1_000) * gwei).await?;
    // A hash-locked payment, claimable for an hour (the policy allows 10 minutes to 7 days).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let expiry = now.as_secs() + 3_600;
    let locked = U256::from(50) * gwei;
    client
        .pay_locked(id, locked, secret_hash(secret), expiry)
        .await?;
    // The peer reveals the secret (client.claim_lock(id, secret)) and we pay the lock out; an
    // expired lock would come back with client.remove_expired_locks(id).
    wait_for(&mut events, |e| {
        matches!(
            e,
            ClientEvent::LockClaimed {
                incoming: false,
                ..
            }
        )
    })
    .await?;
    client.withdraw(id, eth / U256::from(10)).await?; // co-signed by the peer, then mined
                                                      // It counts (and the channel can close) once the chain confirms it.
    let withdrawal = |e: &ClientEvent| matches!(e, ClientEvent::WithdrawalConfirmed { .. });
    wait_for(&mut events, withdrawal).await?;

    // Views.
    let info = client.channel(id).await?; // balances, capacity, nonces, locks, status
    assert_eq!(info.peer_balance, U256::from(1_050) * gwei);
    assert_eq!(client.channels().await.len(), 1);

    // Closing: cooperatively (one transaction), or alone and settle after the challenge
    // period: client.force_close(id), then client.settle(id) and client.unlock(id)
    // (or Config::settle_automatically, and the client sends those two by itself).
    // The peer co-signs only the ledger it sees too: until its own monitor has confirmed the
    // withdrawal it refuses, and the same close is asked again.
    for attempt in 1.. {
        match client.close(id).await {
            Ok(_) => break,
            Err(ClientError::PeerRejected { .. }) if attempt < 40 => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    wait_for(&mut events, |e| matches!(e, ClientEvent::Settled { .. })).await?;
    client.shutdown().await;
    Ok(())
}

/// The next durable event that `pick` accepts (marking those before it handled), within a
/// minute.
async fn wait_for(
    events: &mut Events,
    pick: impl Fn(&ClientEvent) -> bool,
) -> Result<ClientEvent, Box<dyn std::error::Error>> {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let stored = events.next().await?;
            events.handled(stored.seq).await?;
            if pick(&stored.event) {
                return Ok::<_, keel_client::ClientError>(stored.event);
            }
        }
    });
    Ok(found.await??)
}
// README: end

/// The code between the markers in this file, and the README's first code block under
/// "## The API on a page", must be the same text.
#[test]
fn the_readme_api_page_is_this_file_s_code() -> eyre::Result<()> {
    let this = include_str!("client_readme.rs");
    let code = this
        .split_once("// README: begin\n")
        .and_then(|(_, rest)| rest.split_once("// README: end\n"))
        .ok_or_else(|| eyre!("markers missing"))?
        .0;
    let readme = include_str!("../../../../crates/keel-client/README.md");
    let block = readme
        .split_once("## The API on a page\n")
        .and_then(|(_, rest)| rest.split_once("```rust,no_run\n"))
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .ok_or_else(|| eyre!("README block missing"))?
        .0;
    ensure!(
        block == code,
        "crates/keel-client/README.md's API page differs from tests/e2e/tests/it/client_readme.rs"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_api_page_runs_against_anvil() -> eyre::Result<()> {
    let net = keel_e2e::Devnet::start().await?;
    let dir = TempDir::new("readme");
    let secret = B256::repeat_byte(7);
    // Bob, the peer: a client on the development configuration that claims Alice's lock.
    let mut bob_config = Config::new(net.bob.signer.clone(), dir.0.join("bob.db"));
    bob_config.chains = vec![ChainConfig::development(
        net.rpc_url(),
        net.deployment.clone(),
    )];
    let bob = Client::start(bob_config).await?;
    let bob_at = bob.listen("127.0.0.1:0").await?;
    let mut bob_events = bob.events("bob").await?;
    let claimer = bob.clone();
    let claiming = tokio::spawn(async move {
        loop {
            let stored = bob_events.next().await?;
            if let ClientEvent::LockReceived { channel_id, .. } = stored.event {
                return claimer.claim_lock(channel_id, secret).await;
            }
        }
    });

    api_on_a_page(
        net.alice.signer.clone(),
        ChainConfig::development(net.rpc_url(), net.deployment.clone()),
        dir.0.join("alice.db"),
        net.bob.address(),
        bob_at,
        secret,
    )
    .await
    .map_err(|e| eyre!("the README page failed: {e}"))?;
    tokio::time::timeout(Duration::from_secs(60), claiming).await???;

    // Bob was paid 1,000 gwei and the 50 locked, and the close paid him exactly that.
    let mut paid = U256::ZERO;
    let mut log = bob.events_after(0);
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match log.next().await?.event {
                ClientEvent::PaymentReceived { amount, .. } => paid += amount,
                ClientEvent::LockClaimed { amount, .. } => paid += amount,
                ClientEvent::Settled { payout_b, .. } => return Ok::<_, eyre::Report>(payout_b),
                _ => {}
            }
        }
    })
    .await??;
    let gwei = U256::from(10u64.pow(9));
    ensure!(paid == U256::from(1_050) * gwei, "bob was paid {paid}");
    ensure!(settled == paid, "bob's payout {settled}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_period_outside_the_deployment_s_bounds_is_refused_before_sending(
) -> eyre::Result<()> {
    let pair = Pair::start("bounds").await?;
    let alice = pair.net.alice.address();
    let nonce = pair.net.alice.provider.get_transaction_count(alice).await?;
    for period in [MIN_PERIOD - 1, MAX_PERIOD + 1] {
        let opened = pair
            .alice
            .open_channel(
                pair.net.chain_id,
                pair.net.bob.address(),
                Address::ZERO,
                units("1"),
                period,
            )
            .await;
        match opened {
            Err(ClientError::Chain(ChainError::ChallengePeriodOutOfRange {
                period: p,
                min,
                max,
            })) => {
                ensure!((p, min, max) == (period, MIN_PERIOD, MAX_PERIOD));
            }
            other => eyre::bail!("period {period}: {other:?}"),
        }
    }
    // Nothing was sent.
    ensure!(pair.net.alice.provider.get_transaction_count(alice).await? == nonce);
    ensure!(pair.alice.channels().await.is_empty());
    Ok(())
}
