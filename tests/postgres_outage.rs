//! PostgreSQL goes away under load and comes back: ingest answers 503 with `Retry-After` while it
//! is down (never a 200 for an event that is not stored), `/readyz` fails, and both recover on
//! their own without restarting tradehook.
//!
//! The database is a private PostgreSQL instance this test creates (initdb in a temporary
//! directory, its own port) so it can be killed without disturbing other tests. Runs in the
//! PostgreSQL pass of the suite (`TEST_POSTGRES_URL` set; `.ci/run` does it).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use tokio_util::sync::CancellationToken;

/// A PostgreSQL server of the test's own.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .collect();
        versions.sort();
        let bin = versions.pop().expect("a PostgreSQL version with pg_ctl");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let postgres = PrivatePostgres { dir, bin, port };
        if is_root() {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            assert!(Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(postgres.dir.path())
                .status()
                .unwrap()
                .success());
        }
        let data = postgres.data();
        let init = postgres
            .command("initdb")
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        postgres.up();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn up(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let status = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data())
            .arg("start")
            .output()
            .unwrap();
        assert!(status.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&status.stderr));
    }

    /// Stops it the hard way (as a crash would): no shutdown checkpoint, connections cut.
    fn kill(&self) {
        let status = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output()
            .unwrap();
        assert!(status.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&status.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server and every backend: a database that stops
    /// answering without closing a connection, as in a network partition with no reset.
    fn signal_all(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        let _ = Command::new("pkill").args([&format!("-{signal}"), "-P", &pid]).status();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-m", "immediate", "-D"]).arg(self.data()).arg("stop").output();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A gateway on a PostgreSQL of its own; `None` outside the PostgreSQL pass of the suite.
async fn gateway_on_private_postgres() -> Option<(PrivatePostgres, Arc<TestServer>)> {
    postgres()?;
    let database = PrivatePostgres::start();
    let url = database.url();
    let server = Arc::new(TestServer::start_with(move |config| config.store.url = url).await);
    Some((database, server))
}

#[derive(Default)]
struct Seen {
    /// (when answered, status, event id of a 200).
    answers: Vec<(Instant, u16, Option<String>, Option<String>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_never_a_false_200_and_recovers_by_itself() {
    let Some((database, server)) = gateway_on_private_postgres().await else {
        eprintln!("skipped: the PostgreSQL pass (TEST_POSTGRES_URL) runs this test");
        return;
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = CancellationToken::new();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (server, seen, stop) = (server.clone(), seen.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.is_cancelled() {
                    n += 1;
                    let answer = post_event(&server, &order_event(&format!("o{sender}-{n}"))).await;
                    let id = answer.json["id"].as_str().map(str::to_owned);
                    let retry_after =
                        answer.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    seen.lock().unwrap().answers.push((
                        Instant::now(),
                        answer.status.as_u16(),
                        id,
                        retry_after,
                    ));
                    if answer.status != StatusCode::OK {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    database.kill();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = request(http::Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "readyz while the database is down: {}",
        ready.text
    );

    // From here on it may accept again: pg_ctl returns only once the server takes connections.
    let up = Instant::now();
    database.up();
    eventually(30, "ingest to accept again after the database came back", || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .answers
                .iter()
                .any(|(at, status, ..)| *at > up && *status == 200)
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for sender in senders {
        sender.await.unwrap();
    }

    let answers = std::mem::take(&mut seen.lock().unwrap().answers);
    let odd: Vec<_> = answers.iter().filter(|(_, status, ..)| *status != 200 && *status != 503).collect();
    assert!(odd.is_empty(), "only 200 or 503: {odd:?}");
    // Well inside the outage (past the requests that were in flight when it began).
    let refused: Vec<_> = answers
        .iter()
        .filter(|(at, status, ..)| *status == 503 && *at > down + Duration::from_millis(500) && *at < up)
        .collect();
    assert!(!refused.is_empty(), "ingest refuses while the database is down");
    assert!(refused.iter().all(|(.., retry_after)| retry_after.is_some()), "every 503 says when to retry");
    let accepted_during: Vec<_> = answers
        .iter()
        .filter(|(at, status, ..)| *status == 200 && *at > down + Duration::from_millis(500) && *at < up)
        .map(|(at, _, id, _)| (at.duration_since(down), id))
        .collect();
    assert!(
        accepted_during.is_empty(),
        "nothing is acknowledged while nothing can be stored: {accepted_during:?}"
    );

    // Every 200, before, during or after, is stored; and processing caught up by itself.
    let acked: Vec<&String> = answers
        .iter()
        .filter_map(|(_, status, id, _)| (*status == 200).then_some(id.as_ref()).flatten())
        .collect();
    assert!(acked.len() > 20, "load before and after the outage: {}", acked.len());
    for id in &acked {
        let stored = api_get(server.addr, &format!("/events/{id}")).await;
        assert_eq!(stored.status, StatusCode::OK, "acked {id} must be stored: {}", stored.text);
    }
    wait_processed(server.addr).await;
    // The round the outage cut short was rolled back and applied again: its state is stored.
    assert_rebuild_equals_stored(&database);
    let ready = request(http::Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
}

/// The database freezes (it keeps its connections open but answers nothing): ingest answers 503
/// with `Retry-After` within seconds instead of holding requests for as long as the freeze lasts,
/// `/readyz` fails as fast, and both recover on their own when it thaws. An event answered 503
/// while frozen may have been stored once the database went on: sent again, it gets one id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_gets_a_503_in_seconds_and_recovers_by_itself() {
    let Some((database, server)) = gateway_on_private_postgres().await else {
        eprintln!("skipped: the PostgreSQL pass (TEST_POSTGRES_URL) runs this test");
        return;
    };
    assert_eq!(post_event(&server, &order_event("before-freeze")).await.status, StatusCode::OK);
    wait_processed(server.addr).await;

    // Bounded here too, so the database is thawed whatever the answers (it held them forever).
    let bound = Duration::from_secs(20);
    database.signal_all("STOP");
    let started = Instant::now();
    let frozen = tokio::time::timeout(bound, post_event(&server, &order_event("while-frozen"))).await;
    let waited = started.elapsed();
    let ready_started = Instant::now();
    let ready =
        tokio::time::timeout(bound, request(http::Method::GET, &server.url("/readyz"), &[], Vec::new()))
            .await;
    let ready_waited = ready_started.elapsed();
    database.signal_all("CONT");
    let (Ok(frozen), Ok(ready)) = (frozen, ready) else {
        panic!("no answer within {bound:?} while the database was frozen")
    };

    assert_eq!(frozen.status, StatusCode::SERVICE_UNAVAILABLE, "{}", frozen.text);
    assert!(frozen.headers.contains_key("retry-after"), "{:?}", frozen.headers);
    assert!(waited < Duration::from_secs(12), "ingest held the request {waited:?}");
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.text);
    assert!(ready_waited < Duration::from_secs(4), "/readyz took {ready_waited:?}: {}", ready.text);

    let again = eventually(30, "ingest to answer 200 after the thaw", || {
        let server = server.clone();
        async move {
            let answer = post_event(&server, &order_event("while-frozen")).await;
            (answer.status == StatusCode::OK).then_some(answer)
        }
    })
    .await;
    let id = again.json["id"].as_str().unwrap().to_owned();
    let after = post_event(&server, &order_event("while-frozen")).await;
    assert_eq!(
        (after.json["status"].as_str(), after.json["id"].as_str()),
        (Some("duplicate"), Some(id.as_str()))
    );
    wait_processed(server.addr).await;
    let ready = request(http::Method::GET, &server.url("/readyz"), &[], Vec::new()).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_rebuild_equals_stored(&database);
    eprintln!(
        "frozen database: 503 after {waited:?}, /readyz 503 after {ready_waited:?}; {} after the thaw",
        again.json["status"]
    );
}

/// Cuts tradehook's database connections again and again under load (as a failover or an idle
/// timeout in a pooler would). A round whose commit is cut is rolled back; the worker must start
/// again from the stored state, so the orders of every acknowledged event end up stored and the
/// stored state equals the one `rebuild-state` computes from the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_under_load_lose_no_state() {
    let Some((database, server)) = gateway_on_private_postgres().await else {
        eprintln!("skipped: the PostgreSQL pass (TEST_POSTGRES_URL) runs this test");
        return;
    };
    let stop = CancellationToken::new();
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (server, stop) = (server.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.is_cancelled() {
                    n += 1;
                    let key = format!("c{sender}-{n}");
                    if post_event(&server, &order_event(&key)).await.status == StatusCode::OK {
                        acked.push(format!("o-{key}"));
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                acked
            })
        })
        .collect();
    let mut cut = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let output = database
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &database.port.to_string(), "-U", "postgres", "-Atc"])
            .arg("select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'tradehook'")
            .output()
            .unwrap();
        assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
        cut += String::from_utf8_lossy(&output.stdout).trim().parse::<u32>().unwrap_or(0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    assert!(cut >= 30, "connections were cut: {cut}");
    assert!(acked.len() > 100, "load while the connections were cut: {}", acked.len());
    wait_processed(server.addr).await;
    let mut missing = Vec::new();
    for order in &acked {
        let stored = api_get(server.addr, &format!("/orders/{order}")).await;
        if stored.status != StatusCode::OK {
            missing.push(order);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acked orders missing from the stored state, first: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    assert_rebuild_equals_stored(&database);
    eprintln!("{} events acked, {cut} connections cut", acked.len());
}

/// `rebuild-state --check`: the state stored in `database` equals the one computed from its events.
fn assert_rebuild_equals_stored(database: &PrivatePostgres) {
    let check = Command::new(binary())
        .args(["rebuild-state", "--check"])
        .env("TRADEHOOK_STORE__URL", database.url())
        .env("TRADEHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && stdout.contains("equals"),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
