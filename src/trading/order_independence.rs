//! The central guarantee, checked by property: orders and positions come out the same whatever
//! order events arrive in and however often they are repeated.
//!
//! The generator builds a few orders on a few symbols, each with a `created` event, fills as
//! cumulative snapshots, as trade ids or both (running totals first, then trades that carry the
//! running total or not), and sometimes a cancel; it never generates conflicting
//! duplicates (those are first-wins by design and tested in `order_tests`).

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::parse_event;
use super::state::TradingState;

/// One generated order.
#[derive(Debug, Clone)]
struct OrderPlan {
    /// Symbol index (taken modulo the number of symbols).
    symbol: usize,
    /// Buy or sell.
    buy: bool,
    /// Ordered quantity in hundredths.
    quantity: u32,
    /// Fill pieces: quantity in hundredths, price in halves.
    pieces: Vec<(u32, u32)>,
    /// How fills are reported: 0 cumulative snapshots, 1 trade ids, 2 the first piece as a
    /// running total and the rest by trade id (every other one with the running total).
    reporting: u8,
    /// Cancel after this many pieces (clamped), if at all.
    cancel_after: Option<usize>,
    /// Seconds after the base time at which the order is created.
    start: u32,
}

fn order_plan() -> impl Strategy<Value = OrderPlan> {
    (
        0usize..3,
        any::<bool>(),
        1u32..400,
        prop::collection::vec((1u32..200, 100u32..300), 0..4),
        0u8..3,
        prop::option::of(0usize..4),
        0u32..8,
    )
        .prop_map(|(symbol, buy, quantity, pieces, reporting, cancel_after, start)| OrderPlan {
            symbol,
            buy,
            quantity,
            pieces,
            reporting,
            cancel_after,
            start,
        })
}

/// An envelope at `sec` seconds after the base time.
fn envelope(kind: &str, sec: u32, data: Value) -> Value {
    json!({"event": kind, "timestamp": format!("2024-01-15T10:{:02}:{:02}Z", sec / 60, sec % 60), "data": data})
}

/// The events of all plans, in the order they happened.
fn events(plans: &[OrderPlan], symbols: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let id = format!("o{i}");
        let quantity = Decimal::new(plan.quantity.into(), 2);
        out.push(envelope("order.created", plan.start, json!({"orderId": id, "symbol": format!("SYM{}", plan.symbol % symbols),
            "side": if plan.buy { "buy" } else { "sell" }, "type": "limit", "quantity": quantity.to_string()})));
        let (mut cum, mut notional) = (Decimal::ZERO, Decimal::ZERO);
        let cancel_at = plan.cancel_after.map(|n| n.min(plan.pieces.len()));
        for (j, (q, p)) in plan.pieces.iter().enumerate() {
            if cancel_at == Some(j) {
                out.push(envelope("order.cancelled", plan.start + 1 + j as u32, json!({"orderId": id})));
            }
            let (q, p) = (Decimal::new((*q).into(), 2), Decimal::new((*p).into(), 0) / Decimal::TWO);
            let sec = plan.start + 1 + j as u32;
            (cum, notional) = (cum + q, notional + p * q);
            let by_trade = plan.reporting == 1 || (plan.reporting == 2 && j > 0);
            let data = if by_trade {
                let mut data = json!({"orderId": id, "tradeId": format!("{id}-{j}"), "lastQuantity": q.to_string(),
                       "lastPrice": p.to_string(), "commission": "0.01"});
                if plan.reporting == 2 && j % 2 == 1 {
                    data["filledQuantity"] = json!(cum.to_string());
                    data["averagePrice"] = json!((notional / cum).to_string());
                }
                data
            } else {
                let status = if cum >= quantity { "filled" } else { "partially_filled" };
                json!({"orderId": id, "status": status, "filledQuantity": cum.to_string(),
                       "averagePrice": (notional / cum).to_string()})
            };
            out.push(envelope("order.updated", sec, data));
        }
        if cancel_at == Some(plan.pieces.len()) {
            out.push(envelope(
                "order.cancelled",
                plan.start + 1 + plan.pieces.len() as u32,
                json!({"orderId": id}),
            ));
        }
    }
    out
}

/// Applies raw events to a fresh state.
fn fold(raw: &[Value]) -> TradingState {
    let mut state = TradingState::new();
    for json in raw {
        match parse_event(json) {
            Ok(event) => {
                state.apply(&event);
            }
            Err(e) => panic!("generated event does not parse: {e}: {json}"),
        }
    }
    state
}

/// A scenario: plans, number of symbols, an arrival permutation and duplications.
fn scenario() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    (prop::collection::vec(order_plan(), 2..=4), 1usize..=3).prop_flat_map(|(plans, symbols)| {
        let original = events(&plans, symbols);
        let n = original.len();
        let duplicates = prop::collection::vec(0..n, 0..=n);
        (Just(original.clone()), Just(original).prop_shuffle(), duplicates).prop_flat_map(
            |(original, shuffled, duplicates)| {
                let repeats: Vec<Value> = duplicates.iter().map(|&i| shuffled[i].clone()).collect();
                let mut arrived = shuffled;
                arrived.extend(repeats);
                (Just(original), Just(arrived).prop_shuffle())
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_arrival_order_with_duplicates_gives_the_same_orders_and_positions((original, arrived) in scenario()) {
        let expected = fold(&original);
        let got = fold(&arrived);
        for (id, want) in &expected.orders {
            let have = &got.orders[id];
            prop_assert_eq!(
                (have.status, have.filled_quantity, have.average_price, have.overfill_quantity),
                (want.status, want.filled_quantity, want.average_price, want.overfill_quantity),
                "order {}", id
            );
        }
        for (key, want) in &expected.positions {
            let have = &got.positions[key];
            prop_assert_eq!(
                (have.net_quantity, have.average_price, have.realized_pnl),
                (want.net_quantity, want.average_price, want.realized_pnl),
                "position {:?}", key
            );
        }
        // The incrementally derived fills equal a derivation from scratch (a reloaded order).
        for (id, have) in &got.orders {
            let reloaded: super::Order = serde_json::from_value(serde_json::to_value(have).unwrap()).unwrap();
            prop_assert_eq!(have.fills(), reloaded.fills(), "order {}", id);
        }
        // Stronger than the fields above: the whole state, fills and snapshots included.
        prop_assert_eq!(got, expected);
    }
}
