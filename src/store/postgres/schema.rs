//! The PostgreSQL schema, as versioned migrations.
//!
//! The same tables as the SQLite store, in PostgreSQL's types: times are unix milliseconds
//! (`BIGINT`), documents are JSON text, bodies are `BYTEA`. Differences that matter:
//! - `events` has a UNIQUE `(source, event_key)`: de-duplication across nodes is the database's,
//!   not one process's memory (the SQLite store keeps an in-memory index instead).
//! - `state.key` sorts bytewise (`COLLATE "C"`), as in SQLite, so paging and prefix scans agree.
//! - `deliveries.claimed_until`: a node claims a delivery before attempting it (see `delivery.rs`).
//! - `leases`: which node processes events (see `lease.rs`).
//!
//! [`migrate`] applies what is missing under an advisory lock, so two nodes starting at once do
//! not race: the second waits, then finds nothing left to do. Table changes run in one
//! transaction; an index on a table that may already be large is built `CONCURRENTLY`, outside
//! it, so the other nodes go on storing and processing events while it builds (see [`Migration`]).

use std::time::Duration;

use tokio_postgres::Client;

use super::{pg_error, StoreError};

/// An advisory-lock key of tradehook's own ("th-migr" as bytes).
const MIGRATION_LOCK: i64 = 0x0074_682d_6d69_6772;

/// One schema version.
enum Migration {
    /// Statements run in the migration transaction.
    Tables(&'static str),
    /// `CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> …`, run outside any transaction.
    ///
    /// A plain `CREATE INDEX` holds a lock that stops every INSERT and UPDATE of the table until
    /// the whole table has been read: on a table of millions of events, every node would answer
    /// 503 for the length of an upgrade. A concurrent build lets them write meanwhile. If it is
    /// interrupted, PostgreSQL leaves the index behind marked invalid; the next start drops it
    /// and builds it again.
    Index { name: &'static str, sql: &'static str },
}

/// Pause between two attempts to take the migration lock.
const LOCK_RETRY: Duration = Duration::from_millis(100);

/// Schema versions, applied in order; `tradehook_schema` records the ones that ran.
const MIGRATIONS: &[Migration] = &[Migration::Tables(r#"
    CREATE TABLE events (
        seq             BIGSERIAL PRIMARY KEY,     -- arrival (commit) order; public id is evt_<seq>
        source          TEXT NOT NULL,
        event_key       TEXT NOT NULL,             -- de-duplication key within the source
        event_type      TEXT,
        received_at     BIGINT NOT NULL,           -- unix ms
        client_ip       TEXT NOT NULL,
        headers         TEXT NOT NULL,             -- JSON object, secrets removed
        body            BYTEA NOT NULL,
        processed_at    BIGINT,                    -- NULL = not yet processed
        outcome         TEXT,
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        ordering_key    TEXT,
        history         TEXT,
        UNIQUE (source, event_key)
    );
    CREATE INDEX events_pending ON events (seq) WHERE processed_at IS NULL;
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE state (
        kind TEXT NOT NULL,
        key  TEXT COLLATE "C" NOT NULL,
        doc  TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE TABLE alerts (
        id        BIGSERIAL PRIMARY KEY,
        kind      TEXT NOT NULL,
        subject   TEXT NOT NULL,
        message   TEXT NOT NULL,
        at        TEXT NOT NULL,
        event_seq BIGINT
    );
    CREATE TABLE dead_letters (
        id          BIGSERIAL PRIMARY KEY,
        event_seq   BIGINT NOT NULL,
        kind        TEXT NOT NULL,                 -- event | delivery
        webhook_id  TEXT,
        reason      TEXT NOT NULL,
        attempts    BIGINT NOT NULL,
        last_error  TEXT NOT NULL,
        history     TEXT NOT NULL,
        dead_at     BIGINT NOT NULL,
        delivery_id BIGINT,
        target      TEXT
    );
    CREATE INDEX dead_letters_event ON dead_letters (event_seq);
    CREATE TABLE subscriptions (
        id              TEXT PRIMARY KEY,
        name            TEXT UNIQUE,
        url             TEXT NOT NULL,
        events          TEXT NOT NULL,
        secret          TEXT NOT NULL,
        active          BOOLEAN NOT NULL,
        description     TEXT,
        disabled_reason TEXT,
        failing_since   BIGINT,
        last_success_at BIGINT,
        last_error      TEXT,
        created_at      BIGINT NOT NULL,
        updated_at      BIGINT NOT NULL
    );
    CREATE TABLE deliveries (
        id              BIGSERIAL PRIMARY KEY,
        event_seq       BIGINT NOT NULL,
        target          TEXT NOT NULL,
        webhook_id      TEXT,
        status          TEXT NOT NULL,             -- pending | held | delivered | dead
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        history         TEXT NOT NULL DEFAULT '[]',
        payload         BYTEA,
        created_at      BIGINT NOT NULL,
        done_at         BIGINT,
        intent_id       BIGINT,
        claimed_until   BIGINT                     -- unix ms; a node is attempting it until then
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
    CREATE INDEX deliveries_event ON deliveries (event_seq);
    CREATE INDEX deliveries_waiting ON deliveries (webhook_id) WHERE status IN ('pending', 'held');
    CREATE INDEX deliveries_broker ON deliveries (target, id) WHERE status = 'pending' AND target LIKE 'broker:%';
    CREATE TABLE delivery_attempts (
        id          BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT,
        webhook_id  TEXT,
        event_seq   BIGINT,
        at          BIGINT NOT NULL,
        status_code BIGINT,
        latency_ms  DOUBLE PRECISION NOT NULL,
        response    TEXT,
        error       TEXT,
        outcome     TEXT NOT NULL
    );
    CREATE INDEX delivery_attempts_webhook ON delivery_attempts (webhook_id, id);
    CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
    CREATE TABLE intents (
        id              BIGSERIAL PRIMARY KEY,
        client_order_id TEXT NOT NULL UNIQUE,
        action          TEXT NOT NULL,
        symbol          TEXT,
        outcome         TEXT NOT NULL,
        reason          TEXT,
        doc             TEXT NOT NULL,
        event_seq       BIGINT,
        broker_response TEXT,
        created_at      BIGINT NOT NULL,
        updated_at      BIGINT NOT NULL
    );
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        epoch      BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        locked     BOOLEAN NOT NULL           -- the holder holds the session advisory lock too
    );
"#),
    // Events that waited behind a dead-lettered one are found by its ordering key, not by a scan
    // of the whole backlog; only failed or deferred events have one, so appends never touch it.
    Migration::Index {
        name: "events_ordering_key",
        sql: "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_ordering_key ON events (ordering_key)
              WHERE processed_at IS NULL AND ordering_key IS NOT NULL",
    },
    // A `Retry-After` (429/503) holds the subscription's deliveries until then (unix ms), those
    // queued after the answer too.
    Migration::Tables("ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS paused_until BIGINT;"),
];

/// Applies the migrations this database has not seen, one node at a time.
///
/// `client` must be a connection of its own, closed after: the lock is the session's, so a
/// connection that went back to a pool still holding it would keep every other node waiting.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    lock(client).await?;
    let result = apply(client).await;
    // Not released if the connection broke: then closing it releases the lock.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}

/// Takes the session-level migration lock, asking again until it is free.
///
/// Asking again, not waiting inside `pg_advisory_lock`: a waiting statement holds a snapshot,
/// and a concurrent index build waits for every snapshot older than its own, so a node waiting
/// for the lock would stall the build of the node holding it (PostgreSQL would end that cycle by
/// failing one of the two with a deadlock).
async fn lock(client: &Client) -> Result<(), StoreError> {
    loop {
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_error)?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

/// Runs the missing migrations; the caller holds the lock.
async fn apply(client: &mut Client) -> Result<(), StoreError> {
    client
        // "relation already exists, skipping" NOTICEs at every start say nothing to anyone.
        .batch_execute("SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS tradehook_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(pg_error)?;
    let done: i64 = client
        .query_one("SELECT coalesce(max(version), 0) FROM tradehook_schema", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if done > known {
        return Err(StoreError::Internal(format!(
            "the database has schema version {done}, newer than this tradehook knows ({known}); upgrade tradehook"
        )));
    }
    let failed = |version: i64| move |e: tokio_postgres::Error| {
        StoreError::Internal(format!("migration {version}: {}", super::describe(&e)))
    };
    const RECORD: &str = "INSERT INTO tradehook_schema (version) VALUES ($1)";
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let version = index as i64 + 1;
        match migration {
            Migration::Tables(sql) => {
                let tx = client.transaction().await.map_err(pg_error)?;
                tx.batch_execute(sql).await.map_err(failed(version))?;
                tx.execute(RECORD, &[&version]).await.map_err(pg_error)?;
                tx.commit().await.map_err(pg_error)?;
            }
            Migration::Index { name, sql } => {
                let valid: Option<bool> = client
                    .query_opt("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", &[name])
                    .await
                    .map_err(pg_error)?
                    .map(|row| row.get(0));
                if valid == Some(false) {
                    tracing::warn!(index = name, "an interrupted index build left it invalid; building it again");
                    client
                        .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                        .await
                        .map_err(failed(version))?;
                }
                client.batch_execute(sql).await.map_err(failed(version))?;
                client.execute(RECORD, &[&version]).await.map_err(pg_error)?;
            }
        }
    }
    Ok(())
}
