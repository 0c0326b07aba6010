//! Group commit on PostgreSQL: appends that arrive together share one transaction.
//!
//! A batch is ONE multi-row `INSERT … SELECT FROM unnest(…) ON CONFLICT (source, event_key) DO
//! NOTHING RETURNING`, a transaction of its own: with `synchronous_commit = on` it returns once
//! the WAL is flushed. Then, only if some rows conflicted, a look-up of the ids stored before (by
//! any node). Only then is anyone in the batch answered. Up to [`CONCURRENT_COMMITS`] batches commit at once (the
//! database overlaps their flushes); while they do, the next batch gathers. A failed batch is
//! answered 503 as a whole: nobody gets an ack that is not committed; so is one that has not
//! committed within [`COMMIT_WITHIN`].
//!
//! Every batch holds [`SEQ_LOCK`](super::progress::SEQ_LOCK) shared from before it takes its
//! seqs until it has committed, so a reader tailing by seq can wait for the batches in flight
//! (see `progress::settled_seq`): concurrent batches make their seqs visible out of order.
//!
//! Two nodes storing the same event id at once: the unique key makes the second INSERT wait for
//! the first transaction and skip the row if it commits; the look-up then finds the first seq, so
//! both answers carry the same id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::{event_id, pg_error, pool_error, StoreError};
use crate::store::{Appended, NewEvent};

/// Batches committing at the same time.
const CONCURRENT_COMMITS: u32 = 4;

/// Longest a batch waits for its commit before it is answered 503. A database that stops
/// answering without closing the connection (frozen, or a network partition with no reset) would
/// otherwise hold every request until TCP gives up, minutes later. The statement may still commit
/// afterwards: those events were answered 503, never 200, and a sender's retry is then answered
/// `duplicate` with their id.
const COMMIT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Work for the appender task.
pub(super) enum Job {
    /// Store an event (or find it stored) and answer.
    Append(NewEvent, oneshot::Sender<Result<Appended, StoreError>>),
    /// Finish the batches in flight, refuse the rest, then answer.
    Close(oneshot::Sender<()>),
}

/// What the appender shares with the store.
pub(super) struct Appender {
    pub pool: Pool,
    pub max_batch: usize,
    pub backlog: Arc<AtomicU64>,
    pub arrivals: Arc<Notify>,
    /// Tells the other nodes (see `listen::announce`).
    pub announce: Arc<Notify>,
}

/// Runs until `Close` or every sender is gone.
pub(super) async fn run(appender: Appender, mut rx: mpsc::Receiver<Job>) {
    let appender = Arc::new(appender);
    let commits = Arc::new(Semaphore::new(CONCURRENT_COMMITS as usize));
    while let Some(first) = rx.recv().await {
        // Wait for a commit slot first: what queues meanwhile joins this batch.
        let Ok(permit) = commits.clone().acquire_owned().await else { break };
        let mut batch = Vec::with_capacity(appender.max_batch);
        let mut closing = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(event, reply) => batch.push((event, reply)),
                Job::Close(reply) => {
                    closing = Some(reply);
                    break;
                }
            }
            if batch.len() < appender.max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let appender = appender.clone();
            tokio::spawn(async move {
                commit_and_answer(&appender, batch).await;
                drop(permit);
            });
        } else {
            drop(permit);
        }
        if let Some(done) = closing {
            rx.close();
            while let Ok(job) = rx.try_recv() {
                match job {
                    Job::Append(_, reply) => {
                        let _ = reply.send(Err(StoreError::Unavailable("the store is shutting down".into())));
                    }
                    Job::Close(reply) => drop(reply.send(())),
                }
            }
            // Every slot free = every batch in flight has been answered.
            let _ = commits.acquire_many(CONCURRENT_COMMITS).await;
            let _ = done.send(());
            return;
        }
    }
}

type Reply = oneshot::Sender<Result<Appended, StoreError>>;

async fn commit_and_answer(appender: &Appender, batch: Vec<(NewEvent, Reply)>) {
    let started = std::time::Instant::now();
    let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.into_iter().unzip();
    let result = match tokio::time::timeout(COMMIT_WITHIN, insert_batch(&appender.pool, &events)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "the database did not commit within {} s; retry (an event it stored after all is answered duplicate)",
            COMMIT_WITHIN.as_secs()
        ))),
    };
    metrics::histogram!("tradehook_store_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("tradehook_store_batch_size").record(events.len() as f64);
    match result {
        Ok(outcomes) => {
            let accepted = outcomes.iter().filter(|o| matches!(o, Ok(Appended::Accepted(_)))).count();
            if accepted > 0 {
                appender.backlog.fetch_add(accepted as u64, Ordering::Relaxed);
                appender.arrivals.notify_one();
                appender.announce.notify_one();
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            let message = error.to_string();
            if let Some(held_back) = crate::store::COMMIT_FAILURES.admit() {
                tracing::error!(%message, events = events.len(), held_back, "commit failed; answering 503 to the whole batch");
            }
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
            }
        }
    }
}

/// Inserts `events` in one statement — committed on its own (autocommit), so the batch costs one
/// round trip and one WAL flush — then looks up the ids of those that were stored before; per
/// event, accepted or the id of the first one stored.
async fn insert_batch(
    pool: &Pool,
    events: &[NewEvent],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let client = pool.get().await.map_err(pool_error)?;
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let keys: Vec<&str> = events.iter().map(|e| e.event_key.as_str()).collect();
    let types: Vec<Option<&str>> = events.iter().map(|e| e.event_type.as_deref()).collect();
    let received: Vec<i64> = events.iter().map(|e| e.received_at).collect();
    let ips: Vec<&str> = events.iter().map(|e| e.client_ip.as_str()).collect();
    let headers: Vec<&str> = events.iter().map(|e| e.headers.as_str()).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| &e.body[..]).collect();
    // ORDER BY n: sequence numbers follow the order the requests arrived in. The lock is taken
    // before any row is made (each row joins it), so before any seq is; it lasts until the commit.
    let insert = client
        .prepare_cached(
            "WITH seq_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($8))
             INSERT INTO events (source, event_key, event_type, received_at, client_ip, headers, body)
             SELECT source, event_key, event_type, received_at, client_ip, headers, body
             FROM seq_lock, unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bytea[])
                  WITH ORDINALITY AS i(source, event_key, event_type, received_at, client_ip, headers, body, n)
             ORDER BY n
             ON CONFLICT (source, event_key) DO NOTHING
             RETURNING seq, source, event_key",
        )
        .await
        .map_err(pg_error)?;
    let rows = client
        .query(&insert, &[&sources, &keys, &types, &received, &ips, &headers, &bodies, &super::progress::SEQ_LOCK])
        .await
        .map_err(pg_error)?;
    let mut inserted: HashMap<(String, String), i64> =
        rows.iter().map(|row| ((row.get(1), row.get(2)), row.get(0))).collect();
    // Duplicates (or one event twice in this batch): a fresh statement sees every commit,
    // including another node's that made our insert skip the row.
    let mut stored =
        if inserted.len() < events.len() { stored_seqs(&client, &sources, &keys).await? } else { HashMap::new() };
    let outcomes = events
        .iter()
        .map(|event| {
            let key = (event.source.clone(), event.event_key.clone());
            if let Some(seq) = inserted.remove(&key) {
                // The first of its key in this batch; any later one is its duplicate.
                stored.insert(key, seq);
                Ok(Appended::Accepted(event_id(seq)))
            } else if let Some(seq) = stored.get(&key) {
                Ok(Appended::Duplicate(event_id(*seq)))
            } else {
                // Stored before and pruned between the insert and the look-up: try again.
                Err(StoreError::Unavailable("the event id changed hands during the commit; retry".into()))
            }
        })
        .collect();
    Ok(outcomes)
}

/// The seqs of the events stored under these (source, event id) pairs, by any node.
pub(super) async fn stored_seqs(
    client: &deadpool_postgres::Client,
    sources: &[&str],
    keys: &[&str],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let lookup = client
        .prepare_cached(
            "SELECT e.seq, e.source, e.event_key FROM events e, unnest($1::text[], $2::text[]) AS k(source, event_key)
             WHERE e.source = k.source AND e.event_key = k.event_key",
        )
        .await
        .map_err(pg_error)?;
    let rows = client.query(&lookup, &[&sources, &keys]).await.map_err(pg_error)?;
    Ok(rows.iter().map(|row| ((row.get(1), row.get(2)), row.get(0))).collect())
}
