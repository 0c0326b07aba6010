//! Strategy actions (issue 5): the pure decisions that turn trading events into order intents.
//!
//! The worker calls [`decide`] right after `TradingState::apply` for each event, in the same
//! processing transaction, stores the returned [`Decision`]s and the [`StrategyState`] keys named
//! in [`Decided::touched`]. No I/O, no clock: the caller passes `now` (the processing time), used
//! only for the age checks, the per-minute limit and the maintenance kill switch.
//!
//! Idempotency: every intent's client order id is a hash of what it is about (see
//! [`client_order_id`]), and the state remembers what was already decided (bracket sizes,
//! guard episodes, counted placements), so a repeated event decides nothing new and a replay
//! from fresh state decides the same ids.
//!
//! - `intent`: intents, refusals, client order ids. `config`: what a route enables.
//! - `state`: what the actions remember; `documents`: it as stored, one document per key. `bracket`, `signal_order`, `margin_guard`: the actions.

mod bracket;
pub mod config;
pub mod documents;
pub mod intent;
mod margin_guard;
mod signal_order;
pub mod state;

#[cfg(test)]
mod tests_support;

use chrono::{DateTime, Utc};

pub use config::{ActionsConfig, BracketConfig, MarginGuardConfig, Offset, SignalConfig};
pub use documents::{StrategyDoc, StrategyDocKind};
pub use intent::{
    client_order_id, ActionName, Decision, IntentOp, OrderIntent, OrderType, Refusal, Role, Trigger,
};
pub use state::{
    guard_key, AwaitingEntry, BracketLegs, BracketSet, GuardEpisode, KillSwitch, Placement, PricePoint,
    StrategyState, StrategyTouched,
};

use super::event::{CanonicalEvent, EventKind};
use super::position::PositionKey;
use super::state::TradingState;

/// What deciding on one event gave: the decisions to store and the state keys to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decided {
    /// Intents and refusals, in the order decided.
    pub decisions: Vec<Decision>,
    /// The parts of the strategy state that changed.
    pub touched: StrategyTouched,
}

/// The inputs every action reads for one event.
pub(crate) struct Context<'a> {
    /// The trading state, after the event was applied.
    pub trading: &'a TradingState,
    /// The event.
    pub event: &'a CanonicalEvent,
    /// The event as a trigger (stable key, with the namespace, and type).
    pub trigger: Trigger,
    /// The store's order id namespace, for ids that do not derive from the trigger.
    pub namespace: &'a str,
    /// Processing time.
    pub now: DateTime<Utc>,
}

/// `subject` in the store's order id namespace (itself without one: ids of older stores).
pub(crate) fn namespaced(namespace: &str, subject: &str) -> String {
    match namespace {
        "" => subject.to_owned(),
        namespace => format!("{namespace}/{subject}"),
    }
}

/// Runs every enabled action on one event already applied to `trading`; `event_key` is the
/// stored event's stable identity within its store, `namespace` the store's (see
/// `Store::order_id_namespace`; every client order id derives from it too), `now` the
/// processing time.
pub fn decide(
    config: &ActionsConfig,
    actions: &mut StrategyState,
    trading: &TradingState,
    event: &CanonicalEvent,
    event_key: &str,
    namespace: &str,
    now: DateTime<Utc>,
) -> Decided {
    let trigger =
        Trigger { key: namespaced(namespace, event_key), event_type: event.event_type().to_owned() };
    let cx = Context { trading, event, trigger, namespace, now };
    let mut out = Decided::default();
    remember_price(actions, &cx, &mut out.touched);
    if let Some(bracket) = &config.bracket_on_fill {
        bracket::decide(bracket, actions, &cx, &mut out);
    }
    if let Some(guard) = &config.margin_guard {
        margin_guard::decide(guard, actions, &cx, &mut out);
    }
    if let Some(signal) = &config.signal_to_order {
        signal_order::decide(signal, actions, &cx, &mut out);
    }
    out
}

/// Keeps the newest price per symbol: signal prices, fill prices and mark prices.
fn remember_price(actions: &mut StrategyState, cx: &Context<'_>, touched: &mut StrategyTouched) {
    let at = cx.event.at;
    match &cx.event.kind {
        EventKind::Signal(s) => {
            if let Some(price) = s.price {
                actions.see_price(&s.symbol, price, at, touched);
            }
        }
        EventKind::Order(o) => {
            if o.trade.is_none() && o.filled_quantity.is_none() {
                return;
            }
            // The order's newest execution (for cumulative sources, the increment's price, not
            // the average), found through the position's count of the order's fills: O(1) fills.
            let Some(order) = cx.trading.orders.get(&o.order_id) else { return };
            let Some(symbol) = order.symbol.as_deref() else { return };
            let key = PositionKey { account: order.account.clone(), symbol: symbol.to_owned() };
            let count = cx.trading.positions.get(&key).map_or(0, |p| p.order_fill_count(&order.order_id));
            if let Some(fill) = order.fills_from(count.saturating_sub(1)).last() {
                actions.see_price(symbol, fill.price, fill.at, touched);
            }
        }
        EventKind::Position(p) => {
            if let Some(mark) = p.mark_price {
                actions.see_price(&p.symbol, mark, at, touched);
            }
        }
        EventKind::MarginCall(m) => {
            if let Some(mark) = m.mark_price {
                actions.see_price(&m.symbol, mark, at, touched);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::tests_support::{created, d, ev, filled, Harness};

    #[test]
    fn last_price_follows_the_newest_fill_signal_or_mark_price() {
        let mut h = Harness::new(json!({}));
        h.feed_all(&[
            created("o1", "BTC/USD", "buy", "2", 0),
            filled("o1", "1", "100", 1),
            filled("o1", "2", "101", 2),
        ]);
        assert_eq!(h.actions.last_price("BTC/USD"), Some(d("102")), "the increment's price, not the average");
        h.feed(&ev("position.updated", 3, json!({"symbol": "BTC/USD", "markPrice": "103"})));
        assert_eq!(h.actions.last_price("BTC/USD"), Some(d("103")));
        let touched =
            h.feed(&ev("signal.generated", 1, json!({"symbol": "BTC/USD", "action": "buy", "price": "99"})));
        assert_eq!(
            h.actions.last_price("BTC/USD"),
            Some(d("103")),
            "an older price does not replace a newer one"
        );
        assert!(touched.touched.prices.is_empty());
    }

    #[test]
    fn kill_switch_reports_a_change_only_when_it_flips() {
        let mut h = Harness::new(json!({}));
        assert!(h.actions.set_kill_switch(true).kill_switch);
        assert!(h.actions.set_kill_switch(true).is_empty());
        assert!(h.actions.set_kill_switch(false).kill_switch);
    }

    #[test]
    fn no_action_configured_decides_nothing() {
        let mut h = Harness::new(json!({}));
        let out = h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "100", 1)]);
        assert!(out.is_empty());
    }

    #[test]
    fn decisions_and_state_round_trip_through_json() {
        let mut h = Harness::new(json!({"bracket_on_fill": {"stop_loss": "1%", "take_profit": "2%"}}));
        let out = h.feed_all(&[created("o1", "BTC/USD", "buy", "1", 0), filled("o1", "1", "100", 1)]);
        let text = serde_json::to_string(&out).unwrap();
        assert!(text.contains("\"clientOrderId\"") && text.contains("\"stopPrice\":\"99\""), "{text}");
        assert_eq!(serde_json::from_str::<Vec<super::Decision>>(&text).unwrap(), out);
        let state = serde_json::to_string(&h.actions).unwrap();
        assert_eq!(serde_json::from_str::<super::StrategyState>(&state).unwrap(), h.actions);
    }
}
