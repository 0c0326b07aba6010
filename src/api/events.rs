//! `GET /api/v1/events` and `GET /api/v1/events/{id}`: stored events with their raw payload and
//! headers (secrets removed at ingest); `POST /api/v1/events/{id}/replay` queues one again.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{EventFilter, StoredEvent};

/// Query parameters of the event list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this source.
    source: Option<String>,
    /// Only this event type (`order.updated`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Received before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page backwards: events older than this `seq`.
    before: Option<i64>,
    /// Tail: events newer than this `seq`, oldest first.
    after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A page of events, newest first (oldest first with `after`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events.
    events: Vec<StoredEvent>,
    /// The `seq` of the last event: pass it as `before` (or `after` when tailing) for the next
    /// page. Null after a short page when paging back: there is nothing older.
    next: Option<i64>,
}

/// What `POST /api/v1/events/{id}/replay` did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventReplay {
    /// The event.
    event_id: String,
    /// Whether it went back in the queue (false when it was already waiting).
    requeued: bool,
}

/// The event routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(show)).routes(routes!(replay))
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

/// Stored events, filtered by source, type and arrival time.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(ListQuery),
    responses((status = 200, description = "A page of events", body = EventPage))
)]
async fn list(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<ListQuery>,
) -> Result<Json<EventPage>, ApiError> {
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
    let tailing = filter.after_seq.is_some();
    let events = state.store.events(filter).await?;
    // Paging back, a short page is the last one. A tail goes on from its last event whatever
    // the page size: more may arrive.
    let full = events.len() == limit as usize;
    let next = events.last().map(|e: &StoredEvent| e.seq).filter(|_| full || tailing);
    Ok(Json(EventPage { events, next }))
}

/// One stored event by the id the ingest answer gave.
#[utoipa::path(
    get,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event id (`evt_…`) the ingest answer gave", example = "evt_1")),
    responses(
        (status = 200, description = "The event", body = StoredEvent),
        (status = 404, description = "No such event", body = ErrorBody)
    )
)]
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
#[utoipa::path(
    post,
    path = "/events/{id}/replay",
    tag = "events",
    params(("id" = String, Path, description = "The event id (`evt_…`)", example = "evt_1")),
    responses(
        (status = 202, description = "Queued again", body = EventReplay),
        (status = 404, description = "No such event", body = ErrorBody)
    )
)]
async fn replay(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<EventReplay>), ApiError> {
    if state.store.event(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no event with id `{id}`")));
    }
    let requeued = state.store.replay_event(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(EventReplay { event_id: id, requeued })))
}
