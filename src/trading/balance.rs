//! Balances per (account, asset) and the deposit/withdrawal ledger.
//!
//! `account.balance_updated` is a full snapshot of one asset: the newest by event time wins (ties
//! broken by event id), so the result does not depend on arrival order. Deposits and withdrawals
//! are ledger entries whose identity is the venue's `transactionId`: a repeat applies once, and a
//! repeat with a different asset, kind or amount keeps the first and raises an alert.

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
    /// `completed`, … as first sent.
    pub status: Option<String>,
    /// Earliest event time the entry was reported at.
    pub at: DateTime<Utc>,
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
        }
    }

    /// Merges a repeat of this transaction: a plain duplicate only moves `at` to the earliest
    /// report; a different asset, kind or amount keeps the first and returns an alert.
    pub fn merge_repeat(&mut self, repeat: &LedgerEntry) -> Option<Alert> {
        if (repeat.kind, &repeat.asset, repeat.amount) == (self.kind, &self.asset, self.amount) {
            self.at = self.at.min(repeat.at);
            return None;
        }
        let message = format!(
            "transaction {} reported again as {:?} {} {} after {:?} {} {}; kept the first",
            self.transaction_id, repeat.kind, repeat.amount, repeat.asset, self.kind, self.amount, self.asset
        );
        Some(Alert::new(AlertKind::ConflictingDuplicate, self.transaction_id.clone(), message, repeat.at))
    }
}
