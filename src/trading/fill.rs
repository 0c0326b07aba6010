//! Fills: what an order executed, derived from what the venue reported.
//!
//! Two kinds of source exist. Exchanges with trade ids report each execution (`Trade`), and the
//! trade id is the fill's identity. Cumulative-only sources (seed 001) report the running
//! `filledQuantity` and `averagePrice` (`Snapshot`); the fills are then derived as the increments
//! between successive distinct snapshots sorted by cumulative quantity. Because the order keeps
//! the *set* of snapshots and derives from it, the fills are the same whatever the arrival order,
//! and a late lower snapshot refines the split instead of being lost.
//!
//! A source may send both for one order (running totals first, trade ids later, or a trade report
//! carrying the order's running total). The trades are then fills as reported, and the part of
//! the highest running total they do not account for is one more fill, the *remainder* (see
//! [`remainder_execution`]), so the fills always add up to the largest filled quantity known.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::decimal::{add, div, mul, sub};
use super::order::Side;

/// One execution attributed to an order, as positions consume it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fill {
    /// The order that executed.
    pub order_id: String,
    /// Instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Executed quantity (positive).
    pub quantity: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Commission charged (0 when the source does not say).
    pub commission: Decimal,
    /// Execution time: the trade's event time, or the later snapshot's for derived fills.
    pub at: DateTime<Utc>,
    /// Identity within the order: the trade id, or `cum:<cumulative quantity>`.
    pub key: String,
}

impl Fill {
    /// Quantity with the sign of its effect on a position: buys add, sells subtract.
    pub fn signed_quantity(&self) -> Decimal {
        self.side.signed(self.quantity)
    }

    /// The canonical order positions fold fills in: time, then order id, then key.
    pub fn canonical_cmp(&self, other: &Fill) -> Ordering {
        (self.at, &self.order_id, &self.key).cmp(&(other.at, &other.order_id, &other.key))
    }
}

/// One execution reported with a trade id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trade {
    /// Executed quantity.
    pub quantity: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Commission charged.
    pub commission: Decimal,
    /// Earliest event time this trade was reported at (stored as unix microseconds: formatting
    /// RFC 3339 for every fill of every stored order was the worker's largest cost).
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub at: DateTime<Utc>,
    /// The venue's sequence number, when sent.
    pub sequence: Option<u64>,
}

/// One reported cumulative fill state: the average price of the first `cum` filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Average price of the cumulative quantity (always positive: others are not stored).
    pub average_price: Decimal,
    /// Earliest event time this snapshot was reported at (unix microseconds when stored).
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub at: DateTime<Utc>,
    /// Commission charged up to this running total, when the report said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Decimal>,
}

/// The running commission reported below the running total `cum` by the nearest lower snapshot
/// that says and is in the split (not in `skipped`: its increment is not a fill, so its share
/// goes to the next one), zero when none does: what an increment's own commission counts from.
pub(crate) fn commission_below(
    snapshots: &BTreeMap<Decimal, Snapshot>,
    cum: Decimal,
    skipped: &[Decimal],
) -> Decimal {
    snapshots
        .range(..cum)
        .rev()
        .filter(|(total, _)| !skipped.contains(total))
        .find_map(|(_, s)| s.commission)
        .unwrap_or(Decimal::ZERO)
}

/// An execution not yet attributed to a symbol and side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Execution {
    /// Fill identity within the order.
    pub key: String,
    /// Executed quantity.
    pub quantity: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Commission.
    pub commission: Decimal,
    /// Execution time.
    pub at: DateTime<Utc>,
}

/// The executions of a trade-id source, in trade id order.
pub(crate) fn trade_executions(trades: &BTreeMap<String, Trade>) -> Vec<Execution> {
    trades
        .iter()
        .map(|(id, t)| Execution {
            key: id.clone(),
            quantity: t.quantity,
            price: t.price,
            commission: t.commission,
            at: t.at,
        })
        .collect()
}

/// The part of the highest running total that the trades do not account for, as one execution,
/// and whether its price had to be guessed.
///
/// Rule: with the trades executed by the time of the highest snapshot (`at` not after it; a
/// later trade cannot be part of its total and is a fill beyond it) `Q = Σ qty`,
/// `N = Σ price·qty`, and that snapshot `C` at average `A`, when `C > Q` the remainder is
/// `C − Q`, priced `(A·C − N) / (C − Q)` so that the order's fills
/// add up to `C` at average `A`, keyed `cum:<C>` and timed at that snapshot (like any cumulative
/// increment, at the report that proves it executed). Which snapshot quantities the trades fall
/// in is unknown, so the remainder is one fill rather than a split along the lower snapshots (a
/// split could price its pieces wrongly; one fill is exact whenever the executions without a
/// trade id were a single piece, and otherwise their average). When that price is not positive
/// the trades cost more than the running total says: the remainder is priced at `A` and `true`
/// is returned (the caller alerts). The result depends only on the sets of trades and
/// snapshots, never on the order they arrived in.
pub(crate) fn remainder_execution(
    trades: &[Execution],
    snapshots: &BTreeMap<Decimal, Snapshot>,
) -> Option<(Execution, bool)> {
    let (&total, top) = snapshots.last_key_value()?;
    let (traded, notional) =
        trades.iter().filter(|e| e.at <= top.at).fold((Decimal::ZERO, Decimal::ZERO), |(q, n), e| {
            (add(q, e.quantity), add(n, mul(e.price, e.quantity)))
        });
    if total <= traded {
        return None;
    }
    let quantity = sub(total, traded);
    let price = div(sub(mul(top.average_price, total), notional), quantity).filter(|p| *p > Decimal::ZERO);
    // A trade id may read `cum:<C>` too: the remainder must not take its place among the fills.
    let mut key = format!("cum:{total}");
    while trades.iter().any(|e| e.key == key) {
        key.push('~');
    }
    let execution = Execution {
        key,
        quantity,
        price: price.unwrap_or(top.average_price),
        commission: Decimal::ZERO,
        at: top.at,
    };
    Some((execution, price.is_none()))
}

/// The price of the increment from `(lo_cum, lo_avg)` to `(hi_cum, hi_avg)`, when positive.
fn increment_price(lo_cum: Decimal, lo_avg: Decimal, hi_cum: Decimal, hi_avg: Decimal) -> Option<Decimal> {
    let notional = sub(mul(hi_avg, hi_cum), mul(lo_avg, lo_cum));
    div(notional, sub(hi_cum, lo_cum)).filter(|p| *p > Decimal::ZERO)
}

/// The execution that takes the cumulative fill from `(lo_cum, lo_avg)` to the snapshot at
/// `cum`, when its price is positive. Its commission is the snapshot's running commission less
/// `lo_commission` (see [`commission_below`]); zero when the snapshot does not say.
pub(crate) fn cumulative_execution(
    (lo_cum, lo_avg): (Decimal, Decimal),
    cum: Decimal,
    snap: &Snapshot,
    lo_commission: Decimal,
) -> Option<Execution> {
    increment_price(lo_cum, lo_avg, cum, snap.average_price).map(|price| Execution {
        key: format!("cum:{cum}"),
        quantity: sub(cum, lo_cum),
        price,
        commission: snap.commission.map_or(Decimal::ZERO, |total| sub(total, lo_commission).normalize()),
        at: snap.at,
    })
}

/// The executions of a cumulative-only source, and the cumulative quantities left out of the
/// split because they are inconsistent with the snapshots above them.
///
/// The highest snapshot is the venue's latest word and is always kept; walking down, a snapshot
/// is kept only if the increment from it to the kept snapshot above has a positive price. The
/// result depends only on the set of snapshots, never on the order they arrived in.
pub(crate) fn cumulative_executions(
    snapshots: &BTreeMap<Decimal, Snapshot>,
) -> (Vec<Execution>, Vec<Decimal>) {
    let mut kept: Vec<(Decimal, &Snapshot)> = Vec::new();
    let mut skipped = Vec::new();
    for (cum, snap) in snapshots.iter().rev() {
        let consistent = match kept.last() {
            None => true,
            Some((hi_cum, hi)) => {
                increment_price(*cum, snap.average_price, *hi_cum, hi.average_price).is_some()
            }
        };
        if consistent {
            kept.push((*cum, snap));
        } else {
            skipped.push(*cum);
        }
    }
    kept.reverse();
    let mut executions = Vec::with_capacity(kept.len());
    let (mut lo_cum, mut lo_avg) = (Decimal::ZERO, Decimal::ZERO);
    for (cum, snap) in kept {
        executions.extend(cumulative_execution(
            (lo_cum, lo_avg),
            cum,
            snap,
            commission_below(snapshots, cum, &skipped),
        ));
        (lo_cum, lo_avg) = (cum, snap.average_price);
    }
    skipped.reverse();
    (executions, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn t(sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, sec).single().unwrap()
    }

    fn snaps(list: &[(&str, &str, u32)]) -> BTreeMap<Decimal, Snapshot> {
        list.iter()
            .map(|(c, a, s)| (d(c), Snapshot { average_price: d(a), at: t(*s), commission: None }))
            .collect()
    }

    #[test]
    fn increments_between_cumulative_snapshots_are_priced_by_notional_difference() {
        // 0.04 @ 100, then cumulative 0.1 @ 106 → the next 0.06 cost (10.6 − 4) / 0.06 = 110.
        let (execs, skipped) = cumulative_executions(&snaps(&[("0.04", "100", 1), ("0.1", "106", 2)]));
        assert!(skipped.is_empty());
        let got: Vec<_> = execs.iter().map(|e| (e.key.as_str(), e.quantity, e.price, e.at)).collect();
        assert_eq!(
            got,
            vec![("cum:0.04", d("0.04"), d("100"), t(1)), ("cum:0.1", d("0.06"), d("110"), t(2))]
        );
    }

    #[test]
    fn inconsistent_lower_snapshot_is_left_out_of_the_split() {
        // cumulative 0.05 @ 300 would make the next 0.05 cost (10 − 15)/0.05 < 0.
        let (execs, skipped) = cumulative_executions(&snaps(&[("0.05", "300", 1), ("0.1", "100", 2)]));
        assert_eq!(skipped, vec![d("0.05")]);
        assert_eq!(execs.len(), 1);
        assert_eq!((execs[0].quantity, execs[0].price), (d("0.1"), d("100")));
    }
}
