//! The HTTP JSON API (axum): register a customer, submit one appointment or a batch, query a
//! channel, health. Bad input gets a 4xx answer `{"error": <code>, "message": <text>}` with a
//! typed code ([`Refusal::code`] or one of the body's: `malformed_json`, `invalid_fields`,
//! `not_json`, `body_too_large`, `invalid_channel_id`); nothing is stored then. A source
//! address over its rate gets 429 `rate_limited_source` (each appointment of a batch counts, as
//! does every other request but health and metrics); a customer over its rate gets 429
//! `rate_limited_customer` from the intake.

use std::sync::Arc;

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
use keel_core::{Address, B256};
// The request and answer types are shared with the customers' side (keel-client's tower
// client), so they live in keel-tower-api; re-exported here, where they always were.
pub use keel_tower_api::{
    AppointmentRequest, BatchItem, BatchJson, BatchRequest, ChannelJson, ChannelJsonView,
    DisputeJson, ErrorJson, HealthJson, HeldJson, LockJson, LockStepJson, ProofJson, ReceiptJson,
    RegistrationJson, RegistrationRequest, ReleaseJson, ResponseJson,
};
use serde::de::DeserializeOwned;

use crate::{
    error::{Refusal, StoreError},
    intake::{ChannelLookup, Intake},
    metrics::Metrics,
    ratelimit::{Rate, RateLimiter, Source, SourceLimit},
    store::Store,
};

/// Largest request body the API reads (an appointment is about 1.2 KB, and ~190 bytes more per
/// lock and ~70 per secret it carries).
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
                locks: a.locks.len(),
                secrets: a.secrets.len(),
                releases: a.releases.len(),
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
        lock_steps: record
            .lock_steps
            .iter()
            .map(|s| LockStepJson {
                customer: s.customer,
                step: s.kind.as_str().into(),
                tx_hash: s.tx_hash,
                detail: s.detail.clone(),
                at: s.updated_at,
            })
            .collect(),
    }))
}
