//! The trading-state aggregate: every order, position, balance, ledger entry, recent signal and
//! maintenance window, and the one `apply` that folds a canonical event into them.
//!
//! `apply` is deterministic and does no I/O. Orders, positions, balances and the ledger come out
//! the same whatever order (and however often) events are applied; a conflicting duplicate is
//! resolved in favour of its earliest report (and alerted). `Applied::touched` names every entity that
//! changed so a persistence layer writes only those; a touched key that is no longer in the state
//! was removed (old signals and maintenance windows age out).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertKind};
use super::balance::{Balance, BalanceKey, LedgerEntry};
use super::event::{CanonicalEvent, EventKind, MaintenanceWindow, OrderEvent, Stamp, SystemAlertEvent};
use super::order::Order;
use super::position::{Position, PositionKey};
use super::signal::Signal;

/// How many signals are kept (the newest by event time).
pub const MAX_SIGNALS: usize = 1000;
/// How many maintenance windows are kept (the latest starting).
pub const MAX_MAINTENANCE_WINDOWS: usize = 100;

/// A signal as stored, with when it was generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalRecord {
    /// Time and id of the event.
    pub stamp: Stamp,
    /// The signal.
    pub signal: Signal,
}

/// A maintenance window as stored, with the announcement that described it last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRecord {
    /// Time and id of the newest announcement of this window.
    pub stamp: Stamp,
    /// The window.
    pub window: MaintenanceWindow,
}

/// Which entities an event changed, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Touched {
    /// Order ids.
    pub orders: BTreeSet<String>,
    /// Positions.
    pub positions: BTreeSet<PositionKey>,
    /// Balances.
    pub balances: BTreeSet<BalanceKey>,
    /// Ledger transaction ids.
    pub ledger: BTreeSet<String>,
    /// Signal keys (see `TradingState::signals`).
    pub signals: BTreeSet<String>,
    /// Maintenance window keys.
    pub maintenance: BTreeSet<String>,
}

impl Touched {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
            && self.positions.is_empty()
            && self.balances.is_empty()
            && self.ledger.is_empty()
            && self.signals.is_empty()
            && self.maintenance.is_empty()
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Alerts raised, to be stored by the caller.
    pub alerts: Vec<Alert>,
    /// Entities that changed.
    pub touched: Touched,
}

/// All trading state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TradingState {
    /// Orders by order id.
    pub orders: BTreeMap<String, Order>,
    /// Positions by (account, symbol); serialized as a list.
    #[serde(with = "as_list")]
    pub positions: BTreeMap<PositionKey, Position>,
    /// Balances by (account, asset); serialized as a list.
    #[serde(with = "as_list")]
    pub balances: BTreeMap<BalanceKey, Balance>,
    /// Deposits and withdrawals by transaction id.
    pub ledger: BTreeMap<String, LedgerEntry>,
    /// Recent signals by `<event time>|<event id or symbol:action>`, which sorts by time.
    pub signals: BTreeMap<String, SignalRecord>,
    /// Maintenance windows by `<start>|<end>`, which sorts by start.
    pub maintenance: BTreeMap<String, MaintenanceRecord>,
}

/// A time formatted so that string order is time order.
fn sortable(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// The position an order's fills belong to, once its symbol is known.
fn position_key(order: &Order) -> Option<PositionKey> {
    order.symbol.as_ref().map(|symbol| PositionKey { account: order.account.clone(), symbol: symbol.clone() })
}

impl TradingState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event; returns its alerts and what it changed.
    pub fn apply(&mut self, event: &CanonicalEvent) -> Applied {
        let mut applied = Applied::default();
        match &event.kind {
            EventKind::Order(order) => self.apply_order(order, event.at, &mut applied),
            EventKind::Position(snapshot) => {
                let key = PositionKey { account: snapshot.account.clone(), symbol: snapshot.symbol.clone() };
                let position = self.positions.entry(key.clone()).or_insert_with(|| Position::new(&key));
                let (taken, alert) = position.apply_venue(snapshot, event.stamp());
                if taken {
                    applied.touched.positions.insert(key);
                }
                applied.alerts.extend(alert);
            }
            EventKind::MarginCall(call) => {
                let key = PositionKey { account: call.account.clone(), symbol: call.symbol.clone() };
                let position = self.positions.entry(key.clone()).or_insert_with(|| Position::new(&key));
                let duplicate =
                    position.margin.as_ref().is_some_and(|m| m.stamp == event.stamp() && m.event == *call);
                if position.apply_margin(call, event.stamp()) {
                    applied.touched.positions.insert(key);
                }
                if !duplicate {
                    let ratio = call.margin_ratio.map_or_else(|| "unknown".to_owned(), |r| r.to_string());
                    let message = format!("margin call on {}: margin ratio {ratio}", call.symbol);
                    applied.alerts.push(Alert::new(
                        AlertKind::Margin,
                        call.symbol.clone(),
                        message,
                        event.at,
                    ));
                }
            }
            EventKind::Balance(snapshot) => {
                let balance = Balance::from_event(snapshot, event.stamp());
                let key = balance.key();
                let changed = match self.balances.get_mut(&key) {
                    Some(known) => known.merge(balance),
                    None => self.balances.insert(key.clone(), balance).is_none(),
                };
                if changed {
                    applied.touched.balances.insert(key);
                }
            }
            EventKind::Ledger(entry) => {
                let entry = LedgerEntry::from_event(entry, event.at);
                let id = entry.transaction_id.clone();
                match self.ledger.get_mut(&id) {
                    Some(known) => {
                        let (changed, alert) = known.merge_repeat(&entry);
                        applied.alerts.extend(alert);
                        if changed {
                            applied.touched.ledger.insert(id);
                        }
                    }
                    None => {
                        self.ledger.insert(id.clone(), entry);
                        applied.touched.ledger.insert(id);
                    }
                }
            }
            EventKind::Signal(signal) => self.apply_signal(signal, event, &mut applied),
            EventKind::Maintenance(window) => self.apply_maintenance(window, event.stamp(), &mut applied),
            EventKind::SystemAlert(alert) => applied.alerts.push(system_alert(alert, event.at)),
            EventKind::Test => {}
        }
        applied
    }

    /// An order event: update the order, then move its changed fills into its position.
    ///
    /// Only the fills from the first one that changed are rebuilt and handed over, so an event
    /// that adds a fill costs O(log n) however many fills the order and the position have.
    fn apply_order(&mut self, event: &OrderEvent, at: DateTime<Utc>, applied: &mut Applied) {
        let id = event.order_id.as_str();
        let order = self.orders.entry(id.to_owned()).or_insert_with(|| Order::new(id, at));
        let old_key = position_key(order);
        let change = order.apply_tracked(event, at);
        applied.alerts.extend(change.alerts);
        if !change.changed {
            return;
        }
        applied.touched.orders.insert(id.to_owned());
        let new_key = position_key(order);
        // The account can become known after fills were booked without one, or an earlier report
        // name another symbol: move them. A position left with nothing goes, as if the fills had
        // never been booked there (the state does not depend on the arrival order).
        if let Some(old_key) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
            if let Some(position) = self.positions.get_mut(&old_key) {
                if position.replace_order_fills(id, Vec::new()) {
                    applied.alerts.extend(position.reconcile());
                    if position.is_empty() {
                        self.positions.remove(&old_key);
                    }
                    applied.touched.positions.insert(old_key);
                }
            }
        }
        let Some(key) = new_key else { return };
        // The position holds the order's fills as of its previous change; those before both
        // `fills_from` and the count it holds are still the order's (a side that just became
        // known, or a move, leaves the position holding none).
        let held = self.positions.get(&key).map_or(0, |p| p.order_fill_count(id));
        let from = change.fills_from.unwrap_or(usize::MAX).min(held);
        let tail = order.fills_from(from);
        if tail.is_empty() && !self.positions.contains_key(&key) {
            return;
        }
        let position = self.positions.entry(key.clone()).or_insert_with(|| Position::new(&key));
        if position.splice_order_fills(id, from, tail) {
            // The fills changed: the venue's newest snapshot may now agree or disagree with them.
            applied.alerts.extend(position.reconcile());
            applied.touched.positions.insert(key);
        }
    }

    /// A signal: stored under its time-ordered key; the oldest beyond `MAX_SIGNALS` age out.
    fn apply_signal(&mut self, signal: &Signal, event: &CanonicalEvent, applied: &mut Applied) {
        let identity = event.id.clone().unwrap_or_else(|| format!("{}:{:?}", signal.symbol, signal.action));
        let key = format!("{}|{identity}", sortable(event.at));
        if self.signals.contains_key(&key) {
            return;
        }
        self.signals.insert(key.clone(), SignalRecord { stamp: event.stamp(), signal: signal.clone() });
        applied.touched.signals.insert(key);
        while self.signals.len() > MAX_SIGNALS {
            if let Some((old, _)) = self.signals.pop_first() {
                applied.touched.signals.insert(old);
            }
        }
    }

    /// A maintenance window: the newest announcement of the same window wins.
    fn apply_maintenance(&mut self, window: &MaintenanceWindow, stamp: Stamp, applied: &mut Applied) {
        let key = format!("{}|{}", sortable(window.start_time), sortable(window.end_time));
        if self.maintenance.get(&key).is_some_and(|known| known.stamp >= stamp) {
            return;
        }
        self.maintenance.insert(key.clone(), MaintenanceRecord { stamp, window: window.clone() });
        applied.touched.maintenance.insert(key);
        while self.maintenance.len() > MAX_MAINTENANCE_WINDOWS {
            if let Some((old, _)) = self.maintenance.pop_first() {
                applied.touched.maintenance.insert(old);
            }
        }
    }

    /// Whether `at` falls inside a stored maintenance window.
    pub fn in_maintenance(&self, at: DateTime<Utc>) -> bool {
        self.maintenance.values().any(|m| m.window.start_time <= at && at < m.window.end_time)
    }

    /// Recomputes every position's fills from the orders, keeping venue and margin snapshots;
    /// returns the positions whose persisted (folded) state changed.
    ///
    /// Positions are persisted without their fills, so this must run after loading orders and
    /// positions from a store and before the next `apply`; it restores exactly the fold the
    /// events built (the fold over the same fills in the same canonical order).
    pub fn rebuild_positions(&mut self) -> BTreeSet<PositionKey> {
        let mut by_key: BTreeMap<PositionKey, Vec<_>> = BTreeMap::new();
        for order in self.orders.values() {
            if let Some(key) = position_key(order) {
                by_key.entry(key).or_default().extend(order.fills());
            }
        }
        let mut changed = BTreeSet::new();
        for (key, position) in &mut self.positions {
            if position.rebuild(by_key.remove(key).unwrap_or_default()) {
                changed.insert(key.clone());
            }
        }
        for (key, fills) in by_key.into_iter().filter(|(_, f)| !f.is_empty()) {
            self.positions
                .insert(key.clone(), Position::from_fills(key.account.clone(), key.symbol.clone(), fills));
            changed.insert(key);
        }
        changed
    }
}

/// A venue `system.alert` as a `system` alert about its symbols (or its title).
fn system_alert(event: &SystemAlertEvent, at: DateTime<Utc>) -> Alert {
    let subject = if event.affected_symbols.is_empty() {
        event.title.clone().unwrap_or_else(|| "system".to_owned())
    } else {
        event.affected_symbols.join(",")
    };
    let parts = [&event.level, &event.title, &event.message, &event.recommendation];
    let message = parts.iter().filter_map(|p| p.as_deref()).collect::<Vec<_>>().join(": ");
    Alert::new(AlertKind::System, subject, message, at)
}

/// Entities that know their own key.
pub(crate) trait Keyed {
    /// The key type.
    type Key: Ord;
    /// The key of this entity.
    fn key(&self) -> Self::Key;
}

impl Keyed for Position {
    type Key = PositionKey;
    fn key(&self) -> PositionKey {
        Position::key(self)
    }
}

impl Keyed for Balance {
    type Key = BalanceKey;
    fn key(&self) -> BalanceKey {
        Balance::key(self)
    }
}

/// Serializes a map whose keys are structs as the list of its values (JSON object keys must be
/// strings); the keys are rebuilt from the values on the way back.
mod as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Keyed;

    /// Writes the values in key order.
    pub fn serialize<K, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    /// Reads a list of values and keys each by itself.
    pub fn deserialize<'de, V, D>(d: D) -> Result<BTreeMap<V::Key, V>, D::Error>
    where
        V: Keyed + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<V>::deserialize(d)?.into_iter().map(|v| (v.key(), v)).collect())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
