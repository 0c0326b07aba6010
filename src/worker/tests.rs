//! The worker against a real SQLite store: retries on the schedule, later events of the same
//! key wait behind a failing one while other keys go on, and exhausted retries dead-letter with
//! the attempt history and release the waiting events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::config::SourceConfig;
use crate::ingest::signature::Scheme;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{Appended, DeadLetterFilter, NewEvent};
use crate::trading::{CanonicalEvent, EventKind};

fn store(dir: &std::path::Path) -> SharedStore {
    let options =
        SqliteOptions { max_batch: 64, queue_capacity: 1024, max_backlog: 1_000_000, max_page_count: None };
    Arc::new(SqliteStore::open(&dir.join("t.db"), options).unwrap())
}

async fn append(store: &SharedStore, id: &str, order_id: &str, cum: f64) {
    let body = format!(
        r#"{{"id":"{id}","event":"order.updated","timestamp":"2024-01-15T10:30:01Z","data":{{"orderId":"{order_id}","status":"partially_filled","filledQuantity":{cum},"averagePrice":100}}}}"#
    );
    let event = NewEvent {
        source: "default".into(),
        event_key: id.into(),
        event_type: Some("order.updated".into()),
        body: Bytes::from(body),
        headers: "{}".into(),
        client_ip: "127.0.0.1".into(),
        received_at: now_ms(),
    };
    assert!(matches!(store.append(event).await.unwrap(), Appended::Accepted(_)));
}

/// Applying fails for every event of order `poison`.
fn poison(event: &CanonicalEvent) -> bool {
    matches!(&event.kind, EventKind::Order(order) if order.order_id == "poison")
}

async fn worker(store: &SharedStore, delays_ms: &[u64]) -> Worker {
    let rules =
        SourceRules::from_config(&[SourceConfig::new("default", Scheme::HmacSha256, vec!["s".into()])]);
    let retry = RetryPolicy::new(delays_ms.iter().map(|ms| Duration::from_millis(*ms)).collect());
    let mut worker =
        Worker::start(store.clone(), rules, retry, Arc::new(LagTracker::new()), 100).await.unwrap();
    worker.fail_when = Some(poison);
    worker
}

/// Runs rounds until the backlog is empty or `limit` passes.
async fn drain(worker: &mut Worker, store: &SharedStore, limit: Duration) {
    let until = std::time::Instant::now() + limit;
    while store.backlog() > 0 && std::time::Instant::now() < until {
        worker.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn failing_event_retries_then_dead_letters_with_history_and_releases_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    append(&store, "p1", "poison", 1.0).await;
    append(&store, "p2", "poison", 2.0).await; // same key: must wait behind p1
    append(&store, "h1", "healthy", 1.0).await; // other key: goes on
    let mut worker = worker(&store, &[20, 40]).await;

    // Round 1 stops at the failure (the state is reloaded, nothing else of the round counts);
    // round 2 runs before p1's retry is due: p2 is deferred behind it, h1 goes on.
    worker.round().await.unwrap();
    assert_eq!(store.backlog(), 3);
    worker.round().await.unwrap();
    assert_eq!(worker.state().orders["healthy"].filled_quantity.to_string(), "1");
    assert!(!worker.state().orders.contains_key("poison"));
    assert_eq!(store.backlog(), 2, "p1 waits for its retry, p2 waits behind it");

    drain(&mut worker, &store, Duration::from_secs(5)).await;
    // The default filter reads a page (it once read a single entry).
    let dead = store.dead_letters(DeadLetterFilter::default()).await.unwrap();
    assert_eq!(dead.len(), 2, "p1 and p2 gave up after their retries");
    let first = dead.iter().find(|d| d.event_id == "evt_1").unwrap();
    assert_eq!(first.attempts, 3, "one try and two retries");
    assert_eq!(first.history.as_array().unwrap().len(), 3);
    assert!(first.reason.contains("injected failure"), "{}", first.reason);
    // p2 ran only after p1 was set aside (it fails the same way, so it is dead too).
    assert!(dead.iter().any(|d| d.event_id == "evt_2"));
    assert_eq!(store.backlog(), 0);
}

#[tokio::test]
async fn state_survives_a_restart_of_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    append(&store, "a1", "ord", 1.0).await;
    append(&store, "a2", "ord", 3.0).await;
    let mut first = worker(&store, &[10]).await;
    drain(&mut first, &store, Duration::from_secs(5)).await;
    let before = first.state().clone();
    drop(first);
    let second = worker(&store, &[10]).await;
    assert_eq!(apply::all_documents(second.state()).unwrap(), apply::all_documents(&before).unwrap());
    assert_eq!(second.state().orders["ord"].filled_quantity.to_string(), "3");
}

#[tokio::test]
async fn each_round_with_events_learns_which_signal_entries_still_wait_for_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let route = crate::config::RouteConfig {
        events: vec!["signal.*".into()],
        sources: vec![],
        symbols: vec![],
        statuses: vec![],
        actions: vec!["signal_to_order".into()],
    };
    let actions = serde_json::from_value(serde_json::json!({"signal_to_order": {"max_position": "1",
        "max_order": "1", "max_orders_per_minute": 10, "max_signal_age": "5m"}}))
    .unwrap();
    let mut worker = worker(&store, &[10])
        .await
        .with_delivery(RouteTable::new(&[route]), Arc::new(SubscriptionSet::default()))
        .with_actions(actions, Some("broker:http"));
    worker.round().await.unwrap();
    assert!(worker.strategy.state.awaiting_broker.is_empty());

    append(&store, "e1", "o1", 0.1).await;
    let seq = store.events(Default::default()).await.unwrap()[0].seq;
    let intent = |id: &str, role: &str| crate::store::NewIntent {
        seq,
        client_order_id: id.into(),
        action: "signal_to_order".into(),
        symbol: Some("BTCUSDT".into()),
        doc: serde_json::json!({"clientOrderId": id, "action": "signal_to_order", "role": role, "op": "place",
            "symbol": "BTCUSDT", "side": "sell", "orderType": "market", "quantity": "0.4", "reduceOnly": role == "close",
            "trigger": {"key": "evt_1", "eventType": "signal.generated"}, "reason": "test",
            "createdAt": "2024-01-15T10:30:00Z"})
        .to_string(),
        refused: None,
        broker: Some("broker:http".into()),
    };
    let batch = ProcessedBatch {
        processed: vec![(seq, "applied")],
        intents: vec![intent("th-q", "entry"), intent("th-c", "close")],
        ..Default::default()
    };
    store.commit_processed(batch).await.unwrap();
    // The next round with an event to process reads them.
    append(&store, "e2", "o2", 0.1).await;
    worker.round().await.unwrap();
    let awaiting: Vec<_> = worker.strategy.state.awaiting_broker.iter().collect();
    let short = crate::trading::actions::AwaitingEntry { symbol: "BTCUSDT".into(), quantity: "-0.4".parse().unwrap() };
    assert_eq!(awaiting, [(&"th-q".to_string(), &short)], "the entry, signed; not the close");
}
