//! Net positions per (account, symbol): derived from fills, annotated by venue snapshots.
//!
//! A position is a pure function of the *set* of its fills, folded in canonical order (fill
//! time, then order id, then fill key), so it comes out the same whatever order the fills
//! arrived in. When new fills sort after all known ones the fold continues from where it was, in
//! O(new fills · log n); otherwise (a late fill) it is recomputed from the start in O(n), which
//! gives the same result by construction.
//!
//! Only the folded state and the venue snapshots are serialized: the fills are derived from the
//! orders, so a position loaded from a store has none until `TradingState::rebuild_positions`
//! recomputes them (and must be rebuilt before any further event is applied).
//!
//! Venue snapshots (`position.*`, `account.margin_call`) never move the fill-derived quantity;
//! they supply mark price, unrealized PnL, margin ratio and liquidation price (newest event wins)
//! and are compared with the fills to raise reconciliation alerts.
//!
//! Reconciliation is a verdict on the state, not on an arrival: the newest snapshot's quantity
//! against the net of the fills at or before its time (a fill after it is not in it yet), kept
//! as [`Position::mismatch`] and re-evaluated whenever the snapshot or the fills change. A
//! `position_mismatch` alert is raised each time the verdict becomes a disagreement it was not,
//! so a position that ends disagreeing has raised it whatever order its events came in (a
//! snapshot before its fills as much as after them).

use serde::{Deserialize, Serialize};

use rust_decimal::Decimal;

use super::alert::{Alert, AlertKind};
use super::decimal::{add, div, mul, sub};
use super::event::{MarginCallEvent, PositionEvent, PositionPhase, Stamp};
use super::fill::Fill;
use super::fill_book::{FillBook, Splice};

/// Direction of a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PositionSide {
    /// Net bought.
    Long,
    /// Net sold.
    Short,
    /// No position.
    Flat,
}

impl PositionSide {
    /// Parses `long`/`short`/`flat` (`buy`/`sell` accepted), case-insensitively.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "long" | "buy" => Some(Self::Long),
            "short" | "sell" => Some(Self::Short),
            "flat" | "none" => Some(Self::Flat),
            _ => None,
        }
    }
}

/// Identity of a position: account (absent when the source has none) and symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionKey {
    /// Account; events without one share the `None` account.
    pub account: Option<String>,
    /// Instrument.
    pub symbol: String,
}

/// The signed quantity a `position.*` snapshot reports: zero once closed or flat, else its
/// quantity signed by its side, or by `known_side` when it names none (seed 001's
/// `position.updated`); `None` without a quantity or any side.
pub fn snapshot_net(snapshot: &PositionEvent, known_side: Option<PositionSide>) -> Option<Decimal> {
    if snapshot.phase == PositionPhase::Closed || snapshot.side == Some(PositionSide::Flat) {
        return Some(Decimal::ZERO);
    }
    let quantity = snapshot.quantity?;
    Some(match snapshot.side.or(known_side)? {
        PositionSide::Long => quantity,
        PositionSide::Short => -quantity,
        PositionSide::Flat => Decimal::ZERO,
    })
}

/// The venue's latest `position.*` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueSnapshot {
    /// Time and id of the event: the newest wins.
    pub stamp: Stamp,
    /// The snapshot as sent.
    pub event: PositionEvent,
}

/// The venue's latest `account.margin_call` for this position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarginSnapshot {
    /// Time and id of the event: the newest wins.
    pub stamp: Stamp,
    /// The margin call as sent.
    pub event: MarginCallEvent,
}

/// A position and the fills it is computed from.
///
/// Equality compares the fills too; nothing on the event path compares positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument.
    pub symbol: String,
    /// Signed quantity: positive long, negative short.
    pub net_quantity: Decimal,
    /// Average entry price of the open quantity (zero when flat).
    pub average_price: Decimal,
    /// Realized PnL, net of all commissions paid.
    pub realized_pnl: Decimal,
    /// Commissions paid (included in `realized_pnl`).
    pub commission: Decimal,
    /// Every fill of the position, in canonical order. Not persisted: rebuilt from the orders.
    #[serde(skip)]
    fills: FillBook,
    /// The newest `position.*` snapshot.
    pub venue: Option<VenueSnapshot>,
    /// The side of the newest snapshot that named one: seed 001's `position.updated` gives the
    /// quantity without it. Newest by event time, whatever the arrival order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue_side: Option<(Stamp, PositionSide)>,
    /// The newest margin call.
    pub margin: Option<MarginSnapshot>,
    /// How the newest snapshot disagrees with the fills up to its time; `None` when they agree
    /// or cannot be compared (no snapshot quantity, no fills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// A disagreement between the venue and the fills, as compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// The venue's quantity (signed when its snapshot names a side, else absolute).
    pub venue: Decimal,
    /// What the fills held at the snapshot's time (their net quantity), compared the same way.
    pub held: Decimal,
}

/// A position as `GET /api/v1/positions` shows it (SPEC §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionView {
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Instrument.
    pub symbol: String,
    /// Long, short or flat.
    pub side: PositionSide,
    /// Absolute quantity.
    pub quantity: Decimal,
    /// Signed quantity.
    pub net_quantity: Decimal,
    /// Average entry price.
    pub average_price: Decimal,
    /// Realized PnL net of commissions.
    pub realized_pnl: Decimal,
    /// The venue's unrealized PnL, else computed from the mark price; `None` without either.
    pub unrealized_pnl: Option<Decimal>,
    /// Newest mark price from the venue.
    pub mark_price: Option<Decimal>,
    /// Newest margin ratio from the venue.
    pub margin_ratio: Option<Decimal>,
    /// Newest liquidation price from the venue.
    pub liquidation_price: Option<Decimal>,
}

impl Position {
    /// An empty (flat) position.
    pub fn new(key: &PositionKey) -> Self {
        Position {
            account: key.account.clone(),
            symbol: key.symbol.clone(),
            net_quantity: Decimal::ZERO,
            average_price: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            commission: Decimal::ZERO,
            fills: FillBook::default(),
            venue: None,
            venue_side: None,
            margin: None,
            mismatch: None,
        }
    }

    /// The position these fills make, folded in canonical order.
    pub fn from_fills(
        account: Option<String>,
        symbol: impl Into<String>,
        fills: impl IntoIterator<Item = Fill>,
    ) -> Self {
        let mut position = Position::new(&PositionKey { account, symbol: symbol.into() });
        position.rebuild(fills);
        position
    }

    /// Replaces every fill and refolds (venue and margin snapshots stay; the reconciliation
    /// verdict follows silently); returns whether the folded state changed.
    pub fn rebuild(&mut self, fills: impl IntoIterator<Item = Fill>) -> bool {
        let before = (self.net_quantity, self.average_price, self.realized_pnl, self.commission);
        let mismatch_before = self.mismatch.clone();
        self.fills = FillBook::from_fills(fills);
        self.refold();
        self.mismatch = self.verdict();
        before != (self.net_quantity, self.average_price, self.realized_pnl, self.commission)
            || mismatch_before != self.mismatch
    }

    /// This position's key.
    pub fn key(&self) -> PositionKey {
        PositionKey { account: self.account.clone(), symbol: self.symbol.clone() }
    }

    /// Long, short or flat, from the fill-derived quantity.
    pub fn side(&self) -> PositionSide {
        match self.net_quantity {
            q if q > Decimal::ZERO => PositionSide::Long,
            q if q < Decimal::ZERO => PositionSide::Short,
            _ => PositionSide::Flat,
        }
    }

    /// The fills this position is folded from, in canonical order (empty after a load until
    /// `TradingState::rebuild_positions`).
    pub fn fills(&self) -> &FillBook {
        &self.fills
    }

    /// Replaces the fills of one order (its fills are re-derived as a whole, since a late
    /// cumulative snapshot can split an earlier fill); returns whether anything changed.
    pub fn replace_order_fills(&mut self, order_id: &str, fills: Vec<Fill>) -> bool {
        self.splice_order_fills(order_id, 0, fills)
    }

    /// Replaces the fills of one order from its `from`-th fill on (as `Order::fills` lists them)
    /// by `tail`, keeping the first `from`; returns whether anything changed. Costs
    /// O(tail · log n) when the changed fills sort after all others, O(n) otherwise.
    pub fn splice_order_fills(&mut self, order_id: &str, from: usize, tail: Vec<Fill>) -> bool {
        match self.fills.splice(order_id, from, tail) {
            Splice::Unchanged => false,
            Splice::Appended(keys) => {
                let fills = std::mem::take(&mut self.fills);
                for fill in keys.iter().filter_map(|key| fills.get(key)) {
                    self.fold(fill);
                }
                self.fills = fills;
                true
            }
            Splice::Reordered => {
                self.refold();
                true
            }
        }
    }

    /// How many fills of `order_id` this position holds.
    pub fn order_fill_count(&self, order_id: &str) -> usize {
        self.fills.order_fill_count(order_id)
    }

    /// Refolds every fill from a flat start.
    fn refold(&mut self) {
        self.net_quantity = Decimal::ZERO;
        self.average_price = Decimal::ZERO;
        self.realized_pnl = Decimal::ZERO;
        self.commission = Decimal::ZERO;
        let fills = std::mem::take(&mut self.fills);
        for fill in fills.iter() {
            self.fold(fill);
        }
        self.fills = fills;
    }

    /// One step of the position fold (TRADING.md, Positions).
    fn fold(&mut self, fill: &Fill) {
        let qty = fill.signed_quantity();
        let net = self.net_quantity;
        self.commission = add(self.commission, fill.commission).normalize();
        self.realized_pnl = sub(self.realized_pnl, fill.commission);
        let increases = net.is_zero() || (net > Decimal::ZERO) == (qty > Decimal::ZERO);
        if increases {
            // Average entry moves only on fills that increase |position|.
            let (held, added) = (net.abs(), qty.abs());
            let cost = add(mul(self.average_price, held), mul(fill.price, added));
            self.average_price = div(cost, add(held, added)).unwrap_or(fill.price);
        } else {
            let closed = qty.abs().min(net.abs());
            let per_unit = if net > Decimal::ZERO {
                sub(fill.price, self.average_price)
            } else {
                sub(self.average_price, fill.price)
            };
            self.realized_pnl = add(self.realized_pnl, mul(closed, per_unit));
            let after = add(net, qty);
            if after.is_zero() {
                self.average_price = Decimal::ZERO;
            } else if (after > Decimal::ZERO) != (net > Decimal::ZERO) {
                // Crossed zero: the remainder opens a new position at the fill price.
                self.average_price = fill.price;
            }
        }
        self.net_quantity = add(net, qty).normalize();
        self.realized_pnl = self.realized_pnl.normalize();
        self.average_price = self.average_price.normalize();
    }

    /// Takes a `position.*` snapshot if it is the newest (and its side if it is the newest that
    /// names one); returns whether the position changed and the reconciliation alert, if the
    /// venue disagrees with the fills.
    pub fn apply_venue(&mut self, event: &PositionEvent, stamp: Stamp) -> (bool, Option<Alert>) {
        let mut side_taken = false;
        if let Some(side) = event.side {
            if self.venue_side.as_ref().is_none_or(|(newest, _)| *newest < stamp) {
                self.venue_side = Some((stamp.clone(), side));
                side_taken = true;
            }
        }
        if self.venue.as_ref().is_some_and(|v| v.stamp >= stamp) {
            // An older snapshot can still give the newest one the side it lacks: that changes
            // the venue's quantity, so it is a change to store and to reconcile.
            return if side_taken { (true, self.reconcile()) } else { (false, None) };
        }
        self.venue = Some(VenueSnapshot { stamp, event: event.clone() });
        (true, self.reconcile())
    }

    /// The venue's signed quantity from its newest snapshot (see [`snapshot_net`]), with the side
    /// of the newest snapshot that named one when this one does not.
    pub fn venue_net(&self) -> Option<Decimal> {
        snapshot_net(&self.venue.as_ref()?.event, self.venue_side.as_ref().map(|(_, side)| *side))
    }

    /// Whether nothing is known of this position: no fills and no venue report.
    pub fn is_empty(&self) -> bool {
        self.fills.is_empty() && self.venue.is_none() && self.venue_side.is_none() && self.margin.is_none()
    }

    /// Takes a margin call if it is the newest; returns whether it was taken.
    pub fn apply_margin(&mut self, event: &MarginCallEvent, stamp: Stamp) -> bool {
        if self.margin.as_ref().is_some_and(|m| m.stamp >= stamp) {
            return false;
        }
        self.margin = Some(MarginSnapshot { stamp, event: event.clone() });
        true
    }

    /// Re-evaluates the reconciliation verdict after the snapshot or the fills changed; returns
    /// the `position_mismatch` alert when the position turned from agreeing to disagreeing, or the
    /// venue reported another quantity that disagrees (timed at the snapshot, so the alert is the
    /// same whichever event completed the picture). Late fills that only change how far apart
    /// the two are raise nothing more: one alert per disagreement, not one per fill.
    pub fn reconcile(&mut self) -> Option<Alert> {
        let verdict = self.verdict();
        if verdict == self.mismatch {
            return None;
        }
        let was = std::mem::replace(&mut self.mismatch, verdict);
        let Mismatch { venue, held } = self.mismatch.clone()?;
        if was.is_some_and(|was| was.venue == venue) {
            return None;
        }
        let at = self.venue.as_ref()?.stamp.at;
        let message = format!(
            "venue reports {symbol} quantity {venue}, fills up to then add up to {held}; fills are kept, \
             check for missed events",
            symbol = self.symbol
        );
        Some(Alert::new(AlertKind::PositionMismatch, self.symbol.clone(), message, at))
    }

    /// Compares the newest snapshot's quantity with the net of the fills at or before its time.
    /// Positions without fills are not compared: the source evidently reports positions only,
    /// and there is nothing to reconcile.
    fn verdict(&self) -> Option<Mismatch> {
        if self.fills.is_empty() {
            return None;
        }
        let snapshot = self.venue.as_ref()?;
        let event = &snapshot.event;
        let venue_quantity = match event.phase {
            PositionPhase::Closed => Decimal::ZERO,
            _ => event.quantity?,
        };
        let held = self.net_at(snapshot.stamp.at);
        let (venue, held) = match event.side {
            Some(PositionSide::Long) => (venue_quantity, held),
            Some(PositionSide::Short) => (-venue_quantity, held),
            Some(PositionSide::Flat) => (Decimal::ZERO, held),
            None => (venue_quantity, held.abs()),
        };
        (venue != held).then_some(Mismatch { venue, held })
    }

    /// The fill-derived net quantity without the fills after `at`. Costs O(fills after `at`):
    /// the snapshot compared is usually the newest event, with few fills after it.
    fn net_at(&self, at: chrono::DateTime<chrono::Utc>) -> Decimal {
        let later = self.fills.iter().rev().take_while(|f| f.at > at);
        later.fold(self.net_quantity, |net, f| sub(net, f.signed_quantity())).normalize()
    }

    /// The newest value of a field the venue sends in position snapshots and margin calls.
    fn newest<T: Copy>(
        &self,
        from_venue: impl Fn(&PositionEvent) -> Option<T>,
        from_margin: impl Fn(&MarginCallEvent) -> Option<T>,
    ) -> Option<T> {
        let venue = self.venue.as_ref().and_then(|v| from_venue(&v.event).map(|x| (&v.stamp, x)));
        let margin = self.margin.as_ref().and_then(|m| from_margin(&m.event).map(|x| (&m.stamp, x)));
        match (venue, margin) {
            (Some((vs, v)), Some((ms, m))) => Some(if ms > vs { m } else { v }),
            (v, m) => v.or(m).map(|(_, x)| x),
        }
    }

    /// Newest mark price.
    pub fn mark_price(&self) -> Option<Decimal> {
        self.newest(|v| v.mark_price, |m| m.mark_price)
    }

    /// Newest margin ratio.
    pub fn margin_ratio(&self) -> Option<Decimal> {
        self.newest(|v| v.margin_ratio, |m| m.margin_ratio)
    }

    /// Newest liquidation price.
    pub fn liquidation_price(&self) -> Option<Decimal> {
        self.newest(|v| v.liquidation_price, |m| m.liquidation_price)
    }

    /// The venue's unrealized PnL when it sent one, else (mark − entry)·net from the mark price.
    pub fn unrealized_pnl(&self) -> Option<Decimal> {
        self.venue.as_ref().and_then(|v| v.event.unrealized_pnl).or_else(|| {
            self.mark_price().map(|mark| mul(sub(mark, self.average_price), self.net_quantity).normalize())
        })
    }

    /// The SPEC §10 view of this position.
    pub fn view(&self) -> PositionView {
        PositionView {
            account: self.account.clone(),
            symbol: self.symbol.clone(),
            side: self.side(),
            quantity: self.net_quantity.abs(),
            net_quantity: self.net_quantity,
            average_price: self.average_price,
            realized_pnl: self.realized_pnl,
            unrealized_pnl: self.unrealized_pnl(),
            mark_price: self.mark_price(),
            margin_ratio: self.margin_ratio(),
            liquidation_price: self.liquidation_price(),
        }
    }
}

#[cfg(test)]
#[path = "position_tests.rs"]
mod tests;
