//! SQL for order intents: one row per client order id, queued for the broker as a delivery in
//! the same transaction that processes the triggering event.

use rusqlite::{params, Connection, OptionalExtension};

use super::event_id;
use crate::store::intents::{IntentOutcome, NewIntent, StoredIntent};
use crate::store::rfc3339;

/// The schema of intents (migration 3).
pub(super) const MIGRATION: &str = r#"
    CREATE TABLE intents (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        client_order_id TEXT NOT NULL UNIQUE,
        action          TEXT NOT NULL,
        symbol          TEXT,
        outcome         TEXT NOT NULL,     -- queued | sent | failed | refused | unsent
        reason          TEXT,
        doc             TEXT NOT NULL,
        event_seq       INTEGER,
        broker_response TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    ALTER TABLE deliveries ADD COLUMN intent_id INTEGER;
"#;

/// Client order ids of `signal_to_order` intents whose delivery to the broker is pending (queued,
/// retrying, or replayed from the dead-letter queue), found through the pending deliveries.
pub(super) fn awaiting_broker(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut statement = conn.prepare_cached(
        "SELECT i.client_order_id, i.doc FROM deliveries d JOIN intents i ON i.id = d.intent_id
         WHERE d.status = 'pending' AND d.target LIKE 'broker:%' AND i.action = 'signal_to_order'",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Records `intents` inside the processing transaction; a client order id already recorded is
/// skipped, so the broker never gets it twice. New, unrefused intents with a broker are queued
/// as deliveries to it.
pub(super) fn record(tx: &Connection, intents: &[NewIntent], now: i64) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO intents (client_order_id, action, symbol, outcome, reason, doc, event_seq, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT (client_order_id) DO NOTHING",
    )?;
    let mut queue = tx.prepare_cached(
        "INSERT INTO deliveries (event_seq, target, status, next_attempt_at, payload, created_at, intent_id)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?3, ?5)",
    )?;
    for intent in intents {
        let outcome = intent.initial_outcome().as_str();
        let added = insert.execute(params![
            intent.client_order_id,
            intent.action,
            intent.symbol,
            outcome,
            intent.refused,
            intent.doc,
            intent.seq,
            now
        ])?;
        if let (1, None, Some(broker)) = (added, &intent.refused, &intent.broker) {
            let id = tx.last_insert_rowid();
            queue.execute(params![intent.seq, broker, now, intent.doc.as_bytes(), id])?;
        }
    }
    Ok(())
}

/// The recorded outcome of each of `ids` (client order ids), found through their unique index.
pub(super) fn outcomes(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<(String, String)>> {
    let mut statement = conn.prepare_cached("SELECT outcome FROM intents WHERE client_order_id = ?1")?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(outcome) = statement.query_row([id], |row| row.get::<_, String>(0)).optional()? {
            found.push((id.clone(), outcome));
        }
    }
    Ok(found)
}

/// Marks the intent of a delivery `sent` or `failed` with the broker's answer; `sent` clears the
/// reason an earlier failure left (a dead letter replayed once the broker is back).
pub(super) fn settle(
    tx: &Connection,
    delivery_id: i64,
    outcome: IntentOutcome,
    response: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE intents SET outcome = ?2, broker_response = ?3,
                reason = CASE WHEN ?2 = 'sent' THEN ?4 ELSE coalesce(?4, reason) END, updated_at = ?5
         WHERE id = (SELECT intent_id FROM deliveries WHERE id = ?1)",
    )?
    .execute(params![delivery_id, outcome.as_str(), response, reason, now])?;
    Ok(())
}

/// Intents, newest first, before row `before` when given, optionally of one action or outcome.
pub(super) fn list(
    conn: &Connection,
    before: Option<i64>,
    action: Option<&str>,
    outcome: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<StoredIntent>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, client_order_id, action, symbol, outcome, reason, doc, event_seq, broker_response,
                created_at, updated_at
         FROM intents WHERE id < ?1 AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR outcome = ?3)
         ORDER BY id DESC LIMIT ?4",
    )?;
    let rows = statement.query_map(params![before.unwrap_or(i64::MAX), action, outcome, limit], |row| {
        let doc: String = row.get(6)?;
        Ok(StoredIntent {
            id: row.get(0)?,
            client_order_id: row.get(1)?,
            action: row.get(2)?,
            symbol: row.get(3)?,
            outcome: row.get(4)?,
            reason: row.get(5)?,
            intent: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
            event_id: row.get::<_, Option<i64>>(7)?.map(event_id),
            broker_response: row.get(8)?,
            created_at: rfc3339(row.get(9)?),
            updated_at: rfc3339(row.get(10)?),
        })
    })?;
    rows.collect()
}
