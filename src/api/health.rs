//! `GET /healthz` (the process answers), `GET /readyz` (it can take events now) and
//! `GET /metrics` (Prometheus text). None of them needs authentication.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::AppState;

/// The health routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store commits a probe write, the backlog is under its limit and — once a
/// worker processes events — the oldest pending event is younger than its limit.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    match tokio::time::timeout(Duration::from_secs(2), state.store.check_writable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(e.to_string()),
        Err(_) => problems.push("store did not commit a probe write within 2 s".into()),
    }
    let backlog = state.store.backlog();
    if backlog >= state.config.store.max_backlog {
        problems.push(format!("backlog {backlog} is over its limit {}", state.config.store.max_backlog));
    }
    if problems.is_empty() {
        Json(json!({ "status": "ready", "backlog": backlog })).into_response()
    } else {
        let reason = problems.join("; ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({ "status": "not_ready", "reason": reason })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics::gauge!("tradehook_backlog").set(state.store.backlog() as f64);
    if let Some(limiter) = &state.ip_limiter {
        metrics::gauge!("tradehook_tracked_client_ips").set(limiter.tracked() as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
