//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the write connection. Requests queue on a bounded channel; the writer
//! takes whatever has queued (up to `max_batch`), inserts it in one transaction, commits — one
//! fsync for the whole batch — and only then answers every request in it. While it commits, the
//! next batch queues up, so the batch size follows the load: one event per commit when idle, a
//! hundred under a burst. A full queue answers 503 at once instead of letting latency grow.
//! Reads use their own connection and never wait for the writer (WAL readers see the last commit).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{
    new_event_id, now_ms, rfc3339, Appended, EventFilter, NewEvent, Store, StoreError, StoreStats,
    StoredEvent,
};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,      -- arrival order
        id           TEXT NOT NULL UNIQUE,     -- public id, evt_…
        source       TEXT NOT NULL,
        event_key    TEXT NOT NULL,            -- de-duplication key within the source
        event_type   TEXT,
        received_at  INTEGER NOT NULL,         -- unix ms
        client_ip    TEXT NOT NULL,
        headers      TEXT NOT NULL,            -- JSON object, secrets removed
        body         BLOB NOT NULL,
        processed_at INTEGER,                  -- NULL = not yet processed
        UNIQUE (source, event_key)
    );
    CREATE INDEX events_pending ON events (seq) WHERE processed_at IS NULL;
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#];

/// Work for the writer thread.
enum Write {
    Append(NewEvent, oneshot::Sender<Result<Appended, StoreError>>),
    /// Commit a tiny write to prove the database is writable.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    /// Finish what is queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// The SQLite store. See the module documentation.
pub struct SqliteStore {
    queue: mpsc::Sender<Write>,
    reader: Arc<Mutex<Connection>>,
    backlog: Arc<AtomicU64>,
    max_backlog: u64,
    path: PathBuf,
}

/// Tunables of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most events in one commit.
    pub max_batch: usize,
    /// Requests that may wait for the writer.
    pub queue_capacity: usize,
    /// Pending events above which appends are refused.
    pub max_backlog: u64,
    /// Caps the database size in pages (`PRAGMA max_page_count`); `None` = SQLite's default.
    pub max_page_count: Option<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn =
        Connection::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
    // FULL: every commit fsyncs the WAL, so an acknowledged event survives power loss.
    conn.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
    conn.pragma_update(None, "busy_timeout", 5000).map_err(unavailable)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let done: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(unavailable)?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction().map_err(unavailable)?;
        tx.execute_batch(sql).map_err(|e| StoreError::Internal(format!("migration {}: {e}", version + 1)))?;
        tx.pragma_update(None, "user_version", version + 1).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        if let Some(pages) = options.max_page_count {
            writer.pragma_update(None, "max_page_count", pages).map_err(unavailable)?;
        }
        let reader = open_connection(path)?;
        let pending: u64 = reader
            .query_row("SELECT count(*) FROM events WHERE processed_at IS NULL", [], |row| row.get(0))
            .map_err(unavailable)?;
        let backlog = Arc::new(AtomicU64::new(pending));
        let (queue, rx) = mpsc::channel(options.queue_capacity.max(1));
        let writer_backlog = backlog.clone();
        let max_batch = options.max_batch.max(1);
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, rx, max_batch, &writer_backlog))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            queue,
            reader: Arc::new(Mutex::new(reader)),
            backlog,
            max_backlog: options.max_backlog,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn).map_err(|e| StoreError::Internal(e.to_string()))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    fn submit(&self, write: Write) -> Result<(), StoreError> {
        self.queue.try_send(write).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Saturated("the write queue is full; retry shortly".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("the store is shutting down".into())
            }
        })
    }
}

/// The writer thread: batch, commit, answer. Runs until `Close` or every sender is gone.
fn write_loop(mut conn: Connection, mut rx: mpsc::Receiver<Write>, max_batch: usize, backlog: &AtomicU64) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let closing = commit_batch(&mut conn, &mut batch, backlog);
        if let Some(done) = closing {
            // Refuse what arrives from now on; what was queued before Close has been committed.
            rx.close();
            while let Ok(write) = rx.try_recv() {
                refuse(write);
            }
            let _ = done.send(());
            return;
        }
    }
}

fn refuse(write: Write) {
    let closed = || StoreError::Unavailable("the store is shutting down".into());
    match write {
        Write::Append(_, reply) => drop(reply.send(Err(closed()))),
        Write::Probe(reply) => drop(reply.send(Err(closed()))),
        Write::Close(reply) => drop(reply.send(())),
    }
}

/// Commits one batch and answers it. Returns the `Close` reply if the batch asked to stop.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Write>,
    backlog: &AtomicU64,
) -> Option<oneshot::Sender<()>> {
    let started = std::time::Instant::now();
    let result = insert_all(conn, batch);
    metrics::histogram!("tradehook_store_commit_seconds").record(started.elapsed().as_secs_f64());
    let mut closing = None;
    let mut appends = 0u64;
    match result {
        Ok(outcomes) => {
            let accepted = outcomes.iter().filter(|o| matches!(o, Appended::Accepted(_))).count() as u64;
            backlog.fetch_add(accepted, Ordering::Relaxed);
            let mut outcomes = outcomes.into_iter();
            for write in batch.drain(..) {
                match write {
                    Write::Append(_, reply) => {
                        appends += 1;
                        let outcome =
                            outcomes.next().ok_or_else(|| StoreError::Internal("lost an outcome".into()));
                        let _ = reply.send(outcome);
                    }
                    Write::Probe(reply) => drop(reply.send(Ok(()))),
                    Write::Close(reply) => closing = Some(reply),
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, events = batch.len(), "commit failed; answering 503 to the whole batch");
            let message = error.to_string();
            for write in batch.drain(..) {
                match write {
                    Write::Append(_, reply) => {
                        appends += 1;
                        let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                    Write::Probe(reply) => drop(reply.send(Err(StoreError::Unavailable(message.clone())))),
                    Write::Close(reply) => closing = Some(reply),
                }
            }
        }
    }
    if appends > 0 {
        metrics::histogram!("tradehook_store_batch_size").record(appends as f64);
    }
    closing
}

/// Inserts every append of the batch in one transaction; all or nothing.
fn insert_all(conn: &mut Connection, batch: &[Write]) -> rusqlite::Result<Vec<Appended>> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, source, event_key, event_type, received_at, client_ip, headers, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (source, event_key) DO NOTHING",
        )?;
        let mut existing = tx.prepare_cached("SELECT id FROM events WHERE source = ?1 AND event_key = ?2")?;
        for write in batch {
            match write {
                Write::Append(event, _) => {
                    let id = new_event_id();
                    let inserted = insert.execute(params![
                        id,
                        event.source,
                        event.event_key,
                        event.event_type,
                        event.received_at,
                        event.client_ip,
                        event.headers,
                        &event.body[..],
                    ])?;
                    if inserted == 1 {
                        outcomes.push(Appended::Accepted(id));
                    } else {
                        let first: String =
                            existing.query_row(params![event.source, event.event_key], |row| row.get(0))?;
                        outcomes.push(Appended::Duplicate(first));
                    }
                }
                Write::Probe(_) => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('probe', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![now_ms().to_string()],
                    )?;
                }
                Write::Close(_) => {}
            }
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

const EVENT_COLUMNS: &str =
    "id, seq, source, event_key, event_type, received_at, client_ip, headers, body, processed_at";

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let headers: String = row.get(7)?;
    let body: Vec<u8> = row.get(8)?;
    let payload = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok(StoredEvent {
        id: row.get(0)?,
        seq: row.get(1)?,
        source: row.get(2)?,
        event_key: row.get(3)?,
        event_type: row.get(4)?,
        received_at: rfc3339(row.get(5)?),
        client_ip: row.get(6)?,
        headers: serde_json::from_str(&headers).unwrap_or(serde_json::Value::Null),
        payload,
        processed_at: row.get::<_, Option<i64>>(9)?.map(rfc3339),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, event: NewEvent) -> Result<Appended, StoreError> {
        if self.backlog.load(Ordering::Relaxed) >= self.max_backlog {
            return Err(StoreError::Saturated(format!(
                "{} events are waiting to be processed (limit {})",
                self.backlog.load(Ordering::Relaxed),
                self.max_backlog
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Write::Append(event, reply))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped".into()))?
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.query_row(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"), [id], event_from_row)
                .optional()
        })
        .await
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let mut clauses = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut add = |clause: &str, value: rusqlite::types::Value| {
                values.push(value);
                clauses.push(format!("{clause} ?{}", values.len()));
            };
            if let Some(source) = filter.source {
                add("source =", source.into());
            }
            if let Some(kind) = filter.event_type {
                add("event_type =", kind.into());
            }
            if let Some(since) = filter.since {
                add("received_at >=", since.into());
            }
            if let Some(until) = filter.until {
                add("received_at <", until.into());
            }
            if let Some(before) = filter.before_seq {
                add("seq <", before.into());
            }
            if let Some(after) = filter.after_seq {
                add("seq >", after.into());
            }
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events");
            if !clauses.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&clauses.join(" AND "));
            }
            // Tailing reads forward from a point; everything else shows the newest first.
            let order = if filter.after_seq.is_some() { "ASC" } else { "DESC" };
            sql.push_str(&format!(" ORDER BY seq {order} LIMIT {}", filter.limit.clamp(1, 1000)));
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map(params_from_iter(values), event_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let now = now_ms();
        self.read(move |conn| {
            let events: u64 = conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
            let backlog: u64 =
                conn.query_row("SELECT count(*) FROM events WHERE processed_at IS NULL", [], |row| {
                    row.get(0)
                })?;
            let oldest: Option<i64> = conn
                .query_row(
                    "SELECT received_at FROM events WHERE processed_at IS NULL ORDER BY seq LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(StoreStats {
                events,
                backlog,
                oldest_pending_age_seconds: oldest.map(|at| (now - at).max(0) as f64 / 1000.0),
                processed: events - backlog,
            })
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Write::Probe(reply))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped".into()))?
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        // A full queue still drains: wait for room rather than drop the close request.
        if self.queue.send(Write::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn options() -> SqliteOptions {
        SqliteOptions { max_batch: 64, queue_capacity: 1024, max_backlog: 1_000_000, max_page_count: None }
    }

    fn event(key: &str) -> NewEvent {
        NewEvent {
            source: "default".into(),
            event_key: key.into(),
            event_type: Some("order.updated".into()),
            body: Bytes::from(format!(r#"{{"id":"{key}","event":"order.updated"}}"#)),
            headers: r#"{"content-type":"application/json"}"#.into(),
            client_ip: "127.0.0.1".into(),
            received_at: now_ms(),
        }
    }

    #[tokio::test]
    async fn append_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
        let Appended::Accepted(id) = store.append(event("a")).await.unwrap() else { panic!("not accepted") };
        assert!(id.starts_with("evt_"));
        let stored = store.event(&id).await.unwrap().unwrap();
        assert_eq!(stored.event_key, "a");
        assert_eq!(stored.payload["event"], "order.updated");
        assert_eq!(stored.processed_at, None);
        assert_eq!(store.backlog(), 1);
    }

    #[tokio::test]
    async fn duplicate_answers_with_the_first_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
        let first = store.append(event("a")).await.unwrap();
        let again = store.append(event("a")).await.unwrap();
        let (Appended::Accepted(a), Appended::Duplicate(b)) = (first, again) else {
            panic!("wrong outcomes")
        };
        assert_eq!(a, b);
        assert_eq!(store.backlog(), 1);
    }

    #[tokio::test]
    async fn same_key_in_one_batch_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db"), options()).unwrap());
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.append(event("same")).await.unwrap() })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        let mut accepted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Appended::Accepted(id) => {
                    accepted += 1;
                    ids.insert(id);
                }
                Appended::Duplicate(id) => {
                    ids.insert(id);
                }
            }
        }
        assert_eq!(accepted, 1);
        assert_eq!(ids.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_all_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Arc::new(SqliteStore::open(&path, options()).unwrap());
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append(event(&format!("k{i}"))).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Appended::Accepted(_)));
        }
        store.close().await;
        drop(store);
        let reopened = SqliteStore::open(&path, options()).unwrap();
        assert_eq!(reopened.backlog(), 500);
        assert_eq!(reopened.stats().await.unwrap().events, 500);
    }

    #[tokio::test]
    async fn backlog_over_limit_is_refused_as_saturated() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("t.db"), SqliteOptions { max_backlog: 2, ..options() })
                .unwrap();
        store.append(event("a")).await.unwrap();
        store.append(event("b")).await.unwrap();
        assert!(matches!(store.append(event("c")).await, Err(StoreError::Saturated(_))));
    }

    #[tokio::test]
    async fn appends_after_close_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
        store.close().await;
        assert!(matches!(store.append(event("a")).await, Err(StoreError::Unavailable(_))));
    }

    #[tokio::test]
    async fn events_filter_by_source_type_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
        for i in 0..5 {
            store.append(event(&format!("k{i}"))).await.unwrap();
        }
        let mut other = event("x");
        other.source = "tv".into();
        other.event_type = None;
        store.append(other).await.unwrap();
        let all = store.events(EventFilter { limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 6);
        assert!(all[0].seq > all[1].seq, "newest first");
        let tv =
            store.events(EventFilter { source: Some("tv".into()), limit: 100, ..Default::default() }).await;
        assert_eq!(tv.unwrap().len(), 1);
        let page = store
            .events(EventFilter { before_seq: Some(all[1].seq), limit: 2, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![all[2].seq, all[3].seq]);
        let typed = store
            .events(EventFilter {
                event_type: Some("order.updated".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(typed.len(), 5);
    }

    #[tokio::test]
    async fn probe_commits_when_writable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
        store.check_writable().await.unwrap();
    }

    #[tokio::test]
    async fn full_database_answers_unavailable_then_recovers_for_small_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store =
            SqliteStore::open(&path, SqliteOptions { max_page_count: Some(64), ..options() }).unwrap();
        store.append(event("warm")).await.unwrap();
        let mut big = event("big");
        big.body = Bytes::from(vec![b'x'; 1 << 20]);
        match store.append(big).await {
            Err(StoreError::Unavailable(reason)) => assert!(reason.contains("full"), "{reason}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(store.event("nope").await.unwrap().is_none());
        // The failed batch was rolled back whole; the store still takes what fits.
        assert!(matches!(store.append(event("small")).await, Ok(Appended::Accepted(_))));
        assert_eq!(store.backlog(), 2);
    }
}
