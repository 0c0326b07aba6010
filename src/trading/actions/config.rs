//! Configuration of the strategy actions, per route: each action is off unless its table is
//! present. Read once and validated with [`ActionsConfig::validate`], whose `Err((key, problem))`
//! names the offending key the way the rest of tradehook's configuration does.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every strategy action; an absent one is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Stop-loss and take-profit beside filled entry orders.
    pub bracket_on_fill: Option<BracketConfig>,
    /// Signals to orders after risk checks.
    pub signal_to_order: Option<SignalConfig>,
    /// Reduce a position whose margin ratio passes a threshold.
    pub margin_guard: Option<MarginGuardConfig>,
}

/// A distance from a reference price: `"1.5%"` of it, or `"250"` price units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// Percent of the reference price.
    Percent(Decimal),
    /// Absolute price distance.
    Absolute(Decimal),
}

impl Offset {
    /// The distance from `reference` in price units.
    pub fn distance(self, reference: Decimal) -> Decimal {
        match self {
            Offset::Percent(pct) => reference.saturating_mul(pct) / Decimal::ONE_HUNDRED,
            Offset::Absolute(d) => d,
        }
    }

    /// The distance as a number, percent or not.
    fn amount(self) -> Decimal {
        match self {
            Offset::Percent(d) | Offset::Absolute(d) => d,
        }
    }
}

impl FromStr for Offset {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        let (number, percent) = match text.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (text, false),
        };
        let value = Decimal::from_str_exact(number)
            .map_err(|_| format!("`{raw}` is not an offset like \"1.5%\" or \"250\""))?
            .normalize();
        Ok(if percent { Offset::Percent(value) } else { Offset::Absolute(value) })
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offset::Percent(d) => write!(f, "{d}%"),
            Offset::Absolute(d) => write!(f, "{d}"),
        }
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(Decimal),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Offset::Absolute(n.normalize())),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `bracket_on_fill`: where the stop-loss and take-profit go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BracketConfig {
    /// Distance of the stop-loss from the average fill price (on the losing side).
    pub stop_loss: Offset,
    /// Distance of the take-profit from the average fill price (on the winning side).
    pub take_profit: Offset,
}

/// `signal_to_order`: the risk limits a signal must pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// Symbols signals may trade; empty allows every symbol.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Largest absolute net position on a symbol after the order (plus working orders).
    pub max_position: Decimal,
    /// Largest quantity of one order.
    pub max_order: Decimal,
    /// Most signal orders placed in any 60 seconds (protective orders are not counted).
    pub max_orders_per_minute: u32,
    /// Signals older than this (event time vs processing time) are refused.
    #[serde(with = "duration_text")]
    pub max_signal_age: Duration,
    /// Quantity when the signal gives neither a quantity nor a percent of equity.
    #[serde(default)]
    pub default_quantity: Option<Decimal>,
    /// Equity for percent sizing; when absent, the `total` of `equity_asset`'s balances.
    #[serde(default)]
    pub equity: Option<Decimal>,
    /// The balance asset that is equity when `equity` is absent.
    #[serde(default = "default_equity_asset")]
    pub equity_asset: String,
}

fn default_equity_asset() -> String {
    "USD".to_owned()
}

/// `margin_guard`: when to cut a position and by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarginGuardConfig {
    /// Margin ratio at or above which the position is reduced (higher is riskier).
    pub threshold: Decimal,
    /// Margin ratio under which the guard re-arms for a new episode.
    pub rearm_below: Decimal,
    /// Fraction of the position to reduce, in (0, 1].
    pub reduce_fraction: Decimal,
    /// Alerts older than this (event time vs processing time) are ignored.
    #[serde(with = "duration_text")]
    pub max_alert_age: Duration,
}

impl ActionsConfig {
    /// Checks every present action; `Err((key, problem))` names the first bad key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(b) = &self.bracket_on_fill {
            check_offset("bracket_on_fill.stop_loss", b.stop_loss)?;
            check_offset("bracket_on_fill.take_profit", b.take_profit)?;
        }
        if let Some(s) = &self.signal_to_order {
            s.validate()?;
        }
        if let Some(m) = &self.margin_guard {
            m.validate()?;
        }
        Ok(())
    }
}

fn check_offset(key: &'static str, offset: Offset) -> Result<(), (&'static str, String)> {
    if offset.amount() <= Decimal::ZERO {
        return Err((key, format!("must be more than 0, found {offset}")));
    }
    if matches!(offset, Offset::Percent(p) if p >= Decimal::ONE_HUNDRED) {
        return Err((key, format!("a percent offset must be under 100%, found {offset}")));
    }
    Ok(())
}

impl SignalConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.symbols.iter().any(|s| s.trim().is_empty()) {
            return Err(("signal_to_order.symbols", "must not contain empty symbols".into()));
        }
        if self.max_position <= Decimal::ZERO {
            return Err(("signal_to_order.max_position", "must be more than 0".into()));
        }
        if self.max_order <= Decimal::ZERO {
            return Err(("signal_to_order.max_order", "must be more than 0".into()));
        }
        if self.max_orders_per_minute == 0 {
            return Err(("signal_to_order.max_orders_per_minute", "must be at least 1".into()));
        }
        if self.max_signal_age.is_zero() {
            return Err(("signal_to_order.max_signal_age", "must be more than 0".into()));
        }
        if self.default_quantity.is_some_and(|q| q <= Decimal::ZERO || q > self.max_order) {
            return Err((
                "signal_to_order.default_quantity",
                "must be more than 0 and at most max_order".into(),
            ));
        }
        if self.equity.is_some_and(|e| e <= Decimal::ZERO) {
            return Err(("signal_to_order.equity", "must be more than 0".into()));
        }
        Ok(())
    }
}

impl MarginGuardConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.threshold <= Decimal::ZERO {
            return Err(("margin_guard.threshold", "must be more than 0".into()));
        }
        if self.rearm_below <= Decimal::ZERO || self.rearm_below >= self.threshold {
            return Err(("margin_guard.rearm_below", "must be more than 0 and below threshold".into()));
        }
        if self.reduce_fraction <= Decimal::ZERO || self.reduce_fraction > Decimal::ONE {
            return Err(("margin_guard.reduce_fraction", "must be in (0, 1]".into()));
        }
        if self.max_alert_age.is_zero() {
            return Err(("margin_guard.max_alert_age", "must be more than 0".into()));
        }
        Ok(())
    }
}

/// Durations written as `"30s"`, `"5m"` (humantime) or a number of seconds.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\" or \"5m\": {e}"))
            }),
        }
    }

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> ActionsConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn offsets_parse_as_percent_or_absolute() {
        assert_eq!("1.5%".parse::<Offset>(), Ok(Offset::Percent(Decimal::new(15, 1))));
        assert_eq!(" 250 ".parse::<Offset>(), Ok(Offset::Absolute(Decimal::from(250))));
        assert!("abc%".parse::<Offset>().is_err());
        assert_eq!(Offset::Percent(Decimal::TWO).distance(Decimal::from(50)), Decimal::ONE);
    }

    #[test]
    fn a_full_config_parses_and_validates() {
        let config = parse(json!({
            "bracket_on_fill": {"stop_loss": "2%", "take_profit": "250"},
            "signal_to_order": {"symbols": ["BTCUSDT"], "max_position": "1", "max_order": "0.5",
                                "max_orders_per_minute": 5, "max_signal_age": "30s"},
            "margin_guard": {"threshold": "0.8", "rearm_below": "0.6", "reduce_fraction": "0.5",
                             "max_alert_age": "1m"}
        }));
        assert_eq!(config.validate(), Ok(()));
        let signal = config.signal_to_order.unwrap();
        assert_eq!((signal.max_signal_age, signal.equity_asset.as_str()), (Duration::from_secs(30), "USD"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_value::<ActionsConfig>(json!({"bracket_on_fil": {}})).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut config = parse(json!({"margin_guard": {"threshold": "0.8", "rearm_below": "0.9",
            "reduce_fraction": "0.5", "max_alert_age": "1m"}}));
        assert_eq!(config.validate().unwrap_err().0, "margin_guard.rearm_below");
        config.margin_guard = None;
        config.bracket_on_fill = Some(BracketConfig {
            stop_loss: Offset::Percent(Decimal::ZERO),
            take_profit: Offset::Absolute(Decimal::ONE),
        });
        assert_eq!(config.validate().unwrap_err().0, "bracket_on_fill.stop_loss");
    }
}
