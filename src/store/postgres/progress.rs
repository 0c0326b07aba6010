//! Event progress for the live feed: the narrow columns only, never the body or headers, so a
//! dashboard re-reading recent events costs little while ingest is busy.

use deadpool_postgres::GenericClient;

use super::{pg_error, rfc3339, StoreError};
use crate::store::EventProgress;

/// Up to `limit` events after `after_seq`, in arrival order.
pub(super) async fn after(
    client: &impl GenericClient,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<EventProgress>, StoreError> {
    let rows = client
        .query(
            "SELECT seq, source, event_type, received_at, processed_at, outcome, attempts
             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after_seq, &i64::from(limit.clamp(1, 1000))],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|row| EventProgress {
            seq: row.get(0),
            source: row.get(1),
            event_type: row.get(2),
            received_at: rfc3339(row.get(3)),
            processed: row.get::<_, Option<i64>>(4).is_some(),
            outcome: row.get(5),
            attempts: u32::try_from(row.get::<_, i64>(6)).unwrap_or(u32::MAX),
        })
        .collect())
}
