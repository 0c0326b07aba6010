//! The strategy actions inside processing: after an event is applied to the trading state, the
//! actions its routes name decide order intents, and those intents, the refusals and the changed
//! parts of the actions' own state join the same processed batch.
//!
//! So an intent is recorded (and queued for the broker) exactly when its triggering event is
//! marked processed; a crash before the commit decides it again from the same state, to the same
//! deterministic client order id, which the store keeps once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use rust_decimal::Decimal;

use crate::store::{EntityChange, EntityKind, NewDelivery, NewIntent};
use crate::trading::actions::{
    decide, AwaitingEntry, Decided, Decision, IntentOp, OrderIntent, StrategyDoc, StrategyState,
};
use crate::trading::{ActionsConfig, CanonicalEvent, TradingState};
use crate::trading::{OrderStatus, Side};

const BRACKET_ON_FILL: usize = 1;
const SIGNAL_TO_ORDER: usize = 2;
const MARGIN_GUARD: usize = 4;

/// The set of actions `names` names, as bits.
fn action_mask(names: &[&str]) -> usize {
    names.iter().fold(0, |mask, name| {
        mask | match *name {
            "bracket_on_fill" => BRACKET_ON_FILL,
            "signal_to_order" => SIGNAL_TO_ORDER,
            "margin_guard" => MARGIN_GUARD,
            _ => 0,
        }
    })
}

/// The actions' configuration and memory, owned by the worker.
#[derive(Debug, Clone, Default)]
pub struct Strategy {
    /// What the actions remember between events.
    pub state: StrategyState,
    /// The configuration as each set of route-named actions sees it, by [`action_mask`]: only
    /// the named actions on. Made once, so deciding clones no configuration.
    configs: [ActionsConfig; 8],
    /// Where intents are queued (`broker:paper`, `broker:http`), if a broker is configured.
    broker: Option<&'static str>,
    /// Resting paper orders already sent their fill (until it comes back as an event).
    triggered: BTreeSet<String>,
    /// The store's order id namespace (see `Store::order_id_namespace`).
    pub namespace: String,
}

impl Strategy {
    /// The actions with their stored state (rows of the `state` table; other kinds are skipped).
    pub fn load(
        rows: impl IntoIterator<Item = (String, String, String)>,
        config: ActionsConfig,
        broker: Option<&'static str>,
    ) -> Result<Strategy, String> {
        Ok(Strategy {
            state: StrategyState::from_documents(rows)?,
            configs: std::array::from_fn(|mask| ActionsConfig {
                bracket_on_fill: config.bracket_on_fill.clone().filter(|_| mask & BRACKET_ON_FILL != 0),
                signal_to_order: config.signal_to_order.clone().filter(|_| mask & SIGNAL_TO_ORDER != 0),
                margin_guard: config.margin_guard.clone().filter(|_| mask & MARGIN_GUARD != 0),
            }),
            broker,
            triggered: BTreeSet::new(),
            namespace: String::new(),
        })
    }

    /// Whether `signal_to_order` is configured and its intents go to a broker (so some may be
    /// waiting for it: see `StrategyState::awaiting_broker`).
    pub fn places_signal_orders(&self) -> bool {
        self.broker.is_some() && self.configs[SIGNAL_TO_ORDER].signal_to_order.is_some()
    }

    /// Takes the store's `signal_to_order` intents waiting for the broker ((client order id,
    /// recorded intent)) as the entries that count against `max_position` until it takes them.
    pub fn follow_awaiting_broker(&mut self, rows: Vec<(String, String)>) {
        self.state.awaiting_broker = rows
            .into_iter()
            .filter_map(|(id, doc)| {
                let intent: OrderIntent = serde_json::from_str(&doc).ok()?;
                let entry = intent.op == IntentOp::Place && intent.role.is_entry() && !intent.reduce_only;
                let quantity = intent.side.signed(intent.quantity);
                entry.then_some((id, AwaitingEntry { symbol: intent.symbol, quantity }))
            })
            .collect();
    }

    /// Runs the actions named in `names` on an applied event; `None` when none is named.
    pub fn decide(
        &mut self,
        names: &[&str],
        trading: &TradingState,
        event: &CanonicalEvent,
        seq: i64,
    ) -> Option<Decided> {
        if names.is_empty() {
            return None;
        }
        let config = &self.configs[action_mask(names)];
        // Client order ids derive from the trigger (unique in the store) and the namespace
        // (unique across stores).
        let key = crate::store::event_id(seq);
        Some(decide(config, &mut self.state, trading, event, &key, &self.namespace, Utc::now()))
    }

    /// The intents and refusals of `decided` as rows to record, and its state documents.
    pub fn rows(
        &self,
        decided: Decided,
        trading: &TradingState,
        seq: i64,
        documents: &mut BTreeMap<(EntityKind, String), EntityChange>,
    ) -> Result<Vec<NewIntent>, serde_json::Error> {
        let mut intents = Vec::with_capacity(decided.decisions.len());
        for decision in decided.decisions {
            intents.push(self.row(decision, trading, seq)?);
        }
        for doc in self.state.documents(&decided.touched)? {
            push(documents, doc);
        }
        Ok(intents)
    }

    fn row(&self, decision: Decision, trading: &TradingState, seq: i64) -> Result<NewIntent, serde_json::Error> {
        Ok(match decision {
            Decision::Intent(intent) => {
                let mut doc = serde_json::to_value(&intent)?;
                // The paper broker fills market orders at the last price tradehook knew, and
                // reduce-only ones at most up to the position (see `broker::paper`).
                if let Some(price) = self.state.last_price(&intent.symbol) {
                    doc["referencePrice"] = serde_json::Value::String(price.to_string());
                }
                if intent.reduce_only && self.broker == Some("broker:paper") {
                    let position = self.reducible(trading, &intent.account, &intent.symbol, &intent.client_order_id);
                    doc["positionQuantity"] = serde_json::Value::String(position.to_string());
                }
                NewIntent {
                    seq,
                    client_order_id: intent.client_order_id.clone(),
                    action: intent.action.as_str().to_owned(),
                    symbol: Some(intent.symbol.clone()),
                    doc: doc.to_string(),
                    refused: None,
                    broker: self.broker.map(str::to_owned),
                }
            }
            Decision::Refused(refusal) => NewIntent {
                seq,
                // One refusal per action and trigger: a replay records it once.
                client_order_id: format!("refused:{}:{}", refusal.action.as_str(), refusal.trigger.key),
                action: refusal.action.as_str().to_owned(),
                symbol: Some(refusal.symbol.clone()),
                doc: serde_json::to_string(&refusal)?,
                refused: Some(refusal.reason.clone()),
                broker: None,
            },
        })
    }

    /// The paper broker's resting orders on the symbols of `decided` whose price moved, that the
    /// new price crosses: a buy limit at or above it, a sell limit at or below it, a sell stop at
    /// or above it, a buy stop at or below it. Each becomes a fill for the paper broker to report
    /// (at the limit, or at the price for stops), queued with the event that moved the price.
    pub fn paper_fills(&mut self, decided: &Decided, trading: &TradingState, seq: i64) -> Vec<NewDelivery> {
        if self.broker != Some("broker:paper") {
            return Vec::new();
        }
        // Forget triggers whose fill came back (the order is no longer open).
        self.triggered.retain(|id| {
            trading
                .orders
                .get(id)
                .is_some_and(|o| matches!(o.status, OrderStatus::Pending | OrderStatus::Open))
        });
        let mut out = Vec::new();
        for symbol in &decided.touched.prices {
            let Some(price) = self.state.last_price(symbol) else { continue };
            let resting =
                trading.orders.range("paper-".to_owned()..).take_while(|(id, _)| id.starts_with("paper-"));
            for (id, order) in resting {
                let open = matches!(order.status, OrderStatus::Pending | OrderStatus::Open);
                if !open || order.symbol.as_deref() != Some(symbol) || self.triggered.contains(id) {
                    continue;
                }
                let (Some(side), Some(level), Some(kind), Some(quantity)) =
                    (order.side, order.price, order.order_type.as_deref(), order.quantity)
                else {
                    continue;
                };
                let fill_at = match (kind, side) {
                    ("limit", Side::Buy) if price <= level => level,
                    ("limit", Side::Sell) if price >= level => level,
                    ("stop", Side::Sell) if price <= level => price,
                    ("stop", Side::Buy) if price >= level => price,
                    _ => continue,
                };
                // Reduce-only: like a venue, never fill what would not reduce the position (the
                // event that moved the price may have closed it, e.g. a liquidation).
                if order.reduce_only && !reduces(trading, order, side) {
                    continue;
                }
                let client = order
                    .client_order_id
                    .clone()
                    .unwrap_or_else(|| id.trim_start_matches("paper-").to_owned());
                let position = self.reducible(trading, &order.account, symbol, &client);
                let fill = serde_json::json!({ "op": "fill", "clientOrderId": client, "symbol": symbol,
                    "side": side, "quantity": quantity.to_string(), "fillPrice": fill_at.to_string(),
                    "reduceOnly": order.reduce_only, "positionQuantity": position.to_string() });
                self.triggered.insert(id.clone());
                out.push(NewDelivery {
                    seq,
                    target: "broker:paper".into(),
                    webhook_id: None,
                    held: false,
                    payload: Some(bytes::Bytes::from(fill.to_string())),
                });
            }
        }
        out
    }

    /// The position of `account` and `symbol` a reduce-only paper order `own` may reduce, as a
    /// venue would see it when it executes: net of the reduce-only orders already on their way
    /// to the paper broker — the closes and reductions of the last minute, and the resting legs
    /// the price triggered whose fill has not come back. So two exits decided before the first
    /// one's fill returns (a stop-loss the price ran through and a margin reduction, say) never
    /// flip the position between them.
    fn reducible(&self, trading: &TradingState, account: &Option<String>, symbol: &str, own: &str) -> Decimal {
        let net = net_position(trading, account.clone(), symbol);
        let closing = self.state.reductions_on_their_way(trading, Utc::now(), own, account, symbol, net);
        let triggered = self
            .triggered
            .iter()
            .filter_map(|id| trading.orders.get(id))
            .filter(|o| o.reduce_only && o.client_order_id.as_deref() != Some(own))
            .filter(|o| &o.account == account && o.symbol.as_deref() == Some(symbol))
            .map(|o| {
                let open = o.quantity.unwrap_or_default().saturating_sub(o.filled_quantity).max(Decimal::ZERO);
                o.side.map_or(open, |side| side.signed(open))
            })
            .fold(Decimal::ZERO, Decimal::saturating_add);
        // Sells take off a long, buys a short.
        let taken = closing.saturating_add(if net > Decimal::ZERO { -triggered } else { triggered }.max(Decimal::ZERO));
        if net > Decimal::ZERO {
            net.saturating_sub(taken).max(Decimal::ZERO)
        } else {
            net.saturating_add(taken).min(Decimal::ZERO)
        }
    }

    /// Forgets which resting paper orders were sent a fill: after a failed or rolled-back round
    /// those fills may not have been committed, so they are decided again.
    pub fn forget_triggers(&mut self) {
        self.triggered.clear();
    }

    /// Follows the stored manual kill switch; the documents to save when it changed.
    pub fn follow_kill_switch(&mut self, on: bool) -> Result<Vec<EntityChange>, serde_json::Error> {
        if self.state.kill_switch.manual == on {
            return Ok(Vec::new());
        }
        let touched = self.state.set_kill_switch(on);
        let mut documents = BTreeMap::new();
        for doc in self.state.documents(&touched)? {
            push(&mut documents, doc);
        }
        Ok(documents.into_values().collect())
    }
}

fn push(documents: &mut BTreeMap<(EntityKind, String), EntityChange>, doc: StrategyDoc) {
    let kind = EntityKind::Strategy(doc.kind);
    documents.insert((kind, doc.key.clone()), EntityChange { kind, key: doc.key, doc: doc.doc });
}

/// The fill-derived net position of `account` on `symbol` (0 when there is none).
fn net_position(trading: &TradingState, account: Option<String>, symbol: &str) -> rust_decimal::Decimal {
    let key = crate::trading::PositionKey { account, symbol: symbol.to_owned() };
    trading.positions.get(&key).map(|p| p.net_quantity).unwrap_or_default()
}

/// Whether an order on `side` reduces the open position of its account and symbol.
fn reduces(trading: &TradingState, order: &crate::trading::Order, side: Side) -> bool {
    let Some(symbol) = order.symbol.as_deref() else { return false };
    let net = net_position(trading, order.account.clone(), symbol);
    match side {
        Side::Sell => net > rust_decimal::Decimal::ZERO,
        Side::Buy => net < rust_decimal::Decimal::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trading::parse_event;

    fn event(kind: &str, sec: u32, data: serde_json::Value) -> CanonicalEvent {
        parse_event(&json!({"event": kind, "timestamp": format!("2024-01-15T10:30:{sec:02}Z"), "data": data})).unwrap()
    }

    fn leg(id: &str, kind: &str, level: u32) -> CanonicalEvent {
        event(
            "order.created",
            2,
            json!({"orderId": format!("paper-{id}"), "clientOrderId": id, "symbol": "BTCUSDT", "side": "sell",
                "type": kind, "quantity": "1", "price": level.to_string(), "status": "open", "reduceOnly": true}),
        )
    }

    /// Long 1 with a stop-loss at 98 and a take-profit at 104 resting on the paper broker; the
    /// mark jumps to 105 (take-profit triggered) and, before that fill comes back, to 90 (stop
    /// triggered). The second fill may reduce nothing: the paper broker, like a venue, must not
    /// let the two flip the position. Before, each was capped at the position alone (1), and the
    /// account ended short 1.
    #[test]
    fn paper_exits_triggered_before_the_first_fill_returns_never_flip_the_position() {
        let config: ActionsConfig = serde_json::from_value(json!({"margin_guard": {"threshold": "0.99",
            "rearm_below": "0.5", "reduce_fraction": "0.5", "max_alert_age": "3650d"}}))
        .unwrap();
        let mut strategy = Strategy::load(Vec::new(), config, Some("broker:paper")).unwrap();
        let mut trading = TradingState::new();
        for e in [
            event("order.created", 0, json!({"orderId": "e1", "symbol": "BTCUSDT", "side": "buy", "type": "market",
                "quantity": "1", "status": "open"})),
            event("order.updated", 1, json!({"orderId": "e1", "status": "filled", "filledQuantity": "1", "averagePrice": "100"})),
            leg("sl", "stop", 98),
            leg("tp", "limit", 104),
        ] {
            trading.apply(&e);
        }
        let mut position_quantities = Vec::new();
        for (sec, mark) in [(3, "105"), (4, "90")] {
            let moved = event("position.updated", sec, json!({"symbol": "BTCUSDT", "side": "long", "quantity": "1",
                "markPrice": mark, "marginRatio": "0.1"}));
            trading.apply(&moved);
            let decided = strategy.decide(&["margin_guard"], &trading, &moved, i64::from(sec)).unwrap();
            for fill in strategy.paper_fills(&decided, &trading, i64::from(sec)) {
                let fill: serde_json::Value = serde_json::from_slice(&fill.payload.unwrap()).unwrap();
                position_quantities.push((fill["clientOrderId"].clone(), fill["positionQuantity"].clone()));
            }
        }
        assert_eq!(position_quantities, [(json!("tp"), json!("1")), (json!("sl"), json!("0"))]);

        // A margin reduction decided now (the fills still out) has nothing left to reduce either.
        let call = event("account.margin_call", 5, json!({"symbol": "BTCUSDT", "marginRatio": "0.995"}));
        trading.apply(&call);
        let decided = strategy.decide(&["margin_guard"], &trading, &call, 5).unwrap();
        let rows = strategy.rows(decided, &trading, 5, &mut BTreeMap::new()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&rows[0].doc).unwrap();
        assert_eq!((doc["role"].as_str(), doc["positionQuantity"].as_str()), (Some("reduce"), Some("0")));
    }
}
