//! Parser tests: every seed-001 payload, the exchange extensions, and each schema error.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::trading::seed001;
use crate::trading::signal::SignalAction;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn seed(payload: &str) -> CanonicalEvent {
    parse_event(&serde_json::from_str(payload).unwrap()).unwrap()
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, h, m, s).single().unwrap()
}

fn order(event: &CanonicalEvent) -> &OrderEvent {
    match &event.kind {
        EventKind::Order(o) => o,
        other => panic!("not an order event: {other:?}"),
    }
}

fn err(json: Value) -> SchemaError {
    parse_event(&json).unwrap_err()
}

#[test]
fn seed_order_created_parses_with_exact_decimals() {
    let event = seed(seed001::ORDER_CREATED);
    let o = order(&event);
    assert_eq!((event.event_type(), event.at, event.id.as_deref()), ("order.created", at(10, 30, 0), None));
    assert_eq!(o.order_id, "12345678-1234-1234-1234-123456789012");
    assert_eq!(o.client_order_id.as_deref(), Some("unique_order_id"));
    assert_eq!(
        (o.symbol.as_deref(), o.side, o.order_type.as_deref()),
        (Some("BTC/USD"), Some(Side::Buy), Some("market"))
    );
    assert_eq!(
        (o.quantity, o.price, o.status),
        (Some(d("0.1")), Some(Decimal::ZERO), Some(OrderStatus::Pending))
    );
    assert_eq!(o.created_at, Some(at(10, 30, 0)));
}

#[test]
fn seed_order_updated_carries_cumulative_fill() {
    let event = seed(seed001::ORDER_UPDATED);
    let o = order(&event);
    assert_eq!((o.action, o.status), (OrderAction::Updated, Some(OrderStatus::Filled)));
    assert_eq!((o.filled_quantity, o.average_price), (Some(d("0.1")), Some(d("49850.25"))));
    assert_eq!(o.trade, None);
}

#[test]
fn seed_order_cancelled_parses_with_reason() {
    let event = seed(seed001::ORDER_CANCELLED);
    let o = order(&event);
    assert_eq!((o.status, o.reason.as_deref()), (Some(OrderStatus::Cancelled), Some("user_cancelled")));
    assert_eq!(event.ordering_key(), Some("12345678-1234-1234-1234-123456789012"));
}

#[test]
fn seed_position_events_parse_as_venue_snapshots() {
    let opened = seed(seed001::POSITION_OPENED);
    let EventKind::Position(p) = &opened.kind else { panic!("{opened:?}") };
    assert_eq!(
        (p.phase, p.symbol.as_str(), p.side),
        (PositionPhase::Opened, "BTC/USD", Some(PositionSide::Long))
    );
    assert_eq!(
        (p.quantity, p.average_price, p.margin_used),
        (Some(d("0.1")), Some(d("49850.25")), Some(d("4985.03")))
    );

    let updated = seed(seed001::POSITION_UPDATED);
    let EventKind::Position(p) = &updated.kind else { panic!("{updated:?}") };
    assert_eq!(
        (p.unrealized_pnl, p.mark_price, p.margin_ratio),
        (Some(d("150.75")), Some(d("50000")), Some(d("0.1")))
    );

    let closed = seed(seed001::POSITION_CLOSED);
    let EventKind::Position(p) = &closed.kind else { panic!("{closed:?}") };
    assert_eq!((p.phase, p.realized_pnl), (PositionPhase::Closed, Some(d("149.75"))));
    assert_eq!(closed.ordering_key(), Some("BTC/USD"));
}

#[test]
fn seed_account_events_parse() {
    let balance = seed(seed001::ACCOUNT_BALANCE_UPDATED);
    let EventKind::Balance(b) = &balance.kind else { panic!("{balance:?}") };
    assert_eq!(
        (b.asset.as_str(), b.available, b.locked, b.total),
        ("USD", Some(d("9500")), Some(d("500")), Some(d("10000")))
    );
    assert_eq!((b.change, b.reason.as_deref()), (Some(d("-500")), Some("order_execution")));

    let deposit = seed(seed001::ACCOUNT_DEPOSIT_RECEIVED);
    let EventKind::Ledger(l) = &deposit.kind else { panic!("{deposit:?}") };
    assert_eq!(
        (l.kind, l.transaction_id.as_str(), l.amount),
        (LedgerKind::Deposit, "tx_123456789", d("1000"))
    );

    let withdrawal = seed(seed001::ACCOUNT_WITHDRAWAL_PROCESSED);
    let EventKind::Ledger(l) = &withdrawal.kind else { panic!("{withdrawal:?}") };
    assert_eq!((l.kind, l.amount, withdrawal.at), (LedgerKind::Withdrawal, d("500"), at(14, 0, 0)));
}

#[test]
fn seed_signal_maintenance_alert_and_test_events_parse() {
    let signal = seed(seed001::SIGNAL_GENERATED);
    let EventKind::Signal(s) = &signal.kind else { panic!("{signal:?}") };
    assert_eq!((s.symbol.as_str(), s.action, s.confidence), ("BTC/USD", SignalAction::Buy, Some(d("87"))));
    assert_eq!(s.raw["technicalAnalysis"]["macd"], "bullish");

    let maintenance = seed(seed001::SYSTEM_MAINTENANCE);
    let EventKind::Maintenance(m) = &maintenance.kind else { panic!("{maintenance:?}") };
    assert_eq!((m.start_time, m.end_time), (at(20, 0, 0), at(22, 0, 0)));
    assert_eq!(m.affected_services, vec!["trading", "api", "webhooks"]);

    let alert = seed(seed001::SYSTEM_ALERT);
    let EventKind::SystemAlert(a) = &alert.kind else { panic!("{alert:?}") };
    assert_eq!((a.level.as_deref(), a.affected_symbols.len()), (Some("warning"), 2));

    assert_eq!(seed(seed001::TEST).kind, EventKind::Test);
    assert_eq!(seed(seed001::TEST_WITHOUT_TIMESTAMP).kind, EventKind::Test);
}

#[test]
fn exchange_fields_on_order_events_parse_from_strings() {
    let event = parse_event(&json!({"id": "evt_1", "event": "order.updated", "timestamp": 1705314600000_i64,
        "data": {"orderId": 42, "status": "PARTIALLY_FILLED", "tradeId": 9001, "lastQuantity": "0.01",
                 "lastPrice": "49850.10", "commission": "-0.0001", "sequence": 7, "reduceOnly": true,
                 "origin": "liquidation", "account": "main"}}))
    .unwrap();
    let o = order(&event);
    assert_eq!((event.id.as_deref(), event.at), (Some("evt_1"), at(10, 30, 0)));
    assert_eq!((o.order_id.as_str(), o.status), ("42", Some(OrderStatus::PartiallyFilled)));
    let trade = o.trade.as_ref().unwrap();
    assert_eq!((trade.trade_id.as_str(), trade.quantity, trade.price), ("9001", d("0.01"), d("49850.1")));
    assert_eq!(trade.commission, d("-0.0001"));
    assert_eq!((o.sequence, o.reduce_only, o.origin.as_deref()), (Some(7), Some(true), Some("liquidation")));
    assert_eq!(o.account.as_deref(), Some("main"));
}

#[test]
fn status_aliases_are_accepted() {
    for (raw, want) in [
        ("NEW", OrderStatus::Open),
        ("canceled", OrderStatus::Cancelled),
        ("partially-filled", OrderStatus::PartiallyFilled),
    ] {
        let event = parse_event(&json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                                        "data": {"orderId": "o", "status": raw}}))
        .unwrap();
        assert_eq!(order(&event).status, Some(want), "{raw}");
    }
}

#[test]
fn missing_envelope_timestamp_falls_back_to_data_times() {
    let event = parse_event(&json!({"event": "order.updated",
        "data": {"orderId": "o", "updatedAt": "2024-01-15T10:30:01Z", "createdAt": "2024-01-15T10:00:00Z"}}))
    .unwrap();
    assert_eq!(event.at, at(10, 30, 1));
}

#[test]
fn schema_error_missing_order_id() {
    let e = err(
        json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z", "data": {"status": "open"}}),
    );
    assert_eq!(e, SchemaError::Missing { field: "data.orderId".into() });
    assert_eq!(e.to_string(), "missing required field `data.orderId`");
}

#[test]
fn schema_error_negative_quantity() {
    let e = err(json!({"event": "order.created", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "quantity": -0.1}}));
    assert!(matches!(e, SchemaError::Negative { ref field, .. } if field == "data.quantity"), "{e}");
}

#[test]
fn schema_error_nan_string() {
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "filledQuantity": "NaN"}}));
    assert!(matches!(e, SchemaError::NotFinite { ref field, .. } if field == "data.filledQuantity"), "{e}");
}

#[test]
fn schema_error_infinite_price_string_and_out_of_range_number() {
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "averagePrice": "Infinity"}}));
    assert!(matches!(e, SchemaError::NotFinite { .. }), "{e}");
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "averagePrice": 1e308}}));
    assert!(matches!(e, SchemaError::OutOfRange { .. }), "{e}");
}

/// A fill whose value (quantity × price) leaves the decimal range is a schema error, for running
/// totals and trades alike: before, the value was clamped and the order got a made-up fill price
/// (1e15 @ 1e15 became 7.9e13) with no alert.
#[test]
fn schema_error_fill_value_outside_the_decimal_range() {
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "filledQuantity": "1e15", "averagePrice": "1e15"}}));
    assert_eq!(
        e.to_string(),
        "`data.filledQuantity × data.averagePrice` (1000000000000000 × 1000000000000000) is outside the decimal range (at most 28 significant digits)"
    );
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "tradeId": "t1", "lastQuantity": "2000000000", "lastPrice": "3.1e21"}}));
    assert!(
        matches!(e, SchemaError::OutOfRange { ref field, .. } if field == "data.lastQuantity × data.lastPrice"),
        "{e}"
    );
    // Large but representable values still parse.
    let ok = json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                    "data": {"orderId": "o", "filledQuantity": "1e9", "averagePrice": "3e19"}});
    assert!(crate::trading::parse_event(&ok).is_ok());
}

#[test]
fn schema_error_unknown_status() {
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "status": "half_done"}}));
    assert!(matches!(e, SchemaError::UnknownValue { ref field, .. } if field == "data.status"), "{e}");
    assert!(e.to_string().contains("half_done"));
}

#[test]
fn schema_error_unknown_event_type() {
    let e = err(json!({"event": "order.exploded", "timestamp": "2024-01-15T10:30:00Z", "data": {}}));
    assert_eq!(e, SchemaError::UnknownEvent("order.exploded".into()));
    assert!(e.to_string().contains("order.created"));
}

#[test]
fn schema_error_missing_event_or_data() {
    assert_eq!(err(json!({"data": {}})), SchemaError::Missing { field: "event".into() });
    assert_eq!(err(json!({"event": "order.created"})), SchemaError::Missing { field: "data".into() });
}

#[test]
fn schema_error_missing_symbol_on_position_and_asset_on_account() {
    let e = err(
        json!({"event": "position.updated", "timestamp": "2024-01-15T10:30:00Z", "data": {"quantity": 1}}),
    );
    assert_eq!(e, SchemaError::Missing { field: "data.symbol".into() });
    let e = err(
        json!({"event": "account.balance_updated", "timestamp": "2024-01-15T10:30:00Z", "data": {"total": 1}}),
    );
    assert_eq!(e, SchemaError::Missing { field: "data.asset".into() });
    let e = err(json!({"event": "account.deposit_received", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"transactionId": "t", "amount": 1}}));
    assert_eq!(e, SchemaError::Missing { field: "data.asset".into() });
}

#[test]
fn schema_error_unparseable_or_absent_timestamp() {
    let e = err(json!({"event": "order.updated", "timestamp": "soon", "data": {"orderId": "o"}}));
    assert!(matches!(e, SchemaError::BadTimestamp { ref field, .. } if field == "timestamp"), "{e}");
    let e = err(json!({"event": "order.updated", "data": {"orderId": "o"}}));
    assert_eq!(e, SchemaError::NoTimestamp);
}

#[test]
fn schema_error_trade_id_without_last_quantity() {
    let e = err(json!({"event": "order.updated", "timestamp": "2024-01-15T10:30:00Z",
                       "data": {"orderId": "o", "tradeId": "t1", "lastPrice": 1}}));
    assert_eq!(e, SchemaError::Missing { field: "data.lastQuantity".into() });
}

#[test]
fn canonical_event_round_trips_through_json() {
    let event = seed(seed001::ORDER_CREATED);
    let back: CanonicalEvent = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    assert_eq!(back, event);
}
