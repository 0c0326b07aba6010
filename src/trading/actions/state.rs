//! What the strategy actions remember between events, kept small and keyed so the worker stores
//! it as one document per key and writes only the keys an event touched ([`StrategyTouched`]).
//!
//! Like `TradingState`, it is changed only by `decide` (and the kill-switch API) and holds no
//! clock: everything time-dependent is compared against the `now` the caller passes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::trading::order::Side;
use crate::trading::position::PositionKey;
use crate::trading::state::TradingState;

/// The client ids of one entry order's live stop-loss and take-profit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BracketLegs {
    /// Stop-loss client order id.
    pub stop_loss: String,
    /// Take-profit client order id.
    pub take_profit: String,
}

/// The brackets of one entry order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BracketSet {
    /// Account of the entry.
    pub account: Option<String>,
    /// Instrument of the entry.
    pub symbol: String,
    /// Side of the entry (the legs are on the other side).
    pub entry_side: Side,
    /// Filled quantity the live legs are sized to (zero when none are live).
    pub sized: Decimal,
    /// Filled quantity of the entry already closed out (the position went flat after it): new
    /// fills beyond it get a new pair.
    pub base: Decimal,
    /// How many times the pair was placed, amended or cancelled.
    pub revision: u32,
    /// The live legs, if any.
    pub legs: Option<BracketLegs>,
    /// Event time of the last change: closed-out sets are forgotten some time after it.
    pub updated_at: DateTime<Utc>,
}

impl BracketSet {
    /// Counts one change made at event time `at`.
    pub(super) fn bump(&mut self, at: DateTime<Utc>) {
        self.revision += 1;
        self.updated_at = self.updated_at.max(at);
    }

    /// The position the entry belongs to.
    pub fn position_key(&self) -> PositionKey {
        PositionKey { account: self.account.clone(), symbol: self.symbol.clone() }
    }
}

/// The margin guard's memory of one position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardEpisode {
    /// Whether the guard has reduced in the current episode and waits for the ratio to fall.
    pub tripped: bool,
    /// How many episodes have tripped so far (the id of the current one).
    pub episodes: u32,
    /// Event time of the newest margin reading taken: older readings are out of date.
    pub last_at: DateTime<Utc>,
}

/// One order `signal_to_order` placed, for the per-minute limit and, until the venue reports
/// it, as working quantity for `max_position`; or a close or margin-guard reduction, which until
/// it fills is taken off what a later close or reduction may sell (see `pending_reduction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// When it was decided (processing time).
    pub at: DateTime<Utc>,
    /// Its client order id, so a reprocessed signal is not counted twice.
    pub client_order_id: String,
    /// The order's symbol (`None` in placements stored before it was kept).
    #[serde(default)]
    pub symbol: Option<String>,
    /// The order's account, when it names one.
    #[serde(default)]
    pub account: Option<String>,
    /// The entry's signed quantity, buys positive (`None` like `symbol`).
    #[serde(default)]
    pub quantity: Option<Decimal>,
    /// A reduce-only close or reduction (its symbol and quantity kept since these were added).
    #[serde(default)]
    pub reduce: bool,
    /// A margin-guard reduction: protective, not counted by `max_orders_per_minute`.
    #[serde(default)]
    pub protective: bool,
}

/// The manual kill switch (the automatic one is derived from maintenance windows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitch {
    /// Set by the API: no signal turns into an order while on.
    pub manual: bool,
}

/// The newest price seen for a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricePoint {
    /// Price.
    pub price: Decimal,
    /// Event time it was seen at: only a newer event replaces it.
    pub at: DateTime<Utc>,
}

/// Everything the actions remember.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyState {
    /// Brackets by entry order id (the venue's).
    pub brackets: BTreeMap<String, BracketSet>,
    /// Margin-guard episodes by `account|symbol` (see [`guard_key`]).
    pub guards: BTreeMap<String, GuardEpisode>,
    /// Signal orders and margin-guard reductions of the last 60 seconds, oldest first.
    pub placements: Vec<Placement>,
    /// The manual kill switch.
    pub kill_switch: KillSwitch,
    /// Newest price per symbol, from signals, fills and mark prices.
    pub prices: BTreeMap<String, PricePoint>,
    /// Signal entries still waiting for the broker to take them (queued, retrying, or replayed
    /// from the dead-letter queue) by client order id, as the store last said: they count
    /// against `max_position` however long the broker is down. Not stored with the state: the
    /// worker reads them from the store before each round.
    #[serde(skip)]
    pub awaiting_broker: BTreeMap<String, AwaitingEntry>,
    /// Closes and reductions among `placements` whose intent failed (the broker refused it, or
    /// it went to the dead-letter queue): they take nothing off the position. As the store last
    /// said, before each round; not stored with the state.
    #[serde(skip)]
    pub failed: std::collections::BTreeSet<String>,
}

/// An entry order waiting for the broker: its symbol and signed quantity (buys positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingEntry {
    /// The symbol.
    pub symbol: String,
    /// Signed quantity.
    pub quantity: Decimal,
}

/// Which parts of a [`StrategyState`] an event changed; a key no longer in the state was removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyTouched {
    /// Entry order ids in `brackets`.
    pub brackets: BTreeSet<String>,
    /// Keys in `guards`.
    pub guards: BTreeSet<String>,
    /// Whether `placements` changed (stored as one document).
    pub placements: bool,
    /// Whether the kill switch changed.
    pub kill_switch: bool,
    /// Symbols in `prices`.
    pub prices: BTreeSet<String>,
}

impl StrategyTouched {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.brackets.is_empty()
            && self.guards.is_empty()
            && !self.placements
            && !self.kill_switch
            && self.prices.is_empty()
    }
}

/// The `guards` key of a position: `account|symbol` (empty account when none).
pub fn guard_key(key: &PositionKey) -> String {
    format!("{}|{}", key.account.as_deref().unwrap_or(""), key.symbol)
}

impl StrategyState {
    /// Client order ids of the closes and reductions in `placements`, whose outcome
    /// [`StrategyState::follow_failed`] wants.
    pub fn reduction_ids(&self) -> Vec<String> {
        self.placements.iter().filter(|p| p.reduce).map(|p| p.client_order_id.clone()).collect()
    }

    /// How much of the position of `account` and `symbol` (net `net`) the closes and reductions
    /// decided in the last minute before `now` will still take off, but `own`'s (see
    /// `signal_order::pending_reduction`).
    pub fn reductions_on_their_way(
        &self,
        trading: &crate::trading::TradingState,
        now: DateTime<Utc>,
        own: &str,
        account: &Option<String>,
        symbol: &str,
        net: Decimal,
    ) -> Decimal {
        super::signal_order::pending_reduction((trading, now), self, own, Some(account), symbol, net)
    }

    /// Takes the recorded outcomes of the closes and reductions: the failed ones stop counting
    /// as on their way.
    pub fn follow_failed(&mut self, outcomes: Vec<(String, String)>) {
        self.failed =
            outcomes.into_iter().filter(|(_, outcome)| outcome == "failed").map(|(id, _)| id).collect();
    }

    /// An empty state: no brackets, guards armed, kill switch off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the manual kill switch; returns what changed (nothing when it already was `on`).
    pub fn set_kill_switch(&mut self, on: bool) -> StrategyTouched {
        let touched = StrategyTouched { kill_switch: self.kill_switch.manual != on, ..Default::default() };
        self.kill_switch.manual = on;
        touched
    }

    /// Why signal orders are blocked at `now`, if they are: the manual switch, or a known
    /// maintenance window (the automatic switch); for the API to show and `signal_to_order`.
    pub fn kill_switch_reason(&self, trading: &TradingState, now: DateTime<Utc>) -> Option<&'static str> {
        if self.kill_switch.manual {
            Some("kill switch is on (set by API)")
        } else if trading.in_maintenance(now) {
            Some("kill switch is on: inside a system.maintenance window")
        } else {
            None
        }
    }

    /// The newest known price of `symbol` (what the paper broker fills market orders at).
    pub fn last_price(&self, symbol: &str) -> Option<Decimal> {
        self.prices.get(symbol).map(|p| p.price)
    }

    /// Records a price seen at `at` if it is the newest for the symbol.
    pub(super) fn see_price(
        &mut self,
        symbol: &str,
        price: Decimal,
        at: DateTime<Utc>,
        touched: &mut StrategyTouched,
    ) {
        if price <= Decimal::ZERO
            || self.prices.get(symbol).is_some_and(|p| p.at > at || (p.at == at && p.price == price))
        {
            return;
        }
        self.prices.insert(symbol.to_owned(), PricePoint { price: price.normalize(), at });
        touched.prices.insert(symbol.to_owned());
    }
}
