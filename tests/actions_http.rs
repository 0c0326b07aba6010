//! Strategy actions end to end over HTTP, with the embedded paper broker: a TradingView alert
//! becomes a signal, a paper order, a fill and a bracket; duplicated fills, liquidations,
//! maintenance windows, the kill switch and margin alerts do what TRADING.md says.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::json;
use tradehook::broker::{BrokerConfig, BrokerKind};
use tradehook::config::{Config, Format, RouteConfig, SourceConfig};
use tradehook::ingest::signature::Scheme;

fn route(events: &[&str], action: &str) -> RouteConfig {
    RouteConfig {
        events: events.iter().map(|s| s.to_string()).collect(),
        sources: vec![],
        symbols: vec![],
        statuses: vec![],
        actions: vec![action.to_string()],
    }
}

/// TradingView source `tv`, every action routed and configured, the paper broker.
fn trading(config: &mut Config) {
    let mut tv = SourceConfig::new("tv", Scheme::Token, vec!["tv-pass".into()]);
    tv.format = Format::Tradingview;
    config.sources.push(tv);
    config.routes = vec![
        route(&["signal.*"], "signal_to_order"),
        route(&["order.*"], "bracket_on_fill"),
        route(&["position.*", "account.margin_call"], "margin_guard"),
    ];
    config.actions = serde_json::from_value(json!({
        "bracket_on_fill": {"stop_loss": "2%", "take_profit": "4%"},
        "signal_to_order": {"max_position": "10", "max_order": "5", "max_orders_per_minute": 60, "max_signal_age": "5m"},
        "margin_guard": {"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5", "max_alert_age": "5m"}
    }))
    .unwrap();
    config.broker = BrokerConfig { kind: Some(BrokerKind::Paper), ..BrokerConfig::default() };
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn send(server: &TestServer, body: serde_json::Value) {
    let answer = post_event(server, &body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

async fn alert(server: &TestServer, action: &str, price: f64) {
    let body = json!({"passphrase": "tv-pass", "ticker": "BTCUSD", "action": action, "contracts": 0.25,
        "price": price, "time": now(), "strategy": "Sentinel"});
    let answer =
        request(http::Method::POST, &server.url("/webhooks/tv"), &[], body.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

async fn intents(server: &TestServer) -> Vec<serde_json::Value> {
    let list = api_get(server.addr, "/intents").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    list.json["intents"].as_array().unwrap().clone()
}

/// Waits until the intents satisfy `done`, then returns them (oldest first).
async fn intents_when(
    server: &TestServer,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(15, what, || async {
        let mut all = intents(server).await;
        all.reverse();
        done(&all).then_some(all)
    })
    .await
}

fn of<'a>(all: &'a [serde_json::Value], action: &str) -> Vec<&'a serde_json::Value> {
    all.iter().filter(|i| i["action"] == action).collect()
}

/// How many of bracket_on_fill's intents were sent, of `op` only when given.
fn sent_legs(all: &[serde_json::Value], op: Option<&str>) -> usize {
    let op_matches = |i: &&serde_json::Value| op.is_none_or(|op| i["intent"]["op"] == op);
    of(all, "bracket_on_fill").into_iter().filter(|i| i["outcome"] == "sent").filter(op_matches).count()
}

#[tokio::test]
async fn a_tradingview_alert_becomes_a_paper_fill_with_its_bracket_and_position() {
    let server = TestServer::start_with(trading).await;
    alert(&server, "buy", 50000.0).await;
    let all = intents_when(&server, "entry and bracket sent", |all| {
        all.len() == 3 && all.iter().all(|i| i["outcome"] == "sent")
    })
    .await;
    let entry = of(&all, "signal_to_order");
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0]["intent"]["side"], "buy");
    assert_eq!(entry[0]["intent"]["quantity"], "0.25");
    let legs = of(&all, "bracket_on_fill");
    let prices: Vec<_> = legs
        .iter()
        .map(|l| {
            (
                l["intent"]["orderType"].as_str().unwrap(),
                l["intent"]["stopPrice"].clone(),
                l["intent"]["price"].clone(),
            )
        })
        .collect();
    assert!(prices.contains(&("stop", json!("49000"), serde_json::Value::Null)), "{prices:?}");
    assert!(prices.contains(&("limit", serde_json::Value::Null, json!("52000"))), "{prices:?}");
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let position = &positions.json["positions"][0];
    assert_eq!(position["symbol"], "BTCUSD", "{}", positions.text);
    assert_eq!(position["side"], "long");
    assert_eq!(position["netQuantity"], json!(0.25));
    assert_eq!(position["averagePrice"], json!(50000));
}

fn entry_created(id: &str) -> serde_json::Value {
    json!({"id": id, "event": "order.created", "timestamp": now(), "data": {"orderId": "e1", "symbol": "ETH/USD",
        "side": "buy", "type": "market", "quantity": 3, "price": 0, "status": "pending"}})
}

fn entry_fill(id: &str, cum: f64, origin: Option<&str>) -> serde_json::Value {
    let mut body = json!({"id": id, "event": "order.updated", "timestamp": now(), "data": {"orderId": "e1",
        "status": if cum >= 3.0 { "filled" } else { "partially_filled" }, "filledQuantity": cum, "averagePrice": 2000}});
    if let Some(origin) = origin {
        body["data"]["origin"] = json!(origin);
    }
    body
}

#[tokio::test]
async fn the_same_fill_twice_gives_one_bracket_and_partials_resize_it() {
    let server = TestServer::start_with(trading).await;
    send(&server, entry_created("c1")).await;
    send(&server, entry_fill("f1", 1.0, None)).await;
    send(&server, entry_fill("f1-again", 1.0, None)).await;
    wait_processed(server.addr).await;
    let all = intents_when(&server, "one bracket pair", |all| of(all, "bracket_on_fill").len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        of(&intents(&server).await, "bracket_on_fill").len(),
        2,
        "the duplicated fill places nothing new"
    );
    assert!(of(&all, "bracket_on_fill")
        .iter()
        .all(|l| l["intent"]["op"] == "place" && l["intent"]["quantity"] == "1"));

    send(&server, entry_fill("f2", 2.0, None)).await;
    send(&server, entry_fill("f3", 3.0, None)).await;
    let all = intents_when(&server, "the pair amended", |all| {
        of(all, "bracket_on_fill")
            .iter()
            .filter(|l| l["intent"]["op"] == "amend" && l["intent"]["quantity"] == "3")
            .count()
            == 2
    })
    .await;
    let places = of(&all, "bracket_on_fill").iter().filter(|l| l["intent"]["op"] == "place").count();
    assert_eq!(places, 2, "resized, not duplicated");
}

#[tokio::test]
async fn a_liquidation_fill_gets_no_bracket() {
    let server = TestServer::start_with(trading).await;
    send(&server, entry_created("c1")).await;
    send(&server, entry_fill("f1", 3.0, Some("liquidation"))).await;
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(of(&intents(&server).await, "bracket_on_fill").is_empty());
}

#[tokio::test]
async fn back_to_back_signals_stay_within_max_position() {
    // Failed before (when the alerts were decided before the paper fills came back): every alert
    // placed an order.
    let server = TestServer::start_with(|config| {
        trading(config);
        config.routes.truncate(1);
        config.actions = serde_json::from_value(json!({"signal_to_order": {"max_position": "0.5",
            "max_order": "5", "max_orders_per_minute": 60, "max_signal_age": "5m"}}))
        .unwrap();
    })
    .await;
    for price in [50000.0, 50001.0, 50002.0] {
        alert(&server, "buy", price).await;
    }
    let all = intents_when(&server, "three decisions", |all| of(all, "signal_to_order").len() == 3).await;
    let outcomes: Vec<_> = of(&all, "signal_to_order").iter().map(|i| i["outcome"].clone()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "refused").count(), 1, "{all:?}");
    eventually(15, "the two entries filled", || async {
        let positions = api_get(server.addr, "/positions").await;
        (positions.json["positions"][0]["netQuantity"] == json!(0.5)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn signals_inside_a_maintenance_window_are_refused_with_the_reason() {
    let server = TestServer::start_with(trading).await;
    let start = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    send(
        &server,
        json!({"id": "m1", "event": "system.maintenance", "timestamp": now(), "data": {
        "maintenanceType": "scheduled", "startTime": start, "endTime": end, "affectedServices": ["trading"],
        "message": "upgrade"}}),
    )
    .await;
    alert(&server, "buy", 50000.0).await;
    let all = intents_when(&server, "a refusal", |all| !all.is_empty()).await;
    assert_eq!(all[0]["outcome"], "refused");
    assert!(all[0]["reason"].as_str().unwrap().contains("maintenance"), "{}", all[0]);
}

#[tokio::test]
async fn the_kill_switch_refuses_signals_until_it_is_off() {
    let server = TestServer::start_with(trading).await;
    let on = api_post(server.addr, "/killswitch", json!({"on": true})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    assert_eq!(api_get(server.addr, "/killswitch").await.json["on"], true);
    alert(&server, "buy", 50000.0).await;
    let all = intents_when(&server, "a refusal", |all| !all.is_empty()).await;
    assert_eq!(all[0]["outcome"], "refused");
    assert!(all[0]["reason"].as_str().unwrap().contains("kill switch"), "{}", all[0]);

    api_post(server.addr, "/killswitch", json!({"on": false})).await;
    alert(&server, "buy", 50100.0).await;
    intents_when(&server, "an order after the switch is off", |all| {
        of(all, "signal_to_order").iter().any(|i| i["outcome"] == "sent")
    })
    .await;
}

fn position(id: &str, ratio: f64, at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({"id": id, "event": "position.updated", "timestamp": at.to_rfc3339(), "data": {"symbol": "BTC/USD",
        "side": "long", "quantity": 2, "averagePrice": 100, "markPrice": 90, "marginRatio": ratio}})
}

#[tokio::test]
async fn margin_alerts_reduce_once_per_episode_and_stale_ones_do_nothing() {
    let server = TestServer::start_with(trading).await;
    let now = chrono::Utc::now();
    send(&server, position("stale", 0.95, now - chrono::Duration::hours(1))).await;
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(of(&intents(&server).await, "margin_guard").is_empty(), "a stale alert does nothing");

    send(&server, position("p1", 0.85, now)).await;
    send(&server, position("p2", 0.9, now + chrono::Duration::seconds(1))).await;
    let all = intents_when(&server, "one reduction", |all| !of(all, "margin_guard").is_empty()).await;
    wait_processed(server.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reductions = of(&intents(&server).await, "margin_guard").len();
    assert_eq!(reductions, 1, "two alerts in one episode reduce once");
    let reduce = of(&all, "margin_guard")[0];
    assert_eq!(reduce["intent"]["side"], "sell");
    assert_eq!(reduce["intent"]["reduceOnly"], true);
    assert_eq!(reduce["intent"]["quantity"], "1");
}

#[tokio::test]
async fn a_liquidation_that_closes_the_position_cancels_the_leftover_bracket() {
    let server = TestServer::start_with(trading).await;
    send(&server, entry_created("c1")).await;
    send(&server, entry_fill("f1", 3.0, None)).await;
    intents_when(&server, "the bracket placed", |all| of(all, "bracket_on_fill").len() == 2).await;
    send(
        &server,
        json!({"id": "l1", "event": "order.created", "timestamp": now(), "data": {"orderId": "liq1",
        "symbol": "ETH/USD", "side": "sell", "type": "market", "quantity": 3, "price": 0, "status": "pending",
        "origin": "liquidation"}}),
    )
    .await;
    send(
        &server,
        json!({"id": "l2", "event": "order.updated", "timestamp": now(), "data": {"orderId": "liq1",
        "status": "filled", "filledQuantity": 3, "averagePrice": 1900, "origin": "liquidation"}}),
    )
    .await;
    let all = intents_when(&server, "both legs cancelled", |all| {
        of(all, "bracket_on_fill").iter().filter(|i| i["intent"]["op"] == "cancel").count() == 2
    })
    .await;
    let places = of(&all, "bracket_on_fill").iter().filter(|i| i["intent"]["op"] == "place").count();
    assert_eq!(places, 2, "the liquidation order itself gets no bracket");
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    assert_eq!(positions.json["positions"][0]["side"], "flat", "{}", positions.text);
}

#[tokio::test]
async fn the_paper_stop_loss_fills_when_the_price_falls_through_it_and_cancels_the_take_profit() {
    let server = TestServer::start_with(trading).await;
    alert(&server, "buy", 50000.0).await;
    intents_when(&server, "entry and bracket sent", |all| {
        all.len() == 3 && all.iter().all(|i| i["outcome"] == "sent")
    })
    .await;
    wait_processed(server.addr).await;
    // The venue reports a mark price under the stop (49000): the resting paper stop fills.
    send(
        &server,
        json!({"id": "mark1", "event": "position.updated", "timestamp": now(),
        "data": {"symbol": "BTCUSD", "markPrice": 48900}}),
    )
    .await;
    let all =
        intents_when(&server, "the take-profit cancelled", |all| sent_legs(all, Some("cancel")) > 0).await;
    let cancel = of(&all, "bracket_on_fill").into_iter().find(|i| i["intent"]["op"] == "cancel").unwrap();
    assert_eq!(cancel["intent"]["orderType"], "limit", "the other leg, the take-profit, is cancelled");
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let position = &positions.json["positions"][0];
    assert_eq!(position["side"], "flat", "{}", positions.text);
    assert_eq!(position["realizedPnl"], json!(-275), "0.25 × (48900 − 50000)");
}

#[tokio::test]
async fn an_amended_paper_stop_fills_at_its_new_level_for_its_new_size() {
    let server = TestServer::start_with(trading).await;
    send(&server, entry_created("c1")).await;
    let fill = |id: &str, cum: f64, average: f64| {
        let mut body = entry_fill(id, cum, None);
        body["data"]["averagePrice"] = json!(average);
        body
    };
    send(&server, fill("f1", 1.0, 2000.0)).await;
    intents_when(&server, "the pair placed", |all| sent_legs(all, None) == 2).await;
    // The rest fills at 2030 (crossing neither leg), average 2020: the stop moves up from 1960 to
    // 2% under 2020, for 3.
    send(&server, fill("f2", 3.0, 2020.0)).await;
    let all = intents_when(&server, "the pair amended", |all| sent_legs(all, Some("amend")) == 2).await;
    let stop = of(&all, "bracket_on_fill")
        .into_iter()
        .find(|l| l["intent"]["op"] == "amend" && l["intent"]["orderType"] == "stop")
        .unwrap();
    assert_eq!((&stop["intent"]["quantity"], &stop["intent"]["stopPrice"]), (&json!("3"), &json!("1979.6")));
    wait_processed(server.addr).await;

    // 1970: under the amended stop, above the first one.
    send(
        &server,
        json!({"id": "mark1", "event": "position.updated", "timestamp": now(),
        "data": {"symbol": "ETH/USD", "markPrice": 1970}}),
    )
    .await;
    intents_when(&server, "the take-profit cancelled", |all| sent_legs(all, Some("cancel")) > 0).await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let position = &positions.json["positions"][0];
    assert_eq!(position["side"], "flat", "{}", positions.text);
    assert_eq!(position["realizedPnl"], json!(-150), "3 × (1970 − 2020)");
}

#[tokio::test]
async fn a_paper_stop_after_a_margin_reduction_closes_the_position_without_flipping_it() {
    // Failed before: the legs stayed sized 2 after the reduction to 1 and the stop sold 2 (short 1).
    let server = TestServer::start_with(trading).await;
    let entry = |id: &str, kind: &str, data: serde_json::Value| {
        let mut body = json!({"id": id, "event": kind, "timestamp": now(), "data": {"orderId": "e2",
            "symbol": "SOL/USD", "side": "buy", "type": "market", "quantity": 2}});
        body["data"].as_object_mut().unwrap().extend(data.as_object().unwrap().clone());
        body
    };
    send(&server, entry("c1", "order.created", json!({"status": "pending"}))).await;
    send(
        &server,
        entry("f1", "order.updated", json!({"status": "filled", "filledQuantity": 2, "averagePrice": 10})),
    )
    .await;
    intents_when(&server, "the pair placed", |all| sent_legs(all, None) == 2).await;
    wait_processed(server.addr).await;
    // Margin ratio over the threshold: the guard sells half (1), the legs follow down to 1.
    send(
        &server,
        json!({"id": "m1", "event": "position.updated", "timestamp": now(), "data": {"symbol": "SOL/USD",
            "side": "long", "quantity": 2, "averagePrice": 10, "markPrice": 10, "marginRatio": 0.9}}),
    )
    .await;
    let all = intents_when(&server, "the legs resized", |all| sent_legs(all, Some("amend")) == 2).await;
    assert!(of(&all, "bracket_on_fill")
        .iter()
        .filter(|l| l["intent"]["op"] == "amend")
        .all(|l| l["intent"]["quantity"] == "1"));
    wait_processed(server.addr).await;
    // A mark under the stop (9.8): the stop fills what is left, 1.
    send(
        &server,
        json!({"id": "m2", "event": "position.updated", "timestamp": now(),
            "data": {"symbol": "SOL/USD", "markPrice": 9.5}}),
    )
    .await;
    intents_when(&server, "the take-profit cancelled", |all| sent_legs(all, Some("cancel")) > 0).await;
    wait_processed(server.addr).await;
    let positions = api_get(server.addr, "/positions").await;
    let position = &positions.json["positions"][0];
    assert_eq!(position["netQuantity"], json!(0), "{}", positions.text);
}

#[tokio::test]
async fn signals_reach_the_http_broker_signed_with_the_api_key() {
    use common::receiver::{Receiver, Script};
    let broker = Receiver::start(Script::Ok).await;
    let url = format!("http://{}/api/v1/orders", broker.addr);
    let server = TestServer::start_with(|config| {
        trading(config);
        config.delivery.allow_private_targets = true;
        config.broker = BrokerConfig {
            kind: Some(BrokerKind::Http),
            url: Some(url),
            api_key: Some("ak_live_1".into()),
            secret: Some("api-secret".into()),
        };
    })
    .await;
    alert(&server, "buy", 50000.0).await;
    let all = intents_when(&server, "the order sent", |all| all.iter().any(|i| i["outcome"] == "sent")).await;
    let got = broker.accepted();
    assert_eq!(got.len(), 1, "the broker gets the entry once");
    let request = &got[0];
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["clientOrderId"], all[0]["clientOrderId"]);
    assert_eq!(body["side"], "buy");
    assert_eq!(request.headers["x-api-key"], "ak_live_1");
    let timestamp = request.headers["x-timestamp"].to_str().unwrap();
    let expected =
        tradehook::api::signing::sign("api-secret", timestamp, "POST", "/api/v1/orders", &request.body);
    assert_eq!(request.headers["x-signature"].to_str().unwrap(), expected, "seed 001 request signing");
    assert!(all[0]["brokerResponse"].as_str().unwrap().contains("success"));
}

#[tokio::test]
async fn two_gateways_never_give_a_broker_one_client_order_id_for_different_orders() {
    // Two fresh stores (a reset, or staging beside production on one broker account): the first
    // alert of each is evt_1, yet their orders must not share an id, or the broker takes the
    // second for a resend of the first.
    let first = TestServer::start_with(trading).await;
    let second = TestServer::start_with(trading).await;
    alert(&first, "buy", 50000.0).await;
    alert(&second, "buy", 50000.0).await;
    let entry = |all: &[serde_json::Value]| of(all, "signal_to_order")[0]["clientOrderId"].clone();
    let done = |all: &[serde_json::Value]| !of(all, "signal_to_order").is_empty();
    let a = entry(&intents_when(&first, "the first entry", done).await);
    let b = entry(&intents_when(&second, "the second entry", done).await);
    assert!(a.is_string() && b.is_string(), "{a} {b}");
    assert_ne!(a, b, "one id for two orders");
}
