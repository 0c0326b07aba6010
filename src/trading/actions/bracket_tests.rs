//! `bracket_on_fill` behaviour, one test each.

use proptest::prelude::*;
use serde_json::json;

use super::super::tests_support::{created, d, ev, filled, intents, ops, Harness};
use super::super::{IntentOp, Role};
use crate::trading::order::Side;

fn harness() -> Harness {
    Harness::new(json!({"bracket_on_fill": {"stop_loss": "2%", "take_profit": "250"}}))
}

use IntentOp::{Amend, Cancel, Place};
use Role::{StopLoss, TakeProfit};

#[test]
fn filled_entry_gets_a_stop_loss_and_take_profit_at_the_offsets() {
    let mut h = harness();
    h.feed(&created("o1", "BTC/USD", "buy", "1", 0));
    let out = h.feed(&filled("o1", "1", "50000", 1)).decisions;
    assert_eq!(ops(&out), vec![(Place, StopLoss), (Place, TakeProfit)]);
    let legs = intents(&out);
    assert_eq!((legs[0].side, legs[0].quantity, legs[0].stop_price), (Side::Sell, d("1"), Some(d("49000"))));
    assert_eq!((legs[1].side, legs[1].quantity, legs[1].price), (Side::Sell, d("1"), Some(d("50250"))));
    assert!(legs.iter().all(|l| l.reduce_only && l.trigger.event_type == "order.updated"));
}

#[test]
fn same_fill_twice_gives_one_bracket_pair() {
    let mut h = harness();
    h.feed(&created("o1", "BTC/USD", "buy", "1", 0));
    let first = h.feed_as(&filled("o1", "1", "50000", 1), "src:e1").decisions;
    let again = h.feed_as(&filled("o1", "1", "50000", 1), "src:e1").decisions;
    let new_id = h.feed_as(&filled("o1", "1", "50000", 2), "src:e2").decisions;
    assert_eq!(first.len(), 2);
    assert!(again.is_empty() && new_id.is_empty(), "{again:?} {new_id:?}");
}

#[test]
fn three_partial_fills_place_one_pair_amended_to_the_total() {
    let mut h = harness();
    h.feed(&created("o1", "BTC/USD", "buy", "3", 0));
    let out =
        h.feed_all(&[filled("o1", "1", "100", 1), filled("o1", "2", "101", 2), filled("o1", "3", "102", 3)]);
    assert_eq!(
        ops(&out),
        vec![
            (Place, StopLoss),
            (Place, TakeProfit),
            (Amend, StopLoss),
            (Amend, TakeProfit),
            (Amend, StopLoss),
            (Amend, TakeProfit)
        ]
    );
    let all = intents(&out);
    let (sl, last_sl) = (all[0], all[4]);
    assert_eq!(last_sl.target_client_order_id.as_ref(), Some(&sl.client_order_id));
    assert_eq!((last_sl.quantity, last_sl.stop_price), (d("3"), Some(d("99.96"))));
    assert_eq!(all[5].price, Some(d("352")));
    let set = &h.actions.brackets["o1"];
    assert_eq!((set.sized, set.revision), (d("3"), 3));
}

#[test]
fn short_entry_gets_buy_side_brackets_above_and_below() {
    let mut h = harness();
    h.feed(&created("o1", "ETH/USD", "sell", "2", 0));
    let out = h.feed(&filled("o1", "2", "3000", 1)).decisions;
    let legs = intents(&out);
    assert_eq!((legs[0].side, legs[0].stop_price), (Side::Buy, Some(d("3060"))));
    assert_eq!((legs[1].side, legs[1].price), (Side::Buy, Some(d("2750"))));
}

#[test]
fn reduce_only_order_gets_no_brackets() {
    let mut h = harness();
    let out = h.feed_all(&[
        ev(
            "order.created",
            0,
            json!({"orderId": "o1", "symbol": "BTC/USD", "side": "sell", "type": "market",
            "quantity": "1", "reduceOnly": true}),
        ),
        filled("o1", "1", "50000", 1),
    ]);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn liquidation_fill_gets_no_brackets_and_cancels_leftovers_when_flat() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
    let out = h.feed_all(&[
        ev(
            "order.created",
            2,
            json!({"orderId": "liq", "symbol": "BTC/USD", "side": "sell", "type": "market",
            "quantity": "1", "origin": "liquidation"}),
        ),
        filled("liq", "1", "45000", 3),
    ]);
    assert_eq!(ops(&out), vec![(Cancel, StopLoss), (Cancel, TakeProfit)]);
    assert!(h.actions.brackets["o1"].legs.is_none());
}

#[test]
fn bracket_legs_own_fills_get_no_brackets() {
    let mut h = harness();
    let out = h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
    let stop = intents(&out)[0].client_order_id.clone();
    let out = h.feed_all(&[
        ev(
            "order.created",
            2,
            json!({"orderId": "sl", "clientOrderId": stop, "symbol": "BTC/USD", "side": "sell",
            "type": "stop", "quantity": "1"}),
        ),
        filled("sl", "0.5", "49000", 3),
    ]);
    // A partially filled stop-loss is not an entry; the take-profit follows the smaller position.
    assert_eq!(ops(&out), vec![(Amend, TakeProfit)], "{out:?}");
    assert_eq!(intents(&out)[0].quantity, d("0.5"));
}

#[test]
fn stop_loss_filled_cancels_the_take_profit_only() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
    h.feed_all(&[created("o2", "BTC/USD", "buy", "1", 2), filled("o2", "1", "50000", 3)]);
    let stop = h.actions.brackets["o1"].legs.clone().unwrap().stop_loss;
    let take = h.actions.brackets["o1"].legs.clone().unwrap().take_profit;
    let out = h.feed_all(&[
        ev(
            "order.created",
            4,
            json!({"orderId": "sl", "clientOrderId": stop, "symbol": "BTC/USD", "side": "sell",
            "type": "stop", "quantity": "1", "reduceOnly": true}),
        ),
        ev(
            "order.updated",
            5,
            json!({"orderId": "sl", "status": "filled", "filledQuantity": "1", "averagePrice": "49000"}),
        ),
    ]);
    assert_eq!(ops(&out), vec![(Cancel, TakeProfit)]);
    assert_eq!(intents(&out)[0].target_client_order_id, Some(take));
    assert!(h.actions.brackets["o2"].legs.is_some(), "the other entry keeps its legs");
}

#[test]
fn position_closed_snapshot_cancels_leftover_brackets_once() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
    let closed = ev("position.closed", 5, json!({"symbol": "BTC/USD", "side": "long", "quantity": "1"}));
    assert_eq!(ops(&h.feed(&closed).decisions), vec![(Cancel, StopLoss), (Cancel, TakeProfit)]);
    assert!(h.feed(&closed).decisions.is_empty());
    assert!(
        h.feed(&filled("o1", "1", "50000", 1)).decisions.is_empty(),
        "a late duplicate fill re-places nothing"
    );
}

#[test]
fn closed_out_entries_are_forgotten_a_week_after_their_last_change() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "50000", 1)]);
    let closed = ev("position.closed", 5, json!({"symbol": "BTC/USD", "side": "long", "quantity": "1"}));
    h.feed(&closed);
    h.feed_all(&[created("o2", "BTC/USD", "buy", "2", 6), filled("o2", "1", "50000", 7)]);
    h.lag = chrono::Duration::days(8);
    let out = h.feed_all(&[created("o3", "BTC/USD", "sell", "2", 8), filled("o3", "2", "50000", 9)]);
    assert_eq!(ops(&out), vec![(Cancel, StopLoss), (Cancel, TakeProfit)], "o2's legs, the position is flat");
    assert!(!h.actions.brackets.contains_key("o1"), "closed out and over for a week");
    assert!(h.actions.brackets.contains_key("o2"), "still working: a later fill gets a new pair");
}

#[test]
fn fill_before_order_created_is_bracketed_once_the_order_is_known() {
    let mut h = harness();
    assert!(h.feed(&filled("o1", "1", "50000", 1)).decisions.is_empty());
    let out = h.feed(&created("o1", "BTC/USD", "buy", "1", 0)).decisions;
    assert_eq!(ops(&out), vec![(Place, StopLoss), (Place, TakeProfit)]);
}

#[test]
fn closing_order_without_reduce_only_gets_no_brackets_and_shrinks_the_entrys_legs() {
    let mut h = harness();
    h.feed_all(&[created("o1", "BTC/USD", "buy", "2", 0), filled("o1", "2", "100", 1)]);
    let out = h.feed_all(&[created("o2", "BTC/USD", "sell", "1", 2), filled("o2", "1", "110", 3)]);
    assert_eq!(ops(&out), vec![(Amend, StopLoss), (Amend, TakeProfit)], "{out:?}");
    assert!(intents(&out).iter().all(|i| i.quantity == d("1")));
}

#[test]
fn legs_shrink_with_a_reduction_and_do_not_grow_back_on_a_repeated_fill() {
    // Failed before: after a reduce-only reduction to 0.5 the legs stayed 2 (a stop filling 2
    // would leave a short of 1.5).
    let mut h = harness();
    h.feed_all(&[created("o1", "X", "buy", "2", 0), filled("o1", "2", "10", 1)]);
    let reduce = ev(
        "order.created",
        2,
        json!({"orderId": "mg", "symbol": "X", "side": "sell", "type": "market", "quantity": "1.5",
            "reduceOnly": true}),
    );
    let out = h.feed_all(&[reduce, filled("mg", "1.5", "10", 3)]);
    assert_eq!(ops(&out), vec![(Amend, StopLoss), (Amend, TakeProfit)]);
    let legs = intents(&out);
    assert!(legs.iter().all(|l| l.quantity == d("0.5") && l.side == Side::Sell && l.reduce_only));
    assert_eq!(h.actions.brackets["o1"].sized, d("0.5"));
    assert!(h.feed(&filled("o1", "2", "10", 1)).decisions.is_empty(), "a repeated entry fill");
    // A new fill of the entry grows them by what it adds.
    let out = h.feed_all(&[filled("o1", "2.5", "10", 4)]);
    assert_eq!(intents(&out).iter().map(|l| l.quantity).collect::<Vec<_>>(), vec![d("1"), d("1")]);
}

#[test]
fn legs_of_two_entries_share_a_shrunk_position_in_entry_order() {
    let mut h = harness();
    h.feed_all(&[created("o1", "X", "buy", "1", 0), filled("o1", "1", "10", 1)]);
    h.feed_all(&[created("o2", "X", "buy", "1", 2), filled("o2", "1", "10", 3)]);
    // Long 1.5: o1 keeps its 1, o2 gets the 0.5 left.
    let out = h.feed_all(&[created("c1", "X", "sell", "0.5", 4), filled("c1", "0.5", "10", 5)]);
    assert_eq!(ops(&out), vec![(Amend, StopLoss), (Amend, TakeProfit)]);
    assert!(intents(&out).iter().all(|l| l.quantity == d("0.5") && l.reason.contains("order o2")));
    assert_eq!((h.actions.brackets["o1"].sized, h.actions.brackets["o2"].sized), (d("1"), d("0.5")));
    // Long 0.5: o1 is cut to 0.5, o2's legs are cancelled.
    let out = h.feed_all(&[created("c2", "X", "sell", "1", 6), filled("c2", "1", "10", 7)]);
    assert_eq!(
        ops(&out),
        vec![(Amend, StopLoss), (Amend, TakeProfit), (Cancel, StopLoss), (Cancel, TakeProfit)]
    );
    assert_eq!((h.actions.brackets["o1"].sized, h.actions.brackets["o2"].legs.is_none()), (d("0.5"), true));
}

#[test]
fn client_ids_are_identical_when_the_same_events_run_again_from_fresh_state() {
    let events = [
        created("o1", "BTC/USD", "buy", "2", 0),
        filled("o1", "1", "100", 1),
        filled("o1", "2", "100.5", 2),
        ev("position.closed", 3, json!({"symbol": "BTC/USD", "side": "long", "quantity": "2"})),
    ];
    let first = harness().feed_all(&events);
    let second = harness().feed_all(&events);
    assert_eq!(first.len(), 6);
    assert_eq!(first, second);
}

/// Fill steps of one entry: cumulative quantities in tenths, each priced 100 + step.
fn fill_events(steps: &[u32]) -> Vec<crate::trading::CanonicalEvent> {
    let mut cum = 0;
    let mut out = vec![created("o1", "BTC/USD", "buy", "100", 0)];
    for (i, step) in steps.iter().enumerate() {
        cum += step;
        let cum = rust_decimal::Decimal::new(cum.into(), 1).to_string();
        out.push(filled("o1", &cum, "100", i as i64 + 1));
    }
    out
}

proptest! {
    #[test]
    fn duplicated_fills_give_the_same_final_brackets(
        steps in prop::collection::vec(1u32..50, 1..6),
        dups in prop::collection::vec((0usize..6, any::<bool>()), 0..8),
    ) {
        let original = fill_events(&steps);
        let mut arrived = Vec::new();
        for (i, event) in original.iter().enumerate() {
            arrived.push(event.clone());
            for _ in dups.iter().filter(|&&(d, late)| d == i && !late) {
                arrived.push(event.clone());
            }
        }
        // Late repeats: an older cumulative fill delivered again after newer ones.
        for (i, _) in dups.iter().filter(|(_, late)| *late) {
            if let Some(event) = original.get(*i) {
                arrived.push(event.clone());
            }
        }
        let (mut once, mut twice) = (harness(), harness());
        let a = once.feed_all(&original);
        let b = twice.feed_all(&arrived);
        prop_assert_eq!(&once.actions.brackets, &twice.actions.brackets);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(intents(&a).iter().filter(|i| i.op == Place).count(), 2);
    }
}
