//! The fills of one position, kept sorted in canonical order and indexed by order.
//!
//! A position is a fold over its fills in canonical order (time, order id, fill key). Keeping
//! them in a `BTreeMap` under that key lets an order event that brings fills later than every
//! known one be folded on in O(new fills · log n); the per-order index lets an order's fills be
//! replaced without scanning the fills of every other order. The book is derived from the orders
//! and never persisted: `TradingState::rebuild_positions` recomputes it after a load.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::fill::Fill;

/// Where a fill sorts: field order gives the canonical order of [`Fill::canonical_cmp`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FillSortKey {
    /// Execution time.
    pub at: DateTime<Utc>,
    /// The order that executed.
    pub order_id: String,
    /// Identity within the order.
    pub key: String,
}

impl FillSortKey {
    /// The sort key of `fill`.
    pub fn of(fill: &Fill) -> Self {
        FillSortKey { at: fill.at, order_id: fill.order_id.clone(), key: fill.key.clone() }
    }
}

/// What replacing an order's fills did to the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Splice {
    /// The fills were already there, identical.
    Unchanged,
    /// Only fills sorting after every fill known before were added: fold these, in this order.
    Appended(Vec<FillSortKey>),
    /// Fills were removed, changed or added in the middle: the fold must restart.
    Reordered,
}

/// Fills in canonical order plus, per order, the sort keys of its fills in the order's own order.
#[derive(Debug, Clone, Default)]
pub struct FillBook {
    /// Every fill, in canonical order.
    sorted: BTreeMap<FillSortKey, Fill>,
    /// Per order id, its fills' sort keys as `Order::fills` lists them.
    by_order: HashMap<String, Vec<FillSortKey>>,
}

/// Two books are equal when they hold the same fills (the index follows from them).
impl PartialEq for FillBook {
    fn eq(&self, other: &Self) -> bool {
        self.sorted == other.sorted
    }
}

impl FillBook {
    /// A book of `fills` (any order).
    pub fn from_fills(fills: impl IntoIterator<Item = Fill>) -> Self {
        let mut book = FillBook::default();
        for fill in fills {
            let key = FillSortKey::of(&fill);
            book.by_order.entry(fill.order_id.clone()).or_default().push(key.clone());
            book.sorted.insert(key, fill);
        }
        book
    }

    /// How many fills the book holds.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the book holds no fill.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Every fill, in canonical order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Fill> {
        self.sorted.values()
    }

    /// The fill under `key`.
    pub fn get(&self, key: &FillSortKey) -> Option<&Fill> {
        self.sorted.get(key)
    }

    /// How many fills of `order_id` the book holds.
    pub fn order_fill_count(&self, order_id: &str) -> usize {
        self.by_order.get(order_id).map_or(0, Vec::len)
    }

    /// Makes `tail` the fills of `order_id` from its `from`-th fill on (the first `from` stay;
    /// `from` is clamped to what the book holds). Costs O((replaced + tail) · log n).
    pub fn splice(&mut self, order_id: &str, from: usize, tail: Vec<Fill>) -> Splice {
        let last_before = self.sorted.last_key_value().map(|(k, _)| k.clone());
        let index = self.by_order.entry(order_id.to_owned()).or_default();
        let mut replaced: HashSet<FillSortKey> = index.split_off(from.min(index.len())).into_iter().collect();
        let mut added = Vec::new();
        for fill in tail {
            let key = FillSortKey::of(&fill);
            index.push(key.clone());
            let same = replaced.remove(&key) && self.sorted.get(&key) == Some(&fill);
            if !same {
                self.sorted.insert(key.clone(), fill);
                added.push(key);
            }
        }
        // What was replaced and did not come back.
        let removed = replaced;
        for key in &removed {
            self.sorted.remove(key);
        }
        if index.is_empty() {
            self.by_order.remove(order_id);
        }
        added.sort();
        match (removed.is_empty(), added.first()) {
            (true, None) => Splice::Unchanged,
            (true, Some(first)) if last_before.as_ref().is_none_or(|last| first > last) => {
                Splice::Appended(added)
            }
            _ => Splice::Reordered,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    use super::*;
    use crate::trading::order::Side;

    fn fill(order: &str, key: &str, sec: u32) -> Fill {
        Fill {
            order_id: order.into(),
            symbol: "BTC/USD".into(),
            side: Side::Buy,
            quantity: Decimal::ONE,
            price: Decimal::ONE_HUNDRED,
            commission: Decimal::ZERO,
            at: Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, sec).single().unwrap(),
            key: key.into(),
        }
    }

    #[test]
    fn fills_after_all_others_are_appended_and_earlier_ones_reorder() {
        let mut book = FillBook::default();
        assert!(matches!(book.splice("a", 0, vec![fill("a", "1", 1)]), Splice::Appended(_)));
        assert!(matches!(book.splice("a", 1, vec![fill("a", "2", 3)]), Splice::Appended(_)));
        assert_eq!(book.splice("b", 0, vec![fill("b", "1", 2)]), Splice::Reordered);
        assert_eq!(
            book.iter().map(|f| f.at.format("%S").to_string()).collect::<Vec<_>>(),
            ["01", "02", "03"]
        );
    }

    #[test]
    fn the_same_fills_again_change_nothing_and_missing_ones_are_removed() {
        let mut book = FillBook::default();
        book.splice("a", 0, vec![fill("a", "1", 1), fill("a", "2", 2)]);
        assert_eq!(book.splice("a", 0, vec![fill("a", "1", 1), fill("a", "2", 2)]), Splice::Unchanged);
        assert_eq!(book.splice("a", 1, Vec::new()), Splice::Reordered);
        assert_eq!((book.len(), book.order_fill_count("a")), (1, 1));
        assert_eq!(book.splice("a", 0, Vec::new()), Splice::Reordered);
        assert!(book.is_empty());
    }
}
