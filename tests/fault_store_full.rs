//! A full SQLite store seen over HTTP (issue 8): the database is capped (`max_page_count`, set
//! on the store the test opens itself — there is no configuration key for it) and filled by
//! concurrent senders of large events. Ingest answers `503` with `Retry-After`, never a `200` for
//! an event that is not stored; the failed batches roll back whole, so smaller events still fit
//! and an event id that got a `503` is new, not a duplicate, when it is sent again.
//!
//! SQLite only: PostgreSQL's disk-full path is the database's, see `tests/postgres_outage.rs`
//! for a database that cannot take writes.

mod common;

use std::sync::Arc;

use common::*;
use http::Method;
use tokio_util::sync::CancellationToken;
use tradehook::ingest::signature::Scheme;
use tradehook::server::{self, AppState, Setup};
use tradehook::store::sqlite::{SqliteOptions, SqliteStore};
use tradehook::store::SharedStore;

/// Database cap in pages (4 KiB each): room for a few dozen large events after the schema.
const MAX_PAGES: u64 = 400;
const SENDERS: usize = 8;

/// An order event padded to about `pad` bytes.
fn padded_event(id: &str, pad: usize) -> String {
    let event: serde_json::Value = serde_json::from_str(&order_event(id)).unwrap();
    let mut event = event;
    event["note"] = serde_json::Value::String("x".repeat(pad));
    event.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_with_retry_after_and_never_a_false_200() {
    if postgres().is_some() {
        eprintln!("skipped: SQLite's max_page_count caps the store here; PostgreSQL has no such cap");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.worker.enabled = false;
    config.validate().unwrap();
    let setup = Setup::prepare(config).unwrap();
    let options = SqliteOptions {
        max_batch: 64,
        queue_capacity: 1024,
        max_backlog: 1_000_000,
        max_page_count: Some(MAX_PAGES),
    };
    let store: SharedStore = Arc::new(SqliteStore::open(&dir.path().join("tradehook.db"), options).unwrap());
    let state = Arc::new(AppState::new(&setup, store).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::run(listener, state, shutdown.clone()));
    let url = format!("http://{addr}/webhook");

    // Concurrent senders of ~100 KiB events, each until it has been refused three times.
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut accepted, mut refused) = (Vec::new(), Vec::new());
                let mut n = 0;
                while refused.len() < 3 && n < 200 {
                    let key = format!("big-s{sender}-n{n}");
                    n += 1;
                    let body = padded_event(&key, 100 * 1024);
                    let answer = post_signed(&url, Scheme::HmacSha256, SECRET, body.as_bytes(), &[]).await;
                    match answer.status.as_u16() {
                        200 => {
                            assert_eq!(answer.json["status"], "accepted", "{}", answer.text);
                            accepted.push((key, answer.json["id"].as_str().unwrap().to_owned()));
                        }
                        503 => {
                            let wait =
                                answer.headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                            assert!(
                                wait.is_some_and(|w| w.parse::<u64>().is_ok()),
                                "503 without Retry-After"
                            );
                            refused.push(key);
                        }
                        other => panic!("{key}: unexpected {other} {}", answer.text),
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for sender in senders {
        let (a, r) = sender.await.unwrap();
        accepted.extend(a);
        refused.extend(r);
    }
    assert!(
        !accepted.is_empty() && refused.len() >= SENDERS * 3,
        "{} accepted, {} refused",
        accepted.len(),
        refused.len()
    );

    // No false 200: every accepted event is stored under the id it was given.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (key, id) in &accepted {
        let stored = request(
            Method::GET,
            &format!("http://{addr}/api/v1/events/{id}"),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
        assert_eq!(stored.status, 200, "{key} acked as {id} but not stored");
        assert_eq!(stored.json["eventKey"], key.as_str(), "{}", stored.text);
    }
    let ready = request(Method::GET, &format!("http://{addr}/readyz"), &[], Vec::new()).await;

    // Without a restart: a small event fits, and a refused event id was rolled back (new, not a
    // duplicate) when it comes again small.
    let small = post_event_to(&url, &order_event("small-after-full")).await;
    assert_eq!(
        (small.status.as_u16(), small.json["status"].as_str()),
        (200, Some("accepted")),
        "{}",
        small.text
    );
    let again = post_event_to(&url, &order_event(&refused[0])).await;
    assert_eq!(
        (again.status.as_u16(), again.json["status"].as_str()),
        (200, Some("accepted")),
        "{}",
        again.text
    );

    eprintln!(
        "fault_store_full: max_page_count {MAX_PAGES}, {SENDERS} senders of 100 KiB events: {} accepted (all stored), \
         {} answered 503 with Retry-After, 0 false 200; /readyz while full: {}; small event and a refused id resent small: accepted",
        accepted.len(),
        refused.len(),
        ready.status
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// POSTs `body` to `url`, signed for the default source.
async fn post_event_to(url: &str, body: &str) -> Answer {
    post_signed(url, Scheme::HmacSha256, SECRET, body.as_bytes(), &[]).await
}
