//! Trading state: canonical events in, orders, positions, balances and alerts out.
//!
//! The pure core of tradehook's processing (SPEC §3, rules in `TRADING.md`): no I/O, no clock,
//! no randomness. A worker parses each stored raw event with [`parse_event`] (or
//! [`parse_tradingview`]), applies it with [`TradingState::apply`], persists the entities named
//! in [`Touched`] and stores the returned [`Alert`]s. The resulting orders and positions are the
//! same whatever order the events arrive in and however often they are repeated.
//!
//! - `event`: the canonical event types; `parse`: the seed-001 parser; `tradingview`: alert mapping.
//! - `order` + `fill`: the order state machine and fill identity.
//! - `fill_book`: a position's fills in canonical order, for incremental folding.
//! - `position`: net positions folded from fills, annotated by venue snapshots.
//! - `balance`: balance snapshots and the deposit/withdrawal ledger.
//! - `state`: the aggregate and its `apply`.
//! - `actions`: strategy actions (brackets, signals to orders, margin guard) deciding order intents.

#![warn(missing_docs)]

pub mod actions;
pub mod alert;
pub mod balance;
pub(crate) mod decimal;
pub mod event;
mod fields;
pub mod fill;
pub mod fill_book;
pub mod order;
mod order_fills;
mod parse;
pub mod position;
pub mod signal;
pub mod state;
pub mod tradingview;

#[cfg(test)]
mod order_independence;
#[cfg(test)]
mod seed001;

pub use actions::{
    decide, ActionName, ActionsConfig, Decided, Decision, IntentOp, OrderIntent, OrderType, Refusal,
    StrategyState, StrategyTouched, Trigger,
};
pub use alert::{Alert, AlertKind};
pub use balance::{Balance, BalanceKey, LedgerEntry};
#[cfg(feature = "server")]
pub(crate) use decimal::exact_numbers;
pub use event::{CanonicalEvent, EventKind, SchemaError, Stamp};
pub use fill::Fill;
pub use order::{FactKey, Order, OrderChange, OrderStatus, Side};
pub use parse::parse_event;
pub use position::{Position, PositionKey, PositionSide, PositionView};
pub use signal::{Signal, SignalAction};
pub use state::{Applied, Touched, TradingState};
pub use tradingview::{parse_tradingview, TradingViewMapping};
