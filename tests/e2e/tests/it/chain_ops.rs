//! keel-client's `Chain` against the real contracts: every operation, in ETH and in an ERC-20,
//! with exact balances and the events each transaction emitted.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
};
use eyre::Result;
use keel_bindings::ChannelFactory::ChannelFactoryErrors;
use keel_client::chain::{BalanceData, Chain, ChainError, ChainEvent, ChainEventKind, Revert};
use keel_core::Side;
use keel_e2e::{Devnet, MIN_PERIOD};

use crate::chain_support::{cooperative_flow, deferred_payout_flow, dispute_flow, units};

#[tokio::test]
async fn connect_refuses_an_endpoint_on_another_chain() -> Result<()> {
    let net = Devnet::start().await?;
    let mut config = net.chain_config(0);
    config.deployment.chain_id = net.chain_id + 1;
    let err = Chain::connect(config, net.alice.signer.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::WrongChain { expected, found } if expected == net.chain_id + 1 && found == net.chain_id),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn eth_channel_opens_takes_deposits_withdraws_and_closes_cooperatively() -> Result<()> {
    let net = Devnet::start().await?;
    cooperative_flow(&net, Address::ZERO, 1).await?;
    Ok(())
}

#[tokio::test]
async fn token_channel_opens_takes_deposits_withdraws_and_closes_cooperatively() -> Result<()> {
    let net = Devnet::start().await?;
    cooperative_flow(&net, net.token, 1).await?;
    Ok(())
}

#[tokio::test]
async fn eth_dispute_is_closed_refuted_settled_and_unlocked() -> Result<()> {
    let net = Devnet::start().await?;
    dispute_flow(&net, Address::ZERO, 1).await?;
    Ok(())
}

#[tokio::test]
async fn token_dispute_is_closed_refuted_settled_and_unlocked() -> Result<()> {
    let net = Devnet::start().await?;
    dispute_flow(&net, net.token, 1).await?;
    Ok(())
}

#[tokio::test]
async fn payout_refused_by_the_token_is_deferred_and_claimed() -> Result<()> {
    let net = Devnet::start().await?;
    deferred_payout_flow(&net, 1).await?;
    Ok(())
}

/// A counterparty that never paid leaves no proof: the vault's empty proof (nonce 0, no
/// signature) closes, and settlement returns the closer's deposit.
#[tokio::test]
async fn close_without_a_counterparty_proof_returns_the_deposits() -> Result<()> {
    let net = Devnet::start().await?;
    let alice = net.chain(&net.alice).await?;
    let carol = net.chain(&net.carol).await?;
    let ch = net.channel(net.params(net.token, 7));
    alice.open(&ch.params, units("3")).await?;
    let receipt = alice.close(&ch.params, None).await?;
    let events = ChainEvent::from_receipt(net.chain_id, ch.vault, ch.id, &receipt)?;
    let [ChainEvent {
        kind: ChainEventKind::Closed(state),
        ..
    }] = events.as_slice()
    else {
        eyre::bail!("expected one Closed event, got {events:#?}");
    };
    assert_eq!(state.closer, Side::A);
    assert_eq!(state.from_b, BalanceData::default());
    assert_eq!(state.total, units("3"));
    assert_eq!(
        state.deadline,
        alice.block_timestamp().await? + u64::from(MIN_PERIOD)
    );

    net.advance_time(u64::from(MIN_PERIOD) + 1).await?;
    let a0 = net.alice.balance_of(net.token).await?;
    carol.settle(&ch.params, state).await?;
    assert_eq!(net.alice.balance_of(net.token).await?, a0 + units("3"));
    Ok(())
}

/// Reverts come back typed: the factory's own error for a channel opened twice, and nothing
/// is sent.
#[tokio::test]
async fn opening_a_channel_twice_is_rejected_with_the_factory_error() -> Result<()> {
    let net = Devnet::start().await?;
    let bob = net.chain(&net.bob).await?;
    let ch = net.channel(net.params(Address::ZERO, 3));
    bob.open(&ch.params, units("1")).await?;
    let nonce = net
        .bob
        .provider
        .get_transaction_count(net.bob.address())
        .await?;
    let err = bob.open(&ch.params, units("1")).await.unwrap_err();
    assert!(
        matches!(&err, ChainError::Rejected { what: "open", reason: Revert::Factory(ChannelFactoryErrors::ChannelExists(e)) } if e.channelId == ch.id),
        "{err}"
    );
    assert_eq!(
        net.bob
            .provider
            .get_transaction_count(net.bob.address())
            .await?,
        nonce,
        "nothing was sent"
    );
    let stranger = net.chain(&net.carol).await?;
    assert!(matches!(
        stranger.open(&ch.params, U256::ZERO).await,
        Err(ChainError::Invalid(_))
    ));
    Ok(())
}
