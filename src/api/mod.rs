//! The HTTP API besides ingest: `/api/v1/*` (admin-authenticated) and the unauthenticated health
//! and metrics endpoints. Each resource lives in its own file with its own `router()`.

pub mod auth;
pub mod dlq;
pub mod events;
pub mod health;
pub mod state;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::Router;

use crate::error::ApiError;
use crate::server::AppState;

/// A query string as a handler receives it: parsed, or why not.
pub(crate) type QueryResult<T> = Result<Query<T>, QueryRejection>;

/// The parsed query string, or 400 `invalid_query` naming what is wrong.
pub(crate) fn query<T>(query: QueryResult<T>) -> Result<T, ApiError> {
    query.map(|Query(value)| value).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// A page size: `default` when absent, otherwise between 1 and `max`, else 400.
pub(crate) fn limit(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = value.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_query", format!("`limit` must be between 1 and {max}")))
    }
}

/// `/api/v1` (behind the admin token) merged with the health routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let v1 = Router::new()
        .merge(events::router())
        .merge(status::router())
        .merge(state::router())
        .merge(dlq::router())
        .merge(webhooks::router())
        .layer(axum::middleware::from_fn_with_state(state, auth::require_admin));
    Router::new().nest("/api/v1", v1).merge(health::router())
}
