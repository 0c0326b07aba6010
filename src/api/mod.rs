//! The HTTP API besides ingest: `/api/v1/*` (admin token or signed requests) and the
//! unauthenticated health and metrics endpoints. Each resource lives in its own file with its own
//! `router()`, an `OpenApiRouter` whose `routes!(…)` put each handler in both the router and the
//! OpenAPI document; `openapi.rs` explains how a new resource file joins both.

pub mod auth;
pub mod dlq;
pub mod events;
pub mod health;
pub mod intents;
pub mod live;
pub mod openapi;
pub mod rejection;
pub mod signing;
pub mod state;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::server::AppState;

/// A query string as a handler receives it: parsed, or why not.
pub(crate) type QueryResult<T> = Result<Query<T>, QueryRejection>;

/// The parsed query string, or 400 `invalid_query` naming what is wrong.
pub(crate) fn query<T>(query: QueryResult<T>) -> Result<T, ApiError> {
    query.map(|Query(value)| value).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// A JSON body that could not be taken: 415 without a JSON content type, 413 over the limit,
/// otherwise 400 `invalid_body` naming what is wrong.
pub(crate) fn body_rejection(rejection: JsonRejection) -> ApiError {
    let reason = rejection.body_text();
    match rejection {
        // `curl -d` alone sends a form content type: say how to send JSON.
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{reason} (with curl: -H 'Content-Type: application/json')"),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", reason)
        }
        _ => ApiError::bad_request("invalid_body", reason),
    }
}

/// Deserializes an optional count given as a JSON integer, a whole JSON number (`2.0`, which
/// JSON Schema also calls an integer) or, in a query string, its text.
pub(crate) fn whole_number<'de, D>(deserializer: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct WholeNumber;
    impl serde::de::Visitor<'_> for WholeNumber {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number from 0 to 4294967295")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            u32::try_from(v).map(Some).map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u32::try_from(v).map(Some).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                Ok(Some(v as u32))
            } else {
                Err(E::custom(format!("{v} is not a whole number in range")))
            }
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v.parse::<u64>() {
                Ok(n) => self.visit_u64(n),
                Err(_) => v
                    .parse::<f64>()
                    .map_err(|_| E::custom(format!("`{v}` is not a number")))
                    .and_then(|n| self.visit_f64(n)),
            }
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(WholeNumber)
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

/// Refuses a NUL in a path or query (`%00`) or in any string or key of a JSON body: no store
/// keeps a NUL in text (PostgreSQL refuses it, and a query quoting one fails), no id, filter or
/// field of the API has one, and the document says so (`openapi::finish`).
async fn refuse_nul(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::bad_request("invalid_request", "the path or query holds a NUL character (%00)")
            .into_response();
    }
    let json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match auth::read_body(&state, &parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    // Anything else wrong with the body is the handler's to answer.
    if crate::ingest::guard::screen(&bytes) == Err(crate::ingest::guard::JsonError::Nul) {
        return ApiError::bad_request("invalid_body", "a string of the body holds a NUL character (\\u0000)")
            .into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// `/api/v1` (behind the admin token or request signing) merged with the health routes. A new
/// resource file adds `.merge(<resource>::router())` to `v1` here.
pub fn router(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let v1 = OpenApiRouter::new()
        .merge(events::router())
        .merge(status::router())
        .merge(state::router())
        .merge(dlq::router())
        .merge(webhooks::router())
        .merge(intents::router())
        .merge(live::router())
        .layer(DefaultBodyLimit::max(signing::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refuse_nul))
        .layer(axum::middleware::from_fn_with_state(state, auth::require_credentials));
    OpenApiRouter::new().nest("/api/v1", v1).merge(health::router())
}
