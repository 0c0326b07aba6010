//! Processing over real HTTP: events sent to the gateway become orders, positions, balances and
//! alerts in the state API; bad events go to the dead-letter queue, which can be replayed and
//! discarded.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;
use tradehook::config::{Format, SourceConfig};
use tradehook::ingest::signature::Scheme;

async fn send(server: &TestServer, event: serde_json::Value) -> String {
    let answer = post_event(server, &event.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["id"].as_str().unwrap().to_string()
}

fn order_created(id: &str, order_id: &str, side: &str, quantity: f64) -> serde_json::Value {
    json!({"id": id, "event": "order.created", "timestamp": "2024-01-15T10:30:00Z", "data": {
        "orderId": order_id, "symbol": "BTC/USD", "side": side, "type": "market",
        "quantity": quantity, "price": 0, "status": "pending"}})
}

fn order_filled(id: &str, order_id: &str, cum: f64, avg: f64, at: &str) -> serde_json::Value {
    json!({"id": id, "event": "order.updated", "timestamp": at, "data": {
        "orderId": order_id, "status": "partially_filled", "filledQuantity": cum, "averagePrice": avg}})
}

#[tokio::test]
async fn seed_lifecycle_becomes_orders_positions_and_balances() {
    let server = TestServer::start().await;
    send(&server, order_created("e1", "o1", "buy", 0.2)).await;
    send(&server, order_filled("e2", "o1", 0.1, 100.0, "2024-01-15T10:30:01Z")).await;
    send(&server, order_filled("e3", "o1", 0.2, 110.0, "2024-01-15T10:30:02Z")).await;
    send(
        &server,
        json!({"id": "b1", "event": "account.balance_updated", "timestamp": "2024-01-15T10:30:03Z",
        "data": {"asset": "USD", "available": 9500.0, "locked": 500.0, "total": 10000.0}}),
    )
    .await;
    wait_processed(server.addr).await;

    let order = api_get(server.addr, "/orders/o1").await;
    assert_eq!(order.status, StatusCode::OK, "{}", order.text);
    assert_eq!(order.json["status"], "filled", "fully filled even though the update said partially_filled");
    assert_eq!(order.json["filledQuantity"], json!(0.2));
    assert_eq!(order.json["averagePrice"], json!(110));
    assert_eq!(order.json["fills"].as_array().unwrap().len(), 2);
    assert_eq!(
        order.json["fills"][1]["price"],
        json!(120),
        "second fill priced from the cumulative increase"
    );

    let positions = api_get(server.addr, "/positions").await;
    let position = &positions.json["positions"][0];
    assert_eq!(position["symbol"], "BTC/USD");
    assert_eq!(position["side"], "long");
    assert_eq!(position["netQuantity"], json!(0.2));
    assert_eq!(position["averagePrice"], json!(110));

    let balances = api_get(server.addr, "/balances").await;
    assert_eq!(balances.json["balances"][0]["total"], json!(10000));
    let status = api_get(server.addr, "/status").await;
    assert_eq!(status.json["processed"], 4);
    assert!(status.json["lag"]["count"].as_u64().unwrap() >= 4);
}

#[tokio::test]
async fn duplicate_fill_with_a_new_event_id_applies_once() {
    let server = TestServer::start().await;
    send(&server, order_created("c1", "o2", "buy", 1.0)).await;
    send(&server, order_filled("f1", "o2", 0.5, 100.0, "2024-01-15T10:30:01Z")).await;
    // The sender retried with a fresh event id: same fill, must not double the position.
    send(&server, order_filled("f1-retry", "o2", 0.5, 100.0, "2024-01-15T10:30:01Z")).await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    assert_eq!(positions.json["positions"][0]["netQuantity"], json!(0.5));
}

#[tokio::test]
async fn fill_before_order_and_overfill_raise_alerts() {
    let server = TestServer::start().await;
    send(&server, order_filled("x1", "o3", 1.5, 100.0, "2024-01-15T10:30:01Z")).await;
    send(&server, order_created("x0", "o3", "buy", 1.0)).await;
    wait_processed(server.addr).await;
    let alerts = api_get(server.addr, "/alerts").await;
    let kinds: Vec<&str> =
        alerts.json["alerts"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"fill_before_order"), "{kinds:?}");
    assert!(kinds.contains(&"overfill"), "{kinds:?}");
    let order = api_get(server.addr, "/orders/o3").await;
    assert_eq!(order.json["status"], "filled");
    assert_eq!(order.json["overfillQuantity"], json!(0.5));
    let filtered = api_get(server.addr, "/alerts?kind=overfill").await;
    assert_eq!(filtered.json["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_filtered_page_is_filled_from_the_whole_list_not_cut_from_its_first_page() {
    let server = TestServer::start().await;
    // Orders p1…p5 stay pending; p9 and q1 (key order: after them) end filled.
    for n in 1..=5 {
        send(&server, order_created(&format!("pc{n}"), &format!("p{n}"), "buy", 1.0)).await;
    }
    send(&server, order_created("pc9", "p9", "buy", 0.2)).await;
    send(&server, order_filled("pf9", "p9", 0.2, 100.0, "2024-01-15T10:30:01Z")).await;
    // The oldest alert is q1's overfill; three newer ones are fills of orders never created.
    send(&server, order_created("qc1", "q1", "buy", 1.0)).await;
    send(&server, order_filled("qf1", "q1", 1.5, 100.0, "2024-01-15T10:30:01Z")).await;
    for n in 1..=3 {
        send(&server, order_filled(&format!("uf{n}"), &format!("u{n}"), 0.1, 100.0, "2024-01-15T10:30:02Z"))
            .await;
    }
    wait_processed(server.addr).await;

    let first = api_get(server.addr, "/orders?status=filled&limit=1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let ids = |page: &Answer| -> Vec<String> {
        page.json["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["p9"], "{}", first.text);
    let next = first.json["next"].as_str().expect("more may follow a full page").to_owned();
    let second = api_get(server.addr, &format!("/orders?status=filled&limit=1&after={next}")).await;
    assert_eq!(ids(&second), ["q1"], "{}", second.text);

    let overfills = api_get(server.addr, "/alerts?kind=overfill&limit=2").await;
    let alerts = overfills.json["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{}", overfills.text);
    assert_eq!(alerts[0]["kind"], "overfill");
    assert_eq!(overfills.json["next"], serde_json::Value::Null, "nothing older of that kind");
    let newest = api_get(server.addr, "/alerts?kind=fill_before_order&limit=2").await;
    assert_eq!(newest.json["alerts"].as_array().unwrap().len(), 2, "{}", newest.text);
    assert!(newest.json["next"].is_i64(), "a full page says where to go on: {}", newest.text);
}

#[tokio::test]
async fn schema_invalid_event_is_acked_then_dead_lettered_without_touching_state() {
    let server = TestServer::start().await;
    let id = send(
        &server,
        json!({"id": "bad1", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z",
        "data": {"status": "filled", "filledQuantity": 1}}),
    )
    .await;
    send(
        &server,
        json!({"id": "bad2", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z",
        "data": {"orderId": "o4", "status": "filled", "filledQuantity": -1}}),
    )
    .await;
    send(
        &server,
        json!({"id": "bad3", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z",
        "data": {"orderId": "o5", "status": "exploded"}}),
    )
    .await;
    send(
        &server,
        json!({"id": "bad4", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z",
        "data": {"orderId": "o6", "status": "filled", "filledQuantity": "NaN"}}),
    )
    .await;
    let status = wait_processed(server.addr).await;
    assert_eq!(status["dlq"], 4);
    let dlq = api_get(server.addr, "/dlq").await;
    let entries = dlq.json["deadLetters"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let first = entries.iter().find(|e| e["eventId"] == id.as_str()).unwrap();
    assert_eq!(first["kind"], "event");
    assert!(first["reason"].as_str().unwrap().contains("orderId"), "{first}");
    assert_eq!(first["attempts"], 1);
    assert_eq!(dlq.json["next"], json!(null), "one page holds them all");
    // Paged: a full page names where the next starts, and the pages add up to the whole.
    let page = api_get(server.addr, "/dlq?limit=3").await;
    let next = page.json["next"].as_str().expect("a full page has a next").to_owned();
    let rest = api_get(server.addr, &format!("/dlq?limit=3&before={next}")).await;
    assert_eq!(rest.json["next"], json!(null), "{}", rest.text);
    let paged: Vec<&serde_json::Value> = page.json["deadLetters"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.json["deadLetters"].as_array().unwrap())
        .collect();
    assert_eq!(paged, entries.iter().collect::<Vec<_>>(), "newest first, none twice");
    assert_eq!(api_get(server.addr, "/dlq?before=evt_1").await.status, StatusCode::BAD_REQUEST);
    let orders = api_get(server.addr, "/orders").await;
    assert!(orders.json["orders"].as_array().unwrap().is_empty(), "{}", orders.text);
    // The events API says how processing ended.
    let event = api_get(server.addr, &format!("/events/{id}")).await;
    assert_eq!(event.json["outcome"], "dead", "{}", event.text);
}

#[tokio::test]
async fn dead_letters_can_be_shown_replayed_and_discarded() {
    let server = TestServer::start().await;
    send(&server, json!({"id": "d1", "event": "order.updated", "timestamp": "2024-01-15T10:30:01Z", "data": {"status": "filled"}})).await;
    send(
        &server,
        json!({"id": "d2", "event": "mystery.event", "timestamp": "2024-01-15T10:30:01Z", "data": {}}),
    )
    .await;
    wait_processed(server.addr).await;
    let list = api_get(server.addr, "/dlq").await;
    let ids: Vec<String> = list.json["deadLetters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);

    let shown = api_get(server.addr, &format!("/dlq/{}", ids[0])).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.json["history"].as_array().unwrap().len() == 1);

    // Replay: the event is processed again, fails again (still invalid) and comes back.
    let replay = api_post(server.addr, &format!("/dlq/{}/replay", ids[0]), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(replay.json["replayed"], 1);
    wait_processed(server.addr).await;
    let after = api_get(server.addr, "/dlq").await;
    assert_eq!(after.json["deadLetters"].as_array().unwrap().len(), 2);

    // Discard one: gone for good.
    let newest = after.json["deadLetters"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(api_delete(server.addr, &format!("/dlq/{newest}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api_get(server.addr, &format!("/dlq/{newest}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api_delete(server.addr, &format!("/dlq/{newest}")).await.status, StatusCode::NOT_FOUND);

    // Replay by filter.
    let by_reason = api_post(server.addr, "/dlq/replay", json!({"filter": {"reason": "unknown"}})).await;
    assert_eq!(by_reason.status, StatusCode::ACCEPTED, "{}", by_reason.text);
    assert_eq!(
        api_post(server.addr, "/dlq/replay", json!({"bogus": 1})).await.status,
        StatusCode::BAD_REQUEST
    );
    // An empty selection replays nothing; saying neither (or both) is a mistake, not "all".
    let none = api_post(server.addr, "/dlq/replay", json!({"ids": []})).await;
    assert_eq!(
        (none.status, none.json["replayed"].clone()),
        (StatusCode::ACCEPTED, json!(0)),
        "{}",
        none.text
    );
    for unclear in [json!({}), json!({"ids": [], "filter": {}}), json!({"ids": null, "filter": {}})] {
        let answer = api_post(server.addr, "/dlq/replay", unclear.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{unclear}: {}", answer.text);
    }
    assert_eq!(api_get(server.addr, "/dlq?kind=nope").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn replaying_an_applied_event_changes_nothing() {
    let server = TestServer::start().await;
    send(&server, order_created("r0", "o7", "buy", 1.0)).await;
    let fill = send(&server, order_filled("r1", "o7", 1.0, 50.0, "2024-01-15T10:30:01Z")).await;
    wait_processed(server.addr).await;
    let event = api_get(server.addr, &format!("/events/{fill}")).await;
    assert_eq!(event.json["outcome"], "applied", "{}", event.text);
    let before = api_get(server.addr, "/positions").await;
    let replay = api_post(server.addr, &format!("/events/{fill}/replay"), json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(replay.json["requeued"], true);
    wait_processed(server.addr).await;
    let after = api_get(server.addr, "/positions").await;
    assert_eq!(before.json, after.json);
    assert_eq!(
        api_post(server.addr, "/events/evt_999999/replay", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tradingview_alert_becomes_a_signal() {
    let server = TestServer::start_with(|config| {
        let mut tv = SourceConfig::new("tv", Scheme::Token, vec!["tv-pass".into()]);
        tv.format = Format::Tradingview;
        config.sources.push(tv);
    })
    .await;
    let body = json!({"passphrase": "tv-pass", "ticker": "BTCUSD", "action": "buy", "contracts": 0.25,
        "price": 49850.5, "time": "2024-01-15T10:30:00Z", "strategy": "Sentinel"});
    let answer =
        request(http::Method::POST, &server.url("/webhooks/tv"), &[], body.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let id = answer.json["id"].as_str().unwrap().to_owned();
    wait_processed(server.addr).await;
    let signals = api_get(server.addr, "/signals").await;
    let signal = &signals.json["signals"][0];
    assert_eq!(signal["symbol"], "BTCUSD", "{}", signals.text);
    assert_eq!(signal["eventId"], json!(id), "known by the id its acknowledgement gave");
    // The stored event is listed, and found by type, as what it became.
    let listed = api_get(server.addr, "/events?type=signal.generated").await;
    assert_eq!(listed.json["events"][0]["id"], json!(id), "{}", listed.text);
    assert_eq!(listed.json["events"][0]["eventType"], "signal.generated");
    assert_eq!(signal["action"], "buy");
    assert_eq!(signal["quantity"], json!(0.25), "decimals are JSON numbers");
    assert_eq!(signal["price"], json!(49850.5));
    assert!(!signals.text.contains("tv-pass"));
}

#[tokio::test]
async fn state_api_rejects_bad_queries_and_unknown_orders() {
    let server = TestServer::start().await;
    assert_eq!(api_get(server.addr, "/orders/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(api_get(server.addr, "/orders?status=weird").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api_get(server.addr, "/positions?limit=0").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api_get(server.addr, "/alerts?before=x").await.status, StatusCode::BAD_REQUEST);
    // A filter naming what cannot exist is a mistake to say, not an empty list.
    for query in ["/alerts?kind=bogus", "/intents?outcome=x", "/intents?action=buy_low"] {
        let answer = api_get(server.addr, query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.text);
        assert!(answer.json["reason"].as_str().unwrap().contains("unknown variant"), "{}", answer.text);
    }
    for query in ["/alerts?kind=fill_before_order", "/intents?outcome=refused&action=margin_guard"] {
        assert_eq!(api_get(server.addr, query).await.status, StatusCode::OK, "{query}");
    }
}

#[tokio::test]
async fn an_event_timed_ahead_of_its_arrival_is_dead_lettered_and_never_outranks_real_ones() {
    let server = TestServer::start_with(|config| {
        let mut tv = SourceConfig::new("tv", Scheme::Token, vec!["tv-pass".into()]);
        tv.format = Format::Tradingview;
        config.sources.push(tv);
    })
    .await;
    let at = |offset: chrono::Duration| (chrono::Utc::now() + offset).to_rfc3339();
    let balance = |id: &str, total: f64, when: String| {
        json!({"id": id, "event": "account.balance_updated", "timestamp": when,
               "data": {"asset": "USDT", "free": total, "locked": 0, "total": total}})
    };
    // A sender whose clock is a year ahead, then the real current balance.
    let ahead = send(&server, balance("b-future", 100.0, at(chrono::Duration::days(365)))).await;
    send(&server, balance("b-now", 5.0, at(chrono::Duration::zero()))).await;
    // Within the source's tolerance (300 s) is only clock skew: taken.
    send(&server, balance("b-skew", 6.0, at(chrono::Duration::seconds(60)))).await;
    let alert =
        json!({"passphrase": "tv-pass", "ticker": "BTCUSD", "action": "buy", "time": "2099-01-01T00:00:00Z"});
    let answer =
        request(http::Method::POST, &server.url("/webhooks/tv"), &[], alert.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let status = wait_processed(server.addr).await;
    assert_eq!(status["dlq"], 2, "{status}");
    let balances = api_get(server.addr, "/balances").await;
    assert_eq!(balances.json["balances"][0]["total"], json!(6), "{}", balances.text);
    let dlq = api_get(server.addr, "/dlq").await;
    let entry =
        dlq.json["deadLetters"].as_array().unwrap().iter().find(|d| d["eventId"] == json!(ahead)).cloned();
    let reason = entry.expect("the future balance is a dead letter")["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("ahead of its arrival") && reason.contains("tolerance is 300 s"), "{reason}");
    let signals = api_get(server.addr, "/signals").await;
    assert_eq!(signals.json["signals"], json!([]), "{}", signals.text);
}

#[tokio::test]
async fn a_position_the_venue_reports_without_fills_shows_the_venues_quantity() {
    let server = TestServer::start().await;
    send(
        &server,
        json!({"id": "p1", "event": "position.opened", "timestamp": "2024-01-15T10:30:01Z", "data": {
            "symbol": "ZZ/USD", "side": "short", "quantity": 3, "averagePrice": 10, "unrealizedPnl": 0}}),
    )
    .await;
    send(
        &server,
        json!({"id": "p2", "event": "position.updated", "timestamp": "2024-01-15T11:00:00Z", "data": {
            "symbol": "ZZ/USD", "quantity": 2, "markPrice": 9, "marginRatio": 0.1}}),
    )
    .await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let zz = &positions.json["positions"][0];
    assert_eq!(zz["symbol"], "ZZ/USD", "{}", positions.text);
    assert_eq!(zz["netQuantity"], json!(0), "no fills: nothing derived");
    assert_eq!(zz["venueQuantity"], json!(-2), "the newest snapshot, short by the side it named");
    send(
        &server,
        json!({"id": "p3", "event": "position.closed", "timestamp": "2024-01-15T11:30:00Z", "data": {
            "symbol": "ZZ/USD", "quantity": 2, "closePrice": 9}}),
    )
    .await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    assert_eq!(positions.json["positions"][0]["venueQuantity"], json!(0), "{}", positions.text);
}

#[tokio::test]
async fn a_position_the_venue_disagrees_with_shows_the_mismatch_until_the_fills_catch_up() {
    let server = TestServer::start().await;
    send(&server, order_created("m1", "om", "buy", 2.0)).await;
    send(&server, order_filled("m2", "om", 1.0, 100.0, "2024-01-15T10:30:01Z")).await;
    send(
        &server,
        json!({"id": "m3", "event": "position.updated", "timestamp": "2024-01-15T10:30:05Z", "data": {
            "symbol": "BTC/USD", "side": "long", "quantity": 2, "markPrice": 101}}),
    )
    .await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let btc = &positions.json["positions"][0];
    assert_eq!(btc["mismatch"], json!({"venue": 2, "held": 1}), "{}", positions.text);
    let alerts = api_get(server.addr, "/alerts?kind=position_mismatch").await;
    assert_eq!(alerts.json["alerts"].as_array().map(Vec::len), Some(1), "{}", alerts.text);

    // The fill the venue already counted arrives (timed before its snapshot): they agree.
    send(&server, order_filled("m4", "om", 2.0, 100.0, "2024-01-15T10:30:02Z")).await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    assert_eq!(positions.json["positions"][0]["mismatch"], json!(null), "{}", positions.text);
}

#[tokio::test]
async fn amounts_with_more_digits_than_a_float_holds_stay_exact() {
    let server = TestServer::start().await;
    // Sent as JSON numbers (an 18-decimal amount, a long quantity and price): read from their text.
    let body = r#"{"id":"p1","event":"account.deposit_received","timestamp":"2024-01-15T09:00:00Z","data":{"transactionId":"tx_p","asset":"ETH","amount":1.000000000000000001,"status":"completed"}}"#;
    assert_eq!(post_event(&server, body).await.json["status"], "accepted");
    let body = r#"{"id":"p2","event":"order.created","timestamp":"2024-01-15T09:00:01Z","data":{"orderId":"op","symbol":"ETH/USD","side":"buy","type":"limit","quantity":0.123456789012345678,"price":2345.67890123456789,"status":"open"}}"#;
    assert_eq!(post_event(&server, body).await.json["status"], "accepted");
    wait_processed(server.addr).await;
    let ledger = api_get(server.addr, "/ledger").await;
    assert!(ledger.text.contains(r#""amount":1.000000000000000001"#), "{}", ledger.text);
    let order = api_get(server.addr, "/orders/op").await;
    assert!(order.text.contains(r#""quantity":0.123456789012345678"#), "{}", order.text);
    assert!(order.text.contains(r#""price":2345.67890123456789"#), "{}", order.text);
}

#[tokio::test]
async fn deposits_and_withdrawals_are_listed_once_per_transaction() {
    let server = TestServer::start().await;
    let deposit = json!({"id": "d1", "event": "account.deposit_received", "timestamp": "2024-01-15T09:00:00Z",
        "data": {"transactionId": "tx_1", "asset": "USD", "amount": 1000.0, "method": "bank_transfer", "status": "completed"}});
    send(&server, deposit.clone()).await;
    let mut again = deposit;
    again["id"] = json!("d1-resent");
    send(&server, again).await;
    send(
        &server,
        json!({"id": "w1", "event": "account.withdrawal_processed", "timestamp": "2024-01-15T10:00:00Z",
        "data": {"transactionId": "tx_2", "asset": "USD", "amount": 250.5, "status": "completed"}}),
    )
    .await;
    wait_processed(server.addr).await;
    let ledger = api_get(server.addr, "/ledger").await;
    assert_eq!(ledger.status, StatusCode::OK, "{}", ledger.text);
    let entries = ledger.json["entries"].as_array().unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e["transactionId"].clone(), e["kind"].clone(), e["amount"].clone()))
        .collect();
    assert_eq!(
        seen,
        [(json!("tx_1"), json!("deposit"), json!(1000)), (json!("tx_2"), json!("withdrawal"), json!(250.5))],
        "{}",
        ledger.text
    );
    assert_eq!(entries[0]["at"], "2024-01-15T09:00:00.000Z");
}

/// `/readyz` and the status' `oldestPendingAgeSeconds` measure a stalled worker (SPEC §6): an
/// old event replayed, or one waiting for a later retry, is not a stall. Before, both counted
/// from the event's arrival: replaying an event of an hour ago made `/readyz` fail, and an event
/// retried for longer than `max_pending_age` (retries run 12 min by default) made every node of
/// a cluster "not ready" at once.
#[tokio::test]
async fn the_pending_age_counts_from_when_an_event_became_due_not_from_its_arrival() {
    use tradehook::store::{now_ms, Appended, Lease, NewEvent, ProcessedBatch, Retry};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let hour = 3_600_000;
    let mut seqs = Vec::new();
    for key in ["old-1", "old-2"] {
        let event = NewEvent {
            source: "default".into(),
            event_key: key.into(),
            event_type: Some("order.created".into()),
            body: bytes::Bytes::from_static(b"{}"),
            headers: "{}".into(),
            client_ip: "127.0.0.1".into(),
            received_at: now_ms() - hour,
        };
        let Appended::Accepted(id) = store.append(event).await.unwrap() else { panic!("{key} stored twice") };
        seqs.push((id.clone(), id.trim_start_matches("evt_").parse::<i64>().unwrap()));
    }
    let age = |at: Option<i64>| at.map(|at| (now_ms() - at) / 1000);
    assert!(age(store.oldest_pending().await.unwrap()).unwrap() >= 3599, "an unprocessed arrival counts");

    // The first is processed; the second failed and waits for a retry in an hour.
    let batch = ProcessedBatch {
        processed: vec![(seqs[0].1, "applied")],
        retries: vec![Retry {
            seq: seqs[1].1,
            attempts: 1,
            next_attempt_at: now_ms() + hour,
            ordering_key: None,
            history: "[]".into(),
        }],
        ..ProcessedBatch::default()
    };
    assert!(matches!(store.processing_lease().await.unwrap(), Lease::Held { .. }));
    store.commit_processed(batch).await.unwrap();
    assert_eq!(store.oldest_pending().await.unwrap(), None, "an event waiting for its retry is not late");
    assert_eq!(store.stats().await.unwrap().oldest_pending_age_seconds, None);

    // Replayed an hour after it arrived, the first counts from its replay.
    assert!(store.replay_event(&seqs[0].0).await.unwrap());
    let waited = age(store.oldest_pending().await.unwrap()).expect("the replayed event is due");
    assert!(waited < 60, "the replayed event counts from its replay, not its arrival: {waited} s");
    let status = store.stats().await.unwrap().oldest_pending_age_seconds.expect("due");
    assert!(status < 60.0, "status agrees: {status} s");
}
