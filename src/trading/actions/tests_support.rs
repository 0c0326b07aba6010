//! Test harness: a trading state and a strategy state fed events the way the worker does.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{decide, ActionsConfig, Decided, Decision, IntentOp, OrderIntent, Role, StrategyState};
use crate::trading::{parse_event, CanonicalEvent, TradingState};

/// A decimal from text.
pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// `2024-01-15T10:30:00Z` plus `sec` seconds.
pub(crate) fn t(sec: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(sec)
}

/// A seed-001 envelope at `sec` seconds, parsed.
pub(crate) fn ev(kind: &str, sec: i64, data: Value) -> CanonicalEvent {
    let json = json!({"event": kind, "timestamp": t(sec).to_rfc3339(), "data": data});
    parse_event(&json).unwrap()
}

/// `order.created` of a limit order.
pub(crate) fn created(id: &str, symbol: &str, side: &str, quantity: &str, sec: i64) -> CanonicalEvent {
    ev(
        "order.created",
        sec,
        json!({"orderId": id, "symbol": symbol, "side": side, "type": "limit", "quantity": quantity, "status": "open"}),
    )
}

/// A cumulative fill of `id`.
pub(crate) fn filled(id: &str, cum: &str, average: &str, sec: i64) -> CanonicalEvent {
    ev(
        "order.updated",
        sec,
        json!({"orderId": id, "status": "partially_filled", "filledQuantity": cum, "averagePrice": average}),
    )
}

/// A trading state and strategy state, fed like the worker feeds them.
pub(crate) struct Harness {
    /// Which actions are on.
    pub config: ActionsConfig,
    /// The trading state.
    pub trading: TradingState,
    /// The strategy state.
    pub actions: StrategyState,
    /// Processing time = event time + this lag.
    pub lag: Duration,
    /// The store's order id namespace (`""` unless a test sets one).
    pub namespace: String,
}

impl Harness {
    /// A harness with `config` parsed from JSON.
    pub fn new(config: Value) -> Self {
        let config: ActionsConfig = serde_json::from_value(config).unwrap();
        config.validate().unwrap();
        Harness {
            config,
            trading: TradingState::new(),
            actions: StrategyState::new(),
            lag: Duration::seconds(1),
            namespace: String::new(),
        }
    }

    /// Applies an event, then decides on it; the event key is `key`.
    pub fn feed_as(&mut self, event: &CanonicalEvent, key: &str) -> Decided {
        self.trading.apply(event);
        let now = event.at + self.lag;
        decide(&self.config, &mut self.actions, &self.trading, event, key, &self.namespace, now)
    }

    /// Applies and decides on an event keyed by its type and time.
    pub fn feed(&mut self, event: &CanonicalEvent) -> Decided {
        let key = format!("test:{}@{}:{:?}", event.event_type(), event.at.timestamp(), event.ordering_key());
        self.feed_as(event, &key)
    }

    /// Feeds every event; returns all decisions.
    pub fn feed_all(&mut self, events: &[CanonicalEvent]) -> Vec<Decision> {
        events.iter().flat_map(|e| self.feed(e).decisions).collect()
    }
}

/// The intents among decisions.
pub(crate) fn intents(decisions: &[Decision]) -> Vec<&OrderIntent> {
    decisions.iter().filter_map(Decision::intent).collect()
}

/// `(op, role)` of each intent, for compact assertions.
pub(crate) fn ops(decisions: &[Decision]) -> Vec<(IntentOp, Role)> {
    intents(decisions).iter().map(|i| (i.op, i.role)).collect()
}
