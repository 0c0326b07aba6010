//! The HTTP half of ingest: the routes that receive webhooks and the request path of the module
//! documentation, from finding the source to the durable append and the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::payload::truncate;
use super::schema::IngestHeaders;
use super::signature::{Inbound, Scheme, SignatureError, Verified};
use super::source::Source;
use super::{event_id, guard, payload, source, DEFAULT_SOURCE};
use crate::config::Format;
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::{now_ms, Appended, NewEvent};
use crate::trading::tradingview::SIGNAL_GENERATED;

/// The routes that receive webhooks.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(receive_default).map(only_post))
        .routes(routes!(receive_named).map(only_post))
}

/// Answers any other method with a JSON 405 naming POST, counted for a configured source.
fn only_post(route: MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>> {
    route.fallback(|State(state): State<Arc<AppState>>, source: Option<Path<String>>| async move {
        let name = source.map_or_else(|| DEFAULT_SOURCE.to_owned(), |Path(name)| name);
        // Only configured sources: a label per requested name would let anyone grow the metrics.
        if state.sources.contains_key(&name) {
            metrics::counter!("tradehook_requests_total", "source" => name, "status" => "405").increment(1);
        }
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "webhooks are received with POST",
        )
        .into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        response
    })
}

/// The answer to a webhook that is stored: `{"status":"accepted"|"duplicate","id":…}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Acknowledgement {
    /// `accepted` (stored and committed now) or `duplicate` (this source already had the event id).
    pub status: AckStatus,
    /// The stored event's id (`evt_…`); for a duplicate, the first one's.
    pub id: String,
}

/// Whether the event is new or a resend.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Newly stored and committed.
    Accepted,
    /// Already stored for this source; nothing runs again.
    Duplicate,
}

/// The answers of both ingest routes, as the OpenAPI document lists them.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes answers; never built
enum IngestResponses {
    /// Stored (or already stored): acknowledged
    #[response(status = 200)]
    Stored(Acknowledgement),
    /// Not JSON, nested deeper than 64, or a NUL in a string
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Signature missing, invalid or stale
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Client address not in the source's allow-list
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No source of that name (`/webhook`: no `default` source)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Body not received in time
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// Body over the source's limit
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A `Content-Encoding` other than `identity`: signatures are over the bytes as sent
    #[response(status = 415)]
    Encoded(ErrorBody),
    /// Rate limited; see `Retry-After`
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Cannot store now; see `Retry-After`
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// How the OpenAPI document describes `?token=`.
const TOKEN_PARAM: &str = "`token` scheme: the shared token, when it is not in the body's `passphrase` field";

// The handlers take the whole request and split it: the `HeaderMap` and `RawQuery` extractors
// would copy the headers and the query string of every webhook.

/// Receives a webhook for the `default` source.
#[utoipa::path(
    post,
    path = "/webhook",
    tag = "ingest",
    params(IngestHeaders, ("token" = Option<String>, Query, description = TOKEN_PARAM)),
    request_body(content = Object, content_type = "application/json",
        description = "The event, signed over its raw bytes by the source's scheme"),
    responses(IngestResponses)
)]
async fn receive_default(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    receive(&state, DEFAULT_SOURCE, peer, request).await
}

/// Receives a webhook for a configured source.
#[utoipa::path(
    post,
    path = "/webhooks/{source}",
    tag = "ingest",
    params(
        ("source" = String, Path, description = "A configured source's name", example = "default"),
        IngestHeaders,
        ("token" = Option<String>, Query, description = TOKEN_PARAM)
    ),
    request_body(content = Object, content_type = "application/json",
        description = "The event, signed over its raw bytes by the source's scheme"),
    responses(IngestResponses)
)]
async fn receive_named(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    receive(&state, &source, peer, request).await
}

/// One webhook, from request to answer; records metrics for whatever the outcome.
async fn receive(state: &AppState, source_name: &str, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let Some(source) = state.sources.get(source_name) else {
        metrics::counter!("tradehook_requests_total", "source" => "unknown", "status" => "404").increment(1);
        return ApiError::not_found(format!("no source named `{}`", truncate(source_name, 64)))
            .into_response();
    };
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let client = guard::client_ip(peer.ip(), headers, &state.config.server.trusted_proxies);
    let outcome = check_and_store(state, source, client, parts.uri.query(), headers, body).await;
    match outcome {
        Ok(appended) => {
            source.metrics.ok.increment(1);
            source.metrics.ack_seconds.record(started.elapsed().as_secs_f64());
            state.live.ingest.record_ack(started.elapsed());
            accepted_response(&appended)
        }
        Err(Rejection { error, body }) => {
            state.live.ingest.record_refused();
            let status = error.status.as_str().to_owned();
            metrics::counter!("tradehook_requests_total", "source" => source.name.clone(), "status" => status)
                .increment(1);
            if matches!(error.status.as_u16(), 400 | 401 | 403 | 408 | 413 | 415 | 429) {
                if error.status == StatusCode::UNAUTHORIZED {
                    metrics::counter!("tradehook_signature_failures_total", "source" => source.name.clone())
                        .increment(1);
                    state.notifier.count_signature_failure();
                }
                let reason = &error.reason;
                state.audit.record(
                    client.to_string(),
                    &source.name,
                    error.status.as_u16(),
                    reason,
                    &body,
                    source.token_field.as_deref(),
                );
                tracing::debug!(source = %source.name, %client, status = error.status.as_u16(), %reason, "webhook refused");
            }
            error.into_response()
        }
    }
}

/// A refusal and what of the body was read, for the audit log.
struct Rejection {
    error: ApiError,
    body: Bytes,
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection { error, body: Bytes::new() }
    }
}

async fn check_and_store(
    state: &AppState,
    source: &Source,
    client: std::net::IpAddr,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Appended, Rejection> {
    if !source.allow_ips.is_empty() && !guard::ip_in(&source.allow_ips, client) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            format!("{client} is not allowed to send to this source"),
        )
        .into());
    }
    if let Some(limiter) = &state.ip_limiter {
        limiter.check(client).map_err(|wait| rate_limited("this client", wait))?;
    }
    refuse_encoded(headers)?;
    let raw = read_body(state, source, headers, body).await?;
    let now = now_ms();
    let verified =
        source.verifier.verify(&Inbound { headers, query, body: &raw }, now / 1000).map_err(|e| {
            // A token field cannot be found in a body that is not JSON: say what is wrong with
            // the body (400), not that the token is missing.
            if matches!(e, SignatureError::Missing(_)) && source.verifier.scheme() == Scheme::Token {
                if let Err(invalid) = payload::read(&raw, &source.id_fields) {
                    let error = ApiError::bad_request("invalid_json", invalid.to_string());
                    return Rejection { error, body: raw.clone() };
                }
            }
            Rejection { error: ApiError::unauthorized("invalid_signature", e.to_string()), body: raw.clone() }
        })?;
    // Counted only once the sender proved it holds the secret: unsigned junk from anyone who
    // knows the URL must not use up the source's budget and get its real events refused.
    if let Some(limiter) = &source.limiter {
        limiter.check().map_err(|wait| rate_limited("this source", wait))?;
    }
    let body = match verified {
        Verified::Intact => raw.clone(),
        Verified::Redacted(stripped) => Bytes::from(stripped),
    };
    let payload = payload::read(&body, &source.id_fields).map_err(|e| Rejection {
        error: ApiError::bad_request("invalid_json", e.to_string()),
        body: body.clone(),
    })?;
    // The raw bytes identify a TradingView retry even when the token was stripped from them.
    let id_headers = source.id_headers.then_some(headers);
    let (event_key, _) = event_id::event_id(id_headers, payload.body_id, &raw);
    let event = NewEvent {
        source: source.name.clone(),
        event_key,
        event_type: match source.format {
            // What the worker makes of every alert, so lists and filters by type find them.
            Format::Tradingview => Some(SIGNAL_GENERATED.to_owned()),
            Format::Vibetrading | Format::Generic => payload.event_type,
        },
        headers: source::headers_for_storage(headers, &source.credentials),
        body,
        client_ip: client.to_string(),
        received_at: now,
    };
    state.store.append(event).await.map_err(|e| Rejection::from(ApiError::from(e)))
}

/// Refuses a compressed body: signatures and event ids are over the bytes as sent, and a
/// gzip body read as JSON would only be refused later with a misleading reason.
fn refuse_encoded(headers: &HeaderMap) -> Result<(), Rejection> {
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    if encoded {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "send the body uncompressed: Content-Encoding must be absent or identity",
        )
        .into());
    }
    Ok(())
}

/// Reads the whole body within the source's size limit and the server's body timeout.
async fn read_body(
    state: &AppState,
    source: &Source,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Rejection> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body is over this source's limit of {} bytes", source.max_body),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > source.max_body) {
        return Err(too_large().into());
    }
    let limit = usize::try_from(source.max_body).unwrap_or(usize::MAX);
    match tokio::time::timeout(state.config.server.body_timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("body not received within {:?}", state.config.server.body_timeout),
        )
        .into()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large().into()),
        Ok(Err(e)) => {
            Err(ApiError::bad_request("body_unreadable", format!("could not read the body: {e}")).into())
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn rate_limited(who: &str, wait: u64) -> Rejection {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from {who}; retry in {wait} s"),
    )
    .retry_after(wait)
    .into()
}

/// `{"status":"accepted"|"duplicate","id":…}`, written without building a JSON tree.
fn accepted_response(appended: &Appended) -> Response {
    let (status, id) = match appended {
        Appended::Accepted(id) => ("accepted", id),
        Appended::Duplicate(id) => ("duplicate", id),
    };
    let mut body = String::with_capacity(32 + id.len());
    body.push_str("{\"status\":\"");
    body.push_str(status);
    body.push_str("\",\"id\":");
    source::push_json_string(&mut body, id);
    body.push('}');
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written answer has exactly the shape the OpenAPI document declares.
    #[tokio::test]
    async fn accepted_answer_matches_its_documented_schema() {
        for (appended, status) in [
            (Appended::Accepted("evt_1".into()), AckStatus::Accepted),
            (Appended::Duplicate("evt_\"2\"".into()), AckStatus::Duplicate),
        ] {
            let response = accepted_response(&appended);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let ack: Acknowledgement = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(ack.status, status);
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value.as_object().unwrap().len(), 2, "no undocumented fields: {value}");
        }
    }
}
