//! What only a shared store must do, against a real PostgreSQL (`TEST_POSTGRES_URL`; `.ci/run`
//! sets it): two nodes — two stores on one database — storing the same event at once, starting
//! at once, processing in turn under the lease, and claiming deliveries.
//!
//! Without `TEST_POSTGRES_URL` (the SQLite pass of the suite) these tests say so and pass: there
//! is nothing shared to test.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tradehook::config::Config;
use tradehook::server;
use tradehook::store::{
    now_ms, Appended, DeliveryNext, DeliveryResult, Lease, NewDelivery, NewEvent, ProcessedBatch,
    SharedStore, StoreError,
};

fn skip() -> bool {
    if common::postgres().is_none() {
        eprintln!("skipped: set TEST_POSTGRES_URL to run the shared-store tests");
        return true;
    }
    false
}

/// One node's store on the database of `dir`, with a lease of `lease`.
async fn node(dir: &Path, lease: Duration) -> SharedStore {
    let mut config = Config::default();
    config.store.url = common::store_url(dir);
    config.store.lease = lease;
    server::open_store(&config).await.unwrap()
}

fn event(key: &str) -> NewEvent {
    NewEvent {
        source: "default".into(),
        event_key: key.into(),
        event_type: Some("test".into()),
        body: Bytes::from(format!(r#"{{"id":"{key}","event":"test"}}"#)),
        headers: "{}".into(),
        client_ip: "127.0.0.1".into(),
        received_at: now_ms(),
    }
}

fn seq(appended: &Appended) -> i64 {
    let (Appended::Accepted(id) | Appended::Duplicate(id)) = appended;
    id.trim_start_matches("evt_").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_at_once_migrate_once() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(10);
    let (a, b) = tokio::join!(node(dir.path(), lease), node(dir.path(), lease));
    // Both work on the one schema.
    assert!(matches!(a.append(event("m1")).await.unwrap(), Appended::Accepted(_)));
    assert!(matches!(b.append(event("m1")).await.unwrap(), Appended::Duplicate(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_sent_to_two_nodes_at_once_is_stored_once_with_one_id() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), Duration::from_secs(10)).await;
    let b = node(dir.path(), Duration::from_secs(10)).await;
    let sends = (0..300).map(|i| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let key = format!("k{i}");
            let (x, y) = tokio::join!(a.append(event(&key)), b.append(event(&key)));
            (x.unwrap(), y.unwrap())
        }
    });
    for (x, y) in futures::future::join_all(sends).await {
        let accepted = [&x, &y].iter().filter(|o| matches!(o, Appended::Accepted(_))).count();
        assert_eq!(accepted, 1, "exactly one node stores it: {x:?} {y:?}");
        assert_eq!(seq(&x), seq(&y), "both answers carry the first id");
    }
    assert_eq!(a.stats().await.unwrap().events, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_commits_and_a_lapsed_holder_is_fenced_off() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(1);
    let a = node(dir.path(), lease).await;
    let b = node(dir.path(), lease).await;
    let first = seq(&a.append(event("e1")).await.unwrap());
    let second = seq(&a.append(event("e2")).await.unwrap());

    assert_eq!(a.processing_lease().await.unwrap(), Lease::Held { fresh: true });
    assert_eq!(b.processing_lease().await.unwrap(), Lease::Standby);
    let done = |seq| ProcessedBatch { processed: vec![(seq, "applied")], ..ProcessedBatch::default() };
    assert!(matches!(b.commit_processed(done(first)).await, Err(StoreError::Unavailable(_))));
    assert_eq!(a.commit_processed(done(first)).await.unwrap(), 1);

    // A stalls past its lease; B takes over, loads the state and processes.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(b.processing_lease().await.unwrap(), Lease::Held { fresh: true });
    assert_eq!(b.commit_processed(done(second)).await.unwrap(), 1);
    // A wakes up with work decided from its old state: fenced off, nothing of it commits.
    let stale = ProcessedBatch { processed: vec![(second, "applied")], ..ProcessedBatch::default() };
    let refused = a.commit_processed(stale).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(ref m)) if m.contains("another node")),
        "{refused:?}"
    );
    assert_eq!(a.processing_lease().await.unwrap(), Lease::Standby);
    assert_eq!(a.stats().await.unwrap().backlog, 0);
}

/// Stores `count` events on `node` and processes them, each with one delivery to a NATS subject
/// queued; their seqs.
async fn queue_deliveries(node: &SharedStore, count: usize) -> Vec<i64> {
    let mut batch = ProcessedBatch::default();
    for i in 0..count {
        let seq = seq(&node.append(event(&format!("d{i}"))).await.unwrap());
        batch.processed.push((seq, "applied"));
        let target = "nats:test".into();
        batch.deliveries.push(NewDelivery { seq, target, webhook_id: None, held: false, payload: None });
    }
    assert!(matches!(node.processing_lease().await.unwrap(), Lease::Held { .. }));
    let seqs = batch.processed.iter().map(|(seq, _)| *seq).collect();
    node.commit_processed(batch).await.unwrap();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_claim_disjoint_deliveries_and_take_over_a_dead_nodes_claims() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), Duration::from_secs(10)).await;
    let b = node(dir.path(), Duration::from_secs(10)).await;
    queue_deliveries(&a, 200).await;

    let now = now_ms();
    let none = HashSet::new();
    let (x, y) = tokio::join!(a.due_deliveries(now, 150, &none), b.due_deliveries(now, 150, &none));
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids_x: HashSet<i64> = x.iter().map(|d| d.id).collect();
    let ids_y: HashSet<i64> = y.iter().map(|d| d.id).collect();
    assert!(ids_x.is_disjoint(&ids_y), "no delivery is claimed by both nodes");
    assert_eq!(ids_x.len() + ids_y.len(), 200);
    assert!(
        a.due_deliveries(now, 500, &none).await.unwrap().is_empty(),
        "claimed deliveries are not due again"
    );

    // A commits its results; B dies with its claims. Once they run out, A takes them over.
    let results = x
        .iter()
        .map(|d| DeliveryResult {
            delivery_id: Some(d.id),
            seq: Some(d.seq),
            webhook_id: None,
            attempts: 0,
            history: "[]".into(),
            attempt: None,
            next: DeliveryNext::Delivered,
            settles_intent: false,
        })
        .collect();
    a.commit_deliveries(results, Vec::new()).await.unwrap();
    drop(b);
    let later = now + 10 * 60 * 1000;
    let taken: HashSet<i64> =
        a.due_deliveries(later, 500, &none).await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(taken, ids_y, "only the dead node's unfinished deliveries come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_result_is_being_committed_is_not_claimed_again_and_waits_for_nothing_after() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), Duration::from_secs(10)).await;
    let seq = queue_deliveries(&a, 1).await[0];
    let none = HashSet::new();
    let claimed = a.due_deliveries(now_ms(), 10, &none).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let id = claimed[0].id;

    // The attempt failed and its retry is due at once; while the dispatcher still counts it in
    // flight (the commit done, the news not yet back), it reads again.
    let retry = DeliveryResult {
        delivery_id: Some(id),
        seq: Some(seq),
        webhook_id: None,
        attempts: 1,
        history: "[]".into(),
        attempt: None,
        next: DeliveryNext::Retry { at: now_ms() },
        settles_intent: false,
    };
    a.commit_deliveries(vec![retry], Vec::new()).await.unwrap();
    let in_flight = HashSet::from([id]);
    assert!(a.due_deliveries(now_ms(), 10, &in_flight).await.unwrap().is_empty(), "not handed out twice");
    // Its next read, once it knows the commit: due now, not after a claim taken meanwhile.
    let again = a.due_deliveries(now_ms(), 10, &none).await.unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id], "claimable at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_many_times_at_once_on_one_node_is_stored_once() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), Duration::from_secs(10)).await;
    // Concurrent appends share batches: the same id lands in one INSERT several times.
    let answers = futures::future::join_all((0..50).map(|_| a.append(event("same"))))
        .await
        .into_iter()
        .map(Result::unwrap);
    let answers: Vec<Appended> = answers.collect();
    assert_eq!(answers.iter().filter(|o| matches!(o, Appended::Accepted(_))).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|o| seq(o) == seq(&answers[0])), "{answers:?}");
    assert_eq!(a.stats().await.unwrap().events, 1);
}

/// A connection of the test's own to the database the nodes of `dir` share.
async fn connect(dir: &Path) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&common::store_url(dir), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The schema version the database records.
async fn schema_version(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT max(version) FROM tradehook_schema", &[]).await.unwrap().get(0)
}

/// Whether the ordering-key index exists and is valid (`None`: it does not exist).
async fn ordering_key_index_valid(db: &tokio_postgres::Client) -> Option<bool> {
    db.query_opt("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('events_ordering_key')", &[])
        .await
        .unwrap()
        .map(|row| row.get(0))
}

/// A node on a fresh database, the test's own connection to it and its schema version.
async fn node_and_database(dir: &Path, lease: Duration) -> (SharedStore, tokio_postgres::Client, i64) {
    let node = node(dir, lease).await;
    let db = connect(dir).await;
    let version = schema_version(&db).await;
    (node, db, version)
}

/// Takes the database back to schema version 1, from before the ordering-key index (migration 2).
const BEFORE_ORDERING_KEY_INDEX: &str = "DELETE FROM tradehook_schema WHERE version >= 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_upgrading_the_schema_does_not_stop_the_others_storing_events() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(10);
    let (running, db, version) = node_and_database(dir.path(), lease).await;
    db.batch_execute(&format!("DROP INDEX events_ordering_key; {BEFORE_ORDERING_KEY_INDEX}")).await.unwrap();

    // A write to `events` still open when the upgrade starts: an index build must wait for it. A
    // plain CREATE INDEX would queue for a lock that every INSERT after it then queues behind.
    let mut writer = connect(dir.path()).await;
    let open = writer.transaction().await.unwrap();
    open.execute(
        "INSERT INTO events (source, event_key, received_at, client_ip, headers, body)
         VALUES ('default', 'open-write', 0, '127.0.0.1', '{}', '\\x7b7d')",
        &[],
    )
    .await
    .unwrap();
    let path = dir.path().to_owned();
    let upgrading = tokio::spawn(async move { node(&path, lease).await });
    common::eventually(10, "the upgrade builds the index", || async {
        let building: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
                   AND query LIKE '%CREATE INDEX%events_ordering_key%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (building == 1).then_some(())
    })
    .await;

    // Meanwhile the running node stores events as usual.
    let stored = tokio::time::timeout(Duration::from_secs(5), running.append(event("during-upgrade"))).await;
    assert!(
        matches!(stored, Ok(Ok(Appended::Accepted(_)))),
        "an append waited for the index build: {stored:?}"
    );

    open.commit().await.unwrap();
    let upgraded = tokio::time::timeout(Duration::from_secs(30), upgrading).await.unwrap().unwrap();
    assert_eq!(ordering_key_index_valid(&db).await, Some(true));
    assert_eq!(schema_version(&db).await, version);
    assert!(matches!(upgraded.append(event("during-upgrade")).await.unwrap(), Appended::Duplicate(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_left_invalid_by_an_interrupted_upgrade_is_done_again() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(10);
    let (first, db, version) = node_and_database(dir.path(), lease).await;
    // What a concurrent build interrupted half-way (a crash, a cancel) leaves behind.
    db.batch_execute(&format!(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass('events_ordering_key');
         {BEFORE_ORDERING_KEY_INDEX}"
    ))
    .await
    .unwrap();
    assert_eq!(ordering_key_index_valid(&db).await, Some(false));
    drop(first);

    let again = node(dir.path(), lease).await;
    assert_eq!(ordering_key_index_valid(&db).await, Some(true), "the invalid index was kept");
    assert_eq!(schema_version(&db).await, version);
    assert!(matches!(again.append(event("after")).await.unwrap(), Appended::Accepted(_)));
}

/// Reads forward from `after` with `read` until `done` is set and a read finds nothing new;
/// returns every seq seen, in the order seen.
async fn tail<F, Fut>(done: std::sync::Arc<std::sync::atomic::AtomicBool>, read: F) -> Vec<i64>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Vec<i64>>,
{
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let page = read(after).await;
        if let Some(last) = page.last() {
            after = *last;
        }
        let empty = page.is_empty();
        seen.extend(page);
        if finished && empty {
            return seen;
        }
        if empty {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Tailing (`/api/v1/events?after=`, the live feed, `events tail`) sees every event once, in
/// order, though several batches on two nodes commit at once and their seqs become visible out
/// of order: a reader that moved past a seq still being committed would never see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_while_batches_commit_at_once_misses_no_event() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), Duration::from_secs(10)).await;
    let b = node(dir.path(), Duration::from_secs(10)).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let events_tail = tokio::spawn(tail(done.clone(), {
        let a = a.clone();
        move |after| {
            let a = a.clone();
            async move {
                let filter = tradehook::store::EventFilter {
                    after_seq: Some(after),
                    limit: 1000,
                    ..Default::default()
                };
                a.events(filter).await.unwrap().iter().map(|e| e.seq).collect()
            }
        }
    }));
    let progress_tail = tokio::spawn(tail(done.clone(), {
        let b = b.clone();
        move |after| {
            let b = b.clone();
            async move { b.progress(after, 1000).await.unwrap().iter().map(|e| e.seq).collect() }
        }
    }));
    let senders: Vec<_> = (0..16)
        .map(|sender| {
            let node = if sender % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut stored = Vec::new();
                for n in 0..150 {
                    stored.push(seq(&node.append(event(&format!("t{sender}-{n}"))).await.unwrap()));
                }
                stored
            })
        })
        .collect();
    let mut stored = Vec::new();
    for sender in senders {
        stored.extend(sender.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    stored.sort_unstable();
    for (name, seen) in [("events", events_tail.await.unwrap()), ("progress", progress_tail.await.unwrap())] {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{name}: in order, each once");
        let missed: Vec<_> = stored.iter().filter(|s| seen.binary_search(s).is_err()).collect();
        assert!(
            missed.is_empty(),
            "{name} tail missed {} of {} events: {missed:?}",
            missed.len(),
            stored.len()
        );
    }
}

/// With the backlog at its limit a new event is refused, but a sender retrying one it sent
/// before gets its id (a duplicate adds nothing to the backlog), not a 503 it would retry until
/// the backlog drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_answered_while_the_backlog_is_full() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.url = common::store_url(dir.path());
    config.store.max_backlog = 2;
    let store = server::open_store(&config).await.unwrap();
    let first = store.append(event("a")).await.unwrap();
    store.append(event("b")).await.unwrap();
    assert!(matches!(store.append(event("c")).await, Err(StoreError::Saturated(_))));
    let again = store.append(event("a")).await.unwrap();
    assert!(matches!(again, Appended::Duplicate(_)), "{again:?}");
    assert_eq!(seq(&again), seq(&first));
}

/// A node on the database of `dir`, reached by `host` with these TLS parameters.
async fn node_over(dir: &Path, host: &str, tls: &str) -> Result<SharedStore, String> {
    let url = common::store_url(dir).replacen("127.0.0.1", host, 1);
    let mut config = Config::default();
    config.store.url = format!("{url}?{tls}");
    server::open_store(&config).await.map_err(|e| e.to_string())
}

/// Of tradehook's connections to the database of `dir`: (encrypted, all).
async fn encrypted_connections(db: &tokio_postgres::Client) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = current_database() AND a.application_name = 'tradehook'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_encrypted_and_checked_as_sslmode_says() {
    if skip() {
        return;
    }
    // The local server's own (self-signed) certificate is the root to trust.
    let dir = tempfile::tempdir().unwrap();
    let db = connect(dir.path()).await;
    let on: String = db.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(on, "on", "this test needs TLS enabled on the test PostgreSQL server (ssl = on)");
    let cert: String = db.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let trusted = format!("sslrootcert={cert}");

    // verify-full: the chain leads to the root and the certificate names the host.
    let node = node_over(dir.path(), "localhost", &format!("sslmode=verify-full&{trusted}")).await.unwrap();
    assert!(matches!(node.append(event("over-tls")).await.unwrap(), Appended::Accepted(_)));
    let (encrypted, all) = encrypted_connections(&db).await;
    assert!(all > 0 && encrypted == all, "{encrypted} of {all} connections encrypted");
    drop(node);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca does not.
    let refused =
        node_over(dir.path(), "127.0.0.1", &format!("sslmode=verify-full&{trusted}")).await.err().unwrap();
    assert!(refused.contains("certificate not valid for name \"127.0.0.1\""), "{refused}");
    node_over(dir.path(), "127.0.0.1", &format!("sslmode=verify-ca&{trusted}")).await.unwrap();

    // A root the server's certificate does not lead to.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_root = dir.path().join("other-root.pem");
    std::fs::write(&other_root, other.cert.pem()).unwrap();
    let refused = node_over(
        dir.path(),
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", other_root.display()),
    )
    .await
    .err()
    .unwrap();
    assert!(refused.contains("invalid peer certificate"), "{refused}");
    assert!(refused.contains("error performing TLS handshake"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_connects_in_the_clear() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = connect(dir.path()).await;
    let node = node_over(dir.path(), "127.0.0.1", "sslmode=disable").await.unwrap();
    assert!(matches!(node.append(event("clear")).await.unwrap(), Appended::Accepted(_)));
    let (encrypted, all) = encrypted_connections(&db).await;
    assert!(all > 0 && encrypted == 0, "{encrypted} of {all} connections encrypted");
}

/// A subscription deleted while a processing transaction queues a delivery to it: the
/// processing commit holds the subscription row (`FOR KEY SHARE`, as `delivery::queue` does),
/// the delete waits for it, and then also removes what it queued — no orphan delivery (with the
/// waiting deliveries deleted before the row, the queued one stayed and went to the DLQ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_waiting_on_a_processing_commit_drops_what_it_queued() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), Duration::from_secs(5)).await;
    let subscription = tradehook::delivery::subscription::Subscription::new(
        "wh_racing".into(),
        "https://example.com/hook".into(),
        vec!["*".into()],
        "whsec_x".into(),
        now_ms(),
    );
    node.create_subscription(subscription).await.unwrap();
    let mut db = connect(dir.path()).await;
    // What a processing commit does for a delivery to the subscription, left open.
    let processing = db.transaction().await.unwrap();
    let locked = processing
        .query("SELECT 1 FROM subscriptions WHERE id = 'wh_racing' FOR KEY SHARE", &[])
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);
    processing
        .execute(
            "INSERT INTO deliveries (event_seq, target, webhook_id, status, next_attempt_at, created_at)
             VALUES (1, 'forward:wh_racing', 'wh_racing', 'pending', 0, 0)",
            &[],
        )
        .await
        .unwrap();
    let deleting = {
        let node = node.clone();
        tokio::spawn(async move { node.delete_subscription("wh_racing").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!deleting.is_finished(), "the delete waits for the processing commit");
    processing.commit().await.unwrap();
    assert!(deleting.await.unwrap().unwrap(), "deleted");
    let left: i64 = db
        .query_one("SELECT count(*) FROM deliveries WHERE webhook_id = 'wh_racing'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no delivery left for the deleted subscription");
}
