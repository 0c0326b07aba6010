//! Position fold and venue snapshot tests, one or more per TRADING.md position rule.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::trading::order::Side;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn t(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, sec).single().unwrap()
}

fn fill(sec: u32, side: Side, qty: &str, price: &str) -> Fill {
    Fill {
        order_id: format!("o{sec}"),
        symbol: "BTC/USD".into(),
        side,
        quantity: d(qty),
        price: d(price),
        commission: Decimal::ZERO,
        at: t(sec),
        key: "t".into(),
    }
}

fn position(fills: Vec<Fill>) -> Position {
    Position::from_fills(None, "BTC/USD", fills)
}

fn snapshot(phase: PositionPhase, side: Option<PositionSide>, qty: Option<&str>) -> PositionEvent {
    PositionEvent {
        phase,
        account: None,
        symbol: "BTC/USD".into(),
        side,
        quantity: qty.map(d),
        average_price: None,
        mark_price: Some(d("110")),
        unrealized_pnl: None,
        margin_ratio: Some(d("0.1")),
        liquidation_price: None,
        margin_used: None,
        realized_pnl: None,
    }
}

fn stamp(sec: u32, id: &str) -> Stamp {
    Stamp { at: t(sec), event_id: Some(id.into()) }
}

#[test]
fn buys_add_and_sells_subtract() {
    let p = position(vec![fill(1, Side::Buy, "2", "100"), fill(2, Side::Sell, "0.5", "100")]);
    assert_eq!((p.net_quantity, p.side()), (d("1.5"), PositionSide::Long));
    let p = position(vec![fill(1, Side::Sell, "2", "100")]);
    assert_eq!((p.net_quantity, p.side(), p.view().quantity), (d("-2"), PositionSide::Short, d("2")));
}

#[test]
fn average_entry_changes_only_on_increasing_fills() {
    let p = position(vec![fill(1, Side::Buy, "1", "100"), fill(2, Side::Buy, "1", "110")]);
    assert_eq!(p.average_price, d("105"));
    let p = position(vec![
        fill(1, Side::Buy, "1", "100"),
        fill(2, Side::Buy, "1", "110"),
        fill(3, Side::Sell, "1", "200"),
    ]);
    assert_eq!(p.average_price, d("105"), "a reducing fill leaves the entry price alone");
}

#[test]
fn reducing_fill_books_realized_pnl_for_longs() {
    let p = position(vec![fill(1, Side::Buy, "2", "100"), fill(2, Side::Sell, "0.5", "120")]);
    assert_eq!(p.realized_pnl, d("10"));
}

#[test]
fn reducing_fill_books_realized_pnl_reversed_for_shorts() {
    let p = position(vec![fill(1, Side::Sell, "2", "100"), fill(2, Side::Buy, "1", "90")]);
    assert_eq!((p.realized_pnl, p.net_quantity, p.average_price), (d("10"), d("-1"), d("100")));
}

#[test]
fn commissions_are_subtracted_from_realized_pnl() {
    let mut open = fill(1, Side::Buy, "1", "100");
    open.commission = d("0.5");
    let mut close = fill(2, Side::Sell, "1", "110");
    close.commission = d("0.25");
    let p = position(vec![open, close]);
    assert_eq!((p.realized_pnl, p.commission), (d("9.25"), d("0.75")));
}

#[test]
fn fill_crossing_zero_closes_and_reopens_at_the_fill_price() {
    let p = position(vec![fill(1, Side::Buy, "1", "100"), fill(2, Side::Sell, "3", "120")]);
    assert_eq!((p.realized_pnl, p.net_quantity, p.average_price), (d("20"), d("-2"), d("120")));
    let flat = position(vec![fill(1, Side::Buy, "1", "100"), fill(2, Side::Sell, "1", "120")]);
    assert_eq!((flat.side(), flat.average_price), (PositionSide::Flat, Decimal::ZERO));
}

#[test]
fn position_is_a_function_of_the_fill_set_not_arrival_order() {
    let fills = vec![
        fill(1, Side::Buy, "1", "100"),
        fill(2, Side::Sell, "3", "120"),
        fill(3, Side::Buy, "1.5", "90"),
    ];
    let mut incremental = Position::new(&PositionKey { account: None, symbol: "BTC/USD".into() });
    for f in fills.iter().rev() {
        incremental.replace_order_fills(&f.order_id, vec![f.clone()]);
    }
    assert_eq!(incremental, position(fills));
}

#[test]
fn replacing_an_orders_fills_refolds_when_the_split_changes() {
    let mut p = position(vec![fill(1, Side::Buy, "1", "100")]);
    assert!(!p.replace_order_fills("o1", vec![fill(1, Side::Buy, "1", "100")]), "same fills change nothing");
    let mut split = fill(1, Side::Buy, "0.5", "100");
    split.key = "cum:0.5".into();
    assert!(p.replace_order_fills("o1", vec![split.clone(), fill(1, Side::Buy, "0.5", "100")]));
    assert_eq!((p.net_quantity, p.fills.len()), (d("1"), 2));
}

#[test]
fn venue_snapshot_newest_by_event_time_wins() {
    let mut p = position(vec![fill(1, Side::Buy, "1", "100")]);
    let mut newer = snapshot(PositionPhase::Updated, Some(PositionSide::Long), Some("1"));
    newer.mark_price = Some(d("120"));
    assert!(p.apply_venue(&newer, stamp(5, "b")).0);
    assert!(!p.apply_venue(&snapshot(PositionPhase::Updated, None, Some("1")), stamp(4, "a")).0);
    assert_eq!(p.mark_price(), Some(d("120")));
    assert_eq!(p.unrealized_pnl(), Some(d("20")), "computed from the mark price without a venue figure");
}

#[test]
fn margin_call_newer_than_snapshot_supplies_margin_ratio() {
    let mut p = position(vec![fill(1, Side::Buy, "1", "100")]);
    p.apply_venue(&snapshot(PositionPhase::Updated, None, Some("1")), stamp(5, "a"));
    let call = MarginCallEvent {
        account: None,
        symbol: "BTC/USD".into(),
        margin_ratio: Some(d("0.9")),
        maintenance_margin: None,
        mark_price: None,
        liquidation_price: Some(d("80")),
    };
    assert!(p.apply_margin(&call, stamp(6, "m")));
    assert_eq!(
        (p.margin_ratio(), p.mark_price(), p.liquidation_price()),
        (Some(d("0.9")), Some(d("110")), Some(d("80")))
    );
}

#[test]
fn venue_quantity_disagreeing_with_fills_raises_position_mismatch() {
    let mut p = position(vec![fill(1, Side::Buy, "1", "100")]);
    let (_, alert) =
        p.apply_venue(&snapshot(PositionPhase::Updated, Some(PositionSide::Long), Some("1")), stamp(2, "a"));
    assert_eq!(alert, None);
    let (_, alert) =
        p.apply_venue(&snapshot(PositionPhase::Updated, Some(PositionSide::Short), Some("1")), stamp(3, "b"));
    assert_eq!(alert.map(|a| a.kind), Some(AlertKind::PositionMismatch));
    let (_, alert) = p.apply_venue(&snapshot(PositionPhase::Closed, None, Some("1")), stamp(4, "c"));
    assert_eq!(alert.map(|a| a.kind), Some(AlertKind::PositionMismatch), "closed means flat at the venue");
}

#[test]
fn position_without_fills_is_not_reconciled() {
    let mut p = Position::new(&PositionKey { account: None, symbol: "BTC/USD".into() });
    let (taken, alert) =
        p.apply_venue(&snapshot(PositionPhase::Opened, Some(PositionSide::Long), Some("1")), stamp(1, "a"));
    assert!(taken);
    assert_eq!(alert, None);
}

#[test]
fn a_snapshot_without_a_side_keeps_the_newest_side_named_whatever_the_arrival_order() {
    // position.opened says long 2; the later position.updated (seed 001) gives only the quantity.
    let opened = (snapshot(PositionPhase::Opened, Some(PositionSide::Long), Some("2")), stamp(1, "a"));
    let updated = (snapshot(PositionPhase::Updated, None, Some("3")), stamp(2, "b"));
    for order in [[&opened, &updated], [&updated, &opened]] {
        let mut p = position(vec![]);
        for (event, at) in order {
            p.apply_venue(event, at.clone());
        }
        assert_eq!(p.venue_side.as_ref().map(|s| s.1), Some(PositionSide::Long));
        assert_eq!(p.venue_net(), Some(d("3")), "the newest quantity, signed by the newest side named");
    }
    // A newer side wins over an older one, and a closed position is flat.
    let mut p = position(vec![]);
    p.apply_venue(&opened.0, opened.1.clone());
    p.apply_venue(&snapshot(PositionPhase::Updated, Some(PositionSide::Short), Some("1")), stamp(3, "c"));
    p.apply_venue(&snapshot(PositionPhase::Updated, None, Some("4")), stamp(4, "d"));
    assert_eq!(p.venue_net(), Some(d("-4")));
    p.apply_venue(&snapshot(PositionPhase::Closed, None, None), stamp(5, "e"));
    assert_eq!(p.venue_net(), Some(Decimal::ZERO));
}
