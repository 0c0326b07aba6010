//! One stored event through the pure core: parse by the source's format, compute its ordering
//! key, apply it to the trading state, and say which entities changed.
//!
//! No I/O here. A schema error is final (the event is set aside, state untouched); only a panic
//! inside the core is treated as retriable, since it may be a bug fixed by a later release.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Format, SourceConfig};
use crate::delivery::route::EventFacts;
use crate::store::{EntityChange, EntityKind, NewAlert, PendingEvent};
use crate::trading::fill::{Snapshot, Trade};
use crate::trading::{
    parse_event, parse_tradingview, Applied, CanonicalEvent, FactKey, Order, TradingState, TradingViewMapping,
};

/// How one source's events are read.
#[derive(Debug, Clone)]
pub struct SourceRules {
    /// Payload format.
    pub format: Format,
    /// TradingView field mapping.
    pub tradingview: TradingViewMapping,
    /// JSON pointers tried for the ordering key before the canonical one.
    pub ordering_key: Vec<String>,
    /// How far an event's own time may be ahead of its arrival: the source's clock `tolerance`,
    /// at least the default 300 s.
    pub max_ahead: TimeDelta,
}

impl SourceRules {
    /// Rules for every configured source, by name, plus the paper broker's own order events
    /// (source `paper`, seed 001 format) unless a source of that name is configured.
    pub fn from_config(sources: &[SourceConfig]) -> HashMap<String, SourceRules> {
        let mut rules: HashMap<String, SourceRules> = sources
            .iter()
            .map(|s| {
                let rules = SourceRules {
                    format: s.format,
                    tradingview: s.tradingview.clone().unwrap_or_default(),
                    ordering_key: s.ordering_key.clone(),
                    // Never under the default: a tolerance tightened against replayed
                    // signatures must not dead-letter a venue whose clock is seconds fast.
                    max_ahead: time_delta(s.tolerance.max(crate::config::default_tolerance())),
                };
                (s.name.clone(), rules)
            })
            .collect();
        rules.entry(crate::broker::PAPER_SOURCE.to_owned()).or_insert_with(|| SourceRules {
            format: Format::Vibetrading,
            tradingview: TradingViewMapping::default(),
            ordering_key: Vec::new(),
            max_ahead: time_delta(crate::config::default_tolerance()),
        });
        rules
    }
}

/// What reading an event gave.
#[derive(Debug)]
pub enum Parsed {
    /// A canonical event for the trading state, with its ordering key.
    Trading(Box<CanonicalEvent>, Option<String>),
    /// Valid, but nothing for the trading state (a `generic` source), with its ordering key.
    Passive(Option<String>),
}

/// Parses a stored event according to its source's rules; `Err` is a schema error (final).
pub fn parse(rules: Option<&SourceRules>, event: &PendingEvent) -> Result<Parsed, String> {
    read(rules, event, false).map(|(parsed, _)| parsed)
}

/// Like [`parse`], also returning what routing needs to know (type, source, symbol, status)
/// when `routing` is set; otherwise the facts are left empty, off the hot path.
pub fn read(
    rules: Option<&SourceRules>,
    event: &PendingEvent,
    routing: bool,
) -> Result<(Parsed, EventFacts), String> {
    let Some(rules) = rules else {
        return Err(format!("source `{}` is not configured any more; replay it once it is", event.source));
    };
    // Numbers an f64 cannot hold are read from their text (an 18-decimal amount stays exact).
    let body = crate::trading::exact_numbers(&event.body);
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))?;
    let custom_key = rules.ordering_key.iter().find_map(|pointer| json.pointer(pointer).and_then(key_text));
    let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    let mut facts = if routing {
        EventFacts {
            event_type: text("/event"),
            source: event.source.clone(),
            symbol: text("/data/symbol"),
            status: text("/data/status"),
        }
    } else {
        EventFacts::default()
    };
    let received = DateTime::<Utc>::from_timestamp_millis(event.received_at).unwrap_or_default();
    match rules.format {
        Format::Generic => Ok((Parsed::Passive(custom_key), facts)),
        Format::Vibetrading => {
            let canonical = parse_event(&json).map_err(|e| e.to_string())?;
            not_ahead(&canonical, rules, received)?;
            let key = custom_key.or_else(|| canonical.ordering_key().map(str::to_owned));
            Ok((Parsed::Trading(Box::new(canonical), key), facts))
        }
        Format::Tradingview => {
            let mut canonical =
                parse_tradingview(&json, &rules.tradingview, received).map_err(|e| e.to_string())?;
            // An alert has no id of its own: it is known by the id its acknowledgement gave.
            canonical.id = Some(crate::store::event_id(event.seq));
            not_ahead(&canonical, rules, received)?;
            if routing {
                facts.event_type = Some(canonical.event_type().to_owned());
                if let crate::trading::EventKind::Signal(signal) = &canonical.kind {
                    facts.symbol = Some(signal.symbol.clone());
                }
            }
            let key = custom_key.or_else(|| canonical.ordering_key().map(str::to_owned));
            Ok((Parsed::Trading(Box::new(canonical), key), facts))
        }
    }
}

/// Refuses an event timed further ahead of its arrival than the source's clock tolerance: under
/// newest-wins it would outrank every real update until its date (a position's mark, a balance,
/// the price stops trigger on), and a signal from the future passes any age check.
fn not_ahead(canonical: &CanonicalEvent, rules: &SourceRules, received: DateTime<Utc>) -> Result<(), String> {
    let ahead = canonical.at.signed_duration_since(received);
    if ahead <= rules.max_ahead {
        return Ok(());
    }
    Err(format!(
        "its time {} is {} s ahead of its arrival at {} (the source's tolerance is {} s): the sender's clock is wrong",
        canonical.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ahead.num_seconds(),
        received.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        rules.max_ahead.num_seconds()
    ))
}

/// `duration` as chrono's, saturated (a tolerance beyond chrono's range is no limit at all).
fn time_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// The body deliveries carry when it is not the stored body: a TradingView alert goes out as the
/// canonical `signal.generated` event it became, in seed 001's envelope.
pub fn delivery_payload(rules: Option<&SourceRules>, parsed: &Parsed) -> Option<bytes::Bytes> {
    let (Some(rules), Parsed::Trading(canonical, _)) = (rules, parsed) else { return None };
    if rules.format != Format::Tradingview {
        return None;
    }
    let crate::trading::EventKind::Signal(signal) = &canonical.kind else { return None };
    let Ok(Value::Object(mut rest)) = serde_json::to_value(signal) else { return None };
    for key in ["quantity", "price", "stopLossPercent", "takeProfitPercent", "leverage", "confidence"] {
        rest.remove(key);
    }
    let data = OutboundSignal {
        rest,
        quantity: signal.quantity,
        price: signal.price,
        stop_loss_percent: signal.stop_loss_percent,
        take_profit_percent: signal.take_profit_percent,
        leverage: signal.leverage,
        confidence: signal.confidence,
    };
    let envelope = OutboundEvent {
        id: canonical.id.as_deref(),
        event: canonical.event_type(),
        timestamp: canonical.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    };
    serde_json::to_vec(&envelope).ok().map(bytes::Bytes::from)
}

/// Seed 001's envelope around a delivered signal.
#[derive(Serialize)]
struct OutboundEvent<'a> {
    id: Option<&'a str>,
    event: &'static str,
    timestamp: String,
    data: OutboundSignal,
}

/// A signal as deliveries carry it: its decimals as JSON numbers, as in seed 001's events (the
/// stored state keeps them as strings).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboundSignal {
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    quantity: Option<Decimal>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    price: Option<Decimal>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    stop_loss_percent: Option<Decimal>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    take_profit_percent: Option<Decimal>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    leverage: Option<Decimal>,
    #[serde(serialize_with = "crate::trading::decimal::optional_number")]
    confidence: Option<Decimal>,
}

fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The key of a position or balance entity in the `state` table: `symbol|account`.
fn keyed(name: &str, account: &Option<String>) -> String {
    format!("{name}|{}", account.as_deref().unwrap_or(""))
}

/// One fact of an order as stored: the order it belongs to and the trade or snapshot.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactDoc {
    order_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trade_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trade: Option<Trade>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cum: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<Snapshot>,
}

/// The state-table key prefix of an order's facts.
pub fn fact_prefix(order_id: &str) -> String {
    format!("{order_id}|")
}

/// An order from its stored document and the documents of its facts.
pub fn assemble_order(doc: &str, facts: &[String]) -> Result<Order, String> {
    let mut order: Order =
        serde_json::from_str(doc).map_err(|e| format!("stored order is unreadable: {e}"))?;
    for fact in facts {
        let fact: FactDoc =
            serde_json::from_str(fact).map_err(|e| format!("stored fill is unreadable: {e}"))?;
        restore(&mut order, fact)?;
    }
    Ok(order)
}

fn restore(order: &mut Order, fact: FactDoc) -> Result<(), String> {
    match (fact.trade_id, fact.trade, fact.cum, fact.snapshot) {
        (Some(id), Some(trade), _, _) => order.restore_trade(id, trade),
        (_, _, Some(cum), Some(snapshot)) => order.restore_snapshot(cum, snapshot),
        _ => {
            return Err(format!("stored fill of order `{}` is neither a trade nor a snapshot", fact.order_id))
        }
    }
    Ok(())
}

/// The rows that save `keys` of `order`: (key in the state table, document).
fn fact_rows(order: &Order, keys: Vec<FactKey>) -> Result<Vec<EntityChange>, serde_json::Error> {
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let (row_key, doc) = match key {
            FactKey::Trade(id) => {
                let Some(trade) = order.trades.get(&id) else { continue };
                let doc = FactDoc {
                    order_id: order.order_id.clone(),
                    trade_id: Some(id.clone()),
                    trade: Some(trade.clone()),
                    cum: None,
                    snapshot: None,
                };
                (format!("{}t|{id}", fact_prefix(&order.order_id)), doc)
            }
            FactKey::Snapshot(cum) => {
                let Some(snapshot) = order.snapshots.get(&cum) else { continue };
                let doc = FactDoc {
                    order_id: order.order_id.clone(),
                    trade_id: None,
                    trade: None,
                    cum: Some(cum),
                    snapshot: Some(snapshot.clone()),
                };
                (format!("{}s|{cum}", fact_prefix(&order.order_id)), doc)
            }
        };
        rows.push(EntityChange {
            kind: EntityKind::OrderFact,
            key: row_key,
            doc: Some(serde_json::to_string(&doc)?),
        });
    }
    Ok(rows)
}

/// Appends the document (or removal, when gone) of each of `keys` in `map`.
fn push_docs<K: Ord, V: Serialize>(
    out: &mut Vec<EntityChange>,
    kind: EntityKind,
    map: &std::collections::BTreeMap<K, V>,
    keys: &std::collections::BTreeSet<K>,
    key_text: impl Fn(&K) -> String,
) -> Result<(), serde_json::Error> {
    for key in keys {
        let doc = map.get(key).map(serde_json::to_string).transpose()?;
        out.push(EntityChange { kind, key: key_text(key), doc });
    }
    Ok(())
}

/// The documents of the entities `applied` touched, read from `state` after the change. An
/// order is saved without its facts plus one row per fact added or changed since its last save.
pub fn changes(state: &mut TradingState, applied: &Applied) -> Result<Vec<EntityChange>, serde_json::Error> {
    let touched = &applied.touched;
    let mut out = Vec::new();
    for id in &touched.orders {
        match state.orders.get_mut(id) {
            Some(order) => {
                let unsaved = order.take_unsaved();
                let doc = serde_json::to_string(&order.without_facts())?;
                out.push(EntityChange { kind: EntityKind::Order, key: id.clone(), doc: Some(doc) });
                out.extend(fact_rows(order, unsaved)?);
            }
            None => out.push(EntityChange { kind: EntityKind::Order, key: id.clone(), doc: None }),
        }
    }
    push_docs(&mut out, EntityKind::Position, &state.positions, &touched.positions, |k| {
        keyed(&k.symbol, &k.account)
    })?;
    push_docs(&mut out, EntityKind::Balance, &state.balances, &touched.balances, |k| {
        keyed(&k.asset, &k.account)
    })?;
    push_docs(&mut out, EntityKind::Ledger, &state.ledger, &touched.ledger, String::clone)?;
    push_docs(&mut out, EntityKind::Signal, &state.signals, &touched.signals, String::clone)?;
    push_docs(&mut out, EntityKind::Maintenance, &state.maintenance, &touched.maintenance, String::clone)?;
    Ok(out)
}

/// The alerts of `applied` as rows to store.
pub fn alerts(applied: &Applied, seq: i64) -> Vec<NewAlert> {
    applied
        .alerts
        .iter()
        .map(|alert| NewAlert {
            kind: alert.kind.as_str().to_owned(),
            subject: alert.subject.clone(),
            message: alert.message.clone(),
            at: alert.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event_seq: Some(seq),
        })
        .collect()
}

/// Rebuilds a trading state from stored entity documents (what the worker loads at start).
pub fn load_state(entities: Vec<(String, String, String)>) -> Result<TradingState, String> {
    let mut state = TradingState::new();
    let mut facts = Vec::new();
    for (kind, key, doc) in entities {
        let bad = |e: serde_json::Error| format!("stored {kind} `{key}` is unreadable: {e}");
        match kind.as_str() {
            "order" => {
                let order: Order = serde_json::from_str(&doc).map_err(bad)?;
                state.orders.insert(order.order_id.clone(), order);
            }
            "order_fact" => facts.push(serde_json::from_str::<FactDoc>(&doc).map_err(bad)?),
            "position" => {
                let position: crate::trading::Position = serde_json::from_str(&doc).map_err(bad)?;
                let key = crate::trading::PositionKey {
                    account: position.account.clone(),
                    symbol: position.symbol.clone(),
                };
                state.positions.insert(key, position);
            }
            "balance" => {
                let balance: crate::trading::Balance = serde_json::from_str(&doc).map_err(bad)?;
                state.balances.insert(balance.key(), balance);
            }
            "ledger" => {
                let entry: crate::trading::LedgerEntry = serde_json::from_str(&doc).map_err(bad)?;
                state.ledger.insert(entry.transaction_id.clone(), entry);
            }
            "signal" => {
                state.signals.insert(key.clone(), serde_json::from_str(&doc).map_err(bad)?);
            }
            "maintenance" => {
                state.maintenance.insert(key.clone(), serde_json::from_str(&doc).map_err(bad)?);
            }
            other if other.starts_with("strategy_") => {}
            other => return Err(format!("unknown entity kind `{other}` in the state table")),
        }
    }
    for fact in facts {
        let Some(order) = state.orders.get_mut(&fact.order_id) else {
            return Err(format!("stored fill of order `{}` without the order", fact.order_id));
        };
        restore(order, fact)?;
    }
    // Positions are stored without their fills; derive them from the orders again.
    state.rebuild_positions();
    Ok(state)
}

/// Every entity of a state as (kind, key, document), for `rebuild-state`.
pub fn all_documents(state: &TradingState) -> Result<Vec<(EntityKind, String, String)>, serde_json::Error> {
    let mut state = state.clone();
    let mut facts = Vec::new();
    for order in state.orders.values_mut() {
        order.take_unsaved();
        facts.extend(fact_rows(order, order.fact_keys())?);
    }
    let mut touched = crate::trading::Touched::default();
    touched.orders.extend(state.orders.keys().cloned());
    touched.positions.extend(state.positions.keys().cloned());
    touched.balances.extend(state.balances.keys().cloned());
    touched.ledger.extend(state.ledger.keys().cloned());
    touched.signals.extend(state.signals.keys().cloned());
    touched.maintenance.extend(state.maintenance.keys().cloned());
    let applied = Applied { alerts: Vec::new(), touched };
    Ok(changes(&mut state, &applied)?
        .into_iter()
        .chain(facts)
        .filter_map(|change| change.doc.map(|doc| (change.kind, change.key, doc)))
        .collect())
}
