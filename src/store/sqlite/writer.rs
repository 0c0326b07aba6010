//! The writer thread of the SQLite store: batch, commit once, answer everyone in the batch.
//!
//! It owns the write connection and the de-duplication index. It takes whatever has queued (up
//! to `max_batch`), inserts it in one transaction, commits — one fsync for the whole batch — and
//! only then answers. While it commits, the next batch queues up, so the batch size follows the
//! load. A failed commit rolls back the whole batch, undoes its index entries and answers every
//! request in it with `Unavailable`: nobody gets an ack for an event that is not on disk.
//!
//! The writer also keeps the WAL from growing without end. SQLite writes the log from its start
//! again only when a transaction begins with every frame already checkpointed, which never
//! happens under steady load while the checkpointer thread trails a few batches behind. A log
//! that keeps growing makes every commit allocate and zero new blocks and write the file's size
//! on each fsync (measured: +45 % throughput when the log restarts). So once the log holds
//! [`RESTART_WAL_FRAMES`], the writer — after answering its batch — checkpoints the few frames
//! the checkpointer has not copied yet, and its next transaction overwrites the log in place.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::hooks::Wal;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use std::time::Duration;

use super::event_id;
use crate::log_throttle::LogThrottle;
use crate::store::dedupe::DedupeIndex;
use crate::store::{now_ms, Appended, NewEvent, StoreError};

/// Failed WAL checkpoints (by the writer or the checkpointer thread) are logged once a minute:
/// on a full disk every pass fails.
pub(super) static CHECKPOINT_FAILURES: LogThrottle = LogThrottle::new(Duration::from_secs(60));

/// Work for the writer thread.
pub(super) enum Write {
    /// Store an event (or find it stored) and answer.
    Append(NewEvent, oneshot::Sender<Result<Appended, StoreError>>),
    /// Prove the database can take an event now (see [`probe`]).
    Probe(oneshot::Sender<Result<(), StoreError>>),
    /// Run a statement group (processing results, DLQ changes) inside the batch's transaction,
    /// in its own savepoint so its failure does not fail the appends beside it. Answered with
    /// the closure's count after the commit.
    Exec(ExecFn, oneshot::Sender<Result<u64, StoreError>>),
    /// Delete up to `limit` processed events received before `cutoff` (unix ms) that are not
    /// dead letters, and forget their de-duplication keys; answered with how many went.
    Prune { cutoff: i64, limit: u32, reply: oneshot::Sender<Result<u64, StoreError>> },
    /// Finish what is queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// Work run by the writer inside its transaction.
pub(super) type ExecFn = Box<dyn FnOnce(&Connection) -> rusqlite::Result<u64> + Send>;

/// What one write in a committed batch produced.
enum Outcome {
    Appended(Appended),
    /// A new event refused: the backlog is at its limit.
    Refused(StoreError),
    Executed(Result<u64, String>),
    /// (key hash, seq) of the events a prune deleted.
    Pruned(Vec<(i64, i64)>),
    Nothing,
}

/// State the writer thread owns.
pub(super) struct Writer {
    /// The only connection that writes.
    pub conn: Connection,
    /// Hash of (source, event id) → first seq.
    pub dedupe: DedupeIndex,
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Notified after a commit that stored new events.
    pub arrivals: std::sync::Arc<tokio::sync::Notify>,
    /// Pending events at which a new event is refused (a duplicate is still answered).
    pub max_backlog: u64,
    /// The database file this writer opened, checked before each commit.
    pub file: FileIdentity,
}

/// Which file a path named when the store opened it. If the file (or its directory) is deleted
/// or replaced while the gateway runs, SQLite goes on writing to the old, unlinked file: every
/// event acknowledged from then on would be gone at the next start. So each batch first checks
/// the path still names the same file, and fails (503 for its appends) if not.
pub(super) struct FileIdentity {
    path: std::path::PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    /// The file `path` names now.
    pub fn of(path: &std::path::Path) -> Result<FileIdentity, String> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(FileIdentity { path: path.to_path_buf(), device: metadata.dev(), inode: metadata.ino() })
    }

    /// `Err` with the reason when the path no longer names the opened file.
    fn check(&self) -> Result<(), String> {
        let same = FileIdentity::of(&self.path)
            .map(|now| (now.device, now.inode) == (self.device, self.inode))
            .unwrap_or(false);
        if same {
            Ok(())
        } else {
            Err(format!(
                "the database file {} was deleted or replaced while in use; nothing more is stored until tradehook is restarted",
                self.path.display()
            ))
        }
    }
}

/// Frames in the WAL (4 KiB pages each) at which the writer finishes the checkpoint so the log
/// restarts from its beginning: about 8 MiB, small enough to stay in the page cache.
pub(super) const RESTART_WAL_FRAMES: u32 = 2048;

thread_local! {
    /// Frames in the WAL after this thread's last commit, as SQLite's WAL hook reports them.
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// SQLite's WAL hook (a plain function, so it reports through the writer thread's local).
fn record_wal_frames(_: &Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(u32::try_from(frames).unwrap_or(0));
    Ok(())
}

/// Runs until `Close` or every sender is gone.
pub(super) fn run(mut writer: Writer, mut rx: mpsc::Receiver<Write>, backlog: &AtomicU64) {
    // Replaces SQLite's auto-checkpoint hook, which is off anyway (`wal_autocheckpoint = 0`).
    writer.conn.wal_hook(Some(record_wal_frames));
    let mut batch = Vec::with_capacity(writer.max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < writer.max_batch {
            match rx.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        if let Some(done) = writer.commit_batch(&mut batch, backlog) {
            // Refuse what arrives from now on; what was queued before Close has been committed.
            rx.close();
            while let Ok(write) = rx.try_recv() {
                refuse(write);
            }
            let _ = done.send(());
            return;
        }
        writer.restart_wal_if_long();
    }
}

fn refuse(write: Write) {
    let closed = || StoreError::Unavailable("the store is shutting down".into());
    match write {
        Write::Append(_, reply) => drop(reply.send(Err(closed()))),
        Write::Probe(reply) => drop(reply.send(Err(closed()))),
        Write::Exec(_, reply) => drop(reply.send(Err(closed()))),
        Write::Prune { reply, .. } => drop(reply.send(Err(closed()))),
        Write::Close(reply) => drop(reply.send(())),
    }
}

impl Writer {
    /// When the WAL has grown past [`RESTART_WAL_FRAMES`], checkpoints what is left of it so the
    /// next transaction writes the log from its start. Runs between batches, after answering:
    /// no acknowledgement waits for it. Busy (the checkpointer thread is mid-pass) or not yet
    /// complete: tried again after the next batch.
    fn restart_wal_if_long(&self) {
        if WAL_FRAMES.get() < RESTART_WAL_FRAMES {
            return;
        }
        let result = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match result {
            // Everything copied: the next transaction restarts the log; stop checking till then.
            Ok((0, log, copied)) if log == copied => WAL_FRAMES.set(0),
            Ok(_) => {}
            Err(error) => {
                if let Some(held_back) = CHECKPOINT_FAILURES.admit() {
                    tracing::warn!(%error, held_back, "WAL checkpoint by the writer failed; will retry");
                }
            }
        }
    }

    /// Commits one batch and answers it. Returns the `Close` reply if the batch asked to stop.
    fn commit_batch(&mut self, batch: &mut Vec<Write>, backlog: &AtomicU64) -> Option<oneshot::Sender<()>> {
        let started = std::time::Instant::now();
        let mut added = Vec::new();
        let waiting = backlog.load(Ordering::Relaxed);
        let file = self.file.check();
        let result = file.clone().and_then(|()| self.run_all(batch, waiting, &mut added).map_err(|error| error.to_string()));
        metrics::histogram!("tradehook_store_commit_seconds").record(started.elapsed().as_secs_f64());
        let mut outcomes = match result {
            Ok(outcomes) => {
                let accepted =
                    outcomes.iter().filter(|o| matches!(o, Outcome::Appended(Appended::Accepted(_)))).count();
                backlog.fetch_add(accepted as u64, Ordering::Relaxed);
                if accepted > 0 {
                    self.arrivals.notify_one();
                }
                // Deleted for good now: their event ids may be used again.
                for outcome in &outcomes {
                    if let Outcome::Pruned(gone) = outcome {
                        for (hash, seq) in gone {
                            if self.dedupe.get(*hash) == Some(*seq) {
                                self.dedupe.remove(*hash);
                            }
                        }
                    }
                }
                Ok(outcomes.into_iter())
            }
            Err(error) => {
                if let Some(held_back) = crate::store::COMMIT_FAILURES.admit() {
                    tracing::error!(%error, writes = batch.len(), held_back, "commit failed; answering 503 to the whole batch");
                }
                for hash in added {
                    self.dedupe.remove(hash);
                }
                // A sender's retry of an event committed before this batch is a duplicate still:
                // it gets its id, not a 503 to retry (not when the file itself is gone).
                let duplicates = batch
                    .iter()
                    .map(|write| match write {
                        Write::Append(event, _) if file.is_ok() => self.committed_duplicate(event),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                Err((error, duplicates.into_iter()))
            }
        };
        let mut next = || match &mut outcomes {
            Ok(outcomes) => Ok(outcomes.next().unwrap_or(Outcome::Nothing)),
            Err((message, duplicates)) => match duplicates.next().flatten() {
                Some(id) => Ok(Outcome::Appended(Appended::Duplicate(id))),
                None => Err(StoreError::Unavailable(message.clone())),
            },
        };
        let mut closing = None;
        let mut appends = 0u64;
        let mut probes = Vec::new();
        for write in batch.drain(..) {
            let outcome = next();
            match write {
                Write::Append(_, reply) => {
                    appends += 1;
                    let _ = reply.send(outcome.and_then(|o| match o {
                        Outcome::Appended(appended) => Ok(appended),
                        Outcome::Refused(refused) => Err(refused),
                        _ => Err(StoreError::Internal("lost an outcome".into())),
                    }));
                }
                Write::Exec(_, reply) => {
                    let _ = reply.send(outcome.and_then(|o| match o {
                        Outcome::Executed(result) => result.map_err(StoreError::Internal),
                        _ => Err(StoreError::Internal("lost an outcome".into())),
                    }));
                }
                Write::Probe(reply) => probes.push((reply, outcome)),
                Write::Prune { reply, .. } => {
                    let _ = reply.send(outcome.map(|o| match o {
                        Outcome::Pruned(gone) => gone.len() as u64,
                        _ => 0,
                    }));
                }
                Write::Close(reply) => closing = Some(reply),
            }
        }
        if appends > 0 {
            metrics::histogram!("tradehook_store_batch_size").record(appends as f64);
        }
        // Once everyone else is answered, and each in a transaction of its own: a probe that
        // finds the store full can make SQLite roll back its whole transaction, which must not
        // take appends that still fit with it.
        for (reply, outcome) in probes {
            let _ = reply.send(outcome.and_then(|_| {
                self.probe_alone()
                    .map_err(|error| StoreError::Unavailable(format!("the store has no room for an event: {error}")))
            }));
        }
        closing
    }

    /// Runs every write of the batch in one transaction and commits; all or nothing, except that
    /// a failing `Exec` is rolled back to its savepoint alone. Hashes added to the index are
    /// pushed to `added` so a failed commit can undo them. With `waiting` events pending, new
    /// events are refused once the backlog would pass `max_backlog`; duplicates are answered
    /// whatever the backlog, since they add nothing to it.
    fn run_all(
        &mut self,
        batch: &mut [Write],
        waiting: u64,
        added: &mut Vec<i64>,
    ) -> rusqlite::Result<Vec<Outcome>> {
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = 0u64;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (source, event_key, key_hash, event_type, received_at, client_ip, headers, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut queue = tx.prepare_cached("INSERT INTO pending (seq) VALUES (?1)")?;
            for write in batch.iter_mut() {
                match write {
                    Write::Append(event, _) => {
                        let hash = self.dedupe.hash(&event.source, &event.event_key);
                        if let Some(seq) = find_stored(&tx, &self.dedupe, hash, event)? {
                            outcomes.push(Outcome::Appended(Appended::Duplicate(event_id(seq))));
                            continue;
                        }
                        if waiting + accepted >= self.max_backlog {
                            outcomes.push(Outcome::Refused(StoreError::backlog_full(
                                waiting + accepted,
                                self.max_backlog,
                            )));
                            continue;
                        }
                        insert.execute(params![
                            event.source,
                            event.event_key,
                            hash,
                            event.event_type,
                            event.received_at,
                            event.client_ip,
                            event.headers,
                            &event.body[..],
                        ])?;
                        let seq = tx.last_insert_rowid();
                        queue.execute([seq])?;
                        if self.dedupe.insert(hash, seq) {
                            added.push(hash);
                        }
                        accepted += 1;
                        outcomes.push(Outcome::Appended(Appended::Accepted(event_id(seq))));
                    }
                    Write::Exec(work, _) => {
                        // Taken out of the request: it runs exactly once.
                        let work = std::mem::replace(work, Box::new(|_| Ok(0)));
                        outcomes.push(Outcome::Executed(in_savepoint(&tx, work)?));
                    }
                    // Run after the batch is answered, in a transaction of its own.
                    Write::Probe(_) => outcomes.push(Outcome::Nothing),
                    Write::Prune { cutoff, limit, .. } => {
                        let mut delete = tx.prepare_cached(
                            "DELETE FROM events WHERE seq IN (
                                 SELECT seq FROM events
                                 WHERE received_at < ?1
                                   AND EXISTS (SELECT 1 FROM processed p WHERE p.seq = events.seq)
                                   AND seq NOT IN (SELECT event_seq FROM dead_letters)
                                   AND seq NOT IN (SELECT event_seq FROM deliveries WHERE status IN ('pending', 'held'))
                                 ORDER BY received_at LIMIT ?2)
                             RETURNING key_hash, seq",
                        )?;
                        let gone = delete
                            .query_map(params![*cutoff, *limit], |row| Ok((row.get(0)?, row.get(1)?)))?
                            .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
                        let seqs: Vec<i64> = gone.iter().map(|(_, seq)| *seq).collect();
                        let mut forget = tx.prepare_cached("DELETE FROM processed WHERE seq = ?1")?;
                        for seq in &seqs {
                            forget.execute([seq])?;
                        }
                        super::delivery::prune(&tx, &seqs, *cutoff)?;
                        outcomes.push(Outcome::Pruned(gone));
                    }
                    Write::Close(_) => outcomes.push(Outcome::Nothing),
                }
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// The id of the committed event `event` repeats, if any (read outside any transaction).
    fn committed_duplicate(&self, event: &NewEvent) -> Option<String> {
        let hash = self.dedupe.hash(&event.source, &event.event_key);
        find_stored(&self.conn, &self.dedupe, hash, event).ok().flatten().map(event_id)
    }

    /// [`probe`] in a transaction of its own, committed: the WAL must take it too.
    fn probe_alone(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        probe(&tx)?;
        tx.commit()
    }
}

/// Runs `work` in its own savepoint: its failure is rolled back alone and reported, the writes
/// beside it in the transaction stay. `Err` only when the transaction itself is broken.
fn in_savepoint(
    tx: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<u64>,
) -> rusqlite::Result<Result<u64, String>> {
    tx.execute_batch("SAVEPOINT exec")?;
    match work(tx) {
        Ok(count) => {
            tx.execute_batch("RELEASE exec")?;
            Ok(Ok(count))
        }
        Err(error) => match tx.execute_batch("ROLLBACK TO exec; RELEASE exec") {
            Ok(()) => Ok(Err(error.to_string())),
            // SQLite rolled back the whole transaction (it may, on a full disk or database): the
            // batch fails with the cause, not with "no such savepoint".
            Err(_) => Err(error),
        },
    }
}

/// Room the readiness probe takes and gives back in its transaction: about a large event with its
/// headers. A store that cannot place this many bytes refuses events, so `/readyz` must fail.
const PROBE_ROOM: i64 = 16 * 1024;

/// The readiness probe: a tiny committed write plus [`PROBE_ROOM`] bytes placed and
/// removed again, which needs new pages (from the free list or by growing the file, within
/// `max_page_count`) as an append does. Without it a full store answered `/readyz` 200: updating
/// one small row needs no new page.
fn probe(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('probe', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![now_ms().to_string()],
    )?;
    tx.execute("INSERT INTO meta (key, value) VALUES ('probe_room', zeroblob(?1))", [PROBE_ROOM])?;
    tx.execute("DELETE FROM meta WHERE key = 'probe_room'", [])?;
    Ok(())
}

/// The seq of an already stored event with the same source and event id, if any.
fn find_stored(
    tx: &Connection,
    dedupe: &DedupeIndex,
    hash: i64,
    event: &NewEvent,
) -> rusqlite::Result<Option<i64>> {
    let Some(seq) = dedupe.get(hash) else { return Ok(None) };
    let mut same =
        tx.prepare_cached("SELECT 1 FROM events WHERE seq = ?1 AND source = ?2 AND event_key = ?3")?;
    if same.exists(params![seq, event.source, event.event_key])? {
        return Ok(Some(seq));
    }
    // A genuine 64-bit collision with another event id (or the first holder was pruned): look
    // the key up the slow way. Expected about once in 10^19 events per colliding pair.
    tracing::warn!(source = %event.source, "de-duplication hash collision; checking the table");
    tx.prepare_cached("SELECT seq FROM events WHERE key_hash = ?1 AND source = ?2 AND event_key = ?3")?
        .query_row(params![hash, event.source, event.event_key], |row| row.get(0))
        .optional()
}
