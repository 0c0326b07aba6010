//! Tests of the SQLite store against real database files.

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
    assert_eq!(stored.payload_json()["event"], "order.updated");
    assert_eq!(stored.processed_at, None);
    assert_eq!(store.backlog(), 1);
}

#[tokio::test]
async fn duplicate_answers_with_the_first_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
    let first = store.append(event("a")).await.unwrap();
    let again = store.append(event("a")).await.unwrap();
    let (Appended::Accepted(a), Appended::Duplicate(b)) = (first, again) else { panic!("wrong outcomes") };
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
        SqliteStore::open(&dir.path().join("t.db"), SqliteOptions { max_backlog: 2, ..options() }).unwrap();
    store.append(event("a")).await.unwrap();
    store.append(event("b")).await.unwrap();
    assert!(matches!(store.append(event("c")).await, Err(StoreError::Saturated(_))));
    // A sender retrying an event it sent before gets its id, not a 503 it would retry forever.
    assert!(matches!(store.append(event("a")).await, Ok(Appended::Duplicate(id)) if id == "evt_1"));
}

/// Many appends at once share the writer's batches: the limit still holds exactly.
#[tokio::test]
async fn concurrent_appends_never_pass_the_backlog_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("t.db"), SqliteOptions { max_backlog: 50, ..options() }).unwrap();
    let answers = futures::future::join_all((0..200).map(|i| store.append(event(&format!("k{i}"))))).await;
    let accepted = answers.iter().filter(|a| matches!(a, Ok(Appended::Accepted(_)))).count();
    let refused = answers.iter().filter(|a| matches!(a, Err(StoreError::Saturated(_)))).count();
    assert_eq!((accepted, refused), (50, 150));
    assert_eq!(store.backlog(), 50);
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
    let tv = store.events(EventFilter { source: Some("tv".into()), limit: 100, ..Default::default() }).await;
    assert_eq!(tv.unwrap().len(), 1);
    let page = store
        .events(EventFilter { before_seq: Some(all[1].seq), limit: 2, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![all[2].seq, all[3].seq]);
    let typed = store
        .events(EventFilter { event_type: Some("order.updated".into()), limit: 100, ..Default::default() })
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

/// A store that cannot place an event is not writable, even though one small row could still be
/// updated in place (what the probe alone used to do).
#[tokio::test]
async fn probe_fails_once_events_no_longer_fit_and_passes_with_room_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, SqliteOptions { max_page_count: Some(64), ..options() }).unwrap();
    store.check_writable().await.unwrap();
    let mut stored = 0;
    loop {
        let mut filler = event(&format!("fill-{stored}"));
        filler.body = Bytes::from(vec![b'x'; 1024]);
        match store.append(filler).await {
            Ok(Appended::Accepted(_)) => stored += 1,
            Err(StoreError::Unavailable(reason)) if reason.contains("full") => break,
            other => panic!("expected accepted or full, got {other:?}"),
        }
        assert!(stored < 1000, "a 64-page store took {stored} events of 1 KiB");
    }
    match store.check_writable().await {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("full"), "{reason}"),
        other => panic!("a store that refuses 1 KiB events passed the probe: {other:?}"),
    }
    // The failed probe changed nothing: every stored event is still there.
    assert_eq!(store.backlog(), stored);
    store.close().await;
    drop(store);
    // With room again (no cap), the same file passes.
    let store = SqliteStore::open(&path, options()).unwrap();
    store.check_writable().await.unwrap();
    assert!(matches!(store.append(event("after")).await, Ok(Appended::Accepted(_))));
}

#[tokio::test]
async fn full_database_answers_unavailable_then_recovers_for_small_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, SqliteOptions { max_page_count: Some(64), ..options() }).unwrap();
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
    // The rolled-back event's index entry was undone: the same event id is new, not a duplicate.
    let mut again = event("big");
    again.body = Bytes::from_static(b"{}");
    assert!(matches!(store.append(again).await, Ok(Appended::Accepted(_))));
}

#[tokio::test]
async fn duplicates_are_recognised_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, options()).unwrap();
    let Appended::Accepted(first) = store.append(event("keep")).await.unwrap() else {
        panic!("not accepted")
    };
    store.close().await;
    drop(store);
    let reopened = SqliteStore::open(&path, options()).unwrap();
    assert_eq!(reopened.append(event("keep")).await.unwrap(), Appended::Duplicate(first));
    let mut other_source = event("keep");
    other_source.source = "tv".into();
    assert!(matches!(reopened.append(other_source).await.unwrap(), Appended::Accepted(_)));
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let _first = SqliteStore::open(&path, options()).unwrap();
    match SqliteStore::open(&path, options()) {
        Err(StoreError::Unavailable(reason)) => {
            assert!(reason.contains("another tradehook process"), "{reason}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a database that is in use"),
    }
}

#[tokio::test]
async fn ids_are_stable_and_unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
    let Appended::Accepted(id) = store.append(event("a")).await.unwrap() else { panic!("not accepted") };
    assert_eq!(store.event(&id).await.unwrap().unwrap().id, id);
    for bad in ["evt_0", "evt_-1", "evt_x", "123", "", "evt_99999999999999999999"] {
        assert!(store.event(bad).await.unwrap().is_none(), "{bad}");
    }
}

#[tokio::test]
async fn prune_removes_only_old_processed_events_and_frees_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
    let day = 24 * 3600 * 1000;
    let mut old_done = event("old-done");
    old_done.received_at -= 40 * day;
    let mut old_pending = event("old-pending");
    old_pending.received_at -= 40 * day;
    let mut old_dead = event("old-dead");
    old_dead.received_at -= 40 * day;
    let fresh = event("fresh");
    let mut seqs = Vec::new();
    for e in [old_done, old_pending, old_dead, fresh] {
        let Appended::Accepted(id) = store.append(e).await.unwrap() else { panic!("not accepted") };
        seqs.push(id.trim_start_matches("evt_").parse::<i64>().unwrap());
    }
    let batch = crate::store::ProcessedBatch {
        processed: vec![(seqs[0], "applied"), (seqs[3], "applied")],
        dead: vec![crate::store::NewDeadLetter {
            seq: seqs[2],
            reason: "bad".into(),
            attempts: 1,
            last_error: "bad".into(),
            history: "[]".into(),
            ordering_key: None,
        }],
        ..Default::default()
    };
    store.commit_processed(batch).await.unwrap();

    let cutoff = now_ms() - 30 * day;
    assert_eq!(store.prune(cutoff, 100).await.unwrap(), 1, "only the old processed event goes");
    assert!(store.event(&format!("evt_{}", seqs[0])).await.unwrap().is_none());
    for kept in &seqs[1..] {
        assert!(store.event(&format!("evt_{kept}")).await.unwrap().is_some(), "evt_{kept} kept");
    }
    // Its id is no longer a duplicate; the others still are.
    assert!(matches!(store.append(event("old-done")).await.unwrap(), Appended::Accepted(_)));
    assert!(matches!(store.append(event("fresh")).await.unwrap(), Appended::Duplicate(_)));
    assert_eq!(store.prune(cutoff, 100).await.unwrap(), 0);
}

#[tokio::test]
async fn a_replayed_event_is_due_from_its_replay_not_its_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
    let mut old = event("old");
    old.received_at = now_ms() - 60_000;
    let Appended::Accepted(id) = store.append(old).await.unwrap() else { panic!("not accepted") };
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending[0].due_at, pending[0].received_at, "first pass: due on arrival");
    let batch = ProcessedBatch { processed: vec![(pending[0].seq, "applied")], ..ProcessedBatch::default() };
    store.commit_processed(batch).await.unwrap();
    let before = now_ms();
    assert!(store.replay_event(&id).await.unwrap());
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].due_at >= before, "lag counts from the replay: {} < {before}", pending[0].due_at);
}

/// A file written before processing marks moved to their own tables opens with its processed
/// events still processed (with their outcome and time) and its pending ones still pending.
#[tokio::test]
async fn a_database_from_before_the_processing_tables_keeps_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        let at = now_ms() - 1_000;
        let rows = [("a", Some(at), Some("applied")), ("b", None, None), ("c", Some(at), None)];
        for (hash, (key, processed, outcome)) in (1i64..).zip(rows) {
            conn.execute(
                "INSERT INTO events (source, event_key, key_hash, event_type, received_at, client_ip, headers, body,
                                     processed_at, outcome)
                 VALUES ('default', ?1, ?2, 'order.updated', ?3, '127.0.0.1', '{}', ?4, ?5, ?6)",
                rusqlite::params![key, hash, at, b"{}".to_vec(), processed, outcome],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path, options()).unwrap();
    assert_eq!(store.backlog(), 1);
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let progress = store.progress(0, 10).await.unwrap();
    let shown: Vec<(bool, Option<&str>)> =
        progress.iter().map(|p| (p.processed, p.outcome.as_deref())).collect();
    assert_eq!(shown, vec![(true, Some("applied")), (false, None), (true, Some("applied"))]);
    assert!(store.event("evt_1").await.unwrap().unwrap().processed_at.is_some());
    assert!(store.event("evt_2").await.unwrap().unwrap().processed_at.is_none());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.events, stats.backlog, stats.processed), (3, 1, 2));
    // Processing the pending one leaves nothing due, and its mark is the new kind.
    let batch = ProcessedBatch { processed: vec![(2, "stored")], ..ProcessedBatch::default() };
    assert_eq!(store.commit_processed(batch).await.unwrap(), 1);
    assert!(store.pending(10).await.unwrap().is_empty());
    assert_eq!(store.progress(1, 1).await.unwrap()[0].outcome.as_deref(), Some("stored"));
}

/// Unblocking the events behind a dead letter reads the ordering key's index, not the whole
/// backlog: with a million events waiting, a scan of `pending` would hold the writer (and every
/// acknowledgement) for as long as it takes.
#[tokio::test]
async fn unblocking_an_ordering_key_uses_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, options()).unwrap();
    store.append(event("one")).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", super::processing::UNBLOCK_SQL))
        .unwrap()
        .query_map(rusqlite::params!["BTCUSDT", 0], |row| row.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        plan.first().is_some_and(|step| step.starts_with("SEARCH events USING INDEX events_ordering_key (ordering_key=?")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|step| step.starts_with("SCAN")), "{plan:?}");
}

/// A dead letter releases the events of its ordering key that were deferred behind it (they are
/// due at once), and only those.
#[tokio::test]
async fn a_dead_letter_releases_the_events_deferred_behind_it() {
    use crate::store::processing::{Deferral, NewDeadLetter};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), options()).unwrap();
    let mut seqs = Vec::new();
    for key in ["blocking", "behind", "other-key"] {
        let Appended::Accepted(id) = store.append(event(key)).await.unwrap() else { panic!("not accepted") };
        seqs.push(seq_of(&id).unwrap());
    }
    let (blocking, behind, other) = (seqs[0], seqs[1], seqs[2]);
    let in_an_hour = now_ms() + 3_600_000;
    let deferred = [(behind, "BTCUSDT"), (other, "ETHUSDT")]
        .map(|(seq, key)| Deferral { seq, ordering_key: key.into(), until: in_an_hour })
        .to_vec();
    store.commit_processed(ProcessedBatch { deferred, ..Default::default() }).await.unwrap();
    let due = |events: Vec<PendingEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(due(store.pending(10).await.unwrap()), [blocking]);

    let dead = NewDeadLetter {
        seq: blocking,
        reason: "retries exhausted".into(),
        attempts: 3,
        last_error: "boom".into(),
        history: "[]".into(),
        ordering_key: Some("BTCUSDT".into()),
    };
    store.commit_processed(ProcessedBatch { dead: vec![dead], ..Default::default() }).await.unwrap();
    assert_eq!(due(store.pending(10).await.unwrap()), [behind], "only BTCUSDT's waiting event goes ahead");
}

/// Two names for one database (a symlink to the file or to its directory) share one lock: a
/// second process by the other name would keep its own de-duplication index and store an event
/// twice.
#[tokio::test]
async fn a_second_name_for_the_same_database_is_refused_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("data");
    std::fs::create_dir(&real).unwrap();
    let _store = SqliteStore::open(&real.join("t.db"), options()).unwrap();
    std::os::unix::fs::symlink(real.join("t.db"), dir.path().join("alias.db")).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("linked")).unwrap();
    for alias in [dir.path().join("alias.db"), dir.path().join("linked/t.db")] {
        let error = SqliteStore::open(&alias, options()).err().expect("a second writer must be refused");
        assert!(error.to_string().contains("in use by another tradehook process"), "{error}");
    }
}

/// The database deleted under a running gateway: SQLite would go on writing to the unlinked file,
/// so each acknowledged event would be lost at the next start. Appends and the writability probe
/// fail instead, naming the file.
#[tokio::test]
async fn a_database_deleted_while_in_use_stores_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data.join("t.db"), options()).unwrap();
    store.append(event("before")).await.unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    let error = store.append(event("after")).await.expect_err("no ack once the file is gone");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("deleted or replaced"), "{error}");
    assert!(store.check_writable().await.is_err());
}
