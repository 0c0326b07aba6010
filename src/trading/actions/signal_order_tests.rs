//! `signal_to_order` behaviour, one test each.

use chrono::Duration;
use serde_json::{json, Value};

use super::super::tests_support::{created, d, ev, filled, intents, ops, Harness};
use super::super::{AwaitingEntry, Decision, IntentOp, Role};
use crate::trading::order::Side;
use crate::trading::CanonicalEvent;

fn config(extra: Value) -> Value {
    let mut signal = json!({"symbols": ["BTCUSDT", "ETHUSDT"], "max_position": "1", "max_order": "0.5",
        "max_orders_per_minute": 2, "max_signal_age": "30s", "equity": "10000"});
    if let (Some(s), Some(e)) = (signal.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"signal_to_order": signal})
}

fn harness() -> Harness {
    Harness::new(config(json!({})))
}

fn signal(sec: i64, data: Value) -> CanonicalEvent {
    ev("signal.generated", sec, data)
}

fn buy(quantity: &str, sec: i64) -> CanonicalEvent {
    signal(sec, json!({"symbol": "BTCUSDT", "action": "buy", "quantity": quantity, "price": "50000"}))
}

fn refusal(decisions: &[Decision]) -> String {
    match decisions {
        [Decision::Refused(r)] => r.reason.clone(),
        other => panic!("expected one refusal, got {other:?}"),
    }
}

#[test]
fn accepted_signal_becomes_a_market_entry() {
    let mut h = harness();
    let out = h.feed(&buy("0.2", 0)).decisions;
    assert_eq!(ops(&out), vec![(IntentOp::Place, Role::Entry)]);
    let i = intents(&out)[0];
    assert_eq!((i.side, i.quantity, i.reduce_only), (Side::Buy, d("0.2"), false));
    assert!(i.client_order_id.starts_with("then-"));
}

#[test]
fn signal_for_a_symbol_not_allowed_is_refused() {
    let out = harness().feed(&signal(0, json!({"symbol": "DOGEUSDT", "action": "buy", "quantity": "1"})));
    assert!(refusal(&out.decisions).contains("not in signal_to_order.symbols"));
}

#[test]
fn signal_above_max_order_is_refused() {
    let out = harness().feed(&buy("0.6", 0));
    assert!(refusal(&out.decisions).contains("above max_order"));
}

#[test]
fn signal_that_would_exceed_max_position_is_refused() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTCUSDT", "buy", "0.8", 0), filled("o1", "0.8", "50000", 1)]);
    let out = h.feed(&buy("0.3", 2));
    assert!(refusal(&out.decisions).contains("above max_position"));
}

#[test]
fn signals_close_together_count_the_entries_not_yet_reported_against_max_position() {
    // Failed before: with nothing reported yet, every buy passed (position 3 on max_position 2).
    let mut h =
        Harness::new(config(json!({"max_order": "5", "max_position": "2", "max_orders_per_minute": 10})));
    let out = h.feed_all(&[buy("1", 0), buy("1", 1)]);
    assert_eq!(intents(&out).len(), 2);
    let third = h.feed(&buy("1", 2));
    assert!(refusal(&third.decisions).contains("above max_position"), "{third:?}");
    assert!(refusal(&third.decisions).contains("with 2 working or sent"), "{third:?}");
    // Processed again, a signal does not count its own entry.
    assert_eq!(intents(&h.feed(&buy("1", 1)).decisions).len(), 1);
}

#[test]
fn an_entry_the_venue_reported_counts_once() {
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "2"})));
    let first = h.feed(&buy("1", 0)).decisions;
    let id = intents(&first)[0].client_order_id.clone();
    // The venue reports it filled: it is in the position now, no longer unreported.
    h.feed_all(&[
        ev(
            "order.created",
            1,
            json!({"orderId": "v1", "clientOrderId": id, "symbol": "BTCUSDT", "side": "buy",
            "type": "market", "quantity": "1"}),
        ),
        filled("v1", "1", "50000", 1),
    ]);
    assert_eq!(intents(&h.feed(&buy("1", 2)).decisions).len(), 1, "1 held + 1 = 2, not 3");
    // Reported but rejected: it adds nothing.
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "2"})));
    let first = h.feed(&buy("2", 0)).decisions;
    let id = intents(&first)[0].client_order_id.clone();
    h.feed(&ev("order.updated", 1, json!({"orderId": "v1", "clientOrderId": id, "status": "rejected"})));
    assert_eq!(intents(&h.feed(&buy("2", 2)).decisions).len(), 1);
    // Never reported: it stops counting after a minute.
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "2"})));
    h.feed(&buy("2", 0));
    assert!(refusal(&h.feed(&buy("1", 30)).decisions).contains("above max_position"));
    assert_eq!(intents(&h.feed(&buy("1", 70)).decisions).len(), 1);
}

#[test]
fn an_entry_the_broker_has_not_taken_counts_past_the_minute() {
    // Failed before: with the broker down for two minutes, the queued entry stopped counting
    // after one, and both entries would have been placed once it was back (position 3 on 2).
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "2"})));
    let first = h.feed(&buy("2", 0)).decisions;
    let id = intents(&first)[0].client_order_id.clone();
    let waiting = AwaitingEntry { symbol: "BTCUSDT".into(), quantity: d("2") };
    h.actions.awaiting_broker.insert(id.clone(), waiting.clone());
    let late = h.feed(&buy("1", 120));
    assert!(refusal(&late.decisions).contains("with 2 working or sent"), "{late:?}");
    // The broker took it (or it was dead-lettered) and no venue event came: the minute applies.
    h.actions.awaiting_broker.clear();
    assert_eq!(intents(&h.feed(&buy("1", 121)).decisions).len(), 1);
    // Replayed from the dead-letter queue, long after its own minute: it counts again.
    h.actions.awaiting_broker.insert(id, waiting);
    let replayed = h.feed(&buy("0.5", 130));
    assert!(refusal(&replayed.decisions).contains("with 3 working or sent"), "{replayed:?}");
    // Waiting entries on another symbol do not count here.
    h.actions
        .awaiting_broker
        .insert("other".into(), AwaitingEntry { symbol: "ETHUSDT".into(), quantity: d("9") });
    let eth = h.feed(&signal(
        131,
        json!({"symbol": "ETHUSDT", "action": "buy", "quantity": "0.1", "price": "3000"}),
    ));
    assert!(refusal(&eth.decisions).contains("with 9 working or sent"), "{eth:?}");
}

#[test]
fn signal_beyond_max_orders_per_minute_is_refused() {
    let mut h = harness();
    h.feed_all(&[buy("0.1", 0), buy("0.1", 10)]);
    let out = h.feed(&buy("0.1", 20));
    assert!(refusal(&out.decisions).contains("max_orders_per_minute"));
    assert_eq!(intents(&h.feed(&buy("0.1", 70)).decisions).len(), 1, "a minute later it passes again");
}

#[test]
fn stale_signal_is_refused() {
    let mut h = harness();
    h.lag = Duration::seconds(45);
    assert!(refusal(&h.feed(&buy("0.1", 0)).decisions).contains("max_signal_age"));
}

#[test]
fn signal_while_kill_switch_is_on_is_refused() {
    let mut h = harness();
    assert!(h.actions.set_kill_switch(true).kill_switch);
    assert!(refusal(&h.feed(&buy("0.1", 0)).decisions).contains("kill switch is on (set by API)"));
    h.actions.set_kill_switch(false);
    assert_eq!(intents(&h.feed(&buy("0.1", 1)).decisions).len(), 1);
}

#[test]
fn closes_still_go_while_the_kill_switch_is_on() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTCUSDT", "buy", "0.3", 0), filled("o1", "0.3", "50000", 1)]);
    h.actions.set_kill_switch(true);
    let add = h.feed(&signal(2, json!({"symbol": "BTCUSDT", "action": "open_long", "quantity": "0.1"})));
    assert!(refusal(&add.decisions).contains("kill switch is on"));
    let close = h.feed(&signal(3, json!({"symbol": "BTCUSDT", "action": "close_long", "quantity": "0.1"})));
    let i = intents(&close.decisions)[0];
    assert_eq!((i.role, i.side, i.quantity, i.reduce_only), (Role::Close, Side::Sell, d("0.1"), true));
    // The close of 0.1 is on its way: flat sells the rest.
    let flat = h.feed(&signal(4, json!({"symbol": "BTCUSDT", "action": "flat"})));
    let i = intents(&flat.decisions)[0];
    assert_eq!((i.side, i.quantity, i.reduce_only), (Side::Sell, d("0.2"), true));
}

#[test]
fn a_flat_signal_goes_inside_a_maintenance_window() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTCUSDT", "sell", "0.2", 0), filled("o1", "0.2", "50000", 1)]);
    h.feed(&ev(
        "system.maintenance",
        2,
        json!({"startTime": "2024-01-15T10:30:00Z",
        "endTime": "2024-01-15T11:00:00Z", "affectedServices": ["trading"]}),
    ));
    let flat = h.feed(&signal(60, json!({"symbol": "BTCUSDT", "action": "flat"})));
    let i = intents(&flat.decisions)[0];
    assert_eq!((i.side, i.quantity, i.reduce_only), (Side::Buy, d("0.2"), true));
}

#[test]
fn signal_during_a_maintenance_window_is_refused() {
    let mut h = harness();
    h.feed(&ev(
        "system.maintenance",
        0,
        json!({"startTime": "2024-01-15T10:30:00Z",
        "endTime": "2024-01-15T11:00:00Z", "affectedServices": ["trading"]}),
    ));
    assert!(refusal(&h.feed(&buy("0.1", 60)).decisions).contains("maintenance"));
}

#[test]
fn entry_while_margin_guard_is_tripped_is_refused() {
    let mut h = Harness::new({
        let mut c = config(json!({}));
        c["margin_guard"] = json!({"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5", "max_alert_age": "30s"});
        c
    });
    h.feed(&ev(
        "position.updated",
        0,
        json!({"symbol": "BTCUSDT", "side": "long", "quantity": "0.4",
        "marginRatio": "0.9"}),
    ));
    assert!(refusal(&h.feed(&buy("0.1", 1)).decisions).contains("margin guard tripped"));
}

#[test]
fn signal_without_any_size_is_refused() {
    let out = harness().feed(&signal(0, json!({"symbol": "BTCUSDT", "action": "buy"})));
    assert!(refusal(&out.decisions).contains("default_quantity"));
}

#[test]
fn percent_of_equity_with_leverage_and_attached_brackets() {
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "5"})));
    let out = h
        .feed(&signal(
            0,
            json!({"symbol": "ETHUSDT", "action": "open_long", "position_size": "10%",
        "leverage": 5, "price": "2500", "stopLossPercent": 2, "takeProfitPercent": 6}),
        ))
        .decisions;
    assert_eq!(
        ops(&out),
        vec![
            (IntentOp::Place, Role::BracketedEntry),
            (IntentOp::Place, Role::StopLoss),
            (IntentOp::Place, Role::TakeProfit)
        ]
    );
    let all = intents(&out);
    assert_eq!((all[0].quantity, all[0].leverage), (d("2"), Some(d("5"))));
    assert_eq!((all[1].side, all[1].stop_price, all[1].quantity), (Side::Sell, Some(d("2450")), d("2")));
    assert_eq!(
        (all[2].price, all[2].parent_client_order_id.as_ref()),
        (Some(d("2650")), Some(&all[0].client_order_id))
    );
}

#[test]
fn close_long_sells_the_open_position_reduce_only() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTCUSDT", "buy", "0.3", 0), filled("o1", "0.3", "50000", 1)]);
    let out = h.feed(&signal(2, json!({"symbol": "BTCUSDT", "action": "close_long"}))).decisions;
    let i = intents(&out)[0];
    assert_eq!((i.role, i.side, i.quantity, i.reduce_only), (Role::Close, Side::Sell, d("0.3"), true));
}

#[test]
fn close_short_without_a_short_position_is_refused() {
    let out = harness().feed(&signal(0, json!({"symbol": "BTCUSDT", "action": "close_short"})));
    assert!(refusal(&out.decisions).contains("no matching position"));
}

#[test]
fn the_same_signal_processed_twice_gives_the_same_id_and_counts_once() {
    let mut h = harness();
    let a = h.feed_as(&buy("0.1", 0), "src:s1").decisions;
    let b = h.feed_as(&buy("0.1", 0), "src:s1").decisions;
    assert_eq!(a, b);
    assert_eq!(h.actions.placements.len(), 1);
}

#[test]
fn sentinel_style_tradingview_alert_opens_a_bracketed_long_at_the_last_known_price() {
    let mut h = Harness::new(config(json!({"max_order": "5", "max_position": "5"})));
    h.feed(&ev("position.updated", 0, json!({"symbol": "BTCUSDT", "markPrice": "50000"})));
    let alert = json!({"symbol": "BTCUSDT", "action": "open_long", "leverage": 5, "position_size": "10%",
        "stop_loss": 2, "take_profit": 6}); // seed 003 writes "2%": tradingview.rs rejects the `%` today
    let event =
        crate::trading::parse_tradingview(&alert, &Default::default(), super::super::tests_support::t(1))
            .unwrap();
    let out = h.feed(&event).decisions;
    let all = intents(&out);
    assert_eq!(all.len(), 3, "{out:?}");
    assert_eq!(
        (all[0].role, all[0].quantity, all[0].leverage),
        (Role::BracketedEntry, d("0.1"), Some(d("5")))
    );
    assert_eq!((all[1].stop_price, all[2].price), (Some(d("49000")), Some(d("53000"))));
}

#[test]
fn all_actions_decide_the_same_intents_when_rerun_from_fresh_state() {
    let config = {
        let mut c = config(json!({"max_order": "5", "max_position": "5"}));
        c["bracket_on_fill"] = json!({"stop_loss": "1%", "take_profit": "3%"});
        c["margin_guard"] = json!({"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5", "max_alert_age": "30s"});
        c
    };
    let events = [
        buy("0.2", 0),
        created("o1", "BTCUSDT", "buy", "0.2", 1),
        filled("o1", "0.1", "50000", 2),
        filled("o1", "0.2", "50100", 3),
        ev("account.margin_call", 4, json!({"symbol": "BTCUSDT", "marginRatio": "0.9"})),
        signal(5, json!({"symbol": "BTCUSDT", "action": "close_long", "price": "49000"})),
    ];
    let run = || Harness::new(config.clone()).feed_all(&events);
    let first = run();
    assert_eq!(first, run());
    let roles: Vec<Role> = intents(&first).iter().map(|i| i.role).collect();
    use Role::*;
    assert_eq!(roles, vec![Entry, StopLoss, TakeProfit, StopLoss, TakeProfit, Reduce, Close]);
}

/// The sum of the reduce-only orders decided while none has filled yet.
fn decided_reductions(decisions: &[Decision]) -> rust_decimal::Decimal {
    intents(decisions).iter().filter(|i| i.reduce_only).map(|i| i.quantity).sum()
}

/// Two exits decided before the first one's fill comes back (`flat` then `close_long`, or a
/// close and a margin-guard reduction, in either order) take off at most the position together:
/// before, each was sized on the position alone, and the account ended short by the second.
#[test]
fn exits_decided_close_together_never_sell_more_than_the_position() {
    let both = || {
        let mut h = Harness::new(json!({
            "signal_to_order": {"symbols": ["BTCUSDT"], "max_position": "2", "max_order": "1",
                "max_orders_per_minute": 10, "max_signal_age": "30s"},
            "margin_guard": {"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5",
                "max_alert_age": "30s"}}));
        h.feed_all(&[created("o1", "BTCUSDT", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
        h
    };
    let flat = || signal(10, json!({"symbol": "BTCUSDT", "action": "flat"}));
    let close_long = || signal(11, json!({"symbol": "BTCUSDT", "action": "close_long"}));
    let margin_call = || {
        ev(
            "account.margin_call",
            12,
            json!({"symbol": "BTCUSDT", "marginRatio": "0.95", "markPrice": "45000"}),
        )
    };

    // flat, then close_long: the second has nothing left to close.
    let mut h = both();
    let first = h.feed(&flat()).decisions;
    assert_eq!(decided_reductions(&first), d("1"));
    let second = h.feed(&close_long());
    assert!(
        refusal(&second.decisions).contains("already being closed: 1 in closes"),
        "{:?}",
        second.decisions
    );

    // flat, then a margin call: nothing more is ordered, and the guard stays armed...
    let mut h = both();
    let closing = h.feed(&flat()).decisions;
    let close_id = intents(&closing)[0].client_order_id.clone();
    let nothing = h.feed(&margin_call()).decisions;
    assert_eq!(decided_reductions(&nothing), d("0"), "{nothing:?}");
    // ... so when the venue rejects the close, the next reading reduces.
    h.feed(&ev(
        "order.created",
        13,
        json!({"orderId": "c1", "clientOrderId": close_id, "symbol": "BTCUSDT",
        "side": "sell", "type": "market", "quantity": "1", "status": "rejected", "reduceOnly": true}),
    ));
    let reading = ev(
        "account.margin_call",
        14,
        json!({"symbol": "BTCUSDT", "marginRatio": "0.95", "markPrice": "45000"}),
    );
    assert_eq!(decided_reductions(&h.feed(&reading).decisions), d("0.5"));

    // A close the broker refused (its intent failed, no venue event) takes nothing off either.
    let mut h = both();
    let closing = h.feed(&flat()).decisions;
    let close_id = intents(&closing)[0].client_order_id.clone();
    h.actions.follow_failed(vec![(close_id, "failed".into())]);
    assert_eq!(intents(&h.feed(&close_long()).decisions)[0].quantity, d("1"));

    // A margin-guard reduction of half, then flat: flat sells the other half.
    let mut h = both();
    let mut all = h.feed(&margin_call()).decisions;
    all.extend(h.feed(&signal(13, json!({"symbol": "BTCUSDT", "action": "flat"}))).decisions);
    let sizes: Vec<_> = intents(&all).iter().map(|i| (i.role, i.quantity)).collect();
    assert_eq!(sizes, vec![(Role::Reduce, d("0.5")), (Role::Close, d("0.5"))]);

    // Once the close has filled, the position shows it and nothing is pending any more.
    let mut h = both();
    let close = h.feed(&signal(10, json!({"symbol": "BTCUSDT", "action": "close_long", "quantity": "0.4"})));
    let id = intents(&close.decisions)[0].client_order_id.clone();
    h.feed_all(&[
        ev(
            "order.created",
            11,
            json!({"orderId": "c1", "clientOrderId": id, "symbol": "BTCUSDT", "side": "sell",
            "type": "market", "quantity": "0.4", "status": "open", "reduceOnly": true}),
        ),
        filled("c1", "0.4", "50000", 12),
    ]);
    let again = h.feed(&close_long());
    assert_eq!(intents(&again.decisions)[0].quantity, d("0.6"), "the position left after the fill");
}

/// `contracts: 0` (TradingView's position size when the strategy is flat) is no order: before,
/// an entry took the default size and a close closed everything.
#[test]
fn an_explicit_zero_quantity_is_refused_not_replaced_by_a_default() {
    let mut h = Harness::new(config(json!({"default_quantity": "0.5"})));
    let entry = h.feed(&signal(0, json!({"symbol": "BTCUSDT", "action": "sell", "quantity": "0"})));
    assert_eq!(refusal(&entry.decisions), "order quantity is zero");
    let percent = h.feed(&signal(0, json!({"symbol": "BTCUSDT", "action": "buy", "position_size": "0%"})));
    assert_eq!(refusal(&percent.decisions), "order quantity is zero");
    h.feed_all(&[created("o1", "BTCUSDT", "buy", "0.3", 1), filled("o1", "0.3", "50000", 2)]);
    let close = h.feed(&signal(3, json!({"symbol": "BTCUSDT", "action": "close_long", "quantity": 0})));
    assert_eq!(refusal(&close.decisions), "order quantity is zero");
}

/// The margin guard sizes against the closes of its own account's position: another account's
/// reduction on the same symbol does not count (before, account B's guard tripped and ordered
/// nothing because account A's reduction was on its way).
#[test]
fn a_reduction_in_one_account_leaves_another_accounts_guard_alone() {
    let mut h = Harness::new(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.5",
        "reduce_fraction": "1", "max_alert_age": "30s"}}));
    for (account, id) in [("A", "oa"), ("B", "ob")] {
        h.feed_all(&[
            ev(
                "order.created",
                0,
                json!({"orderId": id, "account": account, "symbol": "BTCUSDT", "side": "buy",
                "type": "limit", "quantity": "1", "status": "open"}),
            ),
            filled(id, "1", "50000", 1),
        ]);
    }
    let call = |account: &str, sec| {
        ev(
            "account.margin_call",
            sec,
            json!({"account": account, "symbol": "BTCUSDT", "marginRatio": "0.95"}),
        )
    };
    let a = h.feed(&call("A", 10)).decisions;
    let b = h.feed(&call("B", 11)).decisions;
    let sizes: Vec<_> = [a, b]
        .iter()
        .flat_map(|d| intents(d).into_iter().map(|i| (i.account.clone(), i.quantity)).collect::<Vec<_>>())
        .collect();
    assert_eq!(sizes, vec![(Some("A".into()), d("1")), (Some("B".into()), d("1"))]);
}

/// A close names the account of the position it closes (signals carry none): the paper broker
/// books it there, and the margin guard of that account counts it as on its way. Before, the
/// close went out without an account: the paper broker rejected it against the account-less
/// position (0), and a margin call on the account sold on top of it (3 sold against a long 2).
/// With positions in several accounts, a close is refused: it could not tell which to close.
#[test]
fn a_close_names_the_one_account_that_holds_the_symbol() {
    let mut h = Harness::new(json!({
        "signal_to_order": {"symbols": ["BTCUSDT"], "max_position": "5", "max_order": "5",
            "max_orders_per_minute": 10, "max_signal_age": "30s"},
        "margin_guard": {"threshold": "0.8", "rearm_below": "0.5", "reduce_fraction": "0.5", "max_alert_age": "30s"}}));
    let long = |account: &str, id: &str, quantity: &str| {
        [
            ev(
                "order.created",
                0,
                json!({"orderId": id, "account": account, "symbol": "BTCUSDT", "side": "buy",
                "type": "limit", "quantity": quantity, "status": "open"}),
            ),
            filled(id, quantity, "50000", 1),
        ]
    };
    h.feed_all(&long("A", "oa", "2"));
    let close = h.feed(&signal(10, json!({"symbol": "BTCUSDT", "action": "flat"}))).decisions;
    let i = intents(&close)[0];
    assert_eq!((i.account.as_deref(), i.quantity), (Some("A"), d("2")));
    let call =
        ev("account.margin_call", 11, json!({"account": "A", "symbol": "BTCUSDT", "marginRatio": "0.95"}));
    assert!(intents(&h.feed(&call).decisions).is_empty(), "the close of A's 2 is on its way");

    let mut h = Harness::new(config(json!({})));
    h.feed_all(&long("A", "oa", "0.3"));
    h.feed_all(&long("B", "ob", "0.2"));
    let refused = h.feed(&signal(10, json!({"symbol": "BTCUSDT", "action": "flat"})));
    assert!(refusal(&refused.decisions).contains("held in several accounts"), "{:?}", refused.decisions);
}
