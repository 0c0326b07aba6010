//! `margin_guard` behaviour, one test each.

use chrono::Duration;
use serde_json::json;

use super::super::tests_support::{created, d, ev, filled, intents, Harness};
use super::super::{IntentOp, OrderType, Role};
use crate::trading::order::Side;
use crate::trading::CanonicalEvent;

fn harness() -> Harness {
    let mut h = Harness::new(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.5",
        "reduce_fraction": "0.25", "max_alert_age": "30s"}}));
    h.feed_all(&[created("o1", "BTC/USD", "buy", "2", 0), filled("o1", "2", "50000", 1)]);
    h
}

fn update(ratio: &str, sec: i64) -> CanonicalEvent {
    ev(
        "position.updated",
        sec,
        json!({"symbol": "BTC/USD", "side": "long", "quantity": "2", "marginRatio": ratio}),
    )
}

fn margin_call(ratio: &str, sec: i64) -> CanonicalEvent {
    ev("account.margin_call", sec, json!({"symbol": "BTC/USD", "marginRatio": ratio, "markPrice": "45000"}))
}

#[test]
fn ratio_past_threshold_places_one_reduce_only_market_order() {
    let mut h = harness();
    let out = h.feed(&update("0.85", 10)).decisions;
    let all = intents(&out);
    assert_eq!(all.len(), 1);
    let i = all[0];
    assert_eq!(
        (i.op, i.role, i.order_type, i.side),
        (IntentOp::Place, Role::Reduce, OrderType::Market, Side::Sell)
    );
    assert_eq!((i.quantity, i.reduce_only), (d("0.5"), true));
}

#[test]
fn two_stores_first_reductions_have_different_ids() {
    // Episode 1 in each: only the store's namespace tells their orders apart at the broker.
    let ids: Vec<String> = ["", "0a1b2c3d", "4e5f6a7b"]
        .into_iter()
        .map(|namespace| {
            let mut h = harness();
            h.namespace = namespace.into();
            intents(&h.feed(&update("0.85", 10)).decisions)[0].client_order_id.clone()
        })
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
}

#[test]
fn two_margin_alerts_in_one_episode_reduce_once() {
    let mut h = harness();
    assert_eq!(intents(&h.feed(&margin_call("0.85", 10)).decisions).len(), 1);
    assert!(h.feed(&update("0.9", 11)).decisions.is_empty());
    assert!(h.feed(&margin_call("0.95", 12)).decisions.is_empty());
    assert!(h.feed(&update("0.6", 13)).decisions.is_empty(), "above rearm_below: still the same episode");
    assert!(h.feed(&update("0.85", 14)).decisions.is_empty());
}

#[test]
fn rearmed_after_dropping_below_rearm_below_a_second_episode_reduces_again() {
    let mut h = harness();
    let first = h.feed(&margin_call("0.85", 10)).decisions;
    h.feed(&update("0.4", 11));
    let second = h.feed(&margin_call("0.9", 12)).decisions;
    let (a, b) = (intents(&first)[0], intents(&second)[0]);
    assert_ne!(a.client_order_id, b.client_order_id);
    assert_eq!(h.actions.guards["|BTC/USD"].episodes, 2);
}

#[test]
fn stale_margin_alert_does_nothing() {
    let mut h = harness();
    h.lag = Duration::seconds(31);
    let out = h.feed(&margin_call("0.95", 10));
    assert!(out.decisions.is_empty() && out.touched.guards.is_empty());
}

#[test]
fn alert_older_than_the_newest_reading_is_ignored() {
    let mut h = harness();
    h.feed(&update("0.3", 20));
    assert!(h.feed(&margin_call("0.95", 15)).decisions.is_empty());
}

#[test]
fn alert_about_a_flat_position_does_nothing() {
    let mut h = Harness::new(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.5",
        "reduce_fraction": "0.5", "max_alert_age": "30s"}}));
    assert!(h.feed(&margin_call("0.95", 10)).decisions.is_empty());
}

#[test]
fn short_position_is_reduced_with_a_buy() {
    let mut h = Harness::new(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.5",
        "reduce_fraction": "1", "max_alert_age": "30s"}}));
    let snapshot = ev(
        "position.updated",
        10,
        json!({"symbol": "ETH/USD", "side": "short", "quantity": "3",
        "marginRatio": "0.9"}),
    );
    let out = h.feed(&snapshot).decisions;
    let i = intents(&out)[0];
    assert_eq!((i.side, i.quantity), (Side::Buy, d("3")));
}

#[test]
fn same_episode_gives_the_same_client_id_from_fresh_state() {
    let a = harness().feed_as(&margin_call("0.85", 10), "src:a").decisions;
    let b = harness().feed_as(&update("0.9", 10), "src:b").decisions;
    assert_eq!(intents(&a)[0].client_order_id, intents(&b)[0].client_order_id);
}

#[test]
fn a_position_updated_without_a_side_is_reduced_on_the_side_the_venue_named_before() {
    // Seed 001's shapes, positions only (no fills): opened with a side, updated without one.
    let mut h = Harness::new(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.5",
        "reduce_fraction": "0.5", "max_alert_age": "30s"}}));
    let opened = ev("position.opened", 10, json!({"symbol": "ETH/USD", "side": "short", "quantity": "4"}));
    assert!(h.feed(&opened).decisions.is_empty());
    let updated =
        ev("position.updated", 11, json!({"symbol": "ETH/USD", "quantity": "4", "marginRatio": "0.9"}));
    let out = h.feed(&updated).decisions;
    let all = intents(&out);
    assert_eq!(all.len(), 1, "a position of 4 is not flat");
    assert_eq!((all[0].side, all[0].quantity, all[0].reduce_only), (Side::Buy, d("2"), true));
}
