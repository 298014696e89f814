use alloy::primitives::{utils::parse_ether, Address, Bytes, B256, U256};
use eyre::Result;
use keel_bindings::ChannelVault;
use keel_core::{BalanceProof, CooperativeClose, Direction};
use keel_e2e::{balance_data, succeeded, to_vault_abi, Devnet, MIN_PERIOD};

fn proof(id: B256, nonce: u64, transferred: U256) -> BalanceProof {
    BalanceProof {
        channelId: id,
        nonce,
        transferredAmount: transferred,
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    }
}

#[tokio::test]
async fn open_pay_and_close_cooperatively_pays_the_signed_balances() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(1, parse_ether("10")?).await?;
    net.top_up(&ch, &net.bob, parse_ether("4")?).await?;
    let bob_vault = net.vault_for(&ch, &net.bob);
    assert_eq!(bob_vault.totalDeposit(1).call().await?, parse_ether("4")?);

    // Off-chain, alice pays bob 3 ETH over three balance proofs; both then sign the final split.
    let close = CooperativeClose {
        channelId: ch.id,
        payoutA: parse_ether("7")?,
        payoutB: parse_ether("7")?,
        depositA: parse_ether("10")?,
        depositB: parse_ether("4")?,
        totalWithdrawn: U256::ZERO,
        expiry: u64::MAX,
    };
    let (a0, b0) = (net.alice.balance().await?, net.bob.balance().await?);
    let receipt = net.cooperative_close(&ch, &close, &net.bob).await?;
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(net.alice.balance().await?, a0 + parse_ether("7")?);
    assert_eq!(net.bob.balance().await?, b0 + parse_ether("7")? - fee);
    assert_eq!(bob_vault.status().call().await?, 3);
    Ok(())
}

#[tokio::test]
async fn stale_close_is_refuted_and_settlement_matches_keel_core() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(2, parse_ether("10")?).await?;
    let params = to_vault_abi(&ch.params);
    net.top_up(&ch, &net.bob, parse_ether("10")?).await?;

    // Alice paid bob 4 ETH (nonce 6); bob paid alice 1 ETH (nonce 2).
    let from_alice = proof(ch.id, 6, parse_ether("4")?);
    let from_bob = proof(ch.id, 2, parse_ether("1")?);

    // Alice closes with bob's proof, hiding her own payments.
    let alice_vault = net.vault_for(&ch, &net.alice);
    let sig = net.sign_balance(&ch, &net.bob, &from_bob)?;
    let receipt = alice_vault
        .close(params.clone(), balance_data(&from_bob), sig)
        .send()
        .await?
        .get_receipt()
        .await?;
    let closed = succeeded(receipt, "close")?
        .decoded_log::<ChannelVault::Closed>()
        .ok_or_else(|| eyre::eyre!("no Closed event"))?;

    // Carol, bob's watchtower, refutes with alice's newer proof and bob's authorisation.
    let auth = keel_core::TowerAuthorisation {
        balanceProof: from_alice.clone(),
    };
    let auth_sig: Bytes = keel_core::sign_message(&net.bob.signer, &auth, net.chain_id, ch.vault)?
        .to_vec()
        .into();
    let carol_vault = net.vault_for(&ch, &net.carol);
    let receipt = carol_vault
        .refute(
            params.clone(),
            closed.state.clone(),
            balance_data(&from_alice),
            net.sign_balance(&ch, &net.alice, &from_alice)?,
            auth_sig,
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    let refuted = succeeded(receipt, "refute")?
        .decoded_log::<ChannelVault::Refuted>()
        .ok_or_else(|| eyre::eyre!("no Refuted event"))?;
    assert_eq!(
        refuted.state.deadline, closed.state.deadline,
        "a refutation never moves the deadline"
    );

    // Settling early is refused; after the challenge period it pays what keel-core computes.
    assert!(carol_vault
        .settle(params.clone(), refuted.state.clone())
        .call()
        .await
        .is_err());
    net.advance_time(u64::from(MIN_PERIOD) + 1).await?;
    let s = &refuted.state;
    let expected = keel_core::settle(
        s.total,
        s.depositA,
        s.withdrawnA,
        Direction {
            transferred: s.fromA.transferredAmount,
            locked: s.fromA.lockedAmount,
        },
        Direction {
            transferred: s.fromB.transferredAmount,
            locked: s.fromB.lockedAmount,
        },
    )?;
    let (a0, b0) = (net.alice.balance().await?, net.bob.balance().await?);
    succeeded(
        carol_vault
            .settle(params, refuted.state.clone())
            .send()
            .await?
            .get_receipt()
            .await?,
        "settle",
    )?;
    assert_eq!(expected.payout_a, parse_ether("7")?);
    assert_eq!(expected.payout_b, parse_ether("13")?);
    assert_eq!(net.alice.balance().await?, a0 + expected.payout_a);
    assert_eq!(net.bob.balance().await?, b0 + expected.payout_b);
    Ok(())
}

#[tokio::test]
async fn withdraw_signed_by_both_keeps_the_channel_open() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(3, parse_ether("5")?).await?;
    let w = keel_core::Withdrawal {
        channelId: ch.id,
        participant: net.alice.address(),
        totalWithdrawn: parse_ether("2")?,
        expiry: u64::MAX,
        target: Address::ZERO,
        targetSide: 0,
    };
    let sig_a: Bytes = keel_core::sign_message(&net.alice.signer, &w, net.chain_id, ch.vault)?
        .to_vec()
        .into();
    let sig_b: Bytes = keel_core::sign_message(&net.bob.signer, &w, net.chain_id, ch.vault)?
        .to_vec()
        .into();
    let abi_w = ChannelVault::Withdrawal {
        participant: w.participant,
        totalWithdrawn: w.totalWithdrawn,
        expiry: w.expiry,
        target: w.target,
        targetSide: w.targetSide,
    };
    let bob_vault = net.vault_for(&ch, &net.bob);
    let a0 = net.alice.balance().await?;
    succeeded(
        bob_vault
            .withdraw(
                to_vault_abi(&ch.params),
                abi_w.clone(),
                sig_a.clone(),
                sig_b.clone(),
            )
            .send()
            .await?
            .get_receipt()
            .await?,
        "withdraw",
    )?;
    assert_eq!(net.alice.balance().await?, a0 + parse_ether("2")?);
    assert_eq!(bob_vault.status().call().await?, 1);
    // The same signatures cannot be replayed.
    assert!(bob_vault
        .withdraw(to_vault_abi(&ch.params), abi_w, sig_a, sig_b)
        .call()
        .await
        .is_err());
    Ok(())
}
