//! SQL for processing: reading due events, committing a processed batch, trading-state
//! documents, alerts and the dead-letter queue.
//!
//! Writes are built here as closures that the writer thread runs inside its transaction, so a
//! processed batch commits in one transaction (and may share its fsync with concurrent appends).

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::event_id;
use super::writer::ExecFn;
use crate::store::processing::{
    DeadLetter, DeadLetterFilter, EntityKind, PendingEvent, ProcessedBatch, StoredAlert,
};
use crate::store::{now_ms, rfc3339};

/// Processing state kept apart from the wide `events` rows. Marking an event processed used to
/// rewrite its row (body, headers) and a partial index in the commit after the one that stored
/// it: every event's pages were written twice. Now an append adds a row of `pending` and
/// processing moves it to `processed` — both narrow tables appended at their right edge, whose
/// few pages stay hot. Events stay wide and immutable except for the retry bookkeeping of
/// failures (`attempts`, `next_attempt_at`, `ordering_key`, `history`).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE pending (seq INTEGER PRIMARY KEY);       -- stored, not yet processed
    CREATE TABLE processed (
        seq     INTEGER PRIMARY KEY,                      -- the event's seq
        at      INTEGER NOT NULL,                         -- unix ms
        outcome TEXT NOT NULL                             -- applied, ignored, stored, dead, …
    );
    INSERT INTO pending (seq) SELECT seq FROM events WHERE processed_at IS NULL;
    INSERT INTO processed (seq, at, outcome)
        SELECT seq, processed_at, coalesce(outcome, 'applied') FROM events WHERE processed_at IS NOT NULL;
    -- The old columns keep their values (rewriting every row would stall the upgrade); nothing
    -- reads them any more.
    DROP INDEX events_pending;
"#;

/// Events that waited behind a dead-lettered one are found by its ordering key. Only events that
/// failed or were deferred have one, so appends never touch this index; processed ones stay in it
/// until they are pruned, so a release reads that key's recent failures, not the whole backlog.
pub(super) const ORDERING_KEY_MIGRATION: &str = r#"
    CREATE INDEX events_ordering_key ON events (ordering_key) WHERE ordering_key IS NOT NULL;
"#;

/// Lets the not yet failed events of an ordering key (`?1`) go ahead, due from `?2` (so
/// `/readyz` counts their wait from then, not from their arrival): the one they waited behind is
/// dead-lettered. Driven by `events_ordering_key`, not by a scan of the whole backlog.
pub(super) const UNBLOCK_SQL: &str = "UPDATE events SET next_attempt_at = ?2
     WHERE ordering_key = ?1 AND attempts = 0 AND EXISTS (SELECT 1 FROM pending p WHERE p.seq = events.seq)";

/// The worker's queue at `?1`: the unprocessed events that are due, in arrival order.
const DUE: &str = "FROM pending p CROSS JOIN events e ON e.seq = p.seq
     WHERE e.next_attempt_at IS NULL OR e.next_attempt_at <= ?1 ORDER BY p.seq";

/// When an event became due: its arrival, or a later replay or retry time.
const DUE_AT: &str = "max(e.received_at, coalesce(e.next_attempt_at, 0))";

/// Up to `limit` unprocessed events that are due at `now`, in arrival order.
pub(super) fn pending(conn: &Connection, limit: u32, now: i64) -> rusqlite::Result<Vec<PendingEvent>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT e.seq, e.source, e.body, e.received_at, e.attempts, coalesce(e.history, '[]'), {DUE_AT}
         {DUE} LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![now, limit], pending_from_row)?;
    rows.collect()
}

/// Since when (unix ms) the first event of the worker's queue has been due at `now`: it
/// measures a stall (SPEC §6 `/readyz`). An event replayed or retried counts from then, not
/// from its arrival, and one waiting for a later retry is not late.
pub(super) fn oldest_due(conn: &Connection, now: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(&format!("SELECT {DUE_AT} {DUE} LIMIT 1"))?.query_row([now], |row| row.get(0)).optional()
}

/// A `PendingEvent` from `seq, source, body, received_at, attempts, history, due_at`.
fn pending_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PendingEvent> {
    Ok(PendingEvent {
        seq: row.get(0)?,
        source: row.get(1)?,
        body: bytes::Bytes::from(row.get::<_, Vec<u8>>(2)?),
        received_at: row.get(3)?,
        attempts: row.get(4)?,
        history: row.get(5)?,
        due_at: row.get(6)?,
    })
}

/// Ordering keys of events waiting for a retry, with when it is due.
pub(super) fn retrying(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement = conn.prepare(
        "SELECT e.ordering_key, max(e.next_attempt_at) FROM pending p CROSS JOIN events e ON e.seq = p.seq
         WHERE e.attempts > 0 AND e.ordering_key IS NOT NULL GROUP BY e.ordering_key",
    )?;
    let rows =
        statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, Option<i64>>(1)?.unwrap_or(0))))?;
    rows.collect()
}

/// The write of one processed batch; counts the events that left the pending set.
pub(super) fn commit_processed(batch: ProcessedBatch) -> ExecFn {
    Box::new(move |tx: &Connection| {
        let now = now_ms();
        let mut done = 0u64;
        let mut marks = Marks::new(tx)?;
        for (seq, outcome) in &batch.processed {
            done += marks.processed(*seq, now, outcome)?;
        }
        for retry in &batch.retries {
            tx.execute(
                "UPDATE events SET attempts = ?2, next_attempt_at = ?3, ordering_key = ?4, history = ?5
                 WHERE seq = ?1",
                params![retry.seq, retry.attempts, retry.next_attempt_at, retry.ordering_key, retry.history],
            )?;
        }
        for deferral in &batch.deferred {
            tx.execute(
                "UPDATE events SET next_attempt_at = ?2, ordering_key = ?3 WHERE seq = ?1",
                params![deferral.seq, deferral.until, deferral.ordering_key],
            )?;
        }
        for dead in &batch.dead {
            let marked = marks.processed(dead.seq, now, "dead")?;
            if marked > 0 {
                tx.execute(
                    "UPDATE events SET attempts = ?2, next_attempt_at = NULL, history = ?3 WHERE seq = ?1",
                    params![dead.seq, dead.attempts, dead.history],
                )?;
            }
            done += marked;
            tx.execute(
                "INSERT INTO dead_letters (event_seq, kind, reason, attempts, last_error, history, dead_at)
                 VALUES (?1, 'event', ?2, ?3, ?4, ?5, ?6)",
                params![dead.seq, dead.reason, dead.attempts, dead.last_error, dead.history, now],
            )?;
            if let Some(key) = &dead.ordering_key {
                // Events that waited behind this one go ahead now.
                tx.execute(UNBLOCK_SQL, params![key, now])?;
            }
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO state (kind, key, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM state WHERE kind = ?1 AND key = ?2")?;
            for change in &batch.entities {
                match &change.doc {
                    Some(doc) => upsert.execute(params![change.kind.as_str(), change.key, doc])?,
                    None => delete.execute(params![change.kind.as_str(), change.key])?,
                };
            }
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO alerts (kind, subject, message, at, event_seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            super::delivery::queue(tx, &batch.deliveries, now)?;
            super::intents::record(tx, &batch.intents, now)?;
            for alert in &batch.alerts {
                insert.execute(params![
                    alert.kind,
                    alert.subject,
                    alert.message,
                    alert.at,
                    alert.event_seq
                ])?;
            }
        }
        Ok(done)
    })
}

/// The two statements that mark events processed, looked up once per batch.
struct Marks<'a> {
    unqueue: rusqlite::CachedStatement<'a>,
    record: rusqlite::CachedStatement<'a>,
}

impl<'a> Marks<'a> {
    fn new(tx: &'a Connection) -> rusqlite::Result<Self> {
        Ok(Marks {
            unqueue: tx.prepare_cached("DELETE FROM pending WHERE seq = ?1")?,
            record: tx.prepare_cached("INSERT INTO processed (seq, at, outcome) VALUES (?1, ?2, ?3)")?,
        })
    }

    /// Moves a pending event to `processed` with `outcome`; 1 if it was pending, else 0 (nothing
    /// changes: it was processed already).
    fn processed(&mut self, seq: i64, now: i64, outcome: &str) -> rusqlite::Result<u64> {
        if self.unqueue.execute([seq])? == 0 {
            return Ok(0);
        }
        self.record.execute(params![seq, now, outcome])?;
        Ok(1)
    }
}

/// Every stored entity: (kind, key, doc).
pub(super) fn all_entities(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut statement = conn.prepare("SELECT kind, key, doc FROM state")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

/// Entities of one kind in key order, after `after` (exclusive), at most `limit`.
pub(super) fn entities(
    conn: &Connection,
    kind: EntityKind,
    after: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut statement =
        conn.prepare_cached("SELECT key, doc FROM state WHERE kind = ?1 AND key > ?2 ORDER BY key LIMIT ?3")?;
    let rows = statement.query_map(params![kind.as_str(), after.unwrap_or(""), limit], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    rows.collect()
}

/// Documents of `kind` whose key starts with `prefix` (a range scan of the primary key).
pub(super) fn entities_with_prefix(
    conn: &Connection,
    kind: EntityKind,
    prefix: &str,
) -> rusqlite::Result<Vec<String>> {
    // The keys with this prefix are exactly those in [prefix, prefix + U+10FFFF): a bounded range
    // of the primary key.
    let upper = format!("{prefix}\u{10FFFF}");
    let mut statement =
        conn.prepare_cached("SELECT doc FROM state WHERE kind = ?1 AND key >= ?2 AND key < ?3 ORDER BY key")?;
    let rows = statement.query_map(params![kind.as_str(), prefix, upper], |row| row.get(0))?;
    rows.collect()
}

/// One entity's document.
pub(super) fn entity(conn: &Connection, kind: EntityKind, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT doc FROM state WHERE kind = ?1 AND key = ?2", params![kind.as_str(), key], |row| {
        row.get(0)
    })
    .optional()
}

/// The newest alerts, newest first, optionally older than `before` (an alert id) and of `kind`.
pub(super) fn alerts(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
    kind: Option<&str>,
) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, kind, subject, message, at, event_seq FROM alerts
         WHERE id < ?1 AND (?3 IS NULL OR kind = ?3) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![before.unwrap_or(i64::MAX), limit, kind], |row| {
        Ok(StoredAlert {
            id: row.get(0)?,
            kind: row.get(1)?,
            subject: row.get(2)?,
            message: row.get(3)?,
            at: row.get(4)?,
            event_id: row.get::<_, Option<i64>>(5)?.map(event_id),
        })
    })?;
    rows.collect()
}

const DEAD_LETTER_COLUMNS: &str =
    "d.id, d.event_seq, d.kind, d.webhook_id, d.reason, d.attempts, d.last_error,
     d.dead_at, e.source, e.event_type, d.history, d.target";

fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    let history: String = row.get(10)?;
    Ok(DeadLetter {
        id: format!("dlq_{}", row.get::<_, i64>(0)?),
        event_id: event_id(row.get(1)?),
        kind: row.get(2)?,
        webhook_id: row.get(3)?,
        reason: row.get(4)?,
        attempts: row.get(5)?,
        last_error: row.get(6)?,
        dead_at: rfc3339(row.get(7)?),
        source: row.get::<_, Option<String>>(8)?.unwrap_or_default(),
        event_type: row.get(9)?,
        history: serde_json::from_str(&history).unwrap_or(serde_json::Value::Null),
        target: row.get(11)?,
    })
}

/// Dead letters matching `filter`, newest first.
pub(super) fn dead_letters(
    conn: &Connection,
    filter: &DeadLetterFilter,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let (clauses, values) = dead_letter_where(filter);
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d LEFT JOIN events e ON e.seq = d.event_seq
         {clauses} ORDER BY d.id DESC LIMIT {}",
        filter.page_size()
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), dead_letter_from_row)?;
    rows.collect()
}

fn dead_letter_where(filter: &DeadLetterFilter) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let conditions = [
        (&filter.source, "e.source = ?"),
        (&filter.event_type, "e.event_type = ?"),
        (&filter.kind, "d.kind = ?"),
        (&filter.reason, "instr(d.reason, ?) > 0"),
        (&filter.before.map(|id| id.to_string()), "d.id < CAST(? AS INTEGER)"),
    ];
    for (value, condition) in conditions {
        if let Some(value) = value {
            values.push(value.clone());
            clauses.push(condition.replace('?', &format!("?{}", values.len())));
        }
    }
    let text = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (text, values)
}

/// One dead letter.
pub(super) fn dead_letter(conn: &Connection, id: i64) -> rusqlite::Result<Option<DeadLetter>> {
    conn.query_row(
        &format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d LEFT JOIN events e ON e.seq = d.event_seq WHERE d.id = ?1"
        ),
        [id],
        dead_letter_from_row,
    )
    .optional()
}

/// Puts the events (`deliveries` false) or the failed deliveries (`deliveries` true) of these
/// dead letters back in the queue and removes those entries; counts them. A delivery dead letter
/// is attempted again without processing its event again.
pub(super) fn replay_dead_letters(ids: Vec<i64>, deliveries: bool) -> ExecFn {
    Box::new(move |tx: &Connection| {
        let mut replayed = 0;
        for id in ids {
            let entry: Option<(i64, Option<i64>)> = tx
                .query_row("SELECT event_seq, delivery_id FROM dead_letters WHERE id = ?1", [id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((seq, delivery)) = entry else { continue };
            if delivery.is_some() != deliveries {
                continue;
            }
            tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id])?;
            replayed += match delivery {
                Some(delivery_id) => super::delivery::requeue_delivery(tx, delivery_id)?,
                None => requeue(tx, seq)?,
            };
        }
        Ok(replayed)
    })
}

/// Removes a dead letter for good (its event stays stored, processed as `dead`).
pub(super) fn discard_dead_letter(id: i64) -> ExecFn {
    Box::new(move |tx: &Connection| Ok(tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id])? as u64))
}

/// Puts one stored event back in the queue (processing is idempotent, so a processed event
/// changes nothing when applied again); any dead letter of it goes.
pub(super) fn replay_event(seq: i64) -> ExecFn {
    Box::new(move |tx: &Connection| {
        tx.execute("DELETE FROM dead_letters WHERE event_seq = ?1 AND kind = 'event'", [seq])?;
        requeue(tx, seq)
    })
}

fn requeue(tx: &Connection, seq: i64) -> rusqlite::Result<u64> {
    if tx.execute("DELETE FROM processed WHERE seq = ?1", [seq])? == 0 {
        return Ok(0);
    }
    tx.execute("INSERT INTO pending (seq) VALUES (?1)", [seq])?;
    tx.execute(
        "UPDATE events SET attempts = 0, next_attempt_at = ?2, history = NULL WHERE seq = ?1",
        params![seq, crate::store::now_ms()],
    )?;
    Ok(1)
}

/// Replaces the whole trading state (for `rebuild-state`).
pub(super) fn replace_state(entities: Vec<(EntityKind, String, String)>) -> ExecFn {
    Box::new(move |tx: &Connection| {
        // The strategy actions' memory (live brackets, margin episodes) is not derived from
        // events alone: it stays.
        tx.execute("DELETE FROM state WHERE kind NOT LIKE 'strategy_%'", [])?;
        let mut insert = tx.prepare_cached("INSERT INTO state (kind, key, doc) VALUES (?1, ?2, ?3)")?;
        for (kind, key, doc) in &entities {
            insert.execute(params![kind.as_str(), key, doc])?;
        }
        Ok(entities.len() as u64)
    })
}

/// Events processed with outcome `applied`, in arrival order, after `after_seq`, at most `limit`.
pub(super) fn applied_events(
    conn: &Connection,
    after_seq: i64,
    limit: u32,
) -> rusqlite::Result<Vec<PendingEvent>> {
    let mut statement = conn.prepare_cached(
        "SELECT e.seq, e.source, e.body, e.received_at, e.attempts, '[]', e.received_at
         FROM processed p CROSS JOIN events e ON e.seq = p.seq
         WHERE p.seq > ?1 AND p.outcome = 'applied' ORDER BY p.seq LIMIT ?2",
    )?;
    let rows = statement.query_map(params![after_seq, limit], pending_from_row)?;
    rows.collect()
}

/// Number of dead letters.
pub(super) fn dead_letter_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM dead_letters", [], |row| row.get(0))
}
