//! The shared store: PostgreSQL, for several `tradehook serve` nodes behind one load balancer.
//!
//! The same [`Store`] contract as SQLite, over a connection pool (deadpool-postgres):
//! - **Ingest**: concurrent appends share a commit — one multi-row `INSERT … ON CONFLICT DO
//!   NOTHING` per batch (`ingest.rs`); the unique `(source, event_key)` finds duplicates across
//!   nodes. Connections ask for `synchronous_commit = on`, so a commit is on disk when it returns.
//!   Any database error answers 503 (never a false 200), and the pool reconnects by itself once
//!   the database is back.
//! - **Processing**: one node at a time, the holder of a lease with fencing (`lease.rs`); its
//!   commits are the same one-transaction processed batches as on SQLite.
//! - **Deliveries**: every node's dispatcher claims due deliveries with `FOR UPDATE SKIP LOCKED`
//!   and a claim time (`delivery.rs`); a dead node's claims are taken over when they run out.
//! - **Wake-ups** across nodes by `LISTEN`/`NOTIFY` (`listen.rs`).

mod delivery;
mod ingest;
mod intents;
mod lease;
mod listen;
mod processing;
mod progress;
mod schema;
mod tls;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Client, GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::{
    dead_letter_seq, event_id, now_ms, rfc3339, seq_of, Appended, DeadLetter, DeadLetterFilter,
    DeliveryAttempt, DeliveryResult, DueDelivery, EntityKind, EventFilter, HealthChange, Lease, NewEvent,
    PendingEvent, ProcessedBatch, Store, StoreError, StoreStats, StoredAlert, StoredEvent, StoredIntent,
    SubscriptionHealth,
};
use crate::delivery::subscription::Subscription;
use ingest::Job;

/// Tunables of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most events in one commit.
    pub max_batch: usize,
    /// Requests that may wait for a commit.
    pub queue_capacity: usize,
    /// Pending events (all nodes) above which appends are refused.
    pub max_backlog: u64,
    /// How long the processing lease lasts without renewal: a dead processing node is replaced
    /// after this.
    pub lease: Duration,
    /// How long a node's claim on a delivery lasts: a dead node's deliveries are retried after it.
    pub claim: Duration,
    /// Connections in the pool.
    pub pool_size: usize,
}

/// Starts a transaction at READ COMMITTED whatever the server's default: the fencing of the
/// lease, the subscription lock of `delivery::queue` and the delete order of
/// `delivery::delete_subscription` rely on each statement seeing what committed before it.
async fn begin(client: &mut Client) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(pg_error)
}

/// Checks `url` as opening the store does, without connecting (`config check` and start-up
/// report a malformed URL, an unknown `sslmode` or an unreadable `sslrootcert` as a config error).
pub fn check_url(url: &str) -> Result<(), String> {
    tls::connection(url).map(drop).map_err(|error| match error {
        StoreError::Internal(problem) => problem,
        other => other.to_string(),
    })
}

/// Maps a database error: connection trouble, shutdown, overload or a failed transaction is
/// `Unavailable` (answer 503, try again); the rest is a bug or corruption.
pub(super) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let retriable = match error.code() {
        // 08 connection, 25 transaction state, 40 rollback (serialization, deadlock),
        // 53 resources (disk full, too many connections), 57 operator (shutdown, cancel).
        Some(code) => matches!(&code.code()[..2], "08" | "25" | "40" | "53" | "57"),
        None => true,
    };
    let text = describe(&error);
    if retriable {
        StoreError::Unavailable(format!("database: {text}"))
    } else {
        StoreError::Internal(format!("database: {text}"))
    }
}

/// An error's text without values from the statement (a database error's detail can quote them).
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // "error connecting to server" alone does not say whether the name did not resolve, the
        // port refused or the connection timed out: the cause does.
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

pub(super) fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => pg_error(error),
        other => StoreError::Unavailable(format!("database: {other}")),
    }
}

/// The PostgreSQL store. See the module documentation.
pub struct PgStore {
    pool: Pool,
    queue: mpsc::Sender<Job>,
    backlog: Arc<AtomicU64>,
    max_backlog: u64,
    lease: lease::ProcessingLease,
    claim_ms: i64,
    arrivals: Arc<Notify>,
    deliveries_ready: Arc<Notify>,
    /// Tell the other nodes of new events / deliveries (see `listen::announce`).
    announce_events: Arc<Notify>,
    announce_deliveries: Arc<Notify>,
    stop: CancellationToken,
}

impl PgStore {
    /// Connects, migrates the schema and starts the appender, the listener and the backlog
    /// counter. Fails with `Unavailable` when the database cannot be reached.
    pub async fn open(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let (mut config, tls) = tls::connection(url)?;
        let extra = format!("{} -c synchronous_commit=on", config.get_options().unwrap_or_default());
        config
            .options(extra.trim())
            .application_name("tradehook")
            .keepalives_idle(Duration::from_secs(15));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(4))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(config.get_connect_timeout().copied())
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        migrate(&config, tls.clone()).await?;
        let pending = count_pending(&pool.get().await.map_err(pool_error)?).await?;
        let backlog = Arc::new(AtomicU64::new(pending));
        let arrivals = Arc::new(Notify::new());
        let deliveries_ready = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let announce_events = Arc::new(Notify::new());
        let announce_deliveries = Arc::new(Notify::new());
        let (queue, rx) = mpsc::channel(options.queue_capacity.max(1));
        let appender = ingest::Appender {
            pool: pool.clone(),
            max_batch: options.max_batch.max(1),
            backlog: backlog.clone(),
            arrivals: arrivals.clone(),
            announce: announce_events.clone(),
        };
        tokio::spawn(ingest::run(appender, rx));
        let lease_config = config.clone();
        tokio::spawn(listen::run(config, tls.clone(), arrivals.clone(), deliveries_ready.clone(), stop.clone()));
        tokio::spawn(count_backlog(pool.clone(), backlog.clone(), stop.clone()));
        tokio::spawn(listen::announce(
            pool.clone(),
            announce_events.clone(),
            announce_deliveries.clone(),
            stop.clone(),
        ));
        let holder = format!("{}-{}", std::process::id(), ulid::Ulid::new());
        Ok(PgStore {
            pool,
            queue,
            backlog,
            max_backlog: options.max_backlog,
            lease: lease::ProcessingLease::new(holder, options.lease, lease_config, tls),
            claim_ms: i64::try_from(options.claim.as_millis()).unwrap_or(i64::MAX / 4),
            arrivals,
            deliveries_ready,
            announce_events,
            announce_deliveries,
            stop,
        })
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `work` in one transaction and commits it.
    async fn transaction<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(
            &'t deadpool_postgres::Transaction<'t>,
        ) -> futures::future::BoxFuture<'t, Result<T, StoreError>>,
    {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let value = work(&tx).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(value)
    }
}

/// The URL's `connect_timeout` when it has none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection of its own, not from the pool.
pub(super) type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream>;

/// Opens a connection of its own within the URL's `connect_timeout` for the whole set-up, as
/// libpq does: tokio-postgres bounds only the TCP connect by it, so a server that accepts and
/// never answers (a half-open proxy, a frozen host) held start-up forever.
pub(super) async fn connect(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<(tokio_postgres::Client, Connection), StoreError> {
    let within = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    match tokio::time::timeout(within, config.connect(tls)).await {
        Ok(connected) => connected.map_err(pg_error),
        Err(_) => Err(StoreError::Unavailable(format!(
            "the database did not complete the connection within {} s (connect_timeout)",
            within.as_secs_f64()
        ))),
    }
}

/// Migrates the schema on a connection of its own, closed after (see [`schema::migrate`]).
async fn migrate(config: &tokio_postgres::Config, tls: MakeRustlsConnect) -> Result<(), StoreError> {
    let (mut client, connection) = connect(config, tls).await?;
    let connection = tokio::spawn(connection);
    let result = schema::migrate(&mut client).await;
    drop(client);
    let _ = connection.await;
    result
}

async fn count_pending(client: &impl GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one("SELECT count(*) FROM events WHERE processed_at IS NULL", &[])
        .await
        .map_err(pg_error)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Keeps the backlog figure (which ingest checks on every request) current across nodes.
async fn count_backlog(pool: Pool, backlog: Arc<AtomicU64>, stop: CancellationToken) {
    let mut pause = COUNT_EVERY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        if let Ok(client) = pool.get().await {
            let started = std::time::Instant::now();
            if let Ok(pending) = count_pending(&client).await {
                backlog.store(pending, Ordering::Relaxed);
            }
            pause = next_count_in(started.elapsed());
        }
    }
}

/// How often the backlog is counted while counting is quick.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// The pause before the next count, after one that took `took`. Counting reads every pending
/// row: with a backlog of millions (when the database is already the bottleneck) a count every
/// second would keep a backend busy. So the pause grows with the count's own time, which keeps
/// counting under a tenth of one backend's time; the figure is then a few seconds old, still
/// fine for a limit of that size.
fn next_count_in(took: Duration) -> Duration {
    COUNT_EVERY.max(took * 10)
}

const EVENT_COLUMNS: &str =
    "seq, source, event_key, event_type, received_at, client_ip, headers, body, processed_at, outcome";

fn event_from_row(row: &Row) -> StoredEvent {
    let headers: String = row.get(6);
    let body: Vec<u8> = row.get(7);
    let payload = crate::store::payload_of(&body);
    let seq: i64 = row.get(0);
    StoredEvent {
        id: event_id(seq),
        seq,
        source: row.get(1),
        event_key: row.get(2),
        event_type: row.get(3),
        received_at: rfc3339(row.get(4)),
        client_ip: row.get(5),
        headers: serde_json::from_str(&headers).unwrap_or(serde_json::Value::Null),
        payload,
        processed_at: row.get::<_, Option<i64>>(8).map(rfc3339),
        // Written with processed_at; an event processed before outcomes were kept has none.
        outcome: row.get::<_, Option<String>>(9).filter(|_| row.get::<_, Option<i64>>(8).is_some()),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn append(&self, event: NewEvent) -> Result<Appended, StoreError> {
        let backlog = self.backlog.load(Ordering::Relaxed);
        if backlog >= self.max_backlog {
            // A duplicate adds nothing to the backlog: a sender retrying an event it sent before
            // gets its id, not a 503 it would retry until the backlog drains.
            let client = self.client().await?;
            let stored = ingest::stored_seqs(&client, &[&event.source], &[&event.event_key]).await?;
            if let Some(seq) = stored.into_values().next() {
                return Ok(Appended::Duplicate(event_id(seq)));
            }
            return Err(StoreError::backlog_full(backlog, self.max_backlog));
        }
        let (reply, answer) = oneshot::channel();
        self.queue.try_send(Job::Append(event, reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Saturated("the write queue is full; retry shortly".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("the store is shutting down".into())
            }
        })?;
        answer.await.map_err(|_| StoreError::Unavailable("the appender stopped".into()))?
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let Some(seq) = seq_of(id) else { return Ok(None) };
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1");
        let row = self.client().await?.query_opt(&sql, &[&seq]).await.map_err(pg_error)?;
        Ok(row.as_ref().map(event_from_row))
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        // Tailing reads forward from a point; everything else shows the newest first.
        let order = if filter.after_seq.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR event_type = $2)
               AND ($3::bigint IS NULL OR received_at >= $3) AND ($4::bigint IS NULL OR received_at < $4)
               AND ($5::bigint IS NULL OR seq < $5) AND ($6::bigint IS NULL OR seq > $6)
               AND ($8::bigint IS NULL OR seq <= $8)
             ORDER BY seq {order} LIMIT $7"
        );
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let client = self.client().await?;
        // A tail must not move past a seq still being committed (see `progress`).
        let settled = match filter.after_seq {
            Some(_) => Some(progress::settled_seq(&client).await?),
            None => None,
        };
        let rows = client
            .query(
                &sql,
                &[
                    &filter.source,
                    &filter.event_type,
                    &filter.since,
                    &filter.until,
                    &filter.before_seq,
                    &filter.after_seq,
                    &limit,
                    &settled,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    async fn progress(&self, after_seq: i64, limit: u32) -> Result<Vec<super::EventProgress>, StoreError> {
        let client = self.client().await?;
        progress::after(&client, after_seq, limit).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE processed_at IS NULL),
                        (SELECT count(*) FROM dead_letters)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let events = row.get::<_, i64>(0).max(0) as u64;
        let backlog = row.get::<_, i64>(1).max(0) as u64;
        let now = now_ms();
        let oldest = processing::oldest_due(&client, now).await?;
        Ok(StoreStats {
            events,
            backlog,
            oldest_pending_age_seconds: oldest.map(|at| crate::store::seconds_since(at, now)),
            processed: events.saturating_sub(backlog),
            dlq: row.get::<_, i64>(2).max(0) as u64,
        })
    }

    async fn prune(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError> {
        self.transaction(move |tx| {
            Box::pin(async move {
                let gone = tx
                    .query(
                        "DELETE FROM events WHERE seq IN (
                             SELECT seq FROM events
                             WHERE received_at < $1 AND processed_at IS NOT NULL
                               AND seq NOT IN (SELECT event_seq FROM dead_letters)
                               AND seq NOT IN (SELECT event_seq FROM deliveries WHERE status IN ('pending', 'held'))
                             ORDER BY received_at LIMIT $2
                             FOR UPDATE SKIP LOCKED)
                         RETURNING seq",
                        &[&cutoff, &i64::from(limit)],
                    )
                    .await
                    .map_err(pg_error)?;
                let seqs: Vec<i64> = gone.iter().map(|row| row.get(0)).collect();
                tx.execute("DELETE FROM deliveries WHERE event_seq = ANY($1)", &[&seqs]).await.map_err(pg_error)?;
                tx.execute(
                    "DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE at < $1 LIMIT 10000)",
                    &[&cutoff],
                )
                .await
                .map_err(pg_error)?;
                Ok(seqs.len() as u64)
            })
        })
        .await
    }

    async fn dlq_size(&self) -> Result<u64, StoreError> {
        processing::dead_letter_count(&self.client().await?).await
    }

    async fn oldest_pending(&self) -> Result<Option<i64>, StoreError> {
        processing::oldest_due(&self.client().await?, now_ms()).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO meta (key, value) VALUES ('probe', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&now_ms().to_string()],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.queue.send(Job::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        self.stop.cancel();
    }

    fn arrivals(&self) -> Arc<Notify> {
        self.arrivals.clone()
    }

    async fn processing_lease(&self) -> Result<Lease, StoreError> {
        self.lease.acquire(&self.client().await?).await
    }

    async fn retrying(&self) -> Result<Vec<(String, i64)>, StoreError> {
        processing::retrying(&self.client().await?).await
    }

    async fn pending(&self, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
        processing::pending(&self.client().await?, limit, now_ms()).await
    }

    async fn commit_processed(&self, batch: ProcessedBatch) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // First: renew the lease or find that another node holds it (then nothing commits).
        self.lease.fence(&tx).await?;
        let done = processing::commit_processed(&tx, &batch).await?;
        tx.commit().await.map_err(pg_error)?;
        self.backlog.fetch_sub(done.min(self.backlog.load(Ordering::Relaxed)), Ordering::Relaxed);
        if !batch.deliveries.is_empty() || !batch.intents.is_empty() {
            self.deliveries_ready.notify_one();
            self.announce_deliveries.notify_one();
        }
        Ok(done)
    }

    async fn all_entities(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        processing::all_entities(&self.client().await?).await
    }

    async fn entities(
        &self,
        kind: EntityKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        processing::entities(&self.client().await?, kind, after.as_deref(), limit).await
    }

    async fn entity(&self, kind: EntityKind, key: &str) -> Result<Option<String>, StoreError> {
        processing::entity(&self.client().await?, kind, key).await
    }

    async fn entities_with_prefix(&self, kind: EntityKind, prefix: &str) -> Result<Vec<String>, StoreError> {
        processing::entities_with_prefix(&self.client().await?, kind, prefix).await
    }

    async fn alerts(
        &self,
        before: Option<i64>,
        limit: u32,
        kind: Option<String>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        processing::alerts(&self.client().await?, before, limit, kind.as_deref()).await
    }

    async fn dead_letters(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        processing::dead_letters(&self.client().await?, &filter).await
    }

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let Some(id) = dead_letter_seq(id) else { return Ok(None) };
        processing::dead_letter(&self.client().await?, id).await
    }

    async fn replay_dead_letters(&self, ids: Vec<String>) -> Result<u64, StoreError> {
        let ids: Vec<i64> = ids.iter().filter_map(|id| dead_letter_seq(id)).collect();
        let (events, deliveries) = self
            .transaction(move |tx| Box::pin(async move { processing::replay_dead_letters(tx, &ids).await }))
            .await?;
        self.requeued(events);
        if deliveries > 0 {
            self.deliveries_ready.notify_one();
            self.announce_deliveries.notify_one();
        }
        Ok(events + deliveries)
    }

    async fn discard_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let Some(id) = dead_letter_seq(id) else { return Ok(false) };
        processing::discard_dead_letter(&self.client().await?, id).await
    }

    async fn replay_event(&self, id: &str) -> Result<bool, StoreError> {
        let Some(seq) = seq_of(id) else { return Ok(false) };
        let replayed = self
            .transaction(move |tx| Box::pin(async move { processing::replay_event(tx, seq).await }))
            .await?;
        self.requeued(replayed);
        Ok(replayed > 0)
    }

    async fn applied_events(&self, after_seq: i64, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
        processing::applied_events(&self.client().await?, after_seq, limit).await
    }

    async fn replace_state(&self, entities: Vec<(EntityKind, String, String)>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Only the lease holder writes state: a node processing meanwhile would have its work
        // overwritten by a state computed without it (and go on from its own, in memory).
        self.lease.fence(&tx).await?;
        let replaced = processing::replace_state(&tx, &entities).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(replaced)
    }

    fn deliveries_ready(&self) -> Arc<Notify> {
        self.deliveries_ready.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
        in_flight: &HashSet<i64>,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let in_flight: Vec<i64> = in_flight.iter().copied().collect();
        delivery::claim_due(&self.client().await?, now, limit, self.claim_ms, &in_flight).await
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        delivery::next_due(&self.client().await?).await
    }

    async fn commit_deliveries(
        &self,
        results: Vec<DeliveryResult>,
        health: Vec<(String, HealthChange)>,
    ) -> Result<(), StoreError> {
        self.transaction(move |tx| {
            Box::pin(async move { delivery::commit_results(tx, &results, &health).await })
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        delivery::subscriptions(&self.client().await?).await
    }

    async fn subscriptions_fingerprint(&self) -> Result<Option<String>, StoreError> {
        delivery::subscriptions_fingerprint(&self.client().await?).await.map(Some)
    }

    async fn create_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        delivery::insert_subscription(&self.client().await?, &subscription).await
    }

    async fn update_subscription(&self, subscription: Subscription) -> Result<bool, StoreError> {
        let resumes = subscription.active;
        let changed = self
            .transaction(move |tx| {
                Box::pin(async move { delivery::update_subscription(tx, &subscription).await })
            })
            .await?;
        if changed && resumes {
            self.deliveries_ready.notify_one();
            self.announce_deliveries.notify_one();
        }
        Ok(changed)
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.transaction(move |tx| Box::pin(async move { delivery::delete_subscription(tx, &id).await }))
            .await
    }

    async fn delivery_attempts(
        &self,
        webhook_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        delivery::attempts(&self.client().await?, webhook_id, before, limit).await
    }

    async fn subscription_health(&self, webhook_id: &str) -> Result<SubscriptionHealth, StoreError> {
        delivery::health(&self.client().await?, webhook_id, now_ms()).await
    }

    async fn intents(
        &self,
        before: Option<i64>,
        action: Option<String>,
        outcome: Option<String>,
        limit: u32,
    ) -> Result<Vec<StoredIntent>, StoreError> {
        intents::list(&self.client().await?, before, action.as_deref(), outcome.as_deref(), limit).await
    }

    async fn intent_outcomes(&self, client_order_ids: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT client_order_id, outcome FROM intents WHERE client_order_id = ANY($1)",
                &[&client_order_ids],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn entries_awaiting_broker(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT i.client_order_id, i.doc FROM deliveries d JOIN intents i ON i.id = d.intent_id
                 WHERE d.status = 'pending' AND d.target LIKE 'broker:%' AND i.action = 'signal_to_order'",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn kill_switch(&self) -> Result<bool, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT value FROM meta WHERE key = 'kill_switch'", &[])
            .await
            .map_err(pg_error)?;
        Ok(row.is_some_and(|row| row.get::<_, String>(0) == "on"))
    }

    async fn set_kill_switch(&self, on: bool) -> Result<(), StoreError> {
        let value = if on { "on" } else { "off" };
        self.client()
            .await?
            .execute(
                "INSERT INTO meta (key, value) VALUES ('kill_switch', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&value],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn order_id_namespace(&self) -> Result<String, StoreError> {
        let client = self.client().await?;
        let fresh = crate::store::random_namespace();
        client.execute(crate::store::CHOOSE_NAMESPACE_SQL, &[&fresh]).await.map_err(pg_error)?;
        let row = client
            .query_one("SELECT value FROM meta WHERE key = 'order_id_namespace'", &[])
            .await
            .map_err(pg_error)?;
        Ok(row.get(0))
    }
}

impl PgStore {
    /// Counts replayed events back into the backlog and wakes the local worker.
    fn requeued(&self, count: u64) {
        if count > 0 {
            self.backlog.fetch_add(count, Ordering::Relaxed);
            self.arrivals.notify_one();
            self.announce_events.notify_one();
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_counted_every_second_and_never_for_more_than_a_tenth_of_the_time() {
        assert_eq!(next_count_in(Duration::from_millis(3)), COUNT_EVERY);
        assert_eq!(next_count_in(Duration::from_millis(100)), COUNT_EVERY);
        for took in [150, 400, 2_000, 30_000].map(Duration::from_millis) {
            let pause = next_count_in(took);
            assert!(took.as_secs_f64() / (took + pause).as_secs_f64() <= 0.1 / 1.1 + 1e-9, "{took:?} then {pause:?}");
        }
    }
}
