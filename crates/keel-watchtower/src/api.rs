//! The HTTP JSON API (axum): register a customer, submit one appointment or a batch, query a
//! channel, health. Bad input gets a 4xx answer `{"error": <code>, "message": <text>}` with a
//! typed code ([`Refusal::code`] or one of the body's: `malformed_json`, `invalid_fields`,
//! `not_json`, `body_too_large`, `invalid_channel_id`); nothing is stored then. A source
//! address over its rate gets 429 `rate_limited_source` (each appointment of a batch counts, as
//! does every other request but health and metrics); a customer over its rate gets 429
//! `rate_limited_customer` from the intake.

use std::sync::Arc;

use alloy::primitives::Bytes;
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection},
        DefaultBodyLimit, FromRequest, Path, Request, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use keel_core::{Address, ChannelParams, B256, U256};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{
    error::{Refusal, StoreError},
    intake::{ChannelLookup, Intake},
    metrics::Metrics,
    ratelimit::{Rate, RateLimiter, Source, SourceLimit},
    store::Store,
};

/// Largest request body the API reads (a batch of [`Limits::max_batch`] appointments is about
/// 1.2 KB each).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Bounds on what one request may ask, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Most appointments in one batch.
    pub max_batch: usize,
    /// Requests and appointments per source address (`None`: unlimited, e.g. behind a proxy
    /// that limits, where every request comes from the proxy's address).
    pub per_source: Option<Rate>,
    /// Appointments per customer, counted once its signature verified (so nobody spends
    /// another's allowance); applied by the intake ([`Intake::with_customer_rate`]).
    pub per_customer: Option<Rate>,
}

/// The default rate per source address: two full batches at once, 500 appointments a second.
pub const DEFAULT_PER_SOURCE: Rate = Rate {
    per_second: 500,
    burst: 1_024,
};

/// The default rate per customer: a full quota's appointments at once, 100 a second after.
pub const DEFAULT_PER_CUSTOMER: Rate = Rate {
    per_second: 100,
    burst: 1_024,
};

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
            max_batch: 512,
            per_source: Some(DEFAULT_PER_SOURCE),
            per_customer: Some(DEFAULT_PER_CUSTOMER),
        }
    }
}

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
    /// The tower's signature under the channel's domain.
    pub signature: Bytes,
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
}

/// One held appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldJson {
    /// The customer.
    pub customer: Address,
    /// The held proof's nonce.
    pub nonce: u64,
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

/// The follower's health as the API reports it.
pub type HealthSource = Arc<dyn Fn() -> keel_chain::Health + Send + Sync>;

/// What the handlers share.
pub struct ApiState<S, L> {
    /// Checks and stores.
    pub intake: Intake<S, L>,
    /// Read for queries.
    pub store: Arc<S>,
    /// The chain follower's health.
    pub health: HealthSource,
    /// Request bounds.
    pub limits: Limits,
    /// Unix seconds now (a function, so tests can pin it).
    pub clock: fn() -> u64,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

/// The API's routes over `state`.
pub fn router<S: Store, L: ChannelLookup>(state: Arc<ApiState<S, L>>) -> Router {
    let max_body = state.limits.max_body;
    let per_source = SourceLimit(
        state
            .limits
            .per_source
            .map(|rate| Arc::new(RateLimiter::new(rate))),
    );
    Router::new()
        .route("/v1/health", get(health::<S, L>))
        .route("/v1/customers", post(register::<S, L>))
        .route("/v1/appointments", post(appointment::<S, L>))
        .route("/v1/appointments/batch", post(batch::<S, L>))
        .route("/v1/channels/{channel_id}", get(channel::<S, L>))
        .route("/metrics", get(metrics::<S, L>))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(Extension(per_source))
        .with_state(state)
}

/// An error answer: status and typed reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorJson,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorJson {
                error: code.into(),
                message: message.into(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match &r {
            Refusal::ChainUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            r if r.is_server_side() => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::StaleNonce { .. } => StatusCode::CONFLICT,
            Refusal::UnknownCustomer(_) | Refusal::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            Refusal::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::CustomerRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, r.code(), r.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_fields",
            JsonRejection::MissingJsonContentType(_) => "not_json",
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "unreadable_body",
        };
        Self::new(r.status(), code, r.body_text())
    }
}

/// `Json` whose rejections are [`ApiError`]s with a typed reason.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        Ok(Self(Json::<T>::from_request(req, state).await?.0))
    }
}

impl<S, L> ApiState<S, L> {
    /// Counts a refusal and passes it on.
    fn count(&self, refusal: Refusal) -> Refusal {
        self.metrics.refused(refusal.code());
        refusal
    }

    /// Charges `source` for `cost` appointments (or one request): 429 when over its rate.
    fn charge(&self, limit: &SourceLimit, source: Source, cost: usize) -> Result<(), ApiError> {
        limit.take(source, cost).map_err(|wait| {
            self.metrics.refused("rate_limited_source");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited_source",
                format!(
                    "too many requests from this address; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            )
        })
    }
}

async fn metrics<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
) -> Result<String, ApiError> {
    let counts = state.store.counts().await?;
    Ok(state.metrics.render(&counts))
}

async fn health<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
) -> Result<Json<HealthJson>, ApiError> {
    let h = (state.health)();
    let counts = state.store.counts().await?;
    Ok(Json(HealthJson {
        status: if h.is_healthy() { "ok" } else { "degraded" }.into(),
        tower: state.intake.tower(),
        chain_id: state.intake.config().chain_id,
        checkpoint: h.checkpoint.map(|c| c.block),
        head: h.head,
        last_error: (!h.is_healthy()).then_some(h.last_error).flatten(),
        appointments: counts.appointments,
        channels: counts.channels,
        customers: counts.customers,
    }))
}

async fn register<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
    source: Source,
    Extension(limit): Extension<SourceLimit>,
    ApiJson(req): ApiJson<RegistrationRequest>,
) -> Result<(StatusCode, Json<RegistrationJson>), ApiError> {
    state.charge(&limit, source, 1)?;
    let customer = state
        .intake
        .register(&req, (state.clock)())
        .await
        .map_err(|r| state.count(r))?;
    Ok((
        StatusCode::CREATED,
        Json(RegistrationJson {
            customer: customer.address,
            quota: customer.quota,
        }),
    ))
}

async fn appointment<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
    source: Source,
    Extension(limit): Extension<SourceLimit>,
    ApiJson(req): ApiJson<AppointmentRequest>,
) -> Result<Json<ReceiptJson>, ApiError> {
    state.charge(&limit, source, 1)?;
    let receipt = state
        .intake
        .submit(&req, (state.clock)())
        .await
        .map_err(|r| state.count(r))?;
    state.metrics.accepted();
    Ok(Json((&receipt).into()))
}

async fn batch<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
    source: Source,
    Extension(limit): Extension<SourceLimit>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchJson>, ApiError> {
    let max = state.limits.max_batch;
    if req.appointments.len() > max {
        return Err(state
            .count(Refusal::BatchTooLarge {
                max,
                got: req.appointments.len(),
            })
            .into());
    }
    state.charge(&limit, source, req.appointments.len())?;
    let now = (state.clock)();
    let results = state
        .intake
        .submit_batch(&req.appointments, now)
        .await
        .into_iter()
        .map(|result| match result {
            Ok(receipt) => {
                state.metrics.accepted();
                BatchItem::Receipt((&receipt).into())
            }
            Err(refusal) => BatchItem::Error(ApiError::from(state.count(refusal)).body),
        })
        .collect();
    Ok(Json(BatchJson { results }))
}

async fn channel<S: Store, L: ChannelLookup>(
    State(state): State<Arc<ApiState<S, L>>>,
    source: Source,
    Extension(limit): Extension<SourceLimit>,
    channel_id: Result<Path<B256>, PathRejection>,
) -> Result<Json<ChannelJsonView>, ApiError> {
    state.charge(&limit, source, 1)?;
    let Path(channel_id) = channel_id
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel_id", r.body_text()))?;
    let record = state.store.channel(channel_id).await?;
    let params = record.appointments.first().map(|a| a.params);
    let dispute = record.dispute.map(|d| DisputeJson {
        closer: params.map_or(Address::ZERO, |p| p.participant(d.closer)),
        deadline: d.deadline,
        nonce_a: d.from_a.nonce,
        nonce_b: d.from_b.nonce,
    });
    Ok(Json(ChannelJsonView {
        channel_id,
        appointments: record
            .appointments
            .iter()
            .map(|a| HeldJson {
                customer: a.customer,
                nonce: a.proof.nonce,
                accepted_at: a.accepted_at,
                watch_until: a.watch_until,
            })
            .collect(),
        dispute,
        responses: record
            .responses
            .iter()
            .map(|r| ResponseJson {
                customer: r.customer,
                nonce: r.nonce,
                outcome: r.outcome.as_str().into(),
                tx_hash: r.tx_hash,
                detail: r.detail.clone(),
            })
            .collect(),
    }))
}
