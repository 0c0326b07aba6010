//! `GET /api/v1/status` (backlog, DLQ, oldest pending age, processed, store) and
//! `GET /api/v1/audit` (the newest rejected requests).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::server::AppState;

/// The status routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/status", get(status)).route("/audit", get(audit))
}

async fn status(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let stats = state.store.stats().await?;
    Ok(Json(json!({
        "backlog": stats.backlog,
        "dlq": stats.dlq,
        "lag": state.lag.summary(),
        "worker": state.config.worker.enabled,
        "oldestPendingAgeSeconds": stats.oldest_pending_age_seconds,
        "processed": stats.processed,
        "events": stats.events,
        "store": state.store.kind(),
        "sources": state.sources.keys().collect::<Vec<_>>(),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = super::query(query)?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    Ok(Json(json!({ "rejections": state.audit.recent(limit) })))
}
