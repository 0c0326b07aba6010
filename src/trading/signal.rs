//! Trading signals: a recommendation to act on a symbol, from seed 001's `signal.generated` or a
//! TradingView alert. A signal changes no order or position by itself; `signal_to_order` may
//! turn one into an order intent later.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decimal::Sign;
use super::event::SchemaError;
use super::fields::Fields;

/// What a signal recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalAction {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
    /// Buy, as `buy` (it does not reverse a short: `flat` first).
    Long,
    /// Sell, as `sell` (it does not reverse a long: `flat` first).
    Short,
    /// Open a long position.
    OpenLong,
    /// Close a long position.
    CloseLong,
    /// Open a short position.
    OpenShort,
    /// Close a short position.
    CloseShort,
    /// Be flat (close everything).
    Flat,
    /// Do nothing (seed 001's `recommendation: hold`).
    Hold,
}

/// The accepted action spellings, for error messages.
pub(crate) const ACTIONS: &str =
    "buy, sell, long, short, open_long, close_long, open_short, close_short, flat (exit, close), hold";

impl SignalAction {
    /// Parses an action, case-insensitively, with `-` or spaces for `_`.
    pub fn parse(raw: &str) -> Option<Self> {
        let norm = raw.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Some(match norm.as_str() {
            "buy" => Self::Buy,
            "sell" => Self::Sell,
            "long" => Self::Long,
            "short" => Self::Short,
            "open_long" | "enter_long" => Self::OpenLong,
            "close_long" | "exit_long" => Self::CloseLong,
            "open_short" | "enter_short" => Self::OpenShort,
            "close_short" | "exit_short" => Self::CloseShort,
            "flat" | "exit" | "close" | "close_all" => Self::Flat,
            "hold" | "neutral" => Self::Hold,
            _ => return None,
        })
    }

    /// Whether the action only closes (reduces) a position: `close_long`, `close_short`, `flat`.
    pub fn closes(self) -> bool {
        matches!(self, Self::CloseLong | Self::CloseShort | Self::Flat)
    }
}

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalSource {
    /// A seed-001 `signal.generated` event.
    Generated,
    /// A TradingView alert mapped by `TradingViewMapping`.
    TradingView,
}

/// A trading signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    /// Where it came from.
    pub source: SignalSource,
    /// Instrument.
    pub symbol: String,
    /// What to do.
    pub action: SignalAction,
    /// Suggested quantity.
    pub quantity: Option<Decimal>,
    /// Reference or limit price.
    pub price: Option<Decimal>,
    /// Stop-loss distance in percent of the price.
    pub stop_loss_percent: Option<Decimal>,
    /// Take-profit distance in percent of the price.
    pub take_profit_percent: Option<Decimal>,
    /// Suggested leverage.
    pub leverage: Option<Decimal>,
    /// Strategy name.
    pub strategy: Option<String>,
    /// Confidence (seed 001: 0–100).
    pub confidence: Option<Decimal>,
    /// The payload as sent, for display (`reasoning`, `technicalAnalysis`, …).
    pub raw: Value,
}

/// Parses seed 001's `signal.generated` data (`recommendation` or `action`).
pub(crate) fn parse_signal(data: &Fields, raw: &Value) -> Result<Signal, SchemaError> {
    let (field, action_raw) = match data.str("recommendation")? {
        Some(a) => ("recommendation", a),
        None => ("action", data.req_str("action")?),
    };
    let action = SignalAction::parse(&action_raw).ok_or_else(|| SchemaError::UnknownValue {
        field: data.path(field),
        value: action_raw,
        expected: ACTIONS,
    })?;
    Ok(Signal {
        source: SignalSource::Generated,
        symbol: data.req_str("symbol")?,
        action,
        quantity: data.decimal("quantity", Sign::NonNegative)?,
        price: data.decimal("price", Sign::NonNegative)?,
        stop_loss_percent: data.decimal("stopLossPercent", Sign::NonNegative)?,
        take_profit_percent: data.decimal("takeProfitPercent", Sign::NonNegative)?,
        leverage: data.decimal("leverage", Sign::NonNegative)?,
        strategy: data.str("strategy")?,
        confidence: data.decimal("confidence", Sign::NonNegative)?,
        raw: raw.clone(),
    })
}
