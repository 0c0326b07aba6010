//! Balances per (account, asset) and the deposit/withdrawal ledger.
//!
//! `account.balance_updated` is a full snapshot of one asset: the newest by event time wins (ties
//! broken by event id), so the result does not depend on arrival order. Deposits and withdrawals
//! are ledger entries whose identity is the venue's `transactionId`: a repeat applies once, the
//! newest report's status wins (`pending` → `completed`), and a repeat with a different asset,
//! kind or amount raises an alert and keeps the earliest report, whatever the arrival order.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertKind};
use super::decimal::add;
use super::event::{BalanceEvent, LedgerEvent, LedgerKind, Stamp};

/// Identity of a balance: account (absent when the source has none) and asset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceKey {
    /// Account; events without one share the `None` account.
    pub account: Option<String>,
    /// Asset, e.g. `USD`.
    pub asset: String,
}

/// The newest balance snapshot of one asset (SPEC §10: asset, available, locked, total).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Asset.
    pub asset: String,
    /// Free balance (zero when not sent).
    pub available: Decimal,
    /// Balance held by orders or margin (zero when not sent).
    pub locked: Decimal,
    /// Total: as sent, else available + locked.
    pub total: Decimal,
    /// Time and id of the snapshot: the newest wins.
    pub stamp: Stamp,
}

impl Balance {
    /// The balance a snapshot event describes.
    pub fn from_event(event: &BalanceEvent, stamp: Stamp) -> Self {
        let available = event.available.unwrap_or_default();
        let locked = event.locked.unwrap_or_default();
        Balance {
            account: event.account.clone(),
            asset: event.asset.clone(),
            available,
            locked,
            total: event.total.unwrap_or_else(|| add(available, locked).normalize()),
            stamp,
        }
    }

    /// This balance's key.
    pub fn key(&self) -> BalanceKey {
        BalanceKey { account: self.account.clone(), asset: self.asset.clone() }
    }

    /// Replaces `self` with `newer` if it is newer; returns whether it did.
    pub fn merge(&mut self, newer: Balance) -> bool {
        if newer.stamp > self.stamp {
            *self = newer;
            true
        } else {
            false
        }
    }
}

/// One deposit or withdrawal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The venue's transaction id.
    pub transaction_id: String,
    /// Deposit or withdrawal.
    pub kind: LedgerKind,
    /// Account, when the source has several.
    pub account: Option<String>,
    /// Asset.
    pub asset: String,
    /// Amount moved.
    pub amount: Decimal,
    /// `bank_transfer`, … as sent.
    pub method: Option<String>,
    /// `pending`, `completed`, … as the newest report says.
    pub status: Option<String>,
    /// Earliest event time the entry was reported at.
    pub at: DateTime<Utc>,
    /// Event time of the report `status` comes from, when not `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_at: Option<DateTime<Utc>>,
}

impl LedgerEntry {
    /// The entry a deposit or withdrawal event describes.
    pub fn from_event(event: &LedgerEvent, at: DateTime<Utc>) -> Self {
        LedgerEntry {
            transaction_id: event.transaction_id.clone(),
            kind: event.kind,
            account: event.account.clone(),
            asset: event.asset.clone(),
            amount: event.amount,
            method: event.method.clone(),
            status: event.status.clone(),
            at,
            status_at: None,
        }
    }

    /// Merges another report of this transaction, so the entry is the same whatever order the
    /// reports arrive in: `at` is the earliest report's time; the status is the newest report's
    /// (`pending`, then `completed`; at equal times a final status wins over `pending`); what the
    /// transaction is (kind, asset, amount, method) comes from the earliest report, and a report
    /// that disagrees on kind, asset or amount raises an alert. Returns whether the entry changed.
    pub fn merge_repeat(&mut self, repeat: &LedgerEntry) -> (bool, Option<Alert>) {
        let before = self.clone();
        // The report that says what the transaction is: the earliest, then the smaller values.
        let rank =
            |e: &LedgerEntry| (e.at, e.amount, e.asset.clone(), format!("{:?}", e.kind), e.account.clone());
        let repeat_first = rank(repeat) < rank(self);
        let conflict = (repeat.kind, &repeat.asset, repeat.amount) != (self.kind, &self.asset, self.amount);
        let alert = conflict.then(|| {
            let (kept, other) = if repeat_first { (repeat, &before) } else { (&before, repeat) };
            let message = format!(
                "transaction {id} reported as {kind:?} {amount} {asset} and as {:?} {} {}; kept the earliest report, {kind:?} {amount} {asset}",
                other.kind,
                other.amount,
                other.asset,
                id = self.transaction_id,
                kind = kept.kind,
                amount = kept.amount,
                asset = kept.asset,
            );
            Alert::new(AlertKind::ConflictingDuplicate, self.transaction_id.clone(), message, repeat.at)
        });
        if repeat_first {
            (self.kind, self.asset, self.amount) = (repeat.kind, repeat.asset.clone(), repeat.amount);
            self.account.clone_from(&repeat.account);
        }
        // The method any report gave (the greatest, should two differ).
        self.method = self.method.take().max(repeat.method.clone());
        // The status of the newest report that has one.
        let status_key = |e: &LedgerEntry| {
            e.status.as_ref().map(|s| (e.status_at.unwrap_or(e.at), is_final(s), s.clone()))
        };
        let (status, status_at) = if status_key(repeat) > status_key(self) {
            (repeat.status.clone(), repeat.status_at.unwrap_or(repeat.at))
        } else {
            (self.status.clone(), self.status_at.unwrap_or(self.at))
        };
        self.at = self.at.min(repeat.at);
        self.status = status;
        // Kept only when there is a status and it is not from `at`: one form for one entry.
        self.status_at = Some(status_at).filter(|t| self.status.is_some() && *t != self.at);
        (*self != before, alert)
    }
}

/// Whether a transaction status is one it ends in (anything but pending or processing).
fn is_final(status: &str) -> bool {
    !matches!(status.to_ascii_lowercase().as_str(), "pending" | "processing" | "in_progress" | "submitted")
}
