//! What the tower keeps: customers, the newest appointment per channel and customer, the dispute
//! state of closed channels, what the tower did about them, and the chain follower's checkpoint.
//!
//! [`Store`] is the interface the intake and the responder use; [`SqliteStore`] (one instance,
//! one file) and [`PostgresStore`] (several instances over one database) implement it, and
//! keel-chain's [`Checkpoints`], so the same follower as the
//! client's runs over the tower's storage. [`Database`] picks one from the operator's setting.

mod batch;
mod codec;
mod postgres;
mod sqlite;

use std::{future::Future, path::PathBuf};

use keel_chain::monitor::Checkpoints;
use keel_core::{Address, BalanceProof, ChannelParams, DisputeState, Lock, LockState, B256};

use crate::error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where the tower keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created if missing): one tower instance.
    Sqlite(PathBuf),
    /// A PostgreSQL server, by connection URL: one or several instances.
    Postgres(String),
}

impl Database {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL database; anything else is a
    /// SQLite file's path.
    pub fn parse(setting: &str) -> Self {
        if setting.starts_with("postgres://") || setting.starts_with("postgresql://") {
            Self::Postgres(setting.to_owned())
        } else {
            Self::Sqlite(setting.into())
        }
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

impl From<String> for Database {
    fn from(setting: String) -> Self {
        Self::parse(&setting)
    }
}

impl std::str::FromStr for Database {
    type Err = std::convert::Infallible;

    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(setting))
    }
}

/// A customer the tower serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    /// Its address, proven by its registration signature.
    pub address: Address,
    /// How many channels it may have watched at once.
    pub quota: u32,
    /// Unix time of its (latest) registration.
    pub registered_at: u64,
}

/// One accepted appointment: the newest proof `customer` received in a channel, with everything
/// a refutation needs, and the receipt the tower signed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    /// The channel.
    pub params: ChannelParams,
    /// Its id on the tower's chain.
    pub channel_id: B256,
    /// Its vault.
    pub vault: Address,
    /// The participant the tower guards: the proof's receiver.
    pub customer: Address,
    /// The proof the counterparty (the sender) signed.
    pub proof: BalanceProof,
    /// The sender's signature over `proof`.
    pub sender_signature: [u8; 65],
    /// The customer's `TowerAuthorisation` signature over `proof`.
    pub authorisation: [u8; 65],
    /// When the tower accepted it (unix s).
    pub accepted_at: u64,
    /// The receipt's `watchUntil` (unix s).
    pub watch_until: u64,
    /// The tower's signature over its `TowerReceipt`, or, if it came in a batch, over the
    /// batch's root (`TowerReceiptBatch`; the receipt's path to it went to the customer).
    pub receipt_signature: [u8; 65],
    /// The locks behind the proof's `locksRoot`, in order, if the customer sent them: the
    /// customer's pending incoming locks, which the tower unlocks after settlement.
    pub locks: Vec<Lock>,
    /// Secrets the customer knows for some of `locks`: registered once the channel is closed.
    pub secrets: Vec<B256>,
    /// Releases of the customer's outgoing locks, signed by the counterparty, oldest first:
    /// recorded in the vault once the channel is closed. Unlike `locks` and `secrets`, which
    /// belong to the proof, they outlive it: a newer appointment keeps those held
    /// ([`Appointment::keeping_releases_of`]).
    pub releases: Vec<Release>,
}

/// A lock the customer sent that its receiver (the counterparty) gave up: the receiver's
/// `LockRelease` signature over it, checked at intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The released lock.
    pub lock: Lock,
    /// The receiver's signature under the channel's domain.
    pub signature: [u8; 65],
}

impl Appointment {
    /// Whether this appointment may replace `stored`, the one held for the same channel and
    /// customer: a higher nonce does; the same nonce only if it is the same proof and adds to
    /// what is held without dropping any of it (the locks, where none were held, secrets the
    /// customer learnt after it sent the proof, or releases it was given since), so a customer
    /// re-sends its appointment to hand over a secret or a release. `Err` holds the stored
    /// nonce.
    pub fn replaces(&self, stored: &Self) -> Result<(), u64> {
        let held = stored.proof.nonce;
        if self.proof.nonce > held {
            return Ok(());
        }
        let adds = self.proof.nonce == held
            && self.proof == stored.proof
            && (stored.locks.is_empty() || stored.locks == self.locks)
            && stored.secrets.iter().all(|s| self.secrets.contains(s))
            && (self.locks.len() > stored.locks.len()
                || self.secrets.len() > stored.secrets.len()
                || self
                    .releases
                    .iter()
                    .any(|r| !stored.releases.iter().any(|s| s.lock == r.lock)));
        if adds {
            Ok(())
        } else {
            Err(held)
        }
    }

    /// This appointment, replacing `stored`, with the releases `stored` holds that it lacks: a
    /// release stays useful as long as the counterparty holds any proof of the customer's with
    /// the released lock, which a newer appointment cannot tell, so none is dropped while
    /// there is room. The held ones come first (oldest first), then this appointment's; past
    /// [`MAX_RELEASES`](keel_tower_api::MAX_RELEASES) the oldest held are dropped (a customer
    /// sends its newest releases, so the tower keeps what the customer last gave).
    #[must_use]
    pub fn keeping_releases_of(mut self, stored: &Self) -> Self {
        let mut releases: Vec<Release> = stored
            .releases
            .iter()
            .filter(|s| !self.releases.iter().any(|r| r.lock == s.lock))
            .copied()
            .collect();
        releases.append(&mut self.releases);
        let excess = releases.len().saturating_sub(keel_tower_api::MAX_RELEASES);
        releases.drain(..excess);
        self.releases = releases;
        self
    }

    /// The customer's side: the side whose outgoing locks [`releases`](Self::releases) free.
    pub fn customer_side(&self) -> Option<keel_core::Side> {
        self.params.side_of(self.customer)
    }

    /// The side whose locks these are (the sender of the proof): the customer's counterparty.
    pub fn sender_side(&self) -> Option<keel_core::Side> {
        self.params
            .side_of(self.customer)
            .map(keel_core::Side::other)
    }
}

/// The key under which one instance claims the lock work (registering secrets, settling,
/// unlocking) of a channel for a customer, beside its refutation's claim under the channel's id:
/// the two may run at once.
pub fn lock_claim_id(channel_id: B256) -> B256 {
    let mut bytes = [0u8; 37];
    bytes[..32].copy_from_slice(channel_id.as_slice());
    bytes[32..].copy_from_slice(b"locks");
    alloy::primitives::keccak256(bytes)
}

/// What the tower did in a dispute for one customer: its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The channel.
    pub channel_id: B256,
    /// The customer.
    pub customer: Address,
    /// The nonce of the proof submitted.
    pub nonce: u64,
    /// How it ended (so far).
    pub outcome: Outcome,
    /// The refutation's transaction, once one was sent.
    pub tx_hash: Option<B256>,
    /// Details for a human (the revert reason, the RPC error).
    pub detail: String,
    /// When this was recorded (unix s).
    pub updated_at: u64,
}

/// A transaction the tower sent for a customer's locks once their channel closed: the latest
/// of each [`LockStepKind`] (kept per channel, customer and kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStep {
    /// The channel.
    pub channel_id: B256,
    /// The customer.
    pub customer: Address,
    /// What the transaction did.
    pub kind: LockStepKind,
    /// The mined transaction.
    pub tx_hash: B256,
    /// Details for a human (how many secrets).
    pub detail: String,
    /// When this was recorded (unix s).
    pub updated_at: u64,
}

/// What a [`LockStep`]'s transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockStepKind {
    /// Recorded releases of the customer's outgoing locks in the vault (`releaseLocks`).
    Released,
    /// Registered secrets on the SecretRegistry.
    Registered,
    /// Settled the channel after its challenge period.
    Settled,
    /// Unlocked the customer's incoming locks.
    Unlocked,
}

impl LockStepKind {
    /// The stored name (also the API's and the metric's label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Released => "released",
            Self::Registered => "registered",
            Self::Settled => "settled",
            Self::Unlocked => "unlocked",
        }
    }

    /// From the stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "released" => Self::Released,
            "registered" => Self::Registered,
            "settled" => Self::Settled,
            "unlocked" => Self::Unlocked,
            _ => return None,
        })
    }
}

/// The outcome of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An attempt is under way (or was when the tower stopped): it is retried.
    Sending,
    /// The refutation was mined.
    Mined,
    /// The vault refused the refutation when simulated (a proof as new is already on record,
    /// or the state changed); nothing was sent.
    Rejected,
    /// The attempt failed (RPC outage, no receipt in time); it is retried until the deadline.
    Failed,
    /// The deadline passed before a refutation landed.
    Missed,
}

impl Outcome {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Mined => "mined",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Missed => "missed",
        }
    }

    /// From the stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "sending" => Self::Sending,
            "mined" => Self::Mined,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            "missed" => Self::Missed,
            _ => return None,
        })
    }
}

/// Why storing an appointment was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The customer is not registered.
    #[error("unknown customer")]
    UnknownCustomer,
    /// A proof with this or a higher nonce is stored; holds the stored nonce.
    #[error("stale nonce, {0} stored")]
    Stale(u64),
    /// The customer has its quota of channels; holds the quota.
    #[error("quota of {0} channels reached")]
    Quota(u32),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything the tower holds about one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelRecord {
    /// One appointment per customer (at most two: one per participant).
    pub appointments: Vec<Appointment>,
    /// The dispute state the vault last published, if the channel was closed unilaterally.
    pub dispute: Option<DisputeState>,
    /// What the tower did, per customer.
    pub responses: Vec<Response>,
    /// The lock state the vault last published (`LocksRetained`, `Unlocked`), once it settled
    /// with funds kept for pending locks.
    pub lock_state: Option<LockState>,
    /// What the tower sent for the customers' locks, by customer then step.
    pub lock_steps: Vec<LockStep>,
}

/// Sizes, for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Registered customers.
    pub customers: u64,
    /// Appointments held.
    pub appointments: u64,
    /// Distinct channels watched.
    pub channels: u64,
    /// Channels with a recorded dispute.
    pub disputes: u64,
    /// Size of the stored data, in bytes.
    pub bytes: u64,
}

/// The tower's storage. Every method is atomic: a failed call changes nothing.
pub trait Store: Checkpoints + Send + Sync + 'static {
    /// Registers `customer` with `quota` channels at `now` (again: the quota is updated).
    fn register(
        &self,
        customer: Address,
        quota: u32,
        now: u64,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// The registered customer `address`, if any.
    fn customer(
        &self,
        address: Address,
    ) -> impl Future<Output = Result<Option<Customer>, StoreError>> + Send;

    /// Stores `appointment`, replacing the same customer's older one for the channel; refuses a
    /// nonce no higher than the stored one (unless [`Appointment::replaces`] allows the same
    /// nonce: it only adds locks, secrets or releases), an unregistered customer, and a new channel beyond
    /// the customer's quota. The releases held are kept ([`Appointment::keeping_releases_of`]).
    /// A batch of one ([`put_many`](Self::put_many)).
    fn put(&self, appointment: &Appointment) -> impl Future<Output = Result<(), PutError>> + Send {
        async move {
            let mut answers = self.put_many(std::slice::from_ref(appointment)).await?;
            // `put_many` answers each appointment; a missing answer is the store's fault, not
            // a success.
            answers.pop().unwrap_or_else(|| {
                Err(PutError::Store(StoreError::Batch(
                    "no answer for the appointment".into(),
                )))
            })
        }
    }

    /// [`put`](Self::put) for each of `appointments` in one transaction (one commit, so one
    /// disk flush): each is refused or stored on its own, the answers in order. `Err` if the
    /// transaction failed, and then nothing was stored.
    fn put_many(
        &self,
        appointments: &[Appointment],
    ) -> impl Future<Output = Result<Vec<Result<(), PutError>>, StoreError>> + Send;

    /// Everything held about `channel_id`.
    fn channel(
        &self,
        channel_id: B256,
    ) -> impl Future<Output = Result<ChannelRecord, StoreError>> + Send;

    /// The vault and id of up to `limit` watched channels whose id comes after `after` (all
    /// of them from the first when `None`), in id order: a tower of millions of channels reads
    /// them page by page at start instead of into one list.
    fn watched(
        &self,
        after: Option<B256>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(B256, Address)>, StoreError>> + Send;

    /// Channels with a recorded dispute whose deadline is at or after `now`.
    fn open_disputes(&self, now: u64)
        -> impl Future<Output = Result<Vec<B256>, StoreError>> + Send;

    /// Records the dispute states the vaults published, each replacing its channel's previous
    /// one, in order and in one transaction: a block closing thousands of channels costs one
    /// commit, not one each, before the first refutation can start.
    fn record_disputes(
        &self,
        disputes: &[(B256, DisputeState)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the lock state the vault published for `channel_id`, replacing the previous.
    fn record_lock_state(
        &self,
        channel_id: B256,
        state: &LockState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Channels with locks, secrets or releases held and a recorded dispute or lock state:
    /// where the tower may still record releases, register secrets, settle or unlock (resumed
    /// at start).
    fn lock_work(&self) -> impl Future<Output = Result<Vec<B256>, StoreError>> + Send;

    /// Records what the tower did, replacing the previous record for the channel and customer.
    fn record_response(
        &self,
        response: &Response,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a transaction sent for a customer's locks, replacing the previous one of its
    /// kind for the channel and customer.
    fn record_lock_step(
        &self,
        step: &LockStep,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a settled channel: its appointments, dispute, lock state and steps, responses
    /// and claims. Returns how many appointments were removed.
    fn prune(&self, channel_id: B256) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How much is stored.
    fn counts(&self) -> impl Future<Output = Result<Counts, StoreError>> + Send;

    /// Claims the response for `customer` in `channel_id` for `holder` (one tower instance)
    /// until `now_ms + lease_ms` (unix ms): granted if nobody holds it, if the holder's lease
    /// ran out by `now_ms` (it died, or stalled), or if `holder` holds it already (a renewal).
    /// Atomic across instances: of several claiming at once, exactly one is granted. Returns
    /// whether `holder` holds the claim now.
    fn claim(
        &self,
        channel_id: B256,
        customer: Address,
        holder: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives up `holder`'s claim (if it holds it), so another instance need not wait for the
    /// lease to run out.
    fn release(
        &self,
        channel_id: B256,
        customer: Address,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
