//! Bad input always gets the project's JSON error body, even when axum answers it.
//!
//! axum's own refusals — a path segment that is not valid UTF-8, a missing JSON content type, a
//! body over the limit, a method the route does not take (405, empty body) — are plain text or
//! empty. [`json_errors`] runs on every answer and rewrites an error answer that is not JSON into
//! `{"error": code, "reason": text}` with the same status and headers (`Allow` stays), so a client
//! can rely on one shape for every 4xx and 5xx. Answers the handlers built are JSON already and
//! pass through untouched.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use crate::error::ApiError;

/// The most of a plain-text rejection kept as the reason.
const MAX_REASON: usize = 1024;

/// Rewrites a non-JSON error answer into the JSON error body; leaves every other answer alone.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match Limited::new(body, MAX_REASON * 4).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let reason = reason(status, &parts.headers, text);
    let mut rebuilt = ApiError::new(status, code(status), reason).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/problem+json"))
}

/// A stable code for an answer axum made.
fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "body_timeout",
        411 => "length_required",
        413 => "body_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "invalid_body",
        431 => "headers_too_large",
        500 => "internal",
        503 => "unavailable",
        _ if status.is_client_error() => "bad_request",
        _ => "error",
    }
}

/// axum's text when it has one (it names what was wrong), else a sentence for the status.
fn reason(status: StatusCode, headers: &HeaderMap, text: String) -> String {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds `Allow` after this layer has run on a route's 405, so it is not always here.
        return match headers.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
            Some(allowed) if !allowed.is_empty() => {
                format!("this path does not take this method; it takes {allowed}")
            }
            _ => "this path does not take this method; the Allow header lists those it takes".into(),
        };
    }
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    text.chars().take(MAX_REASON).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain-text answer as axum makes it.
    fn plain(status: StatusCode, body: &str) -> Response {
        (status, body.to_string()).into_response()
    }

    async fn json(response: Response) -> (StatusCode, HeaderMap, serde_json::Value) {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn plain_text_rejection_becomes_json_with_its_text() {
        let response = plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        );
        let (status, _, body) = json(json_errors(response).await).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["error"], "unsupported_media_type");
        assert_eq!(body["reason"], "Expected request with `Content-Type: application/json`");
    }

    #[tokio::test]
    async fn empty_405_keeps_allow_and_names_the_methods() {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "");
        response.headers_mut().insert(header::ALLOW, "GET,HEAD".parse().unwrap());
        let (status, headers, body) = json(json_errors(response).await).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(body["error"], "method_not_allowed");
        assert!(body["reason"].as_str().unwrap().contains("GET,HEAD"), "{body}");
    }

    #[tokio::test]
    async fn json_and_successful_answers_pass_untouched() {
        let error = ApiError::bad_request("invalid_query", "no").into_response();
        let (_, _, body) = json(json_errors(error).await).await;
        assert_eq!(body["error"], "invalid_query");
        let ok = json_errors(plain(StatusCode::OK, "metrics text")).await;
        let bytes = ok.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"metrics text");
    }
}
