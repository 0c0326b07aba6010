//! Canonical trading events: the one shape every source is parsed into before it touches state.
//!
//! Every source (seed-001 envelopes via `parse`, TradingView alerts via `tradingview`) is turned
//! into a `CanonicalEvent`: decimals instead of floats, closed enums instead of strings, and the
//! event time taken from the payload, never from a clock, so replaying stored events rebuilds
//! exactly the same state.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::order::{OrderStatus, Side};
use super::position::PositionSide;
use super::signal::Signal;

/// Why a payload is not a valid canonical event; the message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A required field is absent, null or empty.
    #[error("missing required field `{field}`")]
    Missing {
        /// Path of the field, e.g. `data.orderId`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        /// Path of the field.
        field: String,
        /// What the field must be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
    /// The `event` field names no known event type.
    #[error("unknown event type `{0}`; expected one of {KNOWN_EVENTS}")]
    UnknownEvent(String),
    /// A quantity, price or amount is negative.
    #[error("`{field}` is negative ({value}); quantities, prices and amounts must be zero or more")]
    Negative {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
    },
    /// `NaN` or an infinity.
    #[error("`{field}` is not a finite number ({value})")]
    NotFinite {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
    },
    /// A number too large (or too precise) for a 96-bit decimal.
    #[error("`{field}` ({value}) is outside the decimal range (at most 28 significant digits)")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
    },
    /// A string that is not a decimal number.
    #[error("`{field}` ({value:?}) is not a decimal number: {reason}")]
    BadDecimal {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
        /// What the decimal parser said.
        reason: String,
    },
    /// A value outside a closed set (order status, side, action).
    #[error("`{field}` has unknown value {value:?}; expected one of {expected}")]
    UnknownValue {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A timestamp that is neither RFC 3339 nor epoch milliseconds.
    #[error("`{field}` ({value:?}) is not a timestamp; send RFC 3339 (2024-01-15T10:30:00Z) or epoch milliseconds")]
    BadTimestamp {
        /// Path of the field.
        field: String,
        /// The value as sent.
        value: String,
    },
    /// Neither the envelope nor the data carries a time.
    #[error("no event time: add `timestamp` to the envelope (or {TIME_FALLBACKS_TEXT} to `data`)")]
    NoTimestamp,
}

/// The event types `parse_event` accepts, for error messages.
pub(crate) const KNOWN_EVENTS: &str = "order.created, order.updated, order.cancelled, position.opened, \
position.updated, position.closed, account.balance_updated, account.deposit_received, \
account.withdrawal_processed, account.margin_call, signal.generated, system.maintenance, system.alert, test";

/// Data fields that stand in for a missing envelope `timestamp`, most specific first.
pub(crate) const TIME_FALLBACKS: &[&str] =
    &["updatedAt", "cancelledAt", "closedAt", "processedAt", "receivedAt", "createdAt", "time", "timestamp"];

/// `TIME_FALLBACKS` as error text.
pub(crate) const TIME_FALLBACKS_TEXT: &str =
    "updatedAt, cancelledAt, closedAt, processedAt, receivedAt, createdAt or time";

/// One parsed event: who sent it (if it says), when it happened, and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanonicalEvent {
    /// The sender's event id, when the envelope has one (used only to break timestamp ties).
    pub id: Option<String>,
    /// Event time: the envelope `timestamp`, else the first time field of `data`.
    pub at: DateTime<Utc>,
    /// The typed payload.
    pub kind: EventKind,
}

/// The typed payload of a canonical event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    /// `order.created|updated|cancelled`.
    Order(OrderEvent),
    /// `position.opened|updated|closed`: a venue snapshot.
    Position(PositionEvent),
    /// `account.balance_updated`: a balance snapshot for one asset.
    Balance(BalanceEvent),
    /// `account.deposit_received|withdrawal_processed`: a ledger entry.
    Ledger(LedgerEvent),
    /// `account.margin_call`.
    MarginCall(MarginCallEvent),
    /// `signal.generated` (also what a TradingView alert becomes).
    Signal(Signal),
    /// `system.maintenance`.
    Maintenance(MaintenanceWindow),
    /// `system.alert`.
    SystemAlert(SystemAlertEvent),
    /// `test`: acknowledged, changes nothing.
    Test,
}

/// Which order event type carried an order update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// `order.created`: the order's own description; fills in fields still unknown.
    Created,
    /// `order.updated`: status and fill progress.
    Updated,
    /// `order.cancelled`: status `cancelled` unless the payload says otherwise.
    Cancelled,
}

/// An order event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// Which event type this was.
    pub action: OrderAction,
    /// The venue's order id (required).
    pub order_id: String,
    /// The client's own id for the order.
    pub client_order_id: Option<String>,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument.
    pub symbol: Option<String>,
    /// Buy or sell.
    pub side: Option<Side>,
    /// `market`, `limit`, … as sent.
    pub order_type: Option<String>,
    /// Ordered quantity.
    pub quantity: Option<Decimal>,
    /// Limit price (0 for market orders in seed 001).
    pub price: Option<Decimal>,
    /// Reported status.
    pub status: Option<OrderStatus>,
    /// Cumulative filled quantity (cumulative-only sources).
    pub filled_quantity: Option<Decimal>,
    /// Average price of the cumulative filled quantity.
    pub average_price: Option<Decimal>,
    /// One execution, for sources with trade ids.
    pub trade: Option<TradeReport>,
    /// On a report without a trade id: the commission charged so far, a running total like
    /// `filledQuantity` (with a trade id, `commission` is that trade's and is in `trade`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Decimal>,
    /// The venue's sequence number for this update (informational).
    pub sequence: Option<u64>,
    /// Whether the order can only reduce a position.
    pub reduce_only: Option<bool>,
    /// Why the order exists when not by the client, e.g. `liquidation`.
    pub origin: Option<String>,
    /// Cancel or reject reason.
    pub reason: Option<String>,
    /// When the venue created the order.
    pub created_at: Option<DateTime<Utc>>,
}

/// One execution reported with its trade id (`tradeId`, `lastQuantity`, `lastPrice`, `commission`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TradeReport {
    /// The venue's trade id: the fill's identity.
    pub trade_id: String,
    /// Quantity of this execution.
    pub quantity: Decimal,
    /// Price of this execution.
    pub price: Decimal,
    /// Commission charged (negative for a rebate), in whatever asset the venue uses.
    pub commission: Decimal,
}

/// Which position event type carried a venue snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionPhase {
    /// `position.opened`.
    Opened,
    /// `position.updated`.
    Updated,
    /// `position.closed`: the venue is flat afterwards, whatever `quantity` (the closed size) says.
    Closed,
}

/// A `position.*` payload: the venue's view of one position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionEvent {
    /// Which event type this was.
    pub phase: PositionPhase,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument (required).
    pub symbol: String,
    /// Long, short or flat, when sent.
    pub side: Option<PositionSide>,
    /// Absolute position size (for `closed`: the size that was closed).
    pub quantity: Option<Decimal>,
    /// The venue's average entry price.
    pub average_price: Option<Decimal>,
    /// Mark price.
    pub mark_price: Option<Decimal>,
    /// Unrealized PnL.
    pub unrealized_pnl: Option<Decimal>,
    /// Margin ratio.
    pub margin_ratio: Option<Decimal>,
    /// Liquidation price.
    pub liquidation_price: Option<Decimal>,
    /// Margin in use.
    pub margin_used: Option<Decimal>,
    /// The venue's realized PnL.
    pub realized_pnl: Option<Decimal>,
}

/// An `account.balance_updated` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceEvent {
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Asset (required).
    pub asset: String,
    /// Free balance.
    pub available: Option<Decimal>,
    /// Balance held by open orders or margin.
    pub locked: Option<Decimal>,
    /// Total balance (available + locked when not sent).
    pub total: Option<Decimal>,
    /// Change that caused this update (signed).
    pub change: Option<Decimal>,
    /// Why the balance changed.
    pub reason: Option<String>,
}

/// Deposit or withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// `account.deposit_received`.
    Deposit,
    /// `account.withdrawal_processed`.
    Withdrawal,
}

/// A deposit or withdrawal payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEvent {
    /// Deposit or withdrawal.
    pub kind: LedgerKind,
    /// The venue's transaction id: the entry's identity (required).
    pub transaction_id: String,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Asset (required).
    pub asset: String,
    /// Amount moved (required, not negative).
    pub amount: Decimal,
    /// `bank_transfer`, … as sent.
    pub method: Option<String>,
    /// `completed`, … as sent.
    pub status: Option<String>,
}

/// An `account.margin_call` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarginCallEvent {
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument (required).
    pub symbol: String,
    /// Margin ratio.
    pub margin_ratio: Option<Decimal>,
    /// Maintenance margin.
    pub maintenance_margin: Option<Decimal>,
    /// Mark price.
    pub mark_price: Option<Decimal>,
    /// Liquidation price.
    pub liquidation_price: Option<Decimal>,
}

/// A `system.maintenance` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Start of the window (required).
    pub start_time: DateTime<Utc>,
    /// End of the window (required, not before the start).
    pub end_time: DateTime<Utc>,
    /// What the maintenance is.
    pub description: Option<String>,
    /// Services affected, e.g. `trading`.
    pub affected_services: Vec<String>,
}

/// A `system.alert` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemAlertEvent {
    /// `info`, `warning`, … as sent.
    pub level: Option<String>,
    /// Short title.
    pub title: Option<String>,
    /// The alert text.
    pub message: Option<String>,
    /// Symbols concerned.
    pub affected_symbols: Vec<String>,
    /// What the venue recommends.
    pub recommendation: Option<String>,
}

/// When an event happened, with its id to break ties: what "newest wins" compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    /// Event time.
    pub at: DateTime<Utc>,
    /// Event id; an event without one loses a tie against one with.
    pub event_id: Option<String>,
}

impl CanonicalEvent {
    /// The event's time and id, for newest-wins comparisons.
    pub fn stamp(&self) -> Stamp {
        Stamp { at: self.at, event_id: self.id.clone() }
    }

    /// The seed-001 event type name, e.g. `order.updated`.
    pub fn event_type(&self) -> &'static str {
        match &self.kind {
            EventKind::Order(o) => match o.action {
                OrderAction::Created => "order.created",
                OrderAction::Updated => "order.updated",
                OrderAction::Cancelled => "order.cancelled",
            },
            EventKind::Position(p) => match p.phase {
                PositionPhase::Opened => "position.opened",
                PositionPhase::Updated => "position.updated",
                PositionPhase::Closed => "position.closed",
            },
            EventKind::Balance(_) => "account.balance_updated",
            EventKind::Ledger(l) => match l.kind {
                LedgerKind::Deposit => "account.deposit_received",
                LedgerKind::Withdrawal => "account.withdrawal_processed",
            },
            EventKind::MarginCall(_) => "account.margin_call",
            EventKind::Signal(_) => super::tradingview::SIGNAL_GENERATED,
            EventKind::Maintenance(_) => "system.maintenance",
            EventKind::SystemAlert(_) => "system.alert",
            EventKind::Test => "test",
        }
    }

    /// The default ordering key of SPEC §2: order id, symbol or asset; `None` for the rest.
    pub fn ordering_key(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Order(o) => Some(&o.order_id),
            EventKind::Position(p) => Some(&p.symbol),
            EventKind::MarginCall(m) => Some(&m.symbol),
            EventKind::Signal(s) => Some(&s.symbol),
            EventKind::Balance(b) => Some(&b.asset),
            EventKind::Ledger(l) => Some(&l.asset),
            EventKind::Maintenance(_) | EventKind::SystemAlert(_) | EventKind::Test => None,
        }
    }
}
