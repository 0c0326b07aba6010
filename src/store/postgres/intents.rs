//! SQL for order intents on PostgreSQL: one row per client order id, queued for the broker in the
//! processing transaction. A client order id recorded before (by any node) is skipped.

use deadpool_postgres::{GenericClient, Transaction};

use super::{event_id, pg_error, StoreError};
use crate::store::intents::{IntentOutcome, NewIntent, StoredIntent};
use crate::store::rfc3339;

type Result<T> = std::result::Result<T, StoreError>;

/// Records `intents`; new, unrefused ones with a broker are queued as deliveries to it.
pub(super) async fn record(tx: &Transaction<'_>, intents: &[NewIntent], now: i64) -> Result<()> {
    for intent in intents {
        let outcome = intent.initial_outcome().as_str();
        let added = tx
            .query_opt(
                "INSERT INTO intents (client_order_id, action, symbol, outcome, reason, doc, event_seq, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (client_order_id) DO NOTHING RETURNING id",
                &[
                    &intent.client_order_id,
                    &intent.action,
                    &intent.symbol,
                    &outcome,
                    &intent.refused,
                    &intent.doc,
                    &intent.seq,
                    &now,
                ],
            )
            .await
            .map_err(pg_error)?;
        if let (Some(row), None, Some(broker)) = (added, &intent.refused, &intent.broker) {
            let id: i64 = row.get(0);
            tx.execute(
                "INSERT INTO deliveries (event_seq, target, status, next_attempt_at, payload, created_at, intent_id)
                 VALUES ($1, $2, 'pending', $3, $4, $3, $5)",
                &[&intent.seq, broker, &now, &intent.doc.as_bytes(), &id],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    Ok(())
}

/// Marks the intent of a delivery `sent` or `failed` with the broker's answer.
pub(super) async fn settle(
    tx: &Transaction<'_>,
    delivery_id: i64,
    outcome: IntentOutcome,
    response: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE intents SET outcome = $2, broker_response = $3,
                reason = CASE WHEN $2 = 'sent' THEN $4 ELSE coalesce($4, reason) END, updated_at = $5
         WHERE id = (SELECT intent_id FROM deliveries WHERE id = $1)",
        &[&delivery_id, &outcome.as_str(), &response, &reason, &now],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Intents, newest first, before row `before`, optionally of one action or outcome.
pub(super) async fn list(
    client: &impl GenericClient,
    before: Option<i64>,
    action: Option<&str>,
    outcome: Option<&str>,
    limit: u32,
) -> Result<Vec<StoredIntent>> {
    let rows = client
        .query(
            "SELECT id, client_order_id, action, symbol, outcome, reason, doc, event_seq, broker_response,
                    created_at, updated_at
             FROM intents WHERE id < $1 AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR outcome = $3)
             ORDER BY id DESC LIMIT $4",
            &[&before.unwrap_or(i64::MAX), &action, &outcome, &i64::from(limit)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|row| {
            let doc: String = row.get(6);
            StoredIntent {
                id: row.get(0),
                client_order_id: row.get(1),
                action: row.get(2),
                symbol: row.get(3),
                outcome: row.get(4),
                reason: row.get(5),
                intent: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
                event_id: row.get::<_, Option<i64>>(7).map(event_id),
                broker_response: row.get(8),
                created_at: rfc3339(row.get(9)),
                updated_at: rfc3339(row.get(10)),
            }
        })
        .collect())
}
