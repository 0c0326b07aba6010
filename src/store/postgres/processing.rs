//! SQL for processing on PostgreSQL: due events, the processed batch (one transaction, bulk
//! statements over arrays so a round of a thousand events is a handful of round trips), state
//! documents, alerts and the dead-letter queue.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{event_id, pg_error, StoreError};
use crate::store::processing::{
    DeadLetter, DeadLetterFilter, EntityKind, PendingEvent, ProcessedBatch, StoredAlert,
};
use crate::store::{now_ms, rfc3339};

type Result<T> = std::result::Result<T, StoreError>;

/// When an event became due: its arrival, or a later replay or retry time.
const DUE_AT: &str = "greatest(received_at, coalesce(next_attempt_at, 0))";


fn pending_from_row(row: &Row) -> PendingEvent {
    PendingEvent {
        seq: row.get(0),
        source: row.get(1),
        body: bytes::Bytes::from(row.get::<_, Vec<u8>>(2)),
        received_at: row.get(3),
        attempts: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
        history: row.get(5),
        due_at: row.get(6),
    }
}

/// The worker's queue at `$1`: the unprocessed events that are due, in arrival order.
const DUE: &str = "FROM events WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
     ORDER BY seq";

/// Up to `limit` unprocessed events due at `now`, in arrival order.
pub(super) async fn pending(client: &impl GenericClient, limit: u32, now: i64) -> Result<Vec<PendingEvent>> {
    let sql = format!("SELECT seq, source, body, received_at, attempts, coalesce(history, '[]'), {DUE_AT} {DUE} LIMIT $2");
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let rows = client.query(&statement, &[&now, &i64::from(limit)]).await.map_err(pg_error)?;
    Ok(rows.iter().map(pending_from_row).collect())
}

/// Since when (unix ms) the first event of the worker's queue has been due at `now`: it
/// measures a stall (SPEC §6 `/readyz`). An event replayed or retried counts from then, not
/// from its arrival, and one waiting for a later retry is not late.
pub(super) async fn oldest_due(client: &impl GenericClient, now: i64) -> Result<Option<i64>> {
    let statement = client.prepare_cached(&format!("SELECT {DUE_AT} {DUE} LIMIT 1")).await.map_err(pg_error)?;
    let row = client.query_opt(&statement, &[&now]).await.map_err(pg_error)?;
    Ok(row.map(|row| row.get(0)))
}

/// Events processed as `applied` after `after_seq`, in arrival order.
pub(super) async fn applied_events(
    client: &impl GenericClient,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<PendingEvent>> {
    let rows = client
        .query(
            "SELECT seq, source, body, received_at, attempts, '[]', received_at FROM events
             WHERE seq > $1 AND outcome = 'applied' ORDER BY seq LIMIT $2",
            &[&after_seq, &i64::from(limit)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(pending_from_row).collect())
}

/// Ordering keys of events waiting for a retry, with when it is due.
pub(super) async fn retrying(client: &impl GenericClient) -> Result<Vec<(String, i64)>> {
    let rows = client
        .query(
            "SELECT ordering_key, coalesce(max(next_attempt_at), 0) FROM events
             WHERE processed_at IS NULL AND attempts > 0 AND ordering_key IS NOT NULL GROUP BY ordering_key",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Writes one processed batch inside `tx`; counts the events that left the pending set.
pub(super) async fn commit_processed(tx: &Transaction<'_>, batch: &ProcessedBatch) -> Result<u64> {
    let now = now_ms();
    let mut done = 0u64;
    if !batch.processed.is_empty() {
        let (seqs, outcomes): (Vec<i64>, Vec<&str>) = batch.processed.iter().copied().unzip();
        let statement = tx
            .prepare_cached(
                "UPDATE events SET processed_at = $1, outcome = u.outcome, next_attempt_at = NULL
                 FROM unnest($2::bigint[], $3::text[]) AS u(seq, outcome)
                 WHERE events.seq = u.seq AND events.processed_at IS NULL",
            )
            .await
            .map_err(pg_error)?;
        done += tx.execute(&statement, &[&now, &seqs, &outcomes]).await.map_err(pg_error)?;
    }
    for retry in &batch.retries {
        tx.execute(
            "UPDATE events SET attempts = $2, next_attempt_at = $3, ordering_key = $4, history = $5 WHERE seq = $1",
            &[&retry.seq, &i64::from(retry.attempts), &retry.next_attempt_at, &retry.ordering_key, &retry.history],
        )
        .await
        .map_err(pg_error)?;
    }
    for deferral in &batch.deferred {
        tx.execute(
            "UPDATE events SET next_attempt_at = $2, ordering_key = $3 WHERE seq = $1",
            &[&deferral.seq, &deferral.until, &deferral.ordering_key],
        )
        .await
        .map_err(pg_error)?;
    }
    for dead in &batch.dead {
        done += tx
            .execute(
                "UPDATE events SET processed_at = $2, outcome = 'dead', attempts = $3, next_attempt_at = NULL,
                 history = $4 WHERE seq = $1 AND processed_at IS NULL",
                &[&dead.seq, &now, &i64::from(dead.attempts), &dead.history],
            )
            .await
            .map_err(pg_error)?;
        tx.execute(
            "INSERT INTO dead_letters (event_seq, kind, reason, attempts, last_error, history, dead_at)
             VALUES ($1, 'event', $2, $3, $4, $5, $6)",
            &[&dead.seq, &dead.reason, &i64::from(dead.attempts), &dead.last_error, &dead.history, &now],
        )
        .await
        .map_err(pg_error)?;
        if let Some(key) = &dead.ordering_key {
            // Events that waited behind this one go ahead now (due from now: /readyz counts
            // their wait from then, not from their arrival).
            tx.execute(
                "UPDATE events SET next_attempt_at = $2
                 WHERE processed_at IS NULL AND ordering_key = $1 AND attempts = 0",
                &[key, &now],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    write_entities(tx, batch).await?;
    if !batch.alerts.is_empty() {
        let kinds: Vec<&str> = batch.alerts.iter().map(|a| a.kind.as_str()).collect();
        let subjects: Vec<&str> = batch.alerts.iter().map(|a| a.subject.as_str()).collect();
        let messages: Vec<&str> = batch.alerts.iter().map(|a| a.message.as_str()).collect();
        let ats: Vec<&str> = batch.alerts.iter().map(|a| a.at.as_str()).collect();
        let seqs: Vec<Option<i64>> = batch.alerts.iter().map(|a| a.event_seq).collect();
        tx.execute(
            "INSERT INTO alerts (kind, subject, message, at, event_seq)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])",
            &[&kinds, &subjects, &messages, &ats, &seqs],
        )
        .await
        .map_err(pg_error)?;
    }
    super::delivery::queue(tx, &batch.deliveries, now).await?;
    super::intents::record(tx, &batch.intents, now).await?;
    Ok(done)
}

/// Upserts and deletes the batch's entity documents (at most one change per entity).
async fn write_entities(tx: &Transaction<'_>, batch: &ProcessedBatch) -> Result<()> {
    let (written, removed): (Vec<_>, Vec<_>) = batch.entities.iter().partition(|c| c.doc.is_some());
    if !written.is_empty() {
        let kinds: Vec<&str> = written.iter().map(|c| c.kind.as_str()).collect();
        let keys: Vec<&str> = written.iter().map(|c| c.key.as_str()).collect();
        let docs: Vec<&str> = written.iter().map(|c| c.doc.as_deref().unwrap_or_default()).collect();
        let statement = tx
            .prepare_cached(
                "INSERT INTO state (kind, key, doc) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(&statement, &[&kinds, &keys, &docs]).await.map_err(pg_error)?;
    }
    if !removed.is_empty() {
        let kinds: Vec<&str> = removed.iter().map(|c| c.kind.as_str()).collect();
        let keys: Vec<&str> = removed.iter().map(|c| c.key.as_str()).collect();
        tx.execute(
            "DELETE FROM state USING unnest($1::text[], $2::text[]) AS g(kind, key)
             WHERE state.kind = g.kind AND state.key = g.key",
            &[&kinds, &keys],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

/// Every stored entity: (kind, key, doc).
pub(super) async fn all_entities(client: &impl GenericClient) -> Result<Vec<(String, String, String)>> {
    let rows = client.query("SELECT kind, key, doc FROM state", &[]).await.map_err(pg_error)?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect())
}

/// Entities of one kind in key order after `after`, at most `limit`.
pub(super) async fn entities(
    client: &impl GenericClient,
    kind: EntityKind,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT key, doc FROM state WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3",
            &[&kind.as_str(), &after.unwrap_or(""), &i64::from(limit)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Documents of `kind` whose key starts with `prefix` (a range of the bytewise-sorted key).
pub(super) async fn entities_with_prefix(
    client: &impl GenericClient,
    kind: EntityKind,
    prefix: &str,
) -> Result<Vec<String>> {
    let upper = format!("{prefix}\u{10FFFF}");
    let rows = client
        .query(
            "SELECT doc FROM state WHERE kind = $1 AND key >= $2 AND key < $3 ORDER BY key",
            &[&kind.as_str(), &prefix, &upper],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// One entity's document.
pub(super) async fn entity(
    client: &impl GenericClient,
    kind: EntityKind,
    key: &str,
) -> Result<Option<String>> {
    let row = client
        .query_opt("SELECT doc FROM state WHERE kind = $1 AND key = $2", &[&kind.as_str(), &key])
        .await
        .map_err(pg_error)?;
    Ok(row.map(|row| row.get(0)))
}

/// Alerts, newest first, older than `before` and of `kind` when given.
pub(super) async fn alerts(
    client: &impl GenericClient,
    before: Option<i64>,
    limit: u32,
    kind: Option<&str>,
) -> Result<Vec<StoredAlert>> {
    let rows = client
        .query(
            "SELECT id, kind, subject, message, at, event_seq FROM alerts
             WHERE id < $1 AND ($3::text IS NULL OR kind = $3) ORDER BY id DESC LIMIT $2",
            &[&before.unwrap_or(i64::MAX), &i64::from(limit), &kind],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|row| StoredAlert {
            id: row.get(0),
            kind: row.get(1),
            subject: row.get(2),
            message: row.get(3),
            at: row.get(4),
            event_id: row.get::<_, Option<i64>>(5).map(event_id),
        })
        .collect())
}

const DEAD_LETTER_COLUMNS: &str =
    "d.id, d.event_seq, d.kind, d.webhook_id, d.reason, d.attempts, d.last_error,
     d.dead_at, e.source, e.event_type, d.history, d.target";

fn dead_letter_from_row(row: &Row) -> DeadLetter {
    let history: String = row.get(10);
    DeadLetter {
        id: format!("dlq_{}", row.get::<_, i64>(0)),
        event_id: event_id(row.get(1)),
        kind: row.get(2),
        webhook_id: row.get(3),
        reason: row.get(4),
        attempts: u32::try_from(row.get::<_, i64>(5)).unwrap_or(u32::MAX),
        last_error: row.get(6),
        dead_at: rfc3339(row.get(7)),
        source: row.get::<_, Option<String>>(8).unwrap_or_default(),
        event_type: row.get(9),
        history: serde_json::from_str(&history).unwrap_or(serde_json::Value::Null),
        target: row.get(11),
    }
}

/// Dead letters matching `filter`, newest first.
pub(super) async fn dead_letters(
    client: &impl GenericClient,
    filter: &DeadLetterFilter,
) -> Result<Vec<DeadLetter>> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d LEFT JOIN events e ON e.seq = d.event_seq
         WHERE ($1::text IS NULL OR e.source = $1) AND ($2::text IS NULL OR e.event_type = $2)
           AND ($3::text IS NULL OR d.kind = $3) AND ($4::text IS NULL OR strpos(d.reason, $4) > 0)
           AND ($6::bigint IS NULL OR d.id < $6)
         ORDER BY d.id DESC LIMIT $5"
    );
    let limit = i64::from(filter.page_size());
    let rows = client
        .query(&sql, &[&filter.source, &filter.event_type, &filter.kind, &filter.reason, &limit, &filter.before])
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(dead_letter_from_row).collect())
}

/// One dead letter.
pub(super) async fn dead_letter(client: &impl GenericClient, id: i64) -> Result<Option<DeadLetter>> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d LEFT JOIN events e ON e.seq = d.event_seq WHERE d.id = $1"
    );
    let row = client.query_opt(&sql, &[&id]).await.map_err(pg_error)?;
    Ok(row.as_ref().map(dead_letter_from_row))
}

/// Puts the events or failed deliveries of these dead letters back in the queue and removes the
/// entries; returns (events requeued, deliveries requeued).
pub(super) async fn replay_dead_letters(tx: &Transaction<'_>, ids: &[i64]) -> Result<(u64, u64)> {
    let (mut events, mut deliveries) = (0, 0);
    for id in ids {
        let entry = tx
            .query_opt("DELETE FROM dead_letters WHERE id = $1 RETURNING event_seq, delivery_id", &[id])
            .await
            .map_err(pg_error)?;
        let Some(entry) = entry else { continue };
        match entry.get::<_, Option<i64>>(1) {
            Some(delivery_id) => deliveries += super::delivery::requeue_delivery(tx, delivery_id).await?,
            None => events += requeue(tx, entry.get(0)).await?,
        }
    }
    Ok((events, deliveries))
}

/// Removes a dead letter for good; whether it existed.
pub(super) async fn discard_dead_letter(client: &impl GenericClient, id: i64) -> Result<bool> {
    let gone = client.execute("DELETE FROM dead_letters WHERE id = $1", &[&id]).await.map_err(pg_error)?;
    Ok(gone > 0)
}

/// Puts one stored event back in the queue; any dead letter of it goes. Whether it was requeued.
pub(super) async fn replay_event(tx: &Transaction<'_>, seq: i64) -> Result<u64> {
    tx.execute("DELETE FROM dead_letters WHERE event_seq = $1 AND kind = 'event'", &[&seq])
        .await
        .map_err(pg_error)?;
    requeue(tx, seq).await
}

async fn requeue(tx: &Transaction<'_>, seq: i64) -> Result<u64> {
    tx.execute(
        "UPDATE events SET processed_at = NULL, outcome = NULL, attempts = 0, next_attempt_at = $2, history = NULL
         WHERE seq = $1 AND processed_at IS NOT NULL",
        &[&seq, &now_ms()],
    )
    .await
    .map_err(pg_error)
}

/// Replaces the trading state (`rebuild-state`); the strategy actions' memory stays.
pub(super) async fn replace_state(
    tx: &Transaction<'_>,
    entities: &[(EntityKind, String, String)],
) -> Result<u64> {
    tx.execute("DELETE FROM state WHERE kind NOT LIKE 'strategy_%'", &[]).await.map_err(pg_error)?;
    let kinds: Vec<&str> = entities.iter().map(|(kind, _, _)| kind.as_str()).collect();
    let keys: Vec<&str> = entities.iter().map(|(_, key, _)| key.as_str()).collect();
    let docs: Vec<&str> = entities.iter().map(|(_, _, doc)| doc.as_str()).collect();
    tx.execute(
        "INSERT INTO state (kind, key, doc) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        &[&kinds, &keys, &docs],
    )
    .await
    .map_err(pg_error)?;
    Ok(entities.len() as u64)
}

/// Number of dead letters.
pub(super) async fn dead_letter_count(client: &impl GenericClient) -> Result<u64> {
    let row = client.query_one("SELECT count(*) FROM dead_letters", &[]).await.map_err(pg_error)?;
    Ok(row.get::<_, i64>(0) as u64)
}
