//! The dead-letter queue API (SPEC §6): list, show, replay one, replay by filter, discard.
//!
//! Replaying puts the event back in the processing queue with its attempts reset; the entry
//! leaves the queue, and comes back (with a new history) if the event fails again.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{DeadLetter, DeadLetterFilter};

/// The DLQ routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(replay_matching))
        .routes(routes!(show, discard))
        .routes(routes!(replay_one))
}

/// What failed: processing an event, or delivering it to a subscription.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterKind {
    /// Processing the event failed.
    Event,
    /// Delivering the event to a webhook subscription failed.
    Delivery,
}

/// Which dead letters: by source, event type, kind or reason text.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// Only events of this source.
    source: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only this kind.
    kind: Option<DeadLetterKind>,
    /// Only entries whose reason contains this text.
    reason: Option<String>,
    /// Only entries older than this one (`dlq_…`, the previous page's `next`).
    #[param(pattern = "^dlq_[1-9][0-9]{0,17}$")]
    #[schema(pattern = "^dlq_[1-9][0-9]{0,17}$")]
    before: Option<String>,
    /// At most this many, 1–10000 (default 100 for the list, 1000 for a replay).
    #[param(minimum = 1, maximum = 10000)]
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::whole_number")]
    limit: Option<u32>,
}

impl FilterQuery {
    fn into_filter(self, default_limit: u32) -> Result<DeadLetterFilter, ApiError> {
        let limit = super::limit(self.limit, default_limit, DeadLetterFilter::MAX_LIMIT)?;
        let kind = self.kind.map(|kind| match kind {
            DeadLetterKind::Event => "event".to_string(),
            DeadLetterKind::Delivery => "delivery".to_string(),
        });
        let before = self
            .before
            .map(|id| {
                crate::store::dead_letter_seq(&id).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "`before` must be a dead letter id like dlq_12")
                })
            })
            .transpose()?;
        Ok(DeadLetterFilter {
            source: self.source,
            event_type: self.event_type,
            kind,
            reason: self.reason,
            before,
            limit,
        })
    }
}

/// The dead letters that match, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// The entries.
    dead_letters: Vec<DeadLetter>,
    /// When the page is full: pass as `before` for the next one.
    next: Option<String>,
}

/// What a replay did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqReplay {
    /// Events put back in the queue.
    replayed: u64,
    /// The event of the entry, when one entry was replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
}

/// The dead-letter queue, filtered.
#[utoipa::path(
    get,
    path = "/dlq",
    tag = "dlq",
    params(FilterQuery),
    responses((status = 200, description = "Matching entries", body = DeadLetterList))
)]
async fn list(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<FilterQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let query = super::query(query)?;
    let filter = query.into_filter(100)?;
    let limit = filter.limit as usize;
    let dead_letters = state.store.dead_letters(filter).await?;
    let next = (dead_letters.len() == limit).then(|| dead_letters.last().map(|d| d.id.clone())).flatten();
    Ok(Json(DeadLetterList { dead_letters, next }))
}

async fn find(state: &AppState, id: &str) -> Result<DeadLetter, ApiError> {
    state.store.dead_letter(id).await?.ok_or_else(|| ApiError::not_found(format!("no dead letter `{id}`")))
}

/// One dead letter with its attempt history.
#[utoipa::path(
    get,
    path = "/dlq/{id}",
    tag = "dlq",
    params(("id" = String, Path, description = "The entry id (`dlq_…`)", example = "dlq_1")),
    responses(
        (status = 200, description = "The entry", body = DeadLetter),
        (status = 404, description = "No such entry", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(find(&state, &id).await?))
}

/// Puts the entry's event back in the queue and removes the entry.
#[utoipa::path(
    post,
    path = "/dlq/{id}/replay",
    tag = "dlq",
    params(("id" = String, Path, description = "The entry id (`dlq_…`)", example = "dlq_1")),
    responses(
        (status = 202, description = "Queued again", body = DlqReplay),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "A delivery to a subscription deleted since: nowhere to send it", body = ErrorBody)
    )
)]
async fn replay_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DlqReplay>), ApiError> {
    let entry = find(&state, &id).await?;
    if let Some(webhook) = orphaned(&entry, &subscription_ids(&state).await?) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "subscription_deleted",
            format!("subscription `{webhook}` was deleted: this delivery has nowhere to go; discard the entry"),
        ));
    }
    let replayed = state.store.replay_dead_letters(vec![id]).await?;
    Ok((StatusCode::ACCEPTED, Json(DlqReplay { replayed, event_id: Some(entry.event_id) })))
}

/// The ids of the subscriptions that exist.
async fn subscription_ids(state: &AppState) -> Result<std::collections::HashSet<String>, ApiError> {
    Ok(state.store.subscriptions().await?.into_iter().map(|s| s.id).collect())
}

/// The deleted subscription a delivery entry was for: queued again, it would only fail its
/// retries and come back as a new entry.
fn orphaned<'a>(entry: &'a DeadLetter, subscriptions: &std::collections::HashSet<String>) -> Option<&'a str> {
    entry.webhook_id.as_deref().filter(|webhook| entry.kind == "delivery" && !subscriptions.contains(*webhook))
}

/// Removes the entry for good; its event stays stored.
#[utoipa::path(
    delete,
    path = "/dlq/{id}",
    tag = "dlq",
    params(("id" = String, Path, description = "The entry id (`dlq_…`)", example = "dlq_1")),
    responses(
        (status = 204, description = "Discarded"),
        (status = 404, description = "No such entry", body = ErrorBody)
    )
)]
async fn discard(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if state.store.discard_dead_letter(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no dead letter `{id}`")))
    }
}

/// Body of `POST /api/v1/dlq/replay`: explicit ids, or a filter (all fields optional,
/// `{"filter": {}}` = everything, at most `limit`, default 1000). One of the two, never both:
/// an empty selection replays nothing rather than everything.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct ReplayRequest {
    /// Exactly these entries.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    ids: Option<Vec<String>>,
    /// Every entry this filter matches.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    filter: Option<FilterQuery>,
}

/// A field that may be absent but, when given, is not `null`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Replays many entries: by ids, or every entry a filter matches.
#[utoipa::path(
    post,
    path = "/dlq/replay",
    tag = "dlq",
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued again", body = DlqReplay),
        (status = 400, description = "Neither or both of `ids` and `filter`, or a field is wrong", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody)
    )
)]
async fn replay_matching(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<DlqReplay>), ApiError> {
    let Json(request) = body.map_err(super::body_rejection)?;
    let entries = match (request.ids, request.filter) {
        (Some(ids), None) => {
            let mut entries = Vec::with_capacity(ids.len());
            for id in ids {
                entries.extend(state.store.dead_letter(&id).await?);
            }
            entries
        }
        (None, Some(filter)) => state.store.dead_letters(filter.into_filter(1000)?).await?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "give either `ids` or a `filter` (`{\"filter\": {}}` replays every entry)",
            ))
        }
    };
    // Deliveries to deleted subscriptions stay in the queue, to be discarded.
    let subscriptions = subscription_ids(&state).await?;
    let ids = entries.into_iter().filter(|e| orphaned(e, &subscriptions).is_none()).map(|e| e.id).collect();
    let replayed = state.store.replay_dead_letters(ids).await?;
    Ok((StatusCode::ACCEPTED, Json(DlqReplay { replayed, event_id: None })))
}
