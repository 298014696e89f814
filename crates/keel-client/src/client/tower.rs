//! The tower client: keeps each configured watchtower holding the newest proof we received in
//! every channel, so a stale close while we are offline is refuted for us.
//!
//! Receiving an update only marks its channel in a per-tower set ([`Towers::updated`]: a lock
//! and an insert, no I/O), so payments never wait for a tower. One task per tower takes the
//! whole set when woken, reads each channel's newest peer proof, signs a `TowerAuthorisation`
//! over it and sends them in batches: however many updates arrived meanwhile, a channel costs
//! one appointment, and the set is bounded by the number of channels, not of payments.
//!
//! An appointment carries the proof's locks (our pending incoming locks) and the secrets we
//! know for them, so a tower can register them and unlock for us if the channel closes while we
//! are away. Learning such a secret ([`Client::claim_lock`], an invoice paid) marks the channel
//! as an update does; the tower takes the same nonce again when it only adds secrets, so the
//! secret goes without waiting for a newer proof.
//!
//! It also carries the releases of our outgoing locks the peer signed (the newest
//! [`MAX_RELEASES`]), so a tower records them in the vault if the peer closes with an old proof
//! of ours still holding a released lock while we are away. A release received marks the
//! channel too, and the tower takes the same nonce again when it adds releases.
//!
//! At start the task checks the tower is the one configured (its `/v1/health` names the
//! expected address), registers us with a signed `TowerRegistration`, and queues every channel
//! whose newest peer proof is above the nonce of the receipt stored for it. Every receipt is
//! checked (the tower's address and signature under the channel's domain, us as the customer,
//! the channel, the nonce sent, a deadline not yet past) before it is stored; a tower that does
//! not answer, answers with an error or with a wrong receipt is retried with back-off, its
//! channels queued again, and reported: [`ClientEvent::TowerTrouble`] then
//! [`ClientEvent::TowerRecovered`], and [`Client::tower_health`].

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use keel_core::{Address, ChannelDomain, TowerAuthorisation, TowerRegistration, B256};
use keel_tower_api::{
    AppointmentRequest, BatchItem, BatchJson, BatchRequest, ErrorJson, HealthJson, LockJson,
    ReceiptJson, RegistrationJson, RegistrationRequest, ReleaseJson, MAX_LOCKS, MAX_RELEASES,
};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Notify;

use super::{Client, ClientEvent, Inner, Result};
use crate::store::{ChainStatus, SignedTowerReceipt};

/// A watchtower the client keeps informed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerConfig {
    /// The tower's API, e.g. `http://127.0.0.1:9740` (https works too).
    pub url: String,
    /// The tower's address: its health answer, and every receipt's signer, must be this.
    pub address: Address,
    /// Longest a request may take, from connecting until its answer is read.
    pub timeout: Duration,
    /// First wait before trying a failing tower again; doubles up to
    /// [`TowerConfig::max_retry_delay`].
    pub retry_delay: Duration,
    /// See [`TowerConfig::retry_delay`].
    pub max_retry_delay: Duration,
    /// Most appointments in one request (the tower refuses batches above its own limit, 512
    /// by default).
    pub batch: usize,
    /// Pause after a request carrying appointments before the next one: under a stream of
    /// payments each channel's newest proof goes about this often, so the tower client costs
    /// the payments little, and a proof reaches the tower at most this much later (challenge
    /// periods are hours). Zero: as soon as the previous request is answered.
    pub min_interval: Duration,
}

impl TowerConfig {
    /// Defaults for the tower at `url` whose key is `address`: 10 s per request, retries
    /// from 500 ms backing off to 30 s, 256 appointments a request, at most one request
    /// every 100 ms.
    pub fn new(url: impl Into<String>, address: Address) -> Self {
        Self {
            url: url.into(),
            address,
            timeout: Duration::from_secs(10),
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(30),
            batch: 256,
            min_interval: Duration::from_millis(100),
        }
    }
}

/// Largest answer read from a tower: a full batch of receipts is well under it.
pub const MAX_TOWER_RESPONSE: usize = 1 << 20;

/// How a tower is doing, as [`Client::tower_health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerHealth {
    /// The tower's address.
    pub tower: Address,
    /// Its API.
    pub url: String,
    /// Whether it registered us (in this run).
    pub registered: bool,
    /// False from a failed request until the next one succeeds.
    pub healthy: bool,
    /// The latest failure, while unhealthy.
    pub last_error: Option<String>,
    /// Requests that carried appointments.
    pub requests: u64,
    /// Appointments sent.
    pub appointments: u64,
    /// Receipts checked and stored.
    pub receipts: u64,
    /// Channels waiting to be sent.
    pub pending: usize,
}

/// What went wrong with a tower.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TowerError {
    /// No answer: connection refused, timed out, reset.
    #[error("no answer: {0}")]
    Unreachable(String),
    /// An error answer (HTTP status and the tower's typed reason).
    #[error("refused with {status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The tower's reason code (`unknown_customer`, `quota_exceeded`, …).
        code: String,
        /// Its description.
        message: String,
    },
    /// The answer was larger than [`MAX_TOWER_RESPONSE`].
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The answer was not what the API defines.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The tower at the URL has another key than the configured one.
    #[error("the tower is {found}, not the configured {expected}")]
    WrongTower {
        /// Configured.
        expected: Address,
        /// What it says it is.
        found: Address,
    },
    /// A receipt failed a check; nothing was stored.
    #[error("bad receipt for channel {channel_id}: {reason}")]
    BadReceipt {
        /// The channel it was for.
        channel_id: B256,
        /// Which check failed.
        reason: String,
    },
    /// Signing our registration or authorisation failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The store failed.
    #[error("storing a receipt failed: {0}")]
    Store(String),
    /// The HTTP client could not be built (its TLS roots).
    #[error("HTTP client: {0}")]
    Setup(String),
}

impl TowerError {
    /// Whether trying the same again later may succeed: no answer, a fault on the tower's
    /// side, a limit on our rate, or a channel the tower's chain node has not seen yet.
    /// A refusal of the appointment itself (a signature, the quota, a settled channel) is not:
    /// the channel is sent again with its next update.
    fn is_transient(&self) -> bool {
        match self {
            Self::Refused { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "unknown_channel"
                            | "unknown_customer"
                            | "chain_unavailable"
                            | "storage_failed"
                            | "signing_failed"
                            | "rate_limited"
                    )
            }
            _ => true,
        }
    }
}

/// One tower's shared state: the channels to send and its health.
#[derive(Debug)]
pub(crate) struct TowerLink {
    config: TowerConfig,
    /// Channels with a proof the tower may not hold yet.
    pending: Mutex<HashSet<B256>>,
    wake: Notify,
    health: Mutex<TowerHealth>,
}

impl TowerLink {
    fn mark(&self, channel_id: B256) {
        self.pending
            .lock()
            .expect("tower queue poisoned")
            .insert(channel_id);
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<B256> {
        std::mem::take(&mut *self.pending.lock().expect("tower queue poisoned"))
    }

    fn health(&self) -> TowerHealth {
        let mut h = self.health.lock().expect("tower health poisoned").clone();
        h.pending = self.pending.lock().expect("tower queue poisoned").len();
        h
    }

    fn update_health(&self, f: impl FnOnce(&mut TowerHealth)) {
        f(&mut self.health.lock().expect("tower health poisoned"));
    }
}

/// The configured towers.
#[derive(Debug, Default)]
pub(crate) struct Towers(Vec<Arc<TowerLink>>);

impl Towers {
    pub(crate) fn new(configs: &[TowerConfig]) -> Self {
        Self(
            configs
                .iter()
                .map(|config| {
                    Arc::new(TowerLink {
                        health: Mutex::new(TowerHealth {
                            tower: config.address,
                            url: config.url.clone(),
                            registered: false,
                            healthy: true,
                            last_error: None,
                            requests: 0,
                            appointments: 0,
                            receipts: 0,
                            pending: 0,
                        }),
                        config: config.clone(),
                        pending: Mutex::new(HashSet::new()),
                        wake: Notify::new(),
                    })
                })
                .collect(),
        )
    }

    /// We received (and queued for storage) a new proof in `channel_id`: every tower is to get
    /// it. Returns at once.
    pub(crate) fn updated(&self, channel_id: B256) {
        for link in &self.0 {
            link.mark(channel_id);
        }
    }
}

/// Starts one task per configured tower; each ends with the client.
pub(crate) fn start(inner: &Arc<Inner>) -> Result<()> {
    for link in &inner.towers.0 {
        let http = reqwest::Client::builder()
            .timeout(link.config.timeout)
            .connect_timeout(link.config.timeout)
            .build()
            .map_err(|e| TowerError::Setup(e.to_string()))?;
        tokio::spawn(run(Arc::downgrade(inner), Arc::clone(link), http));
    }
    Ok(())
}

impl Client {
    /// How each configured tower is doing, in [`Config::towers`](super::Config::towers) order.
    pub fn tower_health(&self) -> Vec<TowerHealth> {
        self.inner.towers.0.iter().map(|l| l.health()).collect()
    }

    /// The newest receipt `tower` signed for our appointment in `channel_id`: with the
    /// channel's EIP-712 domain, proof of what the tower promised.
    pub async fn tower_receipt(
        &self,
        tower: Address,
        channel_id: B256,
    ) -> Result<Option<SignedTowerReceipt>> {
        Ok(self.inner.store.tower_receipt(tower, channel_id).await?)
    }
}

/// An appointment sent, with what its receipt must match.
struct Sent {
    channel_id: B256,
    nonce: u64,
    /// How many secrets it carried.
    secrets: usize,
    /// How many releases we held for the channel when it was made (it carried the newest
    /// [`MAX_RELEASES`] of them).
    releases: usize,
    domain: ChannelDomain,
    chain_id: u64,
}

/// What a tower acknowledged holding for a channel: the proof's nonce, how many of its locks'
/// secrets and how many releases of our locks (0 when only a stored receipt says so: sent again
/// if we hold any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    nonce: u64,
    secrets: usize,
    releases: usize,
}

impl Held {
    /// Whether the tower holds all of an appointment with `nonce`, `secrets` secrets and
    /// `releases` releases (the tower keeps the releases of every appointment it took, and we
    /// never drop one, so a count says which).
    fn covers(self, nonce: u64, secrets: usize, releases: usize) -> bool {
        (self.nonce > nonce || (self.nonce == nonce && self.secrets >= secrets))
            && self.releases >= releases
    }

    /// What the tower holds once it took `sent` too.
    fn with(self, sent: &Sent) -> Self {
        if self.covers(sent.nonce, sent.secrets, 0) {
            Self {
                releases: self.releases.max(sent.releases),
                ..self
            }
        } else {
            Self {
                nonce: sent.nonce,
                secrets: sent.secrets,
                releases: self.releases.max(sent.releases),
            }
        }
    }
}

/// The task serving one tower: register, catch up, then send what is marked.
async fn run(inner: Weak<Inner>, link: Arc<TowerLink>, http: reqwest::Client) {
    let Some(mut stopping) = inner.upgrade().map(|i| i.stopping.subscribe()) else {
        return;
    };
    let mut session = Session {
        link: &link,
        http,
        chain_id: None,
        held: HashMap::new(),
        delay: link.config.retry_delay,
    };
    loop {
        if *stopping.borrow() {
            return;
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let outcome = session.step(&strong).await;
        drop(strong);
        let wait = match outcome {
            Ok(sent) => {
                session.delay = link.config.retry_delay;
                // Proofs arriving meanwhile gather into the next request.
                sent.then_some(link.config.min_interval)
            }
            Err(e) => {
                tracing::warn!(tower = %link.config.address, error = %e, "watchtower failing");
                if let Some(strong) = inner.upgrade() {
                    session.failed(&strong, &e);
                }
                // A refused appointment waits for the channel's next update; anything else,
                // and any failure to register, is tried again after the back-off.
                if !e.is_transient() && session.chain_id.is_some() {
                    None
                } else {
                    let wait = session.delay;
                    session.delay = (wait * 2).min(link.config.max_retry_delay);
                    Some(wait)
                }
            }
        };
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            () = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    // Wait for the next update.
                    None => link.wake.notified().await,
                }
            } => {}
        }
    }
}

/// What the task knows of its tower in this run.
struct Session<'a> {
    link: &'a TowerLink,
    http: reqwest::Client,
    /// The tower's chain, once it registered us.
    chain_id: Option<u64>,
    /// Per channel, what the tower acknowledged (a receipt, or `stale_nonce`).
    held: HashMap<B256, Held>,
    /// The next back-off.
    delay: Duration,
}

impl Session<'_> {
    /// Registers if not yet, then sends every marked channel; true if it sent any. On failure
    /// the channels not acknowledged are marked again.
    async fn step(&mut self, inner: &Arc<Inner>) -> Result<bool, TowerError> {
        if self.chain_id.is_none() {
            let chain_id = self.register(inner).await?;
            self.held = self.stored(inner).await?;
            self.chain_id = Some(chain_id);
            // Whatever arrived while we were away, or was never acknowledged.
            for channel in inner.channel_list() {
                if channel.chain_id == chain_id {
                    self.link
                        .pending
                        .lock()
                        .expect("tower queue poisoned")
                        .insert(channel.id);
                }
            }
            self.link.update_health(|h| h.registered = true);
            self.recovered(inner);
        }
        let marked = self.link.take();
        if marked.is_empty() {
            return Ok(false);
        }
        let appointments = self.appointments(inner, marked).await?;
        if appointments.is_empty() {
            return Ok(false);
        }
        let chunks = batches(&appointments, self.link.config.batch.max(1));
        let mut chunks = chunks.into_iter();
        let mut refused = None;
        while let Some(chunk) = chunks.next() {
            match self.send(inner, chunk).await {
                Ok(None) => {}
                Ok(Some(e)) => {
                    refused.get_or_insert(e);
                }
                Err(e) => {
                    // Nothing of this request or the ones after it is known to be held.
                    for (sent, _) in chunk.iter().chain(chunks.flatten()) {
                        self.link.mark(sent.channel_id);
                    }
                    return Err(e);
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => {
                self.recovered(inner);
                Ok(true)
            }
        }
    }

    /// Checks the tower is the configured one and registers us; returns its chain.
    async fn register(&self, inner: &Inner) -> Result<u64, TowerError> {
        let expected = self.link.config.address;
        let health: HealthJson = self.get("/v1/health").await?;
        if health.tower != expected {
            return Err(TowerError::WrongTower {
                expected,
                found: health.tower,
            });
        }
        let registration = TowerRegistration {
            customer: inner.address,
            tower: expected,
        };
        let signature = inner
            .sign(
                &ChannelDomain::new(health.chain_id, expected),
                &registration,
            )
            .map_err(|e| TowerError::Signing(e.to_string()))?;
        let request = RegistrationRequest {
            customer: inner.address,
            signature: signature.to_vec().into(),
        };
        let answer: RegistrationJson = self.post("/v1/customers", &request).await?;
        if answer.customer != inner.address {
            return Err(TowerError::Malformed(format!(
                "registered {} instead of us",
                answer.customer
            )));
        }
        tracing::info!(tower = %expected, quota = answer.quota, "registered with the watchtower");
        Ok(health.chain_id)
    }

    /// The nonces of the receipts stored for this tower's channels.
    async fn stored(&self, inner: &Inner) -> Result<HashMap<B256, Held>, TowerError> {
        let receipts = inner
            .store
            .tower_receipts(self.link.config.address)
            .await
            .map_err(|e| TowerError::Store(e.to_string()))?;
        Ok(receipts
            .into_iter()
            .map(|r| {
                let held = Held {
                    nonce: r.receipt.nonce,
                    secrets: 0,
                    releases: 0,
                };
                (r.receipt.channelId, held)
            })
            .collect())
    }

    /// The appointment for each marked channel whose newest peer proof, or a secret we know of
    /// its locks, the tower does not hold yet (channels on other chains, settled, or without a
    /// proof have none). It carries the proof's locks (our pending incoming locks; none if more
    /// than the tower takes), the secrets we know for them and the releases of our outgoing
    /// locks the peer signed (the newest [`MAX_RELEASES`]).
    async fn appointments(
        &self,
        inner: &Inner,
        marked: HashSet<B256>,
    ) -> Result<Vec<(Sent, AppointmentRequest)>, TowerError> {
        let chain_id = self.chain_id.expect("registered before sending");
        let mut out = Vec::with_capacity(marked.len());
        for channel_id in marked {
            let Ok(channel) = inner.channel(channel_id) else {
                continue;
            };
            if channel.chain_id != chain_id {
                continue;
            }
            let (proof, sender_signature, params, locks) = {
                let rt = channel.rt.lock().await;
                if matches!(rt.chain, ChainStatus::Settled { .. }) {
                    continue;
                }
                let Some((proof, signature)) = rt.state.latest_counterparty_proof() else {
                    continue;
                };
                let locks = rt.state.direction(rt.state.me().other()).locks.clone();
                (proof, signature, *rt.state.params(), locks)
            };
            let locks = if locks.len() <= MAX_LOCKS {
                locks
            } else {
                Vec::new()
            };
            let known = inner.forwarding.claim_secrets(channel_id);
            let secrets: Vec<B256> = locks
                .iter()
                .filter_map(|l| known.get(&l.secret_hash).copied())
                .collect();
            let mut releases = inner
                .store
                .outgoing_releases(channel_id)
                .await
                .map_err(|e| TowerError::Store(e.to_string()))?;
            // Counted before the cut below: the store only gains releases, so a new one past
            // the tower's limit still makes the appointment go again.
            let released = releases.len();
            // Oldest first: past the tower's limit, the oldest are left out.
            releases.drain(..released.saturating_sub(MAX_RELEASES));
            if self
                .held
                .get(&channel_id)
                .is_some_and(|h| h.covers(proof.nonce, secrets.len(), released))
            {
                continue;
            }
            let authorisation = inner
                .sign(
                    &channel.domain,
                    &TowerAuthorisation {
                        balanceProof: proof.clone(),
                    },
                )
                .map_err(|e| TowerError::Signing(e.to_string()))?;
            let sent = Sent {
                channel_id,
                nonce: proof.nonce,
                secrets: secrets.len(),
                releases: released,
                domain: channel.domain,
                chain_id,
            };
            let request = AppointmentRequest {
                chain_id,
                channel: params.into(),
                customer: inner.address,
                proof: (&proof).into(),
                sender_signature: sender_signature.to_vec().into(),
                authorisation: authorisation.to_vec().into(),
                locks: locks.iter().map(LockJson::from).collect(),
                secrets,
                releases: releases
                    .iter()
                    .map(|(release, signature)| ReleaseJson {
                        lock: LockJson {
                            expiration: release.expiration,
                            amount: release.amount,
                            secret_hash: release.secretHash,
                        },
                        signature: signature.to_vec().into(),
                    })
                    .collect(),
            };
            out.push((sent, request));
        }
        Ok(out)
    }

    /// Sends one batch; checks and stores each receipt. `Err` if the request failed as a whole;
    /// otherwise the first appointment's failure, if any, after the whole answer is handled
    /// and the channels worth another try marked again.
    async fn send(
        &mut self,
        inner: &Inner,
        chunk: &[(Sent, AppointmentRequest)],
    ) -> Result<Option<TowerError>, TowerError> {
        let request = BatchRequest {
            appointments: chunk.iter().map(|(_, a)| a.clone()).collect(),
        };
        self.link.update_health(|h| {
            h.requests += 1;
            h.appointments += chunk.len() as u64;
        });
        let answer: BatchJson = self.post("/v1/appointments/batch", &request).await?;
        if answer.results.len() != chunk.len() {
            return Err(TowerError::Malformed(format!(
                "{} results for {} appointments",
                answer.results.len(),
                chunk.len()
            )));
        }
        let mut first_error = None;
        for ((sent, _), item) in chunk.iter().zip(answer.results) {
            if let Err(e) = self.accept(inner, sent, item).await {
                if e.is_transient() {
                    self.link.mark(sent.channel_id);
                }
                first_error.get_or_insert(e);
            }
        }
        Ok(first_error)
    }

    /// One batch result: a receipt checked and stored, or the tower's refusal.
    async fn accept(
        &mut self,
        inner: &Inner,
        sent: &Sent,
        item: BatchItem,
    ) -> Result<(), TowerError> {
        let receipt = match item {
            BatchItem::Receipt(receipt) => receipt,
            // The tower holds this proof or a newer one already.
            BatchItem::Error(e) if e.error == "stale_nonce" => {
                self.acknowledged(sent);
                return Ok(());
            }
            BatchItem::Error(ErrorJson { error, message }) => {
                if error == "unknown_customer" {
                    // Its records lost us (a new database): register again.
                    self.chain_id = None;
                    self.link.update_health(|h| h.registered = false);
                }
                // The batch's status; the item's own is in its code.
                return Err(TowerError::Refused {
                    status: 200,
                    code: error,
                    message,
                });
            }
        };
        let signed = check_receipt(
            &receipt,
            sent,
            self.link.config.address,
            inner.address,
            inner.config.clock.now(),
        )?;
        inner
            .store
            .save_tower_receipt(&signed)
            .await
            .map_err(|e| TowerError::Store(e.to_string()))?;
        self.acknowledged(sent);
        self.link.update_health(|h| h.receipts += 1);
        Ok(())
    }

    fn acknowledged(&mut self, sent: &Sent) {
        let held = self.held.entry(sent.channel_id).or_default();
        *held = held.with(sent);
    }

    fn failed(&self, inner: &Inner, e: &TowerError) {
        let reason = e.to_string();
        self.link.update_health(|h| {
            h.healthy = false;
            h.last_error = Some(reason.clone());
        });
        inner.emit(ClientEvent::TowerTrouble {
            tower: self.link.config.address,
            reason,
        });
    }

    fn recovered(&self, inner: &Inner) {
        let mut was_unhealthy = false;
        self.link.update_health(|h| {
            was_unhealthy = !h.healthy;
            h.healthy = true;
            h.last_error = None;
        });
        if was_unhealthy {
            inner.emit(ClientEvent::TowerRecovered {
                tower: self.link.config.address,
            });
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, TowerError> {
        let url = format!("{}{path}", self.link.config.url.trim_end_matches('/'));
        answer(self.http.get(url).send().await).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, TowerError> {
        let url = format!("{}{path}", self.link.config.url.trim_end_matches('/'));
        let body = serde_json::to_vec(body).map_err(|e| TowerError::Malformed(e.to_string()))?;
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        answer(sent).await
    }
}

/// Largest request body the tower client sends: half the tower's default limit (1 MiB), which
/// a full batch of appointments carrying locks would exceed.
const MAX_REQUEST_BYTES: usize = 512 * 1024;

/// About how many bytes an appointment takes in JSON: 1.3 KB, and ~190 bytes a lock, ~70 a
/// secret and ~340 a release (generous, so the estimate stays above the real size).
fn json_size(a: &AppointmentRequest) -> usize {
    1_300 + 200 * a.locks.len() + 70 * a.secrets.len() + 350 * a.releases.len()
}

/// `appointments` split into requests of at most `max_items` and about [`MAX_REQUEST_BYTES`].
fn batches<T>(
    appointments: &[(T, AppointmentRequest)],
    max_items: usize,
) -> Vec<&[(T, AppointmentRequest)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, a)) in appointments.iter().enumerate() {
        let size = json_size(a);
        if i > start && (i - start == max_items || bytes + size > MAX_REQUEST_BYTES) {
            out.push(&appointments[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < appointments.len() {
        out.push(&appointments[start..]);
    }
    out
}

/// Reads an answer of at most [`MAX_TOWER_RESPONSE`] bytes: the JSON `T` on success, the
/// tower's typed reason otherwise.
async fn answer<T: DeserializeOwned>(
    sent: reqwest::Result<reqwest::Response>,
) -> Result<T, TowerError> {
    let unreachable = |e: reqwest::Error| TowerError::Unreachable(e.to_string());
    let mut response = sent.map_err(unreachable)?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_TOWER_RESPONSE as u64)
    {
        return Err(TowerError::TooLarge(MAX_TOWER_RESPONSE));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_TOWER_RESPONSE {
            return Err(TowerError::TooLarge(MAX_TOWER_RESPONSE));
        }
        body.extend_from_slice(&chunk);
    }
    let status = response.status();
    if !status.is_success() {
        let reason: ErrorJson = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorJson {
            error: "unreadable".into(),
            message: String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
        });
        return Err(TowerError::Refused {
            status: status.as_u16(),
            code: reason.error,
            message: reason.message,
        });
    }
    serde_json::from_slice(&body).map_err(|e| TowerError::Malformed(e.to_string()))
}

/// A receipt the tower signed for `sent`, if it promises what was asked: signed by `tower` (under
/// the channel's domain, or as a leaf of a batch whose root it signed), for us, this channel
/// and this nonce, watching until a time not yet past (`now`, unix seconds).
fn check_receipt(
    json: &ReceiptJson,
    sent: &Sent,
    tower: Address,
    customer: Address,
    now: u64,
) -> Result<SignedTowerReceipt, TowerError> {
    let bad = |reason: String| TowerError::BadReceipt {
        channel_id: sent.channel_id,
        reason,
    };
    let receipt = json.receipt();
    if receipt.tower != tower {
        return Err(bad(format!("names the tower {}", receipt.tower)));
    }
    if receipt.customer != customer {
        return Err(bad(format!("names the customer {}", receipt.customer)));
    }
    if receipt.channelId != sent.channel_id {
        return Err(bad(format!("names the channel {}", receipt.channelId)));
    }
    if receipt.nonce != sent.nonce {
        return Err(bad(format!("nonce {}, sent {}", receipt.nonce, sent.nonce)));
    }
    if receipt.watchUntil <= now || receipt.watchUntil < receipt.acceptedAt {
        return Err(bad(format!(
            "watches until {}, accepted at {}, now {now}",
            receipt.watchUntil, receipt.acceptedAt
        )));
    }
    let signature: [u8; 65] = json
        .signature
        .as_ref()
        .try_into()
        .map_err(|_| bad(format!("a {}-byte signature", json.signature.len())))?;
    match &json.batch_path {
        None => keel_core::verify(&sent.domain.signing_hash(&receipt), &signature, tower).map(drop),
        Some(path) => keel_core::receipts::verify_batched(
            &receipt,
            &sent.domain,
            sent.chain_id,
            path,
            &signature,
        )
        .map(drop),
    }
    .map_err(|e| bad(format!("signature: {e}")))?;
    Ok(SignedTowerReceipt {
        receipt,
        signature,
        batch_path: json.batch_path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use keel_core::TowerReceipt;

    fn fixture() -> (PrivateKeySigner, Sent, ReceiptJson) {
        let tower = PrivateKeySigner::random();
        let sent = Sent {
            channel_id: B256::repeat_byte(7),
            nonce: 9,
            secrets: 0,
            releases: 0,
            domain: ChannelDomain::new(31_337, Address::repeat_byte(0x5a)),
            chain_id: 31_337,
        };
        let receipt = TowerReceipt {
            tower: tower.address(),
            customer: Address::repeat_byte(0xb),
            channelId: sent.channel_id,
            nonce: 9,
            acceptedAt: 1_000,
            watchUntil: 2_000,
        };
        let signature = keel_core::sign_hash(&tower, &sent.domain.signing_hash(&receipt)).unwrap();
        let json = ReceiptJson {
            tower: receipt.tower,
            customer: receipt.customer,
            channel_id: receipt.channelId,
            nonce: receipt.nonce,
            accepted_at: receipt.acceptedAt,
            watch_until: receipt.watchUntil,
            signature: signature.to_vec().into(),
            batch_path: None,
        };
        (tower, sent, json)
    }

    #[test]
    fn requests_stay_under_the_item_and_size_limits() {
        let bare = AppointmentRequest {
            chain_id: 1,
            channel: keel_core::ChannelParams {
                participant_a: Address::ZERO,
                participant_b: Address::ZERO,
                token: Address::ZERO,
                challenge_period: 1,
                salt: B256::ZERO,
            }
            .into(),
            customer: Address::ZERO,
            proof: (&keel_core::BalanceProof {
                channelId: B256::ZERO,
                nonce: 1,
                transferredAmount: keel_core::U256::MAX,
                lockedAmount: keel_core::U256::MAX,
                locksRoot: B256::repeat_byte(1),
            })
                .into(),
            sender_signature: vec![0xff; 65].into(),
            authorisation: vec![0xff; 65].into(),
            locks: Vec::new(),
            secrets: Vec::new(),
            releases: Vec::new(),
        };
        let lock = LockJson {
            expiration: u64::MAX,
            amount: keel_core::U256::MAX,
            secret_hash: B256::repeat_byte(0xff),
        };
        let full = AppointmentRequest {
            locks: vec![lock; MAX_LOCKS],
            secrets: vec![B256::repeat_byte(0xff); MAX_LOCKS],
            releases: vec![
                ReleaseJson {
                    lock,
                    signature: vec![0xff; 65].into(),
                };
                MAX_RELEASES
            ],
            ..bare.clone()
        };
        // The estimate is above the real size, with or without locks and releases.
        for a in [&bare, &full] {
            assert!(serde_json::to_vec(a).unwrap().len() <= json_size(a));
        }
        let bare: Vec<((), AppointmentRequest)> = vec![((), bare); 600];
        let sizes: Vec<usize> = batches(&bare, 256).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let full: Vec<((), AppointmentRequest)> = vec![((), full); 100];
        let split = batches(&full, 256);
        assert_eq!(split.iter().map(|b| b.len()).sum::<usize>(), 100);
        for b in &split {
            let body = serde_json::to_vec(&b.iter().map(|(_, a)| a).collect::<Vec<_>>()).unwrap();
            assert!(body.len() <= MAX_REQUEST_BYTES, "{} bytes", body.len());
        }
    }

    #[test]
    fn a_tower_is_sent_an_appointment_again_for_a_new_release() {
        let (_, mut sent, _) = fixture();
        let held = Held::default().with(&sent);
        assert!(held.covers(9, 0, 0));
        // A release received since: the same proof goes again, with it.
        assert!(!held.covers(9, 0, 1));
        sent.releases = 1;
        let held = held.with(&sent);
        assert!(held.covers(9, 0, 1));
        // A newer proof acknowledged keeps the count: the tower keeps the releases it took.
        sent.nonce = 10;
        sent.releases = 0;
        let held = held.with(&sent);
        assert_eq!((held.nonce, held.releases), (10, 1));
        assert!(held.covers(10, 0, 1) && !held.covers(11, 0, 1));
    }

    #[test]
    fn a_receipt_is_taken_only_if_it_promises_what_was_sent() {
        let (tower, sent, good) = fixture();
        let customer = Address::repeat_byte(0xb);
        let check = |json: &ReceiptJson, signer: Address, now: u64| {
            check_receipt(json, &sent, signer, customer, now)
        };
        let signed = check(&good, tower.address(), 1_500).expect("a good receipt");
        assert_eq!(signed.receipt, good.receipt());

        let mut other_nonce = good.clone();
        other_nonce.nonce = 8;
        let mut other_channel = good.clone();
        other_channel.channel_id = B256::repeat_byte(8);
        let mut other_customer = good.clone();
        other_customer.customer = Address::repeat_byte(0xc);
        let mut short = good.clone();
        short.signature = good.signature[..64].to_vec().into();
        let mut forged = good.clone();
        forged.watch_until = 3_000; // not what the tower signed
        for (bad, now) in [
            (&other_nonce, 1_500),
            (&other_channel, 1_500),
            (&other_customer, 1_500),
            (&short, 1_500),
            (&forged, 1_500),
            (&good, 2_000), // the promise ended
        ] {
            assert!(
                matches!(
                    check(bad, tower.address(), now),
                    Err(TowerError::BadReceipt { .. })
                ),
                "{bad:?} at {now}"
            );
        }
        // Signed and named by a tower other than the configured one.
        assert!(matches!(
            check(&good, Address::repeat_byte(1), 1_500),
            Err(TowerError::BadReceipt { .. })
        ));
    }

    /// A receipt from the batch endpoint: the tower signed the root of a tree whose leaves are
    /// the receipts' digests. It is taken with its path, stored with it, and refused if the
    /// path, the receipt or the chain do not lead to the signed root.
    #[test]
    fn a_batched_receipt_is_taken_with_a_path_to_the_signed_root() {
        let (tower, sent, single) = fixture();
        let customer = Address::repeat_byte(0xb);
        let leaf = sent.domain.signing_hash(&single.receipt());
        let others = [B256::repeat_byte(1), B256::repeat_byte(2)];
        let (root, paths) = keel_core::receipts::tree(&[others[0], leaf, others[1]]).unwrap();
        let digest = ChannelDomain::new(sent.chain_id, tower.address())
            .signing_hash(&keel_core::receipts::batch(tower.address(), root));
        let batched = ReceiptJson {
            signature: keel_core::sign_hash(&tower, &digest)
                .unwrap()
                .to_vec()
                .into(),
            batch_path: Some(paths[1].clone()),
            ..single.clone()
        };
        let signed = check_receipt(&batched, &sent, tower.address(), customer, 1_500).unwrap();
        assert_eq!(signed.batch_path.as_deref(), Some(&paths[1][..]));

        let mut wrong_path = batched.clone();
        wrong_path.batch_path = Some(paths[0].clone());
        let mut no_path = batched.clone();
        no_path.batch_path = None;
        let mut single_with_path = single.clone();
        single_with_path.batch_path = Some(Vec::new());
        let mut too_long = batched.clone();
        too_long.batch_path = Some(vec![B256::ZERO; keel_core::receipts::MAX_PATH + 1]);
        let mut other_nonce = batched.clone();
        other_nonce.nonce = 8;
        for bad in [
            &wrong_path,
            &no_path,
            &single_with_path,
            &too_long,
            &other_nonce,
        ] {
            assert!(
                matches!(
                    check_receipt(bad, &sent, tower.address(), customer, 1_500),
                    Err(TowerError::BadReceipt { .. })
                ),
                "{bad:?}"
            );
        }
        let other_chain = Sent {
            chain_id: 1,
            domain: ChannelDomain::new(31_337, Address::repeat_byte(0x5a)),
            ..sent
        };
        assert!(check_receipt(&batched, &other_chain, tower.address(), customer, 1_500).is_err());
    }
}
