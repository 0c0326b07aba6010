//! Order intents as the store keeps them: what a strategy action decided (or refused), and what
//! the broker made of it.
//!
//! An intent's client order id is deterministic (derived from the event that caused it and the
//! action), and the store keeps one row per id: an intent decided again — a duplicated, retried
//! or replayed trigger — is recognised and never sent to the broker a second time.

use serde::{Deserialize, Serialize};

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntentOutcome {
    /// Waiting for the broker.
    Queued,
    /// The broker took it.
    Sent,
    /// The broker never took it (dead-lettered).
    Failed,
    /// Risk checks refused it: never sent.
    Refused,
    /// No broker configured.
    Unsent,
}

impl IntentOutcome {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Unsent => "unsent",
        }
    }
}

/// An intent or refusal decided while an event was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// The event that caused it.
    pub seq: i64,
    /// Deterministic id (for a refusal: derived the same way, so a replay records it once).
    pub client_order_id: String,
    /// `bracket_on_fill`, `signal_to_order` or `margin_guard`.
    pub action: String,
    /// Instrument, when there is one.
    pub symbol: Option<String>,
    /// The intent or refusal as JSON.
    pub doc: String,
    /// `Some(reason)` when risk checks refused it: stored, never sent.
    pub refused: Option<String>,
    /// The broker target to queue it for (`broker:paper`, `broker:http`); `None` = none configured.
    pub broker: Option<String>,
}

impl NewIntent {
    /// The outcome it is recorded with.
    pub fn initial_outcome(&self) -> IntentOutcome {
        match (&self.refused, &self.broker) {
            (Some(_), _) => IntentOutcome::Refused,
            (None, Some(_)) => IntentOutcome::Queued,
            (None, None) => IntentOutcome::Unsent,
        }
    }
}

/// An intent as `GET /api/v1/intents` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredIntent {
    /// Row id, for paging.
    pub id: i64,
    /// The deterministic client order id.
    pub client_order_id: String,
    /// The action that decided it.
    pub action: String,
    /// Instrument.
    pub symbol: Option<String>,
    /// `queued` (waiting for the broker), `sent`, `failed` (dead-lettered), `refused`, or
    /// `unsent` (no broker configured).
    pub outcome: String,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    /// The intent as decided.
    #[schema(value_type = Object)]
    pub intent: serde_json::Value,
    /// The event that caused it, `evt_…`.
    pub event_id: Option<String>,
    /// The first bytes of the broker's answer.
    pub broker_response: Option<String>,
    /// When decided, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_name_of_each_outcome_is_its_serde_name() {
        use IntentOutcome::*;
        for outcome in [Queued, Sent, Failed, Refused, Unsent] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str(), "{outcome:?}");
        }
    }
}
