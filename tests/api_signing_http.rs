//! Seed 001's request signing on `/api/v1` over real HTTP: `X-API-Key`, `X-Timestamp`,
//! `X-Signature` (hex HMAC-SHA256 of timestamp + METHOD + path + body), beside the Bearer token.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use sha2::Sha256;
use tradehook::config::ApiKey;

const KEY: &str = "ak_live_1";
const KEY_SECRET: &str = "api-secret-for-tests";

async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.api.keys = vec![ApiKey { key: KEY.into(), secret: KEY_SECRET.into() }];
    })
    .await
}

/// Signs independently of the server's code: the seed's recipe, spelled out.
fn signature(secret: &str, timestamp: &str, method: &str, path: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{method}{path}").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sends `method path` with the signing headers, signing `signed_path` and `signed_body` at
/// `timestamp` but sending `body`.
#[allow(clippy::too_many_arguments)]
async fn send(
    server: &TestServer,
    key: &str,
    timestamp: i64,
    method: Method,
    path: &str,
    signed_path: &str,
    signed_body: &[u8],
    body: &[u8],
) -> Answer {
    let ts = timestamp.to_string();
    let sig = signature(KEY_SECRET, &ts, method.as_str(), signed_path, signed_body);
    let headers = [
        ("x-api-key", key),
        ("x-timestamp", ts.as_str()),
        ("x-signature", sig.as_str()),
        ("content-type", "application/json"),
    ];
    request(method, &server.url(path), &headers, body.to_vec()).await
}

async fn signed(server: &TestServer, method: Method, path: &str, body: &[u8]) -> Answer {
    send(server, KEY, now(), method, path, path, body, body).await
}

fn assert_refused(answer: &Answer, code: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(answer.json["error"], code, "{}", answer.text);
    assert!(answer.json["reason"].as_str().is_some_and(|r| !r.is_empty()), "{}", answer.text);
    assert!(!answer.text.contains(KEY_SECRET), "the reason repeats the secret: {}", answer.text);
}

#[tokio::test]
async fn bearer_token_is_still_accepted() {
    let server = server().await;
    let answer = admin_get(&server, "/api/v1/status").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn signed_get_is_accepted_with_or_without_the_query_in_the_signature() {
    let server = server().await;
    let answer = signed(&server, Method::GET, "/api/v1/status", b"").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.json["backlog"].is_number(), "{}", answer.text);

    let with_query = "/api/v1/events?limit=5";
    let answer = send(&server, KEY, now(), Method::GET, with_query, with_query, b"", b"").await;
    assert_eq!(answer.status, StatusCode::OK, "query signed: {}", answer.text);
    let answer = send(&server, KEY, now(), Method::GET, with_query, "/api/v1/events", b"", b"").await;
    assert_eq!(answer.status, StatusCode::OK, "path only signed: {}", answer.text);
}

#[tokio::test]
async fn signed_post_with_a_body_reaches_the_handler_intact() {
    let server = server().await;
    let body = br#"{"filter":{"reason":"nothing matches this"}}"#;
    let answer = signed(&server, Method::POST, "/api/v1/dlq/replay", body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.json["replayed"], 0);
    // The handler saw the body: an invalid one signed correctly is refused by the handler.
    let answer = signed(&server, Method::POST, "/api/v1/dlq/replay", br#"{"bogus":1}"#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.json["error"], "invalid_body");
}

#[tokio::test]
async fn timestamp_older_or_newer_than_thirty_seconds_is_stale() {
    let server = server().await;
    for offset in [-31, 31, -3600] {
        let answer =
            send(&server, KEY, now() + offset, Method::GET, "/api/v1/status", "/api/v1/status", b"", b"")
                .await;
        assert_refused(&answer, "stale_timestamp");
        assert!(answer.json["reason"].as_str().unwrap().contains("within 30 s"), "{}", answer.text);
    }
    let answer =
        send(&server, KEY, now() - 25, Method::GET, "/api/v1/status", "/api/v1/status", b"", b"").await;
    assert_eq!(answer.status, StatusCode::OK, "25 s of skew is within the window: {}", answer.text);
}

#[tokio::test]
async fn wrong_signature_is_refused() {
    let server = server().await;
    let ts = now().to_string();
    let headers = [("x-api-key", KEY), ("x-timestamp", ts.as_str()), ("x-signature", "00ff")];
    let answer = request(Method::GET, &server.url("/api/v1/status"), &headers, Vec::new()).await;
    assert_refused(&answer, "invalid_signature");
    // Signed for another method or path: refused too.
    let answer = send(&server, KEY, now(), Method::GET, "/api/v1/status", "/api/v1/audit", b"", b"").await;
    assert_refused(&answer, "invalid_signature");
}

#[tokio::test]
async fn body_changed_after_signing_is_refused() {
    let server = server().await;
    let path = "/api/v1/dlq/replay";
    let answer =
        send(&server, KEY, now(), Method::POST, path, path, br#"{"ids":[]}"#, br#"{"ids":["dlq_1"]}"#).await;
    assert_refused(&answer, "invalid_signature");
}

#[tokio::test]
async fn unknown_key_is_refused() {
    let server = server().await;
    let path = "/api/v1/status";
    let answer = send(&server, "ak_nobody", now(), Method::GET, path, path, b"", b"").await;
    assert_refused(&answer, "unknown_api_key");
}

#[tokio::test]
async fn no_credentials_or_incomplete_ones_are_refused() {
    let server = server().await;
    let answer = request(Method::GET, &server.url("/api/v1/status"), &[], Vec::new()).await;
    assert_refused(&answer, "missing_credentials");
    let answer = request(Method::GET, &server.url("/api/v1/status"), &[("x-api-key", KEY)], Vec::new()).await;
    assert_refused(&answer, "missing_credentials");
    assert!(answer.json["reason"].as_str().unwrap().contains("X-Timestamp"), "{}", answer.text);
    let answer =
        request(Method::GET, &server.url("/api/v1/status"), &[("authorization", "Bearer nope")], Vec::new())
            .await;
    assert_refused(&answer, "invalid_credentials");
}

#[tokio::test]
async fn signed_body_over_one_mebibyte_is_413_json() {
    let server = server().await;
    let body = vec![b' '; (1 << 20) + 1];
    let answer = signed(&server, Method::POST, "/api/v1/dlq/replay", &body).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.text);
    assert_eq!(answer.json["error"], "body_too_large");
}
