//! Keel's demo: on an embedded Anvil, deploy the contracts, open an ETH channel, make payments
//! off-chain as signed balance proofs, and close cooperatively — printing each step.
//! Run with `script/demo.sh` (which installs Anvil first) or `cargo run -p keel-e2e --example demo`.

// A demo's output is its purpose; the library crates never print.
#![allow(clippy::print_stdout)]

use alloy::primitives::{
    utils::{format_ether, parse_ether},
    B256, U256,
};
use alloy::providers::Provider;
use eyre::Result;
use keel_core::{BalanceProof, CooperativeClose};
use keel_e2e::Devnet;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let net = Devnet::start().await?;
    println!(
        "Anvil chain {} — Keel factory at {}",
        net.chain_id, net.factory
    );
    println!("alice {}\nbob   {}", net.alice.address(), net.bob.address());

    let ch = net.open_eth(1, parse_ether("1")?).await?;
    println!(
        "\n1. alice opened channel {} with 1 ETH\n   vault {}",
        ch.id, ch.vault
    );

    let r = net.top_up(&ch, &net.bob, parse_ether("0.5")?).await?;
    println!("2. bob deposited 0.5 ETH (gas {})", r.gas_used);

    // Payments: each is one balance proof signed by its sender, never sent to the chain.
    let mut sent = U256::ZERO;
    for (nonce, amount) in [(1u64, "0.1"), (2, "0.25"), (3, "0.05")] {
        sent += parse_ether(amount)?;
        let proof = BalanceProof {
            channelId: ch.id,
            nonce,
            transferredAmount: sent,
            lockedAmount: U256::ZERO,
            locksRoot: B256::ZERO,
        };
        let sig = net.sign_balance(&ch, &net.alice, &proof)?;
        let signer = keel_core::recover(
            &keel_core::signing_hash(&proof, net.chain_id, ch.vault),
            &sig,
        )?;
        assert_eq!(signer, net.alice.address());
        println!("3.{nonce} alice pays bob {amount} ETH off-chain (balance proof nonce {nonce}, {} ETH in total, checked by bob)", format_ether(sent));
    }

    let close = CooperativeClose {
        channelId: ch.id,
        payoutA: parse_ether("1")? - sent,
        payoutB: parse_ether("0.5")? + sent,
        // The ledger the close is agreed on, and how long the offer stands.
        totalDeposited: parse_ether("1.5")?,
        totalWithdrawn: U256::ZERO,
        expiry: u64::MAX,
    };
    let r = net.cooperative_close(&ch, &close, &net.bob).await?;
    println!(
        "4. closed cooperatively in one transaction (gas {}): alice gets {} ETH, bob {} ETH",
        r.gas_used,
        format_ether(close.payoutA),
        format_ether(close.payoutB)
    );
    println!(
        "   vault status {} (3 = settled), balance {} ETH",
        net.vault_for(&ch, &net.bob).status().call().await?,
        format_ether(net.bob.provider.get_balance(ch.vault).await?)
    );
    Ok(())
}
