//! The HTTP API besides ingest: `/api/v1/*` (admin-authenticated) and the unauthenticated health
//! and metrics endpoints. Each resource lives in its own file with its own `router()`.

pub mod auth;
pub mod dlq;
pub mod events;
pub mod health;
pub mod state;
pub mod status;

use std::sync::Arc;

use axum::Router;

use crate::server::AppState;

/// `/api/v1` (behind the admin token) merged with the health routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let v1 = Router::new()
        .merge(events::router())
        .merge(status::router())
        .merge(state::router())
        .merge(dlq::router())
        .layer(axum::middleware::from_fn_with_state(state, auth::require_admin));
    Router::new().nest("/api/v1", v1).merge(health::router())
}
