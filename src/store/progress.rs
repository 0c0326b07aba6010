//! How far processing got with each stored event, without its body: what the dashboard's live
//! feed shows (and re-reads until an event is done).

use serde::Serialize;

use super::StoredEvent;

/// One stored event's place in processing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventProgress {
    /// Arrival order.
    pub seq: i64,
    /// Source name.
    pub source: String,
    /// Payload `event` field.
    pub event_type: Option<String>,
    /// Arrival time, RFC 3339.
    pub received_at: String,
    /// Whether processing finished (applied, stored, or dead-lettered).
    pub processed: bool,
    /// How it finished (`applied`, `stored`, `dead`), when the store records it.
    pub outcome: Option<String>,
    /// Failed processing attempts so far (a pending event with attempts is being retried).
    pub attempts: u32,
}

impl EventProgress {
    /// What a stored event shows of its progress when the store keeps no outcome column.
    pub fn of(event: &StoredEvent) -> Self {
        EventProgress {
            seq: event.seq,
            source: event.source.clone(),
            event_type: event.event_type.clone(),
            received_at: event.received_at.clone(),
            processed: event.processed_at.is_some(),
            outcome: None,
            attempts: 0,
        }
    }
}
