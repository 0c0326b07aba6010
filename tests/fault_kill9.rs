//! The proof that nothing is lost (issue 8): twenty `kill -9`s of the server process under
//! concurrent load, each followed by a restart. After the last restart and the backlog draining:
//! - every event that got `200 accepted` is stored, under the id it was given (0 acked lost);
//! - every stored event is processed;
//! - none was applied twice: a `*` subscription created before the load gets its outbox row in
//!   the same transaction as the event's "processed" mark, so an event processed twice would
//!   have two rows — each event has exactly one.
//!
//! Runs on SQLite and, with `TEST_POSTGRES_URL`, on PostgreSQL. Prints acked/stored/processed/
//! kills.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{Receiver, Script};
use common::*;
use serde_json::json;

const CYCLES: usize = 20;
const SENDERS: usize = 12;
/// Load before each kill.
const LOAD: Duration = Duration::from_millis(1000);

const ENV: [(&str, &str); 1] = [("TRADEHOOK_DELIVERY__ALLOW_PRIVATE_TARGETS", "true")];

/// One row per stored event of the `default` source: (event key, processed, outbox rows).
async fn processing_record(dir: &Path) -> Vec<(String, bool, i64)> {
    const POSTGRES_QUERY: &str = "SELECT e.event_key, e.processed_at IS NOT NULL, count(d.id)
        FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq
        WHERE e.source = 'default' GROUP BY e.seq, e.event_key, e.processed_at ORDER BY e.seq";
    // SQLite keeps the processed marks in their own narrow table.
    const SQLITE_QUERY: &str = "SELECT e.event_key, p.seq IS NOT NULL, count(d.id)
        FROM events e LEFT JOIN processed p ON p.seq = e.seq LEFT JOIN deliveries d ON d.event_seq = e.seq
        WHERE e.source = 'default' GROUP BY e.seq, e.event_key, p.seq ORDER BY e.seq";
    let url = store_url(dir);
    if postgres().is_some() {
        let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let rows = db.query(POSTGRES_QUERY, &[]).await.unwrap();
        return rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect();
    }
    let path = url.trim_start_matches("sqlite://").to_owned();
    tokio::task::spawn_blocking(move || {
        let db =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut statement = db.prepare(SQLITE_QUERY).unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap();
        rows.map(Result::unwrap).collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_9_under_load_lose_no_acked_event_and_apply_none_twice() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Script::Ok).await;

    // The subscription exists before any event, so every processed event queues one delivery.
    let first = ServerProcess::start_with_env(dir.path(), &ENV);
    let subscribed = api_post(first.addr, "/webhooks", json!({"url": receiver.url(), "events": ["*"]})).await;
    assert_eq!(subscribed.status, 201, "{}", subscribed.text);
    drop(first);

    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let cut_off = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut kills = 0;
    for cycle in 0..CYCLES {
        let mut server = ServerProcess::start_with_env(dir.path(), &ENV);
        let url = format!("http://{}/webhook", server.addr);
        let stop = Arc::new(AtomicBool::new(false));
        let (acked_here, cut_off_here, refused_here) = (acked.clone(), cut_off.clone(), refused.clone());
        let seen = Arc::new(move |(key, answer): LoadAnswer| match answer {
            Some((200, json)) if json["status"] == "accepted" => {
                acked_here.lock().unwrap().push((key, json["id"].as_str().unwrap().to_string()));
            }
            // "Cannot store now" is an honest refusal, not a promise.
            Some((503, _)) => {
                refused_here.fetch_add(1, Ordering::Relaxed);
            }
            Some((status, json)) => panic!("{key}: unexpected {status} {json}"),
            // Cut off by the kill: never acknowledged, so no promise was made.
            None => {
                cut_off_here.fetch_add(1, Ordering::Relaxed);
            }
        });
        let senders = send_until_stopped(&url, SENDERS, &format!("c{cycle}"), &stop, seen);
        tokio::time::sleep(LOAD).await;
        server.kill9();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > CYCLES * 50, "too little load to prove anything: {}", acked.len());

    // The last restart drains the backlog left by the kills.
    let mut server = ServerProcess::start_with_env(dir.path(), &ENV);
    wait_processed(server.addr).await;
    let stored = stored_events(server.addr).await;
    let lost: Vec<_> = acked.iter().filter(|(key, id)| stored.get(id) != Some(key)).collect();
    assert!(lost.is_empty(), "{} of {} acked events lost, e.g. {:?}", lost.len(), acked.len(), &lost[..1]);
    // Stopped the same way: what was committed is what the store holds. (A graceful stop may
    // wait up to 2 × 10 s for deliveries in flight to the receiver, longer than the helper waits.)
    server.kill9();

    let record = processing_record(dir.path()).await;
    assert_eq!(record.len(), stored.len(), "the API and the store disagree");
    let unprocessed: Vec<_> = record.iter().filter(|(_, processed, _)| !processed).collect();
    assert!(
        unprocessed.is_empty(),
        "{} stored events not processed, e.g. {:?}",
        unprocessed.len(),
        unprocessed[0]
    );
    let twice: Vec<_> = record.iter().filter(|(_, _, outbox)| *outbox != 1).collect();
    assert!(twice.is_empty(), "{} events not applied exactly once, e.g. {:?}", twice.len(), twice[0]);
    let mut keys: Vec<_> = record.iter().map(|(key, ..)| key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), record.len(), "an event key was stored twice");

    let processed = record.iter().filter(|(_, processed, _)| *processed).count();
    eprintln!(
        "fault_kill9: acked {}, stored {}, processed {}, applied twice 0, acked lost 0, kills {kills} (+1 to stop), \
         requests cut off by a kill {}, refused 503 {}, {SENDERS} senders, {:.1} s",
        acked.len(),
        stored.len(),
        processed,
        cut_off.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
