#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// A library: output goes through return values, never to stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use alloy::primitives::Bytes;
use keel_core::{Address, BalanceProof, ChannelParams, Lock, TowerReceipt, B256, U256};
use serde::{Deserialize, Serialize};

/// Most locks one appointment may carry, and most secrets: twice keel-core's default
/// `max_pending_locks`, so a peer's wider policy fits, while a stored appointment stays small.
pub const MAX_LOCKS: usize = 64;

/// Most lock releases one appointment may carry, and a tower holds for one channel and
/// customer: a channel gathers releases over its life (one per failed payment whose lock its
/// receiver gave up), more than it has locks pending at once. A stored release takes 137 bytes;
/// each more recorded costs about 30,000 gas (docs/gas.md: `releaseLocks` of one lock 64,969, of
/// six 214,471), so one `releaseLocks` of this many stays under 4M gas.
pub const MAX_RELEASES: usize = 128;

/// A channel's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelJson {
    /// Side A.
    pub participant_a: Address,
    /// Side B.
    pub participant_b: Address,
    /// The asset; the zero address for ETH.
    pub token: Address,
    /// Seconds.
    pub challenge_period: u32,
    /// The salt.
    pub salt: B256,
}

impl From<ChannelJson> for ChannelParams {
    fn from(c: ChannelJson) -> Self {
        Self {
            participant_a: c.participant_a,
            participant_b: c.participant_b,
            token: c.token,
            challenge_period: c.challenge_period,
            salt: c.salt,
        }
    }
}

/// A balance proof's signed fields besides the channel id (computed from the channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofJson {
    /// Its nonce.
    pub nonce: u64,
    /// Cumulative transferred amount (a decimal or 0x-hex string).
    pub transferred_amount: U256,
    /// Pending locks' total.
    pub locked_amount: U256,
    /// Their root.
    pub locks_root: B256,
}

/// `POST /v1/appointments`: the newest proof `customer` received in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentRequest {
    /// The channel's chain.
    pub chain_id: u64,
    /// The channel.
    pub channel: ChannelJson,
    /// The participant to guard (the proof's receiver).
    pub customer: Address,
    /// The proof the counterparty signed.
    pub proof: ProofJson,
    /// The counterparty's signature over the proof (65 bytes, 0x-hex).
    pub sender_signature: Bytes,
    /// The customer's `TowerAuthorisation` signature over the proof.
    pub authorisation: Bytes,
    /// The pending locks behind the proof's `locksRoot`, in order (the customer's incoming
    /// locks): with them the tower can unlock on the customer's behalf. Empty: none given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<LockJson>,
    /// Secrets the customer knows for some of those locks: the tower registers them on chain
    /// once the channel is closed. Each must hash (sha256) to one of `locks`' secret hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<B256>,
    /// Releases of the customer's outgoing locks (those of the proofs the counterparty holds),
    /// each signed by the counterparty (the proof's sender), at most [`MAX_RELEASES`]: once the
    /// channel is closed the tower records them in the vault (`releaseLocks`), so a close with
    /// an old proof that still holds a released lock returns it to the customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseJson>,
}

/// A lock's receiver gave it up: its `LockRelease` signature (keel-core's EIP-712 type, under
/// the channel's domain) over the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseJson {
    /// The released lock.
    pub lock: LockJson,
    /// The receiver's `LockRelease` signature over it (65 bytes, 0x-hex).
    pub signature: Bytes,
}

/// One pending lock, as the locks root commits to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockJson {
    /// Unix seconds after which it can no longer be claimed.
    pub expiration: u64,
    /// The amount locked.
    pub amount: U256,
    /// `sha256(secret)`.
    pub secret_hash: B256,
}

impl From<LockJson> for Lock {
    fn from(l: LockJson) -> Self {
        Self {
            expiration: l.expiration,
            amount: l.amount,
            secret_hash: l.secret_hash,
        }
    }
}

impl From<&Lock> for LockJson {
    fn from(l: &Lock) -> Self {
        Self {
            expiration: l.expiration,
            amount: l.amount,
            secret_hash: l.secret_hash,
        }
    }
}

/// `POST /v1/appointments/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    /// Each is checked and stored on its own.
    pub appointments: Vec<AppointmentRequest>,
}

/// `POST /v1/customers`: a customer's signed `TowerRegistration` for this tower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The customer's address.
    pub customer: Address,
    /// Its signature over `TowerRegistration(customer, tower)` under the domain whose
    /// verifying contract is the tower's address.
    pub signature: Bytes,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationJson {
    /// The customer.
    pub customer: Address,
    /// Channels it may have watched.
    pub quota: u32,
}

/// A signed `TowerReceipt`, the answer to an accepted appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptJson {
    /// The tower's address.
    pub tower: Address,
    /// The customer.
    pub customer: Address,
    /// The channel.
    pub channel_id: B256,
    /// The proof's nonce.
    pub nonce: u64,
    /// Unix seconds.
    pub accepted_at: u64,
    /// Unix seconds.
    pub watch_until: u64,
    /// The tower's signature: without `batch_path`, over this receipt under the channel's
    /// domain; with it, over the `TowerReceiptBatch` whose root the path leads to from this
    /// receipt, under the tower's domain (`keel_core::receipts`).
    pub signature: Bytes,
    /// The receipt's Merkle path in its batch: the batch endpoint signs one root for all the
    /// receipts it gives. Absent for a receipt signed on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_path: Option<Vec<B256>>,
}

/// One batch item's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchItem {
    /// Accepted.
    Receipt(ReceiptJson),
    /// Refused.
    Error(ErrorJson),
}

/// The answer to a batch, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJson {
    /// One per appointment.
    pub results: Vec<BatchItem>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    /// Machine-readable reason.
    pub error: String,
    /// For humans.
    pub message: String,
}

/// What `GET /v1/channels/{id}` shows: what the tower holds and did, without amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelJsonView {
    /// The channel.
    pub channel_id: B256,
    /// One per customer.
    pub appointments: Vec<HeldJson>,
    /// The dispute on chain, if the channel was closed unilaterally.
    pub dispute: Option<DisputeJson>,
    /// What the tower did.
    pub responses: Vec<ResponseJson>,
    /// What it sent for the customers' locks once the channel closed (recorded their releases,
    /// registered their secrets, settled, unlocked): the latest transaction of each step, by customer.
    #[serde(default)]
    pub lock_steps: Vec<LockStepJson>,
}

/// One held appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldJson {
    /// The customer.
    pub customer: Address,
    /// The held proof's nonce.
    pub nonce: u64,
    /// How many of the proof's locks the tower holds.
    #[serde(default)]
    pub locks: usize,
    /// How many of their secrets it holds (to register once the channel closes).
    #[serde(default)]
    pub secrets: usize,
    /// How many releases of the customer's outgoing locks it holds (to record once the channel
    /// closes).
    #[serde(default)]
    pub releases: usize,
    /// Unix seconds.
    pub accepted_at: u64,
    /// Unix seconds.
    pub watch_until: u64,
}

/// The dispute the vault published last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeJson {
    /// The closer: the participant's address.
    pub closer: Address,
    /// Last second a refutation is accepted.
    pub deadline: u64,
    /// Nonce of A's proof on record.
    pub nonce_a: u64,
    /// Nonce of B's proof on record.
    pub nonce_b: u64,
}

/// A response of the tower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseJson {
    /// The customer.
    pub customer: Address,
    /// The nonce submitted.
    pub nonce: u64,
    /// `sending`, `mined`, `rejected`, `failed` or `missed`.
    pub outcome: String,
    /// The refutation's transaction.
    pub tx_hash: Option<B256>,
    /// Details.
    pub detail: String,
}

/// A transaction the tower sent for a customer's locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStepJson {
    /// The customer.
    pub customer: Address,
    /// `released` (its outgoing locks' releases, in the vault), `registered` (its secrets, on
    /// the SecretRegistry), `settled` (the channel) or `unlocked` (its incoming locks).
    pub step: String,
    /// The mined transaction (the latest of this step).
    pub tx_hash: B256,
    /// Details.
    pub detail: String,
    /// Unix seconds.
    pub at: u64,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthJson {
    /// `ok`, or `degraded` while the chain follower is failing.
    pub status: String,
    /// The tower's address.
    pub tower: Address,
    /// Its chain.
    pub chain_id: u64,
    /// The last block processed.
    pub checkpoint: Option<u64>,
    /// The latest head seen.
    pub head: Option<u64>,
    /// The follower's latest failure, while failing.
    pub last_error: Option<String>,
    /// Appointments held.
    pub appointments: u64,
    /// Channels watched.
    pub channels: u64,
    /// Registered customers.
    pub customers: u64,
}

impl From<ChannelParams> for ChannelJson {
    fn from(p: ChannelParams) -> Self {
        Self {
            participant_a: p.participant_a,
            participant_b: p.participant_b,
            token: p.token,
            challenge_period: p.challenge_period,
            salt: p.salt,
        }
    }
}

impl From<&BalanceProof> for ProofJson {
    fn from(p: &BalanceProof) -> Self {
        Self {
            nonce: p.nonce,
            transferred_amount: p.transferredAmount,
            locked_amount: p.lockedAmount,
            locks_root: p.locksRoot,
        }
    }
}

impl ReceiptJson {
    /// The signed message: what [`ReceiptJson::signature`] must be the tower's signature over,
    /// under the channel's EIP-712 domain.
    pub const fn receipt(&self) -> TowerReceipt {
        TowerReceipt {
            tower: self.tower,
            customer: self.customer,
            channelId: self.channel_id,
            nonce: self.nonce,
            acceptedAt: self.accepted_at,
            watchUntil: self.watch_until,
        }
    }
}
