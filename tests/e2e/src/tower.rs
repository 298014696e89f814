//! What a watchtower's customer sends it, for the tower tests and benches: a balance proof and
//! the appointment carrying it.

use alloy::primitives::{Bytes, B256, U256};
use eyre::Result;
use keel_core::{BalanceProof, TowerAuthorisation};
use keel_watchtower::api::{AppointmentRequest, ChannelJson, ProofJson};

use crate::{Channel, Devnet, Participant};

/// A proof in `ch` with no locks: `nonce`, `transferred` in total.
pub fn proof(ch: &Channel, nonce: u64, transferred: U256) -> BalanceProof {
    BalanceProof {
        channelId: ch.id,
        nonce,
        transferredAmount: transferred,
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    }
}

fn sig(bytes: [u8; 65]) -> Bytes {
    bytes.to_vec().into()
}

/// The appointment `customer` sends for `proof`, which `sender` signed.
pub fn appointment(
    net: &Devnet,
    ch: &Channel,
    sender: &Participant,
    customer: &Participant,
    proof: &BalanceProof,
) -> Result<AppointmentRequest> {
    let auth = TowerAuthorisation {
        balanceProof: proof.clone(),
    };
    Ok(AppointmentRequest {
        chain_id: net.chain_id,
        channel: ChannelJson {
            participant_a: ch.params.participant_a,
            participant_b: ch.params.participant_b,
            token: ch.params.token,
            challenge_period: ch.params.challenge_period,
            salt: ch.params.salt,
        },
        customer: customer.address(),
        proof: ProofJson {
            nonce: proof.nonce,
            transferred_amount: proof.transferredAmount,
            locked_amount: proof.lockedAmount,
            locks_root: proof.locksRoot,
        },
        sender_signature: sig(keel_core::sign_message(
            &sender.signer,
            proof,
            net.chain_id,
            ch.vault,
        )?),
        authorisation: sig(keel_core::sign_message(
            &customer.signer,
            &auth,
            net.chain_id,
            ch.vault,
        )?),
        locks: Vec::new(),
        secrets: Vec::new(),
        releases: Vec::new(),
    })
}
