//! Outbound delivery over real HTTP: subscriptions receive signed events at a real local
//! receiver; failures are retried on schedule, `Retry-After` is honoured, `410 Gone` and
//! prolonged failure disable the subscription with its events kept, exhausted deliveries become
//! dead letters that can be replayed, and routes forward by name with filters.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::receiver::{Receiver, Script};
use common::*;
use http::StatusCode;
use serde_json::json;
use tradehook::config::{Config, RouteConfig};

/// Fast retries and loopback targets allowed.
fn local(config: &mut Config) {
    config.delivery.allow_private_targets = true;
    config.retry.delays = vec![Duration::from_millis(100); 3];
}

async fn subscribe(server: &TestServer, receiver: &Receiver, events: &[&str]) -> serde_json::Value {
    let created = api_post(server.addr, "/webhooks", json!({"url": receiver.url(), "events": events})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.json
}

async fn send(server: &TestServer, body: serde_json::Value) -> String {
    let answer = post_event(server, &body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["id"].as_str().unwrap().to_string()
}

fn order(id: &str, symbol: &str) -> serde_json::Value {
    json!({"id": id, "event": "order.created", "timestamp": "2024-01-15T10:30:00Z", "data": {
        "orderId": format!("o-{id}"), "symbol": symbol, "side": "buy", "type": "market",
        "quantity": 0.1, "price": 0, "status": "pending"}})
}

fn position(id: &str) -> serde_json::Value {
    json!({"id": id, "event": "position.updated", "timestamp": "2024-01-15T10:30:00Z", "data": {
        "symbol": "BTC/USD", "side": "long", "size": 0.1, "entryPrice": 100, "markPrice": 101}})
}

async fn wait_accepted(receiver: &Receiver, count: usize) -> Vec<common::receiver::Received> {
    eventually(15, &format!("{count} accepted deliveries"), || async {
        let accepted = receiver.accepted();
        (accepted.len() >= count).then_some(accepted)
    })
    .await
}

async fn deliveries(server: &TestServer, webhook_id: &str) -> Vec<serde_json::Value> {
    let log = api_get(server.addr, &format!("/webhooks/{webhook_id}/deliveries")).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    log.json["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn subscribers_get_matching_events_signed_both_ways() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["order.*"]).await;
    let secret = subscription["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "generated secrets are Standard Webhooks keys: {secret}");

    send(&server, position("p1")).await;
    let body = order("e1", "BTC/USD");
    let event_id = send(&server, body.clone()).await;
    let got = wait_accepted(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1, "the position event is not subscribed");

    let delivery = &got[0];
    let sent: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(sent, body, "the event is delivered as it was received");
    let expected = tradehook::ingest::signature::sign(
        tradehook::ingest::signature::Scheme::HmacSha256,
        &secret,
        &delivery.body,
        &tradehook::ingest::signature::SignContext {
            timestamp: 0,
            message_id: String::new(),
            token_field: None,
        },
    )
    .unwrap();
    assert_eq!(delivery.headers["x-webhook-signature"].to_str().unwrap(), expected.headers[0].1);
    let standard = standardwebhooks::Webhook::new(&secret).unwrap();
    standard
        .verify(&delivery.body, &delivery.headers)
        .expect("the standardwebhooks crate verifies the delivery");
    assert_eq!(delivery.headers["webhook-id"], event_id.as_str(), "webhook-id is the event id");

    let log = eventually(5, "a logged attempt", || async {
        let log = deliveries(&server, subscription["id"].as_str().unwrap()).await;
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log[0]["outcome"], "delivered");
    assert_eq!(log[0]["statusCode"], 200);
    assert_eq!(log[0]["eventId"], event_id.as_str());
    assert!(log[0]["response"].as_str().unwrap().contains("success"));
}

/// A receiver's answer is kept as text in the attempt log, whatever bytes it holds: a NUL (which
/// PostgreSQL's text refuses) must neither fail the commit of the result nor hold up the
/// deliveries after it.
#[tokio::test]
async fn an_answer_with_nul_and_invalid_utf8_is_logged_and_stalls_nothing() {
    let body = Bytes::from_static(b"ok\0after-nul \xff\xfe \x01end");
    let receiver = Receiver::start(Script::Body(200, body)).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["*"]).await;
    let id = subscription["id"].as_str().unwrap();
    send(&server, order("nul-1", "BTC/USD")).await;
    send(&server, order("nul-2", "BTC/USD")).await;
    wait_accepted(&receiver, 2).await;
    let log = eventually(10, "both results committed", || async {
        let log = deliveries(&server, id).await;
        (log.len() == 2).then_some(log)
    })
    .await;
    for attempt in &log {
        assert_eq!(attempt["outcome"], "delivered", "{attempt}");
        let response = attempt["response"].as_str().unwrap_or_default();
        assert!(response.starts_with("ok") && response.ends_with("end"), "{response:?}");
        assert!(!response.contains('\0'), "{response:?}");
    }
    let health = api_get(server.addr, &format!("/webhooks/{id}")).await;
    assert!(health.json["health"]["lastSuccessAt"].is_string(), "{}", health.text);
}

/// Management input with a NUL (which PostgreSQL's text cannot hold) is a 400 on every store,
/// never a 5xx, and stores nothing.
#[tokio::test]
async fn subscription_text_with_nul_is_refused() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(local).await;
    let url = receiver.url();
    let bodies = [
        json!({"url": url, "events": ["*"], "description": "a\u{0}b"}),
        json!({"url": url, "events": ["order.\u{0}"]}),
        json!({"url": url, "events": ["*"], "name": "n\u{0}"}),
        json!({"url": format!("{url}?q=\u{0}"), "events": ["*"]}),
        json!({"url": url, "events": ["*"], "secret": "secret-with-\u{0}-nul"}),
    ];
    for body in &bodies {
        let answer = api_post(server.addr, "/webhooks", body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text);
        assert!(answer.json["error"].is_string(), "{}", answer.text);
        assert!(!answer.text.contains("secret-with"), "a refusal quotes the secret: {}", answer.text);
    }
    let created = subscribe(&server, &receiver, &["*"]).await;
    let id = created["id"].as_str().unwrap();
    let put = api_put(server.addr, &format!("/webhooks/{id}"), json!({"description": "x\u{0}"})).await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST, "{}", put.text);
    let list = api_get(server.addr, "/webhooks").await;
    assert_eq!(list.json["webhooks"].as_array().map(Vec::len), Some(1), "{}", list.text);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_succeeds() {
    let receiver = Receiver::start(Script::FailTimes(500, 2)).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    wait_accepted(&receiver, 1).await;
    let all = receiver.received();
    assert_eq!(all.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(all[1].at - all[0].at >= Duration::from_millis(100), "the retry waits for the schedule");
    assert_eq!(all[0].headers["webhook-id"], all[2].headers["webhook-id"], "one message id across retries");
    let id = subscription["id"].as_str().unwrap();
    let log = eventually(5, "three logged attempts", || async {
        let log = deliveries(&server, id).await;
        (log.len() == 3).then_some(log)
    })
    .await;
    let outcomes: Vec<&str> = log.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["delivered", "retry", "retry"], "newest first");
    assert_eq!(log[2]["statusCode"], 500);
    let shown = api_get(server.addr, &format!("/webhooks/{id}")).await;
    assert!(shown.json["health"]["lastSuccessAt"].is_string(), "{}", shown.text);
    assert!(shown.json["health"]["failingSince"].is_null(), "a success ends the failing streak");
}

#[tokio::test]
async fn exhausted_deliveries_become_dead_letters_that_replay_without_reprocessing() {
    let receiver = Receiver::start(Script::Always(500)).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["order.*"]).await;
    let event_id = send(&server, order("e1", "BTC/USD")).await;
    let dead = eventually(15, "a delivery dead letter", || async {
        let list = api_get(server.addr, "/dlq?kind=delivery").await;
        list.json["deadLetters"].as_array().and_then(|l| l.first().cloned())
    })
    .await;
    assert_eq!(receiver.received().len(), 4, "first attempt and three retries");
    assert_eq!(dead["kind"], "delivery");
    assert_eq!(dead["eventId"], event_id.as_str());
    assert_eq!(dead["webhookId"], subscription["id"]);
    assert_eq!(dead["attempts"], 4);
    assert!(dead["reason"].as_str().unwrap().contains("500"), "{dead}");
    let status = api_get(server.addr, "/status").await;
    assert_eq!(status.json["processed"], 1, "the event itself was processed fine");

    receiver.set(Script::Ok);
    let replay =
        api_post(server.addr, &format!("/dlq/{}/replay", dead["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(replay.json["replayed"], 1);
    wait_accepted(&receiver, 1).await;
    let list = api_get(server.addr, "/dlq").await;
    assert_eq!(list.json["deadLetters"].as_array().unwrap().len(), 0);
    let order = api_get(server.addr, "/orders/o-e1").await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(receiver.received().len(), 5);
}

#[tokio::test]
async fn replaying_an_event_whose_delivery_is_retrying_starts_no_second_chain() {
    let receiver = Receiver::start(Script::FailTimes(500, 1)).await;
    let server = TestServer::start_with(|config| {
        local(config);
        config.retry.delays = vec![Duration::from_millis(1500); 3];
    })
    .await;
    subscribe(&server, &receiver, &["order.*"]).await;
    let event_id = send(&server, order("e1", "BTC/USD")).await;
    eventually(10, "the first attempt", || async { (!receiver.received().is_empty()).then_some(()) }).await;
    let replay = api_post(server.addr, &format!("/events/{event_id}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(replay.json["requeued"], true, "{}", replay.text);
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1, "the replay queued no second delivery beside the retrying one");
    wait_accepted(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 200],
        "one chain: the failure and its retry"
    );

    // Once delivered, a replay sends it again: that is what a replay is for.
    let replay = api_post(server.addr, &format!("/events/{event_id}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    let got = wait_accepted(&receiver, 2).await;
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"], "the same message id");
}

/// A receiver answering 500, a subscription to it retried once, and one event whose delivery
/// is dead: (receiver, server, event id, the dead letter).
async fn one_dead_delivery() -> (Receiver, TestServer, String, serde_json::Value) {
    let receiver = Receiver::start(Script::Always(500)).await;
    let server = TestServer::start_with(|config| {
        local(config);
        config.retry.delays = vec![Duration::from_millis(100)];
    })
    .await;
    subscribe(&server, &receiver, &["order.*"]).await;
    let event_id = send(&server, order("e1", "BTC/USD")).await;
    let dead = eventually(15, "a delivery dead letter", || async {
        let list = api_get(server.addr, "/dlq?kind=delivery").await;
        list.json["deadLetters"].as_array().and_then(|l| l.first().cloned())
    })
    .await;
    (receiver, server, event_id, dead)
}

#[tokio::test]
async fn a_dead_delivery_replayed_while_its_event_replay_retries_it_starts_no_second_chain() {
    let (receiver, server, event_id, dead) = one_dead_delivery().await;
    // The event replayed: a fresh delivery, whose attempt hangs for 3 s (still waiting).
    receiver.set(Script::Cycle(vec![(500, 3000)], 0));
    let replay = api_post(server.addr, &format!("/events/{event_id}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    wait_processed(server.addr).await;
    let sent = receiver.received().len();
    eventually(5, "the fresh delivery attempted", || async {
        (receiver.received().len() > sent).then_some(())
    })
    .await;
    // The old dead letter went when the replay queued the same delivery again: one chain per
    // target, and nothing left to replay a second time.
    let entry = dead["id"].as_str().unwrap();
    let gone = api_get(server.addr, &format!("/dlq/{entry}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "the entry is settled by the waiting delivery");
    let again = api_post(server.addr, &format!("/dlq/{entry}/replay"), json!({})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
}

#[tokio::test]
async fn an_event_replay_that_delivers_leaves_no_dead_letter_to_deliver_it_again() {
    let (receiver, server, event_id, _) = one_dead_delivery().await;
    receiver.set(Script::Ok);
    let replay = api_post(server.addr, &format!("/events/{event_id}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    wait_accepted(&receiver, 1).await;
    let list = api_get(server.addr, "/dlq").await;
    assert_eq!(list.json["deadLetters"], json!([]), "the dead delivery was superseded: {}", list.text);
    // A bulk replay of the DLQ afterwards sends nothing a second time.
    let bulk = api_post(server.addr, "/dlq/replay", json!({"filter": {}})).await;
    assert_eq!(bulk.json["replayed"], 0, "{}", bulk.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.received().iter().filter(|r| r.status == 200).count();
    assert_eq!(delivered, 1, "delivered once");
}

#[tokio::test]
async fn a_dead_delivery_to_a_deleted_subscription_is_not_replayed() {
    let receiver = Receiver::start(Script::Always(500)).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["order.*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    let dead = eventually(15, "a delivery dead letter", || async {
        let list = api_get(server.addr, "/dlq?kind=delivery").await;
        list.json["deadLetters"].as_array().and_then(|l| l.first().cloned())
    })
    .await;
    let id = subscription["id"].as_str().unwrap();
    let deleted = api_delete(server.addr, &format!("/webhooks/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let entry = dead["id"].as_str().unwrap();
    let replay = api_post(server.addr, &format!("/dlq/{entry}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::CONFLICT, "{}", replay.text);
    assert_eq!(replay.json["error"], "subscription_deleted");
    assert!(replay.json["reason"].as_str().unwrap().contains(id), "{}", replay.text);
    // Replayed among many (by ids or a filter), it is left where it is too.
    for body in [json!({"ids": [entry]}), json!({"filter": {"kind": "delivery"}})] {
        let many = api_post(server.addr, "/dlq/replay", body.clone()).await;
        assert_eq!(many.status, StatusCode::ACCEPTED, "{}", many.text);
        assert_eq!(many.json["replayed"], 0, "{body}: {}", many.text);
    }
    let still = api_get(server.addr, &format!("/dlq/{entry}")).await;
    assert_eq!(still.status, StatusCode::OK, "the entry stays, to be discarded");
}

#[tokio::test]
async fn gone_disables_the_subscription_and_keeps_its_events_until_it_is_enabled() {
    let receiver = Receiver::start(Script::Always(410)).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["order.*"]).await;
    let id = subscription["id"].as_str().unwrap().to_string();
    send(&server, order("e1", "BTC/USD")).await;
    let shown = eventually(10, "the subscription disabled", || async {
        let shown = api_get(server.addr, &format!("/webhooks/{id}")).await;
        (shown.json["active"] == false).then_some(shown)
    })
    .await;
    assert!(shown.json["disabledReason"].as_str().unwrap().contains("410"), "{}", shown.text);
    // Its health shows the answer that disabled it (lastError and failingSince were null).
    let health = &shown.json["health"];
    assert!(health["lastError"].as_str().is_some_and(|e| e.contains("410")), "{}", shown.text);
    assert!(health["failingSince"].is_string(), "{}", shown.text);
    send(&server, order("e2", "BTC/USD")).await;
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is attempted while disabled");
    let shown = api_get(server.addr, &format!("/webhooks/{id}")).await;
    assert_eq!(shown.json["health"]["held"], 2, "both events are kept: {}", shown.text);

    receiver.set(Script::Ok);
    let enabled = api_put(server.addr, &format!("/webhooks/{id}"), json!({"active": true})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    assert!(enabled.json["disabledReason"].is_null());
    let got = wait_accepted(&receiver, 2).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    // Both go out once enabled (dispatched oldest first, but attempted concurrently, so they may
    // arrive in either order).
    ids.sort();
    assert_eq!(ids, ["e1", "e2"], "held events go out once enabled");
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let receiver = Receiver::start(Script::RetryAfterOnce(1)).await;
    let server = TestServer::start_with(local).await;
    subscribe(&server, &receiver, &["*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    wait_accepted(&receiver, 1).await;
    let all = receiver.received();
    assert_eq!(all.len(), 2);
    let waited = all[1].at - all[0].at;
    assert!(waited >= Duration::from_millis(990), "waited {waited:?}, less than Retry-After: 1");
}

/// A `Retry-After` holds the subscription's deliveries queued after the answer too: a receiver
/// that said "not for 2 s" gets nothing before then (new events went out at once before).
#[tokio::test]
async fn retry_after_holds_deliveries_queued_after_it() {
    let receiver = Receiver::start(Script::RetryAfterOnce(2)).await;
    let server = TestServer::start_with(local).await;
    subscribe(&server, &receiver, &["*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    eventually(5, "the 429", || async { (!receiver.received().is_empty()).then_some(()) }).await;
    let refused_at = receiver.received()[0].at;
    for id in ["e2", "e3"] {
        send(&server, order(id, "BTC/USD")).await;
    }
    let all = wait_accepted(&receiver, 3).await;
    assert_eq!(receiver.received().len(), 4, "one 429, then each event once");
    for got in &all {
        let waited = got.at - refused_at;
        assert!(waited >= Duration::from_millis(1990), "sent {waited:?} after a Retry-After: 2");
    }
}

#[tokio::test]
async fn prolonged_failure_disables_the_subscription() {
    let receiver = Receiver::start(Script::Always(503)).await;
    let server = TestServer::start_with(|config| {
        local(config);
        config.retry.delays = vec![Duration::from_millis(150); 10];
        config.delivery.disable_after = Duration::from_millis(300);
    })
    .await;
    let subscription = subscribe(&server, &receiver, &["*"]).await;
    let id = subscription["id"].as_str().unwrap().to_string();
    send(&server, order("e1", "BTC/USD")).await;
    let shown = eventually(10, "the subscription disabled", || async {
        let shown = api_get(server.addr, &format!("/webhooks/{id}")).await;
        (shown.json["active"] == false).then_some(shown)
    })
    .await;
    let reason = shown.json["disabledReason"].as_str().unwrap();
    assert!(reason.contains("without a success"), "{reason}");
    let attempts = receiver.received().len();
    assert!((2..10).contains(&attempts), "disabled before the retries ran out: {attempts}");
    assert_eq!(shown.json["health"]["held"], 1, "the event is kept: {}", shown.text);
    let dlq = api_get(server.addr, "/dlq").await;
    assert_eq!(dlq.json["deadLetters"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = Receiver::start(Script::Ok).await;
    let receiver = Receiver::start(Script::Redirect(elsewhere.url())).await;
    let server = TestServer::start_with(local).await;
    let subscription = subscribe(&server, &receiver, &["*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    let id = subscription["id"].as_str().unwrap();
    let log = eventually(5, "a failed attempt", || async {
        let log = deliveries(&server, id).await;
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log[0]["statusCode"], 302);
    assert!(log[0]["error"].as_str().unwrap().contains("redirects are not followed"));
    assert!(elsewhere.received().is_empty());
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let server = TestServer::start().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
    ] {
        let created = api_post(server.addr, "/webhooks", json!({"url": url, "events": ["*"]})).await;
        assert_eq!(created.status, StatusCode::BAD_REQUEST, "{url}: {}", created.text);
        assert_eq!(created.json["error"], "invalid_subscription");
        assert!(created.json["reason"].as_str().unwrap().contains("allow_private_targets"));
    }
}

#[tokio::test]
async fn subscriptions_can_be_created_listed_updated_tested_and_deleted() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(local).await;
    let created = api_post(
        server.addr,
        "/webhooks",
        json!({"url": receiver.url(), "events": ["order.updated"], "secret": "your_webhook_secret", "active": true}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["secret"], "your_webhook_secret");
    let id = created.json["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh_"));

    let list = api_get(server.addr, "/webhooks").await;
    assert_eq!(list.json["webhooks"].as_array().unwrap().len(), 1);
    assert!(list.json["webhooks"][0].get("secret").is_none(), "lists never show secrets");
    let secret = api_get(server.addr, &format!("/webhooks/{id}/secret")).await;
    assert_eq!(secret.json["secret"], "your_webhook_secret");

    let updated =
        api_put(server.addr, &format!("/webhooks/{id}"), json!({"events": ["order.*", "position.*"]})).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.json["events"], json!(["order.*", "position.*"]));

    let test = api_post(
        server.addr,
        "/webhooks/test",
        json!({"webhookId": id, "testEvent": {"event": "test", "data": {"message": "Webhook test successful"}}}),
    )
    .await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.text);
    assert_eq!(test.json["delivered"], true);
    assert_eq!(test.json["statusCode"], 200);
    assert!(test.json["latencyMs"].as_f64().unwrap() > 0.0);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap()["data"]["message"],
        "Webhook test successful"
    );
    assert_eq!(deliveries(&server, &id).await[0]["outcome"], "test_delivered");
    // A test event that is not an event (a bare string) is refused, and nothing is sent.
    let bare =
        api_post(server.addr, "/webhooks/test", json!({"webhookId": id, "testEvent": "order.created"})).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST, "{}", bare.text);
    assert_eq!(receiver.received().len(), 1);

    for bad in [
        json!({"url": receiver.url(), "events": []}),
        json!({"url": "nope", "events": ["*"]}),
        json!({"events": ["*"]}),
        json!({"url": receiver.url(), "events": ["*"], "secret": "short"}),
    ] {
        let refused = api_post(server.addr, "/webhooks", bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.text);
        assert!(refused.json["reason"].is_string());
    }

    let deleted = api_delete(server.addr, &format!("/webhooks/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(api_get(server.addr, &format!("/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api_delete(server.addr, &format!("/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn routes_forward_to_a_named_subscription_with_symbol_filters() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(|config| {
        local(config);
        config.routes = vec![RouteConfig {
            events: vec!["order.*".into()],
            sources: vec![],
            symbols: vec!["BTC/USD".into()],
            statuses: vec![],
            actions: vec!["forward:strategy-svc".into()],
        }];
    })
    .await;
    let created = api_post(
        server.addr,
        "/webhooks",
        json!({"url": receiver.url(), "events": ["system.*"], "name": "strategy-svc"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    send(&server, order("eth", "ETH/USD")).await;
    send(&server, order("btc", "BTC/USD")).await;
    let got = wait_accepted(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1, "the ETH order does not pass the symbol filter");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap()["id"], "btc");
}

#[tokio::test]
async fn each_delivery_reaches_the_receiver_once_under_load() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(local).await;
    subscribe(&server, &receiver, &["*"]).await;
    let sends = (0..600).map(|i| {
        let server = &server;
        async move { send(server, order(&format!("e{i}"), "BTC/USD")).await }
    });
    futures::future::join_all(sends).await;
    wait_accepted(&receiver, 600).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> =
        receiver.received().iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 600, "no delivery is attempted twice when every attempt succeeds");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 600);
}

#[tokio::test]
async fn a_disabled_subscription_raises_an_operational_alert() {
    let alerts = Receiver::start(Script::Ok).await;
    let receiver = Receiver::start(Script::Always(410)).await;
    let alerts_url = alerts.url();
    let server = TestServer::start_with(|config| {
        local(config);
        config.alerts.url = Some(alerts_url);
    })
    .await;
    let subscription = subscribe(&server, &receiver, &["*"]).await;
    send(&server, order("e1", "BTC/USD")).await;
    let got = eventually(10, "the alert", || async { alerts.accepted().first().cloned() }).await;
    let alert: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(alert["kind"], "subscription_disabled", "{alert}");
    assert_eq!(alert["subject"], subscription["id"]);
    assert!(alert["message"].as_str().unwrap().contains("410"), "{alert}");
}

#[tokio::test]
async fn tradingview_alerts_are_delivered_as_canonical_signals_without_the_passphrase() {
    use tradehook::config::{Format, SourceConfig};
    use tradehook::ingest::signature::Scheme;
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(|config| {
        local(config);
        let mut tv = SourceConfig::new("tv", Scheme::Token, vec!["tv-pass".into()]);
        tv.format = Format::Tradingview;
        config.sources.push(tv);
    })
    .await;
    subscribe(&server, &receiver, &["signal.*"]).await;
    let alert = json!({"passphrase": "tv-pass", "ticker": "BTCUSD", "action": "buy", "contracts": 0.25,
        "price": 49850.5, "time": "2024-01-15T10:30:00Z", "strategy": "Sentinel"});
    let answer =
        request(http::Method::POST, &server.url("/webhooks/tv"), &[], alert.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let got = wait_accepted(&receiver, 1).await;
    let text = String::from_utf8_lossy(&got[0].body).into_owned();
    let signal: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(signal["event"], "signal.generated", "{text}");
    assert_eq!(signal["id"], answer.json["id"], "the envelope names the event: {text}");
    assert_eq!(signal["data"]["symbol"], "BTCUSD");
    assert_eq!(signal["data"]["action"], "buy");
    // Numbers as seed 001 sends them (they went out as strings), digit for digit.
    assert!(text.contains(r#""quantity":0.25"#) && text.contains(r#""price":49850.5"#), "{text}");
    assert!(!text.contains("tv-pass"), "the passphrase never leaves: {text}");
}

#[tokio::test]
async fn a_route_to_a_subscription_created_later_and_inactive_resumes_when_enabled() {
    let receiver = Receiver::start(Script::Ok).await;
    let server = TestServer::start_with(|config| {
        local(config);
        config.retry.delays = vec![Duration::from_millis(300); 5];
        config.routes = vec![RouteConfig {
            events: vec!["order.*".into()],
            sources: vec![],
            symbols: vec![],
            statuses: vec![],
            actions: vec!["forward:late-svc".into()],
        }];
    })
    .await;
    send(&server, order("e1", "BTC/USD")).await;
    wait_processed(server.addr).await;
    let created = api_post(
        server.addr,
        "/webhooks",
        json!({"url": receiver.url(), "events": ["system.*"], "name": "late-svc", "active": false}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_string();
    eventually(10, "the delivery held for the inactive subscription", || async {
        let shown = api_get(server.addr, &format!("/webhooks/{id}")).await;
        (shown.json["health"]["held"] == 1).then_some(())
    })
    .await;
    assert!(receiver.received().is_empty());
    let enabled = api_put(server.addr, &format!("/webhooks/{id}"), json!({"active": true})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    let got = wait_accepted(&receiver, 1).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap()["id"], "e1");
}

/// A batch routed to a subscription that is deleted before the batch commits queues nothing for
/// it: the delete dropped the deliveries waiting then, and this one came after (it used to wait
/// out its retries and land in the DLQ, where replaying it answers 409). Store level, both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_to_a_subscription_deleted_before_its_batch_commits_is_dropped() {
    use tradehook::delivery::subscription::Subscription;
    use tradehook::store::{now_ms, Appended, Lease, NewDelivery, NewEvent, ProcessedBatch};
    let dir = tempfile::tempdir().unwrap();
    let store = tradehook::server::open_store(&test_config(dir.path())).await.unwrap();
    let now = now_ms();
    let subscription = |id: &str| {
        Subscription::new(
            id.into(),
            "http://127.0.0.1:9/hook".into(),
            vec!["*".into()],
            "whsec_x".into(),
            now,
        )
    };
    store.create_subscription(subscription("wh_gone")).await.unwrap();
    store.create_subscription(subscription("wh_kept")).await.unwrap();
    let event = NewEvent {
        source: "default".into(),
        event_key: "routed-1".into(),
        event_type: Some("order.created".into()),
        body: Bytes::from_static(br#"{"id":"routed-1","event":"order.created"}"#),
        headers: "{}".into(),
        client_ip: "127.0.0.1".into(),
        received_at: now,
    };
    let Appended::Accepted(id) = store.append(event).await.unwrap() else { panic!("a new event") };
    let seq: i64 = id.trim_start_matches("evt_").parse().unwrap();
    assert!(matches!(store.processing_lease().await.unwrap(), Lease::Held { .. }));
    let mut batch = ProcessedBatch::default();
    batch.processed.push((seq, "applied"));
    for id in ["wh_gone", "wh_kept"] {
        let (target, webhook_id) = (format!("forward:{id}"), Some(id.to_owned()));
        batch.deliveries.push(NewDelivery { seq, target, webhook_id, held: false, payload: None });
    }
    batch.deliveries.push(NewDelivery {
        seq,
        target: "nats:kept".into(),
        webhook_id: None,
        held: false,
        payload: None,
    });
    // Routed while it existed; deleted before the batch commits.
    assert!(store.delete_subscription("wh_gone").await.unwrap());
    store.commit_processed(batch).await.unwrap();
    let due = store.due_deliveries(now_ms() + 1000, 100, &Default::default()).await.unwrap();
    let mut targets: Vec<_> = due.iter().map(|d| d.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(targets, ["forward:wh_kept", "nats:kept"]);
    store.close().await;
}

/// Lengths count characters, as the OpenAPI document's `maxLength` does: 129 two-byte
/// characters were refused as "longer than 256 characters".
#[tokio::test]
async fn subscription_text_lengths_count_characters_not_bytes() {
    let server = TestServer::start_with(local).await;
    let body = |secret: String, description: String| json!({"url": "https://example.com/hook", "events": ["*"], "secret": secret, "description": description});
    let created = api_post(server.addr, "/webhooks", body("é".repeat(256), "é".repeat(1000))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    for (secret, description) in [("é".repeat(257), String::new()), ("é".repeat(8), "é".repeat(1001))] {
        let refused = api_post(server.addr, "/webhooks", body(secret, description)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    }
}
