//! Authentication of the management API: `Authorization: Bearer <admin token>`.
//!
//! The token is compared in constant time; a missing or wrong token answers 401 with a JSON
//! reason and never says which part was wrong beyond "missing" or "invalid".

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::server::AppState;

/// Middleware that lets a request through only with the admin token.
pub async fn require_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        None => ApiError::unauthorized("missing_credentials", "send Authorization: Bearer <admin token>")
            .into_response(),
        Some(token) if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => {
            ApiError::unauthorized("invalid_credentials", "the admin token is not valid").into_response()
        }
    }
}
