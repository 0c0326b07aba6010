//! Subscriptions (seed 001's `/api/v1/webhooks`): create, list, show, update, delete, test, and
//! each subscription's delivery log.
//!
//! The secret is returned when a subscription is created (generated as `whsec_…` when not
//! given) and on `GET /api/v1/webhooks/{id}/secret`; lists and updates never echo it. Enabling a
//! disabled subscription resumes the deliveries held for it, oldest first.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::delivery::attempt::Verdict;
use crate::delivery::guard::check_url;
use crate::delivery::subscription::{new_id, new_secret, Subscription};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{now_ms, rfc3339, DeliveryAttempt, DeliveryNext, DeliveryResult, SubscriptionHealth};

/// The subscription routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(test))
        .routes(routes!(show, update, remove))
        .routes(routes!(secret))
        .routes(routes!(deliveries))
}

/// A subscription as the API shows it (without its secret unless just created).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    /// `wh_…`.
    id: String,
    /// Unique name for routes (`forward:<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Where events are POSTed.
    url: String,
    /// Event types or globs it receives.
    events: Vec<String>,
    /// Whether deliveries are attempted.
    active: bool,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Why the gateway disabled it (410 Gone, prolonged failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
    /// The signing secret: only in the answer to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Delivery health: only on `GET /webhooks/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<SubscriptionHealth>,
}

/// Every subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    /// Oldest first.
    webhooks: Vec<SubscriptionView>,
}

/// A subscription's signing secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    /// The subscription.
    id: String,
    /// The secret (`whsec_…` when generated).
    secret: String,
}

/// The outcome of a test delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestDelivery {
    /// The subscription.
    webhook_id: String,
    /// Whether the receiver answered 2xx.
    delivered: bool,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<u16>,
    /// Round trip, ms.
    latency_ms: f64,
    /// First bytes of the answer.
    response: Option<String>,
    /// Why it failed.
    error: Option<String>,
}

/// A subscription's delivery attempts, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryLog {
    /// The attempts.
    deliveries: Vec<DeliveryAttempt>,
}

impl SubscriptionView {
    fn of(s: &Subscription) -> Self {
        SubscriptionView {
            id: s.id.clone(),
            name: s.name.clone(),
            url: s.url.clone(),
            events: s.events.clone(),
            active: s.active,
            description: s.description.clone(),
            disabled_reason: s.disabled_reason.clone(),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            secret: None,
            health: None,
        }
    }
}

/// Body of `POST /api/v1/webhooks` (seed 001's shape, plus `name` and `description`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// http(s) URL; loopback and private addresses only with `allow_private_targets`.
    #[schema(
        example = "https://example.com/webhook",
        max_length = 2048,
        pattern = "^https?://(?!localhost)[A-Za-z][A-Za-z0-9-]{0,62}(\\.[A-Za-z][A-Za-z0-9-]{0,62})*(:[1-9][0-9]{0,3})?([/?#][!-~]*)?$"
    )]
    url: String,
    /// Event types or globs, e.g. `order.*` or `*`.
    #[schema(example = json!(["order.updated", "position.*"]), min_items = 1, max_items = 100, inline)]
    events: Vec<EventPattern>,
    /// 8 to 256 characters; generated as `whsec_…` when absent.
    #[schema(min_length = 8, max_length = 256)]
    secret: Option<String>,
    /// Default true.
    #[serde(default = "yes")]
    active: bool,
    /// Unique name for routes.
    #[schema(pattern = "^(?!wh_)[A-Za-z0-9_-]{1,64}$")]
    name: Option<String>,
    /// Free text.
    #[schema(max_length = 1000)]
    description: Option<String>,
}

/// An event type or glob: letters, digits, `.`, `_`, `-` and `*`, e.g. `order.*`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._*-]{1,100}$")]
pub struct EventPattern(String);

fn yes() -> bool {
    true
}

/// Body of `PUT /api/v1/webhooks/{id}`: any of the fields; absent ones stay. `active: true`
/// re-enables a disabled subscription and resumes its held deliveries.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// New URL.
    #[schema(
        max_length = 2048,
        pattern = "^https?://(?!localhost)[A-Za-z][A-Za-z0-9-]{0,62}(\\.[A-Za-z][A-Za-z0-9-]{0,62})*(:[1-9][0-9]{0,3})?([/?#][!-~]*)?$"
    )]
    url: Option<String>,
    /// New event list.
    #[schema(min_items = 1, max_items = 100)]
    events: Option<Vec<EventPattern>>,
    /// New secret (replaces the old one at once).
    #[schema(min_length = 8, max_length = 256)]
    secret: Option<String>,
    /// Enable or disable.
    active: Option<bool>,
    /// New name; empty removes it.
    #[schema(pattern = "^(?!wh_)[A-Za-z0-9_-]{0,64}$")]
    name: Option<String>,
    /// New description; empty removes it.
    #[schema(max_length = 1000)]
    description: Option<String>,
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(super::body_rejection)
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_subscription", reason)
}

/// Checks the fields a user sets; `id` is the subscription being changed, if any.
fn validate(state: &AppState, s: &Subscription) -> Result<(), ApiError> {
    check_url(&s.url, state.config.delivery.allow_private_targets).map_err(|e| invalid(e.to_string()))?;
    if s.url.len() > 2048 {
        return Err(invalid("`url` is longer than 2048 characters"));
    }
    if s.events.is_empty() || s.events.len() > 100 {
        return Err(invalid("`events` needs 1 to 100 event types or globs such as `order.*` or `*`"));
    }
    let bad = s.events.iter().find(|e| {
        e.is_empty() || e.len() > 100 || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b))
    });
    if let Some(bad) = bad {
        return Err(invalid(format!("`{bad}` is not an event type or glob (letters, digits, . _ - and *)")));
    }
    // Characters, as the OpenAPI lengths count them (JSON Schema), not bytes.
    if !(8..=256).contains(&s.secret.chars().count()) {
        return Err(invalid("`secret` must be 8 to 256 characters (omit it to have one generated)"));
    }
    if let Some(name) = &s.name {
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with("wh_")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !well_formed {
            return Err(invalid("`name` must be 1 to 64 letters, digits, _ or -, not starting with wh_"));
        }
        let taken =
            state.subscriptions.snapshot().iter().any(|o| o.id != s.id && o.name.as_ref() == Some(name));
        if taken {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "name_taken",
                format!("a subscription is already named `{name}`"),
            ));
        }
    }
    if s.description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
        return Err(invalid("`description` is longer than 1000 characters"));
    }
    Ok(())
}

/// Re-reads the subscriptions into the shared set after a change.
async fn refresh(state: &AppState) -> Result<(), ApiError> {
    Ok(state.subscriptions.reload(|| state.store.subscriptions()).await?)
}

fn find(state: &AppState, id: &str) -> Result<Subscription, ApiError> {
    state
        .subscriptions
        .snapshot()
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))
}

/// Creates a subscription; the answer carries its secret.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Created, with its secret", body = SubscriptionView),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    request: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let request = body(request)?;
    let events = request.events.into_iter().map(|p| p.0).collect();
    let secret = request.secret.unwrap_or_else(new_secret);
    let subscription = Subscription {
        name: request.name,
        active: request.active,
        description: request.description,
        ..Subscription::new(new_id(), request.url.trim().to_owned(), events, secret, now_ms())
    };
    validate(&state, &subscription)?;
    state.store.create_subscription(subscription.clone()).await?;
    refresh(&state).await?;
    let mut view = SubscriptionView::of(&subscription);
    view.secret = Some(subscription.secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Every subscription, without secrets.
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "The subscriptions", body = SubscriptionList))
)]
async fn list(State(state): State<Arc<AppState>>) -> Json<SubscriptionList> {
    let webhooks = state.subscriptions.snapshot().iter().map(SubscriptionView::of).collect();
    Json(SubscriptionList { webhooks })
}

/// One subscription with its delivery health.
#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id (`wh_…`)")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let subscription = find(&state, &id)?;
    let mut view = SubscriptionView::of(&subscription);
    view.health = Some(state.store.subscription_health(&id).await?);
    Ok(Json(view))
}

/// A subscription's signing secret.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id (`wh_…`)")),
    responses(
        (status = 200, description = "The secret", body = SecretView),
        (status = 404, description = "No such subscription", body = ErrorBody)
    )
)]
async fn secret(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    let subscription = find(&state, &id)?;
    Ok(Json(SecretView { id: subscription.id, secret: subscription.secret }))
}

/// Changes a subscription; `active: true` resumes its held deliveries.
#[utoipa::path(
    put,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id (`wh_…`)")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The subscription as changed", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Result<Json<UpdateRequest>, JsonRejection>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let request = body(request)?;
    // From the store, not the shared copy: a disable the dispatcher just committed must not be
    // written back as active by an update that did not ask for it.
    let mut subscription = state
        .store
        .subscriptions()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))?;
    if let Some(url) = request.url {
        subscription.url = url.trim().to_owned();
    }
    if let Some(events) = request.events {
        subscription.events = events.into_iter().map(|p| p.0).collect();
    }
    if let Some(secret) = request.secret {
        subscription.secret = secret;
    }
    if let Some(name) = request.name {
        subscription.name = Some(name).filter(|n| !n.is_empty());
    }
    if let Some(description) = request.description {
        subscription.description = Some(description).filter(|d| !d.is_empty());
    }
    if let Some(active) = request.active {
        if active {
            subscription.disabled_reason = None;
        }
        subscription.active = active;
    }
    subscription.updated_at = now_ms();
    validate(&state, &subscription)?;
    if !state.store.update_subscription(subscription.clone()).await? {
        return Err(ApiError::not_found(format!("no subscription `{id}`")));
    }
    refresh(&state).await?;
    Ok(Json(SubscriptionView::of(&subscription)))
}

/// Deletes a subscription and the deliveries still waiting for it.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id (`wh_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such subscription", body = ErrorBody)
    )
)]
async fn remove(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if !state.store.delete_subscription(&id).await? {
        return Err(ApiError::not_found(format!("no subscription `{id}`")));
    }
    refresh(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/webhooks/test`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestRequest {
    /// The subscription.
    webhook_id: String,
    /// The event to send (a JSON object, like every event); a `test` event when absent.
    #[schema(value_type = Option<Object>)]
    test_event: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Delivers a test event to a subscription at once (active or not) and reports the outcome.
#[utoipa::path(
    post,
    path = "/webhooks/test",
    tag = "webhooks",
    request_body = TestRequest,
    responses(
        (status = 200, description = "The outcome (delivered or not)", body = TestDelivery),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)
    )
)]
async fn test(
    State(state): State<Arc<AppState>>,
    request: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Json<TestDelivery>, ApiError> {
    let request = body(request)?;
    let subscription = find(&state, &request.webhook_id)?;
    let event = request.test_event.map(serde_json::Value::Object).unwrap_or_else(|| {
        json!({
            "event": "test",
            "timestamp": rfc3339(now_ms()),
            "data": { "message": "Webhook test from tradehook" },
        })
    });
    let payload = Bytes::from(serde_json::to_vec(&event).map_err(ApiError::internal)?);
    let message_id = format!("msg_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let (record, verdict) =
        state.delivery_client.post(&subscription.url, &subscription.secret, &message_id, payload).await;
    let delivered = verdict == Verdict::Delivered;
    let answer = TestDelivery {
        webhook_id: subscription.id.clone(),
        delivered,
        status_code: record.status_code,
        latency_ms: record.latency_ms,
        response: record.response.clone(),
        error: record.error.clone(),
    };
    let logged = DeliveryResult {
        delivery_id: None,
        seq: None,
        webhook_id: Some(subscription.id),
        attempts: 0,
        history: "[]".into(),
        attempt: Some(record),
        next: DeliveryNext::Tested { delivered },
        settles_intent: false,
    };
    state.store.commit_deliveries(vec![logged], Vec::new()).await?;
    Ok(Json(answer))
}

/// Query of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<u32>,
    /// Only attempts older than this attempt id (paging).
    before: Option<i64>,
}

/// Every delivery attempt to a subscription, newest first: status, latency, answer, error.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id (`wh_…`)"), LogQuery),
    responses(
        (status = 200, description = "The attempts", body = DeliveryLog),
        (status = 404, description = "No such subscription", body = ErrorBody)
    )
)]
async fn deliveries(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: super::QueryResult<LogQuery>,
) -> Result<Json<DeliveryLog>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    find(&state, &id)?;
    let attempts = state.store.delivery_attempts(&id, query.before, limit).await?;
    Ok(Json(DeliveryLog { deliveries: attempts }))
}
