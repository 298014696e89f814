//! Signatures from a wallet: the JSON-RPC call MetaMask and hardware wallets implement,
//! `eth_signTypedData_v4`, answered by Anvil for its unlocked dev accounts.
//!
//! The typed data is written out by hand, as a dApp would send it to a wallet, so these tests
//! check keel-core's message definitions against EIP-712 as a wallet reads it, and the
//! contract's digest against both.

use alloy::{
    primitives::{utils::parse_ether, Address, Bytes, B256, U256},
    providers::Provider,
};
use eyre::{ensure, Result};
use keel_bindings::ChannelVault;
use keel_core::{
    signing::{recover_key, verify_with_key, verifying_key},
    BalanceProof, Withdrawal,
};
use keel_e2e::{balance_data, succeeded, to_vault_abi, Channel, Devnet, Participant};
use serde_json::{json, Value};

/// The domain a wallet library discovers from the vault itself (EIP-5267 `eip712Domain()`), as
/// typed-data JSON; the tests sign under it, so it must be the domain keel-core signs under.
async fn discovered_domain(net: &Devnet, channel: &Channel) -> Result<Value> {
    let d = net
        .vault_for(channel, &net.alice)
        .eip712Domain()
        .call()
        .await?;
    // 0x0f: name, version, chainId and verifyingContract are used; salt and extensions are not.
    ensure!(d.fields.0 == [0x0f], "fields {:?}", d.fields);
    ensure!(
        d.salt == B256::ZERO && d.extensions.is_empty(),
        "unused fields set"
    );
    Ok(json!({
        "name": d.name,
        "version": d.version,
        "chainId": d.chainId.to::<u64>(),
        "verifyingContract": d.verifyingContract,
    }))
}

/// The typed-data document a dApp hands a wallet: `primaryType` with its fields, under the
/// domain the vault announces.
fn typed_data(domain: Value, primary: &str, fields: Value, message: Value) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" },
                { "name": "verifyingContract", "type": "address" },
            ],
            primary: fields,
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    })
}

#[tokio::test]
async fn vault_announces_the_domain_keel_core_signs_under() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(23, parse_ether("1")?).await?;
    let announced = discovered_domain(&net, &ch).await?;
    let ours = keel_core::domain(net.chain_id, ch.vault);
    ensure!(announced["name"] == ours.name.as_deref().unwrap_or_default());
    ensure!(announced["version"] == ours.version.as_deref().unwrap_or_default());
    ensure!(announced["chainId"] == net.chain_id);
    ensure!(announced["verifyingContract"] == json!(ch.vault));
    let separator = net
        .vault_for(&ch, &net.alice)
        .domainSeparator()
        .call()
        .await?;
    ensure!(
        separator == ours.separator(),
        "the vault hashes another domain"
    );
    Ok(())
}

fn balance_proof_json(domain: Value, p: &BalanceProof) -> Value {
    typed_data(
        domain,
        "BalanceProof",
        json!([
            { "name": "channelId", "type": "bytes32" },
            { "name": "nonce", "type": "uint64" },
            { "name": "transferredAmount", "type": "uint256" },
            { "name": "lockedAmount", "type": "uint256" },
            { "name": "locksRoot", "type": "bytes32" },
        ]),
        // Integers as decimal strings, as wallets receive them (JSON numbers lose precision
        // beyond 2^53).
        json!({
            "channelId": p.channelId,
            "nonce": p.nonce.to_string(),
            "transferredAmount": p.transferredAmount.to_string(),
            "lockedAmount": p.lockedAmount.to_string(),
            "locksRoot": p.locksRoot,
        }),
    )
}

fn withdrawal_json(domain: Value, w: &Withdrawal) -> Value {
    typed_data(
        domain,
        "Withdrawal",
        json!([
            { "name": "channelId", "type": "bytes32" },
            { "name": "participant", "type": "address" },
            { "name": "totalWithdrawn", "type": "uint256" },
            { "name": "expiry", "type": "uint64" },
            { "name": "target", "type": "address" },
            { "name": "targetSide", "type": "uint8" },
        ]),
        json!({
            "channelId": w.channelId,
            "participant": w.participant,
            "totalWithdrawn": w.totalWithdrawn.to_string(),
            "expiry": w.expiry.to_string(),
            "target": w.target,
            "targetSide": w.targetSide,
        }),
    )
}

/// Asks the node's wallet to sign `typed` as `who`.
async fn wallet_sign(who: &Participant, typed: &Value) -> Result<Bytes> {
    Ok(who
        .provider
        .raw_request("eth_signTypedData_v4".into(), (who.address(), typed))
        .await?)
}

/// The wallet's signature is the one keel-core makes with the same key. ECDSA signing here is
/// deterministic (RFC 6979), so equal bytes mean the wallet signed keel-core's digest; then it
/// verifies by address and by key.
fn check_against_keel_core(
    who: &Participant,
    wallet_sig: &Bytes,
    digest: &B256,
    local_sig: [u8; 65],
) -> Result<()> {
    ensure!(
        wallet_sig.as_ref() == local_sig.as_slice(),
        "wallet signed another digest than keel-core's: {wallet_sig} vs {}",
        Bytes::from(local_sig.to_vec())
    );
    keel_core::verify(digest, wallet_sig, who.address())?;
    verify_with_key(&verifying_key(&who.signer), digest, wallet_sig)?;
    Ok(())
}

#[tokio::test]
async fn domain_separator_matches_the_vaults() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(20, parse_ether("1")?).await?;
    let on_chain = net
        .vault_for(&ch, &net.alice)
        .domainSeparator()
        .call()
        .await?;
    assert_eq!(
        on_chain,
        keel_core::domain(net.chain_id, ch.vault).separator()
    );
    // A different vault has a different domain: signatures do not cross channels.
    assert_ne!(
        on_chain,
        keel_core::domain(net.chain_id, Address::repeat_byte(1)).separator()
    );
    Ok(())
}

#[tokio::test]
async fn wallet_signed_balance_proof_closes_the_channel() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(21, parse_ether("5")?).await?;
    net.top_up(&ch, &net.bob, parse_ether("5")?).await?;

    // Bob's wallet signs a payment of 2 ETH to alice.
    let proof = BalanceProof {
        channelId: ch.id,
        nonce: 3,
        transferredAmount: parse_ether("2")?,
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    let sig = wallet_sign(
        &net.bob,
        &balance_proof_json(discovered_domain(&net, &ch).await?, &proof),
    )
    .await?;
    let digest = keel_core::signing_hash(&proof, net.chain_id, ch.vault);
    let local = keel_core::sign_message(&net.bob.signer, &proof, net.chain_id, ch.vault)?;
    check_against_keel_core(&net.bob, &sig, &digest, local)?;
    // Alice learns bob's key from his first signature and checks later ones against it.
    assert_eq!(recover_key(&digest, &sig)?, verifying_key(&net.bob.signer));

    // Alice, the counterparty, closes with it; the contract attributes it to bob.
    let receipt = net
        .vault_for(&ch, &net.alice)
        .close(to_vault_abi(&ch.params), balance_data(&proof), sig)
        .send()
        .await?
        .get_receipt()
        .await?;
    let closed = succeeded(receipt, "close")?
        .decoded_log::<ChannelVault::Closed>()
        .ok_or_else(|| eyre::eyre!("no Closed event"))?;
    assert_eq!(closed.state.fromB.nonce, proof.nonce);
    assert_eq!(
        closed.state.fromB.transferredAmount,
        proof.transferredAmount
    );
    Ok(())
}

#[tokio::test]
async fn wallet_signed_withdrawal_is_paid_out() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(22, parse_ether("5")?).await?;
    let w = Withdrawal {
        channelId: ch.id,
        participant: net.alice.address(),
        totalWithdrawn: parse_ether("2")?,
        // u64::MAX does not fit a JSON number exactly: checks the wallet reads the string.
        expiry: u64::MAX,
        target: Address::ZERO,
        targetSide: 0,
    };
    let typed = withdrawal_json(discovered_domain(&net, &ch).await?, &w);
    let digest = keel_core::signing_hash(&w, net.chain_id, ch.vault);
    let sig_a = wallet_sign(&net.alice, &typed).await?;
    let sig_b = wallet_sign(&net.bob, &typed).await?;
    for (who, sig) in [(&net.alice, &sig_a), (&net.bob, &sig_b)] {
        let local = keel_core::sign_message(&who.signer, &w, net.chain_id, ch.vault)?;
        check_against_keel_core(who, sig, &digest, local)?;
    }

    let abi_w = ChannelVault::Withdrawal {
        participant: w.participant,
        totalWithdrawn: w.totalWithdrawn,
        expiry: w.expiry,
        target: w.target,
        targetSide: w.targetSide,
    };
    let a0 = net.alice.balance().await?;
    succeeded(
        net.vault_for(&ch, &net.bob)
            .withdraw(to_vault_abi(&ch.params), abi_w, sig_a, sig_b)
            .send()
            .await?
            .get_receipt()
            .await?,
        "withdraw",
    )?;
    assert_eq!(net.alice.balance().await?, a0 + parse_ether("2")?);
    Ok(())
}

/// A wallet signs the routing messages as keel-core does: the channel announcement (both
/// participants), a policy update with a nested array of exchange rates, and a payment request
/// under the deployment's domain; the routing graph then takes the wallet-signed announcement
/// of a real channel, its vault derived from the real deployment.
#[tokio::test]
async fn wallet_signed_routing_messages_enter_the_graph() -> Result<()> {
    use keel_core::{
        eip712::ChannelDomain,
        forwarding::{
            announce::deployment_domain, ChannelAnnouncement, ChannelUpdate, ExchangeRate,
            PaymentRequest,
        },
        signing::sign_hash,
    };
    use keel_routing::{Deployment, Gossip, SignedAnnouncement, SignedUpdate};

    let net = Devnet::start().await?;
    let ch = net.open_eth(24, parse_ether("1")?).await?;
    let domain = discovered_domain(&net, &ch).await?;
    let channel = ChannelDomain::new(net.chain_id, ch.vault);

    let announcement = ChannelAnnouncement {
        channelId: ch.id,
        participantA: ch.params.participant_a,
        participantB: ch.params.participant_b,
        token: ch.params.token,
        challengePeriod: ch.params.challenge_period,
        salt: ch.params.salt,
    };
    let typed = typed_data(
        domain.clone(),
        "ChannelAnnouncement",
        json!([
            { "name": "channelId", "type": "bytes32" },
            { "name": "participantA", "type": "address" },
            { "name": "participantB", "type": "address" },
            { "name": "token", "type": "address" },
            { "name": "challengePeriod", "type": "uint32" },
            { "name": "salt", "type": "bytes32" },
        ]),
        json!({
            "channelId": announcement.channelId,
            "participantA": announcement.participantA,
            "participantB": announcement.participantB,
            "token": announcement.token,
            "challengePeriod": announcement.challengePeriod,
            "salt": announcement.salt,
        }),
    );
    let digest = channel.signing_hash(&announcement);
    let mut signatures = [[0u8; 65]; 2];
    for (i, who) in [&net.alice, &net.bob].into_iter().enumerate() {
        let sig = wallet_sign(who, &typed).await?;
        check_against_keel_core(who, &sig, &digest, sign_hash(&who.signer, &digest)?)?;
        signatures[i].copy_from_slice(&sig);
    }

    let update = ChannelUpdate {
        channelId: ch.id,
        node: net.alice.address(),
        timestamp: 1_800_000_000,
        feeBase: U256::from(1_000),
        feeProportionalMillionths: 250,
        expiryDelta: 900,
        minAmount: U256::from(1),
        enabled: true,
        rates: vec![ExchangeRate {
            chainId: U256::from(10),
            token: Address::repeat_byte(0x70),
            upstream: U256::from(3),
            downstream: U256::from(2),
        }],
    };
    let mut typed = typed_data(
        domain,
        "ChannelUpdate",
        json!([
            { "name": "channelId", "type": "bytes32" },
            { "name": "node", "type": "address" },
            { "name": "timestamp", "type": "uint64" },
            { "name": "feeBase", "type": "uint256" },
            { "name": "feeProportionalMillionths", "type": "uint32" },
            { "name": "expiryDelta", "type": "uint64" },
            { "name": "minAmount", "type": "uint256" },
            { "name": "enabled", "type": "bool" },
            { "name": "rates", "type": "ExchangeRate[]" },
        ]),
        json!({
            "channelId": update.channelId,
            "node": update.node,
            "timestamp": update.timestamp.to_string(),
            "feeBase": update.feeBase.to_string(),
            "feeProportionalMillionths": update.feeProportionalMillionths,
            "expiryDelta": update.expiryDelta.to_string(),
            "minAmount": update.minAmount.to_string(),
            "enabled": update.enabled,
            "rates": [{
                "chainId": "10",
                "token": Address::repeat_byte(0x70),
                "upstream": "3",
                "downstream": "2",
            }],
        }),
    );
    typed["types"]["ExchangeRate"] = json!([
        { "name": "chainId", "type": "uint256" },
        { "name": "token", "type": "address" },
        { "name": "upstream", "type": "uint256" },
        { "name": "downstream", "type": "uint256" },
    ]);
    let update_digest = channel.signing_hash(&update);
    let update_sig = wallet_sign(&net.alice, &typed).await?;
    check_against_keel_core(
        &net.alice,
        &update_sig,
        &update_digest,
        sign_hash(&net.alice.signer, &update_digest)?,
    )?;

    let request = PaymentRequest {
        paymentHash: B256::repeat_byte(0x42),
        payee: net.bob.address(),
        chainId: U256::from(net.chain_id),
        token: Address::ZERO,
        amount: parse_ether("0.25")?,
        expiry: 1_800_003_600,
        minFinalLifetime: 1_200,
        description: "two coffees ☕".into(),
    };
    let deployment_json = json!({
        "name": "Keel",
        "version": deployment_domain(net.chain_id, net.factory).version.as_deref().unwrap_or_default(),
        "chainId": net.chain_id,
        "verifyingContract": net.factory,
    });
    let typed = typed_data(
        deployment_json,
        "PaymentRequest",
        json!([
            { "name": "paymentHash", "type": "bytes32" },
            { "name": "payee", "type": "address" },
            { "name": "chainId", "type": "uint256" },
            { "name": "token", "type": "address" },
            { "name": "amount", "type": "uint256" },
            { "name": "expiry", "type": "uint64" },
            { "name": "minFinalLifetime", "type": "uint64" },
            { "name": "description", "type": "string" },
        ]),
        json!({
            "paymentHash": request.paymentHash,
            "payee": request.payee,
            "chainId": request.chainId.to_string(),
            "token": request.token,
            "amount": request.amount.to_string(),
            "expiry": request.expiry.to_string(),
            "minFinalLifetime": request.minFinalLifetime.to_string(),
            "description": request.description,
        }),
    );
    let request_digest = request.signing_hash(net.factory)?;
    let request_sig = wallet_sign(&net.bob, &typed).await?;
    check_against_keel_core(
        &net.bob,
        &request_sig,
        &request_digest,
        sign_hash(&net.bob.signer, &request_digest)?,
    )?;
    let mut request_bytes = [0u8; 65];
    request_bytes.copy_from_slice(&request_sig);
    request.verify(net.factory, &request_bytes, 1_800_000_000)?;

    // The wallet-signed announcement of the real channel enters the graph; the vault the graph
    // derives from the deployment is the one on chain.
    let mut gossip = Gossip::new(16);
    let deployment = Deployment {
        chain_id: net.chain_id,
        factory: net.factory,
        implementation: net.implementation,
    };
    let capacity = net.alice.provider.get_balance(ch.vault).await?;
    ensure!(gossip.announce(
        &deployment,
        &SignedAnnouncement {
            announcement,
            signatures
        },
        capacity
    )?);
    let mut update_bytes = [0u8; 65];
    update_bytes.copy_from_slice(&update_sig);
    gossip.update(
        &SignedUpdate {
            update,
            signature: update_bytes,
        },
        1_800_000_000,
    )?;
    let held = gossip
        .graph()
        .policy(&ch.id, net.alice.address())
        .ok_or_else(|| eyre::eyre!("no policy held"))?;
    ensure!(held.fee.proportional_millionths == 250 && held.rates.len() == 1);
    Ok(())
}

/// The peer handshake's identity binding, as a wallet is asked to sign it: typed data written
/// out from docs/protocol.md (domain `{name: "Keel transport", version: "3"}`, no chain id or
/// contract), not from keel-core's constants.
fn peer_handshake_json(noise_key: B256, handshake_hash: B256) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
            ],
            "PeerHandshake": [
                { "name": "noiseKey", "type": "bytes32" },
                { "name": "handshakeHash", "type": "bytes32" },
            ],
        },
        "primaryType": "PeerHandshake",
        "domain": { "name": "Keel transport", "version": "3" },
        "message": { "noiseKey": noise_key, "handshakeHash": handshake_hash },
    })
}

/// A wallet (Anvil's `eth_signTypedData_v4` for a dev account) signs the handshake's binding of
/// a Noise key to its address exactly as the client does, and the client's check accepts it
/// as that address's; the same signature over another session's hash recovers someone else.
#[tokio::test]
async fn wallet_signs_the_peer_handshake_binding_the_client_makes_and_checks() -> Result<()> {
    use keel_client::transport::{identity_digest, identity_signer};

    let net = Devnet::start().await?;
    let noise_key = [0x25; 32];
    let handshake_hash = B256::repeat_byte(0x48);
    let who = &net.alice;
    let wallet_sig = wallet_sign(
        who,
        &peer_handshake_json(B256::from(noise_key), handshake_hash),
    )
    .await?;
    let digest = identity_digest(&noise_key, &handshake_hash);
    let local = keel_core::sign_hash(&who.signer, &digest)?;
    check_against_keel_core(who, &wallet_sig, &digest, local)?;
    ensure!(identity_signer(&noise_key, &handshake_hash, &wallet_sig)? == who.address());
    let replayed = identity_signer(&noise_key, &B256::repeat_byte(0x49), &wallet_sig)?;
    ensure!(
        replayed != who.address(),
        "a binding held for another session"
    );
    Ok(())
}
