//! The notifier against a real HTTP receiver on 127.0.0.1, and the monitor against a real SQLite
//! store.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{Appended, NewDeadLetter, NewEvent, ProcessedBatch, SharedStore};
use crate::worker::lag::LagTracker;

/// An alert receiver: answers 500 to its first `fail_first` requests, then 200.
struct Receiver {
    url: String,
    alerts: mpsc::UnboundedReceiver<OpsAlert>,
    requests: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ReceiverState {
    alerts: mpsc::UnboundedSender<OpsAlert>,
    requests: Arc<AtomicUsize>,
    fail_first: usize,
}

async fn receive(State(state): State<ReceiverState>, body: Bytes) -> StatusCode {
    let seen = state.requests.fetch_add(1, Ordering::SeqCst);
    if seen < state.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let alert: OpsAlert = serde_json::from_slice(&body).expect("an alert as JSON");
    let _ = state.alerts.send(alert);
    StatusCode::NO_CONTENT
}

async fn receiver(fail_first: usize) -> Receiver {
    let (sender, alerts) = mpsc::unbounded_channel();
    let requests = Arc::new(AtomicUsize::new(0));
    let state = ReceiverState { alerts: sender, requests: requests.clone(), fail_first };
    let app = axum::Router::new().route("/hooks/ops", axum::routing::post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ops", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, alerts, requests }
}

impl Receiver {
    async fn next(&mut self) -> OpsAlert {
        tokio::time::timeout(Duration::from_secs(5), self.alerts.recv())
            .await
            .expect("an alert within 5 s")
            .expect("receiver running")
    }

    /// Alerts that arrive within `wait`.
    async fn drain(&mut self, wait: Duration) -> Vec<OpsAlert> {
        tokio::time::sleep(wait).await;
        let mut alerts = Vec::new();
        while let Ok(alert) = self.alerts.try_recv() {
            alerts.push(alert);
        }
        alerts
    }
}

fn config(url: &str) -> AlertsConfig {
    AlertsConfig { url: Some(url.into()), node: Some("node-a".into()), ..AlertsConfig::default() }
}

fn fast(config: &AlertsConfig) -> Notifier {
    Notifier::with_retry_delays(config, vec![Duration::from_millis(50); 3])
}

#[tokio::test]
async fn an_alert_arrives_as_json() {
    let mut receiver = receiver(0).await;
    let notifier = fast(&config(&receiver.url));
    notifier.raise("dlq", "dead-letter queue", "the DLQ grew from 0 to 1".into());
    let alert = receiver.next().await;
    assert_eq!(alert.kind, "dlq");
    assert_eq!(alert.subject, "dead-letter queue");
    assert_eq!(alert.message, "the DLQ grew from 0 to 1");
    assert_eq!(alert.node.as_deref(), Some("node-a"));
    assert_eq!(alert.suppressed, 0);
    assert!(chrono::DateTime::parse_from_rfc3339(&alert.at).is_ok(), "{}", alert.at);
}

#[tokio::test]
async fn the_same_alert_raised_ten_times_in_the_window_arrives_once() {
    let mut receiver = receiver(0).await;
    let notifier = fast(&config(&receiver.url));
    for i in 0..10 {
        notifier.raise("backlog", "unprocessed events", format!("backlog {i}"));
    }
    let alerts = receiver.drain(Duration::from_millis(500)).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].message, "backlog 0");
}

#[tokio::test]
async fn other_subjects_are_throttled_separately() {
    let mut receiver = receiver(0).await;
    let notifier = fast(&config(&receiver.url));
    notifier.raise("endpoint_failing", "wh_1", "a".into());
    notifier.raise("endpoint_failing", "wh_2", "b".into());
    notifier.raise("endpoint_failing", "wh_1", "c".into());
    let alerts = receiver.drain(Duration::from_millis(500)).await;
    let subjects: Vec<_> = alerts.iter().map(|a| a.subject.as_str()).collect();
    assert_eq!(subjects, ["wh_1", "wh_2"]);
}

#[tokio::test]
async fn the_next_alert_after_the_window_counts_the_suppressed_repeats() {
    let mut receiver = receiver(0).await;
    let notifier = fast(&AlertsConfig { throttle: Duration::from_millis(200), ..config(&receiver.url) });
    for _ in 0..3 {
        notifier.raise("lag", "processing", "slow".into());
    }
    assert_eq!(receiver.next().await.suppressed, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    notifier.raise("lag", "processing", "still slow".into());
    let second = receiver.next().await;
    assert_eq!((second.message.as_str(), second.suppressed), ("still slow", 2));
}

#[tokio::test]
async fn a_receiver_that_fails_twice_then_succeeds_still_gets_the_alert() {
    let mut receiver = receiver(2).await;
    let notifier = fast(&config(&receiver.url));
    notifier.raise("dlq", "dead-letter queue", "grew".into());
    assert_eq!(receiver.next().await.message, "grew");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn raising_never_blocks_even_when_the_receiver_hangs() {
    // Accepts connections and never answers: every POST waits for its timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let notifier = fast(&config(&format!("http://{}/", listener.local_addr().unwrap())));
    let started = Instant::now();
    for i in 0..(QUEUE_CAPACITY * 2) {
        notifier.raise("dlq", &format!("subject-{i}"), "x".into());
    }
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    drop(listener);
}

#[tokio::test]
async fn without_a_url_alerts_are_only_logged() {
    let notifier = Notifier::new(&AlertsConfig::default());
    assert!(notifier.queue.is_none());
    notifier.raise("dlq", "dead-letter queue", "grew".into());
}

fn store_in(dir: &std::path::Path) -> SharedStore {
    let options =
        SqliteOptions { max_batch: 64, queue_capacity: 1024, max_backlog: 1_000_000, max_page_count: None };
    Arc::new(SqliteStore::open(&dir.join("t.db"), options).unwrap())
}

fn event(key: &str) -> NewEvent {
    NewEvent {
        source: "default".into(),
        event_key: key.into(),
        event_type: Some("order.updated".into()),
        body: Bytes::from(format!(r#"{{"id":"{key}"}}"#)),
        headers: "{}".into(),
        client_ip: "127.0.0.1".into(),
        received_at: crate::store::now_ms(),
    }
}

/// Starts the monitor with a 100 ms interval and these limits.
fn watch(
    notifier: &Arc<Notifier>,
    store: &SharedStore,
    lag: &Arc<LagTracker>,
    adjust: impl FnOnce(&mut Thresholds),
) -> CancellationToken {
    let mut thresholds = Thresholds::from_config(&AlertsConfig {
        interval: Duration::from_millis(100),
        ..AlertsConfig::default()
    });
    adjust(&mut thresholds);
    let stop = CancellationToken::new();
    tokio::spawn(notifier.clone().watch(store.clone(), lag.clone(), thresholds, stop.clone()));
    stop
}

#[tokio::test]
async fn the_monitor_raises_dlq_when_the_dead_letter_queue_grows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut receiver = receiver(0).await;
    let notifier = Arc::new(fast(&config(&receiver.url)));
    let stop = watch(&notifier, &store, &Arc::new(LagTracker::new()), |_| {});
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(receiver.drain(Duration::ZERO).await.is_empty(), "nothing to say yet");
    let Appended::Accepted(id) = store.append(event("bad")).await.unwrap() else { panic!("not accepted") };
    let seq = id.trim_start_matches("evt_").parse().unwrap();
    let dead = NewDeadLetter {
        seq,
        reason: "schema".into(),
        attempts: 1,
        last_error: "missing orderId".into(),
        history: "[]".into(),
        ordering_key: None,
    };
    store.commit_processed(ProcessedBatch { dead: vec![dead], ..Default::default() }).await.unwrap();
    let alert = receiver.next().await;
    assert_eq!(alert.kind, "dlq");
    assert!(alert.message.contains("from 0 to 1"), "{}", alert.message);
    stop.cancel();
    store.close().await;
}

#[tokio::test]
async fn the_monitor_raises_backlog_lag_and_signature_failures_over_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut receiver = receiver(0).await;
    let notifier = Arc::new(fast(&config(&receiver.url)));
    let lag = Arc::new(LagTracker::new());
    let stop = watch(&notifier, &store, &lag, |t| {
        t.backlog = 1;
        t.signature_failures_per_minute = 3;
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    for key in ["a", "b"] {
        store.append(event(key)).await.unwrap();
    }
    lag.record(45_000);
    for _ in 0..4 {
        notifier.count_signature_failure();
    }
    let mut kinds: Vec<String> = Vec::new();
    for _ in 0..3 {
        kinds.push(receiver.next().await.kind);
    }
    kinds.sort();
    assert_eq!(kinds, ["backlog", "lag", "signature_failures"]);
    stop.cancel();
    store.close().await;
}

#[tokio::test]
async fn signature_failures_under_the_limit_raise_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut receiver = receiver(0).await;
    let notifier = Arc::new(fast(&config(&receiver.url)));
    let stop =
        watch(&notifier, &store, &Arc::new(LagTracker::new()), |t| t.signature_failures_per_minute = 3);
    for _ in 0..3 {
        notifier.count_signature_failure();
    }
    assert!(receiver.drain(Duration::from_millis(400)).await.is_empty());
    stop.cancel();
    store.close().await;
}
