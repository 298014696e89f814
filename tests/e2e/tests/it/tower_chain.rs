//! The watchtower against what the chain does to its refutation (issue 18's variants): a
//! congested chain whose base fee prices the first refutation out, so only the tower's fee
//! raises land it before the deadline, and one congested beyond the tower's fee cap, which it
//! never exceeds; a reorganisation that drops the blocks with the close
//! and the refutation, and one that drops only a refutation not yet confirmed; and the basic
//! refutation in an ERC-20 channel. Each ends with the
//! channel settled and the offline party paid exactly its newest balance, to the wei.

use alloy::{
    primitives::{utils::parse_ether, Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionReceipt,
};
use eyre::{ensure, eyre, Result};
use keel_client::chain::{fees::GWEI, Chain, DisputeState, FeePolicy};
use keel_core::{BalanceProof, ChannelParams, Side};
use keel_e2e::{Channel, Devnet, MIN_PERIOD};
use serde_json::Value;

use crate::tower::{
    appointment, dispute_in, proof, register, submit, test_fees, TowerProcess, TOWER_TIMEOUT,
};

/// Bob's newest proof, which the tower holds: Alice paid him 5 (nonce 5).
const NEWEST: u64 = 5;

/// Bob registers and hands the tower Alice's proof of 5 (nonce 5); from here on he is offline.
pub(crate) async fn appoint(net: &Devnet, tower: &TowerProcess, ch: &Channel) -> Result<()> {
    register(net, tower, &net.bob).await?;
    let newest = proof(ch, NEWEST, parse_ether("5")?);
    let receipt = submit(
        net,
        tower,
        ch,
        &appointment(net, ch, &net.alice, &net.bob, &newest)?,
    )
    .await?;
    ensure!(receipt.nonce == NEWEST);
    Ok(())
}

/// Bob's old proof (he paid Alice 1, nonce 2) and his signature: what Alice closes with.
pub(crate) fn bobs_old_proof(net: &Devnet, ch: &Channel) -> Result<(BalanceProof, [u8; 65])> {
    let old = proof(ch, 2, parse_ether("1")?);
    let sig = keel_core::sign_message(&net.bob.signer, &old, net.chain_id, ch.vault)?;
    Ok((old, sig))
}

/// Waits until the tower's refutation with Bob's newest proof is mined in a transaction other
/// than `not`, against the close that published `closed`; checks it landed by the deadline and
/// returns the state it published with its receipt.
pub(crate) async fn refuted(
    net: &Devnet,
    tower: &TowerProcess,
    ch: &Channel,
    closed: &DisputeState,
    not: Option<B256>,
) -> Result<(DisputeState, TransactionReceipt)> {
    let view = tower
        .wait_for(ch.id, "refute", |v| {
            v.responses.iter().any(|r| {
                r.outcome == "mined" && r.tx_hash.is_some() && r.tx_hash != not && r.nonce == NEWEST
            })
        })
        .await?;
    let tx = view.responses[0]
        .tx_hash
        .ok_or_else(|| eyre!("no tx hash"))?;
    let state = dispute_in(net, tx).await?;
    ensure!(
        state.from_a.nonce == NEWEST,
        "refuted with {:?}",
        state.from_a
    );
    ensure!(state.from_a.transferred == parse_ether("5")?);
    ensure!(state.deadline == closed.deadline, "refuted another close");
    let receipt = net
        .alice
        .provider
        .get_transaction_receipt(tx)
        .await?
        .ok_or_else(|| eyre!("no receipt for {tx}"))?;
    let block = receipt
        .block_number
        .ok_or_else(|| eyre!("no block number"))?;
    let mined_at = net
        .alice
        .provider
        .get_block_by_number(block.into())
        .await?
        .ok_or_else(|| eyre!("no block {block}"))?
        .header
        .timestamp;
    ensure!(
        mined_at <= closed.deadline,
        "mined at {mined_at}, after the deadline {}",
        closed.deadline
    );
    Ok((state, receipt))
}

/// After the challenge period Alice settles `refuted`; Bob (who pays no gas) gets exactly his
/// newest balance, 2 deposited + 5 from Alice − 1 to her, in the channel's asset.
pub(crate) async fn settle_and_check(
    net: &Devnet,
    alice: &Chain,
    params: &ChannelParams,
    refuted: &DisputeState,
) -> Result<()> {
    net.advance_time(u64::from(MIN_PERIOD) + 1).await?;
    let bob_before = net.bob.balance_of(params.token).await?;
    alice.settle(params, refuted).await?;
    assert_eq!(refuted.settlement()?.payout_b, parse_ether("6")?);
    assert_eq!(
        net.bob.balance_of(params.token).await? - bob_before,
        parse_ether("6")?
    );
    Ok(())
}

/// An ETH channel: Alice deposits 10, Bob 2.
pub(crate) async fn eth_channel(net: &Devnet, salt: u64) -> Result<Channel> {
    let ch = net.open_eth(salt, parse_ether("10")?).await?;
    net.top_up(&ch, &net.bob, parse_ether("2")?).await?;
    Ok(ch)
}

async fn rpc(net: &Devnet, method: &'static str, params: Value) -> Result<Value> {
    Ok(net
        .alice
        .provider
        .raw_request(method.into(), params)
        .await?)
}

/// The max fee per gas of `who`'s transaction in the node's pool, once there is one.
async fn pooled_max_fee(net: &Devnet, who: Address) -> Result<u128> {
    let deadline = tokio::time::Instant::now() + TOWER_TIMEOUT;
    loop {
        let pool = rpc(net, "txpool_content", Value::Array(vec![])).await?;
        let ours = pool["pending"].as_object().and_then(|by_sender| {
            by_sender
                .iter()
                .find(|(from, _)| from.parse::<Address>().ok() == Some(who))
                .map(|(_, by_nonce)| by_nonce.clone())
        });
        if let Some(fee) = ours
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|by_nonce| by_nonce.values().next())
            .and_then(|tx| tx["maxFeePerGas"].as_str())
        {
            return Ok(u128::from_str_radix(fee.trim_start_matches("0x"), 16)?);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no transaction of {who} reached the pool"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_congested_chain_the_tower_raises_its_fees_until_the_refutation_lands_in_time(
) -> Result<()> {
    let net = Devnet::start().await?;
    let ch = eth_channel(&net, 11).await?;
    let tower = TowerProcess::start(&net, "congested").await?;
    appoint(&net, &tower, &ch).await?;

    // From here the test mines every block. Alice's close goes into the first one.
    rpc(&net, "evm_setAutomine", serde_json::json!([false])).await?;
    let alice = net.chain(&net.alice).await?;
    let (old, sig) = bobs_old_proof(&net, &ch)?;
    let closing = tokio::spawn({
        let (alice, params) = (alice.clone(), ch.params);
        async move { alice.close(&params, Some((&old, &sig))).await }
    });
    pooled_max_fee(&net, net.alice.address()).await?;
    net.mine(1).await?;
    let close = closing.await??;
    let closed = dispute_in(&net, close.transaction_hash).await?;

    // The tower sends its refutation at the node's estimate. Then the chain congests: every
    // block's base fee is 4 times that refutation's max fee, so it cannot be included.
    let first = pooled_max_fee(&net, net.carol.address()).await?;
    let congested = first * 4;
    ensure!(
        congested < test_fees().max_fee_cap,
        "the cap allows landing"
    );
    let carol_nonce = net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?;
    let mut blocks = 0;
    while net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?
        == carol_nonce
    {
        // A hundred seconds a block: 36 blocks to the deadline.
        ensure!(
            net.latest_timestamp().await? < closed.deadline,
            "the deadline passed after {blocks} congested blocks without the refutation: {:?}",
            tower.channel(ch.id).await?
        );
        rpc(&net, "evm_increaseTime", serde_json::json!([100])).await?;
        rpc(
            &net,
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!([U256::from(congested)]),
        )
        .await?;
        net.mine(1).await?;
        blocks += 1;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    ensure!(blocks > 1, "the first refutation was not priced out");
    rpc(&net, "evm_setAutomine", serde_json::json!([true])).await?;

    let (state, receipt) = refuted(&net, &tower, &ch, &closed, None).await?;
    let landed = net
        .alice
        .provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await?
        .ok_or_else(|| eyre!("no transaction"))?;
    let max_fee = alloy::consensus::Transaction::max_fee_per_gas(&landed);
    assert!(
        max_fee >= congested && max_fee > first,
        "landed at {max_fee} wei per gas (first {first}, base fee {congested})"
    );
    assert!(max_fee <= test_fees().max_fee_cap);
    settle_and_check(&net, &alice, &ch.params, &state).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_never_offers_more_than_its_fee_cap_and_records_the_miss() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = eth_channel(&net, 15).await?;
    let cap = 10 * GWEI;
    let tower = TowerProcess::start_with(
        &net,
        "capped",
        FeePolicy {
            max_fee_cap: cap,
            ..test_fees()
        },
    )
    .await?;
    appoint(&net, &tower, &ch).await?;
    let alice = net.chain(&net.alice).await?;
    let (old, sig) = bobs_old_proof(&net, &ch)?;

    // Every block from the close on has a base fee twice the tower's cap.
    rpc(&net, "evm_setAutomine", serde_json::json!([false])).await?;
    let closing = tokio::spawn({
        let (alice, params) = (alice.clone(), ch.params);
        async move { alice.close(&params, Some((&old, &sig))).await }
    });
    pooled_max_fee(&net, net.alice.address()).await?;
    net.mine(1).await?;
    let close = closing.await??;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    let first = pooled_max_fee(&net, net.carol.address()).await?;
    ensure!(
        first <= cap,
        "the first version offered {first}, above the cap"
    );
    let carol_nonce = net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?;
    // Two hundred seconds a block: 18 blocks to the deadline, the cap reached in about 7.
    while net.latest_timestamp().await? <= closed.deadline {
        rpc(&net, "evm_increaseTime", serde_json::json!([200])).await?;
        rpc(
            &net,
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!([U256::from(2 * cap)]),
        )
        .await?;
        net.mine(1).await?;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    rpc(&net, "evm_setAutomine", serde_json::json!([true])).await?;
    ensure!(
        net.carol
            .provider
            .get_transaction_count(net.carol.address())
            .await?
            == carol_nonce,
        "a refutation was mined above the cap"
    );
    let view = tower
        .wait_for(ch.id, "record the miss", |v| {
            v.responses.iter().any(|r| r.outcome == "missed")
        })
        .await?;
    let detail = &view.responses[0].detail;
    assert!(detail.contains("to the cap of 10000000000 wei"), "{detail}");

    // The stale close stands: Bob gets what it says, his 2 less the 1 he paid, to the wei.
    net.advance_time(1).await?;
    let bob_before = net.bob.balance().await?;
    alice.settle(&ch.params, &closed).await?;
    assert_eq!(net.bob.balance().await? - bob_before, parse_ether("1")?);
    Ok(())
}

#[tokio::test]
async fn a_reorg_dropping_the_close_and_the_refutation_is_answered_again() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = eth_channel(&net, 12).await?;
    let tower = TowerProcess::start(&net, "reorg").await?;
    appoint(&net, &tower, &ch).await?;
    let alice = net.chain(&net.alice).await?;
    let (old, sig) = bobs_old_proof(&net, &ch)?;
    let close = alice.close(&ch.params, Some((&old, &sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    let (_, first) = refuted(&net, &tower, &ch, &closed, None).await?;
    tower
        .wait_for(ch.id, "record the refutation", |v| {
            v.dispute.as_ref().is_some_and(|d| d.nonce_a == NEWEST)
        })
        .await?;

    // A reorganisation replaces the blocks from the close on: the channel is open again, and
    // neither the close nor the refutation is on chain.
    let closed_at = close.block_number.ok_or_else(|| eyre!("no block"))?;
    net.reorg(net.block_number().await? - closed_at + 1).await?;
    ensure!(
        net.alice
            .provider
            .get_transaction_receipt(first.transaction_hash)
            .await?
            .is_none(),
        "the refutation survived the reorg"
    );

    // Alice closes again with the same old proof. The tower's records say it refuted, but its
    // transaction is gone: it must refute this close too.
    let close = alice.close(&ch.params, Some((&old, &sig))).await?;
    let reclosed = dispute_in(&net, close.transaction_hash).await?;
    let (state, _) = refuted(&net, &tower, &ch, &reclosed, Some(first.transaction_hash)).await?;
    settle_and_check(&net, &alice, &ch.params, &state).await
}

#[tokio::test]
async fn a_refutation_dropped_by_a_reorg_before_it_is_confirmed_is_sent_again() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = eth_channel(&net, 14).await?;
    let tower = TowerProcess::start_confirming(&net, "unconfirmed", 2).await?;
    appoint(&net, &tower, &ch).await?;
    let alice = net.chain(&net.alice).await?;
    let (old, sig) = bobs_old_proof(&net, &ch)?;
    let carol_nonce = net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?;
    let close = alice.close(&ch.params, Some((&old, &sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;

    // Two blocks confirm the close; the tower refutes, and its refutation is mined at once
    // (Anvil mines a block per transaction), one block short of its own two confirmations.
    net.mine(2).await?;
    let deadline = tokio::time::Instant::now() + TOWER_TIMEOUT;
    while net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?
        == carol_nonce
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no refutation mined"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A reorganisation drops that block: the close stays, the refutation is gone.
    net.reorg(1).await?;
    ensure!(
        net.carol
            .provider
            .get_transaction_count(net.carol.address())
            .await?
            == carol_nonce,
        "the refutation survived the reorg"
    );
    ensure!(
        tower.channel(ch.id).await?.responses[0].outcome == "sending",
        "the tower counted an unconfirmed refutation as mined"
    );

    // The tower sends it again; once it is two blocks deep the tower counts it.
    let resent = tokio::time::Instant::now() + TOWER_TIMEOUT;
    while net
        .carol
        .provider
        .get_transaction_count(net.carol.address())
        .await?
        == carol_nonce
    {
        ensure!(
            tokio::time::Instant::now() < resent,
            "the dropped refutation was not sent again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    net.mine(2).await?;
    let (state, _) = refuted(&net, &tower, &ch, &closed, None).await?;
    settle_and_check(&net, &alice, &ch.params, &state).await
}

/// A tower given a second account refutes from both: each channel's close is answered from
/// the account its id picks (Carol's or Dave's), so a mass close is not queued behind one
/// account's nonces; each refutation lands before its deadline and the offline party is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_with_two_accounts_refutes_from_each() -> Result<()> {
    let net = Devnet::start().await?;
    // Two channels whose ids pick different accounts (the id's last 8 bytes, modulo 2).
    let pick = |salt: u64| {
        let id = net.channel(net.params(Address::ZERO, salt)).id;
        u64::from_be_bytes(id[24..].try_into().expect("8 bytes")) % 2
    };
    let first = 20;
    let second = (21..60)
        .find(|&salt| pick(salt) != pick(first))
        .ok_or_else(|| eyre!("no salt picks the other account"))?;
    let tower =
        TowerProcess::start_refuting_from(&net, "two-accounts", vec![net.dave.signer.clone()])
            .await?;
    let alice = net.chain(&net.alice).await?;
    let mut senders = Vec::new();
    for salt in [first, second] {
        let ch = eth_channel(&net, salt).await?;
        appoint(&net, &tower, &ch).await?;
        let (old, sig) = bobs_old_proof(&net, &ch)?;
        let close = alice.close(&ch.params, Some((&old, &sig))).await?;
        let closed = dispute_in(&net, close.transaction_hash).await?;
        let (state, receipt) = refuted(&net, &tower, &ch, &closed, None).await?;
        senders.push(receipt.from);
        settle_and_check(&net, &alice, &ch.params, &state).await?;
    }
    senders.sort();
    let mut expected = vec![net.carol.address(), net.dave.address()];
    expected.sort();
    ensure!(senders == expected, "refuted from {senders:?}");
    Ok(())
}

#[tokio::test]
async fn tower_refutes_a_stale_close_in_an_erc20_channel() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.channel(net.params(net.token, 13));
    let alice = net.chain(&net.alice).await?;
    alice.open(&ch.params, parse_ether("10")?).await?;
    net.chain(&net.bob)
        .await?
        .deposit(&ch.params, Side::B, parse_ether("2")?)
        .await?;
    let tower = TowerProcess::start_with(
        &net,
        "erc20",
        FeePolicy {
            // A refutation needs about 54,000 gas: a cap well above still lets it through.
            gas_limit_cap: 200_000,
            ..test_fees()
        },
    )
    .await?;
    appoint(&net, &tower, &ch).await?;

    let (old, sig) = bobs_old_proof(&net, &ch)?;
    let close = alice.close(&ch.params, Some((&old, &sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    let (state, _) = refuted(&net, &tower, &ch, &closed, None).await?;

    // Alice gets the rest of the 12 tokens, to the wei; her gas is paid in ETH.
    let alice_before = net.alice.balance_of(net.token).await?;
    settle_and_check(&net, &alice, &ch.params, &state).await?;
    assert_eq!(
        net.alice.balance_of(net.token).await? - alice_before,
        parse_ether("6")?
    );
    assert_eq!(
        net.alice.balance_of(net.token).await?,
        U256::from(1_000_000u64) * parse_ether("1")? - parse_ether("4")?,
        "Alice started with a million tokens and ends 4 poorer (5 to Bob, 1 back)"
    );
    Ok(())
}
