//! Payments that change chain or token at a hub, end to end: Alice on one Anvil chain pays Carol
//! on another (its own chain id, Keel deployed) through Bob, who holds a channel on each and
//! forwards at the rate his policy announces; and a hub that takes ETH for an ERC-20 on one
//! chain. Every hop's balance is checked to the wei, a withheld secret refunds both chains'
//! channels after expiry, and a hop into another asset without an announced rate is refused.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    client::{ClientEvent, Clock, ForwardPolicy, DEFAULT_EXPIRY_DELTA},
    ClientError,
};
use keel_core::forwarding::{FailureReason, FeePolicy, Rate};
use keel_routing::Asset;

use crate::{
    client_flow::{units, wait_for, wait_until},
    multihop::{policy, settled_at, Line},
};

fn rate(upstream: u64, downstream: u64) -> Result<Rate> {
    Ok(Rate::new(U256::from(upstream), U256::from(downstream))?)
}

/// Bob forwards ETH on chain A into ETH on chain B, taking 101 wei on A for every 100 he pays
/// on B, plus his fee: Carol receives the invoice's amount on chain B, Alice pays the amount
/// plus the fee converted at the rate (rounded up) on chain A, and the route's fees say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_crosses_chains_at_the_hubs_rate() -> Result<()> {
    let line = Line::start_across("crosschain-pay", 3).await?;
    let (chain_a, chain_b) = (line.net.chain_id, line.far()?.chain_id);
    ensure!(chain_a != chain_b);
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let deposit = units("1");
    let ab = line.open_on(chain_a, 0, Address::ZERO, deposit).await?;
    let bc = line.open_on(chain_b, 1, Address::ZERO, deposit).await?;
    let eth_on_a = Asset {
        chain_id: chain_a,
        token: Address::ZERO,
    };
    let premium = rate(101, 100)?;
    let hub_policy = policy(1_000, 2_500).with_rate(eth_on_a, premium);
    bob.set_forward_policy(bc, hub_policy.clone()).await?;
    line.announce(alice, 1, bc, deposit).await?;

    // Carol is paid on her chain; Alice pays on hers.
    let amount = units("0.01") + U256::from(7);
    let request = carol
        .create_invoice(chain_b, Address::ZERO, amount, 3_600, "across")
        .await?;
    let mut bob_events = bob.subscribe();
    let outcome = alice.send_payment(&request, 3).await?;

    let fee = hub_policy.fee.fee(amount)?;
    let into_ab = premium.upstream_for(amount + fee)?;
    // 1.01 × (amount + fee), rounded up: the `+ 7` wei make it round.
    ensure!(into_ab * U256::from(100) > (amount + fee) * U256::from(101));
    ensure!(outcome.route.hops.iter().map(|h| h.channel).eq([ab, bc]));
    ensure!(
        outcome.route.hops[0].asset.chain_id == chain_a
            && outcome.route.hops[1].asset.chain_id == chain_b
    );
    ensure!(
        outcome
            .route
            .locks
            .iter()
            .map(|l| l.amount)
            .eq([into_ab, amount]),
        "{:?}",
        outcome.route.locks
    );
    // Fees in Alice's asset: what she locked less what Carol got, converted at the rate.
    ensure!(outcome.fees == into_ab - premium.upstream_for(amount)?);
    ensure!(keel_core::secret_hash(outcome.secret) == request.request.paymentHash);
    // Bob's delta covers both chains: his set one, above what the derivation asks here.
    let [ab_lock, bc_lock] = [outcome.route.locks[0], outcome.route.locks[1]];
    ensure!(ab_lock.expiration == bc_lock.expiration + DEFAULT_EXPIRY_DELTA);
    wait_for(&mut bob_events, |e| {
        matches!(e, ClientEvent::PaymentForwarded { incoming_channel, outgoing_channel, .. }
            if *incoming_channel == ab && *outgoing_channel == bc)
    })
    .await?;

    settled_at(alice, ab, deposit - into_ab, into_ab).await?;
    settled_at(bob, ab, into_ab, deposit - into_ab).await?;
    settled_at(bob, bc, deposit - amount, amount).await?;
    settled_at(carol, bc, amount, deposit - amount).await?;
    Ok(())
}

/// Carol withholds the secret of a payment that crossed chains: once her lock on chain B
/// expires Bob takes it back and Alice hears the hop after Bob let it expire; once Alice's lock
/// on chain A expires, a delta later, she takes hers back. Both chains' channels end where
/// they started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_secret_refunds_both_chains_after_expiry() -> Result<()> {
    let line = Line::start_across("crosschain-withheld", 3).await?;
    let (chain_a, chain_b) = (line.net.chain_id, line.far()?.chain_id);
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let deposit = units("1");
    let ab = line.open_on(chain_a, 0, Address::ZERO, deposit).await?;
    let bc = line.open_on(chain_b, 1, Address::ZERO, deposit).await?;
    let eth_on_a = Asset {
        chain_id: chain_a,
        token: Address::ZERO,
    };
    bob.set_forward_policy(bc, policy(0, 0).with_rate(eth_on_a, Rate::PAR))
        .await?;
    line.announce(alice, 1, bc, deposit).await?;

    let amount = units("0.2");
    let (request, _secret) = carol
        .create_hold_invoice(chain_b, Address::ZERO, amount, 3_600, "held")
        .await?;
    let payer = alice.clone();
    let paying = tokio::spawn(async move { payer.send_payment(&request, 1).await });
    let carol_info = wait_until(carol, bc, |i| i.incoming_locks.len() == 1).await?;
    let alice_info = wait_until(alice, ab, |i| i.outgoing_locks.len() == 1).await?;
    let (carol_lock, alice_lock) = (carol_info.incoming_locks[0], alice_info.outgoing_locks[0]);
    ensure!(carol_lock.amount == amount && alice_lock.amount == amount);
    ensure!(alice_lock.expiration == carol_lock.expiration + DEFAULT_EXPIRY_DELTA);

    // Past Carol's lock on chain B: Bob takes it back and tells Alice.
    let now = line.clock.now();
    line.advance(carol_lock.expiration + 1 - now).await?;
    settled_at(bob, bc, deposit, U256::ZERO).await?;
    settled_at(carol, bc, U256::ZERO, deposit).await?;
    let failed = tokio::time::timeout(Duration::from_secs(60), paying).await??;
    match failed {
        Err(ClientError::PaymentFailed { failure, hop }) => {
            ensure!(failure.reason == FailureReason::Expired, "{failure:?}");
            ensure!(failure.node == carol.address() && failure.channel == bc);
            ensure!(hop == Some(1));
        }
        other => return Err(eyre!("expected an expired payment, got {other:?}")),
    }
    // Alice's lock on chain A still pending: Bob could still claim it with the secret.
    ensure!(alice.channel(ab).await?.outgoing_locks.len() == 1);

    // Past Alice's lock on chain A: she takes it back.
    let now = line.clock.now();
    line.advance(alice_lock.expiration + 1 - now).await?;
    ensure!(alice.remove_expired_locks(ab).await? == 1);
    settled_at(alice, ab, deposit, U256::ZERO).await?;
    settled_at(bob, ab, U256::ZERO, deposit).await?;
    Ok(())
}

/// On one chain, Bob takes ETH for the ERC-20: 1 wei per 2,000 token units, plus his fee in
/// the token. Carol is paid tokens, Alice pays wei. Once Bob withdraws the rate, a payment
/// along the route he announced before is refused with `NoRate`, and nothing reaches Carol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_swaps_eth_for_a_token_only_at_an_announced_rate() -> Result<()> {
    let line = Line::start("crosschain-swap", 3).await?;
    let (chain, token) = (line.net.chain_id, line.net.token);
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let (eth_deposit, token_deposit) = (units("1"), units("1000"));
    let ab = line.open(0, Address::ZERO, eth_deposit).await?;
    let bc = line.open(1, token, token_deposit).await?;
    let eth = Asset {
        chain_id: chain,
        token: Address::ZERO,
    };
    let price = rate(1, 2_000)?;
    let hub_policy = ForwardPolicy::new(
        FeePolicy {
            base: U256::from(3),
            proportional_millionths: 1_000,
        },
        DEFAULT_EXPIRY_DELTA,
    )
    .with_rate(eth, price);
    bob.set_forward_policy(bc, hub_policy.clone()).await?;
    line.announce(alice, 1, bc, token_deposit).await?;

    let amount = units("20") + U256::from(1);
    let request = carol
        .create_invoice(chain, token, amount, 3_600, "tokens")
        .await?;
    let outcome = alice.send_payment(&request, 3).await?;
    let fee = hub_policy.fee.fee(amount)?;
    let wei = price.upstream_for(amount + fee)?;
    ensure!(
        outcome
            .route
            .locks
            .iter()
            .map(|l| l.amount)
            .eq([wei, amount]),
        "{:?}",
        outcome.route.locks
    );
    // (20 tokens + 1 unit + fee) / 2,000, rounded up.
    ensure!(wei == (amount + fee).div_ceil(U256::from(2_000)));
    settled_at(alice, ab, eth_deposit - wei, wei).await?;
    settled_at(bob, ab, wei, eth_deposit - wei).await?;
    settled_at(bob, bc, token_deposit - amount, amount).await?;
    settled_at(carol, bc, amount, token_deposit - amount).await?;

    // Bob stops taking ETH; Alice pays along the route she was given before.
    let route = outcome.route;
    bob.set_forward_policy(bc, policy(3, 1_000)).await?;
    let request = carol
        .create_invoice(chain, token, amount, 3_600, "")
        .await?;
    match alice.pay_route(&route, request.request.paymentHash).await {
        Err(ClientError::PaymentFailed { failure, hop }) => {
            ensure!(failure.reason == FailureReason::NoRate, "{failure:?}");
            ensure!(failure.node == bob.address() && failure.channel == bc);
            ensure!(hop == Some(0));
        }
        other => return Err(eyre!("expected NoRate, got {other:?}")),
    }
    ensure!(carol.channel(bc).await?.incoming_locks.is_empty());
    Ok(())
}
