//! Tailing by seq, and event progress for the live feed: the narrow columns only, never the body
//! or headers, so a dashboard re-reading recent events costs little while ingest is busy.
//!
//! Several ingest batches commit at once (on one node and on several), so seq 11 can become
//! visible before seq 10. A reader that returned 11 and then asked for what comes after it would
//! never see 10. So a tail reads only up to [`settled_seq`]: every append holds [`SEQ_LOCK`]
//! shared from before it takes its seqs until it has committed; the reader takes it exclusively
//! for a moment, which waits for the batches in flight (and holds new ones back that long).

use super::{pg_error, rfc3339, StoreError};
use crate::store::EventProgress;

/// tradehook's advisory-lock key for taking seqs ("th-seqs" as bytes).
pub(super) const SEQ_LOCK: i64 = 0x0074_682d_7365_7173;

/// A seq at or below which every event is visible and no other will appear: the highest stored
/// before the batches then in flight have committed.
pub(super) async fn settled_seq(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    // READ COMMITTED: the highest seq is read first, from a snapshot taken before the wait. Every
    // batch that took a lower seq held the lock before taking it, so once the lock is granted
    // each of them has committed or rolled back. One round trip.
    let sql = format!(
        "BEGIN; SELECT coalesce(max(seq), 0) FROM events; SELECT pg_advisory_xact_lock({SEQ_LOCK}); COMMIT"
    );
    let messages = client.simple_query(&sql).await.map_err(pg_error)?;
    let highest = messages.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i64>().ok()),
        _ => None,
    });
    highest.ok_or_else(|| StoreError::Internal("the highest seq was not returned".into()))
}

/// Up to `limit` events after `after_seq`, in arrival order.
pub(super) async fn after(
    client: &tokio_postgres::Client,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<EventProgress>, StoreError> {
    let settled = settled_seq(client).await?;
    let rows = client
        .query(
            "SELECT seq, source, event_type, received_at, processed_at, outcome, attempts
             FROM events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2",
            &[&after_seq, &i64::from(limit.clamp(1, 1000)), &settled],
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
