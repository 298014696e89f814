//! The HTTP API in-process: typed 4xx reasons for bad bodies and refused appointments, nothing
//! stored for them; receipts, batches, channel queries and health for good ones; rate limits
//! per source address and per customer.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::{to_bytes, Body},
    extract::ConnectInfo,
    http::{header, Method, Request, StatusCode},
    Router,
};
use keel_core::{receipts, signing, ChannelDomain, B256};
use keel_watchtower::{
    api::{
        self, ApiState, BatchItem, BatchJson, ChannelJsonView, HealthJson, LockStepJson,
        ReceiptJson,
    },
    store::{LockStep, LockStepKind},
    Limits, Rate, Store,
};
use serde_json::Value;
use tower::ServiceExt;

use crate::fixture::{Fixture, CHAIN_ID, NOW};

const MAX_BODY: usize = 8 * 1024;

fn router(f: &Fixture) -> Router {
    router_with(f, None, None)
}

fn router_with(f: &Fixture, per_source: Option<Rate>, per_customer: Option<Rate>) -> Router {
    let mut intake = f.another_intake();
    if let Some(rate) = per_customer {
        intake = intake.with_customer_rate(rate);
    }
    api::router(Arc::new(ApiState {
        intake,
        store: f.store.clone(),
        health: Arc::new(keel_chain::Health::default),
        limits: Limits {
            max_body: MAX_BODY,
            max_batch: 3,
            per_source,
            per_customer,
        },
        clock: || NOW,
        metrics: Arc::default(),
    }))
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    call_from(router, None, method, uri, body).await
}

/// A request from `source` (as `axum::serve` records the peer), or from nowhere known.
async fn call_from(
    router: &Router,
    source: Option<[u8; 4]>,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(ip) = source {
        request = request.extension(ConnectInfo(SocketAddr::from((ip, 40_000))));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post_from(
    router: &Router,
    source: [u8; 4],
    uri: &str,
    body: &impl serde::Serialize,
) -> (StatusCode, Value) {
    let body = Some(serde_json::to_vec(body).unwrap());
    call_from(router, Some(source), Method::POST, uri, body).await
}

async fn post(router: &Router, uri: &str, body: &impl serde::Serialize) -> (StatusCode, Value) {
    call(
        router,
        Method::POST,
        uri,
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

fn reason(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn stored(f: &Fixture) -> usize {
    f.store
        .channel(f.channel_id)
        .await
        .unwrap()
        .appointments
        .len()
}

#[tokio::test]
async fn bad_bodies_get_typed_reasons_and_store_nothing() {
    let f = Fixture::new(10).await;
    let r = router(&f);
    let (status, body) = post(&r, "/v1/customers", &f.registration(&f.bob)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let good = serde_json::to_vec(&f.appointment(2)).unwrap();
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let (status, body) = call(&r, Method::POST, "/v1/appointments", Some(truncated)).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );

    let mut missing: Value = serde_json::from_slice(&good).unwrap();
    missing.as_object_mut().unwrap().remove("authorisation");
    let (status, body) = post(&r, "/v1/appointments", &missing).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields")
    );
    let mut unknown: Value = serde_json::from_slice(&good).unwrap();
    unknown["extra"] = Value::from(1);
    let (status, body) = post(&r, "/v1/appointments", &unknown).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields")
    );

    let mut padded: Value = serde_json::from_slice(&good).unwrap();
    padded["customer"] = Value::from("x".repeat(MAX_BODY));
    let (status, body) = post(&r, "/v1/appointments", &padded).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/appointments")
        .body(Body::from(good.clone()))
        .unwrap();
    let response = r.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let mut forged = f.appointment(2);
    forged.proof.nonce = 3; // Alice signed nonce 2.
    let (status, body) = post(&r, "/v1/appointments", &forged).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "bad_sender_signature")
    );
    let mut stranger = f.appointment(2);
    stranger.customer = keel_core::Address::repeat_byte(0x55);
    let (status, body) = post(&r, "/v1/appointments", &stranger).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "not_participant")
    );
    assert_eq!(stored(&f).await, 0);

    let (status, body) = post(&r, "/v1/appointments", &f.appointment(2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let receipt: ReceiptJson = serde_json::from_value(body).unwrap();
    assert_eq!((receipt.nonce, receipt.channel_id), (2, f.channel_id));
    let (status, body) = post(&r, "/v1/appointments", &f.appointment(2)).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::CONFLICT, "stale_nonce")
    );

    let (status, body) = call(
        &r,
        Method::GET,
        &format!("/v1/channels/{}", f.channel_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let view: ChannelJsonView = serde_json::from_value(body).unwrap();
    assert_eq!(view.appointments.len(), 1);
    let (status, body) = call(&r, Method::GET, "/v1/channels/0x1234", None).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "invalid_channel_id")
    );
    assert_eq!(view.appointments[0].nonce, 2);
    assert_eq!(view.dispute, None);
    assert!(view.lock_steps.is_empty());

    // What the tower sent for the customer's locks is shown too.
    let customer = view.appointments[0].customer;
    f.store
        .record_lock_step(&LockStep {
            channel_id: f.channel_id,
            customer,
            kind: LockStepKind::Settled,
            tx_hash: B256::repeat_byte(7),
            detail: String::new(),
            updated_at: NOW,
        })
        .await
        .unwrap();
    let (_, body) = call(
        &r,
        Method::GET,
        &format!("/v1/channels/{}", f.channel_id),
        None,
    )
    .await;
    assert_eq!(body["lockSteps"][0]["step"], "settled");
    let view: ChannelJsonView = serde_json::from_value(body).unwrap();
    assert_eq!(
        view.lock_steps,
        vec![LockStepJson {
            customer,
            step: "settled".into(),
            tx_hash: B256::repeat_byte(7),
            detail: String::new(),
            at: NOW,
        }]
    );
}

#[tokio::test]
async fn a_batch_answers_each_item_and_is_bounded() {
    let f = Fixture::new(10).await;
    let r = router(&f);
    post(&r, "/v1/customers", &f.registration(&f.bob)).await;
    let mut bad = f.appointment(9);
    bad.authorisation = bad.sender_signature.clone();
    let batch = serde_json::json!({
        "appointments": [f.appointment(4), bad, f.appointment(3)]
    });
    let (status, body) = post(&r, "/v1/appointments/batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results: BatchJson = serde_json::from_value(body).unwrap();
    assert!(matches!(&results.results[0], BatchItem::Receipt(r) if r.nonce == 4));
    assert!(matches!(&results.results[1], BatchItem::Error(e) if e.error == "bad_authorisation"));
    assert!(matches!(&results.results[2], BatchItem::Error(e) if e.error == "stale_nonce"));
    let stored = f.store.channel(f.channel_id).await.unwrap().appointments[0].clone();
    assert_eq!(stored.proof.nonce, 4);
    // The batch's receipts share one signature over their tree's root (the stale item was a
    // leaf too: it is refused only as it is stored); the receipt proves itself with its path,
    // and is no signature over the receipt alone.
    let BatchItem::Receipt(receipt) = &results.results[0] else {
        unreachable!("matched above")
    };
    let path = receipt
        .batch_path
        .as_ref()
        .expect("a batch receipt has a path");
    assert_eq!(path.len(), 1);
    let domain = ChannelDomain::new(CHAIN_ID, f.vault);
    receipts::verify_batched(
        &receipt.receipt(),
        &domain,
        CHAIN_ID,
        path,
        &receipt.signature,
    )
    .unwrap();
    assert!(signing::verify(
        &domain.signing_hash(&receipt.receipt()),
        &receipt.signature,
        f.tower.address()
    )
    .is_err());
    assert_eq!(stored.receipt_signature.as_slice(), &receipt.signature[..]);

    let four = serde_json::json!({ "appointments": vec![f.appointment(5); 4] });
    let (status, body) = post(&r, "/v1/appointments/batch", &four).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
    );
    assert_eq!(
        f.store.channel(f.channel_id).await.unwrap().appointments[0]
            .proof
            .nonce,
        4
    );

    // The signatures of a batch are checked together, but each item is judged as alone: a bad
    // sender's signature refuses it before the customer's is looked at (also when both are
    // bad), and a good item beside them is taken.
    let mut bad_sender = f.appointment(6);
    bad_sender.sender_signature = bad_sender.authorisation.clone();
    let mut both_bad = f.appointment(7);
    std::mem::swap(&mut both_bad.sender_signature, &mut both_bad.authorisation);
    let batch = serde_json::json!({
        "appointments": [bad_sender, both_bad, f.appointment(5)]
    });
    let (status, body) = post(&r, "/v1/appointments/batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results: BatchJson = serde_json::from_value(body).unwrap();
    assert!(
        matches!(&results.results[0], BatchItem::Error(e) if e.error == "bad_sender_signature")
    );
    assert!(
        matches!(&results.results[1], BatchItem::Error(e) if e.error == "bad_sender_signature")
    );
    assert!(matches!(&results.results[2], BatchItem::Receipt(r) if r.nonce == 5));
    // Alone in its tree, the receipt is its own root: an empty path.
    let BatchItem::Receipt(receipt) = &results.results[2] else {
        unreachable!("matched above")
    };
    assert_eq!(receipt.batch_path.as_deref(), Some(&[][..]));
    receipts::verify_batched(
        &receipt.receipt(),
        &domain,
        CHAIN_ID,
        &[],
        &receipt.signature,
    )
    .unwrap();

    let (status, body) = call(&r, Method::GET, "/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let health: HealthJson = serde_json::from_value(body).unwrap();
    assert_eq!(
        (
            health.status.as_str(),
            health.appointments,
            health.customers
        ),
        ("ok", 1, 1)
    );
    assert_eq!(health.tower, f.tower.address());

    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = r.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "keel_tower_appointments_accepted_total 2",
        "keel_tower_refusals_total{reason=\"bad_authorisation\"} 1",
        "keel_tower_refusals_total{reason=\"bad_sender_signature\"} 2",
        "keel_tower_refusals_total{reason=\"stale_nonce\"} 1",
        "keel_tower_refusals_total{reason=\"batch_too_large\"} 1",
        "keel_tower_appointments 1",
        "keel_tower_channels_watched 1",
        "keel_tower_customers 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let bytes = text
        .lines()
        .find_map(|l| l.strip_prefix("keel_tower_storage_bytes "))
        .unwrap();
    assert!(bytes.parse::<u64>().unwrap() > 0);
}

/// Rates that never refill (0 per second), so the test counts tokens without a clock.
const NO_REFILL: u32 = 0;

#[tokio::test]
async fn floods_from_one_source_or_for_one_customer_get_429_and_store_nothing() {
    let f = Fixture::new(10).await;
    let r = router_with(
        &f,
        Some(Rate {
            per_second: NO_REFILL,
            burst: 4,
        }),
        Some(Rate {
            per_second: NO_REFILL,
            burst: 3,
        }),
    );
    let (a, b, c) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]);
    let held = |f: &Fixture| {
        let store = f.store.clone();
        let channel_id = f.channel_id;
        async move {
            let record = store.channel(channel_id).await.unwrap();
            record.appointments.first().map(|a| a.proof.nonce)
        }
    };
    // Forged appointments naming Bob do not spend Bob's allowance (his signature is checked
    // first), only the sender's: source C is cut off after its burst.
    let mut forged = f.appointment(9);
    forged.authorisation = forged.sender_signature.clone();
    for _ in 0..4 {
        let (status, body) = post_from(&r, c, "/v1/appointments", &forged).await;
        assert_eq!(
            (status, reason(&body)),
            (StatusCode::BAD_REQUEST, "bad_authorisation")
        );
    }
    let (status, body) = post_from(&r, c, "/v1/appointments", &forged).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited_source")
    );

    // Source A: a registration and an appointment take two of its four; a batch of three does
    // not fit and is refused whole.
    let (status, _) = post_from(&r, a, "/v1/customers", &f.registration(&f.bob)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post_from(&r, a, "/v1/appointments", &f.appointment(2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let batch = serde_json::json!({ "appointments": [f.appointment(3), f.appointment(4), f.appointment(5)] });
    let (status, body) = post_from(&r, a, "/v1/appointments/batch", &batch).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited_source")
    );
    assert_eq!(held(&f).await, Some(2));

    // Source B has its own allowance, but Bob has two of his three left: the batch's third
    // item is refused for him, and so is a single appointment after it.
    let (status, body) = post_from(&r, b, "/v1/appointments/batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results: BatchJson = serde_json::from_value(body).unwrap();
    assert!(matches!(&results.results[0], BatchItem::Receipt(r) if r.nonce == 3));
    assert!(matches!(&results.results[1], BatchItem::Receipt(r) if r.nonce == 4));
    assert!(
        matches!(&results.results[2], BatchItem::Error(e) if e.error == "rate_limited_customer")
    );
    let (status, body) = post_from(&r, b, "/v1/appointments", &f.appointment(6)).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited_customer")
    );
    assert_eq!(held(&f).await, Some(4));
}

/// Releases over HTTP: camelCase `releases: [{lock, signature}]`, an unknown field inside one
/// refused as a shape error, one signed by the customer refused as `bad_release` (400), a good
/// one stored and counted by `GET /v1/channels/{id}`.
#[tokio::test]
async fn releases_travel_as_json_and_a_bad_one_is_refused_with_its_reason() {
    let f = Fixture::new(10).await;
    let r = router(&f);
    let (status, body) = post(&r, "/v1/customers", &f.registration(&f.bob)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, lock) = crate::fixture::secret_lock(9, 500, NOW + 900);
    let mut good = f.appointment(2);
    good.releases = vec![f.release(&lock)];
    let json = serde_json::to_value(&good).unwrap();
    assert_eq!(
        json["releases"][0]["lock"]["secretHash"],
        Value::from(lock.secret_hash.to_string())
    );
    assert!(serde_json::to_value(f.appointment(2))
        .unwrap()
        .get("releases")
        .is_none());

    let mut unknown = json.clone();
    unknown["releases"][0]["extra"] = Value::from(1);
    let (status, body) = post(&r, "/v1/appointments", &unknown).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields")
    );
    let mut by_customer = good.clone();
    by_customer.releases = vec![Fixture::release_by(&f.bob, f.channel_id, f.vault, &lock)];
    let (status, body) = post(&r, "/v1/appointments", &by_customer).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "bad_release")
    );
    assert_eq!(stored(&f).await, 0);

    let (status, body) = post(&r, "/v1/appointments", &json).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &r,
        Method::GET,
        &format!("/v1/channels/{}", f.channel_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["appointments"][0]["releases"], Value::from(1));
}
