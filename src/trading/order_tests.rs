//! Order state machine tests, one or more per TRADING.md order rule.

use std::str::FromStr;

use serde_json::{json, Value};

use super::*;
use crate::trading::event::EventKind;
use crate::trading::parse_event;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Parses an order event of `kind` at second `sec` with `data` (orderId `o1` added).
fn ev(kind: &str, sec: u32, mut data: Value) -> (OrderEvent, DateTime<Utc>) {
    data["orderId"] = json!("o1");
    let event = parse_event(
        &json!({"event": kind, "timestamp": format!("2024-01-15T10:30:{sec:02}Z"), "data": data}),
    )
    .unwrap();
    match event.kind {
        EventKind::Order(o) => (o, event.at),
        other => panic!("not an order: {other:?}"),
    }
}

fn created(sec: u32) -> (OrderEvent, DateTime<Utc>) {
    ev(
        "order.created",
        sec,
        json!({"symbol": "BTC/USD", "side": "buy", "type": "limit", "quantity": 1, "price": 100}),
    )
}

fn cum(sec: u32, status: &str, filled: &str, avg: &str) -> (OrderEvent, DateTime<Utc>) {
    ev("order.updated", sec, json!({"status": status, "filledQuantity": filled, "averagePrice": avg}))
}

fn trade(sec: u32, id: &str, qty: &str, price: &str) -> (OrderEvent, DateTime<Utc>) {
    ev(
        "order.updated",
        sec,
        json!({"tradeId": id, "lastQuantity": qty, "lastPrice": price, "commission": "0.01"}),
    )
}

/// Applies events in order to a fresh order; returns it and all alerts.
fn run(events: &[(OrderEvent, DateTime<Utc>)]) -> (Order, Vec<Alert>) {
    let mut order = Order::new("o1", events[0].1);
    let alerts = events.iter().flat_map(|(e, at)| order.apply(e, *at)).collect();
    (order, alerts)
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn rule1_late_open_after_fills_does_not_regress() {
    let (order, _) = run(&[
        created(0),
        cum(2, "partially_filled", "0.4", "100"),
        ev("order.updated", 1, json!({"status": "open"})),
    ]);
    assert_eq!(order.status, OrderStatus::PartiallyFilled);
}

#[test]
fn rule1_non_fill_status_after_terminal_changes_nothing() {
    let (order, _) = run(&[
        created(0),
        ev("order.cancelled", 3, json!({})),
        ev("order.updated", 4, json!({"status": "open"})),
    ]);
    assert_eq!(order.status, OrderStatus::Cancelled);
    let (order, _) = run(&[
        created(0),
        ev("order.updated", 3, json!({"status": "rejected"})),
        ev("order.updated", 4, json!({"status": "pending"})),
    ]);
    assert_eq!(order.status, OrderStatus::Rejected);
}

#[test]
fn rule1_two_different_endings_keep_the_earlier_whatever_the_arrival_order() {
    let cancel = ev("order.cancelled", 3, json!({}));
    let expire = ev("order.updated", 5, json!({"status": "expired"}));
    let (a, _) = run(&[created(0), cancel.clone(), expire.clone()]);
    let (b, _) = run(&[created(0), expire, cancel]);
    assert_eq!((a.status, b.status), (OrderStatus::Cancelled, OrderStatus::Cancelled));
}

#[test]
fn rule2_fill_before_order_creates_it_and_created_fills_in_missing_fields_only() {
    let early = ev(
        "order.updated",
        1,
        json!({"status": "partially_filled", "filledQuantity": "0.5", "averagePrice": "101", "type": "market"}),
    );
    let mut order = Order::new("o1", early.1);
    let alerts = order.apply(&early.0, early.1);
    assert_eq!(kinds(&alerts), vec![AlertKind::FillBeforeOrder]);
    assert_eq!((order.symbol.as_deref(), order.side, order.quantity), (None, None, None));
    assert_eq!(order.filled_quantity, d("0.5"));
    assert!(order.fills().is_empty(), "fills need symbol and side to affect positions");

    let (c, at) = created(0);
    let alerts = order.apply(&c, at);
    assert_eq!(
        (order.symbol.as_deref(), order.side, order.quantity),
        (Some("BTC/USD"), Some(Side::Buy), Some(d("1")))
    );
    // The two disagree on the type: the earliest report (the creation) gives it, as it would had
    // it come first, and the conflict is an alert.
    assert_eq!(order.order_type.as_deref(), Some("limit"));
    assert_eq!(kinds(&alerts), vec![AlertKind::ConflictingDuplicate]);
    assert!(
        alerts[0].message.contains("on type: `limit` (the earliest report) is kept, `market` is not"),
        "{}",
        alerts[0].message
    );
    assert_eq!(order.status, OrderStatus::PartiallyFilled);
    assert_eq!(order.created_at, Some(at));
    assert_eq!(order.fills().len(), 1);
}

#[test]
fn rule2_exchange_update_carrying_the_description_is_not_fill_before_order() {
    let full = ev(
        "order.updated",
        1,
        json!({"symbol": "BTC/USD", "side": "sell", "quantity": 1, "status": "filled",
                                              "filledQuantity": 1, "averagePrice": 100}),
    );
    let (order, alerts) = run(&[full]);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(order.status, OrderStatus::Filled);
}

#[test]
fn rule3_stale_lower_cumulative_does_not_decrease_filled_quantity() {
    let (order, _) = run(&[
        created(0),
        cum(2, "partially_filled", "0.6", "100"),
        cum(1, "partially_filled", "0.3", "100"),
    ]);
    assert_eq!((order.filled_quantity, order.status), (d("0.6"), OrderStatus::PartiallyFilled));
}

#[test]
fn rule3_late_lower_snapshot_refines_the_split_not_the_total() {
    let (in_order, _) =
        run(&[created(0), cum(1, "partially_filled", "0.4", "100"), cum(2, "filled", "1", "106")]);
    let (late, _) =
        run(&[created(0), cum(2, "filled", "1", "106"), cum(1, "partially_filled", "0.4", "100")]);
    assert_eq!(in_order, late);
    let fills: Vec<_> = late.fills().iter().map(|f| (f.quantity, f.price)).collect();
    assert_eq!(fills, vec![(d("0.4"), d("100")), (d("0.6"), d("110"))]);
    assert_eq!(late.average_price, Some(d("106")));
}

#[test]
fn rule4_duplicate_cumulative_and_duplicate_trade_apply_once() {
    let (order, alerts) = run(&[
        created(0),
        cum(1, "partially_filled", "0.5", "100"),
        cum(1, "partially_filled", "0.5", "100"),
    ]);
    assert!(alerts.is_empty());
    assert_eq!((order.fills().len(), order.filled_quantity), (1, d("0.5")));

    let (order, alerts) = run(&[created(0), trade(1, "t1", "0.5", "100"), trade(1, "t1", "0.5", "100")]);
    assert!(alerts.is_empty());
    assert_eq!((order.fills().len(), order.filled_quantity), (1, d("0.5")));
    assert_eq!(order.fills()[0].key, "t1");
}

#[test]
fn rule4_a_trade_report_with_its_running_total_but_no_average_raises_nothing() {
    // An exchange that reports each trade with the order's filled total, and no average.
    let report = |sec, id: &str, total: &str| {
        let data =
            json!({"tradeId": id, "lastQuantity": "0.25", "lastPrice": "100", "filledQuantity": total});
        ev("order.updated", sec, data)
    };
    let (order, alerts) = run(&[created(0), report(1, "t1", "0.25"), report(2, "t2", "0.5")]);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!((order.fills().len(), order.filled_quantity), (2, d("0.5")));
    // A running total without a trade, and without an average, still says it is unpriced.
    let bare = ev("order.updated", 3, json!({"filledQuantity": "0.75"}));
    let (_, alerts) = run(&[created(0), report(1, "t1", "0.25"), bare]);
    assert_eq!(kinds(&alerts), [AlertKind::DataQuality]);
    // So does a trade report whose total is more than the trades known: 0.5 of it is unpriced.
    let (order, alerts) = run(&[created(0), report(1, "t2", "0.75")]);
    assert_eq!(kinds(&alerts), [AlertKind::DataQuality]);
    assert_eq!((order.fills().len(), order.filled_quantity), (1, d("0.75")));
}

#[test]
fn rule4_increment_is_priced_from_the_cumulative_averages() {
    let (order, _) =
        run(&[created(0), cum(1, "partially_filled", "0.25", "100"), cum(2, "filled", "1", "103")]);
    let fills = order.fills();
    // (103·1 − 100·0.25) / 0.75 = 104
    assert_eq!((fills[1].quantity, fills[1].price, fills[1].key.as_str()), (d("0.75"), d("104"), "cum:1"));
}

#[test]
fn rule5_same_trade_id_with_different_values_keeps_the_earliest_report_in_any_arrival_order() {
    let (early, late) = (trade(1, "t1", "0.5", "100"), trade(2, "t1", "0.6", "99"));
    for events in [[created(0), early.clone(), late.clone()], [created(0), late.clone(), early.clone()]] {
        let (order, alerts) = run(&events);
        assert_eq!(kinds(&alerts), vec![AlertKind::ConflictingDuplicate]);
        let fill = &order.fills()[0];
        assert_eq!((order.filled_quantity, fill.quantity, fill.price), (d("0.5"), d("0.5"), d("100")));
        assert!(alerts[0].message.contains("kept the earliest report, 0.5 @ 100"), "{}", alerts[0].message);
    }
    // Reported at the same time: the smaller values, whichever comes first.
    let (a, b) = (trade(1, "t2", "1", "100"), trade(1, "t2", "1.5", "100"));
    for events in [[created(0), a.clone(), b.clone()], [created(0), b.clone(), a.clone()]] {
        assert_eq!(run(&events).0.filled_quantity, d("1"));
    }
}

#[test]
fn rule5_same_cumulative_with_different_average_keeps_the_earliest_report_in_any_arrival_order() {
    let (early, late) = (cum(1, "partially_filled", "0.5", "100"), cum(2, "partially_filled", "0.5", "101"));
    for events in [[created(0), early.clone(), late.clone()], [created(0), late.clone(), early.clone()]] {
        let (order, alerts) = run(&events);
        assert_eq!(kinds(&alerts), vec![AlertKind::ConflictingDuplicate]);
        assert_eq!(order.average_price, Some(d("100")));
    }
}

#[test]
fn rule6_partial_fill_after_cancel_counts_and_keeps_cancelled() {
    let (order, _) = run(&[created(0), ev("order.cancelled", 2, json!({})), trade(3, "t1", "0.4", "100")]);
    assert_eq!((order.status, order.filled_quantity), (OrderStatus::Cancelled, d("0.4")));
}

#[test]
fn rule6_full_fill_after_cancel_becomes_filled() {
    let (order, _) = run(&[created(0), ev("order.cancelled", 2, json!({})), cum(1, "filled", "1", "100")]);
    assert_eq!(order.status, OrderStatus::Filled);
    let (order, _) =
        run(&[created(0), ev("order.updated", 2, json!({"status": "expired"})), trade(3, "t1", "1", "99")]);
    assert_eq!(order.status, OrderStatus::Filled);
}

#[test]
fn rule6_cancel_after_filled_is_ignored() {
    let (order, _) = run(&[created(0), cum(1, "filled", "1", "100"), ev("order.cancelled", 2, json!({}))]);
    assert_eq!(order.status, OrderStatus::Filled);
    let (order, _) = run(&[
        created(0),
        ev("order.updated", 1, json!({"status": "filled"})),
        ev("order.cancelled", 2, json!({})),
    ]);
    assert_eq!(order.status, OrderStatus::Filled);
}

#[test]
fn rule7_overfill_counts_records_quantity_and_alerts() {
    let (order, alerts) = run(&[created(0), trade(1, "t1", "0.7", "100"), trade(2, "t2", "0.5", "100")]);
    assert_eq!(
        (order.status, order.filled_quantity, order.overfill_quantity),
        (OrderStatus::Filled, d("1.2"), Some(d("0.2")))
    );
    assert_eq!(kinds(&alerts), vec![AlertKind::Overfill]);
}

#[test]
fn rule8_average_price_is_notional_over_quantity_in_decimals() {
    let (a, _) = run(&[created(0), trade(1, "t1", "0.1", "100.1"), trade(2, "t2", "0.2", "100.4")]);
    let (b, _) = run(&[created(0), trade(2, "t2", "0.2", "100.4"), trade(1, "t1", "0.1", "100.1")]);
    assert_eq!(a.average_price, Some(d("100.3")));
    assert_eq!(a, b);
}

#[test]
fn trades_are_preferred_over_cumulative_snapshots_when_both_are_sent() {
    let both = ev(
        "order.updated",
        1,
        json!({"tradeId": "t1", "lastQuantity": "0.3", "lastPrice": "100",
                                              "filledQuantity": "0.3", "averagePrice": "100"}),
    );
    let (order, _) = run(&[created(0), both.clone()]);
    assert_eq!(order.fills().iter().map(|f| f.key.clone()).collect::<Vec<_>>(), vec!["t1"]);
    // A higher running total is more than the trade: its remainder is a fill too.
    let (order, _) = run(&[created(0), both, cum(2, "partially_filled", "0.5", "104")]);
    let fills: Vec<_> = order.fills().into_iter().map(|f| (f.key, f.quantity, f.price)).collect();
    // (104·0.5 − 100·0.3) / 0.2 = 110
    assert_eq!(fills, vec![("t1".into(), d("0.3"), d("100")), ("cum:0.5".into(), d("0.2"), d("110"))]);
    assert_eq!((order.filled_quantity, order.average_price), (d("0.5"), Some(d("104"))));
}

/// The probe's order: a running total 0.5 @ 100, then a trade of 0.3 @ 110 reported with the
/// running total 0.8 @ 103.75.
fn running_total_then_trade() -> [(OrderEvent, DateTime<Utc>); 3] {
    let with_total = ev(
        "order.updated",
        3,
        json!({"tradeId": "t2", "lastQuantity": "0.3", "lastPrice": "110",
               "filledQuantity": "0.8", "averagePrice": "103.75"}),
    );
    [created(1), cum(2, "partially_filled", "0.5", "100"), with_total]
}

#[test]
fn running_totals_and_trades_together_give_fills_for_the_whole_filled_quantity() {
    // Failed before: once the order had a trade, the fill from the running total was dropped
    // (fills `t2 0.3@110` only, average 110, though 0.8 was filled).
    let [c, total, with_trade] = running_total_then_trade();
    for events in [[c.clone(), total.clone(), with_trade.clone()], [c, with_trade, total]] {
        let (order, alerts) = run(&events);
        assert!(alerts.is_empty(), "{alerts:?}");
        let fills: Vec<_> = order.fills().into_iter().map(|f| (f.key, f.quantity, f.price)).collect();
        // The 0.5 no trade reports: (103.75·0.8 − 110·0.3) / 0.5 = 100.
        assert_eq!(fills, vec![("t2".into(), d("0.3"), d("110")), ("cum:0.8".into(), d("0.5"), d("100"))]);
        assert_eq!((order.filled_quantity, order.average_price), (d("0.8"), Some(d("103.75"))));
    }
}

#[test]
fn a_trade_without_running_total_below_an_earlier_running_total_leaves_a_remainder() {
    // Failed before: running total 0.5, then a trade of 0.2 → filled 0.5 but fills of only 0.2.
    // A trade executed by the running total's time is part of it.
    for events in [
        [created(0), cum(2, "partially_filled", "0.5", "100"), trade(1, "t1", "0.2", "110")],
        [created(0), trade(1, "t1", "0.2", "110"), cum(2, "partially_filled", "0.5", "100")],
    ] {
        let (order, _) = run(&events);
        let filled: Decimal = order.fills().iter().map(|f| f.quantity).sum();
        assert_eq!(
            (filled, order.filled_quantity, order.average_price),
            (d("0.5"), d("0.5"), Some(d("100")))
        );
    }
    // More trades reaching the running total leave no remainder.
    let (order, _) = run(&[
        created(0),
        cum(3, "partially_filled", "0.5", "100"),
        trade(1, "t1", "0.2", "110"),
        trade(2, "t2", "0.3", "110"),
    ]);
    assert_eq!(order.fills().len(), 2);
    assert_eq!((order.filled_quantity, order.average_price), (d("0.5"), Some(d("110"))));
}

#[test]
fn a_trade_after_the_highest_running_total_is_a_fill_beyond_it() {
    // Running total 0.5 @ 100 at 2 s, a trade of 0.3 @ 110 reported with running total 0.8 @
    // 103.75 at 3 s, then a bare trade of 0.2 @ 120 at 4 s: the last cannot be part of the 0.8.
    // It was counted in it, and the remainder of 0.3 was priced at a made-up 86.67.
    let [c, total, with_trade] = running_total_then_trade();
    let later = trade(4, "t3", "0.2", "120");
    for events in
        [[c.clone(), total.clone(), with_trade.clone(), later.clone()], [c, later, with_trade, total]]
    {
        let (order, alerts) = run(&events);
        assert!(alerts.is_empty(), "{alerts:?}");
        let fills: Vec<_> = order.fills().into_iter().map(|f| (f.key, f.quantity, f.price)).collect();
        assert!(fills.contains(&("cum:0.8".into(), d("0.5"), d("100"))), "{fills:?}");
        assert_eq!((order.filled_quantity, order.average_price), (d("1.0"), Some(d("107"))));
    }
}

#[test]
fn a_trade_id_that_reads_like_the_remainder_keeps_both_fills() {
    // A trade id `cum:1` beside a running total of 1 took the remainder's key: the position
    // counted one of them twice live and the other not at all after a restart.
    let both = ev(
        "order.updated",
        1,
        json!({"tradeId": "cum:1", "lastQuantity": "0.4", "lastPrice": "100",
               "filledQuantity": "1", "averagePrice": "100"}),
    );
    let (order, _) = run(&[created(0), both]);
    let fills: Vec<_> = order.fills().into_iter().map(|f| (f.key, f.quantity)).collect();
    assert_eq!(fills, vec![("cum:1".into(), d("0.4")), ("cum:1~".into(), d("0.6"))]);
    assert_eq!(order.filled_quantity, d("1"));
}

#[test]
fn a_running_total_cheaper_than_its_trades_prices_the_remainder_at_its_average_and_alerts() {
    // Trades of 0.3 @ 200 cost 60, more than the whole running total 0.5 @ 100 (50).
    let (order, alerts) =
        run(&[created(0), trade(1, "t1", "0.3", "200"), cum(2, "partially_filled", "0.5", "100")]);
    assert_eq!(kinds(&alerts), vec![AlertKind::DataQuality]);
    let last = order.fills().pop().unwrap();
    assert_eq!((last.key.as_str(), last.quantity, last.price), ("cum:0.5", d("0.2"), d("100")));
    assert_eq!(order.filled_quantity, d("0.5"));
}

#[test]
fn inconsistent_cumulative_snapshot_is_left_out_and_alerted() {
    let (order, alerts) =
        run(&[created(0), cum(2, "filled", "1", "100"), cum(1, "partially_filled", "0.5", "300")]);
    assert_eq!(kinds(&alerts), vec![AlertKind::DataQuality]);
    assert_eq!(order.fills().len(), 1);
    assert_eq!(order.filled_quantity, d("1"));
}

#[test]
fn order_round_trips_through_json() {
    let (order, _) =
        run(&[created(0), cum(1, "partially_filled", "0.25", "100"), trade(2, "t9", "0.1", "99")]);
    let json = serde_json::to_value(&order).unwrap();
    assert_eq!(json["type"], "limit");
    assert_eq!(json["snapshots"]["0.25"]["averagePrice"], "100");
    let back: Order = serde_json::from_value(json).unwrap();
    assert_eq!(back, order);
}

#[test]
fn duplicate_reported_at_different_times_keeps_the_earliest_whatever_the_arrival_order() {
    let (a, _) = run(&[created(0), trade(5, "t1", "0.5", "100"), trade(2, "t1", "0.5", "100")]);
    let (b, _) = run(&[created(0), trade(2, "t1", "0.5", "100"), trade(5, "t1", "0.5", "100")]);
    assert_eq!(a.trades, b.trades);
    assert_eq!(a.fills()[0].at, b.fills()[0].at);
    let (c, _) = run(&[
        created(0),
        cum(5, "partially_filled", "0.5", "100"),
        cum(2, "partially_filled", "0.5", "100"),
    ]);
    assert_eq!(c.fills()[0].at.format("%S").to_string(), "02");
}

#[test]
fn an_amend_changes_quantity_and_price_and_an_older_event_never_takes_them_back() {
    let amend = ev("order.updated", 5, json!({"quantity": "2.5", "price": "95", "status": "open"}));
    let partial = cum(7, "partially_filled", "1", "95");
    for events in [
        vec![created(0), amend.clone(), partial.clone()],
        vec![amend.clone(), partial.clone(), created(0)],
        vec![partial.clone(), amend.clone(), created(0)],
    ] {
        let (order, _) = run(&events);
        assert_eq!((order.quantity, order.price), (Some(d("2.5")), Some(d("95"))), "{events:?}");
        assert_eq!(order.status, OrderStatus::PartiallyFilled, "1 of the amended 2.5");
        assert_eq!(order.overfill_quantity, None);
    }
    // Two amends at the same time: the same result in either order.
    let a = ev("order.updated", 5, json!({"quantity": "3"}));
    let (x, _) = run(&[created(0), amend.clone(), a.clone()]);
    let (y, _) = run(&[created(0), a, amend]);
    assert_eq!((x.quantity, y.quantity), (Some(d("3")), Some(d("3"))));
}

#[test]
fn a_document_saved_without_value_times_takes_only_newer_amends() {
    let (mut order, _) = run(&[created(0), cum(3, "partially_filled", "0.5", "100")]);
    (order.quantity_at, order.price_at) = (None, None);
    let same_time = ev("order.updated", 3, json!({"quantity": "7"}));
    order.apply(&same_time.0, same_time.1);
    assert_eq!(order.quantity, Some(d("1")), "not newer than the newest event seen");
    let late_created = ev("order.created", 1, json!({"quantity": "9", "price": "1"}));
    order.apply(&late_created.0, late_created.1);
    assert_eq!((order.quantity, order.price), (Some(d("1")), Some(d("100"))), "older than what was seen");
    let amend = ev("order.updated", 4, json!({"quantity": "2", "price": "99"}));
    order.apply(&amend.0, amend.1);
    assert_eq!((order.quantity, order.price), (Some(d("2")), Some(d("99"))));
}

#[test]
fn an_amend_in_the_same_second_as_the_creation_wins_and_the_venue_sequence_orders_two_amends() {
    let amend = ev("order.updated", 0, json!({"quantity": "0.5", "sequence": 7}));
    for events in [vec![created(0), amend.clone()], vec![amend.clone(), created(0)]] {
        assert_eq!(run(&events).0.quantity, Some(d("0.5")), "cut from 1 in the same second");
    }
    let later = ev("order.updated", 0, json!({"quantity": "0.25", "sequence": 8}));
    for events in
        [vec![created(0), amend.clone(), later.clone()], vec![later.clone(), created(0), amend.clone()]]
    {
        assert_eq!(run(&events).0.quantity, Some(d("0.25")), "the higher sequence is the newer");
    }
}

#[test]
fn a_finished_order_is_not_amended_by_a_later_event() {
    let amend = ev("order.updated", 5, json!({"quantity": "3", "price": "90"}));
    let (order, _) = run(&[created(0), cum(2, "filled", "1", "100"), amend]);
    assert_eq!((order.quantity, order.price), (Some(d("1")), Some(d("100"))));
    assert_eq!(order.status, OrderStatus::Filled);
}

/// Quantity and price: an amend (an update naming them) outranks the creation, the newer of two
/// amends wins, and of two creations the earlier (a later `order.created` only fills in what is
/// missing) — in every arrival order.
#[test]
fn rule2_amends_outrank_creations_and_the_earliest_creation_wins() {
    let second_creation = ev(
        "order.created",
        5,
        json!({"symbol": "BTC/USD", "side": "buy", "type": "limit", "quantity": 3, "price": 300}),
    );
    let amend = ev("order.updated", 3, json!({"status": "open", "quantity": 2, "price": 200}));
    let older_amend = ev("order.updated", 2, json!({"status": "open", "quantity": 4, "price": 400}));
    let cases: [(&[_], _); 2] = [
        (&[created(0), second_creation.clone()], (d("1"), d("100"))),
        (&[created(0), second_creation, amend, older_amend], (d("2"), d("200"))),
    ];
    for (events, expected) in cases {
        let mut arrivals = vec![events.to_vec()];
        arrivals.push(events.iter().rev().cloned().collect());
        for arrived in arrivals {
            let (order, _) = run(&arrived);
            assert_eq!((order.quantity.unwrap(), order.price.unwrap()), expected);
        }
    }
}

/// Two creations at the same second that disagree: one report gives every field, in either
/// arrival order — the lower venue sequence, else whichever the digest of its description ranks
/// first. Before, each field broke the tie on its own value, mixing the two (BTC/USD buy, from a
/// BTC/USD sell and an ETH/USD buy).
#[test]
fn rule2_creations_that_tie_on_time_give_one_reports_description_not_a_mix() {
    let report = |symbol: &str, side: &str, quantity: u32, price: u32, sequence: Option<u32>| {
        let mut data =
            json!({"symbol": symbol, "side": side, "type": "limit", "quantity": quantity, "price": price});
        if let Some(sequence) = sequence {
            data["sequence"] = json!(sequence);
        }
        ev("order.created", 0, data)
    };
    let describe = |o: &Order| (o.symbol.clone(), o.side, o.quantity, o.price);
    for (a, b) in [
        (report("BTC/USD", "sell", 1, 100, Some(2)), report("ETH/USD", "buy", 5, 50, Some(1))),
        (report("BTC/USD", "sell", 1, 100, None), report("ETH/USD", "buy", 5, 50, None)),
    ] {
        let (first, _) = run(&[a.clone(), b.clone()]);
        let (second, _) = run(&[b.clone(), a.clone()]);
        assert_eq!(describe(&first), describe(&second));
        let whole = |e: &(OrderEvent, DateTime<Utc>)| (e.0.symbol.clone(), e.0.side, e.0.quantity, e.0.price);
        assert!(describe(&first) == whole(&a) || describe(&first) == whole(&b), "{:?}", describe(&first));
        if a.0.sequence.is_some() {
            assert_eq!(describe(&first), whole(&b), "the lower sequence");
        }
    }
}
