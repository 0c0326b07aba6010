//! A full SQLite store seen over HTTP (issue 8): the database is capped (`max_page_count`, set
//! on the store the test opens itself — there is no configuration key for it) and filled by
//! concurrent senders of large events. Ingest answers `503` with `Retry-After`, never a `200` for
//! an event that is not stored; the failed batches roll back whole, so smaller events still fit
//! and an event id that got a `503` is new, not a duplicate, when it is sent again.
//!
//! The second test fills the filesystem itself: the store lives on a small tmpfs mounted for the
//! test (root only: it skips, saying so, where `mount` is refused), a file takes all but a little
//! of the space, and concurrent senders fill the rest. The gateway answers `503` with
//! `Retry-After` (never a false `200`) and `/readyz` fails while the disk is full; once the file is deleted it accepts
//! again, refused ids included, and processes everything — without a restart.
//!
//! SQLite only: PostgreSQL's disk-full path is the database's, see `tests/postgres_outage.rs`
//! for a database that cannot take writes.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
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
/// Concurrent senders of accepted events while the store is full, and how many each sends.
const RESENDERS: usize = 4;
const RESENDS: usize = 20;

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

    let (accepted, refused) = fill_until_refused(&url, "big", 100 * 1024).await;
    assert_stored(addr, &accepted).await;
    let duplicates = resend_beside_refused(&url, &accepted).await;
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
         {} answered 503 with Retry-After, 0 false 200; {duplicates} accepted events resent while full: \
         200 duplicate with their ids; /readyz while full: {}; small event and a refused id resent small: accepted",
        accepted.len(),
        refused.len(),
        ready.status
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// A tmpfs of a few MiB mounted on a fresh directory, unmounted when dropped.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    /// `None` where this process may not mount (not root, or no tmpfs).
    fn mount(size: &str) -> Option<SmallFilesystem> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tradehook-test"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallFilesystem { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free for an unprivileged writer.
    fn available(&self) -> u64 {
        let output = Command::new("df").args(["--output=avail", "-B1"]).arg(self.path()).output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        text.lines().nth(1).and_then(|line| line.trim().parse().ok()).expect("df prints the free bytes")
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        // Lazy: a store file still open (a failed test) must not keep the mount behind.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_when_space_is_freed_without_a_restart() {
    if postgres().is_some() {
        eprintln!("skipped: the store is a SQLite file on a small filesystem; PostgreSQL's disk is its own");
        return;
    }
    let Some(disk) = SmallFilesystem::mount("12m") else {
        // .ci/run sets it: there the test runs as root and must not skip unseen.
        assert!(
            std::env::var_os("REQUIRE_TMPFS_TEST").is_none(),
            "REQUIRE_TMPFS_TEST is set but this process may not mount a tmpfs"
        );
        eprintln!("skipped: this process may not mount a tmpfs (run as root to fill a real filesystem)");
        return;
    };
    let server = TestServer::start_with(|config| {
        config.store.url = format!("sqlite://{}", disk.path().join("tradehook.db").display());
    })
    .await;
    let url = server.url("/webhook");
    // Some events first, so the schema, the WAL and the processing path are all in use.
    for n in 0..20 {
        let answer = post_event_to(&url, &order_event(&format!("before-{n}"))).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    wait_processed(server.addr).await;

    // A file takes all but 1.5 MiB; senders of ~20 KiB events fill the rest.
    let filler = disk.path().join("filler");
    let room = 1536 * 1024;
    let size = disk.available().saturating_sub(room);
    std::fs::write(&filler, vec![0u8; usize::try_from(size).unwrap()]).unwrap();
    let (accepted, refused) = fill_until_refused(&url, "full", 20 * 1024).await;
    assert_stored(server.addr, &accepted).await;
    let while_full = disk.available();
    assert!(while_full < 20 * 1024, "the 503s came while {while_full} bytes were still free");
    // A load balancer polling `/readyz` must stop sending here. The first probe may still find
    // the last few KiB (and take them); while the disk stays full, readiness fails with the cause.
    let not_ready = eventually(10, "/readyz 503 while the disk is full", || async {
        let answer = request(Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert!(not_ready.text.contains("full"), "{}", not_ready.text);

    // Space comes back: the same process accepts again — the refused ids as new events — and
    // processes everything, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut resent = 0;
    for key in &refused {
        let answer = eventually(10, "an accepted event after space was freed", || async {
            let answer = post_event_to(&url, &padded_event(key, 20 * 1024)).await;
            (answer.status == 200).then_some(answer)
        })
        .await;
        assert_eq!(answer.json["status"], "accepted", "{key} was refused, so it is new: {}", answer.text);
        resent += 1;
    }
    let status = wait_processed(server.addr).await;
    let ready = request(Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(status["dlq"], 0, "nothing dead-lettered by the full disk: {status}");
    assert_eq!(status["events"], status["processed"], "{status}");
    eprintln!(
        "fault_store_full (disk): {SENDERS} senders of 20 KiB events on a 12 MiB tmpfs: {} accepted (all stored), \
         {} answered 503 with Retry-After, 0 false 200, {while_full} bytes free while full, /readyz 503; \
         after freeing space: \
         {resent} refused ids accepted as new, {} events stored and processed, /readyz 200, no restart",
        accepted.len(),
        refused.len(),
        status["events"],
    );
    server.stop().await;
}

/// Concurrent senders of events padded to about `pad` bytes, each until it has been refused
/// (`503` with `Retry-After`) three times: the (event key, id) pairs accepted and the keys refused.
async fn fill_until_refused(url: &str, prefix: &str, pad: usize) -> (Vec<(String, String)>, Vec<String>) {
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let url = url.to_owned();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let (mut accepted, mut refused) = (Vec::new(), Vec::new());
                let mut n = 0;
                while refused.len() < 3 && n < 400 {
                    let key = format!("{prefix}-s{sender}-n{n}");
                    n += 1;
                    let body = padded_event(&key, pad);
                    let answer = post_event_to(&url, &body).await;
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
                            let reason = answer.json["reason"].as_str().unwrap_or_default();
                            assert!(reason.contains("full"), "a 503 for another reason: {}", answer.text);
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
    (accepted, refused)
}

/// While the store is full and senders of new events keep it refusing, every accepted event sent
/// again answers `200 duplicate` with its id, also when it shares a failed batch with them (it
/// used to get the batch's 503). Returns how many were resent.
async fn resend_beside_refused(url: &str, accepted: &[(String, String)]) -> usize {
    let stop = CancellationToken::new();
    let refusers: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (url, stop) = (url.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut refused = 0;
                for n in 0.. {
                    if stop.is_cancelled() {
                        break;
                    }
                    let answer =
                        post_event_to(&url, &padded_event(&format!("more-s{sender}-n{n}"), 100 * 1024)).await;
                    match answer.status.as_u16() {
                        503 => refused += 1,
                        // A lone event may still find the room a failed batch of several left.
                        200 => assert_eq!(answer.json["status"], "accepted", "{}", answer.text),
                        other => panic!("a new event while full: {other} {}", answer.text),
                    }
                }
                refused
            })
        })
        .collect();
    let resenders: Vec<_> = (0..RESENDERS)
        .map(|resender| {
            let url = url.to_owned();
            let mine: Vec<_> =
                accepted.iter().cycle().skip(resender).step_by(RESENDERS).take(RESENDS).cloned().collect();
            tokio::spawn(async move {
                for (key, id) in mine {
                    let answer = post_event_to(&url, &padded_event(&key, 100 * 1024)).await;
                    assert_eq!(
                        (answer.status.as_u16(), answer.json["status"].as_str(), answer.json["id"].as_str()),
                        (200, Some("duplicate"), Some(id.as_str())),
                        "{key} again while the store is full: {}",
                        answer.text
                    );
                }
            })
        })
        .collect();
    for resender in resenders {
        resender.await.unwrap();
    }
    stop.cancel();
    let mut refused = 0;
    for refuser in refusers {
        refused += refuser.await.unwrap();
    }
    assert!(refused > 0, "no new event was refused beside the duplicates");
    RESENDERS * RESENDS
}

/// No false 200: every accepted event is stored under the id it was given.
async fn assert_stored(addr: SocketAddr, accepted: &[(String, String)]) {
    for (key, id) in accepted {
        let stored = api_get(addr, &format!("/events/{id}")).await;
        assert_eq!(stored.status, 200, "{key} acked as {id} but not stored");
        assert_eq!(stored.json["eventKey"], key.as_str(), "{}", stored.text);
    }
}

/// POSTs `body` to `url`, signed for the default source.
async fn post_event_to(url: &str, body: &str) -> Answer {
    post_signed(url, Scheme::HmacSha256, SECRET, body.as_bytes(), &[]).await
}
