//! Why the tower refused an appointment or a registration, and why its storage failed.

use keel_core::{Address, B256};

/// Result with the tower's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an appointment or a registration was refused. Each variant is the client's fault (a
/// 4xx answer with [`Refusal::code`] as its reason) except [`Refusal::ChainUnavailable`] and
/// [`Refusal::Store`]; nothing is stored in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The appointment names another chain than the tower's; holds the chain id given.
    #[error("this tower watches chain {expected}, not {found}")]
    ForeignChain {
        /// The tower's chain.
        expected: u64,
        /// The appointment's.
        found: u64,
    },
    /// The customer is neither participant of the channel.
    #[error("{0} is not a participant of the channel")]
    NotParticipant(Address),
    /// The customer has not registered with this tower.
    #[error("{0} is not a registered customer")]
    UnknownCustomer(Address),
    /// The customer already has its quota of channels watched.
    #[error("{customer} already has its quota of {quota} channels")]
    QuotaExceeded {
        /// The customer.
        customer: Address,
        /// Its quota.
        quota: u32,
    },
    /// A proof with nonce 0 is the empty proof, which a refutation never needs.
    #[error("a proof with nonce 0 needs no watching")]
    EmptyProof,
    /// An amount exceeds 2^128 - 1, which the vault refuses at submission.
    #[error("{0} exceeds what the vault accepts (2^128 - 1)")]
    AmountTooLarge(&'static str),
    /// The sender's signature over the balance proof does not verify under the channel's domain.
    #[error("the sender's balance proof signature is invalid: {0}")]
    BadSenderSignature(#[source] keel_core::Error),
    /// The customer's TowerAuthorisation over the proof does not verify.
    #[error("the customer's TowerAuthorisation is invalid: {0}")]
    BadAuthorisation(#[source] keel_core::Error),
    /// The registration signature does not verify for the customer's address.
    #[error("the registration signature is invalid: {0}")]
    BadRegistration(#[source] keel_core::Error),
    /// The channel's vault has not been opened on chain.
    #[error("channel {0} is not open on chain")]
    UnknownChannel(B256),
    /// The channel has settled: nothing is left to guard.
    #[error("channel {0} has settled")]
    ChannelSettled(B256),
    /// The tower already holds a proof at least as new for this channel and customer.
    #[error("stale proof: nonce {offered} is not above the stored {stored}")]
    StaleNonce {
        /// The nonce offered.
        offered: u64,
        /// The nonce held.
        stored: u64,
    },
    /// The appointment carries more locks (or secrets) than the tower holds per appointment.
    #[error("an appointment carries at most {max} locks and as many secrets, got {got}")]
    TooManyLocks {
        /// The limit.
        max: usize,
        /// The number sent.
        got: usize,
    },
    /// The locks sent are not the ones the proof commits to (their root, or their sum).
    #[error("the locks do not match the proof's {0}")]
    LocksMismatch(&'static str),
    /// A secret hashes to none of the appointment's locks (or no locks were sent).
    #[error("secret with hash {0} opens none of the appointment's locks")]
    SecretWithoutLock(B256),
    /// The same secret was sent twice.
    #[error("secret with hash {0} sent twice")]
    DuplicateSecret(B256),
    /// The appointment carries more lock releases than the tower holds per appointment.
    #[error("an appointment carries at most {max} lock releases, got {got}")]
    TooManyReleases {
        /// The limit.
        max: usize,
        /// The number sent.
        got: usize,
    },
    /// The same lock's release was sent twice.
    #[error("the lock with secret hash {0} is released twice")]
    DuplicateRelease(B256),
    /// A release is not the counterparty's `LockRelease` signature over its lock in this
    /// channel (signed by someone else, over another lock, or for another channel).
    #[error("the release of the lock with secret hash {secret_hash} is invalid: {source}")]
    BadRelease {
        /// The released lock's secret hash.
        secret_hash: B256,
        /// Why its signature does not verify.
        #[source]
        source: keel_core::Error,
    },
    /// A batch held more appointments than one request may.
    #[error("a batch holds at most {max} appointments, got {got}")]
    BatchTooLarge {
        /// The limit.
        max: usize,
        /// The number sent.
        got: usize,
    },
    /// The customer sent more appointments than its rate allows; nothing was checked further.
    #[error("{customer} is over its rate; retry in {retry_after_ms} ms")]
    CustomerRateLimited {
        /// The customer.
        customer: Address,
        /// When its allowance has refilled enough, in milliseconds.
        retry_after_ms: u64,
    },
    /// The chain could not be asked whether the channel exists; try again later.
    #[error("the chain is unavailable: {0}")]
    ChainUnavailable(String),
    /// The tower's storage failed; try again later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tower could not sign the receipt.
    #[error("signing the receipt: {0}")]
    Signing(String),
}

impl Refusal {
    /// The machine-readable reason the API answers with.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::ForeignChain { .. } => "foreign_chain",
            Self::NotParticipant(_) => "not_participant",
            Self::UnknownCustomer(_) => "unknown_customer",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::EmptyProof => "empty_proof",
            Self::AmountTooLarge(_) => "amount_too_large",
            Self::BadSenderSignature(_) => "bad_sender_signature",
            Self::BadAuthorisation(_) => "bad_authorisation",
            Self::BadRegistration(_) => "bad_registration",
            Self::UnknownChannel(_) => "unknown_channel",
            Self::ChannelSettled(_) => "channel_settled",
            Self::StaleNonce { .. } => "stale_nonce",
            Self::TooManyLocks { .. } => "too_many_locks",
            Self::LocksMismatch(_) => "locks_mismatch",
            Self::SecretWithoutLock(_) => "secret_without_lock",
            Self::DuplicateSecret(_) => "duplicate_secret",
            Self::TooManyReleases { .. } => "too_many_releases",
            Self::DuplicateRelease(_) => "duplicate_release",
            Self::BadRelease { .. } => "bad_release",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::CustomerRateLimited { .. } => "rate_limited_customer",
            Self::ChainUnavailable(_) => "chain_unavailable",
            Self::Store(_) => "storage_failed",
            Self::Signing(_) => "signing_failed",
        }
    }

    /// Whether the tower, not the request, is at fault (a 5xx answer).
    pub const fn is_server_side(&self) -> bool {
        matches!(
            self,
            Self::ChainUnavailable(_) | Self::Store(_) | Self::Signing(_)
        )
    }
}

/// The storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed or refused a statement.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode (a layout this build does not know, or corruption).
    #[error("stored data does not decode: {0}")]
    Corrupt(String),
    /// The transaction storing a batch failed (the reason, for each of its appointments);
    /// none of them was stored.
    #[error("storing the batch failed: {0}")]
    Batch(String),
}

/// A failure of the tower as a whole (starting it, its chain side, its storage).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain side failed.
    #[error(transparent)]
    Chain(#[from] keel_chain::ChainError),
    /// The HTTP listener failed.
    #[error("HTTP listener: {0}")]
    Io(#[from] std::io::Error),
}
