//! The dashboard's server side over HTTP: the embedded page and its files, the per-second ingest
//! history, and the live event feed as a JSON page and as Server-Sent Events that follow an
//! event from arrival to its outcome and end when the gateway shuts down.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

async fn send(server: &TestServer, event: serde_json::Value) -> String {
    let answer = post_event(server, &event.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["id"].as_str().unwrap().to_string()
}

fn order(id: &str, quantity: f64) -> serde_json::Value {
    json!({"id": id, "event": "order.created", "timestamp": "2024-01-15T10:30:00Z", "data": {
        "orderId": format!("o-{id}"), "symbol": "BTC/USD", "side": "buy", "type": "market",
        "quantity": quantity, "price": 0, "status": "pending"}})
}

#[tokio::test]
async fn ui_page_and_files_are_served_without_credentials_and_offline() {
    let server = TestServer::start().await;
    let page = request(Method::GET, &server.url("/ui"), &[], Vec::new()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(!page.text.contains("https://"), "no CDN: the page loads only its own files");
    for (file, kind) in
        [("app.js", "text/javascript"), ("app.css", "text/css"), ("icon.svg", "image/svg+xml")]
    {
        let answer = request(Method::GET, &server.url(&format!("/ui/{file}")), &[], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::OK, "{file}");
        assert!(answer.headers["content-type"].to_str().unwrap().starts_with(kind), "{file}");
        assert!(page.text.contains(&format!("/ui/{file}")), "the page loads {file}");
    }
    let app = request(Method::GET, &server.url("/ui/app.js"), &[], Vec::new()).await;
    for module in ["core.js", "live.js", "trading.js", "deliveries.js", "dlq.js"] {
        assert!(app.text.contains(&format!("'./{module}'")), "app.js imports {module}");
        let answer = request(Method::GET, &server.url(&format!("/ui/{module}")), &[], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::OK, "{module}");
    }
    let missing = request(Method::GET, &server.url("/ui/secrets.txt"), &[], Vec::new()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["error"], "not_found");
}

#[tokio::test]
async fn live_endpoints_need_the_admin_token() {
    let server = TestServer::start().await;
    for path in ["/api/v1/live/ingest", "/api/v1/live/events"] {
        let answer =
            request(Method::GET, &server.url(path), &[("accept", "text/event-stream")], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn ingest_history_counts_acknowledged_and_refused_webhooks_with_latency() {
    let server = TestServer::start().await;
    send(&server, order("h1", 1.0)).await;
    send(&server, order("h2", 1.0)).await;
    send(&server, order("h1", 1.0)).await; // a duplicate is acknowledged too
    let refused = request(Method::POST, &server.url("/webhook"), &[], b"{}".to_vec()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let history = admin_get(&server, "/api/v1/live/ingest?seconds=60").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    assert_eq!(history.json["windowSeconds"], 60);
    let samples = history.json["samples"].as_array().unwrap();
    let total = |field: &str| samples.iter().map(|s| s[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("accepted"), total("refused")), (3, 1), "{samples:?}");
    let busiest = samples.iter().find(|s| s["accepted"].as_u64().unwrap() > 0).unwrap();
    assert!(busiest["ackP99Ms"].as_f64().unwrap() > 0.0, "{busiest}");
    assert!(busiest["ackMaxMs"].as_f64().unwrap() >= busiest["ackP50Ms"].as_f64().unwrap());

    assert_eq!(history.json["dlq"], 0);
    assert!(history.json["backlog"].is_u64() && history.json["lag"]["count"].is_u64(), "{}", history.text);
    assert_eq!(admin_get(&server, "/api/v1/live/ingest?seconds=601").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn feed_page_shows_events_after_a_seq_with_their_outcome() {
    let server = TestServer::start().await;
    let good = send(&server, order("p1", 1.0)).await;
    let bad = send(&server, order("p2", -1.0)).await;
    wait_processed(server.addr).await;
    let page = admin_get(&server, "/api/v1/live/events").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let events = page.json["events"].as_array().unwrap();
    let status_of = |id: &str| events.iter().find(|e| e["id"] == id).map(|e| e["status"].clone());
    assert_eq!(status_of(&good), Some(json!("applied")));
    assert_eq!(status_of(&bad), Some(json!("dead")));
    assert_eq!(events[0]["source"], "default");
    assert_eq!(events[0]["type"], "order.created");
    assert_eq!(page.json["next"], events.last().unwrap()["seq"]);

    let after = admin_get(&server, &format!("/api/v1/live/events?after={}", events[0]["seq"])).await;
    assert_eq!(after.json["events"].as_array().unwrap().len(), 1);
    assert_eq!(admin_get(&server, "/api/v1/live/events?after=-1").await.status, StatusCode::BAD_REQUEST);
}

/// Reads SSE chunks from `body` until `done` says the text so far is enough.
async fn read_until(body: &mut hyper::body::Incoming, text: &mut String, done: impl Fn(&str) -> bool) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while !done(text) {
            let frame = body.frame().await.expect("stream ended early").expect("stream failed");
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; the stream said:\n{text}"));
}

#[tokio::test]
async fn event_stream_sends_new_events_and_their_outcome_then_ends_at_shutdown() {
    let server = TestServer::start().await;
    send(&server, order("s0", 1.0)).await;
    wait_processed(server.addr).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::get(server.url("/api/v1/live/events?after=1"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut text = String::new();

    // Sent after the stream opened: it arrives, and an invalid one is followed to the DLQ.
    let good = send(&server, order("s1", 1.0)).await;
    let bad = send(&server, order("s2", -1.0)).await;
    read_until(&mut body, &mut text, |t| {
        t.contains(&format!(r#""id":"{good}","#))
            && t.contains(&format!(r#""id":"{bad}","#))
            && t.contains(r#""status":"dead""#)
    })
    .await;
    assert!(text.starts_with("event: event\ndata: {"), "{text}");
    assert!(!text.contains(r#""id":"evt_1","#), "after=1 starts after evt_1: {text}");
    let messages: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|m| m.strip_prefix("event: event\ndata: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let last_of_bad = messages.iter().rev().find(|m| m["id"] == bad).unwrap();
    assert_eq!(last_of_bad["status"], "dead");
    assert!(messages.iter().any(|m| m["id"] == good && m["status"] == "applied"), "{text}");

    // A graceful shutdown is not held up by the open stream: it ends.
    let stopping = tokio::spawn(server.stop());
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await
    .expect("the stream ended at shutdown");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown finished").unwrap();
}
