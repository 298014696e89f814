//! Intake: checks an appointment or a registration, stores it, and signs the receipt.
//!
//! A single appointment's receipt is signed on its own; a batch's receipts are signed together,
//! as one Merkle root ([`keel_core::receipts`]), each receipt answered with its path: one
//! signature instead of one per appointment, a fifth of what an appointment costs the tower.
//!
//! Every check runs before anything is written, and each refusal is a typed [`Refusal`]: the
//! appointment names the tower's chain, the customer is a participant, the proof is not empty
//! and its amounts are ones the vault accepts, the sender signed the proof and the customer
//! signed a `TowerAuthorisation` over it (both under the channel's EIP-712 domain, so for this
//! channel on this chain only), the customer is within its rate and registered (checked only
//! after its signature, so a stranger cannot spend its allowance or probe who is), the channel
//! is open or closed on chain (not unknown, not settled), and its nonce is above the one held
//! (checked again atomically as it is stored). Locks and secrets sent with the proof are
//! checked before any signature: at most [`MAX_LOCKS`], hashing to the proof's `locksRoot` and
//! summing to its `lockedAmount`, each secret opening one of them, none twice. The same nonce
//! as the one held is taken only to add secrets to the same proof and locks, or releases (see
//! [`Store::put`]).
//!
//! Releases of the customer's outgoing locks ([`Release`]) are checked the same way: at most
//! [`MAX_RELEASES`], none twice, each a 65-byte signature (before any signature is checked),
//! then, after the customer's authorisation, each the counterparty's `LockRelease` (keel-core's
//! EIP-712 type) over its lock under the channel's domain: a release the customer signed, over
//! another lock, or for another channel is refused ([`Refusal::BadRelease`]).

use std::{collections::HashMap, future::Future, sync::Arc};

use alloy::signers::local::PrivateKeySigner;
use keel_bindings::ChannelVault;
use keel_chain::Chain;
use keel_core::{
    receipts, signing, Address, BalanceProof, ChannelDomain, ChannelParams, Lock, LockRelease,
    TowerAuthorisation, TowerReceipt, TowerRegistration, B256, U256,
};

use crate::{
    api::{AppointmentRequest, ReceiptJson, RegistrationRequest},
    error::{Refusal, StoreError},
    keys::KeyCache,
    ratelimit::{Rate, RateLimiter},
    store::{Appointment, Customer, PutError, Release, Store},
};

/// What the chain says about a channel's vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultStatus {
    /// No vault at that address: the channel was never opened.
    Missing,
    /// Open.
    Open,
    /// Closed unilaterally: in its challenge period, or waiting to be settled.
    Closed,
    /// Settled.
    Settled,
}

/// Reads a vault's status (keel-chain's [`Chain`] on a real chain; a table in tests).
pub trait ChannelLookup: Send + Sync + 'static {
    /// The status of the vault at `vault`; `Err` with a description when the chain cannot be
    /// asked.
    fn status(&self, vault: Address) -> impl Future<Output = Result<VaultStatus, String>> + Send;
}

impl ChannelLookup for Chain {
    async fn status(&self, vault: Address) -> Result<VaultStatus, String> {
        match ChannelVault::new(vault, self.provider())
            .status()
            .call()
            .await
        {
            Ok(1) => Ok(VaultStatus::Open),
            Ok(2) => Ok(VaultStatus::Closed),
            Ok(3) => Ok(VaultStatus::Settled),
            Ok(other) => Err(format!("vault {vault} reports status {other}")),
            // No code at the address: the call returns no data.
            Err(alloy::contract::Error::ZeroData(..)) => Ok(VaultStatus::Missing),
            Err(e) => Err(keel_chain::report(&e)),
        }
    }
}

/// The tower's intake rules.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The chain the tower watches.
    pub chain_id: u64,
    /// Keel's factory on it.
    pub factory: Address,
    /// The vault implementation (with the factory, it fixes each channel's vault address).
    pub vault_implementation: Address,
    /// Channels a newly registered customer may have watched.
    pub quota: u32,
    /// How long, in seconds from acceptance, a receipt promises watching (`watchUntil`).
    pub watch_period: u64,
}

/// A receipt the tower signed, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The promise.
    pub receipt: TowerReceipt,
    /// The tower's signature: over the receipt under the channel's domain, or, with
    /// `batch_path`, over the root of its batch under the tower's domain.
    pub signature: [u8; 65],
    /// The receipt's path to its batch's root, if it was signed in a batch.
    pub batch_path: Option<Vec<B256>>,
}

/// A stored appointment, for the responder to start watching.
pub type OnAccepted = Arc<dyn Fn(Address, B256, VaultStatus) + Send + Sync>;

/// Checks and stores appointments and registrations.
pub struct Intake<S, L> {
    config: IntakeConfig,
    signer: PrivateKeySigner,
    store: Arc<S>,
    lookup: L,
    on_accepted: OnAccepted,
    per_customer: Option<RateLimiter<Address>>,
    keys: KeyCache,
}

impl<S, L> std::fmt::Debug for Intake<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("config", &self.config)
            .field("tower", &self.signer.address())
            .finish_non_exhaustive()
    }
}

/// Most locks (and secrets) one appointment may carry; a stored lock takes 72 bytes, a secret 32.
pub use keel_tower_api::MAX_LOCKS;

/// Most releases one appointment may carry (and the tower holds per channel and customer); a
/// stored release takes 137 bytes.
pub use keel_tower_api::MAX_RELEASES;

/// Amounts above this are refused by the vault at submission.
const MAX_AMOUNT: U256 = U256::from_limbs([u64::MAX, u64::MAX, 0, 0]);

impl<S: Store, L: ChannelLookup> Intake<S, L> {
    /// An intake for `config`'s chain, signing receipts with `signer` (the tower's key) and
    /// calling `on_accepted` after each stored appointment.
    pub fn new(
        config: IntakeConfig,
        signer: PrivateKeySigner,
        store: Arc<S>,
        lookup: L,
        on_accepted: OnAccepted,
    ) -> Self {
        Self {
            config,
            signer,
            store,
            lookup,
            on_accepted,
            per_customer: None,
            keys: KeyCache::default(),
        }
    }

    /// Limits each customer to `rate` appointments, counted once the customer's signature
    /// verified: a stranger cannot spend a customer's allowance.
    #[must_use]
    pub fn with_customer_rate(mut self, rate: Rate) -> Self {
        self.per_customer = Some(RateLimiter::new(rate));
        self
    }

    /// The tower's address.
    pub fn tower(&self) -> Address {
        self.signer.address()
    }

    /// The rules.
    pub const fn config(&self) -> &IntakeConfig {
        &self.config
    }

    /// Registers the customer whose `TowerRegistration` (for this tower, on its chain) signed.
    pub async fn register(&self, req: &RegistrationRequest, now: u64) -> Result<Customer, Refusal> {
        let registration = TowerRegistration {
            customer: req.customer,
            tower: self.tower(),
        };
        let digest =
            ChannelDomain::new(self.config.chain_id, self.tower()).signing_hash(&registration);
        signing::verify(&digest, &req.signature, req.customer).map_err(Refusal::BadRegistration)?;
        Ok(self
            .store
            .register(req.customer, self.config.quota, now)
            .await?)
    }

    /// Checks, stores and signs a receipt for one appointment, accepted at `now` (unix s).
    pub async fn submit(
        &self,
        req: &AppointmentRequest,
        now: u64,
    ) -> Result<SignedReceipt, Refusal> {
        let checked = check(&self.config, &self.signer, &self.keys, req, now)?;
        let checked = signed(checked, &self.signer)?;
        let (appointment, status) = self.admit(checked.appointment, None).await?;
        self.store
            .put(&appointment)
            .await
            .map_err(|e| put_refusal(e, req))?;
        (self.on_accepted)(appointment.vault, appointment.channel_id, status);
        Ok(checked.receipt)
    }

    /// [`submit`](Self::submit) for many appointments, each checked and stored on its own but
    /// faster: the signatures are checked on every core at once, the receipts of everything
    /// admitted are signed as one Merkle root, and everything is stored in one transaction
    /// ([`Store::put_many`]). Answers in request order.
    pub async fn submit_batch(
        &self,
        reqs: &[AppointmentRequest],
        now: u64,
    ) -> Vec<Result<SignedReceipt, Refusal>> {
        let mut checked = self.check_in_parallel(reqs, now).await;
        let mut admitted = Vec::with_capacity(reqs.len());
        // One registration lookup per customer, not per appointment.
        let mut registered = HashMap::new();
        for (slot, req) in checked.iter_mut().zip(reqs) {
            let Ok(c) = slot else { continue };
            match self
                .admit(c.appointment.clone(), Some(&mut registered))
                .await
            {
                Ok((appointment, status)) => admitted.push((appointment, status, req)),
                Err(refusal) => *slot = Err(refusal),
            }
        }
        self.sign_batch(&mut checked, &mut admitted);
        let appointments: Vec<Appointment> = admitted.iter().map(|(a, ..)| a.clone()).collect();
        let stored = match self.store.put_many(&appointments).await {
            Ok(stored) => stored,
            // Nothing was stored: every admitted appointment is refused for the same reason.
            Err(e) => {
                let message = e.to_string();
                appointments
                    .iter()
                    .map(|_| Err(PutError::Store(StoreError::Batch(message.clone()))))
                    .collect()
            }
        };
        let mut outcomes = stored.into_iter().zip(admitted);
        for slot in &mut checked {
            if slot.is_err() {
                continue;
            }
            let Some((result, (appointment, status, req))) = outcomes.next() else {
                break;
            };
            match result {
                Ok(()) => (self.on_accepted)(appointment.vault, appointment.channel_id, status),
                Err(e) => *slot = Err(put_refusal(e, req)),
            }
        }
        checked
            .into_iter()
            .map(|result| result.map(|c| c.receipt))
            .collect()
    }

    /// Signs the receipts of the appointments still standing in `checked` (those of `admitted`,
    /// in the same order) as one batch: the root of their digests' tree, each receipt given its
    /// path. If the signature cannot be made, they are all refused and nothing is stored.
    fn sign_batch(
        &self,
        checked: &mut [Result<Checked, Refusal>],
        admitted: &mut Vec<(Appointment, VaultStatus, &AppointmentRequest)>,
    ) {
        let digests: Vec<B256> = checked.iter().flatten().map(|c| c.digest).collect();
        let Some((root, paths)) = receipts::tree(&digests) else {
            return;
        };
        let tower = self.tower();
        let digest = ChannelDomain::new(self.config.chain_id, tower)
            .signing_hash(&receipts::batch(tower, root));
        match signing::sign_hash(&self.signer, &digest) {
            Ok(signature) => {
                let standing = checked.iter_mut().flatten();
                for ((c, path), (appointment, ..)) in standing.zip(paths).zip(admitted.iter_mut()) {
                    c.receipt.signature = signature;
                    c.receipt.batch_path = Some(path);
                    appointment.receipt_signature = signature;
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for slot in checked.iter_mut().filter(|slot| slot.is_ok()) {
                    *slot = Err(Refusal::Signing(reason.clone()));
                }
                admitted.clear();
            }
        }
    }

    /// The checks of [`check`] over `reqs`, split across the machine's cores.
    async fn check_in_parallel(
        &self,
        reqs: &[AppointmentRequest],
        now: u64,
    ) -> Vec<Result<Checked, Refusal>> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let per_task = reqs.len().div_ceil(cores).max(1);
        let tasks: Vec<_> = reqs
            .chunks(per_task)
            .map(|chunk| {
                let (config, tower, keys, chunk) = (
                    self.config.clone(),
                    self.tower(),
                    self.keys.clone(),
                    chunk.to_vec(),
                );
                tokio::task::spawn_blocking(move || check_all(&config, tower, &keys, &chunk, now))
            })
            .collect();
        let mut checked = Vec::with_capacity(reqs.len());
        for task in tasks {
            match task.await {
                Ok(results) => checked.extend(results),
                // A panic in a check is a bug; the panic is re-raised here rather than hidden.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        checked
    }

    /// The checks that need the tower's state: the customer's rate and registration (only after
    /// its signature verified, so a stranger can neither spend its allowance nor learn whether
    /// it is registered), then the channel on chain.
    /// `known` caches a batch's registration lookups.
    async fn admit(
        &self,
        appointment: Appointment,
        known: Option<&mut HashMap<Address, bool>>,
    ) -> Result<(Appointment, VaultStatus), Refusal> {
        let customer = appointment.customer;
        if let Some(limiter) = &self.per_customer {
            limiter
                .take(customer, 1)
                .map_err(|wait| Refusal::CustomerRateLimited {
                    customer,
                    retry_after_ms: u64::try_from(wait.as_millis().max(1)).unwrap_or(u64::MAX),
                })?;
        }
        let registered = match known.as_ref().and_then(|k| k.get(&customer)) {
            Some(registered) => *registered,
            None => {
                let registered = self.store.customer(customer).await?.is_some();
                if let Some(known) = known {
                    known.insert(customer, registered);
                }
                registered
            }
        };
        if !registered {
            return Err(Refusal::UnknownCustomer(customer));
        }
        let status = self
            .lookup
            .status(appointment.vault)
            .await
            .map_err(Refusal::ChainUnavailable)?;
        match status {
            VaultStatus::Missing => Err(Refusal::UnknownChannel(appointment.channel_id)),
            VaultStatus::Settled => Err(Refusal::ChannelSettled(appointment.channel_id)),
            VaultStatus::Open | VaultStatus::Closed => Ok((appointment, status)),
        }
    }
}

/// An appointment whose signatures verified, and the receipt the tower signed for it.
#[derive(Debug)]
struct Checked {
    appointment: Appointment,
    receipt: SignedReceipt,
    /// The receipt's EIP-712 digest under the channel's domain: what a single signature signs,
    /// and the receipt's leaf in a batch.
    digest: B256,
}

/// The checks that need nothing but the request: the chain, the customer a participant, the
/// proof not empty and its amounts ones the vault accepts, the sender's signature, then the
/// customer's, both under the channel's domain; then the receipt, not yet signed. CPU only.
fn check(
    c: &IntakeConfig,
    signer: &PrivateKeySigner,
    keys: &KeyCache,
    req: &AppointmentRequest,
    now: u64,
) -> Result<Checked, Refusal> {
    let p = prepare(c, req)?;
    keys.verify(&p.proof_digest, &req.sender_signature, p.sender)
        .map_err(Refusal::BadSenderSignature)?;
    keys.verify(&p.authorisation_digest, &req.authorisation, req.customer)
        .map_err(Refusal::BadAuthorisation)?;
    verify_releases(keys, &p)?;
    receipted(c, signer.address(), p, now)
}

/// `checked` with its receipt signed on its own.
fn signed(mut checked: Checked, signer: &PrivateKeySigner) -> Result<Checked, Refusal> {
    let signature =
        signing::sign_hash(signer, &checked.digest).map_err(|e| Refusal::Signing(e.to_string()))?;
    checked.receipt.signature = signature;
    checked.appointment.receipt_signature = signature;
    Ok(checked)
}

/// [`check`] for many requests, answered in order and each as on its own, but with the
/// signatures of each round checked together ([`KeyCache::verify_many`]): the senders' first,
/// then the customers' of the appointments whose sender's held.
fn check_all(
    c: &IntakeConfig,
    tower: Address,
    keys: &KeyCache,
    reqs: &[AppointmentRequest],
    now: u64,
) -> Vec<Result<Checked, Refusal>> {
    let mut prepared: Vec<Result<Prepared<'_>, Refusal>> =
        reqs.iter().map(|req| prepare(c, req)).collect();
    verify_round(keys, &mut prepared, Refusal::BadSenderSignature, |p| {
        (p.proof_digest, &p.req.sender_signature[..], p.sender)
    });
    verify_round(keys, &mut prepared, Refusal::BadAuthorisation, |p| {
        (
            p.authorisation_digest,
            &p.req.authorisation[..],
            p.req.customer,
        )
    });
    prepared
        .into_iter()
        .map(|p| {
            let p = p?;
            verify_releases(keys, &p)?;
            receipted(c, tower, p, now)
        })
        .collect()
}

/// Checks that the counterparty (the proof's sender) signed each release of `p`, all at once.
fn verify_releases(keys: &KeyCache, p: &Prepared<'_>) -> Result<(), Refusal> {
    if p.releases.is_empty() {
        return Ok(());
    }
    let checks: Vec<(B256, &[u8], Address)> = p
        .release_digests
        .iter()
        .zip(&p.releases)
        .map(|(digest, r)| (*digest, &r.signature[..], p.sender))
        .collect();
    for (verdict, r) in keys.verify_many(&checks).into_iter().zip(&p.releases) {
        verdict.map_err(|source| Refusal::BadRelease {
            secret_hash: r.lock.secret_hash,
            source,
        })?;
    }
    Ok(())
}

/// Checks one signature of each appointment still standing, all at once, and refuses with
/// `refuse` those whose signature does not verify.
fn verify_round<'a>(
    keys: &KeyCache,
    prepared: &mut [Result<Prepared<'a>, Refusal>],
    refuse: fn(keel_core::Error) -> Refusal,
    signature: impl Fn(&Prepared<'a>) -> (B256, &'a [u8], Address),
) {
    let checks: Vec<(B256, &[u8], Address)> = prepared.iter().flatten().map(signature).collect();
    let verdicts = keys.verify_many(&checks);
    for (slot, verdict) in prepared.iter_mut().filter(|p| p.is_ok()).zip(verdicts) {
        if let Err(e) = verdict {
            *slot = Err(refuse(e));
        }
    }
}

/// An appointment whose format checks passed, with the digests its two signatures must sign.
struct Prepared<'a> {
    req: &'a AppointmentRequest,
    params: ChannelParams,
    channel_id: B256,
    vault: Address,
    domain: ChannelDomain,
    proof: BalanceProof,
    sender: Address,
    proof_digest: B256,
    authorisation_digest: B256,
    locks: Vec<Lock>,
    secrets: Vec<B256>,
    releases: Vec<Release>,
    /// Each release's `LockRelease` digest under the channel's domain, in order.
    release_digests: Vec<B256>,
}

/// Everything but the signatures.
fn prepare<'a>(c: &IntakeConfig, req: &'a AppointmentRequest) -> Result<Prepared<'a>, Refusal> {
    if req.chain_id != c.chain_id {
        return Err(Refusal::ForeignChain {
            expected: c.chain_id,
            found: req.chain_id,
        });
    }
    let params: ChannelParams = req.channel.into();
    let customer_side = params
        .side_of(req.customer)
        .ok_or(Refusal::NotParticipant(req.customer))?;
    let sender = params.participant(customer_side.other());
    if req.proof.nonce == 0 {
        return Err(Refusal::EmptyProof);
    }
    if req.proof.transferred_amount > MAX_AMOUNT {
        return Err(Refusal::AmountTooLarge("transferredAmount"));
    }
    if req.proof.locked_amount > MAX_AMOUNT {
        return Err(Refusal::AmountTooLarge("lockedAmount"));
    }
    let (locks, secrets) = check_locks(req)?;
    let releases = check_releases(req)?;
    let channel_id = keel_core::channel_id(c.chain_id, c.factory, &params);
    let vault =
        keel_core::vault_address(c.factory, c.vault_implementation, channel_id, params.token);
    let domain = ChannelDomain::new(c.chain_id, vault);
    let proof = BalanceProof {
        channelId: channel_id,
        nonce: req.proof.nonce,
        transferredAmount: req.proof.transferred_amount,
        lockedAmount: req.proof.locked_amount,
        locksRoot: req.proof.locks_root,
    };
    let proof_digest = domain.signing_hash(&proof);
    let authorisation_digest = domain.signing_hash(&TowerAuthorisation {
        balanceProof: proof.clone(),
    });
    let release_digests = releases
        .iter()
        .map(|r| {
            domain.signing_hash(&LockRelease {
                channelId: channel_id,
                secretHash: r.lock.secret_hash,
                amount: r.lock.amount,
                expiration: r.lock.expiration,
            })
        })
        .collect();
    Ok(Prepared {
        req,
        params,
        channel_id,
        vault,
        domain,
        proof,
        sender,
        proof_digest,
        authorisation_digest,
        locks,
        secrets,
        releases,
        release_digests,
    })
}

/// The receipt for an appointment whose signatures verified, its signature still to be made.
fn receipted(
    c: &IntakeConfig,
    tower: Address,
    p: Prepared<'_>,
    now: u64,
) -> Result<Checked, Refusal> {
    let watch_until = now
        .checked_add(c.watch_period)
        .ok_or(Refusal::AmountTooLarge("watchUntil"))?;
    let receipt = TowerReceipt {
        tower,
        customer: p.req.customer,
        channelId: p.channel_id,
        nonce: p.proof.nonce,
        acceptedAt: now,
        watchUntil: watch_until,
    };
    let digest = p.domain.signing_hash(&receipt);
    // Filled in by `signed` or `Intake::sign_batch`, before anything is stored or answered.
    let receipt_signature = [0u8; 65];
    Ok(Checked {
        appointment: Appointment {
            params: p.params,
            channel_id: p.channel_id,
            vault: p.vault,
            customer: p.req.customer,
            proof: p.proof,
            sender_signature: fixed_signature(&p.req.sender_signature)?,
            authorisation: fixed_signature(&p.req.authorisation)?,
            accepted_at: now,
            watch_until,
            receipt_signature,
            locks: p.locks,
            secrets: p.secrets,
            releases: p.releases,
        },
        receipt: SignedReceipt {
            receipt,
            signature: receipt_signature,
            batch_path: None,
        },
        digest,
    })
}

/// The locks and secrets of `req`, if they are what its proof commits to: at most
/// [`MAX_LOCKS`] locks (none, or exactly those behind `locksRoot`, summing to `lockedAmount`),
/// and secrets that each open one of them, none twice.
fn check_locks(req: &AppointmentRequest) -> Result<(Vec<Lock>, Vec<B256>), Refusal> {
    let got = req.locks.len().max(req.secrets.len());
    if got > MAX_LOCKS {
        return Err(Refusal::TooManyLocks {
            max: MAX_LOCKS,
            got,
        });
    }
    let locks: Vec<Lock> = req.locks.iter().copied().map(Lock::from).collect();
    if !locks.is_empty() {
        if keel_core::locks_root(&locks) != req.proof.locks_root {
            return Err(Refusal::LocksMismatch("locksRoot"));
        }
        let total = locks
            .iter()
            .try_fold(U256::ZERO, |sum, l| sum.checked_add(l.amount));
        if total != Some(req.proof.locked_amount) {
            return Err(Refusal::LocksMismatch("lockedAmount"));
        }
    }
    let mut seen = Vec::with_capacity(req.secrets.len());
    for secret in &req.secrets {
        let hash = keel_core::secret_hash(*secret);
        if !locks.iter().any(|l| l.secret_hash == hash) {
            return Err(Refusal::SecretWithoutLock(hash));
        }
        if seen.contains(&hash) {
            return Err(Refusal::DuplicateSecret(hash));
        }
        seen.push(hash);
    }
    Ok((locks, req.secrets.clone()))
}

/// The releases of `req`, if their form is one the tower takes: at most [`MAX_RELEASES`], no
/// lock released twice, each signature 65 bytes. Their signatures are checked later
/// ([`verify_releases`]).
fn check_releases(req: &AppointmentRequest) -> Result<Vec<Release>, Refusal> {
    if req.releases.len() > MAX_RELEASES {
        return Err(Refusal::TooManyReleases {
            max: MAX_RELEASES,
            got: req.releases.len(),
        });
    }
    let mut releases: Vec<Release> = Vec::with_capacity(req.releases.len());
    for r in &req.releases {
        let lock = Lock::from(r.lock);
        if releases.iter().any(|held| held.lock == lock) {
            return Err(Refusal::DuplicateRelease(lock.secret_hash));
        }
        let signature: [u8; 65] =
            r.signature
                .as_ref()
                .try_into()
                .map_err(|_| Refusal::BadRelease {
                    secret_hash: lock.secret_hash,
                    source: keel_core::Error::SignatureLength(r.signature.len()),
                })?;
        releases.push(Release { lock, signature });
    }
    Ok(releases)
}

fn put_refusal(e: PutError, req: &AppointmentRequest) -> Refusal {
    match e {
        PutError::UnknownCustomer => Refusal::UnknownCustomer(req.customer),
        PutError::Stale(stored) => Refusal::StaleNonce {
            offered: req.proof.nonce,
            stored,
        },
        PutError::Quota(quota) => Refusal::QuotaExceeded {
            customer: req.customer,
            quota,
        },
        PutError::Store(e) => Refusal::Store(e),
    }
}

/// Signatures already verified are 65 bytes; this only converts.
fn fixed_signature(bytes: &[u8]) -> Result<[u8; 65], Refusal> {
    bytes
        .try_into()
        .map_err(|_| Refusal::BadSenderSignature(keel_core::Error::SignatureLength(bytes.len())))
}

impl From<&SignedReceipt> for ReceiptJson {
    fn from(r: &SignedReceipt) -> Self {
        Self {
            tower: r.receipt.tower,
            customer: r.receipt.customer,
            channel_id: r.receipt.channelId,
            nonce: r.receipt.nonce,
            accepted_at: r.receipt.acceptedAt,
            watch_until: r.receipt.watchUntil,
            signature: r.signature.to_vec().into(),
            batch_path: r.batch_path.clone(),
        }
    }
}
