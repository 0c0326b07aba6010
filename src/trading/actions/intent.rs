//! What strategy actions decide: order intents for a broker, and refusals with their reason.
//!
//! An intent is a request, not an order: the worker stores it and a broker (paper or http)
//! executes it. Its `clientOrderId` is derived from the intent's *subject* (the entry order a
//! bracket protects, the signal event that asked for an order, the margin episode being handled)
//! and its role, never from a clock or a counter, so a duplicated, retried or replayed trigger
//! yields the same id and the broker places the order once.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::trading::order::Side;

/// Which strategy action decided something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// Stop-loss and take-profit kept beside filled entry orders.
    BracketOnFill,
    /// A signal turned into an order after risk checks.
    SignalToOrder,
    /// A reduce-only order when the margin ratio passes a threshold.
    MarginGuard,
}

impl ActionName {
    /// The snake_case name, as in configuration and intents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BracketOnFill => "bracket_on_fill",
            Self::SignalToOrder => "signal_to_order",
            Self::MarginGuard => "margin_guard",
        }
    }
}

/// What the broker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOp {
    /// Place a new order under `clientOrderId`.
    Place,
    /// Change quantity and prices of the order `targetClientOrderId`.
    Amend,
    /// Cancel the order `targetClientOrderId`.
    Cancel,
}

/// Order type of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// At the market.
    Market,
    /// At `price` or better (take-profits).
    Limit,
    /// A market order once `stopPrice` trades (stop-losses).
    Stop,
}

/// The part an order plays; encoded in its client order id so fills of our own orders can be
/// recognised without any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An entry (or plain) order from a signal, without attached brackets.
    Entry,
    /// An entry from a signal that carries its own stop-loss and take-profit.
    BracketedEntry,
    /// A reduce-only close from a signal.
    Close,
    /// A stop-loss leg.
    StopLoss,
    /// A take-profit leg.
    TakeProfit,
    /// A margin-guard reduction.
    Reduce,
}

impl Role {
    /// Whether an order of this role opens risk: a signal's entry, bracketed or not.
    pub fn is_entry(self) -> bool {
        matches!(self, Self::Entry | Self::BracketedEntry)
    }

    /// The client order id prefix of this role: `th` + two letters + `-`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Entry => "then-",
            Self::BracketedEntry => "theb-",
            Self::Close => "thcl-",
            Self::StopLoss => "thsl-",
            Self::TakeProfit => "thtp-",
            Self::Reduce => "thrd-",
        }
    }

    /// The role a client order id was generated for, if tradehook generated it.
    pub fn of_client_id(client_order_id: &str) -> Option<Role> {
        [Self::Entry, Self::BracketedEntry, Self::Close, Self::StopLoss, Self::TakeProfit, Self::Reduce]
            .into_iter()
            .find(|role| client_order_id.starts_with(role.prefix()))
    }
}

/// The deterministic client order id of an intent: the role's prefix and 24 hex digits of
/// SHA-256 over (subject, action, role, revision). 29 characters, within every venue's limit
/// (Binance allows 36 of `[A-Za-z0-9_-]`).
pub fn client_order_id(subject: &str, action: ActionName, role: Role, revision: &str) -> String {
    let mut hash = Sha256::new();
    for part in [subject, action.as_str(), role.prefix(), revision] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    format!("{}{}", role.prefix(), hex::encode(&digest[..12]))
}

/// The event that caused a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Stable identity of the stored event (source + event id), as the worker passed it.
    pub key: String,
    /// Its event type, e.g. `order.updated`.
    pub event_type: String,
}

/// One order request for a broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderIntent {
    /// Deterministic id of this intent (and of the order, for `place`).
    pub client_order_id: String,
    /// The order an `amend` or `cancel` acts on; `None` for `place`.
    pub target_client_order_id: Option<String>,
    /// The entry order a `place` is attached to (signal brackets), for brokers with OTO orders.
    pub parent_client_order_id: Option<String>,
    /// Which action decided it.
    pub action: ActionName,
    /// The part the order plays.
    pub role: Role,
    /// Place, amend or cancel.
    pub op: IntentOp,
    /// Instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Market, limit or stop.
    pub order_type: OrderType,
    /// Quantity (the new total for `amend`).
    pub quantity: Decimal,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Stop trigger price.
    pub stop_price: Option<Decimal>,
    /// Whether the order may only reduce a position.
    pub reduce_only: bool,
    /// Leverage passed through from a signal.
    pub leverage: Option<Decimal>,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// The event that caused it.
    pub trigger: Trigger,
    /// Why, in words.
    pub reason: String,
    /// The triggering event's time.
    pub created_at: DateTime<Utc>,
}

/// A signal (or bracket) an action declined, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// Which action declined.
    pub action: ActionName,
    /// The event that asked.
    pub trigger: Trigger,
    /// Instrument.
    pub symbol: String,
    /// Why, in words a user can act on.
    pub reason: String,
}

/// One outcome of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// An order request to store and hand to the broker.
    Intent(OrderIntent),
    /// A request declined, to record.
    Refused(Refusal),
}

impl Decision {
    /// The intent, if this is one.
    pub fn intent(&self) -> Option<&OrderIntent> {
        match self {
            Decision::Intent(intent) => Some(intent),
            Decision::Refused(_) => None,
        }
    }

    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Decision::Refused(refusal) => Some(refusal),
            Decision::Intent(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_stable_and_carry_their_role() {
        let a = client_order_id("o1", ActionName::BracketOnFill, Role::StopLoss, "0");
        assert_eq!(a, client_order_id("o1", ActionName::BracketOnFill, Role::StopLoss, "0"));
        assert_ne!(a, client_order_id("o1", ActionName::BracketOnFill, Role::StopLoss, "1"));
        assert_eq!(a.len(), 29);
        assert_eq!(Role::of_client_id(&a), Some(Role::StopLoss));
        assert_eq!(Role::of_client_id("user-order-1"), None);
    }

    #[test]
    fn intents_serialize_in_camel_case() {
        let json = serde_json::to_value(IntentOp::Amend).unwrap();
        assert_eq!(json, "amend");
        let json = serde_json::to_value(ActionName::MarginGuard).unwrap();
        assert_eq!(json, "margin_guard");
    }
}
