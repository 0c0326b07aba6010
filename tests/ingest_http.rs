//! Ingest over real HTTP: the answers of SPEC §1 for each guard, de-duplication, and the read API.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use tradehook::config::{RateLimit, SourceConfig};
use tradehook::ingest::signature::Scheme;

#[tokio::test]
async fn accepted_event_is_stored_and_readable_by_its_id() {
    let server = TestServer::start().await;
    let answer = post_event(&server, &order_event("e1")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["status"], "accepted");
    let id = answer.json["id"].as_str().unwrap().to_string();
    let stored = admin_get(&server, &format!("/api/v1/events/{id}")).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.json["eventKey"], "e1");
    assert_eq!(stored.json["eventType"], "order.updated");
    assert_eq!(stored.json["source"], "default");
    assert_eq!(stored.json["payload"]["data"]["orderId"], "o-e1");
    assert_eq!(stored.json["clientIp"], "127.0.0.1");

    server.stop().await;
}

#[tokio::test]
async fn the_events_api_shows_the_payload_exactly_as_received() {
    let server = TestServer::start().await;
    // Decimals an f64 cannot hold, trailing zeros and key order are part of what was sent.
    let body = r#"{"id":"raw1","event":"order.updated","data":{"orderId":"o-raw","price":1.50,"quantity":0.123456789012345678901,"cumulative":12345678901234567890123}}"#;
    let answer = post_event(&server, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let id = answer.json["id"].as_str().unwrap().to_string();
    let one = admin_get(&server, &format!("/api/v1/events/{id}")).await;
    assert!(one.text.contains(&format!("\"payload\":{body}")), "{}", one.text);
    let list = admin_get(&server, "/api/v1/events").await;
    assert!(list.text.contains(&format!("\"payload\":{body}")), "{}", list.text);
    server.stop().await;
}

#[tokio::test]
async fn duplicate_event_answers_duplicate_with_the_first_id() {
    let server = TestServer::start().await;
    let first = post_event(&server, &order_event("dup")).await;
    let second = post_event(&server, &order_event("dup")).await;
    assert_eq!(first.json["status"], "accepted");
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json["status"], "duplicate");
    assert_eq!(second.json["id"], first.json["id"]);
    let list = admin_get(&server, "/api/v1/events").await;
    assert_eq!(list.json["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn same_event_id_header_deduplicates_different_bodies() {
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    let a = post_signed(&url, Scheme::HmacSha256, SECRET, br#"{"a":1}"#, &[("x-event-id", "hdr-1")]).await;
    let b = post_signed(&url, Scheme::HmacSha256, SECRET, br#"{"a":2}"#, &[("x-event-id", "hdr-1")]).await;
    assert_eq!(a.json["status"], "accepted");
    assert_eq!(b.json["status"], "duplicate");
}

/// No scheme but standard-webhooks signs the id headers: a captured request re-sent under a new
/// `X-Event-Id` (or `webhook-id`) is a new event by default (SPEC §1 order). A source with
/// `id_headers = false` takes the id from the signed body, so such a replay is a duplicate.
#[tokio::test]
async fn a_source_that_ignores_id_headers_answers_a_replay_under_a_new_id_header_as_a_duplicate() {
    for (scheme, secret) in [(Scheme::HmacSha256, SECRET), (Scheme::Stripe, "whsec_stripe-test-secret")] {
        let server = TestServer::start_with(|c| {
            c.sources[0].signature = scheme;
            c.sources[0].secrets = vec![secret.into()];
            c.sources[0].id_headers = false;
        })
        .await;
        let url = server.url("/webhook");
        for body in [&br#"{"id":"ord-evt-1","a":1}"#[..], br#"{"a":1}"#] {
            let first = post_signed(&url, scheme, secret, body, &[]).await;
            assert_eq!(first.json["status"], "accepted", "{scheme:?}: {}", first.json);
            for (name, value) in [("x-event-id", "attacker-1"), ("webhook-id", "attacker-2")] {
                let replay = post_signed(&url, scheme, secret, body, &[(name, value)]).await;
                assert_eq!(
                    (replay.json["status"].as_str(), &replay.json["id"]),
                    (Some("duplicate"), &first.json["id"]),
                    "{scheme:?} with {name}"
                );
            }
        }
        server.stop().await;
    }
    // The default trusts the header, as SPEC §1 orders.
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    let body = br#"{"id":"ord-evt-1"}"#;
    assert_eq!(post_signed(&url, Scheme::HmacSha256, SECRET, body, &[]).await.json["status"], "accepted");
    let replay = post_signed(&url, Scheme::HmacSha256, SECRET, body, &[("x-event-id", "other")]).await;
    assert_eq!(replay.json["status"], "accepted");
}

#[tokio::test]
async fn body_without_id_is_deduplicated_by_its_hash() {
    let server = TestServer::start().await;
    let body = r#"{"ticker":"BTCUSD","action":"buy"}"#;
    assert_eq!(post_event(&server, body).await.json["status"], "accepted");
    assert_eq!(post_event(&server, body).await.json["status"], "duplicate");
    let other = r#"{"ticker":"BTCUSD","action":"sell"}"#;
    assert_eq!(post_event(&server, other).await.json["status"], "accepted");
}

#[tokio::test]
async fn number_ids_a_float_cannot_hold_keep_different_events_apart() {
    let server = TestServer::start().await;
    let first = r#"{"id":30000000000000000001,"order":"first"}"#;
    let second = r#"{"id":30000000000000000002,"order":"second"}"#;
    assert_eq!(post_event(&server, first).await.json["status"], "accepted");
    assert_eq!(
        post_event(&server, second).await.json["status"],
        "accepted",
        "a different event, not a duplicate"
    );
    assert_eq!(post_event(&server, first).await.json["status"], "duplicate");
    let integer = r#"{"id":18446744073709551615,"order":"third"}"#;
    assert_eq!(post_event(&server, integer).await.json["status"], "accepted");
    let list = admin_get(&server, "/api/v1/events").await;
    let keys: Vec<&str> =
        list.json["events"].as_array().unwrap().iter().filter_map(|e| e["eventKey"].as_str()).collect();
    assert_eq!(keys.len(), 3, "{}", list.text);
    assert!(keys.contains(&"18446744073709551615"), "{keys:?}");
    server.stop().await;
}

#[tokio::test]
async fn stored_headers_keep_no_credential_of_the_gateway_or_the_sender() {
    let other_secret = "other-source-secret-7c1d";
    // A Standard Webhooks secret's key is the base64 after `whsec_`: alone, it is the secret.
    let svix_key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let server = TestServer::start_with(|config| {
        config.sources.push(SourceConfig::new("other", Scheme::HmacSha256, vec![other_secret.into()]));
        config.sources.push(SourceConfig::new(
            "svix",
            Scheme::StandardWebhooks,
            vec![format!("whsec_{svix_key}")],
        ));
    })
    .await;
    let body = order_event("headers-1");
    let headers = [
        ("x-forwarded-note", other_secret),
        ("x-signing-material", svix_key),
        ("x-admin", ADMIN_TOKEN),
        ("x-auth-token", "sender-credential-1"),
        ("x-gitlab-token", "sender-credential-2"),
        ("x-webhook-secret", "sender-credential-3"),
        ("x-request-id", "req-42"),
    ];
    let answer =
        post_signed(&server.url("/webhook"), Scheme::HmacSha256, SECRET, body.as_bytes(), &headers).await;
    assert_eq!(answer.json["status"], "accepted", "{}", answer.text);
    let stored = admin_get(&server, &format!("/api/v1/events/{}", answer.json["id"].as_str().unwrap())).await;
    let text = stored.json["headers"].to_string();
    for credential in [other_secret, ADMIN_TOKEN, "sender-credential", svix_key] {
        assert!(!text.contains(credential), "{credential} stored: {text}");
    }
    assert_eq!(stored.json["headers"]["x-request-id"], "req-42", "other headers are kept: {text}");
    server.stop().await;
}

#[tokio::test]
async fn webhooks_default_path_is_the_same_source() {
    let server = TestServer::start().await;
    let url = server.url("/webhooks/default");
    let answer = post_signed(&url, Scheme::HmacSha256, SECRET, order_event("p").as_bytes(), &[]).await;
    assert_eq!(answer.json["status"], "accepted");
}

#[tokio::test]
async fn wrong_signature_is_401_and_lands_in_the_audit_log() {
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    let answer =
        post_signed(&url, Scheme::HmacSha256, "not-the-secret", order_event("x").as_bytes(), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json["error"], "invalid_signature");
    let missing = request(Method::POST, &url, &[], order_event("y").into_bytes()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(missing.json["reason"].as_str().unwrap().contains("X-Webhook-Signature"));
    let audit = admin_get(&server, "/api/v1/audit").await;
    let rejections = audit.json["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 2);
    assert_eq!(rejections[0]["status"], 401);
    assert_eq!(rejections[0]["source"], "default");
    assert!(rejections[0]["bodyPrefix"].as_str().unwrap().contains("order.updated"));
    let events = admin_get(&server, "/api/v1/events").await;
    assert!(events.json["events"].as_array().unwrap().is_empty(), "nothing unsigned is stored");
}

#[tokio::test]
async fn rotated_secret_still_verifies() {
    let server =
        TestServer::start_with(|c| c.sources[0].secrets = vec!["new-secret".into(), SECRET.into()]).await;
    let url = server.url("/webhook");
    let old = post_signed(&url, Scheme::HmacSha256, SECRET, order_event("r1").as_bytes(), &[]).await;
    let new = post_signed(&url, Scheme::HmacSha256, "new-secret", order_event("r2").as_bytes(), &[]).await;
    assert_eq!((old.status, new.status), (StatusCode::OK, StatusCode::OK));
}

#[tokio::test]
async fn unknown_source_is_404_with_a_reason() {
    let server = TestServer::start().await;
    let answer = post_signed(&server.url("/webhooks/nope"), Scheme::HmacSha256, SECRET, b"{}", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json["reason"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn other_methods_are_405_with_allow_header() {
    let server = TestServer::start().await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let answer = request(method, &server.url("/webhook"), &[], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.headers["allow"], "POST");
        assert_eq!(answer.json["error"], "method_not_allowed");
    }
    let nowhere = request(Method::GET, &server.url("/webhooks/no-such-source"), &[], Vec::new()).await;
    assert_eq!(nowhere.status, StatusCode::METHOD_NOT_ALLOWED);
    let metrics = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    assert!(
        metrics.text.contains("tradehook_requests_total{source=\"default\",status=\"405\"}"),
        "counted by source and status: {}",
        metrics.text
    );
    assert!(!metrics.text.contains("no-such-source"), "no label for a name nobody configured");
}

#[tokio::test]
async fn signed_body_that_is_not_json_is_400() {
    let server = TestServer::start().await;
    let answer = post_event(&server, "this is not json").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"], "invalid_json");
}

/// A NUL (`\u0000`) in any JSON string is refused at the door: PostgreSQL's text cannot hold it,
/// and an event stored with one would fail every commit that quotes it (an id, a type, a
/// dead-letter reason naming a bad status) — on PostgreSQL, the whole processing round.
#[tokio::test]
async fn a_nul_in_any_json_string_is_400_and_processing_goes_on() {
    let server = TestServer::start().await;
    let with_nul = [
        r#"{"id":"nul\u0000id","event":"order.created"}"#,
        r#"{"id":"nul-type","event":"order.\u0000created"}"#,
        r#"{"id":"nul-status","event":"order.updated","data":{"orderId":"o-nul","status":"filled\u0000"}}"#,
        r#"{"id":"nul-key","data":{"a\u0000b":1}}"#,
        r#"{"id":"nul-array","data":{"tags":["x","\u0000"]}}"#,
    ];
    for body in with_nul {
        let answer = post_event(&server, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text);
        assert_eq!(answer.json["error"], "invalid_json", "{body}");
        assert!(answer.json["reason"].as_str().unwrap().contains("NUL"), "{}", answer.text);
    }
    // An escaped backslash before `u0000` is no NUL.
    let mut literal: serde_json::Value = serde_json::from_str(&order_event("not-nul")).unwrap();
    literal["note"] = serde_json::Value::String(r"C:\u0000".into());
    assert!(literal.to_string().contains(r#""C:\\u0000""#), "{literal}");
    let literal = post_event(&server, &literal.to_string()).await;
    assert_eq!(literal.status, StatusCode::OK, "{}", literal.text);
    let valid = post_event(&server, &order_event("after-nul")).await;
    assert_eq!(valid.status, StatusCode::OK, "{}", valid.text);
    let status = wait_processed(server.addr).await;
    assert_eq!(status["dlq"], 0, "{status}");
}

#[tokio::test]
async fn nesting_deeper_than_64_is_400() {
    let server = TestServer::start().await;
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let answer = post_event(&server, &deep).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.json["reason"].as_str().unwrap().contains("64"));
    let ok = format!(r#"{{"id":"deep-ok","x":{}{}}}"#, "[".repeat(60), "]".repeat(60));
    assert_eq!(post_event(&server, &ok).await.status, StatusCode::OK);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let server = TestServer::start_with(|c| c.sources[0].max_body = 1024).await;
    let big = format!(r#"{{"id":"big","pad":"{}"}}"#, "x".repeat(2000));
    let answer = post_event(&server, &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["error"], "body_too_large");
}

#[tokio::test]
async fn a_compressed_body_is_415_and_not_stored() {
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    for coding in ["gzip", "br", "identity, gzip"] {
        // Signed over the bytes as sent, so only the encoding can be refused.
        let body = order_event(&format!("enc-{coding}"));
        let answer =
            post_signed(&url, Scheme::HmacSha256, SECRET, body.as_bytes(), &[("content-encoding", coding)])
                .await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{coding}: {}", answer.text);
        assert_eq!(answer.json["error"], "unsupported_encoding");
    }
    let plain = order_event("enc-identity");
    let answer =
        post_signed(&url, Scheme::HmacSha256, SECRET, plain.as_bytes(), &[("content-encoding", "identity")])
            .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let events = api_get(server.addr, "/events").await;
    assert_eq!(events.json["events"].as_array().unwrap().len(), 1, "{}", events.text);
    let audit = api_get(server.addr, "/audit").await;
    let rejections = audit.json["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 3, "refusals are audited: {}", audit.text);
    assert!(rejections.iter().all(|r| r["status"] == 415), "{}", audit.text);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let server = TestServer::start_with(|c| c.sources[0].max_body = 1024).await;
    let addr = server.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let chunk = "x".repeat(800);
        let request = format!(
            "POST /webhook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len(),
            chunk.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn slow_body_is_408() {
    let server = TestServer::start_with(|c| c.server.body_timeout = Duration::from_millis(300)).await;
    let addr = server.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(b"POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"id\":")
            .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_timeout"), "{response}");
}

#[tokio::test]
async fn client_outside_the_allow_list_is_403() {
    let server = TestServer::start_with(|c| c.sources[0].allow_ips = vec!["198.51.100.0/24".into()]).await;
    let answer = post_event(&server, &order_event("ip")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json["error"], "ip_not_allowed");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let allow = |c: &mut tradehook::config::Config| c.sources[0].allow_ips = vec!["198.51.100.0/24".into()];
    let untrusted = TestServer::start_with(allow).await;
    let url = untrusted.url("/webhook");
    let xff = [("x-forwarded-for", "198.51.100.7")];
    let answer = post_signed(&url, Scheme::HmacSha256, SECRET, order_event("f1").as_bytes(), &xff).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a client cannot spoof its address");

    let trusted = TestServer::start_with(|c| {
        allow(c);
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let url = trusted.url("/webhook");
    let answer = post_signed(&url, Scheme::HmacSha256, SECRET, order_event("f2").as_bytes(), &xff).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let stored =
        admin_get(&trusted, &format!("/api/v1/events/{}", answer.json["id"].as_str().unwrap())).await;
    assert_eq!(stored.json["clientIp"], "198.51.100.7");
}

#[tokio::test]
async fn source_rate_limit_answers_429_with_retry_after() {
    let server =
        TestServer::start_with(|c| c.sources[0].rate_limit = Some(RateLimit { per_second: 1, burst: 2 }))
            .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let answer = post_event(&server, &order_event(&format!("rl{i}"))).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait >= 1);
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn requests_with_a_bad_signature_do_not_use_up_the_source_limit() {
    let server =
        TestServer::start_with(|c| c.sources[0].rate_limit = Some(RateLimit { per_second: 1, burst: 2 }))
            .await;
    let url = server.url("/webhook");
    for i in 0..5 {
        let forged = post_signed(
            &url,
            Scheme::HmacSha256,
            "not-the-secret",
            order_event(&format!("x{i}")).as_bytes(),
            &[],
        )
        .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.text);
    }
    for i in 0..2 {
        let real = post_event(&server, &order_event(&format!("real{i}"))).await;
        assert_eq!(real.status, StatusCode::OK, "the sender with the secret keeps its budget: {}", real.text);
    }
}

#[tokio::test]
async fn client_ip_rate_limit_answers_429() {
    let server =
        TestServer::start_with(|c| c.server.ip_rate_limit = Some(RateLimit { per_second: 1, burst: 1 }))
            .await;
    assert_eq!(post_event(&server, &order_event("ip1")).await.status, StatusCode::OK);
    let limited = post_event(&server, &order_event("ip2")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn backlog_over_its_limit_answers_503_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.store.max_backlog = 2;
        c.worker.enabled = false;
    })
    .await;
    assert_eq!(post_event(&server, &order_event("b1")).await.status, StatusCode::OK);
    assert_eq!(post_event(&server, &order_event("b2")).await.status, StatusCode::OK);
    let refused = post_event(&server, &order_event("b3")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers.contains_key("retry-after"));
    let stored = admin_get(&server, "/api/v1/events").await;
    assert_eq!(stored.json["events"].as_array().unwrap().len(), 2, "the refused event was not stored");
    let ready = request(Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.json["reason"].as_str().unwrap().contains("backlog"));
}

#[tokio::test]
async fn api_needs_the_admin_token() {
    let server = TestServer::start().await;
    let none = request(Method::GET, &server.url("/api/v1/events"), &[], Vec::new()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json["error"], "missing_credentials");
    let wrong =
        request(Method::GET, &server.url("/api/v1/status"), &[("authorization", "Bearer nope")], Vec::new())
            .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json["error"], "invalid_credentials");
    assert_eq!(admin_get(&server, "/api/v1/status").await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_event_id_is_404_and_bad_query_is_400() {
    let server = TestServer::start().await;
    assert_eq!(admin_get(&server, "/api/v1/events/evt_nope").await.status, StatusCode::NOT_FOUND);
    let bad = admin_get(&server, "/api/v1/events?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin_get(&server, "/api/v1/events?limit=0").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin_get(&server, "/api/v1/events?bogus=1").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn events_can_be_filtered_and_paged() {
    let server = TestServer::start().await;
    for i in 0..5 {
        post_event(&server, &order_event(&format!("pg{i}"))).await;
    }
    post_event(&server, r#"{"id":"sig","event":"signal.generated","data":{}}"#).await;
    let signals = admin_get(&server, "/api/v1/events?type=signal.generated").await;
    assert_eq!(signals.json["events"].as_array().unwrap().len(), 1);
    let page = admin_get(&server, "/api/v1/events?limit=2").await;
    let next = page.json["next"].as_i64().unwrap();
    let rest = admin_get(&server, &format!("/api/v1/events?limit=10&before={next}")).await;
    assert_eq!(rest.json["events"].as_array().unwrap().len(), 4);
    assert_eq!(rest.json["next"], serde_json::Value::Null, "a short page is the last: {}", rest.text);
    // A tail says where to go on even from a short page: more may arrive.
    let tail = admin_get(&server, "/api/v1/events?limit=10&after=4").await;
    assert_eq!(tail.json["events"].as_array().unwrap().len(), 2);
    assert_eq!(tail.json["next"], tail.json["events"][1]["seq"], "{}", tail.text);
}

#[tokio::test]
async fn events_can_be_listed_by_arrival_time() {
    let server = TestServer::start().await;
    for i in 0..3 {
        post_event(&server, &order_event(&format!("t{i}"))).await;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let all = admin_get(&server, "/api/v1/events").await.json["events"].as_array().unwrap().clone();
    let at = |key: &str| {
        let event = all.iter().find(|e| e["eventKey"] == key).unwrap();
        event["receivedAt"].as_str().unwrap().to_owned()
    };
    let server = &server;
    let keys = |query: String| async move {
        let answer = admin_get(server, &format!("/api/v1/events?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let events = answer.json["events"].as_array().unwrap().clone();
        events.iter().map(|e| e["eventKey"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let encoded = |time: String| time.replace('+', "%2B");
    // `since` is inclusive, `until` exclusive; newest first.
    assert_eq!(keys(format!("since={}", encoded(at("t1")))).await, ["t2", "t1"]);
    assert_eq!(keys(format!("until={}", encoded(at("t1")))).await, ["t0"]);
    assert_eq!(keys(format!("since={}&until={}", encoded(at("t0")), encoded(at("t2")))).await, ["t1", "t0"]);
    // The same instant written with another offset.
    let t1 = chrono::DateTime::parse_from_rfc3339(&at("t1")).unwrap();
    let elsewhere = t1.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap()).to_rfc3339();
    assert!(elsewhere.contains("+02:00"), "{elsewhere}");
    assert_eq!(keys(format!("since={}", encoded(elsewhere))).await, ["t2", "t1"]);
}

#[tokio::test]
async fn status_reports_backlog_and_store() {
    let server = TestServer::start_with(|c| c.worker.enabled = false).await;
    post_event(&server, &order_event("s1")).await;
    let status = admin_get(&server, "/api/v1/status").await;
    assert_eq!(status.json["backlog"], 1);
    assert_eq!(status.json["store"], if common::postgres().is_some() { "postgres" } else { "sqlite" });
    assert!(status.json["oldestPendingAgeSeconds"].as_f64().is_some());
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let server = TestServer::start().await;
    post_event(&server, &order_event("m1")).await;
    assert_eq!(request(Method::GET, &server.url("/healthz"), &[], Vec::new()).await.status, StatusCode::OK);
    let ready = request(Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let metrics = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    assert!(
        metrics.text.contains("tradehook_requests_total{source=\"default\",status=\"200\"}"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("tradehook_ack_seconds_bucket"));
    assert!(metrics.text.contains("tradehook_store_batch_size_bucket"));

    // SPEC §6 also names backlog, processing lag and DLQ size: one event processed, one
    // dead-lettered (no orderId), nothing left waiting.
    let bad = r#"{"id":"m2","event":"order.updated","timestamp":"2024-01-15T10:30:01Z","data":{"status":"filled"}}"#;
    assert_eq!(post_event(&server, bad).await.status, StatusCode::OK);
    wait_processed(server.addr).await;
    let metrics = request(Method::GET, &server.url("/metrics"), &[], Vec::new()).await;
    let value = |name: &str| -> f64 {
        let line =
            metrics.text.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_else(|| {
                panic!("{name} is missing: {}", metrics.text);
            });
        line[name.len()..].trim().parse().unwrap()
    };
    assert_eq!(value("tradehook_backlog"), 0.0);
    assert_eq!(value("tradehook_oldest_pending_seconds"), 0.0, "nothing waits");
    assert_eq!(value("tradehook_dlq_size"), 1.0);
    assert!(value("tradehook_processing_lag_seconds_count") >= 2.0, "{}", metrics.text);
}

#[tokio::test]
async fn stored_headers_exclude_credentials() {
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    let extra = [("authorization", "Bearer very-secret-token"), ("x-custom", "kept")];
    let answer = post_signed(&url, Scheme::HmacSha256, SECRET, order_event("h").as_bytes(), &extra).await;
    let stored = admin_get(&server, &format!("/api/v1/events/{}", answer.json["id"].as_str().unwrap())).await;
    assert_eq!(stored.json["headers"]["x-custom"], "kept");
    assert!(!stored.text.contains("very-secret-token"));
}

#[tokio::test]
async fn concurrent_senders_all_get_durable_answers() {
    let server = TestServer::start().await;
    let url = server.url("/webhook");
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_signed(&url, Scheme::HmacSha256, SECRET, order_event(&format!("c{i}")).as_bytes(), &[])
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().json["status"], "accepted");
    }
    let status = admin_get(&server, "/api/v1/status").await;
    assert_eq!(status.json["events"], 200);
}
