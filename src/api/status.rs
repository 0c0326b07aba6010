//! `GET /api/v1/status` (backlog, DLQ, oldest pending age, processed, store) and
//! `GET /api/v1/audit` (the newest rejected requests).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::Rejection;
use crate::error::ApiError;
use crate::server::AppState;
use crate::worker::lag::LagSummary;

/// The status routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(audit))
}

/// How the gateway is doing (SPEC §10).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Events stored and not yet processed.
    backlog: u64,
    /// Entries in the dead-letter queue.
    dlq: u64,
    /// Processing lag of this process's worker since start.
    lag: LagSummary,
    /// Whether this process runs the worker.
    worker: bool,
    /// How long the next event to process has been waiting since it was received, replayed or
    /// due for its retry, seconds; absent when nothing is due.
    oldest_pending_age_seconds: Option<f64>,
    /// Events processed.
    processed: u64,
    /// Events stored.
    events: u64,
    /// The store kind (`sqlite`).
    store: String,
    /// Configured source names.
    sources: Vec<String>,
    /// Seconds since this process started.
    uptime_seconds: u64,
    /// tradehook's version.
    version: String,
}

/// Backlog, DLQ size, lag, processed count and store of this gateway.
#[utoipa::path(
    get,
    path = "/status",
    tag = "status",
    responses((status = 200, description = "The gateway's status", body = StatusView))
)]
async fn status(State(state): State<Arc<AppState>>) -> Result<Json<StatusView>, ApiError> {
    let stats = state.store.stats().await?;
    let mut sources: Vec<String> = state.sources.keys().cloned().collect();
    sources.sort();
    Ok(Json(StatusView {
        backlog: stats.backlog,
        dlq: stats.dlq,
        lag: state.lag.summary(),
        worker: state.config.worker.enabled,
        oldest_pending_age_seconds: stats.oldest_pending_age_seconds,
        processed: stats.processed,
        events: stats.events,
        store: state.store.kind().to_string(),
        sources,
        uptime_seconds: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}

/// Query of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// How many of the newest refusals, 1–10000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// The newest refused requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    rejections: Vec<Rejection>,
}

/// Recent refused ingest requests (400/401/403/408/413/429): who, which source, why, a body prefix.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "status",
    params(AuditQuery),
    responses((status = 200, description = "Newest refusals first", body = AuditPage))
)]
async fn audit(
    State(state): State<Arc<AppState>>,
    query: super::QueryResult<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = super::query(query)?;
    let limit = super::limit(query.limit, 100, 10_000)?;
    Ok(Json(AuditPage { rejections: state.audit.recent(limit as usize) }))
}
