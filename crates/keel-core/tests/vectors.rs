//! Cross-language test vectors.
//!
//! Computes channel id, vault address, lock root and every EIP-712 digest for fixed inputs
//! and compares them with `contracts/test/vectors/signed-messages.json`, which the Solidity
//! tests read too; so if both pass, Rust and the contracts agree byte for byte.
//! `KEEL_WRITE_VECTORS=1` rewrites the file instead (review the diff before committing it).
//!
//! The watchtower's messages (`TowerReceipt`, `TowerRegistration`) are checked by no contract, so
//! their vectors live beside this crate (`tests/data/tower-vectors.json`): digests under alloy's
//! own EIP-712 implementation and signatures by a fixed key (RFC 6979, so deterministic), for
//! a tower or wallet written in another language to check against.

use alloy::primitives::{address, keccak256, Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use keel_core::{
    channel_id, domain, locks_root, secret_hash, vault_address, BalanceProof, ChannelParams,
    CooperativeClose, Lock, LockRelease, TowerAuthorisation, TowerReceipt, TowerRegistration,
    Withdrawal,
};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const CHAIN_ID: u64 = 31337;
// Addresses Anvil gives its first deployments / accounts, so a forge test can reproduce
// them; nothing depends on that beyond readability.
const FACTORY: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
const IMPLEMENTATION: Address = address!("e7f1725E7734CE288F8367e1Bb143E90bb3F0512");
const TOKEN: Address = address!("9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0");
const PARTICIPANT_A: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const PARTICIPANT_B: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");

fn ether(milli: u64) -> U256 {
    U256::from(milli) * U256::from(10u64.pow(15))
}

/// The vectors, in file order. Numbers are decimal strings, bytes are 0x-hex.
fn compute() -> Map<String, Value> {
    let params = ChannelParams {
        participant_a: PARTICIPANT_A,
        participant_b: PARTICIPANT_B,
        token: TOKEN, // an ERC-20 channel, so the token feeds both the id and the vault
        challenge_period: 86_400,
        salt: keccak256("keel test vector salt"),
    };
    let id = channel_id(CHAIN_ID, FACTORY, &params);
    let vault = vault_address(FACTORY, IMPLEMENTATION, id, params.token);
    let dom = domain(CHAIN_ID, vault);

    let locks = [
        Lock {
            expiration: 1_767_225_600,
            amount: ether(1_500),
            secret_hash: secret_hash(B256::repeat_byte(0x11)),
        },
        Lock {
            expiration: 1_767_312_000,
            amount: ether(250),
            secret_hash: secret_hash(B256::repeat_byte(0x22)),
        },
    ];
    let proof = BalanceProof {
        channelId: id,
        nonce: 7,
        transferredAmount: ether(12_345),
        lockedAmount: locks[0].amount + locks[1].amount,
        locksRoot: locks_root(&locks),
    };
    let tower = TowerAuthorisation {
        balanceProof: proof.clone(),
    };
    let withdrawal = Withdrawal {
        channelId: id,
        participant: PARTICIPANT_A,
        totalWithdrawn: ether(2_000),
        expiry: 1_767_225_600,
        // A move into another vault, so the destination fields carry something.
        target: address!("a16E02E87b7454126E5E10d957A927A7F5B5d2be"),
        targetSide: 1,
    };
    let close = CooperativeClose {
        channelId: id,
        payoutA: ether(40_000),
        payoutB: ether(7_655),
        depositA: ether(30_000),
        depositB: ether(20_000),
        totalWithdrawn: ether(2_345),
        expiry: 1_767_229_200,
    };
    // The receiver's release of the first lock (the vault's `releaseLocks`).
    let release = LockRelease {
        channelId: id,
        secretHash: locks[0].secret_hash,
        amount: locks[0].amount,
        expiration: locks[0].expiration,
    };

    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_owned(), Value::String(v));
    };
    put("chainId", CHAIN_ID.to_string());
    put("factory", FACTORY.to_string());
    put("implementation", IMPLEMENTATION.to_string());
    put("participantA", params.participant_a.to_string());
    put("participantB", params.participant_b.to_string());
    put("token", params.token.to_string());
    put("challengePeriod", params.challenge_period.to_string());
    put("salt", params.salt.to_string());
    put("channelId", id.to_string());
    put("vault", vault.to_string());
    put("domainSeparator", dom.separator().to_string());
    put("nonce", proof.nonce.to_string());
    put("transferredAmount", proof.transferredAmount.to_string());
    put("lockedAmount", proof.lockedAmount.to_string());
    for (i, lock) in locks.iter().enumerate() {
        put(&format!("lock{i}Expiration"), lock.expiration.to_string());
        put(&format!("lock{i}Amount"), lock.amount.to_string());
        put(&format!("lock{i}SecretHash"), lock.secret_hash.to_string());
    }
    put("locksRoot", proof.locksRoot.to_string());
    put(
        "balanceProofDigest",
        proof.eip712_signing_hash(&dom).to_string(),
    );
    put(
        "towerAuthorisationDigest",
        tower.eip712_signing_hash(&dom).to_string(),
    );
    put("withdrawalParticipant", withdrawal.participant.to_string());
    put("totalWithdrawn", withdrawal.totalWithdrawn.to_string());
    put("withdrawalExpiry", withdrawal.expiry.to_string());
    put("withdrawalTarget", withdrawal.target.to_string());
    put("withdrawalTargetSide", withdrawal.targetSide.to_string());
    put(
        "withdrawalDigest",
        withdrawal.eip712_signing_hash(&dom).to_string(),
    );
    put("payoutA", close.payoutA.to_string());
    put("payoutB", close.payoutB.to_string());
    put("closeDepositA", close.depositA.to_string());
    put("closeDepositB", close.depositB.to_string());
    put("closeTotalWithdrawn", close.totalWithdrawn.to_string());
    put("closeExpiry", close.expiry.to_string());
    put(
        "cooperativeCloseDigest",
        close.eip712_signing_hash(&dom).to_string(),
    );
    put("lockReleaseSecretHash", release.secretHash.to_string());
    put("lockReleaseAmount", release.amount.to_string());
    put("lockReleaseExpiration", release.expiration.to_string());
    put(
        "lockReleaseStructHash",
        release.eip712_hash_struct().to_string(),
    );
    put(
        "lockReleaseDigest",
        release.eip712_signing_hash(&dom).to_string(),
    );
    m
}

/// The watchtower's messages for the channel of [`compute`]: a receipt under the channel's
/// domain, a registration under the tower's, each with its digest and the signature a fixed key
/// makes.
fn compute_tower() -> Map<String, Value> {
    let params = ChannelParams {
        participant_a: PARTICIPANT_A,
        participant_b: PARTICIPANT_B,
        token: TOKEN,
        challenge_period: 86_400,
        salt: keccak256("keel test vector salt"),
    };
    let id = channel_id(CHAIN_ID, FACTORY, &params);
    let vault = vault_address(FACTORY, IMPLEMENTATION, id, params.token);
    // Anvil's third account (the tower) and second (the customer, participant B).
    let tower_key = PrivateKeySigner::from_bytes(&alloy::primitives::b256!(
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
    ))
    .unwrap();
    let customer_key = PrivateKeySigner::from_bytes(&alloy::primitives::b256!(
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    ))
    .unwrap();
    assert_eq!(customer_key.address(), PARTICIPANT_B);
    let receipt = TowerReceipt {
        tower: tower_key.address(),
        customer: PARTICIPANT_B,
        channelId: id,
        nonce: 7,
        acceptedAt: 1_767_225_600,
        watchUntil: 1_769_817_600,
    };
    let registration = TowerRegistration {
        customer: PARTICIPANT_B,
        tower: tower_key.address(),
    };
    let tower_domain = domain(CHAIN_ID, tower_key.address());
    let hex = |bytes: [u8; 65]| alloy::primitives::hex::encode_prefixed(bytes);

    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_owned(), Value::String(v));
    };
    put("chainId", CHAIN_ID.to_string());
    put("channelId", id.to_string());
    put("vault", vault.to_string());
    put("tower", receipt.tower.to_string());
    put("customer", receipt.customer.to_string());
    put("receiptNonce", receipt.nonce.to_string());
    put("receiptAcceptedAt", receipt.acceptedAt.to_string());
    put("receiptWatchUntil", receipt.watchUntil.to_string());
    put(
        "towerReceiptDigest",
        receipt
            .eip712_signing_hash(&domain(CHAIN_ID, vault))
            .to_string(),
    );
    put(
        "towerReceiptSignature",
        hex(keel_core::sign_message(&tower_key, &receipt, CHAIN_ID, vault).unwrap()),
    );
    put("towerDomainSeparator", tower_domain.separator().to_string());
    // The receipt as the second of three in a batch: its path to the root, and the tower's
    // one signature over the root (`TowerReceiptBatch`, under the tower's domain).
    let leaf = receipt.eip712_signing_hash(&domain(CHAIN_ID, vault));
    let others = [keccak256("another receipt"), keccak256("a third receipt")];
    let (root, paths) = keel_core::receipts::tree(&[others[0], leaf, others[1]]).unwrap();
    let batch = keel_core::receipts::batch(tower_key.address(), root);
    put(
        "towerReceiptBatchPath",
        paths[1]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    put("towerReceiptsRoot", root.to_string());
    put(
        "towerReceiptBatchDigest",
        batch.eip712_signing_hash(&tower_domain).to_string(),
    );
    let batch_signature =
        keel_core::sign_message(&tower_key, &batch, CHAIN_ID, tower_key.address()).unwrap();
    // What a customer checks: the receipt, its path and the root's signature.
    keel_core::receipts::verify_batched(
        &receipt,
        &keel_core::ChannelDomain::new(CHAIN_ID, vault),
        CHAIN_ID,
        &paths[1],
        &batch_signature,
    )
    .unwrap();
    put("towerReceiptBatchSignature", hex(batch_signature));
    put(
        "towerRegistrationDigest",
        registration.eip712_signing_hash(&tower_domain).to_string(),
    );
    put(
        "towerRegistrationSignature",
        hex(
            keel_core::sign_message(&customer_key, &registration, CHAIN_ID, tower_key.address())
                .unwrap(),
        ),
    );
    m
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts/test/vectors/signed-messages.json")
}

#[test]
fn signed_message_vectors_match_committed_file() {
    check_or_write(compute(), &vectors_path());
}

#[test]
fn tower_message_vectors_match_committed_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tower-vectors.json");
    check_or_write(compute_tower(), &path);
}

/// Compares `computed` with the file at `path`, or writes it there under `KEEL_WRITE_VECTORS=1`.
fn check_or_write(computed: Map<String, Value>, path: &Path) {
    if std::env::var("KEEL_WRITE_VECTORS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = serde_json::to_string_pretty(&Value::Object(computed)).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
        return;
    }

    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with KEEL_WRITE_VECTORS=1 to create it",
            path.display()
        )
    });
    let committed: Map<String, Value> = serde_json::from_str(&text).expect("vectors file is JSON");

    // List every differing key rather than stopping at the first one.
    let mut diffs = Vec::new();
    for (key, want) in &computed {
        match committed.get(key) {
            Some(got) if got == want => {}
            got => diffs.push(format!("  {key}: file has {got:?}, Rust computes {want}")),
        }
    }
    for key in committed.keys().filter(|k| !computed.contains_key(*k)) {
        diffs.push(format!("  {key}: in file only"));
    }
    assert!(
        diffs.is_empty(),
        "{} differs from keel-core (KEEL_WRITE_VECTORS=1 regenerates it):\n{}",
        path.display(),
        diffs.join("\n")
    );
}
