//! Orders and their state machine (TRADING.md, Orders, rules 1–8).
//!
//! An order keeps the *facts* the venue reported — the strongest status reported so far, the set
//! of trades by id, the set of cumulative snapshots — and derives status, filled quantity,
//! average price and overfill from them. Every fact merges as a join (max, set union, earliest
//! terminal), so the derived order is the same whatever order events arrive in, and applying an
//! event twice changes nothing. Conflicting duplicates (same trade id or cumulative quantity with
//! different values) raise an alert and keep the earliest report by event time (ties: the smaller
//! values), so they too come out the same in any arrival order.
//!
//! Sources that send both trade ids and cumulative snapshots for one order: the fills come from
//! the trades (they carry exact prices and commissions), and when the highest running total is
//! more than the trades add up to, its remainder is one more fill priced so that the fills total
//! the running total at its average (`fill::remainder_execution`). So the fills, and the
//! position built from them, always cover the largest filled quantity the venue reported with a
//! price, whatever order the two kinds of report arrive in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertKind};
use super::decimal::{div, sub};
use super::event::{OrderAction, OrderEvent, TradeReport};
use super::fill::{Fill, Snapshot, Trade};
use super::order_fills::{DerivedFills, FactChange};

/// Order status, ordered along the lifecycle: pending < open < partially_filled < terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Sent, not yet acknowledged by the venue.
    Pending,
    /// Working on the book.
    Open,
    /// Some quantity filled, the rest working.
    PartiallyFilled,
    /// Fully filled (terminal).
    Filled,
    /// Cancelled (terminal; later fills still count).
    Cancelled,
    /// Rejected by the venue (terminal).
    Rejected,
    /// Expired (terminal; later fills still count).
    Expired,
}

impl OrderStatus {
    /// Parses a status, accepting venue spellings (`NEW`, `canceled`, `partially-filled`, …).
    pub fn parse(raw: &str) -> Option<Self> {
        let norm = raw.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Some(match norm.as_str() {
            "pending" | "pending_new" => Self::Pending,
            "open" | "new" | "accepted" | "active" | "working" => Self::Open,
            "partially_filled" | "partial_fill" | "partial" | "partiallyfilled" => Self::PartiallyFilled,
            "filled" | "fill" => Self::Filled,
            "cancelled" | "canceled" => Self::Cancelled,
            "rejected" => Self::Rejected,
            "expired" | "expired_in_match" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether nothing but fills can follow this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Filled | Self::Cancelled | Self::Rejected | Self::Expired)
    }
}

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buy: adds to a position.
    Buy,
    /// Sell: subtracts from a position.
    Sell,
}

impl Side {
    /// `quantity` as a position counts it: buys add, sells subtract.
    pub fn signed(self, quantity: Decimal) -> Decimal {
        match self {
            Self::Buy => quantity,
            Self::Sell => -quantity,
        }
    }

    /// `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }

    /// Parses `buy`/`sell`, case-insensitively.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "buy" | "b" => Some(Self::Buy),
            "sell" | "s" => Some(Self::Sell),
            _ => None,
        }
    }
}

/// How much of the order has executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing filled.
    None,
    /// Some filled, less than the quantity (or the quantity is unknown).
    Partial,
    /// At least the quantity filled.
    Complete,
}

/// An order as far as the venue's events have told us.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The venue's order id.
    pub order_id: String,
    /// The client's own id.
    pub client_order_id: Option<String>,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument; `None` until an event says (fill before order).
    pub symbol: Option<String>,
    /// Buy or sell; `None` until an event says.
    pub side: Option<Side>,
    /// `market`, `limit`, … as sent.
    #[serde(rename = "type")]
    pub order_type: Option<String>,
    /// Ordered quantity; `None` until an event says. An amend changes it: the newest event (by
    /// event time) that names a quantity gives it.
    pub quantity: Option<Decimal>,
    /// Limit (or stop) price; like `quantity`, the newest event that names one gives it.
    pub price: Option<Decimal>,
    /// When the event that gave `quantity` happened.
    #[serde(default)]
    pub quantity_at: Option<ValueTime>,
    /// When the event that gave `price` happened.
    #[serde(default)]
    pub price_at: Option<ValueTime>,
    /// Current status, derived from the reported status and the fills.
    pub status: OrderStatus,
    /// Total filled (never decreases).
    pub filled_quantity: Decimal,
    /// Σ(price·qty)/Σqty of the fills; `None` before any priced fill.
    pub average_price: Option<Decimal>,
    /// How much was filled beyond the quantity.
    pub overfill_quantity: Option<Decimal>,
    /// When the venue created the order.
    pub created_at: Option<DateTime<Utc>>,
    /// Latest event time seen for this order.
    pub updated_at: DateTime<Utc>,
    /// Whether the order can only reduce a position.
    pub reduce_only: bool,
    /// Why the order exists when not by the client, e.g. `liquidation`.
    pub origin: Option<String>,
    /// Cancel or reject reason.
    pub reason: Option<String>,
    /// When the events that gave the descriptive fields happened (see [`DescribedAt`]).
    #[serde(default)]
    pub described_at: DescribedAt,
    /// The strongest status the venue reported (the lattice value, before fills are considered).
    pub reported_status: OrderStatus,
    /// Event time of the terminal status in `reported_status`.
    pub terminal_at: Option<DateTime<Utc>>,
    /// The highest cumulative filled quantity reported, priced or not.
    pub reported_filled: Decimal,
    /// Executions by trade id.
    pub trades: BTreeMap<String, Trade>,
    /// Distinct cumulative snapshots by cumulative quantity.
    pub snapshots: BTreeMap<Decimal, Snapshot>,
    /// The executions derived from `trades` and `snapshots`; not persisted.
    #[serde(skip)]
    derived: DerivedFills,
    /// Facts added or changed since the store last saved them (see [`Order::take_unsaved`]).
    #[serde(skip)]
    unsaved: Unsaved,
}

/// The report that gave an order's quantity or price, to tell which of two gives it (see
/// [`ValueTime::outranks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueTime {
    /// Event time.
    pub at: DateTime<Utc>,
    /// Whether an update (not `order.created`) gave it.
    pub update: bool,
    /// The venue's sequence number, 0 when it sends none.
    pub sequence: u64,
    /// [`ReportRank::report`] of the report.
    #[serde(default)]
    pub report: u64,
}

impl ValueTime {
    /// Whether a report at `self` of `value` gives the field rather than the one at `known` of
    /// `known_value`. An update (an amend) outranks the creation; of two updates the newer (by
    /// event time, then the venue's sequence number); of two creations the earlier, since a later
    /// `order.created` only fills in what is missing (TRADING.md rule 2). Ties go to the larger
    /// value, so the result never depends on which came first.
    fn outranks(self, value: Decimal, known: ValueTime, known_value: Decimal) -> bool {
        match (self.update, known.update) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => (self, value) > (known, known_value),
            (false, false) => {
                let rank = |t: ValueTime| std::cmp::Reverse((t.at, t.sequence, t.report));
                (rank(self), value) > (rank(known), known_value)
            }
        }
    }
}

/// Event times of the reports that gave an order's descriptive fields. Reports that disagree
/// (two `order.created` for one id, or two sources using the same order id) are a conflict: the
/// earliest report by event time gives the field (ties: the smaller value), so the order and the
/// position its fills go to do not depend on which came first (TRADING.md rule 2: a later report
/// only fills in what is missing). A field without a time was given before these were kept: it
/// counts as the earliest, so it stays as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribedAt {
    /// Of `client_order_id`.
    pub client_order_id: Option<ReportRank>,
    /// Of `account`.
    pub account: Option<ReportRank>,
    /// Of `symbol`.
    pub symbol: Option<ReportRank>,
    /// Of `side`.
    pub side: Option<ReportRank>,
    /// Of `order_type`.
    pub order_type: Option<ReportRank>,
}

/// The order of reports for descriptive fields, the first winning: by event time, then the
/// venue's sequence number, then a digest of what the report says. So of two reports that tie
/// on time and sequence, one gives every field it names and the other none: never a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRank {
    /// Event time.
    pub at: DateTime<Utc>,
    /// The venue's sequence number, 0 when it sends none.
    pub sequence: u64,
    /// The first 8 bytes of the SHA-256 of the report's description.
    pub report: u64,
}

impl ReportRank {
    /// The rank of `event`, timed `at`.
    fn of(event: &OrderEvent, at: DateTime<Utc>) -> Self {
        use sha2::Digest;
        let description = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            event.client_order_id,
            event.account,
            event.symbol,
            event.side,
            event.order_type,
            event.quantity,
            event.price,
            event.action
        );
        let hash = sha2::Sha256::digest(description.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        ReportRank { at, sequence: event.sequence.unwrap_or(0), report: u64::from_be_bytes(first) }
    }
}

/// Merges one report of a descriptive field: the first by (`rank`, value) gives it. Returns the
/// two values when they conflict: (kept, the other).
fn earliest<T: Clone + Ord>(
    slot: &mut Option<T>,
    slot_rank: &mut Option<ReportRank>,
    value: &Option<T>,
    rank: ReportRank,
) -> Option<(T, T)> {
    let value = value.as_ref()?;
    let Some(known) = slot.as_ref() else {
        *slot = Some(value.clone());
        *slot_rank = Some(rank);
        return None;
    };
    // A value given before ranks were kept counts as the first: it stays.
    let first = ReportRank { at: DateTime::<Utc>::MIN_UTC, sequence: 0, report: 0 };
    let known_rank = slot_rank.unwrap_or(first);
    if (rank, value) < (known_rank, known) {
        let replaced = known.clone();
        *slot = Some(value.clone());
        *slot_rank = Some(rank);
        return (replaced != *value).then(|| (value.clone(), replaced));
    }
    (known != value).then(|| (known.clone(), value.clone()))
}

/// Bookkeeping for the store, not part of what an order is: equal whatever it holds.
#[derive(Debug, Clone, Default)]
struct Unsaved(Vec<FactKey>);

impl PartialEq for Unsaved {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One fact of an order: a trade by id or a cumulative snapshot by quantity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FactKey {
    /// `trades[id]`.
    Trade(String),
    /// `snapshots[cum]`.
    Snapshot(Decimal),
}

/// What applying one event to an order did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderChange {
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// Whether the order changed (and must be persisted).
    pub changed: bool,
    /// The index (in [`Order::fills`]) of the first fill that may have changed; `None` when the
    /// fills are unchanged.
    pub fills_from: Option<usize>,
}

/// Folds one reported status into the strongest reported so far: the order lifecycle as one
/// `match` on (current, reported).
fn merge_reported(
    (current, current_at): (OrderStatus, Option<DateTime<Utc>>),
    (reported, at): (OrderStatus, DateTime<Utc>),
) -> (OrderStatus, Option<DateTime<Utc>>) {
    use OrderStatus::*;
    match (current, reported) {
        // Filled is final: a cancel, reject or expiry after it is ignored. Keep the earliest time.
        (Filled, Filled) => (Filled, current_at.map(|t| t.min(at)).or(Some(at))),
        (Filled, _) => (current, current_at),
        // A venue saying `filled` outranks any other ending: fills cannot be undone.
        (_, Filled) => (Filled, Some(at)),
        // Two different endings: the one that happened first (by event time) stands; ties go to
        // the lower-ranked status so the outcome never depends on arrival order.
        (c, r) if c.is_terminal() && r.is_terminal() => match current_at {
            Some(c_at) if (c_at, c) <= (at, r) => (current, current_at),
            _ => (reported, Some(at)),
        },
        // Rule 1: nothing but fills changes a terminal order.
        (c, _) if c.is_terminal() => (current, current_at),
        (_, r) if r.is_terminal() => (reported, Some(at)),
        // Working statuses only move forward: a late `pending`/`open` changes nothing.
        (c, r) => (c.max(r), None),
    }
}

/// The status shown: the reported lattice value combined with how much actually executed.
fn effective_status(reported: OrderStatus, progress: Progress) -> OrderStatus {
    match (reported, progress) {
        // Rules 6 and 7: fully (or over-) filled is `filled`, even after a cancel or expiry.
        (_, Progress::Complete) => OrderStatus::Filled,
        // Rule 6: fills after a cancel count but keep the terminal status.
        (r, _) if r.is_terminal() => r,
        (_, Progress::Partial) => OrderStatus::PartiallyFilled,
        (r, Progress::None) => r,
    }
}

impl Order {
    /// A new order known only by id, first heard of at `at`.
    pub fn new(order_id: impl Into<String>, at: DateTime<Utc>) -> Self {
        Order {
            order_id: order_id.into(),
            client_order_id: None,
            account: None,
            symbol: None,
            side: None,
            order_type: None,
            quantity: None,
            price: None,
            quantity_at: None,
            price_at: None,
            status: OrderStatus::Pending,
            filled_quantity: Decimal::ZERO,
            average_price: None,
            overfill_quantity: None,
            created_at: None,
            updated_at: at,
            reduce_only: false,
            origin: None,
            reason: None,
            described_at: DescribedAt::default(),
            reported_status: OrderStatus::Pending,
            terminal_at: None,
            reported_filled: Decimal::ZERO,
            trades: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            derived: DerivedFills::derive((&BTreeMap::new(), &BTreeMap::new())),
            unsaved: Unsaved::default(),
        }
    }

    /// Whether symbol, side and quantity are all known, so fills can be attributed and checked.
    pub fn is_known(&self) -> bool {
        self.symbol.is_some() && self.side.is_some() && self.quantity.is_some()
    }

    /// Applies one order event timed `at`; returns the alerts it raises.
    pub fn apply(&mut self, event: &OrderEvent, at: DateTime<Utc>) -> Vec<Alert> {
        self.apply_tracked(event, at).alerts
    }

    /// Applies one order event timed `at`; returns its alerts and what changed. Costs O(log k)
    /// in the order's k fills when the event adds a fill after all others, O(k) otherwise.
    pub fn apply_tracked(&mut self, event: &OrderEvent, at: DateTime<Utc>) -> OrderChange {
        self.derived.ensure((&self.trades, &self.snapshots));
        let before = self.without_facts();
        let mut changes = Vec::new();
        let mut alerts = Vec::new();
        let had_fills = self.filled_quantity > Decimal::ZERO;
        let skipped_before = self.derived.skipped.clone();
        let guessed_before = self.guessed_remainder();
        let overfill_before = self.overfill_quantity.unwrap_or_default();

        for (field, kept, other) in self.merge_description(event, at) {
            let message = format!(
                "reports of order {} disagree on {field}: `{kept}` (the earliest report) is kept, `{other}` is not",
                self.order_id
            );
            alerts.push(self.alert(AlertKind::ConflictingDuplicate, message, at));
        }
        if let Some(status) = event.status {
            (self.reported_status, self.terminal_at) =
                merge_reported((self.reported_status, self.terminal_at), (status, at));
        }
        if let Some(trade) = &event.trade {
            alerts.extend(self.record_trade(trade, event.sequence, at, &mut changes));
        }
        let snapshot_alert = event.filled_quantity.and_then(|cum| {
            self.record_snapshot(cum, event.average_price, event.commission, at, &mut changes)
        });
        let mut fills_from = self.derived.update((&self.trades, &self.snapshots), &changes);
        if before.side.is_some() && before.side != self.side {
            // An earlier report named the other side: every fill changes direction.
            fills_from = Some(0);
        }
        self.refresh();
        // A trade report prices its own fill: its running total needs no average, unless the
        // total is more than the trades known account for.
        let priced_by_trades = event.trade.is_some()
            && event.average_price.is_none()
            && self.reported_filled <= self.derived.executed;
        alerts.extend(snapshot_alert.filter(|_| !priced_by_trades));

        if !had_fills && self.filled_quantity > Decimal::ZERO && !self.is_known() {
            alerts.push(self.alert(
                AlertKind::FillBeforeOrder,
                "fill received before the order was known; symbol, side or quantity still missing, \
                 the fill affects positions once they arrive",
                at,
            ));
        }
        let skipped: Vec<Decimal> =
            self.derived.skipped.iter().filter(|c| !skipped_before.contains(c)).copied().collect();
        for cum in skipped {
            let message = format!(
                "cumulative fill {cum} is inconsistent with the higher cumulative fills (its increment would \
                 have a non-positive price); left out of the fill split"
            );
            alerts.push(self.alert(AlertKind::DataQuality, message, at));
        }
        if let Some(total) = self.guessed_remainder().filter(|g| Some(*g) != guessed_before) {
            let message = format!(
                "the trades cost more than cumulative fill {total} at its average price; the part of it \
                 no trade reports is priced at that average"
            );
            alerts.push(self.alert(AlertKind::DataQuality, message, at));
        }
        if let Some(over) = self.overfill_quantity.filter(|o| *o > overfill_before) {
            let message = format!(
                "filled {} of {} ordered: overfilled by {over}; the fills count",
                self.filled_quantity,
                self.quantity.unwrap_or_default()
            );
            alerts.push(self.alert(AlertKind::Overfill, message, at));
        }
        let changed = !changes.is_empty() || self.without_facts() != before;
        OrderChange { alerts, changed, fills_from }
    }

    /// A copy of this order without its facts (trades, snapshots, derived executions): what
    /// an event changes besides facts, cheap to compare whatever the number of fills. The store
    /// saves this as the order's document and the facts one row each, so a busy order costs its
    /// new fills per write, not all of them.
    pub fn without_facts(&mut self) -> Order {
        let trades = std::mem::take(&mut self.trades);
        let snapshots = std::mem::take(&mut self.snapshots);
        let derived = std::mem::take(&mut self.derived);
        let unsaved = std::mem::take(&mut self.unsaved);
        let copy = self.clone();
        (self.trades, self.snapshots, self.derived, self.unsaved) = (trades, snapshots, derived, unsaved);
        copy
    }

    /// The facts added or changed since the last call, deduplicated, in key order.
    pub fn take_unsaved(&mut self) -> Vec<FactKey> {
        let mut keys = std::mem::take(&mut self.unsaved.0);
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every fact of the order (for a full save).
    pub fn fact_keys(&self) -> Vec<FactKey> {
        let trades = self.trades.keys().cloned().map(FactKey::Trade);
        trades.chain(self.snapshots.keys().copied().map(FactKey::Snapshot)).collect()
    }

    /// Puts a saved fact back (loading from the store); the derived fills are recomputed on use.
    pub fn restore_trade(&mut self, id: String, trade: Trade) {
        self.trades.insert(id, trade);
        self.derived = DerivedFills::default();
    }

    /// Puts a saved snapshot back (loading from the store).
    pub fn restore_snapshot(&mut self, cum: Decimal, snapshot: Snapshot) {
        self.snapshots.insert(cum, snapshot);
        self.derived = DerivedFills::default();
    }

    /// The fills of this order, deterministic, once symbol and side are known (empty before):
    /// from trades (plus the remainder of a running total they do not reach) when the source has
    /// trade ids, otherwise derived from cumulative snapshots.
    pub fn fills(&self) -> Vec<Fill> {
        self.fills_from(0)
    }

    /// `fills()[from..]`, without building the fills before `from`.
    pub fn fills_from(&self, from: usize) -> Vec<Fill> {
        let (Some(symbol), Some(side)) = (&self.symbol, self.side) else {
            return Vec::new();
        };
        let fresh;
        let derived = if self.derived.is_valid() {
            &self.derived
        } else {
            fresh = DerivedFills::derive((&self.trades, &self.snapshots));
            &fresh
        };
        let executions = derived.executions.get(from..).unwrap_or_default();
        executions
            .iter()
            .map(|e| Fill {
                order_id: self.order_id.clone(),
                symbol: symbol.clone(),
                side,
                quantity: e.quantity,
                price: e.price,
                commission: e.commission,
                at: e.at,
                key: e.key.clone(),
            })
            .collect()
    }

    /// Fills in descriptive fields still unknown (rule 2); a report that disagrees with a known
    /// one is a conflict, settled by [`DescribedAt`] and returned as (field, kept, other).
    /// Quantity and price are what an amend changes: each is the newest named (see [`newest`]).
    fn merge_description(
        &mut self,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> Vec<(&'static str, String, String)> {
        fn fill_in<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
        /// Whichever of (`slot`, `slot_at`) and (`value`, `when`) outranks the other
        /// ([`ValueTime::outranks`]). `seen` stands in for `slot_at` in a document saved before
        /// these times were kept: an update at the newest event time of the order, which is no
        /// older than the event that gave the value.
        fn newest(
            slot: &mut Option<Decimal>,
            slot_at: &mut Option<ValueTime>,
            value: Option<Decimal>,
            when: ValueTime,
            seen: DateTime<Utc>,
        ) {
            let Some(value) = value else { return };
            let newer = match *slot {
                Some(known) => {
                    let known_at = slot_at.unwrap_or(ValueTime {
                        at: seen,
                        update: true,
                        sequence: u64::MAX,
                        report: 0,
                    });
                    when.outranks(value, known_at, known)
                }
                None => true,
            };
            if newer {
                *slot = Some(value);
                *slot_at = Some(when);
            }
        }
        let rank = ReportRank::of(event, at);
        let times = &mut self.described_at;
        let conflicts = [
            earliest(&mut self.client_order_id, &mut times.client_order_id, &event.client_order_id, rank)
                .map(|(kept, other)| ("clientOrderId", kept, other)),
            earliest(&mut self.account, &mut times.account, &event.account, rank)
                .map(|(kept, other)| ("account", kept, other)),
            earliest(&mut self.symbol, &mut times.symbol, &event.symbol, rank)
                .map(|(kept, other)| ("symbol", kept, other)),
            earliest(&mut self.side, &mut times.side, &event.side, rank)
                .map(|(kept, other)| ("side", kept.as_str().to_owned(), other.as_str().to_owned())),
            earliest(&mut self.order_type, &mut times.order_type, &event.order_type, rank)
                .map(|(kept, other)| ("type", kept, other)),
        ];
        // Once the order is over (filled, cancelled, …), a later event cannot amend it: a venue
        // refuses the amend, and one that came back anyway (the paper broker amending a leg that
        // filled meanwhile) must not resize a finished order.
        let over = self.terminal_at.is_some_and(|end| at > end);
        if !over {
            let update = event.action != OrderAction::Created;
            let when = ValueTime { at, update, sequence: rank.sequence, report: rank.report };
            newest(&mut self.quantity, &mut self.quantity_at, event.quantity, when, self.updated_at);
            newest(&mut self.price, &mut self.price_at, event.price, when, self.updated_at);
        }
        fill_in(&mut self.origin, &event.origin);
        fill_in(&mut self.reason, &event.reason);
        self.reduce_only |= event.reduce_only.unwrap_or(false);
        let created = event.created_at.or((event.action == OrderAction::Created).then_some(at));
        self.created_at = match (self.created_at, created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.updated_at = self.updated_at.max(at);
        conflicts.into_iter().flatten().collect()
    }

    /// Records an execution by trade id (rules 4 and 5).
    fn record_trade(
        &mut self,
        trade: &TradeReport,
        sequence: Option<u64>,
        at: DateTime<Utc>,
        changes: &mut Vec<FactChange>,
    ) -> Option<Alert> {
        match self.trades.get_mut(&trade.trade_id) {
            None => {
                let recorded = Trade {
                    quantity: trade.quantity,
                    price: trade.price,
                    commission: trade.commission,
                    at,
                    sequence,
                };
                self.trades.insert(trade.trade_id.clone(), recorded);
                changes.push(FactChange::NewTrade(trade.trade_id.clone()));
                self.unsaved.0.push(FactKey::Trade(trade.trade_id.clone()));
                None
            }
            // Another report of a known trade: the earliest report wins (then the smaller
            // quantity and price) and the commission and sequence join over every report (largest,
            // lowest), so the fill does not depend on arrival order. Different values also alert.
            Some(known) => {
                let conflict = (trade.quantity, trade.price) != (known.quantity, known.price);
                let repeat_wins = (at, trade.quantity, trade.price) < (known.at, known.quantity, known.price);
                let (kept, dropped) = if repeat_wins {
                    ((trade.quantity, trade.price), (known.quantity, known.price))
                } else {
                    ((known.quantity, known.price), (trade.quantity, trade.price))
                };
                let commission = known.commission.max(trade.commission);
                let sequence = min_some(known.sequence, sequence);
                let merged = if repeat_wins {
                    Trade { quantity: trade.quantity, price: trade.price, commission, at, sequence }
                } else {
                    Trade { commission, sequence, ..known.clone() }
                };
                if merged != *known {
                    *known = merged;
                    changes.push(FactChange::Other);
                    self.unsaved.0.push(FactKey::Trade(trade.trade_id.clone()));
                }
                conflict.then(|| {
                    let message = format!(
                        "trade {} reported as {} @ {} and as {} @ {}; kept the earliest report, {} @ {}",
                        trade.trade_id, kept.0, kept.1, dropped.0, dropped.1, kept.0, kept.1
                    );
                    self.alert(AlertKind::ConflictingDuplicate, message, at)
                })
            }
        }
    }

    /// Records a cumulative snapshot (rules 3 and 4).
    fn record_snapshot(
        &mut self,
        cum: Decimal,
        average: Option<Decimal>,
        commission: Option<Decimal>,
        at: DateTime<Utc>,
        changes: &mut Vec<FactChange>,
    ) -> Option<Alert> {
        if cum.is_zero() {
            return None;
        }
        self.reported_filled = self.reported_filled.max(cum);
        let Some(average_price) = average.filter(|a| *a > Decimal::ZERO) else {
            let message = format!(
                "cumulative fill {cum} has no positive averagePrice; counted as filled but not priced"
            );
            return Some(self.alert(AlertKind::DataQuality, message, at));
        };
        match self.snapshots.get_mut(&cum) {
            None => {
                self.snapshots.insert(cum, Snapshot { average_price, at, commission });
                changes.push(FactChange::NewSnapshot(cum));
                self.unsaved.0.push(FactKey::Snapshot(cum));
                None
            }
            // Another report of a known total: as for trades, the earliest report wins (then the
            // lower average) and the commission joins over every report (largest).
            Some(known) => {
                let conflict = average_price != known.average_price;
                let repeat_wins = (at, average_price) < (known.at, known.average_price);
                let (kept, dropped) = if repeat_wins {
                    (average_price, known.average_price)
                } else {
                    (known.average_price, average_price)
                };
                let commission = known.commission.max(commission);
                let merged = if repeat_wins {
                    Snapshot { average_price, at, commission }
                } else {
                    Snapshot { commission, ..known.clone() }
                };
                if merged != *known {
                    *known = merged;
                    changes.push(FactChange::Other);
                    self.unsaved.0.push(FactKey::Snapshot(cum));
                }
                conflict.then(|| {
                    let message = format!(
                        "cumulative fill {cum} reported at average {kept} and at {dropped}; kept the earliest report, {kept}"
                    );
                    self.alert(AlertKind::ConflictingDuplicate, message, at)
                })
            }
        }
    }

    /// The running total whose remainder beyond the trades had to be priced at its average.
    fn guessed_remainder(&self) -> Option<Decimal> {
        self.derived.remainder_of.filter(|_| self.derived.remainder_guessed)
    }

    /// Re-derives filled quantity, average price (rule 8), overfill (rule 7) and status.
    fn refresh(&mut self) {
        let executed = self.derived.executed;
        self.filled_quantity = executed.max(self.reported_filled);
        // The fills add up to the top snapshot exactly unless trades came after it.
        let to_top_snapshot = self.derived.remainder_of.is_some()
            && !self.derived.remainder_guessed
            && self.snapshots.keys().next_back() == Some(&executed);
        self.average_price = if self.trades.is_empty() || to_top_snapshot {
            // Σ(price·qty)/Σqty over the derived increments (or the trades and their remainder)
            // telescopes to the top snapshot's average; take it directly so it prints exactly as
            // the venue sent it.
            self.snapshots.values().next_back().map(|s| s.average_price)
        } else {
            div(self.derived.notional, executed)
        };
        let quantity = self.quantity.filter(|q| *q > Decimal::ZERO);
        self.overfill_quantity =
            quantity.filter(|q| self.filled_quantity > *q).map(|q| sub(self.filled_quantity, q));
        let progress = match quantity {
            _ if self.filled_quantity.is_zero() => Progress::None,
            Some(q) if self.filled_quantity >= q => Progress::Complete,
            _ => Progress::Partial,
        };
        self.status = effective_status(self.reported_status, progress);
    }

    /// An alert about this order.
    fn alert(&self, kind: AlertKind, message: impl Into<String>, at: DateTime<Utc>) -> Alert {
        Alert::new(kind, self.order_id.clone(), message, at)
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;

/// The smaller of two optional values, ignoring `None`.
fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
