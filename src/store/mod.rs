//! The store of record: every acknowledged event lives here before anyone is told "accepted".
//!
//! One trait, [`Store`], with an embedded SQLite implementation (the default) and room for a
//! PostgreSQL one (several nodes on one database). The contract every implementation keeps:
//! `append` returns only after the event is durably committed (fsync'ed), concurrent appends may
//! share one commit (group commit), and an event id already stored for the same source is a
//! duplicate answered with the id of the first.

pub mod dedupe;
pub mod delivery;
pub mod intents;
pub mod postgres;
pub mod processing;
pub mod progress;
pub mod sqlite;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::delivery::subscription::Subscription;

pub use delivery::{
    AttemptRecord, DeliveryAttempt, DeliveryNext, DeliveryResult, DueDelivery, HealthChange, NewDelivery,
    SubscriptionHealth,
};
pub use intents::{NewIntent, StoredIntent};
pub use processing::{
    DeadLetter, DeadLetterFilter, Deferral, EntityChange, EntityKind, NewAlert, NewDeadLetter, PendingEvent,
    ProcessedBatch, Retry, StoredAlert,
};
pub use progress::EventProgress;

/// An event as ingest hands it to the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Source name.
    pub source: String,
    /// De-duplication key within the source (SPEC §1 event id).
    pub event_key: String,
    /// `event` field of the payload, when there is one.
    pub event_type: Option<String>,
    /// Raw body (with a `token` field removed for the token scheme).
    pub body: Bytes,
    /// Request headers minus secrets, as a JSON object.
    pub headers: String,
    /// Client address as decided by the guards.
    pub client_ip: String,
    /// When the request arrived, unix milliseconds.
    pub received_at: i64,
}

/// What `append` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored and committed.
    Accepted(String),
    /// The source already had this event id; the id is the first event's.
    Duplicate(String),
}

/// A stored event as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// Public id (`evt_…`), the one the ingest answer gave.
    pub id: String,
    /// Arrival order across the whole store.
    pub seq: i64,
    /// Source name.
    pub source: String,
    /// De-duplication key within the source.
    pub event_key: String,
    /// Payload `event` field.
    pub event_type: Option<String>,
    /// Arrival time, RFC 3339.
    pub received_at: String,
    /// Client address.
    pub client_ip: String,
    /// Headers minus secrets.
    pub headers: serde_json::Value,
    /// The payload as stored, byte for byte, when it is JSON (so `1.50` stays `1.50` and a
    /// decimal keeps every digit); else a JSON string of it (lossy UTF-8).
    #[schema(value_type = serde_json::Value)]
    pub payload: Box<serde_json::value::RawValue>,
    /// When processing finished, RFC 3339; `None` while pending.
    pub processed_at: Option<String>,
    /// How processing finished: `applied`, `stored` (not a trading event), `dead` (in the
    /// dead-letter queue) …; `None` while pending.
    pub outcome: Option<String>,
}

impl StoredEvent {
    /// The payload parsed, for code that reads fields of it.
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// A stored body as [`StoredEvent::payload`]: its own text when it is JSON, else a JSON string.
pub(crate) fn payload_of(body: &[u8]) -> Box<serde_json::value::RawValue> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(&text)
        .or_else(|_| serde_json::value::to_raw_value(&text))
        .unwrap_or_default()
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Received at or after, unix ms.
    pub since: Option<i64>,
    /// Received before, unix ms.
    pub until: Option<i64>,
    /// Only events with `seq` below this (paging backwards).
    pub before_seq: Option<i64>,
    /// Only events with `seq` above this (tailing).
    pub after_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Counts the status endpoint and readiness need.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    /// Events stored.
    pub events: u64,
    /// Events not yet processed.
    pub backlog: u64,
    /// How long the next event the worker would take has been due, seconds
    /// ([`Store::oldest_pending`]).
    pub oldest_pending_age_seconds: Option<f64>,
    /// Events processed.
    pub processed: u64,
    /// Entries in the dead-letter queue.
    pub dlq: u64,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes now (disk full, I/O error, database down): answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Too much is waiting (writer queue full or backlog at its limit): answer 503.
    #[error("store is saturated: {0}")]
    Saturated(String),
    /// Anything else; a bug or corruption.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// A new event refused: `waiting` events pending, at `limit` (`store.max_backlog`).
    pub(crate) fn backlog_full(waiting: u64, limit: u64) -> StoreError {
        StoreError::Saturated(format!("{waiting} events are waiting to be processed (limit {limit})"))
    }
}

/// The store of record. See the module documentation for the durability contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores an event durably, or finds it already stored. Returns only after commit.
    async fn append(&self, event: NewEvent) -> Result<Appended, StoreError>;
    /// One event by public id.
    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError>;
    /// Events matching `filter`, newest first.
    async fn events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError>;
    /// Progress of up to `limit` events after `after_seq`, in arrival order, without bodies.
    async fn progress(&self, after_seq: i64, limit: u32) -> Result<Vec<EventProgress>, StoreError> {
        let filter = EventFilter { after_seq: Some(after_seq), limit, ..EventFilter::default() };
        Ok(self.events(filter).await?.iter().map(EventProgress::of).collect())
    }
    /// Counts for status and readiness.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Deletes up to `limit` processed events received before `cutoff` (unix ms), except dead
    /// letters; their event ids stop being duplicates. Returns how many went.
    async fn prune(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError>;
    /// Entries in the dead-letter queue.
    async fn dlq_size(&self) -> Result<u64, StoreError>;
    /// Since when (unix ms) the next event the worker would take has been due: its arrival, or
    /// its replay or retry time. An event waiting for a later retry is not counted.
    async fn oldest_pending(&self) -> Result<Option<i64>, StoreError>;
    /// Proves the store can commit a write now (readiness).
    async fn check_writable(&self) -> Result<(), StoreError>;
    /// Unprocessed events, from memory (cheap enough for every request).
    fn backlog(&self) -> u64;
    /// A short name for status output, e.g. `sqlite`.
    fn kind(&self) -> &'static str;
    /// Waits for queued writes to commit and stops accepting new ones.
    async fn close(&self);
    /// Wakes whoever waits for new events (the worker) after a commit that stored some.
    fn arrivals(&self) -> Arc<tokio::sync::Notify>;

    /// Whether this process may process events now. Several nodes on one store process one at a
    /// time: the holder of a lease, whose commits are fenced (see `postgres/lease.rs`). A store
    /// of one process (SQLite) always holds it.
    async fn processing_lease(&self) -> Result<Lease, StoreError> {
        Ok(Lease::Held { fresh: false })
    }

    /// Ordering keys of events waiting for a retry, with when that retry is due (unix ms).
    async fn retrying(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Up to `limit` due, unprocessed events, in arrival order.
    async fn pending(&self, limit: u32) -> Result<Vec<PendingEvent>, StoreError>;
    /// Commits a processed batch in one transaction; returns how many events left the queue.
    async fn commit_processed(&self, batch: ProcessedBatch) -> Result<u64, StoreError>;
    /// Every stored trading-state entity as (kind, key, JSON document).
    async fn all_entities(&self) -> Result<Vec<(String, String, String)>, StoreError>;
    /// Entities of one kind in key order after `after`, at most `limit`: (key, document).
    async fn entities(
        &self,
        kind: EntityKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// One entity's document.
    async fn entity(&self, kind: EntityKind, key: &str) -> Result<Option<String>, StoreError>;
    /// Documents of one kind whose key starts with `prefix`, in key order.
    async fn entities_with_prefix(&self, kind: EntityKind, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Alerts, newest first, older than the alert id `before` and only of `kind` when given.
    async fn alerts(&self, before: Option<i64>, limit: u32, kind: Option<String>)
        -> Result<Vec<StoredAlert>, StoreError>;
    /// Dead letters matching the filter, newest first.
    async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError>;
    /// One dead letter by its `dlq_…` id.
    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;
    /// Puts the events of these dead letters back in the queue; returns how many.
    async fn replay_dead_letters(&self, ids: Vec<String>) -> Result<u64, StoreError>;
    /// Removes a dead letter; whether it existed.
    async fn discard_dead_letter(&self, id: &str) -> Result<bool, StoreError>;
    /// Puts a stored event back in the queue; whether it was processed before.
    async fn replay_event(&self, id: &str) -> Result<bool, StoreError>;
    /// Events processed with outcome `applied` after `after_seq`, in arrival order.
    async fn applied_events(&self, after_seq: i64, limit: u32) -> Result<Vec<PendingEvent>, StoreError>;
    /// Replaces the whole trading state with these (kind, key, document) entities.
    async fn replace_state(&self, entities: Vec<(EntityKind, String, String)>) -> Result<u64, StoreError>;

    /// Wakes the dispatcher after commits that queued or re-queued deliveries.
    fn deliveries_ready(&self) -> Arc<tokio::sync::Notify>;
    /// Whether several processes share this store (PostgreSQL). Then [`Store::due_deliveries`]
    /// claims what it returns — it never returns a delivery claimed before and not yet
    /// committed, so the caller asks only for as many as it will start (otherwise it returns
    /// deliveries in flight too) — and other processes may change the subscriptions.
    fn shared(&self) -> bool {
        false
    }
    /// Up to `limit` pending deliveries due at `now` (unix ms), the longest-waiting first.
    /// `in_flight` are the deliveries the caller is attempting or committing: a claiming store
    /// neither returns nor claims them (a claim taken on one of them would keep it waiting for
    /// the whole claim time once its result is committed); a store that does not claim may
    /// return them, and the caller skips them.
    async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
        in_flight: &HashSet<i64>,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// When the next pending delivery is due (unix ms).
    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError>;
    /// Commits attempt results and subscription health changes in one transaction.
    async fn commit_deliveries(
        &self,
        results: Vec<DeliveryResult>,
        health: Vec<(String, HealthChange)>,
    ) -> Result<(), StoreError>;
    /// Every subscription.
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;
    /// On a store other nodes change too: a short text that changes whenever a subscription is
    /// created, changed or deleted (by any node), so a node can tell its copy is out of date
    /// with one cheap read. `None` where this process makes every change itself (SQLite).
    async fn subscriptions_fingerprint(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Stores a new subscription.
    async fn create_subscription(&self, subscription: Subscription) -> Result<(), StoreError>;
    /// Replaces a subscription (activating resumes its held deliveries); whether it existed.
    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError>;
    /// Removes a subscription and its waiting deliveries; whether it existed.
    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError>;
    /// A subscription's attempt log, newest first, before attempt `before` when given.
    async fn delivery_attempts(
        &self,
        webhook_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;
    /// A subscription's health figures.
    async fn subscription_health(&self, webhook_id: &str) -> Result<SubscriptionHealth, StoreError>;

    /// Order intents, newest first, before row `before`, optionally of one action or outcome.
    async fn intents(
        &self,
        before: Option<i64>,
        action: Option<String>,
        outcome: Option<String>,
        limit: u32,
    ) -> Result<Vec<StoredIntent>, StoreError>;
    /// Client order ids of `signal_to_order` intents the broker has not taken yet (their delivery
    /// is pending: queued, retrying, or replayed from the dead-letter queue): they count against
    /// `max_position` however long the broker is down.
    /// Each as (client order id, the intent as recorded).
    async fn entries_awaiting_broker(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// The outcome (`queued`, `sent`, `failed`, …) of each of these intents that is recorded, as
    /// (client order id, outcome).
    async fn intent_outcomes(&self, client_order_ids: Vec<String>) -> Result<Vec<(String, String)>, StoreError>;
    /// Whether the manual kill switch is on (no new entry orders from signals).
    async fn kill_switch(&self) -> Result<bool, StoreError>;
    /// Turns the manual kill switch on or off (durably).
    async fn set_kill_switch(&self, on: bool) -> Result<(), StoreError>;
    /// What this store's client order ids are derived with besides their trigger, so two stores
    /// (a reset, staging beside production) never give one broker account the same id for
    /// different orders. Chosen at random once, by the first node to ask; a store that recorded
    /// intents before there was one keeps `""`, so its ids stay what they were.
    async fn order_id_namespace(&self) -> Result<String, StoreError>;
}

/// The statement that chooses the order id namespace once (`$1`: a random one), shared by both
/// stores: SQLite and PostgreSQL read it alike (to SQLite `$1` is the first parameter too; its
/// upsert needs the `WHERE` to parse).
pub(crate) const CHOOSE_NAMESPACE_SQL: &str = "INSERT INTO meta (key, value)
     SELECT 'order_id_namespace', CASE WHEN EXISTS (SELECT 1 FROM intents) THEN '' ELSE $1 END
     WHERE true ON CONFLICT (key) DO NOTHING";

/// A fresh random namespace: 8 hex digits.
pub(crate) fn random_namespace() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

/// Whether this node processes events (see [`Store::processing_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This node processes; `fresh` when it just took over and must load the committed state
    /// first (another node may have processed meanwhile).
    Held {
        /// Just taken over.
        fresh: bool,
    },
    /// Another node processes; this one waits.
    Standby,
}

/// The public id of the event stored at `seq`.
pub(crate) fn event_id(seq: i64) -> String {
    format!("evt_{seq}")
}

/// The seq of a public `evt_…` id, if it is one.
pub(crate) fn seq_of(id: &str) -> Option<i64> {
    row_number(id, "evt_")
}

/// The row id of a `dlq_…` id, if it is one.
pub(crate) fn dead_letter_seq(id: &str) -> Option<i64> {
    row_number(id, "dlq_")
}

/// The number of an id as the gateway writes it: `prefix` then a positive decimal number without
/// sign or leading zeros. `evt_01` or `evt_+1` is not another spelling of `evt_1`: one thing has
/// one id, so ids compare as strings (in a client's cache, a log search) the way they do here.
fn row_number(id: &str, prefix: &str) -> Option<i64> {
    let digits = id.strip_prefix(prefix)?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits without a leading zero: a positive number, or too large for a seq.
    digits.parse().ok()
}

/// A shared handle to the store.
pub type SharedStore = Arc<dyn Store>;

/// Failed ingest commits are logged once a minute: while the disk is full or the database down,
/// every batch fails, and each refused request already counts in the metrics.
pub(crate) static COMMIT_FAILURES: crate::log_throttle::LogThrottle =
    crate::log_throttle::LogThrottle::new(std::time::Duration::from_secs(60));

/// Bytes from outside (a receiver's answer, a command's output) as text every store keeps:
/// invalid UTF-8 and NUL (which PostgreSQL's `text` refuses, failing the whole commit) become
/// U+FFFD.
pub fn storable_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Seconds from the unix-ms time `at` to `now`; 0 for a time ahead of `now` (another node's clock).
pub fn seconds_since(at: i64, now: i64) -> f64 {
    now.saturating_sub(at).max(0) as f64 / 1000.0
}

/// RFC 3339 text of a unix-ms time.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn ids_have_one_spelling() {
        assert_eq!(seq_of("evt_1"), Some(1));
        assert_eq!(seq_of(&event_id(9_007_199_254_740_993)), Some(9_007_199_254_740_993));
        assert_eq!(dead_letter_seq("dlq_42"), Some(42));
        for other in ["evt_01", "evt_+1", "evt_0", "evt_", "evt_-1", "evt_1 ", "evt_1e3", "dlq_1", "evt_99999999999999999999"] {
            assert_eq!(seq_of(other), None, "{other}");
        }
        assert_eq!(dead_letter_seq("dlq_007"), None);
    }
}
