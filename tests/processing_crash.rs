//! Exactly-once processing under `kill -9`: the same events processed with the server killed
//! again and again mid-processing give the same orders, positions and balances as a run that was
//! never killed, and `rebuild-state` recomputes exactly that state from the stored events.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tradehook::ingest::signature::Scheme;

/// A deterministic, shuffled stream with duplicates: orders with cumulative fills on a few
/// symbols, some cancels, balance snapshots.
fn events() -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    for order in 0..60 {
        let symbol = ["BTC/USD", "ETH/USD", "SOL/USD"][order % 3];
        let side = if rng.random_bool(0.6) { "buy" } else { "sell" };
        let order_id = format!("ord-{order}");
        out.push(json!({"id": format!("c-{order}"), "event": "order.created", "timestamp": "2024-01-15T10:00:00Z",
            "data": {"orderId": order_id, "symbol": symbol, "side": side, "type": "limit", "quantity": 10, "price": 100, "status": "open"}}));
        let fills = rng.random_range(1..=10u32);
        let mut notional = 0.0f64;
        for step in 1..=fills {
            let price = 100.0 + f64::from(rng.random_range(0..50u32)) / 10.0;
            notional += price;
            let cum = f64::from(step);
            let status = if step == 10 { "filled" } else { "partially_filled" };
            out.push(json!({"id": format!("f-{order}-{step}"), "event": "order.updated",
                "timestamp": format!("2024-01-15T10:{:02}:{:02}Z", order % 60, step),
                "data": {"orderId": order_id, "status": status, "filledQuantity": cum,
                         "averagePrice": (notional / cum * 1e6).round() / 1e6}}));
        }
        if fills < 10 && rng.random_bool(0.3) {
            out.push(json!({"id": format!("x-{order}"), "event": "order.cancelled", "timestamp": "2024-01-15T11:00:00Z",
                "data": {"orderId": order_id, "status": "cancelled"}}));
        }
    }
    for n in 0..20 {
        let asset = ["USD", "BTC"][n % 2];
        out.push(json!({"id": format!("bal-{n}"), "event": "account.balance_updated",
            "timestamp": format!("2024-01-15T12:00:{n:02}Z"),
            "data": {"asset": asset, "available": 1000 + n, "locked": 0, "total": 1000 + n}}));
    }
    out.shuffle(&mut rng);
    // Sender retries: some events twice (same id), so de-duplication is part of the run.
    let repeats: Vec<Value> = out.iter().step_by(7).cloned().collect();
    out.extend(repeats);
    out
}

async fn send_all(addr: std::net::SocketAddr, events: &[Value]) {
    let url = format!("http://{addr}/webhook");
    for event in events {
        let answer = post_signed(&url, Scheme::HmacSha256, SECRET, event.to_string().as_bytes(), &[]).await;
        assert_eq!(answer.status, http::StatusCode::OK, "{}", answer.text);
    }
}

/// Orders, positions and balances as the API shows them.
async fn snapshot(addr: std::net::SocketAddr) -> Value {
    let mut orders = Vec::new();
    let mut after = String::new();
    loop {
        let page = api_get(addr, &format!("/orders?limit=1000&after={after}")).await;
        let list = page.json["orders"].as_array().cloned().unwrap_or_default();
        for order in &list {
            let id = order["orderId"].as_str().unwrap();
            orders.push(api_get(addr, &format!("/orders/{id}")).await.json);
        }
        match page.json["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    json!({
        "orders": orders,
        "positions": api_get(addr, "/positions?limit=1000").await.json,
        "balances": api_get(addr, "/balances?limit=1000").await.json,
    })
}

fn rebuild(dir: &Path, check: bool) -> std::process::Output {
    let mut command = Command::new(binary());
    command
        .arg("rebuild-state")
        .env("TRADEHOOK_STORE__URL", common::store_url(dir))
        .env("TRADEHOOK_SECRET", SECRET)
        .env("TRADEHOOK_API__ADMIN_TOKEN", ADMIN_TOKEN);
    if check {
        command.arg("--check");
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_processing_ends_in_the_same_state_as_an_unkilled_run() {
    let events = events();

    let reference_dir = tempfile::tempdir().unwrap();
    let reference = ServerProcess::start(reference_dir.path());
    send_all(reference.addr, &events).await;
    wait_processed(reference.addr).await;
    let expected = snapshot(reference.addr).await;
    drop(reference);

    // Store everything first with the worker off, then process with kill -9 at random moments.
    let dir = tempfile::tempdir().unwrap();
    let mut ingest_only =
        ServerProcess::start_with_env(dir.path(), &[("TRADEHOOK_WORKER__ENABLED", "false")]);
    send_all(ingest_only.addr, &events).await;
    ingest_only.kill9();
    let mut rng = StdRng::seed_from_u64(11);
    let mut kills = 0;
    let mut backlogs = Vec::new();
    loop {
        // Small rounds, so a kill can land between commits as well as inside one.
        let mut server = ServerProcess::start_with_env(dir.path(), &[("TRADEHOOK_WORKER__BATCH", "20")]);
        let status = api_get(server.addr, "/status").await;
        backlogs.push(status.json["backlog"].as_u64().unwrap());
        if status.json["backlog"] == 0 || kills >= 40 {
            wait_processed(server.addr).await;
            let actual = snapshot(server.addr).await;
            assert_eq!(actual, expected, "state after {kills} kills differs from the unkilled run");
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..25))).await;
        server.kill9();
        kills += 1;
    }
    assert!(kills >= 2, "the worker finished before it could be killed twice: {backlogs:?}");
    // Killed part-way through: some rounds committed before a kill, so the backlog fell in steps.
    assert!(backlogs.windows(2).any(|w| w[0] > w[1] && w[1] > 0), "never killed mid-way: {backlogs:?}");

    // rebuild-state recomputes the same state from the stored events.
    let check = rebuild(dir.path(), true);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("equals"), "{stdout}");
    let replaced = rebuild(dir.path(), false);
    assert!(replaced.status.success());
    let server = ServerProcess::start(dir.path());
    assert_eq!(snapshot(server.addr).await, expected);
    eprintln!("{} events, {kills} kills mid-processing (backlog at each start: {backlogs:?})", events.len());
}
