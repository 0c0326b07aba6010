//! SQL for outbound delivery: the deliveries outbox, its results, the attempt log and the
//! subscriptions.
//!
//! A delivery row is written in the same transaction as its event's "processed" mark
//! ([`queue`], called from `commit_processed`), so an event is never processed without its
//! deliveries queued. Status moves `pending` → `delivered` | `dead`, or `held` while its
//! subscription is inactive; results of many attempts commit together ([`commit_results`]).

use rusqlite::{params, Connection, OptionalExtension};

use super::event_id;
use super::writer::ExecFn;
use crate::delivery::subscription::Subscription;
use crate::store::delivery::{
    DeliveryAttempt, DeliveryNext, DeliveryResult, DueDelivery, HealthChange, NewDelivery, SubscriptionHealth,
};
use crate::store::intents::IntentOutcome;
use crate::store::{now_ms, rfc3339};

/// The schema of delivery (migration 2).
/// A `Retry-After` (429/503) holds the subscription's deliveries until `paused_until` (unix ms),
/// those queued after the answer too.
pub(super) const PAUSE_MIGRATION: &str = "ALTER TABLE subscriptions ADD COLUMN paused_until INTEGER;";

pub(super) const MIGRATION: &str = r#"
    CREATE TABLE subscriptions (
        id              TEXT PRIMARY KEY,          -- wh_<ulid>
        name            TEXT UNIQUE,               -- for routes: forward:<name>
        url             TEXT NOT NULL,
        events          TEXT NOT NULL,             -- JSON array of types or globs
        secret          TEXT NOT NULL,
        active          INTEGER NOT NULL,
        description     TEXT,
        disabled_reason TEXT,
        failing_since   INTEGER,                   -- unix ms; NULL = not failing
        last_success_at INTEGER,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq       INTEGER NOT NULL,
        target          TEXT NOT NULL,             -- forward:<subscription> | nats:<subject> | exec:<command>
        webhook_id      TEXT,
        status          TEXT NOT NULL,             -- pending | held | delivered | dead
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        history         TEXT NOT NULL DEFAULT '[]',
        payload         BLOB,                      -- NULL = the event body
        created_at      INTEGER NOT NULL,
        done_at         INTEGER
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
    CREATE INDEX deliveries_event ON deliveries (event_seq);
    CREATE INDEX deliveries_waiting ON deliveries (webhook_id) WHERE status IN ('pending', 'held');
    CREATE TABLE delivery_attempts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER,
        webhook_id  TEXT,
        event_seq   INTEGER,
        at          INTEGER NOT NULL,
        status_code INTEGER,
        latency_ms  REAL NOT NULL,
        response    TEXT,
        error       TEXT,
        outcome     TEXT NOT NULL
    );
    CREATE INDEX delivery_attempts_webhook ON delivery_attempts (webhook_id, id);
    CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
    ALTER TABLE dead_letters ADD COLUMN delivery_id INTEGER;
    ALTER TABLE dead_letters ADD COLUMN target TEXT;
"#;

/// SQL: no delivery of event `seq` to `target` with `payload` (expressions) is waiting (pending,
/// retrying or held). Queueing and requeueing both check it: one chain per target.
fn no_waiting_twin(seq: &str, target: &str, payload: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM deliveries w WHERE w.event_seq = {seq} AND w.target = {target}
                     AND w.status IN ('pending', 'held') AND w.payload IS {payload})"
    )
}

/// Queues `deliveries` inside the processing transaction, except one the same as a delivery of
/// the event still waiting (pending, retrying or held): an event processed again (a replay)
/// while its delivery is retrying must not start a second chain to the same target. None to a
/// subscription deleted since the batch was routed (the delete committed first and dropped the
/// deliveries waiting then).
pub(super) fn queue(tx: &Connection, deliveries: &[NewDelivery], now: i64) -> rusqlite::Result<()> {
    // Held only if the subscription is still inactive as this transaction sees it: the caller's
    // view may be a moment old, and a delivery held for an active subscription would wait forever.
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO deliveries (event_seq, target, webhook_id, status, next_attempt_at, payload, created_at)
         SELECT ?1, ?2, ?3,
                CASE WHEN ?4 AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE id = ?3 AND active)
                     THEN 'held' ELSE 'pending' END,
                max(?5, coalesce((SELECT paused_until FROM subscriptions WHERE id = ?3), ?5)), ?6, ?5
         WHERE (?3 IS NULL OR EXISTS (SELECT 1 FROM subscriptions WHERE id = ?3)) AND {}",
        no_waiting_twin("?1", "?2", "?6")
    ))?;
    // A delivery of the event that died before is superseded by the chain now waiting: its
    // dead-letter entry goes (replaying it later would send the event a second time).
    let mut superseded = tx.prepare_cached(&format!(
        "DELETE FROM dead_letters WHERE event_seq = ?1 AND delivery_id IN (
             SELECT d.id FROM deliveries d
             WHERE d.event_seq = ?1 AND d.target = ?2 AND d.status = 'dead' AND d.payload IS ?3 AND NOT {})",
        no_waiting_twin("?1", "?2", "?3")
    ))?;
    for d in deliveries {
        insert.execute(params![d.seq, d.target, d.webhook_id, d.held, now, d.payload.as_deref()])?;
        superseded.execute(params![d.seq, d.target, d.payload.as_deref()])?;
    }
    Ok(())
}

/// Up to `limit` pending deliveries due at `now`, the longest-waiting first.
pub(super) fn due(conn: &Connection, now: i64, limit: u32) -> rusqlite::Result<Vec<DueDelivery>> {
    let mut statement = conn.prepare_cached(
        "SELECT d.id, d.event_seq, d.target, d.webhook_id, d.attempts, d.history,
                coalesce(d.payload, e.body), e.event_type
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
           -- A broker gets intents one at a time in the order decided (a cancel never overtakes
           -- the placement it cancels): an intent waits while an earlier one is pending.
           AND (d.target NOT LIKE 'broker:%' OR NOT EXISTS (
               SELECT 1 FROM deliveries p WHERE p.target = d.target AND p.status = 'pending' AND p.id < d.id))
         ORDER BY d.next_attempt_at, d.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit], |row| {
        Ok(DueDelivery {
            id: row.get(0)?,
            seq: row.get(1)?,
            target: row.get(2)?,
            webhook_id: row.get(3)?,
            attempts: row.get(4)?,
            history: row.get(5)?,
            body: bytes::Bytes::from(row.get::<_, Vec<u8>>(6)?),
            event_type: row.get(7)?,
        })
    })?;
    rows.collect()
}

/// When the next pending delivery is due (unix ms), if any is pending.
pub(super) fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'", [], |row| {
        row.get(0)
    })
}

/// Commits attempt results and subscription health changes in one transaction.
pub(super) fn commit_results(results: Vec<DeliveryResult>, health: Vec<(String, HealthChange)>) -> ExecFn {
    Box::new(move |tx: &Connection| {
        let now = now_ms();
        let mut log = tx.prepare_cached(
            "INSERT INTO delivery_attempts
                 (delivery_id, webhook_id, event_seq, at, status_code, latency_ms, response, error, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        // As in `queue`: hold only while the subscription is inactive in this transaction's view;
        // otherwise the delivery stays pending and is claimed again.
        let mut done = tx.prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = ?3, history = ?4, next_attempt_at = ?5, done_at = ?6,
                 webhook_id = coalesce(webhook_id, ?7)
             WHERE id = ?1
               -- An attempt that finished counts even if the subscription was disabled (and the
               -- row held) while it ran: a delivered event is not sent again on re-enabling.
               AND (status = 'pending' OR (status = 'held' AND ?2 IN ('delivered', 'dead')))
               AND (?2 <> 'held' OR NOT EXISTS (
                   SELECT 1 FROM subscriptions s WHERE s.id = coalesce(deliveries.webhook_id, ?7) AND s.active))",
        )?;
        for result in &results {
            let (status, next_at, done_at, outcome) = match &result.next {
                DeliveryNext::Delivered => ("delivered", now, Some(now), "delivered"),
                DeliveryNext::Retry { at } => ("pending", *at, None, "retry"),
                DeliveryNext::Dead { .. } => ("dead", now, Some(now), "dead"),
                DeliveryNext::Held => ("held", now, None, "held"),
                DeliveryNext::Tested { delivered: true } => ("delivered", now, Some(now), "test_delivered"),
                DeliveryNext::Tested { delivered: false } => ("dead", now, Some(now), "test_failed"),
            };
            if let Some(a) = &result.attempt {
                log.execute(params![
                    result.delivery_id,
                    result.webhook_id,
                    result.seq,
                    a.at,
                    a.status_code,
                    a.latency_ms,
                    a.response,
                    a.error,
                    outcome
                ])?;
            }
            let Some(id) = result.delivery_id else { continue };
            let changed = done.execute(params![
                id,
                status,
                result.attempts,
                result.history,
                next_at,
                done_at,
                result.webhook_id
            ])?;
            if result.settles_intent && changed == 1 {
                let response = result.attempt.as_ref().and_then(|a| a.response.as_deref());
                match &result.next {
                    DeliveryNext::Delivered => super::intents::settle(tx, id, IntentOutcome::Sent, response, None, now)?,
                    DeliveryNext::Dead { reason } => {
                        super::intents::settle(tx, id, IntentOutcome::Failed, response, Some(reason), now)?
                    }
                    _ => {}
                }
            }
            if let (DeliveryNext::Dead { reason }, 1) = (&result.next, changed) {
                let last_error = result.attempt.as_ref().and_then(|a| a.error.clone()).unwrap_or_default();
                tx.execute(
                    "INSERT INTO dead_letters
                         (event_seq, kind, webhook_id, reason, attempts, last_error, history, dead_at, delivery_id, target)
                     SELECT event_seq, 'delivery', webhook_id, ?2, ?3, ?4, ?5, ?6, id, target FROM deliveries WHERE id = ?1",
                    params![id, reason, result.attempts, last_error, result.history, now],
                )?;
            }
        }
        for (webhook_id, change) in &health {
            apply_health(tx, webhook_id, change, now)?;
        }
        Ok(results.len() as u64)
    })
}

fn apply_health(tx: &Connection, id: &str, change: &HealthChange, now: i64) -> rusqlite::Result<()> {
    match change {
        HealthChange::Succeeded(at) => tx.execute(
            "UPDATE subscriptions SET last_success_at = ?2, failing_since = NULL, last_error = NULL WHERE id = ?1",
            params![id, at],
        )?,
        HealthChange::Failed(at, error) => tx.execute(
            "UPDATE subscriptions SET failing_since = coalesce(failing_since, ?2), last_error = ?3 WHERE id = ?1",
            params![id, at, error],
        )?,
        HealthChange::Disable(reason) => {
            tx.execute(
                "UPDATE subscriptions SET active = 0, disabled_reason = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, reason, now],
            )?;
            tx.execute("UPDATE deliveries SET status = 'held' WHERE webhook_id = ?1 AND status = 'pending'", [id])?
        }
        HealthChange::PauseUntil(until) => {
            tx.execute(
                "UPDATE subscriptions SET paused_until = max(coalesce(paused_until, ?2), ?2) WHERE id = ?1",
                params![id, until],
            )?;
            tx.execute(
                "UPDATE deliveries SET next_attempt_at = max(next_attempt_at, ?2)
                 WHERE webhook_id = ?1 AND status = 'pending'",
                params![id, until],
            )?
        }
    };
    Ok(())
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, name, url, events, secret, active, description, disabled_reason, created_at, updated_at, failing_since";

fn subscription_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    let events: String = row.get(3)?;
    Ok(Subscription {
        id: row.get(0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: row.get(4)?,
        active: row.get(5)?,
        description: row.get(6)?,
        disabled_reason: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        failing_since: row.get(10)?,
    })
}

/// Every subscription, oldest first.
pub(super) fn subscriptions(conn: &Connection) -> rusqlite::Result<Vec<Subscription>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY created_at, id"
    ))?;
    let rows = statement.query_map([], subscription_from_row)?;
    rows.collect()
}

/// Stores a new subscription.
pub(super) fn insert_subscription(s: Subscription) -> ExecFn {
    Box::new(move |tx: &Connection| {
        let events = serde_json::to_string(&s.events).unwrap_or_else(|_| "[]".into());
        tx.execute(
            &format!("INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![s.id, s.name, s.url, events, s.secret, s.active, s.description, s.disabled_reason, s.created_at, s.updated_at, s.failing_since],
        )?;
        Ok(1)
    })
}

/// Replaces a subscription; activating it resumes its held deliveries, deactivating holds its
/// pending ones. Counts rows changed (0 = no such subscription).
pub(super) fn update_subscription(s: Subscription) -> ExecFn {
    Box::new(move |tx: &Connection| {
        let was_active: Option<bool> = tx
            .query_row("SELECT active FROM subscriptions WHERE id = ?1", [&s.id], |row| row.get(0))
            .optional()?;
        let Some(was_active) = was_active else { return Ok(0) };
        let events = serde_json::to_string(&s.events).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "UPDATE subscriptions SET name = ?2, url = ?3, events = ?4, secret = ?5, active = ?6, description = ?7,
                 disabled_reason = ?8, updated_at = ?9 WHERE id = ?1",
            params![s.id, s.name, s.url, events, s.secret, s.active, s.description, s.disabled_reason, s.updated_at],
        )?;
        if s.active && !was_active {
            tx.execute("UPDATE subscriptions SET failing_since = NULL WHERE id = ?1", [&s.id])?;
            tx.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, history = '[]', next_attempt_at = ?2
                 WHERE webhook_id = ?1 AND status = 'held'",
                params![s.id, s.updated_at],
            )?;
        } else if !s.active && was_active {
            tx.execute(
                "UPDATE deliveries SET status = 'held' WHERE webhook_id = ?1 AND status = 'pending'",
                [&s.id],
            )?;
        }
        Ok(1)
    })
}

/// Removes a subscription and the deliveries still waiting for it (its attempt log stays until
/// retention removes it). Counts subscriptions removed.
pub(super) fn delete_subscription(id: String) -> ExecFn {
    Box::new(move |tx: &Connection| {
        tx.execute("DELETE FROM deliveries WHERE webhook_id = ?1 AND status IN ('pending', 'held')", [&id])?;
        Ok(tx.execute("DELETE FROM subscriptions WHERE id = ?1", [&id])? as u64)
    })
}

/// The attempt log of a subscription, newest first, older than attempt `before` when given.
pub(super) fn attempts(
    conn: &Connection,
    webhook_id: &str,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<DeliveryAttempt>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, delivery_id, event_seq, at, status_code, latency_ms, response, error, outcome
         FROM delivery_attempts WHERE webhook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = statement.query_map(params![webhook_id, before.unwrap_or(i64::MAX), limit], |row| {
        Ok(DeliveryAttempt {
            id: row.get(0)?,
            delivery_id: row.get(1)?,
            event_id: row.get::<_, Option<i64>>(2)?.map(event_id),
            at: rfc3339(row.get(3)?),
            status_code: row.get(4)?,
            latency_ms: row.get(5)?,
            response: row.get(6)?,
            error: row.get(7)?,
            outcome: row.get(8)?,
        })
    })?;
    rows.collect()
}

/// Health figures of one subscription.
pub(super) fn health(conn: &Connection, webhook_id: &str, now: i64) -> rusqlite::Result<SubscriptionHealth> {
    let (last_success, failing_since, last_error) = conn
        .query_row(
            "SELECT last_success_at, failing_since, last_error FROM subscriptions WHERE id = ?1",
            [webhook_id],
            |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, Option<i64>>(1)?, row.get(2)?)),
        )
        .optional()?
        .unwrap_or((None, None, None));
    let (pending, held) = conn.query_row(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'held')
         FROM deliveries WHERE webhook_id = ?1 AND status IN ('pending', 'held')",
        [webhook_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let (attempts, delivered) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'delivered') FROM delivery_attempts
         WHERE webhook_id = ?1 AND at >= ?2",
        params![webhook_id, now - 24 * 3600 * 1000],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(SubscriptionHealth {
        last_success_at: last_success.map(rfc3339),
        failing_since: failing_since.map(rfc3339),
        last_error,
        pending,
        held,
        attempts_24h: attempts,
        delivered_24h: delivered,
    })
}

/// Puts a dead delivery back in the queue: due now, attempts reset; unless the same delivery of
/// its event (a replay of the event queued it again) is already waiting: one chain per target.
pub(super) fn requeue_delivery(tx: &Connection, delivery_id: i64) -> rusqlite::Result<u64> {
    let changed = tx.execute(
        &format!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, history = '[]', next_attempt_at = ?2, done_at = NULL
         WHERE id = ?1 AND status = 'dead' AND {}",
            no_waiting_twin("deliveries.event_seq", "deliveries.target", "deliveries.payload")
        ),
        params![delivery_id, now_ms()],
    )?;
    Ok(changed as u64)
}

/// Removes the deliveries of pruned events, and attempt log entries older than `cutoff`.
pub(super) fn prune(tx: &Connection, seqs: &[i64], cutoff: i64) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM deliveries WHERE event_seq = ?1")?;
    for seq in seqs {
        delete.execute([seq])?;
    }
    tx.execute(
        "DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE at < ?1 LIMIT 10000)",
        [cutoff],
    )?;
    Ok(())
}
