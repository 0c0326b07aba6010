//! An order's executions, derived from its facts (trades, cumulative snapshots) and kept up to
//! date incrementally.
//!
//! Deriving from scratch costs O(k) in the order's k facts, with an allocation per execution;
//! done on every event, an order with many partial fills would cost O(k²). The usual event adds
//! one trade or one snapshot above all others, which extends the derivation by one execution:
//! that case is O(log k), anything else re-derives from scratch (so does every event while the
//! trades leave part of the highest running total unexplained: that remainder moves with each
//! of them). Both give the same executions, because the incremental step is the next step of
//! the full derivation. The cache is not persisted and is rebuilt on first use after a load.

use std::collections::BTreeMap;
use std::ops::Bound;

use rust_decimal::Decimal;

use super::decimal::{add, mul};
use super::fill::{
    commission_below, cumulative_execution, cumulative_executions, remainder_execution, trade_executions,
    Execution, Snapshot, Trade,
};

/// How one event changed an order's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FactChange {
    /// A trade id not seen before.
    NewTrade(String),
    /// A cumulative quantity not seen before.
    NewSnapshot(Decimal),
    /// Something else changed (an earlier report time of a known fact).
    Other,
}

/// The executions derived from an order's facts, with their running sums.
#[derive(Debug, Clone, Default)]
pub(crate) struct DerivedFills {
    /// Whether the fields below match the facts (false after deserialization).
    valid: bool,
    /// Executions from trades when there are any (in trade id order, then the remainder of the
    /// highest running total if the trades do not reach it), else from cumulative snapshots.
    pub executions: Vec<Execution>,
    /// Cumulative quantities left out of the split (empty with trades).
    pub skipped: Vec<Decimal>,
    /// With trades: the running total whose remainder is the last execution, if any.
    pub remainder_of: Option<Decimal>,
    /// Whether that remainder is priced at the running total's average because the trades'
    /// notional leaves it no positive price (inconsistent reports).
    pub remainder_guessed: bool,
    /// Σ quantity over `executions`, in list order.
    pub executed: Decimal,
    /// Σ price·quantity over `executions`, in list order.
    pub notional: Decimal,
}

/// A pure function of the order's facts, which are compared instead.
impl PartialEq for DerivedFills {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The facts executions are derived from.
pub(crate) type Facts<'a> = (&'a BTreeMap<String, Trade>, &'a BTreeMap<Decimal, Snapshot>);

impl DerivedFills {
    /// Derives everything from scratch.
    pub fn derive((trades, snapshots): Facts<'_>) -> Self {
        let mut derived = DerivedFills { valid: true, ..Default::default() };
        if trades.is_empty() {
            (derived.executions, derived.skipped) = cumulative_executions(snapshots);
        } else {
            derived.executions = trade_executions(trades);
            if let Some((remainder, guessed)) = remainder_execution(&derived.executions, snapshots) {
                derived.remainder_of = snapshots.last_key_value().map(|(total, _)| *total);
                derived.remainder_guessed = guessed;
                derived.executions.push(remainder);
            }
        }
        derived.resum();
        derived
    }

    /// Whether the cache matches the facts.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Makes the cache match the facts, deriving from scratch if it does not.
    pub fn ensure(&mut self, facts: Facts<'_>) {
        if !self.valid {
            *self = Self::derive(facts);
        }
    }

    /// Brings the cache up to date after `changes`; returns the index of the first execution
    /// that may differ from before (`None`: the executions are unchanged).
    pub fn update(&mut self, facts: Facts<'_>, changes: &[FactChange]) -> Option<usize> {
        let (trades, snapshots) = facts;
        if trades.is_empty() {
            return match changes {
                [] => None,
                [FactChange::NewSnapshot(cum)] => {
                    self.push_snapshot(*cum, snapshots).or_else(|| self.rederive(facts))
                }
                _ => self.rederive(facts),
            };
        }
        // With trades and no remainder before or after, the executions are the trades alone and
        // running totals change nothing; otherwise the remainder may move: derive again.
        let new_trades: Vec<(&String, &Trade)> = changes
            .iter()
            .filter_map(|c| match c {
                FactChange::NewTrade(id) => trades.get_key_value(id),
                _ => None,
            })
            .collect();
        // Only trades executed by the highest running total's time count toward it (see
        // `remainder_execution`).
        let reached = snapshots.last_key_value().is_none_or(|(total, top)| {
            *total
                <= trades.values().filter(|t| t.at <= top.at).fold(Decimal::ZERO, |q, t| add(q, t.quantity))
        });
        let other = changes.iter().any(|c| matches!(c, FactChange::Other));
        if self.remainder_of.is_some() || !reached || other {
            return self.rederive(facts);
        }
        match new_trades.as_slice() {
            [] => None,
            [(id, trade)] if trades.len() > 1 => Some(self.insert_trade(id, trade)),
            _ => self.rederive(facts),
        }
    }

    /// Derives from scratch; returns the first index that differs from before.
    fn rederive(&mut self, facts: Facts<'_>) -> Option<usize> {
        let next = Self::derive(facts);
        let common = self.executions.iter().zip(&next.executions).take_while(|(a, b)| a == b).count();
        let same = common == self.executions.len() && common == next.executions.len();
        *self = next;
        (!same).then_some(common)
    }

    /// A new trade id: executions stay in trade id order.
    fn insert_trade(&mut self, id: &str, trade: &Trade) -> usize {
        let at = self.executions.partition_point(|e| e.key.as_str() < id);
        let execution = Execution {
            key: id.to_owned(),
            quantity: trade.quantity,
            price: trade.price,
            commission: trade.commission,
            at: trade.at,
        };
        self.executions.insert(at, execution);
        if at + 1 == self.executions.len() {
            self.add_to_sums(at);
        } else {
            self.resum();
        }
        at
    }

    /// A new cumulative snapshot: when it is the highest and the previous highest stays
    /// consistent with it, the split gains one increment and nothing else moves. Returns `None`
    /// when that is not the case (the caller re-derives).
    fn push_snapshot(&mut self, cum: Decimal, snapshots: &BTreeMap<Decimal, Snapshot>) -> Option<usize> {
        if snapshots.range((Bound::Excluded(cum), Bound::Unbounded)).next().is_some() {
            return None;
        }
        let below = snapshots
            .range(..cum)
            .next_back()
            .map_or((Decimal::ZERO, Decimal::ZERO), |(c, s)| (*c, s.average_price));
        let execution = cumulative_execution(
            below,
            cum,
            snapshots.get(&cum)?,
            commission_below(snapshots, cum, &self.skipped),
        )?;
        self.executions.push(execution);
        let at = self.executions.len() - 1;
        self.add_to_sums(at);
        Some(at)
    }

    /// Continues the running sums with execution `i` (the last one).
    fn add_to_sums(&mut self, i: usize) {
        let e = &self.executions[i];
        self.executed = add(self.executed, e.quantity);
        self.notional = add(self.notional, mul(e.price, e.quantity));
    }

    /// Recomputes the running sums over every execution.
    fn resum(&mut self) {
        self.executed = Decimal::ZERO;
        self.notional = Decimal::ZERO;
        for i in 0..self.executions.len() {
            self.add_to_sums(i);
        }
    }
}
