//! An order's executions, derived from its facts (trades, cumulative snapshots) and kept up to
//! date incrementally.
//!
//! Deriving from scratch costs O(k) in the order's k facts, with an allocation per execution;
//! done on every event, an order with many partial fills would cost O(k²). The usual event adds
//! one trade or one snapshot above all others, which extends the derivation by one execution:
//! that case is O(log k), anything else re-derives from scratch. Both give the same executions,
//! because the incremental step is the next step of the full derivation. The cache is not
//! persisted and is rebuilt on first use after a load.

use std::collections::BTreeMap;
use std::ops::Bound;

use rust_decimal::Decimal;

use super::decimal::{add, mul};
use super::fill::{
    cumulative_execution, cumulative_executions, trade_executions, Execution, Snapshot, Trade,
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
    /// Executions from trades when there are any, else from cumulative snapshots.
    pub executions: Vec<Execution>,
    /// Cumulative quantities left out of the split (empty with trades).
    pub skipped: Vec<Decimal>,
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
        let (executions, skipped) = if trades.is_empty() {
            cumulative_executions(snapshots)
        } else {
            (trade_executions(trades), Vec::new())
        };
        let mut derived = DerivedFills { valid: true, executions, skipped, ..Default::default() };
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
        // With trades, snapshots only raise the reported quantity: they never make executions.
        let relevant: Vec<&FactChange> = changes
            .iter()
            .filter(|c| trades.is_empty() || !matches!(c, FactChange::NewSnapshot(_)))
            .collect();
        match relevant.as_slice() {
            [] => None,
            [FactChange::NewTrade(id)] if trades.len() > 1 => Some(self.insert_trade(id, &trades[id])),
            [FactChange::NewSnapshot(cum)] => {
                self.push_snapshot(*cum, snapshots).or_else(|| self.rederive(facts))
            }
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
        let execution = cumulative_execution(below, cum, snapshots.get(&cum)?)?;
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
