//! What a dApp does with Keel, start to finish: two parties open a channel, pay each other
//! off-chain, move liquidity into a second channel in one transaction (a hub's rebalancing step),
//! pay a third party through the hub (a multi-hop payment), move balance between their own two
//! channels by paying themselves through the hub (a circular rebalance), and close
//! cooperatively — through
//! `keel_client::Client` against a real chain. With a watchtower (`KEEL_TOWER_URL` and
//! `KEEL_TOWER_ADDRESS`, which `script/demo.sh` starts and sets), the third party's client keeps
//! the tower holding her newest proof, goes offline, the hub closes alone, and the tower answers
//! for her; that step moves the chain's clock past the challenge period, so it needs Anvil.
//!
//! Run against the demo chain: `script/demo.sh` (starts Anvil, deploys Keel with
//! `script/deploy.sh`, then runs this). Against another node where Keel is deployed:
//!
//! ```text
//! KEEL_ALICE_KEY=0x… KEEL_BOB_KEY=0x… \
//!   cargo run -p keel-client --example open_pay_close -- <rpc-url> [deployments dir]
//! ```
//!
//! All parties run in this one process for the demo; in a dApp each runs its own `Client`
//! and dials the other's address. The keys default to Anvil's first three dev accounts.
#![forbid(unsafe_code)]
// An example's output is its purpose; the library never prints.
#![allow(clippy::print_stdout)]

use std::{path::PathBuf, time::Duration};

use alloy::{
    primitives::utils::{format_ether, parse_ether},
    signers::local::PrivateKeySigner,
};
use eyre::{bail, Result, WrapErr};
use keel_bindings::Deployment;
use keel_client::{
    chain::ChainConfig, client::ForwardPolicy, Client, ClientError, ClientEvent, Config,
    Destination, TowerConfig,
};
use keel_core::{forwarding::FeePolicy, secret_hash, Address, B256, U256};
use keel_routing::SignedAnnouncement;

/// Anvil's first three dev accounts (public test keys: never use them on a real chain).
const ANVIL_KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a5804dcd4a5b",
];

fn key(var: &str, default: &str) -> Result<PrivateKeySigner> {
    let hex = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    hex.parse()
        .wrap_err_with(|| format!("{var} is not a private key"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rpc = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8545".into());
    let deployments = PathBuf::from(args.next().unwrap_or_else(|| "deployments".into()));

    // 1. Where Keel lives on this chain: the file script/deploy.sh wrote.
    let chain_id = chain_id(&rpc).await?;
    let deployment = Deployment::load(&deployments, chain_id)?;
    let chain = ChainConfig {
        confirmations: 0,
        poll_interval: Duration::from_millis(100),
        ..ChainConfig::new(&rpc, deployment)
    };
    let store_dir = std::env::temp_dir().join(format!("keel-example-{}", std::process::id()));
    std::fs::create_dir_all(&store_dir)?;

    // The watchtower guarding Carol's channels, if one runs (script/demo.sh starts one).
    let tower = match (
        std::env::var("KEEL_TOWER_URL"),
        std::env::var("KEEL_TOWER_ADDRESS"),
    ) {
        (Ok(url), Ok(address)) => Some(TowerConfig::new(
            url,
            address.parse().wrap_err("KEEL_TOWER_ADDRESS")?,
        )),
        _ => None,
    };

    // 2. One client per party: its key, its SQLite store, the chains it follows, the towers it
    //    keeps informed.
    let start = |signer: PrivateKeySigner, name: &str, towers: Vec<TowerConfig>| {
        let mut config = Config::new(signer, store_dir.join(format!("{name}.db")));
        config.chains = vec![chain.clone()];
        config.towers = towers;
        Client::start(config)
    };
    let alice = start(key("KEEL_ALICE_KEY", ANVIL_KEYS[0])?, "alice", Vec::new()).await?;
    let bob = start(key("KEEL_BOB_KEY", ANVIL_KEYS[1])?, "bob", Vec::new()).await?;
    println!(
        "chain {chain_id}: alice {}, bob {}",
        alice.address(),
        bob.address()
    );

    // 3. Bob accepts connections; Alice dials him (encrypted, both authenticated by address).
    let bob_at = bob.listen("127.0.0.1:0").await?;
    alice.connect(bob_at, bob.address()).await?;

    // 4. Alice opens an ETH channel with 1 ETH; Bob learns of it from the chain and adds 0.5.
    let mut bob_events = bob.subscribe();
    let channel = alice
        .open_channel(
            chain_id,
            bob.address(),
            Address::ZERO,
            parse_ether("1")?,
            3_600,
        )
        .await?
        .id;
    println!("alice opened channel {channel} with 1 ETH");
    wait(&mut bob_events, |e| {
        matches!(e, ClientEvent::ChannelOpened { .. })
    })
    .await?;
    bob.top_up(channel, parse_ether("0.5")?).await?;
    wait(&mut bob_events, |e| matches!(e, ClientEvent::DepositConfirmed { total, .. } if *total == parse_ether("0.5").unwrap_or_default())).await?;
    println!("bob topped it up with 0.5 ETH");

    // 5. Payments: off-chain, each stored by both sides before it counts.
    let started = std::time::Instant::now();
    let tiny = parse_ether("0.0001")?;
    for _ in 0..1_000 {
        alice.pay(channel, tiny).await?;
    }
    bob.pay(channel, parse_ether("0.01")?).await?;
    println!(
        "1,000 payments alice → bob and one back in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // 6. A hash-locked payment: Bob gets it by revealing the secret.
    let secret = B256::repeat_byte(0x42);
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3_600;
    alice
        .pay_locked(channel, parse_ether("0.05")?, secret_hash(secret), expiry)
        .await?;
    bob.claim_lock(channel, secret).await?;
    let view = alice.channel(channel).await?;
    println!(
        "balances: alice {} ETH, bob {} ETH",
        format_ether(view.balance),
        format_ether(view.peer_balance)
    );

    // 7. A hub's on-chain rebalancing step: Alice opens a second channel with Bob, and Bob moves
    //    0.05 ETH of what he received here into his side of it, in one co-signed transaction
    //    (withdrawInto). Nothing is paid out; the liquidity changes channel.
    let second = alice
        .open_channel(
            chain_id,
            bob.address(),
            Address::ZERO,
            parse_ether("0.1")?,
            3_600,
        )
        .await?;
    wait(
        &mut bob_events,
        |e| matches!(e, ClientEvent::ChannelOpened { channel_id, .. } if *channel_id == second.id),
    )
    .await?;
    let bob_side = bob.channel(second.id).await?.me;
    // Alice must see the withdrawal too before the close below: both sign the same ledger.
    let mut alice_events = alice.subscribe();
    bob.withdraw_to(
        channel,
        parse_ether("0.05")?,
        Destination::Vault {
            vault: second.vault,
            side: bob_side,
        },
    )
    .await?;
    // Bob's monitor reports the withdrawal here and the deposit there, in either order.
    let (mut withdrawn, mut deposited) = (false, false);
    while !(withdrawn && deposited) {
        match wait(&mut bob_events, |e| {
            matches!(e, ClientEvent::WithdrawalConfirmed { channel_id, .. } if *channel_id == channel)
                || matches!(e, ClientEvent::DepositConfirmed { channel_id, side, .. }
                    if *channel_id == second.id && *side == bob_side)
        })
        .await?
        {
            ClientEvent::WithdrawalConfirmed { .. } => withdrawn = true,
            _ => deposited = true,
        }
    }
    wait(&mut alice_events, |e| {
        matches!(e, ClientEvent::WithdrawalConfirmed { channel_id, .. } if *channel_id == channel)
    })
    .await?;
    let moved = bob.channel(second.id).await?;
    println!(
        "bob moved 0.05 ETH into a second channel in one transaction: there he now holds {} ETH",
        format_ether(moved.balance)
    );

    // 8. A multi-hop payment: Carol, who has no channel with Alice, is paid through Bob. Bob
    //    opens a channel to Carol, sets his fee for forwarding into it, and announces it with
    //    Carol (both sign); Alice routes over what she was told and pays Carol's invoice. The
    //    payment completes on both hops or on neither.
    let carol = start(
        key("KEEL_CAROL_KEY", ANVIL_KEYS[2])?,
        "carol",
        tower.iter().cloned().collect(),
    )
    .await?;
    let carol_at = carol.listen("127.0.0.1:0").await?;
    bob.connect(carol_at, carol.address()).await?;
    let mut carol_events = carol.subscribe();
    let deposit = parse_ether("0.2")?;
    let bob_carol = bob
        .open_channel(chain_id, carol.address(), Address::ZERO, deposit, 3_600)
        .await?
        .id;
    wait(
        &mut carol_events,
        |e| matches!(e, ClientEvent::ChannelOpened { channel_id, .. } if *channel_id == bob_carol),
    )
    .await?;
    for client in [&bob, &carol] {
        deposit_seen(client, bob_carol, deposit).await?;
    }
    bob.set_forward_policy(
        bob_carol,
        ForwardPolicy::new(
            FeePolicy {
                base: U256::from(1_000),
                proportional_millionths: 2_500,
            },
            keel_client::client::DEFAULT_EXPIRY_DELTA,
        ),
    )
    .await?;
    let (announcement, by_bob) = bob.announcement_signature(bob_carol).await?;
    let (_, by_carol) = carol.announcement_signature(bob_carol).await?;
    let signatures = if announcement.participantA == bob.address() {
        [by_bob, by_carol]
    } else {
        [by_carol, by_bob]
    };
    let signed = SignedAnnouncement {
        announcement,
        signatures,
    };
    alice.add_announcement(chain_id, &signed, deposit)?;
    alice.add_channel_update(&bob.channel_update(bob_carol).await?)?;
    let invoice = carol
        .create_invoice(
            chain_id,
            Address::ZERO,
            parse_ether("0.01")?,
            3_600,
            "one coffee",
        )
        .await?;
    let outcome = alice.send_payment(&invoice, 3).await?;
    println!(
        "alice paid carol 0.01 ETH through bob ({} hops, {} attempt(s)); bob earned {} wei",
        outcome.route.hops.len(),
        outcome.attempts,
        outcome.fees
    );

    // 8b. A circular rebalance: Alice moves 0.02 ETH of her balance from the first channel into
    //     the second by paying herself through Bob (out by one channel, back by the other).
    //     Bob charges for forwarding into the second channel; Alice learns his policy when the
    //     two make that channel public, and caps what she will pay in fees.
    bob.set_forward_policy(
        second.id,
        ForwardPolicy::new(
            FeePolicy {
                base: U256::from(500),
                proportional_millionths: 1_000,
            },
            keel_client::client::DEFAULT_EXPIRY_DELTA,
        ),
    )
    .await?;
    alice.announce_channel(second.id).await?;
    bob.announce_channel(second.id).await?;
    loop_until(|| async { Ok(alice.graph_capacity(second.id)) }).await?;
    // Bob's policy follows his half of the announcement on the same connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = alice.channel(second.id).await?.balance;
    let rebalanced = alice
        .rebalance(
            channel,
            second.id,
            parse_ether("0.02")?,
            parse_ether("0.0001")?,
            3,
        )
        .await?;
    // Paid once Bob pays out the lock he sent her there (it may trail her receipt).
    let after = loop_until(|| async {
        let view = alice.channel(second.id).await?;
        Ok(view.incoming_locks.is_empty().then_some(view.balance))
    })
    .await?;
    println!(
        "alice rebalanced 0.02 ETH from her first channel into her second through bob ({} \
         hops); her side of the second went from {} to {} ETH, bob earned {} wei",
        rebalanced.route.hops.len(),
        format_ether(before),
        format_ether(after),
        rebalanced.fees
    );

    // 9. Close cooperatively: one transaction pays both. Alice co-signs only the ledger she sees
    //    too; if her side has not yet applied the withdrawal it refuses, and Bob asks again (as
    //    the client README's API page does). If Alice's payment to Carol went through this
    //    channel, Bob's claim of its lock may still be on its way to Alice: a channel with a
    //    pending lock does not close, so Bob waits for it to settle.
    let mut attempt = 0;
    let receipt = loop {
        attempt += 1;
        match bob.close(channel).await {
            Ok(receipt) => break receipt,
            Err(ClientError::PeerRejected { .. } | ClientError::LocksPending { .. })
                if attempt < 40 =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    // The off-chain balances the close paid out (the multi-hop payment may have used this
    // channel).
    let view = alice.channel(channel).await?;
    let ClientEvent::Settled {
        payout_a, payout_b, ..
    } = wait(&mut alice_events, |e| {
        matches!(e, ClientEvent::Settled { .. })
    })
    .await?
    else {
        bail!("not a settlement");
    };
    println!(
        "closed in one transaction ({} gas): alice got {} ETH, bob {} ETH",
        receipt.gas_used,
        format_ether(payout_a),
        format_ether(payout_b)
    );
    if (payout_a, payout_b) != (view.balance, view.peer_balance) {
        bail!("payouts differ from the off-chain balances");
    }
    alice.shutdown().await;

    // 10. The watchtower answers for Carol while she is offline.
    match tower {
        Some(tower) => guarded(&rpc, &bob, carol, bob_carol, tower.address).await?,
        None => carol.shutdown().await,
    }
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(store_dir);
    Ok(())
}

/// Bob pays Carol in `channel`; Carol's client keeps the tower holding the newest proof by
/// itself; Carol goes offline; Bob closes alone with none of his payments on record. The tower
/// submits his newest proof before the challenge period ends, and after it Carol is paid all
/// she was owed without being online. Moves Anvil's clock past the challenge period.
async fn guarded(
    rpc: &str,
    bob: &Client,
    carol: Client,
    channel: B256,
    tower: Address,
) -> Result<()> {
    use alloy::providers::{Provider, ProviderBuilder};
    for _ in 0..10 {
        bob.pay(channel, parse_ether("0.001")?).await?;
    }
    let newest = carol
        .latest_peer_proof(channel)
        .await?
        .map_or(0, |(proof, _)| proof.nonce);
    // The tower's signed receipt for that proof, which Carol's client checked and stored.
    let receipt = loop_until(|| async {
        Ok(carol
            .tower_receipt(tower, channel)
            .await?
            .filter(|r| r.receipt.nonce >= newest))
    })
    .await
    .wrap_err("the tower never acknowledged Carol's newest proof")?;
    let owed = carol.channel(channel).await?.balance;
    let carol_address = carol.address();
    println!(
        "carol's tower {tower} holds bob's proof #{} (its receipt signed, watching until {}); carol goes offline",
        receipt.receipt.nonce, receipt.receipt.watchUntil
    );
    carol.shutdown().await;

    let provider = ProviderBuilder::new().connect_http(rpc.parse()?);
    let before = provider.get_balance(carol_address).await?;
    let mut bob_events = bob.subscribe();
    bob.force_close(channel).await?;
    let ClientEvent::DisputeAnswered { closer_nonce, .. } = wait(
        &mut bob_events,
        |e| matches!(e, ClientEvent::DisputeAnswered { channel_id, .. } if *channel_id == channel),
    )
    .await?
    else {
        bail!("not an answer");
    };
    println!(
        "bob closed alone, as if he had never paid; the tower answered with his proof #{closer_nonce}"
    );

    // Only a development chain lets the clock jump the challenge period (3,600 s, step 8).
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), (3_601u64,))
        .await?;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await?;
    bob.settle(channel).await?;
    wait(
        &mut bob_events,
        |e| matches!(e, ClientEvent::Settled { channel_id, .. } if *channel_id == channel),
    )
    .await?;
    let paid = provider.get_balance(carol_address).await? - before;
    println!(
        "after the challenge period bob settled: offline carol was paid {} ETH, all she was owed",
        format_ether(paid)
    );
    if paid != owed {
        bail!("carol was paid {paid} wei, owed {owed}");
    }
    Ok(())
}

/// Polls `check` every 100 ms for up to a minute until it gives a value.
async fn loop_until<T, F, Fut>(check: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..600 {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out")
}

/// Waits until `client` has seen the opener's `deposit` in `channel` confirmed.
async fn deposit_seen(client: &Client, channel: B256, deposit: U256) -> Result<()> {
    loop_until(|| async {
        Ok((client.channel(channel).await?.deposits[0] == deposit).then_some(()))
    })
    .await
    .wrap_err_with(|| format!("{} never saw the deposit in {channel}", client.address()))
}

/// The node's chain id.
async fn chain_id(rpc: &str) -> Result<u64> {
    use alloy::providers::{Provider, ProviderBuilder};
    let provider = ProviderBuilder::new().connect_http(rpc.parse()?);
    Ok(provider.get_chain_id().await?)
}

/// The next event matching `pick`, within a minute.
async fn wait(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    pick: impl Fn(&ClientEvent) -> bool,
) -> Result<ClientEvent> {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.recv().await?;
            if pick(&event) {
                return Ok(event);
            }
        }
    })
    .await
    .wrap_err("timed out")?
}
