//! The one error type that HTTP handlers return: a status, a stable code and a reason.
//!
//! Every error answer is JSON `{"error": <code>, "reason": <text>}` so a sender or an operator
//! can see what was wrong and what to do. Internal errors are logged with their context and
//! answered with an opaque reason; nothing secret is ever put in a reason.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use std::time::Duration;

use crate::log_throttle::LogThrottle;
use crate::store::StoreError;

/// An HTTP error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_signature`.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and reason.
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        ApiError { status, code, reason: reason.into(), retry_after: None }
    }

    /// Adds a `Retry-After` in seconds.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 400.
    pub fn bad_request(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, reason)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, reason)
    }

    /// 404.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// 500 with an opaque reason; the detail is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => {
                // Every request gets this while the store is down: the log gets it once a minute.
                static THROTTLE: LogThrottle = LogThrottle::new(Duration::from_secs(60));
                if let Some(held_back) = THROTTLE.admit() {
                    tracing::warn!(%reason, held_back, "store unavailable: answering 503");
                }
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("the store is unavailable: {reason}"),
                )
                .retry_after(5)
            }
            StoreError::Saturated(reason) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("cannot store now: {reason}"),
            )
            .retry_after(1),
            StoreError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

/// The JSON body of every error answer; also its schema in the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_query`.
    #[schema(example = "invalid_query")]
    pub error: String,
    /// What was wrong and what to do, for a person.
    #[schema(example = "`limit` must be between 1 and 1000")]
    pub reason: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_string(), reason: self.reason };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
