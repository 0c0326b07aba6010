//! Operational alerts end to end: a real gateway with `[alerts] url` pointing at a receiver in
//! this test raises `signature_failures` on a burst of bad signatures and `dlq` when an event is
//! dead-lettered.

mod common;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use common::*;
use http::Method;
use tokio::sync::mpsc;
use tradehook::ingest::signature::Scheme;
use tradehook::notify::OpsAlert;

/// Starts an alert receiver on 127.0.0.1; returns its URL and the alerts it gets.
async fn receiver() -> (String, mpsc::UnboundedReceiver<OpsAlert>) {
    async fn receive(State(alerts): State<mpsc::UnboundedSender<OpsAlert>>, body: Bytes) -> StatusCode {
        let _ = alerts.send(serde_json::from_slice(&body).expect("an alert as JSON"));
        StatusCode::OK
    }
    let (sender, alerts) = mpsc::unbounded_channel();
    let app = axum::Router::new().route("/ops", axum::routing::post(receive)).with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ops", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, alerts)
}

/// The next alert of `kind`, skipping others, within 10 s.
async fn next_of_kind(alerts: &mut mpsc::UnboundedReceiver<OpsAlert>, kind: &str) -> OpsAlert {
    let wait = async {
        loop {
            let alert = alerts.recv().await.expect("receiver running");
            if alert.kind == kind {
                return alert;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.unwrap_or_else(|_| panic!("no `{kind}` alert"))
}

async fn server_alerting(url: String) -> TestServer {
    TestServer::start_with(|config| {
        config.alerts.url = Some(url);
        config.alerts.node = Some("test-node".into());
        config.alerts.interval = Duration::from_millis(100);
        config.alerts.signature_failures = 5;
    })
    .await
}

#[tokio::test]
async fn a_burst_of_bad_signatures_raises_signature_failures_once() {
    let (url, mut alerts) = receiver().await;
    let server = server_alerting(url).await;
    let body = order_event("sig-1");
    for i in 0..10 {
        let answer = if i % 2 == 0 {
            post_signed(&server.url("/webhook"), Scheme::HmacSha256, "wrong-secret", body.as_bytes(), &[])
                .await
        } else {
            let headers = [("content-type", "application/json")];
            request(Method::POST, &server.url("/webhook"), &headers, body.clone().into_bytes()).await
        };
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let alert = next_of_kind(&mut alerts, "signature_failures").await;
    // The monitor may look while the burst is still arriving: it fires once it is over the limit.
    let counted: usize = alert.message.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!((6..=10).contains(&counted), "{}", alert.message);
    assert!(alert.message.contains("requests refused"), "{}", alert.message);
    assert!(!alert.message.contains(SECRET), "{}", alert.message);
    assert_eq!(alert.node.as_deref(), Some("test-node"));
    // The throttle holds the repeats of the next checks back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut repeats = 0;
    while let Ok(alert) = alerts.try_recv() {
        repeats += usize::from(alert.kind == "signature_failures");
    }
    assert_eq!(repeats, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_dead_lettered_event_raises_dlq() {
    let (url, mut alerts) = receiver().await;
    let server = server_alerting(url).await;
    // Let the monitor take its baseline before the DLQ grows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let missing_order_id = r#"{"id":"dlq-1","event":"order.updated","timestamp":"2024-01-15T10:30:01Z","data":{"status":"filled"}}"#;
    assert_eq!(post_event(&server, missing_order_id).await.status, StatusCode::OK);
    let alert = next_of_kind(&mut alerts, "dlq").await;
    assert!(alert.message.contains("from 0 to 1"), "{}", alert.message);
    server.stop().await;
}
