//! `GET /healthz` (the process answers), `GET /readyz` (it can take events now) and
//! `GET /metrics` (Prometheus text). None of them needs authentication.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::AppState;

/// The health routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Alive {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `/readyz` when ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// Events stored and not yet processed.
    backlog: u64,
}

/// The answer of `/readyz` when not ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotReady {
    /// Always `not_ready`.
    #[schema(example = "not_ready")]
    status: &'static str,
    /// Every check that failed, separated by `; `.
    reason: String,
}

/// The process answers (liveness).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Alive)))]
async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// Longest `/readyz` waits for each answer of the store.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// Ready when the store commits a probe write (on SQLite one that needs room for an event), the
/// backlog is under its limit and — when this process runs the worker — the oldest pending event
/// is younger than `store.max_pending_age`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready to take events", body = Ready),
        (status = 503, description = "Not ready; the reason says why", body = NotReady,
            headers(("Retry-After" = u64, description = "Seconds before asking again")))
    )
)]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    match tokio::time::timeout(CHECK_WITHIN, state.store.check_writable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(e.to_string()),
        Err(_) => problems.push(format!("store did not commit a probe write within {} s", CHECK_WITHIN.as_secs())),
    }
    let store_answers = problems.is_empty();
    let backlog = state.store.backlog();
    if backlog >= state.config.store.max_backlog {
        problems.push(format!("backlog {backlog} is at its limit {}: new events are refused", state.config.store.max_backlog));
    }
    // With the store down, the probe said why; another read would only wait or say it again.
    if state.config.worker.enabled && store_answers {
        match tokio::time::timeout(CHECK_WITHIN, state.store.oldest_pending()).await.unwrap_or_else(|_| {
            Err(crate::store::StoreError::Unavailable(format!(
                "store did not answer within {} s",
                CHECK_WITHIN.as_secs()
            )))
        }) {
            Ok(Some(at)) => {
                let age =
                    std::time::Duration::from_millis(u64::try_from(crate::store::now_ms() - at).unwrap_or(0));
                if age > state.config.store.max_pending_age {
                    problems.push(format!(
                        "the next event to process has waited {} s (limit {} s): is the worker stalled?",
                        age.as_secs(),
                        state.config.store.max_pending_age.as_secs()
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Json(Ready { status: "ready", backlog }).into_response()
    } else {
        let reason = problems.join("; ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(NotReady { status: "not_ready", reason }),
        )
            .into_response()
    }
}

/// Prometheus metrics: requests by source and status, ack latency, backlog, lag, DLQ size.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String,
        content_type = "text/plain; version=0.0.4"))
)]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics::gauge!("tradehook_backlog").set(state.store.backlog() as f64);
    // 0 once nothing waits: left unset, the gauge would keep the age of the last backlog and an
    // alert on it would never clear.
    if let Ok(oldest) = state.store.oldest_pending().await {
        let age = oldest.map_or(0.0, |at| crate::store::seconds_since(at, crate::store::now_ms()));
        metrics::gauge!("tradehook_oldest_pending_seconds").set(age);
    }
    if let Ok(size) = state.store.dlq_size().await {
        metrics::gauge!("tradehook_dlq_size").set(size as f64);
    }
    if let Some(limiter) = &state.ip_limiter {
        metrics::gauge!("tradehook_tracked_client_ips").set(limiter.tracked() as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
