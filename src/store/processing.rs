//! What the worker reads from and writes to the store: pending events in, one atomic
//! "processed batch" out.
//!
//! A [`ProcessedBatch`] carries everything one round of processing decided — the entities it
//! changed, the alerts it raised, which events are done, which are to be retried when, which are
//! dead letters — and a store commits it in ONE transaction. That is what makes processing
//! exactly-once in effect: after a crash either all of a batch is there (state and "processed"
//! marks together) or none of it is, and the events are processed again from the same state.

use bytes::Bytes;
use serde::Serialize;

/// A stored event that has not been processed yet and is due.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Arrival order.
    pub seq: i64,
    /// Source name.
    pub source: String,
    /// Stored body.
    pub body: Bytes,
    /// Arrival time, unix ms.
    pub received_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Attempt history so far (JSON array), kept for the dead letter.
    pub history: String,
    /// When it became due (unix ms): its arrival, or a replay or the retry it waited for.
    /// Processing lag counts from here, so replaying an old event is not reported as lag.
    pub due_at: i64,
}

/// Entity kinds kept in the `state` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// An order without its fills, keyed by order id.
    Order,
    /// One fact of an order (a trade or a cumulative snapshot), keyed by order id and fact.
    OrderFact,
    /// A position, keyed by `account|symbol`.
    Position,
    /// A balance, keyed by `account|asset`.
    Balance,
    /// A deposit or withdrawal, keyed by transaction id.
    Ledger,
    /// A signal, keyed by its time-ordered key.
    Signal,
    /// A maintenance window, keyed by `start|end`.
    Maintenance,
    /// A part of the strategy actions' state (brackets, margin-guard episodes, …).
    Strategy(crate::trading::actions::StrategyDocKind),
}

impl EntityKind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Order => "order",
            EntityKind::OrderFact => "order_fact",
            EntityKind::Position => "position",
            EntityKind::Balance => "balance",
            EntityKind::Ledger => "ledger",
            EntityKind::Signal => "signal",
            EntityKind::Maintenance => "maintenance",
            EntityKind::Strategy(kind) => kind.as_str(),
        }
    }
}

/// One entity written (`Some(doc)`) or removed (`None`).
#[derive(Debug, Clone)]
pub struct EntityChange {
    /// What it is.
    pub kind: EntityKind,
    /// Its key within the kind.
    pub key: String,
    /// Its JSON document, or `None` to delete it.
    pub doc: Option<String>,
}

/// A data-quality or operational alert to store.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAlert {
    /// `overfill`, `conflicting_duplicate`, …
    pub kind: String,
    /// Order id, symbol, asset, …
    pub subject: String,
    /// Human-readable.
    pub message: String,
    /// Event time, RFC 3339.
    pub at: String,
    /// The event that raised it, if any.
    pub event_seq: Option<i64>,
}

/// An event whose processing failed and will be tried again.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The event.
    pub seq: i64,
    /// Failed attempts including this one.
    pub attempts: u32,
    /// When to try again, unix ms.
    pub next_attempt_at: i64,
    /// Ordering key: later events with the same key wait for this one.
    pub ordering_key: Option<String>,
    /// Attempt history including this failure (JSON array).
    pub history: String,
}

/// An event set aside in the dead-letter queue.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    /// The event.
    pub seq: i64,
    /// Why: the schema error, or the last failure after the retries ran out.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error message.
    pub last_error: String,
    /// Every attempt (JSON array of `{at, error}`).
    pub history: String,
    /// Ordering key, so events waiting behind this one are released.
    pub ordering_key: Option<String>,
}

/// Events that waited behind a failing event of the same ordering key.
#[derive(Debug, Clone)]
pub struct Deferral {
    /// The waiting event.
    pub seq: i64,
    /// The key it waits on.
    pub ordering_key: String,
    /// When the blocking event is tried next, unix ms.
    pub until: i64,
}

/// Everything one round of processing decided, committed atomically.
#[derive(Debug, Clone, Default)]
pub struct ProcessedBatch {
    /// Events done, with a short outcome (`applied`, `ignored`, …).
    pub processed: Vec<(i64, &'static str)>,
    /// Events to try again later.
    pub retries: Vec<Retry>,
    /// Events that go to the dead-letter queue.
    pub dead: Vec<NewDeadLetter>,
    /// Events postponed behind a failing event of their key.
    pub deferred: Vec<Deferral>,
    /// Entities written or removed.
    pub entities: Vec<EntityChange>,
    /// Alerts raised.
    pub alerts: Vec<NewAlert>,
    /// Deliveries queued for the processed events (routes and subscriptions).
    pub deliveries: Vec<crate::store::delivery::NewDelivery>,
    /// Order intents and refusals decided by strategy actions.
    pub intents: Vec<crate::store::intents::NewIntent>,
}

impl ProcessedBatch {
    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.processed.is_empty()
            && self.retries.is_empty()
            && self.dead.is_empty()
            && self.deferred.is_empty()
            && self.entities.is_empty()
            && self.alerts.is_empty()
            && self.deliveries.is_empty()
            && self.intents.is_empty()
    }
}

/// A dead letter as the API shows it (SPEC §6).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// `dlq_<n>`.
    pub id: String,
    /// The public id of the event.
    pub event_id: String,
    /// `event` (processing) or `delivery`.
    pub kind: String,
    /// The subscription, for deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// Why it is here.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub last_error: String,
    /// When it was set aside, RFC 3339.
    pub dead_at: String,
    /// Source of the event.
    pub source: String,
    /// Type of the event, when known.
    pub event_type: Option<String>,
    /// Every attempt.
    pub history: serde_json::Value,
    /// Where the delivery went (`forward:…`, `nats:…`, `exec:…`), for deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Which dead letters to list or replay.
#[derive(Debug, Clone)]
pub struct DeadLetterFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only `event` or `delivery`.
    pub kind: Option<String>,
    /// Only entries whose reason contains this text.
    pub reason: Option<String>,
    /// Only entries older than this row id (paging).
    pub before: Option<i64>,
    /// At most this many (1 to [`DeadLetterFilter::MAX_LIMIT`]; outside that range, the nearest).
    pub limit: u32,
}

impl DeadLetterFilter {
    /// The most entries one read returns.
    pub const MAX_LIMIT: u32 = 10_000;

    /// `limit` within 1 ..= [`DeadLetterFilter::MAX_LIMIT`], as the stores read it.
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for DeadLetterFilter {
    /// Every entry, a page of 100.
    fn default() -> Self {
        DeadLetterFilter { source: None, event_type: None, kind: None, reason: None, before: None, limit: 100 }
    }
}

/// A stored alert as the API shows it (SPEC §10).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredAlert {
    /// Increasing id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: String,
    /// Message.
    pub message: String,
    /// Event time, RFC 3339.
    pub at: String,
    /// The public id of the event that raised it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}
