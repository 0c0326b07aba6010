//! Brokers of order intents, end to end below the strategy actions: intents recorded with a
//! processed event are sent once to a real local REST broker with seed 001 request signing, or
//! executed by the paper broker, whose order events come back into the store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::eventually;
use common::receiver::{Receiver, Script};
use tokio_util::sync::CancellationToken;
use tradehook::broker::{BrokerConfig, BrokerKind};
use tradehook::config::{AlertsConfig, DeliveryConfig};
use tradehook::delivery::attempt::DeliveryClient;
use tradehook::delivery::subscription::SubscriptionSet;
use tradehook::delivery::{Dispatcher, Targets};
use tradehook::notify::Notifier;
use tradehook::sinks::nats::{NatsConfig, NatsSink};
use tradehook::store::{
    now_ms, Appended, EventFilter, Lease, NewEvent, NewIntent, ProcessedBatch, SharedStore,
};
use tradehook::worker::retry::RetryPolicy;

async fn open(dir: &std::path::Path) -> SharedStore {
    common::open_store(dir).await
}

/// Stores a trigger event and records `intents` as processed with it.
async fn record(store: &SharedStore, key: &str, intents: Vec<(String, String)>, broker: &str) {
    let event = NewEvent {
        source: "default".into(),
        event_key: key.into(),
        event_type: Some("signal.generated".into()),
        body: Bytes::from_static(b"{}"),
        headers: "{}".into(),
        client_ip: "127.0.0.1".into(),
        received_at: now_ms(),
    };
    let Appended::Accepted(id) = store.append(event).await.unwrap() else { panic!("duplicate trigger") };
    let seq: i64 = id.trim_start_matches("evt_").parse().unwrap();
    let intents = intents
        .into_iter()
        .map(|(client_order_id, doc)| NewIntent {
            seq,
            client_order_id,
            action: "signal_to_order".into(),
            symbol: Some("BTC/USD".into()),
            doc,
            refused: None,
            broker: Some(broker.into()),
        })
        .collect();
    let batch = ProcessedBatch { processed: vec![(seq, "applied")], intents, ..ProcessedBatch::default() };
    // As the worker does: only the holder of the processing lease may commit.
    assert!(matches!(store.processing_lease().await.unwrap(), Lease::Held { .. }));
    store.commit_processed(batch).await.unwrap();
}

/// The `http` broker at `receiver`, with a test key and secret.
fn http_broker(receiver: &Receiver) -> BrokerConfig {
    BrokerConfig {
        kind: Some(BrokerKind::Http),
        url: Some(receiver.url()),
        api_key: Some("k".into()),
        secret: Some("s".into()),
    }
}

fn dispatcher(store: &SharedStore, broker: BrokerConfig) -> Dispatcher {
    dispatcher_with(store, broker, None)
}

fn dispatcher_with(store: &SharedStore, broker: BrokerConfig, entry_max_age: Option<Duration>) -> Dispatcher {
    let config = DeliveryConfig { allow_private_targets: true, ..DeliveryConfig::default() };
    let targets = Targets {
        client: DeliveryClient::new(&config).unwrap(),
        nats: Arc::new(NatsSink::new(NatsConfig::default())),
        notifier: Arc::new(Notifier::new(&AlertsConfig::default())),
        broker,
        entry_max_age,
    };
    let retry = RetryPolicy::new(vec![Duration::from_millis(100); 2]);
    Dispatcher::new(store.clone(), Arc::new(SubscriptionSet::default()), targets, retry, config)
}

async fn outcomes(store: &SharedStore) -> Vec<(String, String)> {
    let intents = store.intents(None, None, None, 100).await.unwrap();
    intents.into_iter().map(|i| (i.client_order_id, i.outcome)).collect()
}

#[tokio::test]
async fn the_http_broker_gets_each_intent_once_signed_with_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let broker_http = Receiver::start(Script::FailTimes(503, 1)).await;
    let broker = BrokerConfig {
        kind: Some(BrokerKind::Http),
        url: Some(broker_http.url()),
        api_key: Some("ak_live_1".into()),
        secret: Some("api-secret".into()),
    };
    let intent = r#"{"clientOrderId":"th-abc","op":"place","symbol":"BTC/USD","side":"buy","orderType":"market","quantity":"0.1"}"#;
    record(&store, "s1", vec![("th-abc".into(), intent.into())], "broker:http").await;
    // The same decision again (a replayed trigger): recorded once, never sent twice.
    record(&store, "s2", vec![("th-abc".into(), intent.into())], "broker:http").await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&store, broker).run(stop.clone()));
    eventually(10, "the intent sent", || async {
        (outcomes(&store).await == [("th-abc".to_string(), "sent".to_string())]).then_some(())
    })
    .await;
    let got = broker_http.received();
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200],
        "retried after a 503, then once"
    );
    let request = &got[1];
    assert_eq!(&request.body[..], intent.as_bytes());
    assert_eq!(request.headers["x-api-key"], "ak_live_1");
    let timestamp = request.headers["x-timestamp"].to_str().unwrap();
    let expected = tradehook::api::signing::sign("api-secret", timestamp, "POST", "/hook", &request.body);
    assert_eq!(request.headers["x-signature"].to_str().unwrap(), expected);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_broker_refusal_is_a_failed_intent_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let broker_http = Receiver::start(Script::Always(422)).await;
    let broker = http_broker(&broker_http);
    record(&store, "s1", vec![("th-x".into(), r#"{"clientOrderId":"th-x"}"#.into())], "broker:http").await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&store, broker).run(stop.clone()));
    eventually(10, "the intent failed", || async {
        (outcomes(&store).await == [("th-x".to_string(), "failed".to_string())]).then_some(())
    })
    .await;
    assert_eq!(broker_http.received().len(), 1, "a 422 is the broker refusing the order: not retried");
    // What the worker reads to stop counting a refused close as on its way.
    let outcomes = store.intent_outcomes(vec!["th-x".into(), "th-unknown".into()]).await.unwrap();
    assert_eq!(outcomes, [("th-x".to_string(), "failed".to_string())]);
    let dead = store.dead_letters(Default::default()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].target.as_deref(), Some("broker:http"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn entries_the_broker_has_not_taken_are_awaiting_until_it_answers_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let broker_http = Receiver::start(Script::Always(503)).await;
    let broker = http_broker(&broker_http);
    record(&store, "s1", vec![("th-a".into(), r#"{"clientOrderId":"th-a"}"#.into())], "broker:http").await;
    record(&store, "s2", vec![("th-b".into(), r#"{"clientOrderId":"th-b"}"#.into())], "broker:http").await;
    let awaiting = || async {
        let mut ids: Vec<String> =
            store.entries_awaiting_broker().await.unwrap().into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids
    };
    assert_eq!(awaiting().await, ["th-a", "th-b"], "queued");
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&store, broker.clone()).run(stop.clone()));
    eventually(10, "a first refused attempt", || async {
        (!broker_http.received().is_empty()).then_some(())
    })
    .await;
    assert_eq!(awaiting().await, ["th-a", "th-b"], "retrying after a 503: still waiting for the broker");
    eventually(10, "both intents failed", || async {
        outcomes(&store).await.iter().all(|(_, outcome)| outcome == "failed").then_some(())
    })
    .await;
    assert!(awaiting().await.is_empty(), "dead-lettered: the broker never took them");
    stop.cancel();
    task.await.unwrap();
    // Replayed from the dead-letter queue: waiting for the broker again.
    let all = tradehook::store::DeadLetterFilter { limit: 100, ..Default::default() };
    let dead: Vec<String> = store.dead_letters(all).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(store.replay_dead_letters(dead).await.unwrap(), 2);
    assert_eq!(awaiting().await, ["th-a", "th-b"], "replayed: waiting again");

    // Taken by the broker: no longer waiting for it (the venue's events take over).
    broker_http.set(Script::Ok);
    record(&store, "s3", vec![("th-c".into(), r#"{"clientOrderId":"th-c"}"#.into())], "broker:http").await;
    assert!(awaiting().await.contains(&"th-c".to_string()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&store, broker).run(stop.clone()));
    eventually(10, "the intents sent", || async { awaiting().await.is_empty().then_some(()) }).await;
    eventually(10, "all three sent", || async {
        outcomes(&store).await.iter().all(|(_, outcome)| outcome == "sent").then_some(())
    })
    .await;
    // A replayed intent that went through keeps no reason of its earlier failure.
    let intents = store.intents(None, None, None, 10).await.unwrap();
    assert!(intents.iter().all(|i| i.reason.is_none()), "{intents:?}");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn each_store_has_its_own_order_id_namespace_and_an_older_one_keeps_its_ids() {
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = open(fresh_dir.path()).await;
    let namespace = fresh.order_id_namespace().await.unwrap();
    assert!(namespace.len() == 8 && namespace.chars().all(|c| c.is_ascii_hexdigit()), "{namespace}");
    assert_eq!(fresh.order_id_namespace().await.unwrap(), namespace, "chosen once");
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path()).await;
    assert_ne!(other.order_id_namespace().await.unwrap(), namespace);
    // A store that recorded intents before namespaces existed derives its ids as it always did,
    // so a replayed trigger is still recognised and never sent twice.
    let old_dir = tempfile::tempdir().unwrap();
    let old = open(old_dir.path()).await;
    record(&old, "s1", vec![("th-old".into(), "{}".into())], "broker:http").await;
    assert_eq!(old.order_id_namespace().await.unwrap(), "");
}

#[tokio::test]
async fn the_kill_switch_stops_queued_entry_orders_but_not_protective_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let broker_http = Receiver::start(Script::Ok).await;
    let broker = http_broker(&broker_http);
    // Both queued while the switch was off; the operator turns it on before they go out.
    let entry =
        r#"{"clientOrderId":"th-in","action":"signal_to_order","role":"bracketed_entry","op":"place"}"#;
    // The entry's own stop-loss (signal_to_order too), waiting for a retry, must still go.
    let stop_loss = r#"{"clientOrderId":"th-sl","action":"signal_to_order","role":"stop_loss","op":"place"}"#;
    record(
        &store,
        "s1",
        vec![("th-in".into(), entry.into()), ("th-sl".into(), stop_loss.into())],
        "broker:http",
    )
    .await;
    store.set_kill_switch(true).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher(&store, broker).run(stop.clone()));
    eventually(10, "both settled", || async {
        let mut got = outcomes(&store).await;
        got.sort();
        (got == [("th-in".to_string(), "failed".to_string()), ("th-sl".to_string(), "sent".to_string())])
            .then_some(())
    })
    .await;
    let sent: Vec<String> =
        broker_http.received().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    assert_eq!(sent, [stop_loss], "only the protective order reached the broker");
    let intents = store.intents(None, None, None, 10).await.unwrap();
    let held = intents.iter().find(|i| i.client_order_id == "th-in").unwrap();
    assert!(held.reason.as_deref().is_some_and(|r| r.contains("kill switch is on")), "{held:?}");
    stop.cancel();
    task.await.unwrap();
}

/// A signal's own stop-loss and take-profit (`parentClientOrderId`) go only once their entry
/// went: when the broker refuses the entry, or the kill switch holds it, they are not sent (they
/// fail with the reason); while it is on its way they wait. Before, they were sent anyway and
/// could rest on the venue against another position.
#[tokio::test]
async fn legs_go_only_after_their_entry_was_sent() {
    let leg = |id: &str, parent: &str| {
        format!(
            r#"{{"clientOrderId":"{id}","role":"stop_loss","op":"place","parentClientOrderId":"{parent}"}}"#
        )
    };
    let entry = |id: &str| format!(r#"{{"clientOrderId":"{id}","role":"entry","op":"place"}}"#);
    let run = |script: Script, kill_switch: bool| async move {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let broker_http = Receiver::start(script).await;
        record(
            &store,
            "s1",
            vec![("th-e".into(), entry("th-e")), ("th-l".into(), leg("th-l", "th-e"))],
            "broker:http",
        )
        .await;
        store.set_kill_switch(kill_switch).await.unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(dispatcher(&store, http_broker(&broker_http)).run(stop.clone()));
        eventually(10, "both settled", || async {
            outcomes(&store).await.iter().all(|(_, outcome)| outcome != "queued").then_some(())
        })
        .await;
        stop.cancel();
        task.await.unwrap();
        let mut got = outcomes(&store).await;
        got.sort();
        let sent: Vec<String> =
            broker_http.received().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
        let reasons: Vec<Option<String>> =
            store.intents(None, None, None, 10).await.unwrap().into_iter().map(|i| i.reason).collect();
        (got, sent, reasons)
    };
    let failed = |got: &[(String, String)]| got.iter().all(|(_, outcome)| outcome == "failed");

    // The broker refuses the entry: the leg never reaches it.
    let (got, sent, reasons) = run(Script::Always(422), false).await;
    assert!(failed(&got), "{got:?}");
    assert_eq!(sent, [entry("th-e")], "only the entry was sent");
    assert!(reasons.iter().flatten().any(|r| r.contains("its entry order th-e was not sent")), "{reasons:?}");

    // The kill switch holds the entry: the leg is not sent either.
    let (got, sent, _) = run(Script::Ok, true).await;
    assert!(failed(&got), "{got:?}");
    assert!(sent.is_empty(), "{sent:?}");

    // The entry goes: the leg follows it.
    let (got, sent, _) = run(Script::Ok, false).await;
    assert_eq!(got, [("th-e".to_string(), "sent".to_string()), ("th-l".to_string(), "sent".to_string())]);
    assert_eq!(sent, [entry("th-e"), leg("th-l", "th-e")], "the leg after its entry");
}

/// An entry whose signal is older than `max_signal_age` when it would be sent — after a broker
/// outage, or replayed from the dead-letter queue long after — is not sent; a close of the same
/// age still goes. Before, a replayed stale entry was sent whatever the position had become.
#[tokio::test]
async fn an_entry_whose_signal_went_stale_before_it_is_sent_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let broker_http = Receiver::start(Script::Ok).await;
    let minute_ago = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let entry = format!(
        r#"{{"clientOrderId":"th-old","action":"signal_to_order","role":"entry","op":"place","createdAt":"{minute_ago}"}}"#
    );
    let close = format!(
        r#"{{"clientOrderId":"th-cls","action":"signal_to_order","role":"close","op":"place","createdAt":"{minute_ago}"}}"#
    );
    let fresh = format!(
        r#"{{"clientOrderId":"th-new","action":"signal_to_order","role":"entry","op":"place","createdAt":"{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    // The stale entry's own stop-loss: its entry is not sent, so neither is it.
    let old_leg = format!(
        r#"{{"clientOrderId":"th-old-sl","role":"stop_loss","op":"place","parentClientOrderId":"th-old","createdAt":"{minute_ago}"}}"#
    );
    let intents = vec![
        ("th-old".into(), entry),
        ("th-old-sl".into(), old_leg),
        ("th-cls".into(), close.clone()),
        ("th-new".into(), fresh.clone()),
    ];
    record(&store, "s1", intents, "broker:http").await;
    let stop = CancellationToken::new();
    let dispatcher = dispatcher_with(&store, http_broker(&broker_http), Some(Duration::from_secs(30)));
    let task = tokio::spawn(dispatcher.run(stop.clone()));
    let settled = |want: Vec<(&'static str, &'static str)>| {
        let store = store.clone();
        async move {
            eventually(10, "all settled", || async {
                let mut got = outcomes(&store).await;
                got.sort();
                (got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>() == want).then_some(())
            })
            .await
        }
    };
    settled(vec![("th-cls", "sent"), ("th-new", "sent"), ("th-old", "failed"), ("th-old-sl", "failed")])
        .await;
    // A stale leg of an entry that was sent still goes: it protects that position.
    let new_leg = format!(
        r#"{{"clientOrderId":"th-new-sl","role":"stop_loss","op":"place","parentClientOrderId":"th-new","createdAt":"{minute_ago}"}}"#
    );
    record(&store, "s2", vec![("th-new-sl".into(), new_leg.clone())], "broker:http").await;
    settled(vec![
        ("th-cls", "sent"),
        ("th-new", "sent"),
        ("th-new-sl", "sent"),
        ("th-old", "failed"),
        ("th-old-sl", "failed"),
    ])
    .await;
    let mut sent: Vec<String> =
        broker_http.received().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    sent.sort();
    assert_eq!(sent, [close, fresh, new_leg]);
    let intents = store.intents(None, None, None, 10).await.unwrap();
    let stale = intents.iter().find(|i| i.client_order_id == "th-old").unwrap();
    assert!(
        stale.reason.as_deref().is_some_and(|r| r.contains("older than signal_to_order.max_signal_age 30s")),
        "{stale:?}"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn the_paper_broker_fills_market_orders_and_feeds_the_fills_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let intent = r#"{"clientOrderId":"th-p1","op":"place","symbol":"BTC/USD","side":"buy","orderType":"market","quantity":"0.25","referencePrice":"50000"}"#;
    record(&store, "s1", vec![("th-p1".into(), intent.into())], "broker:paper").await;
    let stop = CancellationToken::new();
    let broker = BrokerConfig { kind: Some(BrokerKind::Paper), ..BrokerConfig::default() };
    let task = tokio::spawn(dispatcher(&store, broker).run(stop.clone()));
    eventually(10, "the intent sent", || async {
        (outcomes(&store).await == [("th-p1".to_string(), "sent".to_string())]).then_some(())
    })
    .await;
    let filter = EventFilter { source: Some("paper".into()), limit: 10, ..EventFilter::default() };
    let events = store.events(filter).await.unwrap();
    let types: Vec<_> = events.iter().rev().map(|e| e.event_type.clone().unwrap()).collect();
    assert_eq!(types, ["order.created", "order.updated"]);
    let payload = events[0].payload_json();
    assert_eq!(payload["data"]["status"], "filled");
    assert_eq!(payload["data"]["averagePrice"], "50000");
    assert_eq!(payload["data"]["clientOrderId"], "th-p1");
    stop.cancel();
    task.await.unwrap();
}
