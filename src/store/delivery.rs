//! What the delivery side reads from and writes to the store: queued deliveries (an outbox
//! filled in the same transaction as the event's "processed" mark), their results, the attempt
//! log and subscriptions.

use bytes::Bytes;
use serde::Serialize;

/// A delivery to queue, decided while the event was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The event.
    pub seq: i64,
    /// `forward:<subscription>`, `nats:<subject>` or `exec:<command>`.
    pub target: String,
    /// The subscription, when the target names an existing one.
    pub webhook_id: Option<String>,
    /// Keep it without attempting (the subscription is inactive).
    pub held: bool,
    /// The body to send when it is not the stored event body (e.g. a TradingView alert as a
    /// canonical `signal.generated`).
    pub payload: Option<Bytes>,
}

/// A delivery that is due now.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// The event.
    pub seq: i64,
    /// Where it goes.
    pub target: String,
    /// The subscription, when known at queueing.
    pub webhook_id: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Attempt history so far (JSON array).
    pub history: String,
    /// What to send.
    pub body: Bytes,
    /// Event type, when known.
    pub event_type: Option<String>,
}

/// One attempt as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// When it started, unix ms.
    pub at: i64,
    /// HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// How long it took, ms.
    pub latency_ms: f64,
    /// The first bytes of the answer body.
    pub response: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl AttemptRecord {
    /// An attempt that started at `at` and has no HTTP answer (yet): what the sender fills in
    /// as it learns it, or all there is for a target that is not HTTP or could not be tried.
    pub fn unanswered(at: i64, latency_ms: f64, error: Option<String>) -> Self {
        AttemptRecord { at, status_code: None, latency_ms, response: None, error }
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryNext {
    /// Done.
    Delivered,
    /// Try again at `at` (unix ms).
    Retry {
        /// When.
        at: i64,
    },
    /// Retries used up (or never possible): into the dead-letter queue.
    Dead {
        /// Why.
        reason: String,
    },
    /// Keep without attempting until the subscription is enabled again.
    Held,
    /// A test delivery (`POST /api/v1/webhooks/test`): only logged.
    Tested {
        /// Whether the receiver took it.
        delivered: bool,
    },
}

/// The outcome of one attempt, committed with others in one transaction.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    /// The delivery (None for `POST /api/v1/webhooks/test`, which is only logged).
    pub delivery_id: Option<i64>,
    /// The event.
    pub seq: Option<i64>,
    /// The subscription, if the target is one.
    pub webhook_id: Option<String>,
    /// Failed attempts including this one.
    pub attempts: u32,
    /// Attempt history including this one (JSON array).
    pub history: String,
    /// The attempt, unless none was made (held).
    pub attempt: Option<AttemptRecord>,
    /// What happens next.
    pub next: DeliveryNext,
    /// The delivery carries an order intent to a broker: record the outcome on the intent too.
    pub settles_intent: bool,
}

/// A change to a subscription's health, committed with the delivery results.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    /// Delivered at this time (unix ms): failing streak over.
    Succeeded(i64),
    /// Failed at this time with this error; the streak starts now if none is running.
    Failed(i64, String),
    /// Disable it for this reason; its queued deliveries are held.
    Disable(String),
    /// Hold its queued deliveries until this time (unix ms): it answered `Retry-After`.
    PauseUntil(i64),
}

/// One attempt as `GET /api/v1/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// Attempt id.
    pub id: i64,
    /// The delivery it belongs to (absent for test deliveries).
    pub delivery_id: Option<i64>,
    /// The event, `evt_…` (absent for test deliveries).
    pub event_id: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// HTTP status of the answer, if one came.
    pub status_code: Option<u16>,
    /// Latency, ms.
    pub latency_ms: f64,
    /// First bytes of the answer.
    pub response: Option<String>,
    /// Error, if it failed.
    pub error: Option<String>,
    /// `delivered`, `retry`, `dead` or `held`.
    pub outcome: String,
}

/// Subscription health for the API and the dashboard.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionHealth {
    /// Last success, RFC 3339.
    pub last_success_at: Option<String>,
    /// Start of the current failing streak, RFC 3339.
    pub failing_since: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// Deliveries waiting (due or retrying).
    pub pending: u64,
    /// Deliveries held while the subscription is inactive.
    pub held: u64,
    /// Attempts in the last 24 h.
    pub attempts_24h: u64,
    /// Of which delivered.
    pub delivered_24h: u64,
}
