//! TradingView alerts → `signal.generated`, through a per-source mapping of JSON pointers.
//!
//! TradingView sends whatever JSON the user typed into the alert message, with placeholders such
//! as `{{ticker}}` or `{{strategy.order.action}}` filled in. A mapping lists, for each signal
//! field, the JSON pointers to try in order; the defaults cover the common templates.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decimal::{self, kind_of, Sign};
use super::event::{CanonicalEvent, EventKind, SchemaError};
use super::fields::parse_time;
use super::signal::{Signal, SignalAction, SignalSource, ACTIONS};

/// Where each signal field is found in a TradingView alert: JSON pointers tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct TradingViewMapping {
    /// Instrument (required).
    pub symbol: Vec<String>,
    /// Action (required): buy, sell, long, short, open_long, …, flat.
    pub action: Vec<String>,
    /// Quantity (contracts).
    pub quantity: Vec<String>,
    /// Price.
    pub price: Vec<String>,
    /// Alert time; the receive time when absent.
    pub time: Vec<String>,
    /// Stop-loss distance in percent.
    pub stop_loss_percent: Vec<String>,
    /// Take-profit distance in percent.
    pub take_profit_percent: Vec<String>,
    /// Leverage.
    pub leverage: Vec<String>,
    /// Strategy name.
    pub strategy: Vec<String>,
}

impl TradingViewMapping {
    /// The first field whose pointers cannot work, as (field, problem): one that is not a JSON
    /// pointer (`contracts` for `/contracts`), or no pointer at all for a required field.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let fields: [(&'static str, &Vec<String>); 9] = [
            ("symbol", &self.symbol),
            ("action", &self.action),
            ("quantity", &self.quantity),
            ("price", &self.price),
            ("time", &self.time),
            ("stop_loss_percent", &self.stop_loss_percent),
            ("take_profit_percent", &self.take_profit_percent),
            ("leverage", &self.leverage),
            ("strategy", &self.strategy),
        ];
        for (name, list) in fields {
            if let Some(bad) = list.iter().find(|p| !p.starts_with('/')) {
                return Some((
                    name,
                    format!("`{bad}` is not a JSON pointer like /{}", bad.trim_start_matches('/')),
                ));
            }
            if list.is_empty() && matches!(name, "symbol" | "action") {
                return Some((name, "is required: name at least one JSON pointer".into()));
            }
        }
        None
    }
}

/// Owned strings from a list of literals.
fn pointers(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| (*p).to_owned()).collect()
}

impl Default for TradingViewMapping {
    fn default() -> Self {
        TradingViewMapping {
            symbol: pointers(&["/ticker", "/symbol"]),
            action: pointers(&["/action", "/side", "/strategy/order/action", "/strategy.order.action"]),
            quantity: pointers(&["/contracts", "/quantity", "/qty", "/strategy/order/contracts"]),
            price: pointers(&["/price", "/close", "/strategy/order/price"]),
            time: pointers(&["/time", "/timenow", "/timestamp"]),
            stop_loss_percent: pointers(&["/stop_loss", "/stopLoss", "/sl"]),
            take_profit_percent: pointers(&["/take_profit", "/takeProfit", "/tp"]),
            leverage: pointers(&["/leverage"]),
            strategy: pointers(&["/strategy_name", "/strategy/name", "/strategy"]),
        }
    }
}

/// The first pointer in `list` that resolves to a non-null, non-empty value.
fn lookup<'a>(json: &'a Value, list: &'a [String]) -> Option<(&'a str, &'a Value)> {
    list.iter().find_map(|ptr| match json.pointer(ptr) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some((ptr.as_str(), v)),
    })
}

/// A string at the first matching pointer; numbers are printed.
fn text(json: &Value, list: &[String]) -> Result<Option<(String, String)>, SchemaError> {
    match lookup(json, list) {
        None => Ok(None),
        Some((ptr, Value::String(s))) => Ok(Some((ptr.to_owned(), s.trim().to_owned()))),
        Some((ptr, Value::Number(n))) => Ok(Some((ptr.to_owned(), n.to_string()))),
        // `/strategy` may be an object holding `order`; it is then not a name.
        Some((_, Value::Object(_))) => Ok(None),
        Some((ptr, other)) => {
            Err(SchemaError::WrongType { field: ptr.to_owned(), expected: "a string", found: kind_of(other) })
        }
    }
}

/// A decimal at the first matching pointer.
fn number(json: &Value, list: &[String]) -> Result<Option<Decimal>, SchemaError> {
    lookup(json, list).map(|(ptr, v)| decimal::from_json(ptr, v, Sign::NonNegative)).transpose()
}

/// A percent field: a number, or text with a trailing `%` as seed 003's alerts write it (`"2%"`).
fn percent(json: &Value, list: &[String]) -> Result<Option<Decimal>, SchemaError> {
    let Some((ptr, value)) = lookup(json, list) else { return Ok(None) };
    let bare = value.as_str().map(|text| Value::String(text.trim().trim_end_matches('%').trim().to_owned()));
    decimal::from_json(ptr, bare.as_ref().unwrap_or(value), Sign::NonNegative).map(Some)
}

/// The type every TradingView alert becomes.
pub const SIGNAL_GENERATED: &str = "signal.generated";

/// Maps a TradingView alert to a `signal.generated` event timed at the alert's time, or at
/// `received_at` when the alert carries none.
pub fn parse_tradingview(
    json: &Value,
    mapping: &TradingViewMapping,
    received_at: DateTime<Utc>,
) -> Result<CanonicalEvent, SchemaError> {
    if !json.is_object() {
        return Err(SchemaError::WrongType {
            field: "alert".into(),
            expected: "an object",
            found: kind_of(json),
        });
    }
    let missing = |list: &[String]| SchemaError::Missing { field: list.join(" or ") };
    let (_, symbol) = text(json, &mapping.symbol)?.ok_or_else(|| missing(&mapping.symbol))?;
    let (action_field, action_raw) = text(json, &mapping.action)?.ok_or_else(|| missing(&mapping.action))?;
    let action = SignalAction::parse(&action_raw).ok_or(SchemaError::UnknownValue {
        field: action_field,
        value: action_raw,
        expected: ACTIONS,
    })?;
    let at = match lookup(json, &mapping.time) {
        Some((ptr, v)) => parse_time(ptr, v)?,
        None => received_at,
    };
    let signal = Signal {
        source: SignalSource::TradingView,
        symbol,
        action,
        quantity: number(json, &mapping.quantity)?,
        price: number(json, &mapping.price)?,
        stop_loss_percent: percent(json, &mapping.stop_loss_percent)?,
        take_profit_percent: percent(json, &mapping.take_profit_percent)?,
        leverage: number(json, &mapping.leverage)?,
        strategy: text(json, &mapping.strategy)?.map(|(_, s)| s),
        confidence: None,
        raw: json.clone(),
    };
    Ok(CanonicalEvent { id: None, at, kind: EventKind::Signal(signal) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 5).single().unwrap()
    }

    fn signal(event: &CanonicalEvent) -> &Signal {
        match &event.kind {
            EventKind::Signal(s) => s,
            other => panic!("not a signal: {other:?}"),
        }
    }

    #[test]
    fn default_mapping_reads_a_typical_strategy_alert() {
        let alert = json!({"ticker": "BTCUSDT", "action": "buy", "contracts": "0.5", "price": 43000.5,
                           "time": "2024-01-15T12:00:00Z", "stop_loss": 2, "take_profit": 4, "leverage": 3});
        let event = parse_tradingview(&alert, &TradingViewMapping::default(), received()).unwrap();
        let s = signal(&event);
        assert_eq!(event.event_type(), "signal.generated");
        assert_eq!(event.at, Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 0).single().unwrap());
        assert_eq!((s.symbol.as_str(), s.action), ("BTCUSDT", SignalAction::Buy));
        assert_eq!(s.quantity, Some(Decimal::new(5, 1)));
        assert_eq!(s.price, Some(Decimal::new(430005, 1)));
        assert_eq!(s.stop_loss_percent, Some(Decimal::from(2)));
        assert_eq!(s.take_profit_percent, Some(Decimal::from(4)));
        assert_eq!(s.leverage, Some(Decimal::from(3)));
    }

    #[test]
    fn percents_written_as_text_like_seed_003_are_read() {
        let alert = json!({"ticker": "ETHUSD", "action": "buy", "price": 2000, "stop_loss": "2%",
                           "take_profit": " 6 %", "time": "2024-01-15T12:00:00Z"});
        let event = parse_tradingview(&alert, &TradingViewMapping::default(), received()).unwrap();
        let s = signal(&event);
        assert_eq!(s.stop_loss_percent, Some(Decimal::from(2)));
        assert_eq!(s.take_profit_percent, Some(Decimal::from(6)));
        let bad = json!({"ticker": "ETHUSD", "action": "buy", "stop_loss": "two%"});
        assert!(parse_tradingview(&bad, &TradingViewMapping::default(), received()).is_err());
    }

    #[test]
    fn nested_strategy_order_action_and_receive_time_fallback() {
        let alert = json!({"symbol": "ETHUSD", "strategy": {"order": {"action": "Close-Long"}}});
        let event = parse_tradingview(&alert, &TradingViewMapping::default(), received()).unwrap();
        assert_eq!(signal(&event).action, SignalAction::CloseLong);
        assert_eq!(signal(&event).strategy, None);
        assert_eq!(event.at, received());
    }

    #[test]
    fn custom_mapping_pointers_are_tried_in_order() {
        let mapping = TradingViewMapping {
            symbol: vec!["/instrument/name".into()],
            action: vec!["/dir".into()],
            ..TradingViewMapping::default()
        };
        let alert = json!({"instrument": {"name": "SOLUSD"}, "dir": "flat", "ticker": "IGNORED"});
        let event = parse_tradingview(&alert, &mapping, received()).unwrap();
        assert_eq!((signal(&event).symbol.as_str(), signal(&event).action), ("SOLUSD", SignalAction::Flat));
    }

    #[test]
    fn alert_without_symbol_or_with_unknown_action_is_a_schema_error() {
        let err = parse_tradingview(&json!({"action": "buy"}), &TradingViewMapping::default(), received());
        assert!(matches!(err, Err(SchemaError::Missing { ref field }) if field.contains("/ticker")));
        let err =
            parse_tradingview(&json!({"ticker": "X", "action": "moon"}), &Default::default(), received());
        assert!(matches!(err, Err(SchemaError::UnknownValue { .. })));
    }
}
