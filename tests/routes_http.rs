//! Route actions over the whole pipeline: events sent to the gateway over HTTP are published to
//! the real local NATS server (JetStream, de-duplicated by `Nats-Msg-Id`: namespace, event id
//! and subject) and handed
//! to `exec:` commands on stdin.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::json;
use tradehook::config::{Config, RouteConfig};

fn route(events: &[&str], actions: &[String]) -> RouteConfig {
    RouteConfig {
        events: events.iter().map(|s| s.to_string()).collect(),
        sources: vec![],
        symbols: vec![],
        statuses: vec![],
        actions: actions.to_vec(),
    }
}

fn fast_retries(config: &mut Config) {
    config.retry.delays = vec![Duration::from_millis(100); 2];
}

async fn send(server: &TestServer, id: &str) -> String {
    let body = json!({"id": id, "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z",
        "data": {"orderId": format!("o-{id}"), "symbol": "BTC/USD", "status": "filled", "filledQuantity": 0.1, "averagePrice": 100}});
    let answer = post_event(server, &body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["id"].as_str().unwrap().to_string()
}

/// JetStream keeps one message per `Nats-Msg-Id`: the id is the store's namespace, the event and
/// the subject, so a replayed event is stored once while one event published to two subjects of
/// one stream, and the `evt_1` of a second store (another gateway, or a reset data directory)
/// publishing into the same stream, are all kept. Before, the id was the event id alone: the
/// second subject's message and the second store's event were dropped as duplicates, reported
/// delivered.
#[tokio::test]
async fn nats_routes_publish_once_per_event_and_subject_even_when_the_event_is_replayed() {
    let unique = ulid::Ulid::new().to_string().to_lowercase();
    let stream = format!("TH_ROUTE_{}", unique.to_uppercase());
    let subjects = [format!("th.route.{unique}.orders"), format!("th.route.{unique}.fills")];
    let start = || {
        TestServer::start_with(|config| {
            fast_retries(config);
            config.nats.stream = Some(stream.clone());
            config.nats.stream_subjects = vec![format!("th.route.{unique}.>")];
            config.routes = vec![
                route(&["order.*"], &[format!("nats:{}", subjects[0])]),
                route(&["order.updated"], &[format!("nats:{}", subjects[1])]),
            ];
        })
    };
    let server = start().await;
    let event_id = send(&server, "e1").await;
    let nats =
        async_nats::connect("nats://127.0.0.1:4222").await.expect("NATS on 127.0.0.1:4222 (see .ci/run)");
    let jetstream = async_nats::jetstream::new(nats);
    let count = || async {
        let mut handle = jetstream.get_stream(&stream).await.ok()?;
        let info = handle.info().await.ok()?;
        Some(info.state.messages)
    };
    eventually(10, "the event in the stream on both subjects", || async {
        count().await.filter(|n| *n == 2)
    })
    .await;
    let mut ids = Vec::new();
    for seq in [1, 2] {
        let message = jetstream.get_stream(&stream).await.unwrap().get_raw_message(seq).await.unwrap();
        let id = message.headers.get(async_nats::header::NATS_MESSAGE_ID).unwrap().as_str().to_owned();
        assert!(id.ends_with(&format!(":{event_id}:{}", message.subject)), "{id} for {}", message.subject);
        let payload: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(payload["id"], "e1");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);

    let replay = api_post(server.addr, &format!("/events/{event_id}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count().await, Some(2), "JetStream drops the replayed copies by their Nats-Msg-Id");

    // Another store numbers its events from evt_1 too.
    let other = start().await;
    assert_eq!(send(&other, "e2").await, event_id);
    eventually(10, "the second store's event kept", || async { count().await.filter(|n| *n == 4) }).await;
    jetstream.delete_stream(&stream).await.unwrap();
}

#[tokio::test]
async fn exec_routes_get_the_event_on_stdin() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("event.json");
    let command = format!("exec:cat > {} && echo stored", file.display());
    let server = TestServer::start_with(|config| {
        fast_retries(config);
        config.routes = vec![route(&["order.updated"], &[command])];
    })
    .await;
    send(&server, "e1").await;
    let written = eventually(10, "the command to write the event", || async {
        std::fs::read_to_string(&file).ok().filter(|t| !t.is_empty())
    })
    .await;
    let event: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(event["id"], "e1");
}

#[tokio::test]
async fn a_route_filtered_by_symbol_sees_order_updates_that_name_only_the_order() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("ids");
    // Each event's id, one per line (jq-free: the body's first field is its id).
    let command = format!("exec:head -c 40 | cut -d'\"' -f4 >> {}", file.display());
    let server = TestServer::start_with(|config| {
        fast_retries(config);
        let mut filtered = route(&["order.*"], &[command]);
        filtered.symbols = vec!["BTC/USD".into()];
        config.routes = vec![filtered];
    })
    .await;
    // Seed 001's shapes: order.created names the symbol, order.updated only the order id.
    let created = json!({"id": "s1", "event": "order.created", "timestamp": "2024-01-15T10:30:00Z", "data": {
        "orderId": "o-s", "symbol": "BTC/USD", "side": "buy", "type": "limit", "quantity": 1, "price": 100, "status": "open"}});
    let updated = json!({"id": "s2", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z", "data": {
        "orderId": "o-s", "status": "partially_filled", "filledQuantity": 0.5, "averagePrice": 100}});
    let other = json!({"id": "s3", "event": "order.created", "timestamp": "2024-01-15T10:30:02Z", "data": {
        "orderId": "o-e", "symbol": "ETH/USD", "side": "buy", "type": "limit", "quantity": 1, "price": 10, "status": "open"}});
    for event in [created, updated, other] {
        assert_eq!(post_event(&server, &event.to_string()).await.status, StatusCode::OK);
    }
    wait_processed(server.addr).await;
    let ids = eventually(10, "both BTC/USD events at the command", || async {
        std::fs::read_to_string(&file).ok().filter(|t| t.lines().count() >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = std::fs::read_to_string(&file).unwrap_or(ids);
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.sort_unstable();
    assert_eq!(ids, ["s1", "s2"], "the ETH/USD order is filtered out, the update of the BTC/USD one is not");
}

#[tokio::test]
async fn failing_exec_routes_end_in_the_dead_letter_queue() {
    let server = TestServer::start_with(|config| {
        fast_retries(config);
        config.routes = vec![route(&["order.*"], &["exec:echo broken >&2; exit 3".to_string()])];
    })
    .await;
    let event_id = send(&server, "e1").await;
    let dead = eventually(10, "a delivery dead letter", || async {
        let list = api_get(server.addr, "/dlq?kind=delivery").await;
        list.json["deadLetters"].as_array().and_then(|l| l.first().cloned())
    })
    .await;
    assert_eq!(dead["eventId"], event_id.as_str());
    assert_eq!(dead["attempts"], 3, "first attempt and two retries");
    assert!(dead["target"].as_str().unwrap().starts_with("exec:"), "{dead}");
    assert!(dead["lastError"].as_str().unwrap().contains('3'), "{dead}");
}
