//! Event progress for the live feed: the narrow columns only, never the body or headers, so a
//! dashboard re-reading recent events costs little while ingest is busy.

use rusqlite::{params, Connection};

use crate::store::{rfc3339, EventProgress};

/// Up to `limit` events after `after_seq`, in arrival order.
pub(super) fn after(conn: &Connection, after_seq: i64, limit: u32) -> rusqlite::Result<Vec<EventProgress>> {
    let mut statement = conn.prepare_cached(
        "SELECT e.seq, e.source, e.event_type, e.received_at, p.at, p.outcome, e.attempts
         FROM events e LEFT JOIN processed p ON p.seq = e.seq WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = statement.query_map(params![after_seq, limit.clamp(1, 1000)], |row| {
        Ok(EventProgress {
            seq: row.get(0)?,
            source: row.get(1)?,
            event_type: row.get(2)?,
            received_at: rfc3339(row.get(3)?),
            processed: row.get::<_, Option<i64>>(4)?.is_some(),
            outcome: row.get(5)?,
            attempts: row.get(6)?,
        })
    })?;
    rows.collect()
}
