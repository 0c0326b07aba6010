//! SQL for outbound delivery on PostgreSQL: the outbox, claims, results, the attempt log and
//! subscriptions.
//!
//! Several nodes run a dispatcher on one database. A node CLAIMS due deliveries before attempting
//! them: one statement picks them with `FOR UPDATE SKIP LOCKED` (two nodes never pick the same row)
//! and sets `claimed_until`, so other nodes leave them alone until the result is committed —
//! which clears the claim — or until the claim runs out because the node died; then any node
//! takes them over. A broker's intents still go one at a time in the order decided: an intent is
//! not due while an earlier one for the same broker is pending, claimed or not.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{event_id, pg_error, StoreError};
use crate::delivery::subscription::Subscription;
use crate::store::intents::IntentOutcome;
use crate::store::delivery::{
    DeliveryAttempt, DeliveryNext, DeliveryResult, DueDelivery, HealthChange, NewDelivery, SubscriptionHealth,
};
use crate::store::{now_ms, rfc3339};

type Result<T> = std::result::Result<T, StoreError>;

/// SQL: no delivery of event `seq` to `target` with `payload` (expressions) is waiting (pending,
/// retrying or held). Queueing and requeueing both check it: one chain per target.
fn no_waiting_twin(seq: &str, target: &str, payload: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM deliveries w WHERE w.event_seq = {seq} AND w.target = {target}
                     AND w.status IN ('pending', 'held') AND w.payload IS NOT DISTINCT FROM {payload})"
    )
}

/// Queues `deliveries` inside the processing transaction (held only if the subscription is still
/// inactive as this transaction sees it), except one the same as a delivery of the event still
/// waiting (pending, retrying or held): a replayed event starts no second chain to a target.
/// A delivery to a subscription deleted since the batch was routed is dropped: the subscription
/// row is locked (`FOR KEY SHARE`) until this transaction ends, so a delete running meanwhile
/// waits for it and then removes what it queued ([`delete_subscription`] deletes the row first),
/// and one that committed first leaves no row to queue for.
pub(super) async fn queue(tx: &Transaction<'_>, deliveries: &[NewDelivery], now: i64) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = deliveries.iter().map(|d| d.seq).collect();
    let targets: Vec<&str> = deliveries.iter().map(|d| d.target.as_str()).collect();
    let webhooks: Vec<Option<&str>> = deliveries.iter().map(|d| d.webhook_id.as_deref()).collect();
    let held: Vec<bool> = deliveries.iter().map(|d| d.held).collect();
    let payloads: Vec<Option<&[u8]>> = deliveries.iter().map(|d| d.payload.as_deref()).collect();
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO deliveries (event_seq, target, webhook_id, status, next_attempt_at, payload, created_at)
             SELECT q.seq, q.target, q.webhook_id,
                    CASE WHEN q.held AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = q.webhook_id AND s.active)
                         THEN 'held' ELSE 'pending' END,
                    greatest($1, (SELECT s.paused_until FROM subscriptions s WHERE s.id = q.webhook_id)), q.payload, $1
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bool[], $6::bytea[])
                  AS q(seq, target, webhook_id, held, payload)
             WHERE (q.webhook_id IS NULL
                    OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = q.webhook_id FOR KEY SHARE))
               AND {}",
            no_waiting_twin("q.seq", "q.target", "q.payload")
        ))
        .await
        .map_err(pg_error)?;
    tx.execute(&statement, &[&now, &seqs, &targets, &webhooks, &held, &payloads]).await.map_err(pg_error)?;
    // A delivery of the event that died before is superseded by the chain now waiting: its
    // dead-letter entry goes (replaying it later would send the event a second time).
    let superseded = tx
        .prepare_cached(&format!(
            "DELETE FROM dead_letters l USING deliveries d,
                 unnest($1::bigint[], $2::text[], $3::bytea[]) AS q(seq, target, payload)
             WHERE l.event_seq = q.seq AND l.delivery_id = d.id AND d.event_seq = q.seq AND d.target = q.target AND d.status = 'dead'
               AND d.payload IS NOT DISTINCT FROM q.payload AND NOT {}",
            no_waiting_twin("q.seq", "q.target", "q.payload")
        ))
        .await
        .map_err(pg_error)?;
    tx.execute(&superseded, &[&seqs, &targets, &payloads]).await.map_err(pg_error)?;
    Ok(())
}

/// Claims up to `limit` pending deliveries due at `now` for `claim_ms`, the longest-waiting first,
/// except those in `in_flight` (this node's attempts whose results are being committed).
pub(super) async fn claim_due(
    client: &impl GenericClient,
    now: i64,
    limit: u32,
    claim_ms: i64,
    in_flight: &[i64],
) -> Result<Vec<DueDelivery>> {
    let statement = client
        .prepare_cached(
            "WITH due AS (
                 SELECT d.id FROM deliveries d
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                   AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
                   AND d.id <> ALL($4::bigint[])
                   AND (d.target NOT LIKE 'broker:%' OR NOT EXISTS (
                       SELECT 1 FROM deliveries p WHERE p.target = d.target AND p.status = 'pending' AND p.id < d.id))
                 ORDER BY d.next_attempt_at, d.id LIMIT $2
                 FOR UPDATE OF d SKIP LOCKED)
             UPDATE deliveries d SET claimed_until = $1 + $3 FROM due, events e
             WHERE d.id = due.id AND e.seq = d.event_seq
             RETURNING d.id, d.event_seq, d.target, d.webhook_id, d.attempts, d.history,
                       coalesce(d.payload, e.body), e.event_type, d.next_attempt_at",
        )
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, &[&now, &i64::from(limit), &claim_ms, &in_flight]).await.map_err(pg_error)?;
    let mut due: Vec<(i64, DueDelivery)> = rows.iter().map(|row| (row.get(8), due_from_row(row))).collect();
    due.sort_by_key(|(at, d)| (*at, d.id));
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

fn due_from_row(row: &Row) -> DueDelivery {
    DueDelivery {
        id: row.get(0),
        seq: row.get(1),
        target: row.get(2),
        webhook_id: row.get(3),
        attempts: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
        history: row.get(5),
        body: bytes::Bytes::from(row.get::<_, Vec<u8>>(6)),
        event_type: row.get(7),
    }
}

/// When the next pending delivery is due or its claim runs out (unix ms).
pub(super) async fn next_due(client: &impl GenericClient) -> Result<Option<i64>> {
    let row = client
        .query_one(
            "SELECT min(greatest(next_attempt_at, coalesce(claimed_until, 0))) FROM deliveries WHERE status = 'pending'",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}

/// Commits attempt results and health changes; claims of these deliveries end here.
pub(super) async fn commit_results(
    tx: &Transaction<'_>,
    results: &[DeliveryResult],
    health: &[(String, HealthChange)],
) -> Result<()> {
    let now = now_ms();
    let log = tx
        .prepare_cached(
            "INSERT INTO delivery_attempts
                 (delivery_id, webhook_id, event_seq, at, status_code, latency_ms, response, error, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(pg_error)?;
    let done = tx
        .prepare_cached(
            "UPDATE deliveries SET status = $2, attempts = $3, history = $4, next_attempt_at = $5, done_at = $6,
                 webhook_id = coalesce(webhook_id, $7), claimed_until = NULL
             WHERE id = $1
               AND (status = 'pending' OR (status = 'held' AND $2 IN ('delivered', 'dead')))
               AND ($2 <> 'held' OR NOT EXISTS (
                   SELECT 1 FROM subscriptions s WHERE s.id = coalesce(deliveries.webhook_id, $7) AND s.active))",
        )
        .await
        .map_err(pg_error)?;
    for result in results {
        let (status, next_at, done_at, outcome) = match &result.next {
            DeliveryNext::Delivered => ("delivered", now, Some(now), "delivered"),
            DeliveryNext::Retry { at } => ("pending", *at, None, "retry"),
            DeliveryNext::Dead { .. } => ("dead", now, Some(now), "dead"),
            DeliveryNext::Held => ("held", now, None, "held"),
            DeliveryNext::Tested { delivered: true } => ("delivered", now, Some(now), "test_delivered"),
            DeliveryNext::Tested { delivered: false } => ("dead", now, Some(now), "test_failed"),
        };
        if let Some(a) = &result.attempt {
            let code = a.status_code.map(i64::from);
            tx.execute(
                &log,
                &[
                    &result.delivery_id,
                    &result.webhook_id,
                    &result.seq,
                    &a.at,
                    &code,
                    &a.latency_ms,
                    &a.response,
                    &a.error,
                    &outcome,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        let Some(id) = result.delivery_id else { continue };
        let attempts = i64::from(result.attempts);
        let changed = tx
            .execute(
                &done,
                &[&id, &status, &attempts, &result.history, &next_at, &done_at, &result.webhook_id],
            )
            .await
            .map_err(pg_error)?;
        if changed == 0 {
            // Not applied (the row moved on meanwhile, e.g. its subscription was disabled by
            // this very batch): the claim ends all the same, or the row would wait it out.
            tx.execute("UPDATE deliveries SET claimed_until = NULL WHERE id = $1", &[&id])
                .await
                .map_err(pg_error)?;
        }
        if result.settles_intent && changed == 1 {
            let response = result.attempt.as_ref().and_then(|a| a.response.as_deref());
            match &result.next {
                DeliveryNext::Delivered => {
                    super::intents::settle(tx, id, IntentOutcome::Sent, response, None, now).await?
                }
                DeliveryNext::Dead { reason } => {
                    super::intents::settle(tx, id, IntentOutcome::Failed, response, Some(reason), now).await?
                }
                _ => {}
            }
        }
        if let (DeliveryNext::Dead { reason }, 1) = (&result.next, changed) {
            let last_error = result.attempt.as_ref().and_then(|a| a.error.clone()).unwrap_or_default();
            tx.execute(
                "INSERT INTO dead_letters
                     (event_seq, kind, webhook_id, reason, attempts, last_error, history, dead_at, delivery_id, target)
                 SELECT event_seq, 'delivery', webhook_id, $2, $3, $4, $5, $6, id, target FROM deliveries WHERE id = $1",
                &[&id, reason, &attempts, &last_error, &result.history, &now],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    for (webhook_id, change) in health {
        apply_health(tx, webhook_id, change, now).await?;
    }
    Ok(())
}

async fn apply_health(tx: &Transaction<'_>, id: &str, change: &HealthChange, now: i64) -> Result<()> {
    match change {
        HealthChange::Succeeded(at) => {
            tx.execute(
                "UPDATE subscriptions SET last_success_at = $2, failing_since = NULL, last_error = NULL WHERE id = $1",
                &[&id, at],
            )
            .await
        }
        HealthChange::Failed(at, error) => {
            tx.execute(
                "UPDATE subscriptions SET failing_since = coalesce(failing_since, $2), last_error = $3 WHERE id = $1",
                &[&id, at, error],
            )
            .await
        }
        HealthChange::Disable(reason) => {
            tx.execute(
                "UPDATE subscriptions SET active = false, disabled_reason = $2, updated_at = $3 WHERE id = $1",
                &[&id, reason, &now],
            )
            .await
            .map_err(pg_error)?;
            tx.execute("UPDATE deliveries SET status = 'held', claimed_until = NULL WHERE webhook_id = $1 AND status = 'pending'", &[&id])
                .await
        }
        HealthChange::PauseUntil(until) => {
            tx.execute(
                "UPDATE subscriptions SET paused_until = greatest(paused_until, $2) WHERE id = $1",
                &[&id, until],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "UPDATE deliveries SET next_attempt_at = greatest(next_attempt_at, $2)
                 WHERE webhook_id = $1 AND status = 'pending'",
                &[&id, until],
            )
            .await
        }
    }
    .map_err(pg_error)?;
    Ok(())
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, name, url, events, secret, active, description, disabled_reason, created_at, updated_at, failing_since";

fn subscription_from_row(row: &Row) -> Subscription {
    let events: String = row.get(3);
    Subscription {
        id: row.get(0),
        name: row.get(1),
        url: row.get(2),
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: row.get(4),
        active: row.get(5),
        description: row.get(6),
        disabled_reason: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
        failing_since: row.get(10),
    }
}

/// Every subscription, oldest first.
pub(super) async fn subscriptions(client: &impl GenericClient) -> Result<Vec<Subscription>> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY created_at, id");
    let rows = client.query(&sql, &[]).await.map_err(pg_error)?;
    Ok(rows.iter().map(subscription_from_row).collect())
}

/// A digest of what decides where events go and how they are sent (not the health figures,
/// which change with every attempt): see [`crate::store::Store::subscriptions_fingerprint`].
pub(super) async fn subscriptions_fingerprint(client: &impl GenericClient) -> Result<String> {
    let row = client
        .query_one(
            "SELECT count(*)::text || ':' || coalesce(md5(string_agg(
                 concat_ws(chr(31), id, name, url, events, md5(secret), active::text, disabled_reason, updated_at::text),
                 chr(30) ORDER BY id)), '')
             FROM subscriptions",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}

/// Stores a new subscription.
pub(super) async fn insert_subscription(client: &impl GenericClient, s: &Subscription) -> Result<()> {
    let events = serde_json::to_string(&s.events).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    client
        .execute(
            &sql,
            &[
                &s.id,
                &s.name,
                &s.url,
                &events,
                &s.secret,
                &s.active,
                &s.description,
                &s.disabled_reason,
                &s.created_at,
                &s.updated_at,
                &s.failing_since,
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Replaces a subscription; activating resumes its held deliveries, deactivating holds its
/// pending ones. Whether it existed.
pub(super) async fn update_subscription(tx: &Transaction<'_>, s: &Subscription) -> Result<bool> {
    let was_active = tx
        .query_opt("SELECT active FROM subscriptions WHERE id = $1 FOR UPDATE", &[&s.id])
        .await
        .map_err(pg_error)?;
    let Some(was_active) = was_active.map(|row| row.get::<_, bool>(0)) else { return Ok(false) };
    let events = serde_json::to_string(&s.events).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "UPDATE subscriptions SET name = $2, url = $3, events = $4, secret = $5, active = $6, description = $7,
             disabled_reason = $8, updated_at = $9 WHERE id = $1",
        &[&s.id, &s.name, &s.url, &events, &s.secret, &s.active, &s.description, &s.disabled_reason, &s.updated_at],
    )
    .await
    .map_err(pg_error)?;
    if s.active && !was_active {
        tx.execute("UPDATE subscriptions SET failing_since = NULL WHERE id = $1", &[&s.id])
            .await
            .map_err(pg_error)?;
        tx.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, history = '[]', next_attempt_at = $2,
                 claimed_until = NULL
             WHERE webhook_id = $1 AND status = 'held'",
            &[&s.id, &s.updated_at],
        )
        .await
        .map_err(pg_error)?;
    } else if !s.active && was_active {
        tx.execute("UPDATE deliveries SET status = 'held', claimed_until = NULL WHERE webhook_id = $1 AND status = 'pending'", &[&s.id])
            .await
            .map_err(pg_error)?;
    }
    Ok(true)
}

/// Removes a subscription and its waiting deliveries; whether it existed.
pub(super) async fn delete_subscription(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    // The row first: it waits for a processing commit queueing deliveries to it (see `queue`),
    // and the next statement's snapshot then sees what that commit queued.
    let gone = tx.execute("DELETE FROM subscriptions WHERE id = $1", &[&id]).await.map_err(pg_error)?;
    tx.execute("DELETE FROM deliveries WHERE webhook_id = $1 AND status IN ('pending', 'held')", &[&id])
        .await
        .map_err(pg_error)?;
    Ok(gone > 0)
}

/// A subscription's attempt log, newest first.
pub(super) async fn attempts(
    client: &impl GenericClient,
    webhook_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<DeliveryAttempt>> {
    let rows = client
        .query(
            "SELECT id, delivery_id, event_seq, at, status_code, latency_ms, response, error, outcome
             FROM delivery_attempts WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            &[&webhook_id, &before.unwrap_or(i64::MAX), &i64::from(limit)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|row| DeliveryAttempt {
            id: row.get(0),
            delivery_id: row.get(1),
            event_id: row.get::<_, Option<i64>>(2).map(event_id),
            at: rfc3339(row.get(3)),
            status_code: row.get::<_, Option<i64>>(4).and_then(|c| u16::try_from(c).ok()),
            latency_ms: row.get(5),
            response: row.get(6),
            error: row.get(7),
            outcome: row.get(8),
        })
        .collect())
}

/// Health figures of one subscription.
pub(super) async fn health(
    client: &impl GenericClient,
    webhook_id: &str,
    now: i64,
) -> Result<SubscriptionHealth> {
    let row = client
        .query_opt(
            "SELECT last_success_at, failing_since, last_error FROM subscriptions WHERE id = $1",
            &[&webhook_id],
        )
        .await
        .map_err(pg_error)?;
    let (last_success, failing_since, last_error): (Option<i64>, Option<i64>, Option<String>) =
        row.map(|row| (row.get(0), row.get(1), row.get(2))).unwrap_or((None, None, None));
    let waiting = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'held')
             FROM deliveries WHERE webhook_id = $1 AND status IN ('pending', 'held')",
            &[&webhook_id],
        )
        .await
        .map_err(pg_error)?;
    let day = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'delivered') FROM delivery_attempts
             WHERE webhook_id = $1 AND at >= $2",
            &[&webhook_id, &(now - 24 * 3600 * 1000)],
        )
        .await
        .map_err(pg_error)?;
    let count = |row: &Row, i: usize| row.get::<_, i64>(i).max(0) as u64;
    Ok(SubscriptionHealth {
        last_success_at: last_success.map(rfc3339),
        failing_since: failing_since.map(rfc3339),
        last_error,
        pending: count(&waiting, 0),
        held: count(&waiting, 1),
        attempts_24h: count(&day, 0),
        delivered_24h: count(&day, 1),
    })
}

/// Puts a dead delivery back in the queue: due now, attempts reset; unless the same delivery of
/// its event (a replay of the event queued it again) is already waiting: one chain per target.
pub(super) async fn requeue_delivery(tx: &Transaction<'_>, delivery_id: i64) -> Result<u64> {
    tx.execute(
        &format!(
            "UPDATE deliveries d SET status = 'pending', attempts = 0, history = '[]', next_attempt_at = $2,
                 done_at = NULL, claimed_until = NULL
             WHERE d.id = $1 AND d.status = 'dead' AND {}",
            no_waiting_twin("d.event_seq", "d.target", "d.payload")
        ),
        &[&delivery_id, &now_ms()],
    )
    .await
    .map_err(pg_error)
}
