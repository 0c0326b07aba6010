//! Several `tradehook serve` processes on one PostgreSQL behave as one gateway (SPEC §7).
//!
//! Two server processes share a database. Orders arrive as a created event and four cumulative
//! updates each; every event is sent to BOTH nodes (a sender retrying through the load balancer),
//! alternating which node hears it first, while one node — the one processing — is killed with
//! `kill -9` mid-load and restarted. Then:
//! - every acknowledged event is stored, once (both nodes answered with the same id);
//! - every event was processed exactly once: one outbox row per event for the `*` subscription,
//!   which the processing transaction writes together with the "processed" mark;
//! - per order, events were stored and processed in the order they were sent;
//! - the final orders are right, and every event reached the subscriber.
//!
//! And when the processing node hangs (SIGSTOP), the node still taking events answers `/readyz`
//! 503 ("is the worker stalled?") until the hung node's lease runs out and it processes them.
//!
//! Runs in the PostgreSQL pass of the suite (`TEST_POSTGRES_URL`; `.ci/run` sets it).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::receiver::{Receiver, Script};
use common::*;
use serde_json::json;
use tradehook::ingest::signature::Scheme;

const ORDERS: usize = 40;
const STEPS: usize = 5;

/// True (and says so) outside the PostgreSQL pass of the suite (`TEST_POSTGRES_URL`).
fn skipped_without_postgres() -> bool {
    let skipped = postgres().is_none();
    if skipped {
        eprintln!("skipped: the PostgreSQL pass (TEST_POSTGRES_URL) runs this test");
    }
    skipped
}

/// Sends `name` (`-STOP`, `-CONT`) to a server process.
fn signal(child: &std::process::Child, name: &str) {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args([name, &pid]).status().unwrap().success());
}

/// Event `step` of order `k`: created, then cumulative fills 2, 5, 8 and finally 10 of 10.
fn order_step(k: usize, step: usize) -> String {
    let id = format!("o{k}-{step}");
    let order = format!("ord-{k}");
    let body = if step == 0 {
        json!({"id": id, "event": "order.created", "timestamp": "2024-01-15T10:30:00Z", "data": {
            "orderId": order, "symbol": "BTC/USD", "side": "buy", "type": "limit", "quantity": 10,
            "price": 100, "status": "open"}})
    } else {
        let filled = [0, 2, 5, 8, 10][step];
        let status = if filled == 10 { "filled" } else { "partially_filled" };
        json!({"id": id, "event": "order.updated", "timestamp": format!("2024-01-15T10:30:0{step}Z"), "data": {
            "orderId": order, "status": status, "filledQuantity": filled, "averagePrice": 100}})
    };
    body.to_string()
}

/// Sends `body` to `node` until one answers 200; `None` while that node is down.
async fn send_to(nodes: &RwLock<[SocketAddr; 2]>, node: usize, body: &str) -> Option<String> {
    for _ in 0..3 {
        let url = format!("http://{}/webhook", nodes.read().unwrap()[node]);
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            try_post(&url, Scheme::HmacSha256, SECRET, body.as_bytes()),
        )
        .await;
        if let Ok(Some((200, json))) = answer {
            return json["id"].as_str().map(str::to_owned);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_act_as_one_gateway_through_a_kill_9() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TRADEHOOK_STORE__LEASE", "2s"),
        ("TRADEHOOK_DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        // Claims of the killed node run out after 2 × timeout + 5 s (no exec: or nats: routes).
        ("TRADEHOOK_DELIVERY__TIMEOUT", "2s"),
    ];
    // The first node takes the processing lease; it is the one killed.
    let mut first = ServerProcess::start_with_env(dir.path(), &env);
    wait_processed(first.addr).await;
    let second = ServerProcess::start_with_env(dir.path(), &env);
    let nodes = Arc::new(RwLock::new([first.addr, second.addr]));

    let receiver = Receiver::start(Script::Ok).await;
    let subscribed = api_post(
        second.addr,
        "/webhooks",
        json!({"url": format!("http://{}/hook", receiver.addr), "events": ["*"]}),
    )
    .await;
    assert_eq!(subscribed.status, 201, "{}", subscribed.text);
    // Both nodes follow the stored subscriptions (every 2 s) before load starts.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let answered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..ORDERS)
        .map(|k| {
            let (nodes, answered) = (nodes.clone(), answered.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for step in 0..STEPS {
                    let body = order_step(k, step);
                    let first = (k + step) % 2;
                    let x = send_to(&nodes, first, &body).await;
                    let y = send_to(&nodes, 1 - first, &body).await;
                    answered.fetch_add(1, Ordering::Relaxed);
                    if let (Some(x), Some(y)) = (&x, &y) {
                        assert_eq!(x, y, "both nodes name the one stored event");
                    }
                    let id = x.or(y).unwrap_or_else(|| panic!("neither node acknowledged o{k}-{step}"));
                    ids.push(id);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ids
            })
        })
        .collect();

    while answered.load(Ordering::Relaxed) < ORDERS * STEPS * 2 / 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = ServerProcess::start_with_env(dir.path(), &env);
    nodes.write().unwrap()[0] = restarted.addr;

    let mut acked = Vec::new();
    for sender in senders {
        acked.push(sender.await.unwrap());
    }
    wait_processed(second.addr).await;

    // Stored once each, under the ids the senders were given.
    let status = api_get(second.addr, "/status").await;
    assert_eq!(status.json["events"], ORDERS * STEPS, "{}", status.text);
    for id in acked.iter().flatten() {
        assert_eq!(api_get(restarted.addr, &format!("/events/{id}")).await.status, 200, "{id} is stored");
    }

    // Processed exactly once, in order per key.
    let (db, connection) =
        tokio_postgres::connect(&store_url(dir.path()), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = db
        .query(
            "SELECT e.event_key, e.seq, e.processed_at, e.outcome, count(d.id)
             FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq
             WHERE e.source = 'default' GROUP BY e.seq ORDER BY e.seq",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), ORDERS * STEPS);
    let mut per_order: HashMap<String, Vec<(usize, i64, i64)>> = HashMap::new();
    for row in &rows {
        let key: String = row.get(0);
        assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("applied"), "{key}");
        assert_eq!(row.get::<_, i64>(4), 1, "{key}: one outbox row = processed once");
        let (order, step) = key.split_once('-').unwrap();
        let processed: i64 = row.get::<_, Option<i64>>(2).unwrap();
        per_order.entry(order.to_owned()).or_default().push((step.parse().unwrap(), row.get(1), processed));
    }
    for (order, mut events) in per_order {
        events.sort_by_key(|(_, seq, _)| *seq);
        let steps: Vec<usize> = events.iter().map(|(step, ..)| *step).collect();
        assert_eq!(steps, (0..STEPS).collect::<Vec<_>>(), "{order}: stored in the order sent");
        assert!(events.windows(2).all(|w| w[0].2 <= w[1].2), "{order}: processed in the order stored");
    }

    // The state is right, seen from either node.
    for k in 0..ORDERS {
        let order = api_get(restarted.addr, &format!("/orders/ord-{k}")).await;
        assert_eq!(order.json["status"], "filled", "{}", order.text);
        assert_eq!(order.json["filledQuantity"], 10, "{}", order.text);
    }
    // Every event reached the subscriber (at least once: a delivery in flight on the killed node
    // is sent again once its claim runs out, by design of at-least-once delivery).
    let all: HashSet<String> = acked.iter().flatten().cloned().collect();
    eventually(30, "every event delivered", || async {
        let got: HashSet<String> = receiver
            .received()
            .iter()
            .filter_map(|r| r.headers.get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned))
            .collect();
        (got.len() >= all.len()).then_some(())
    })
    .await;
    drop(second);
}

/// `/readyz` of `addr`: its status and reason.
async fn readiness(addr: SocketAddr) -> (u16, String) {
    let answer = request(http::Method::GET, &format!("http://{addr}/readyz"), &[], Vec::new()).await;
    (answer.status.as_u16(), answer.json["reason"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_processing_node_makes_the_others_not_ready_until_one_takes_over() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("TRADEHOOK_STORE__LEASE", "6s"), ("TRADEHOOK_STORE__MAX_PENDING_AGE", "1s")];
    let mut first = ServerProcess::start_with_env(dir.path(), &env);
    wait_processed(first.addr).await;
    let second = ServerProcess::start_with_env(dir.path(), &env);
    assert_eq!(readiness(second.addr).await.0, 200);

    // The node holding the processing lease hangs (not dead: its connections stay open).
    let stop = |name: &str| signal(&first.child, name);
    stop("-STOP");
    let body = order_step(0, 0);
    let url = format!("http://{}/webhook", second.addr);
    let sent = try_post(&url, Scheme::HmacSha256, SECRET, body.as_bytes()).await;
    assert!(matches!(sent, Some((200, _))), "{sent:?}");

    // A load balancer polling the node that still answers learns that events are not processed.
    let reason = eventually(5, "/readyz 503 on the node that ingests", || async {
        let (status, reason) = readiness(second.addr).await;
        (status == 503).then_some(reason)
    })
    .await;
    assert!(
        reason.contains("the next event to process has waited") && reason.contains("stalled"),
        "{reason}"
    );

    // Once the hung node's lease runs out, the other one processes, and is ready again.
    let status = wait_processed(second.addr).await;
    assert_eq!(status["backlog"], 0);
    eventually(5, "/readyz 200 once processing goes on", || async {
        (readiness(second.addr).await.0 == 200).then_some(())
    })
    .await;
    stop("-CONT");
    first.kill9();
}

/// The processing node hangs in the middle of a commit — after renewing the lease in its
/// transaction, before committing it, so its session holds the lease row — while events keep
/// arriving at the other node. That node must still take over once the lease runs out: the hung
/// node's session is ended by PostgreSQL, and its commit with it. (Before, the take-over waited on
/// the row lock for as long as the hang lasted: no node processed anything.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hung_mid_commit_does_not_stop_the_take_over() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("TRADEHOOK_STORE__LEASE", "3s")];
    let mut first = ServerProcess::start_with_env(dir.path(), &env);
    wait_processed(first.addr).await;
    let second = ServerProcess::start_with_env(dir.path(), &env);
    let (db, connection) =
        tokio_postgres::connect(&store_url(dir.path()), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);

    // Events keep coming, to the second node; the first one processes them.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = tokio::spawn({
        let (sending, url) = (sending.clone(), format!("http://{}/webhook", second.addr));
        async move {
            let mut k = 0;
            while sending.load(Ordering::Relaxed) {
                let body = order_step(1000 + k, 0);
                let sent = try_post(&url, Scheme::HmacSha256, SECRET, body.as_bytes()).await;
                assert!(matches!(sent, Some((200, _))), "{sent:?}");
                k += 1;
            }
            k
        }
    });

    // Stop the first node until the moment is caught: its session idle inside a transaction that
    // holds the lease row.
    let stop = |name: &str| signal(&first.child, name);
    let mut caught = false;
    for _ in 0..300 {
        stop("-STOP");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let holding: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.relation = 'leases'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted
                   AND a.state = 'idle in transaction'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if holding > 0 {
            caught = true;
            break;
        }
        stop("-CONT");
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    assert!(caught, "never caught the processing node inside its commit");
    sending.store(false, Ordering::Relaxed);
    let sent = sender.await.unwrap();
    assert!(sent > 0);

    // The second node takes over and processes everything while the first is still hung.
    let status = wait_processed(second.addr).await;
    assert_eq!(status["backlog"], 0);

    // The first one comes back, finds its commit void, and the two go on as one gateway.
    stop("-CONT");
    let body = order_step(999, 0);
    let sent =
        try_post(&format!("http://{}/webhook", first.addr), Scheme::HmacSha256, SECRET, body.as_bytes())
            .await;
    assert!(matches!(sent, Some((200, _))), "{sent:?}");
    wait_processed(second.addr).await;
    wait_processed(first.addr).await;
    first.kill9();
    drop(second);
}

/// `rebuild-state` replaces the stored state: with a node processing on the same database it
/// would overwrite that node's commits with a state computed without them (orders went back
/// from filled to open). It refuses while a live node holds the processing lease; `--check`
/// changes nothing and still runs; with every node stopped, the rebuild goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_state_refuses_while_a_node_processes_on_the_database() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = ServerProcess::start(dir.path());
    for step in 0..STEPS {
        let body = order_step(7, step);
        let sent =
            try_post(&format!("http://{}/webhook", node.addr), Scheme::HmacSha256, SECRET, body.as_bytes())
                .await;
        assert!(matches!(sent, Some((200, _))), "{sent:?}");
    }
    wait_processed(node.addr).await;
    let rebuild = |check: bool| {
        let mut command = std::process::Command::new(binary());
        command
            .arg("rebuild-state")
            .env("TRADEHOOK_STORE__URL", store_url(dir.path()))
            .current_dir(dir.path());
        if check {
            command.arg("--check");
        }
        command.output().unwrap()
    };

    let refused = rebuild(false);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("processing lease") && stderr.contains("stop every node"), "{stderr}");
    let checked = rebuild(true);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("equals"));
    // The node goes on processing: nothing was taken from it.
    let body = order_step(8, 0);
    assert!(matches!(
        try_post(&format!("http://{}/webhook", node.addr), Scheme::HmacSha256, SECRET, body.as_bytes()).await,
        Some((200, _))
    ));
    wait_processed(node.addr).await;

    drop(node);
    // Once PostgreSQL has ended the killed node's session (its lock goes with it), or its lease
    // has run out.
    let mut rebuilt = rebuild(false);
    for _ in 0..30 {
        if rebuilt.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        rebuilt = rebuild(false);
    }
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("stored state equals"));
}

/// A subscription created or deleted through one node holds for the events sent to the other
/// right after the answer: the processing node reads the stored subscriptions again when they
/// changed, before routing. (Each node used to follow them every 2 s: the first event after a
/// create was not delivered, and events after a delete still went to the deleted endpoint.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_changes_on_one_node_hold_at_once_on_the_other() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("TRADEHOOK_DELIVERY__ALLOW_PRIVATE_TARGETS", "true")];
    // The first node holds the processing lease; the API calls go to the second.
    let first = ServerProcess::start_with_env(dir.path(), &env);
    wait_processed(first.addr).await;
    let second = ServerProcess::start_with_env(dir.path(), &env);
    let send = |k: usize| {
        let url = format!("http://{}/webhook", first.addr);
        async move {
            let body = order_step(k, 0);
            let sent = try_post(&url, Scheme::HmacSha256, SECRET, body.as_bytes()).await;
            let Some((200, answer)) = sent else { panic!("{sent:?}") };
            answer["id"].as_str().unwrap().to_owned()
        }
    };
    // Both nodes have read the (empty) list of subscriptions once.
    send(0).await;
    wait_processed(first.addr).await;

    let receiver = Receiver::start(Script::Ok).await;
    let created = api_post(second.addr, "/webhooks", json!({"url": receiver.url(), "events": ["*"]})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = send(1).await;
    wait_processed(first.addr).await;
    eventually(10, "the event sent right after the create delivered", || async {
        let delivered =
            |r: &common::receiver::Received| r.headers.get("webhook-id").is_some_and(|v| v == id.as_str());
        receiver.accepted().iter().any(delivered).then_some(())
    })
    .await;

    let webhook = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(api_delete(second.addr, &format!("/webhooks/{webhook}")).await.status, 204);
    let before = receiver.received().len();
    for k in 2..5 {
        send(k).await;
    }
    wait_processed(first.addr).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), before, "nothing goes to a deleted subscription");
}

/// `disable_after` counts failure without a success anywhere: a delivery another node made
/// ends the streak this node began. (Each node kept its own streak start, so the first failure
/// after another node's success disabled a subscription that had been working.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_on_another_node_ends_the_failing_streak() {
    if skipped_without_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TRADEHOOK_STORE__LEASE", "2s"),
        ("TRADEHOOK_DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("TRADEHOOK_DELIVERY__TIMEOUT", "1s"),
        ("TRADEHOOK_DELIVERY__DISABLE_AFTER", "4s"),
        ("TRADEHOOK_RETRY__DELAYS", "[\"30s\"]"),
    ];
    let receiver = Receiver::start(Script::Always(500)).await;
    let mut first = ServerProcess::start_with_env(dir.path(), &env);
    wait_processed(first.addr).await;
    let created = api_post(first.addr, "/webhooks", json!({"url": receiver.url(), "events": ["*"]})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let webhook = created.json["id"].as_str().unwrap().to_owned();
    let send = |addr: SocketAddr, k: usize| async move {
        let body = order_step(k, 0);
        let sent =
            try_post(&format!("http://{addr}/webhook"), Scheme::HmacSha256, SECRET, body.as_bytes()).await;
        assert!(matches!(sent, Some((200, _))), "{sent:?}");
    };

    // The first node fails a delivery: its streak starts.
    send(first.addr, 1).await;
    eventually(10, "the first failure", || async { (!receiver.received().is_empty()).then_some(()) }).await;

    // The first node hangs; the second one processes and delivers: the endpoint works again.
    let mut second = ServerProcess::start_with_env(dir.path(), &env);
    signal(&first.child, "-STOP");
    receiver.set(Script::Ok);
    send(second.addr, 2).await;
    eventually(15, "a success through the second node", || async {
        (!receiver.accepted().is_empty()).then_some(())
    })
    .await;

    // Past disable_after since the first node's failure, the endpoint fails once more and the
    // first node (back, alone) is the one that sees it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    receiver.set(Script::Always(500));
    signal(&first.child, "-CONT");
    signal(&second.child, "-STOP");
    let before = receiver.received().len();
    send(first.addr, 3).await;
    eventually(20, "the first node's new failure", || async {
        (receiver.received().iter().skip(before).any(|r| r.status == 500)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subscription = api_get(first.addr, &format!("/webhooks/{webhook}")).await;
    assert_eq!(subscription.json["active"], true, "one failure after a success: {}", subscription.text);
    signal(&second.child, "-CONT");
    second.kill9();
    first.kill9();
}
