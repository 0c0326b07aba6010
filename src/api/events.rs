//! `GET /api/v1/events` and `GET /api/v1/events/{id}`: stored events with their raw payload and
//! headers (secrets removed at ingest).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{EventFilter, StoredEvent};

/// Query parameters of the event list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListQuery {
    /// Only this source.
    source: Option<String>,
    /// Only this event type (`order.updated`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Received at or after (RFC 3339).
    since: Option<String>,
    /// Received before (RFC 3339).
    until: Option<String>,
    /// Page backwards: events older than this `seq`.
    before: Option<i64>,
    /// Tail: events newer than this `seq`, oldest first.
    after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    limit: Option<u32>,
}

/// The event routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/events", get(list))
        .route("/events/{id}", get(show))
        .route("/events/{id}/replay", axum::routing::post(replay))
}

fn parse_time(name: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis()).map_err(|e| {
                ApiError::bad_request("invalid_query", format!("`{name}` is not an RFC 3339 time: {e}"))
            })
        })
        .transpose()
}

async fn list(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 1000)?;
    let filter = EventFilter {
        source: query.source,
        event_type: query.event_type,
        since: parse_time("since", query.since)?,
        until: parse_time("until", query.until)?,
        before_seq: query.before,
        after_seq: query.after,
        limit,
    };
    let events = state.store.events(filter).await?;
    let next = events.last().map(|e: &StoredEvent| e.seq);
    Ok(Json(serde_json::json!({ "events": events, "next": next })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<StoredEvent>, ApiError> {
    state
        .store
        .event(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no event with id `{id}`")))
}

/// Puts a stored event back in the processing queue. Applying an event is idempotent, so
/// replaying one that was applied changes nothing; one that was set aside is tried again.
async fn replay(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    if state.store.event(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no event with id `{id}`")));
    }
    let requeued = state.store.replay_event(&id).await?;
    let body = serde_json::json!({ "eventId": id, "requeued": requeued });
    Ok((axum::http::StatusCode::ACCEPTED, Json(body)))
}
