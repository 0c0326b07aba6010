//! The dead-letter queue API (SPEC §6): list, show, replay one, replay by filter, discard.
//!
//! Replaying puts the event back in the processing queue with its attempts reset; the entry
//! leaves the queue, and comes back (with a new history) if the event fails again.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{DeadLetter, DeadLetterFilter};

/// The DLQ routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dlq", get(list))
        .route("/dlq/replay", post(replay_matching))
        .route("/dlq/{id}", get(show).delete(discard))
        .route("/dlq/{id}/replay", post(replay_one))
}

/// Which dead letters: by source, event type, kind (`event`/`delivery`) or reason text.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterQuery {
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    kind: Option<String>,
    reason: Option<String>,
    limit: Option<u32>,
}

impl FilterQuery {
    fn into_filter(self, default_limit: u32) -> Result<DeadLetterFilter, ApiError> {
        if let Some(kind) = &self.kind {
            if kind != "event" && kind != "delivery" {
                return Err(ApiError::bad_request("invalid_query", "`kind` must be event or delivery"));
            }
        }
        let limit = super::limit(self.limit, default_limit, 10_000)?;
        Ok(DeadLetterFilter {
            source: self.source,
            event_type: self.event_type,
            kind: self.kind,
            reason: self.reason,
            limit,
        })
    }
}

async fn list(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<FilterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = super::query(query)?;
    let entries = state.store.dead_letters(query.into_filter(100)?).await?;
    Ok(Json(json!({ "deadLetters": entries })))
}

async fn find(state: &AppState, id: &str) -> Result<DeadLetter, ApiError> {
    state.store.dead_letter(id).await?.ok_or_else(|| ApiError::not_found(format!("no dead letter `{id}`")))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(find(&state, &id).await?))
}

async fn replay_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = find(&state, &id).await?;
    let replayed = state.store.replay_dead_letters(vec![id]).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": replayed, "eventId": entry.event_id })))
        .into_response())
}

async fn discard(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if state.store.discard_dead_letter(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no dead letter `{id}`")))
    }
}

/// Body of `POST /api/v1/dlq/replay`: a filter (all fields optional, `{}` = everything, at most
/// `limit`, default 1000), or explicit ids.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    filter: Option<FilterQuery>,
}

async fn replay_matching(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let ids = if request.ids.is_empty() {
        let filter = request.filter.unwrap_or_default().into_filter(1000)?;
        state.store.dead_letters(filter).await?.into_iter().map(|d| d.id).collect()
    } else {
        request.ids
    };
    let replayed = state.store.replay_dead_letters(ids).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": replayed }))).into_response())
}
