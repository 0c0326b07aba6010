//! Aggregate tests: seed-001 flows end to end, balances, ledger, alerts and `touched`.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::*;
use crate::trading::order::OrderStatus;
use crate::trading::parse_event;
use crate::trading::position::PositionSide;
use crate::trading::seed001;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn seed(payload: &str) -> CanonicalEvent {
    parse_event(&serde_json::from_str(payload).unwrap()).unwrap()
}

fn ev(kind: &str, ts: &str, id: Option<&str>, data: Value) -> CanonicalEvent {
    let mut json = json!({"event": kind, "timestamp": ts, "data": data});
    if let Some(id) = id {
        json["id"] = json!(id);
    }
    parse_event(&json).unwrap()
}

fn btc() -> PositionKey {
    PositionKey { account: None, symbol: "BTC/USD".into() }
}

fn usd() -> BalanceKey {
    BalanceKey { account: None, asset: "USD".into() }
}

fn kinds(applied: &Applied) -> Vec<AlertKind> {
    applied.alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn seed_order_lifecycle_builds_order_and_position() {
    let mut state = TradingState::new();
    let a = state.apply(&seed(seed001::ORDER_CREATED));
    assert_eq!(a.touched.orders.len(), 1);
    assert!(a.touched.positions.is_empty(), "no fills yet, no position");
    let a = state.apply(&seed(seed001::ORDER_UPDATED));
    assert_eq!(a.touched.positions, [btc()].into());
    let a = state.apply(&seed(seed001::POSITION_OPENED));
    assert!(a.alerts.is_empty(), "venue agrees with fills: {:?}", a.alerts);
    state.apply(&seed(seed001::ORDER_CANCELLED));

    let order = &state.orders["12345678-1234-1234-1234-123456789012"];
    assert_eq!(
        (order.status, order.filled_quantity, order.average_price),
        (OrderStatus::Filled, d("0.1"), Some(d("49850.25")))
    );
    let view = state.positions[&btc()].view();
    assert_eq!(
        (view.side, view.net_quantity, view.average_price),
        (PositionSide::Long, d("0.1"), d("49850.25"))
    );
    state.apply(&seed(seed001::POSITION_UPDATED));
    let view = state.positions[&btc()].view();
    assert_eq!(
        (view.mark_price, view.margin_ratio, view.unrealized_pnl),
        (Some(d("50000")), Some(d("0.1")), Some(d("150.75")))
    );
}

#[test]
fn seed_position_closed_while_fills_say_long_raises_position_mismatch() {
    let mut state = TradingState::new();
    state.apply(&seed(seed001::ORDER_CREATED));
    state.apply(&seed(seed001::ORDER_UPDATED));
    let applied = state.apply(&seed(seed001::POSITION_CLOSED));
    assert_eq!(kinds(&applied), vec![AlertKind::PositionMismatch]);
}

#[test]
fn position_mismatch_is_raised_whether_the_snapshot_comes_before_or_after_the_fills() {
    // Failed before: with position.updated first (no fills yet) the mismatch was never raised.
    let btc_updated = |qty: &str| {
        ev(
            "position.updated",
            "2024-01-15T11:00:00Z",
            Some("p1"),
            json!({"symbol": "BTC/USD", "side": "long",
            "quantity": qty}),
        )
    };
    for (venue, alerted) in [("0.2", true), ("0.1", false)] {
        let fills = [seed(seed001::ORDER_CREATED), seed(seed001::ORDER_UPDATED)];
        let mut after = TradingState::new();
        let mut before = TradingState::new();
        let mut alerts_after = Vec::new();
        let mut alerts_before = kinds(&before.apply(&btc_updated(venue)));
        for event in &fills {
            after.apply(event);
            alerts_before.extend(kinds(&before.apply(event)));
        }
        alerts_after.extend(kinds(&after.apply(&btc_updated(venue))));
        let mismatch = |k: &Vec<AlertKind>| k.contains(&AlertKind::PositionMismatch);
        assert_eq!((mismatch(&alerts_after), mismatch(&alerts_before)), (alerted, alerted), "venue {venue}");
        assert_eq!(after.positions[&btc()].mismatch, before.positions[&btc()].mismatch);
    }
}

#[test]
fn late_fills_that_narrow_a_mismatch_raise_no_further_alerts() {
    // One fill, a snapshot long 5, then four late fills dated before it: each late fill raised
    // another alert (the gap changed), four in all, until the fills caught up.
    let fill = |k: u32| {
        ev(
            "order.updated",
            &format!("2024-01-15T10:1{k}:00Z"),
            Some(&format!("f{k}")),
            json!({"orderId": "m1", "status": "partially_filled", "tradeId": format!("t{k}"),
                "lastQuantity": 1, "lastPrice": 100}),
        )
    };
    let mut state = TradingState::new();
    let created =
        json!({"orderId": "m1", "symbol": "ETH/USD", "side": "buy", "type": "market", "quantity": 5});
    state.apply(&ev("order.created", "2024-01-15T10:00:00Z", Some("c1"), created));
    state.apply(&fill(1));
    let snapshot = json!({"symbol": "ETH/USD", "side": "long", "quantity": 5});
    let mut alerts =
        kinds(&state.apply(&ev("position.updated", "2024-01-15T10:31:00Z", Some("s1"), snapshot)));
    for k in 2..=5 {
        alerts.extend(kinds(&state.apply(&fill(k))));
    }
    let mismatches = alerts.iter().filter(|k| **k == AlertKind::PositionMismatch).count();
    assert_eq!(mismatches, 1, "{alerts:?}");
    let eth = PositionKey { account: None, symbol: "ETH/USD".into() };
    assert_eq!(state.positions[&eth].mismatch, None, "the fills caught up with the venue");
}

#[test]
fn a_fill_after_the_snapshot_is_not_a_mismatch_with_it() {
    let mut state = TradingState::new();
    state.apply(&seed(seed001::ORDER_CREATED));
    state.apply(&seed(seed001::ORDER_UPDATED));
    let snapshot = ev(
        "position.updated",
        "2024-01-15T10:30:02Z",
        Some("p1"),
        json!({"symbol": "BTC/USD",
        "side": "long", "quantity": 0.1}),
    );
    assert!(state.apply(&snapshot).alerts.is_empty());
    let later = ev(
        "order.updated",
        "2024-01-15T10:30:05Z",
        None,
        json!({"orderId": "o2", "symbol": "BTC/USD",
        "side": "buy", "quantity": 1, "filledQuantity": 1, "averagePrice": 50000}),
    );
    assert!(state.apply(&later).alerts.iter().all(|a| a.kind != AlertKind::PositionMismatch));
    assert_eq!(state.positions[&btc()].mismatch, None);
}

#[test]
fn fill_before_order_affects_the_position_once_the_order_is_known() {
    let mut state = TradingState::new();
    let applied = state.apply(&seed(seed001::ORDER_UPDATED));
    assert_eq!(kinds(&applied), vec![AlertKind::FillBeforeOrder]);
    assert!(state.positions.is_empty());
    let applied = state.apply(&seed(seed001::ORDER_CREATED));
    assert_eq!(applied.touched.positions, [btc()].into());
    assert_eq!(state.positions[&btc()].net_quantity, d("0.1"));
}

#[test]
fn a_position_counts_running_total_fills_and_trade_fills_of_one_order_in_any_arrival_order() {
    // Failed before: the position held only the trade (0.3 @ 110), the order 0.8 filled.
    let events = [
        ev(
            "order.created",
            "2024-01-15T10:30:01Z",
            None,
            json!({"orderId": "o", "symbol": "S", "side": "buy", "quantity": 1}),
        ),
        ev(
            "order.updated",
            "2024-01-15T10:30:02Z",
            None,
            json!({"orderId": "o", "status": "partially_filled", "filledQuantity": 0.5, "averagePrice": 100}),
        ),
        ev(
            "order.updated",
            "2024-01-15T10:30:03Z",
            None,
            json!({"orderId": "o", "tradeId": "t2", "lastQuantity": 0.3, "lastPrice": 110,
                   "filledQuantity": 0.8, "averagePrice": 103.75}),
        ),
    ];
    let key = PositionKey { account: None, symbol: "S".into() };
    for arrival in [[0, 1, 2], [0, 2, 1], [2, 1, 0]] {
        let mut state = TradingState::new();
        for i in arrival {
            state.apply(&events[i]);
        }
        let position = &state.positions[&key];
        assert_eq!((position.net_quantity, position.average_price), (d("0.8"), d("103.75")), "{arrival:?}");
        let order = &state.orders["o"];
        assert_eq!((order.filled_quantity, order.average_price), (d("0.8"), Some(d("103.75"))));
    }
}

#[test]
fn fills_move_when_the_orders_account_becomes_known() {
    let mut state = TradingState::new();
    state.apply(&ev(
        "order.updated",
        "2024-01-15T10:30:01Z",
        None,
        json!({"orderId": "o", "symbol": "ETH", "side": "buy", "filledQuantity": 1, "averagePrice": 10}),
    ));
    let applied = state.apply(&ev(
        "order.created",
        "2024-01-15T10:30:00Z",
        None,
        json!({"orderId": "o", "account": "main", "symbol": "ETH", "side": "buy", "quantity": 1}),
    ));
    let main = PositionKey { account: Some("main".into()), symbol: "ETH".into() };
    let none = PositionKey { account: None, symbol: "ETH".into() };
    assert_eq!(applied.touched.positions, [main.clone(), none.clone()].into());
    assert_eq!(state.positions[&main].net_quantity, d("1"));
    assert!(!state.positions.contains_key(&none), "left with nothing, the position without account goes");
}

#[test]
fn balance_snapshot_newest_by_event_time_wins() {
    let mut state = TradingState::new();
    let newer = ev(
        "account.balance_updated",
        "2024-01-15T10:31:00Z",
        None,
        json!({"asset": "USD", "available": 90, "locked": 10}),
    );
    let older = ev(
        "account.balance_updated",
        "2024-01-15T10:30:00Z",
        None,
        json!({"asset": "USD", "available": 50, "total": 50}),
    );
    assert_eq!(state.apply(&newer).touched.balances, [usd()].into());
    assert!(state.apply(&older).touched.is_empty());
    let b = &state.balances[&usd()];
    assert_eq!((b.available, b.locked, b.total), (d("90"), d("10"), d("100")));
}

#[test]
fn balance_snapshot_tie_is_broken_by_event_id() {
    let a =
        ev("account.balance_updated", "2024-01-15T10:30:00Z", Some("a"), json!({"asset": "USD", "total": 1}));
    let b =
        ev("account.balance_updated", "2024-01-15T10:30:00Z", Some("b"), json!({"asset": "USD", "total": 2}));
    let (mut one, mut two) = (TradingState::new(), TradingState::new());
    one.apply(&a);
    one.apply(&b);
    two.apply(&b);
    two.apply(&a);
    assert_eq!(one, two);
    assert_eq!(one.balances[&usd()].total, d("2"));
}

#[test]
fn ledger_entries_are_deduplicated_by_transaction_id() {
    let mut state = TradingState::new();
    let deposit = seed(seed001::ACCOUNT_DEPOSIT_RECEIVED);
    assert_eq!(state.apply(&deposit).touched.ledger, ["tx_123456789".to_owned()].into());
    let again = state.apply(&deposit);
    assert!(again.touched.is_empty() && again.alerts.is_empty());
    state.apply(&seed(seed001::ACCOUNT_WITHDRAWAL_PROCESSED));
    assert_eq!(state.ledger.len(), 2);
}

#[test]
fn ledger_repeat_with_different_amount_keeps_the_earliest_report_in_any_arrival_order() {
    let first = seed(seed001::ACCOUNT_DEPOSIT_RECEIVED); // 1000 at 09:00:00
    let conflicting = ev(
        "account.deposit_received",
        "2024-01-15T09:00:05Z",
        None,
        json!({"transactionId": "tx_123456789", "asset": "USD", "amount": 2000}),
    );
    for events in [[&first, &conflicting], [&conflicting, &first]] {
        let mut state = TradingState::new();
        state.apply(events[0]);
        let applied = state.apply(events[1]);
        assert_eq!(kinds(&applied), vec![AlertKind::ConflictingDuplicate]);
        assert_eq!(state.ledger["tx_123456789"].amount, d("1000"));
        assert!(
            applied.alerts[0].message.contains("kept the earliest report"),
            "{}",
            applied.alerts[0].message
        );
    }
}

#[test]
fn a_ledger_entry_takes_the_newest_status_in_any_arrival_order() {
    let report = |ts: &str, status: &str| {
        ev(
            "account.deposit_received",
            ts,
            None,
            json!({"transactionId": "tx_5", "asset": "ETH", "amount": "1.5", "status": status}),
        )
    };
    let (pending, completed) =
        (report("2024-01-15T09:00:00Z", "pending"), report("2024-01-15T09:05:00Z", "completed"));
    let mut states = Vec::new();
    for events in [[&pending, &completed], [&completed, &pending]] {
        let mut state = TradingState::new();
        for event in events {
            let applied = state.apply(event);
            assert!(applied.alerts.is_empty(), "a status change is no conflict: {:?}", applied.alerts);
        }
        let entry = &state.ledger["tx_5"];
        assert_eq!((entry.status.as_deref(), entry.at), (Some("completed"), pending.at));
        states.push(state);
    }
    assert_eq!(states[0], states[1]);
    // The pending report arriving again changes nothing.
    assert!(states[0].apply(&pending).touched.is_empty());
}

#[test]
fn margin_call_raises_margin_alert_and_sets_position_margin_fields() {
    let mut state = TradingState::new();
    let call = ev(
        "account.margin_call",
        "2024-01-15T11:00:00Z",
        Some("m1"),
        json!({"symbol": "BTC/USD",
        "marginRatio": 0.85, "maintenanceMargin": 500, "markPrice": 45000, "liquidationPrice": 44000}),
    );
    let applied = state.apply(&call);
    assert_eq!(kinds(&applied), vec![AlertKind::Margin]);
    assert_eq!(applied.touched.positions, [btc()].into());
    assert_eq!(state.positions[&btc()].view().margin_ratio, Some(d("0.85")));
    assert!(state.apply(&call).alerts.is_empty(), "the same event again raises nothing");
}

#[test]
fn system_alert_becomes_a_system_alert_about_its_symbols() {
    let applied = TradingState::new().apply(&seed(seed001::SYSTEM_ALERT));
    assert_eq!(kinds(&applied), vec![AlertKind::System]);
    assert_eq!(applied.alerts[0].subject, "BTC/USD,ETH/USD");
    assert!(applied.alerts[0].message.contains("High Market Volatility"));
    assert!(applied.touched.is_empty());
}

#[test]
fn signals_and_maintenance_windows_are_stored_once() {
    let mut state = TradingState::new();
    let signal = seed(seed001::SIGNAL_GENERATED);
    assert_eq!(state.apply(&signal).touched.signals.len(), 1);
    assert!(state.apply(&signal).touched.is_empty());
    let maintenance = seed(seed001::SYSTEM_MAINTENANCE);
    assert_eq!(state.apply(&maintenance).touched.maintenance.len(), 1);
    assert!(state.apply(&maintenance).touched.is_empty());
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-15T21:00:00Z").unwrap().to_utc();
    assert!(state.in_maintenance(start));
    assert!(!state.in_maintenance(start + chrono::Duration::hours(2)));
}

#[test]
fn test_event_changes_nothing() {
    let mut state = TradingState::new();
    let applied = state.apply(&seed(seed001::TEST));
    assert_eq!(applied, Applied::default());
    assert_eq!(state, TradingState::new());
}

#[test]
fn state_round_trips_through_json_and_rebuilds_positions() {
    let mut state = TradingState::new();
    for payload in [
        seed001::ORDER_CREATED,
        seed001::ORDER_UPDATED,
        seed001::POSITION_UPDATED,
        seed001::ACCOUNT_BALANCE_UPDATED,
    ] {
        state.apply(&seed(payload));
    }
    // Trades with commissions, a sell that crosses zero, and a late fill that sorts first.
    let trade = |ts: &str, order: &str, side: &str, trade: &str, qty: &str, price: &str| {
        ev(
            "order.updated",
            ts,
            None,
            json!({"orderId": order, "symbol": "BTC/USD", "side": side,
            "tradeId": trade, "lastQuantity": qty, "lastPrice": price, "commission": "0.5"}),
        )
    };
    state.apply(&trade("2024-01-15T10:40:00Z", "s", "sell", "s1", "0.3", "51000"));
    state.apply(&trade("2024-01-15T10:41:00Z", "b", "buy", "b1", "0.05", "49000"));
    state.apply(&trade("2024-01-15T10:20:00Z", "b", "buy", "b0", "0.01", "48000"));

    let json = serde_json::to_string(&state).unwrap();
    assert!(!json.contains("fills"), "fills are not persisted: {json}");
    let mut back: TradingState = serde_json::from_str(&json).unwrap();
    let views = |s: &TradingState| s.positions.values().map(Position::view).collect::<Vec<_>>();
    assert_eq!(views(&back), views(&state), "the folded state is persisted");
    assert!(back.rebuild_positions().is_empty(), "rebuilding changes no persisted position");
    assert_eq!(back, state, "rebuilt fills equal the ones the events built");
    assert_eq!(views(&back), views(&state));
}

#[test]
fn applying_after_load_and_rebuild_gives_the_state_of_an_uninterrupted_run() {
    let fill = |ts: &str, cum: &str| {
        ev(
            "order.updated",
            ts,
            None,
            json!({"orderId": "o", "symbol": "ETH", "side": "buy", "quantity": 3,
            "filledQuantity": cum, "averagePrice": 10}),
        )
    };
    let mut uninterrupted = TradingState::new();
    uninterrupted.apply(&fill("2024-01-15T10:30:00Z", "1"));
    let mut loaded: TradingState =
        serde_json::from_str(&serde_json::to_string(&uninterrupted).unwrap()).unwrap();
    loaded.rebuild_positions();
    for state in [&mut uninterrupted, &mut loaded] {
        state.apply(&fill("2024-01-15T10:30:02Z", "3"));
        state.apply(&fill("2024-01-15T10:30:01Z", "2"));
    }
    assert_eq!(loaded, uninterrupted);
    assert_eq!(loaded.positions.values().next().unwrap().fills().len(), 3);
}

#[test]
fn fifty_thousand_in_order_cumulative_fills_across_fifty_orders_fold_to_the_expected_position() {
    const ORDERS: u32 = 50;
    const UPDATES_PER_ORDER: u32 = 1000;
    let base = chrono::DateTime::parse_from_rfc3339("2024-01-15T00:00:00Z").unwrap().to_utc();
    let mut state = TradingState::new();
    for i in 0..ORDERS * UPDATES_PER_ORDER {
        let (order, cum) = (i % ORDERS, i / ORDERS + 1);
        // Order j buys (sells, for every fifth order) 1 per update at 100 + j.
        let side = if order % 5 == 4 { "sell" } else { "buy" };
        let at = base + chrono::Duration::seconds(i.into());
        state.apply(&ev(
            "order.updated",
            &at.to_rfc3339(),
            None,
            json!({"orderId": format!("o{order}"), "symbol": "BTC/USD", "side": side,
                "quantity": UPDATES_PER_ORDER, "filledQuantity": cum, "averagePrice": 100 + order}),
        ));
    }
    let position = &state.positions[&btc()];
    assert_eq!(position.fills().len(), 50_000);
    // 40 buy orders and 10 sell orders of 1000 each: long 30,000.
    assert_eq!(position.net_quantity, d("30000"));
    assert!(state.orders.values().all(|o| o.status == OrderStatus::Filled));
    let rebuilt = Position::from_fills(None, "BTC/USD", position.fills().iter().cloned());
    assert_eq!(position.view(), rebuilt.view(), "the incremental fold equals the fold from scratch");
    // Pinned: the fold of this stream in canonical order (it rounds at Decimal's 28 digits).
    assert_eq!(
        (position.average_price, position.realized_pnl),
        (d("124.00527337322635004147941007"), d("25158.201196790501244382298218"))
    );
}

#[test]
fn a_trade_reported_twice_with_different_values_gives_one_position_in_any_arrival_order() {
    let trade = |ts: &str, qty: &str, price: &str| trade_report("c1", "x1", ts, qty, price, "0");
    let (early, late) = (trade("2024-01-15T10:00:00Z", "1", "10"), trade("2024-01-15T10:00:10Z", "2", "9"));
    let mut states = Vec::new();
    for events in [[&early, &late], [&late, &early]] {
        let mut state = TradingState::new();
        for event in events {
            state.apply(event);
        }
        let view = state.positions[&btc()].view();
        assert_eq!((view.quantity, view.average_price), (d("1"), d("10")), "{view:?}");
        states.push(state);
    }
    assert_eq!(states[0].orders["c1"].fills(), states[1].orders["c1"].fills());
    assert_eq!(states[0].positions[&btc()].view(), states[1].positions[&btc()].view());
}

#[test]
fn an_older_snapshot_that_names_the_side_is_stored_when_it_arrives_after_a_newer_one_without() {
    let mut in_order = TradingState::new();
    let mut late = TradingState::new();
    for state in [&mut in_order, &mut late] {
        state.apply(&seed(seed001::ORDER_CREATED));
        state.apply(&seed(seed001::ORDER_UPDATED));
    }
    let (opened, updated) = (seed(seed001::POSITION_OPENED), seed(seed001::POSITION_UPDATED));
    in_order.apply(&opened);
    in_order.apply(&updated);
    late.apply(&updated);
    let applied = late.apply(&opened);
    // The side it gives the newer snapshot changes the position: written, not only kept in memory.
    assert_eq!(applied.touched.positions, [btc()].into());
    assert_eq!(late.positions[&btc()].venue_net(), in_order.positions[&btc()].venue_net());
    assert_eq!(late.positions[&btc()].venue_side, in_order.positions[&btc()].venue_side);
    assert_eq!(late.positions[&btc()].mismatch, in_order.positions[&btc()].mismatch);
}

#[test]
fn commission_on_running_totals_is_counted_per_increment_in_any_arrival_order() {
    let report = |order: &str, side: &str, ts: &str, filled: &str, avg: &str, commission: &str| {
        ev(
            "order.updated",
            ts,
            None,
            json!({"orderId": order, "symbol": "BTC/USD", "side": side, "type": "market", "quantity": 1,
                   "status": if filled == "1" { "filled" } else { "partially_filled" },
                   "filledQuantity": filled, "averagePrice": avg, "commission": commission}),
        )
    };
    let events = [
        report("b", "buy", "2024-01-15T10:00:00Z", "0.5", "10", "0.1"),
        report("b", "buy", "2024-01-15T10:00:01Z", "1", "10", "0.2"),
        report("s", "sell", "2024-01-15T10:01:00Z", "1", "12", "0.3"),
    ];
    let mut views = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let mut state = TradingState::new();
        for i in order {
            state.apply(&events[i]);
        }
        let commissions: Vec<Decimal> = state.orders["b"].fills().iter().map(|f| f.commission).collect();
        assert_eq!(commissions, [d("0.1"), d("0.1")], "each increment's share of the running commission");
        let view = state.positions[&btc()].view();
        // (12 − 10) · 1 − (0.2 + 0.3)
        assert_eq!(view.realized_pnl, d("1.5"), "{view:?}");
        views.push(view);
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]));
}

/// Every arrangement of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

/// Every arrival order of `events` (each event once) gives the same fills (commission included)
/// and position; returns the fills.
fn same_in_every_order(events: &[CanonicalEvent], order_id: &str) -> Vec<crate::trading::Fill> {
    let mut seen: Option<(Vec<crate::trading::Fill>, _)> = None;
    for order in permutations(events.len()) {
        let mut state = TradingState::new();
        for i in &order {
            state.apply(&events[*i]);
        }
        let got = (state.orders[order_id].fills(), state.positions[&btc()].view());
        match &seen {
            None => seen = Some(got),
            Some(first) => assert_eq!(&got, first, "arrival order {order:?}"),
        }
    }
    seen.map(|(fills, _)| fills).unwrap_or_default()
}

#[test]
fn commissions_come_out_the_same_in_every_arrival_order() {
    let total = |ts: &str, filled: &str, avg: &str, commission: Option<&str>| {
        let mut data = json!({"orderId": "k", "symbol": "BTC/USD", "side": "buy", "type": "market", "quantity": 3,
                              "status": "partially_filled", "filledQuantity": filled, "averagePrice": avg});
        if let Some(c) = commission {
            data["commission"] = json!(c);
        }
        ev("order.updated", ts, None, data)
    };
    let commissions = |fills: &[crate::trading::Fill]| fills.iter().map(|f| f.commission).collect::<Vec<_>>();
    // One running total reported three times, with and without commission.
    let fills = same_in_every_order(
        &[
            total("2024-01-15T10:00:00Z", "1", "10", None),
            total("2024-01-15T10:00:01Z", "1", "10", Some("0.1")),
            total("2024-01-15T10:00:02Z", "1", "10", Some("0.2")),
        ],
        "k",
    );
    assert_eq!(commissions(&fills), [d("0.2")], "the largest any report gave");
    // Conflicting averages: the earliest wins; the commission still joins over all reports.
    same_in_every_order(
        &[
            total("2024-01-15T10:00:00Z", "1", "10", None),
            total("2024-01-15T10:00:01Z", "1", "11", Some("0.1")),
            total("2024-01-15T10:00:02Z", "1", "10", Some("0.2")),
        ],
        "k",
    );
    // A total left out of the split (its increment would cost less than nothing): its share
    // of the commission goes to the next increment, so the fills carry all the venue reported.
    let fills = same_in_every_order(
        &[
            total("2024-01-15T10:00:00Z", "1", "10", Some("1")),
            total("2024-01-15T10:00:01Z", "2", "30", Some("2")),
            total("2024-01-15T10:00:02Z", "3", "10", Some("3")),
        ],
        "k",
    );
    assert_eq!(fills.iter().map(|f| f.commission).sum::<Decimal>(), d("3"), "{fills:?}");
    // A trade id reported three times.
    let trade = |ts: &str, qty: &str, commission: &str| trade_report("k", "t1", ts, qty, "10", commission);
    let fills = same_in_every_order(
        &[
            trade("2024-01-15T10:00:00Z", "1", "0.1"),
            trade("2024-01-15T10:00:02Z", "1", "0.2"),
            trade("2024-01-15T10:00:01Z", "2", "0"),
        ],
        "k",
    );
    assert_eq!((fills[0].quantity, fills[0].commission), (d("1"), d("0.2")));
}

#[test]
fn ledger_entries_come_out_the_same_in_every_arrival_order() {
    let report = |ts: &str, amount: &str, status: Option<&str>, method: Option<&str>| {
        let mut data = json!({"transactionId": "tx", "asset": "USD", "amount": amount});
        if let Some(s) = status {
            data["status"] = json!(s);
        }
        if let Some(m) = method {
            data["method"] = json!(m);
        }
        ev("account.withdrawal_processed", ts, None, data)
    };
    let cases = [
        // A newer report without a status does not hide an older one's.
        vec![
            report("2024-01-15T09:00:00Z", "5", Some("pending"), None),
            report("2024-01-15T09:05:00Z", "5", None, None),
        ],
        // Methods from several reports.
        vec![
            report("2024-01-15T09:00:00Z", "5", None, None),
            report("2024-01-15T09:01:00Z", "5", Some("pending"), Some("wire")),
            report("2024-01-15T09:02:00Z", "5", Some("completed"), Some("ach")),
        ],
        // Conflicting amounts at one time: the smaller, compared as numbers (not "1000" < "900").
        vec![
            report("2024-01-15T09:00:00Z", "1000", None, None),
            report("2024-01-15T09:00:00Z", "900", None, None),
        ],
    ];
    let mut results = Vec::new();
    for events in &cases {
        let orders: Vec<Vec<usize>> = if events.len() == 2 {
            vec![vec![0, 1], vec![1, 0]]
        } else {
            vec![vec![0, 1, 2], vec![2, 1, 0], vec![1, 2, 0], vec![2, 0, 1]]
        };
        let mut first = None;
        for order in orders {
            let mut state = TradingState::new();
            for i in &order {
                state.apply(&events[*i]);
            }
            let entry = state.ledger["tx"].clone();
            match &first {
                None => first = Some(entry),
                Some(first) => assert_eq!(&entry, first, "arrival order {order:?}"),
            }
        }
        results.push(first.unwrap());
    }
    assert_eq!(results[0].status.as_deref(), Some("pending"));
    assert_eq!(results[1].status.as_deref(), Some("completed"));
    assert_eq!(results[2].amount, d("900"));
}

/// A buy of 5 BTC/USD on `order`, reporting trade `trade_id`.
fn trade_report(
    order: &str,
    trade_id: &str,
    ts: &str,
    qty: &str,
    price: &str,
    commission: &str,
) -> CanonicalEvent {
    ev(
        "order.updated",
        ts,
        None,
        json!({"orderId": order, "symbol": "BTC/USD", "side": "buy", "type": "market", "quantity": 5,
               "status": "partially_filled", "tradeId": trade_id, "lastQuantity": qty, "lastPrice": price,
               "commission": commission}),
    )
}

/// Two reports of one order id that disagree on what it is (two `order.created`, or two sources
/// using one id): the earliest report gives symbol, side and type, the position follows in every
/// arrival order, and the conflict is an alert. Before, the first to arrive gave symbol and side
/// while the newest gave quantity and price: a mix neither report described, its fills booked to
/// the first arrival's symbol and side, and no alert.
#[test]
fn conflicting_reports_of_one_order_give_the_earliest_description_in_every_arrival_order() {
    let events = [
        ev(
            "order.created",
            "2024-01-15T10:30:00Z",
            None,
            json!({"orderId": "X1", "symbol": "BTC/USD", "side": "buy", "type": "limit", "quantity": 1, "price": 100}),
        ),
        ev(
            "order.created",
            "2024-01-15T10:30:05Z",
            None,
            json!({"orderId": "X1", "symbol": "ETH/USD", "side": "sell", "type": "market", "quantity": 1, "price": 200}),
        ),
        ev(
            "order.updated",
            "2024-01-15T10:30:10Z",
            None,
            json!({"orderId": "X1", "status": "filled", "filledQuantity": 1, "averagePrice": 150}),
        ),
    ];
    let mut seen = None;
    for order in permutations(events.len()) {
        let mut state = TradingState::new();
        let mut alerts = Vec::new();
        for i in &order {
            alerts.extend(state.apply(&events[*i]).alerts);
        }
        let x1 = &state.orders["X1"];
        assert_eq!(
            (x1.symbol.as_deref(), x1.side, x1.order_type.as_deref()),
            (Some("BTC/USD"), Some(crate::trading::Side::Buy), Some("limit")),
            "arrival order {order:?}"
        );
        assert_eq!((x1.quantity, x1.price), (Some(d("1")), Some(d("100"))), "the earliest creation's");
        let conflicts: Vec<&str> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::ConflictingDuplicate)
            .map(|a| a.message.as_str())
            .collect();
        assert!(
            ["symbol", "side", "type"]
                .iter()
                .all(|f| conflicts.iter().any(|m| m.contains(&format!("on {f}:")))),
            "arrival order {order:?}: {conflicts:?}"
        );
        let positions: Vec<_> =
            state.positions.iter().map(|(key, p)| (key.symbol.clone(), p.view())).collect();
        assert_eq!(
            positions.len(),
            1,
            "no position left empty by the move, arrival order {order:?}: {positions:?}"
        );
        assert_eq!((positions[0].0.as_str(), positions[0].1.side), ("BTC/USD", PositionSide::Long));
        let got = (x1.clone(), positions);
        match &seen {
            None => seen = Some(got),
            Some(first) => assert_eq!(&got, first, "arrival order {order:?}"),
        }
    }
}
