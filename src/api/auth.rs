//! Authentication of the management API (SPEC §6): `Authorization: Bearer <admin token>`, or
//! seed 001's request signing (`X-API-Key`, `X-Timestamp`, `X-Signature`; see [`super::signing`]).
//!
//! The token is compared in constant time. A signed request's body is read here (at most
//! [`MAX_BODY`], 413 beyond) because the signature covers it, then handed on to the handler
//! unchanged. Every refusal is 401 JSON with a distinct code — missing credentials, invalid token,
//! unknown key, invalid or stale timestamp, bad signature — and never repeats a secret.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use subtle::ConstantTimeEq;

use super::signing::{self, SignedRequest, MAX_BODY};
use crate::error::ApiError;
use crate::server::AppState;

const API_KEY: &str = "X-API-Key";
const TIMESTAMP: &str = "X-Timestamp";
const SIGNATURE: &str = "X-Signature";

/// Middleware that lets a request through only with the admin token or a valid signature.
pub async fn require_credentials(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let authorization = headers.get(header::AUTHORIZATION);
    let bearer = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let refusal = match bearer {
        Some(token) if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) => {
            return next.run(request).await;
        }
        Some(_) => ApiError::unauthorized("invalid_credentials", "the admin token is not valid"),
        None if headers.contains_key(API_KEY) => match check_signed(&state, request).await {
            Ok(request) => return next.run(request).await,
            Err(error) => error,
        },
        None if authorization.is_some() => {
            ApiError::unauthorized("invalid_credentials", "Authorization must be `Bearer <admin token>`")
        }
        None => ApiError::unauthorized(
            "missing_credentials",
            "send Authorization: Bearer <admin token>, or X-API-Key, X-Timestamp and X-Signature",
        ),
    };
    metrics::counter!("tradehook_api_refusals_total", "error" => refusal.code).increment(1);
    refusal.into_response()
}

/// Reads the body of a signed request, verifies the signature, and rebuilds the request with
/// the same body for the handler.
async fn check_signed(state: &AppState, request: Request) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let text = |name: &'static str| -> Result<&str, ApiError> {
        let value = parts.headers.get(name).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_credentials",
                format!("a signed request needs X-API-Key, X-Timestamp and X-Signature; {name} is missing"),
            )
        })?;
        value.to_str().map_err(|_| {
            ApiError::unauthorized("missing_credentials", format!("{name} is not visible ASCII"))
        })
    };
    let (key, timestamp, signature) = (text(API_KEY)?, text(TIMESTAMP)?, text(SIGNATURE)?);
    let bytes = read_body(state, &parts.headers, body).await?;
    // Inside the `/api/v1` nest the URI has lost its prefix; the client signed the path it sent.
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
    let signed = SignedRequest {
        key,
        timestamp,
        signature,
        method: parts.method.as_str(),
        path: uri.path(),
        query: uri.query(),
        body: &bytes,
    };
    signing::verify(&state.config.api.keys, &signed, chrono::Utc::now().timestamp())
        .map_err(|e| ApiError::unauthorized(e.code(), e.to_string()))?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The whole body, within [`MAX_BODY`] (413) and the server's body timeout (408).
pub(super) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over the API's limit of {MAX_BODY} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    let timeout = state.config.server.body_timeout;
    match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("body not received within {timeout:?}"),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request("body_unreadable", format!("could not read the body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
