//! The proof that nothing is lost on the way out (issue 8): receivers that misbehave for a whole
//! run. One flaps (500, 503, answers slower than `[delivery] timeout`, slow but in time, 200), one
//! always fails, one answers `410 Gone`. With a short retry schedule:
//! - every delivery ends delivered or dead-lettered (DLQ kind `delivery`); the `410`
//!   subscription is disabled and its deliveries are held, none lost;
//! - no event is accepted twice by a receiver unless an earlier attempt timed out (at-least-once:
//!   tradehook cannot know a timed-out request was handled);
//! - attempts of one delivery are at least the configured delay apart (jitter only adds, ≤ 20 %).
//!
//! Runs on SQLite and, with `TEST_POSTGRES_URL`, on PostgreSQL.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::receiver::{Received, Receiver, Script};
use common::*;
use serde_json::json;

const EVENTS: usize = 40;
const TIMEOUT: Duration = Duration::from_millis(500);
const DELAYS: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)];

/// The flapping receiver's answers, in turn: (status, wait before answering in ms). 900 ms is
/// past the timeout; 300 ms is slow but in time.
fn flapping() -> Script {
    Script::Cycle(
        vec![
            (500, 0),
            (200, 300),
            (503, 0),
            (200, 900),
            (500, 0),
            (200, 0),
            (500, 0),
            (500, 0),
            (200, 900),
            (200, 0),
            (500, 0),
        ],
        0,
    )
}

/// True when tradehook saw this attempt succeed (2xx in time).
fn accepted_in_time(attempt: &Received) -> bool {
    (200..300).contains(&attempt.status) && attempt.slept < TIMEOUT
}

/// Each event's attempts at one receiver, by `webhook-id`, in arrival order.
fn attempts_by_event(receiver: &Receiver) -> HashMap<String, Vec<Received>> {
    let mut by_event: HashMap<String, Vec<Received>> = HashMap::new();
    for attempt in receiver.received() {
        let id = attempt.headers["webhook-id"].to_str().unwrap().to_owned();
        by_event.entry(id).or_default().push(attempt);
    }
    for attempts in by_event.values_mut() {
        attempts.sort_by_key(|attempt| attempt.at);
    }
    by_event
}

/// Creates a `*` subscription to `receiver` and returns its id.
async fn subscribe(server: &TestServer, receiver: &Receiver) -> String {
    let created = api_post(server.addr, "/webhooks", json!({"url": receiver.url(), "events": ["*"]})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json["id"].as_str().unwrap().to_owned()
}

/// Pending and held deliveries of a subscription.
async fn queue(server: &TestServer, id: &str) -> (u64, u64) {
    let view = api_get(server.addr, &format!("/webhooks/{id}")).await;
    let health = &view.json["health"];
    (health["pending"].as_u64().unwrap(), health["held"].as_u64().unwrap())
}

/// Checks one subscription that is not disabled: every event delivered or dead-lettered, at
/// most one in-time acceptance, none after it, the schedule honoured. Returns (delivered, dead,
/// attempts, timeouts, extra acceptances after a timeout, smallest gap / its delay).
fn check_deliveries(
    name: &str,
    receiver: &Receiver,
    events: &[String],
    dead: &HashMap<String, u64>,
) -> (usize, usize, usize, usize, usize, f64) {
    let by_event = attempts_by_event(receiver);
    let (mut delivered, mut dead_lettered, mut attempts, mut timeouts, mut repeats) = (0, 0, 0, 0, 0);
    let mut smallest_ratio = f64::MAX;
    for id in events {
        let tries = by_event.get(id).unwrap_or_else(|| panic!("{name}: {id} never attempted"));
        attempts += tries.len();
        timeouts += tries.iter().filter(|t| t.slept >= TIMEOUT).count();
        let in_time = tries.iter().filter(|t| accepted_in_time(t)).count();
        assert!(in_time <= 1, "{name}: {id} accepted in time {in_time} times: {tries:?}");
        // Accepted more than once: only when an earlier acceptance came too late (a timeout).
        let accepted = tries.iter().filter(|t| (200..300).contains(&t.status)).count();
        if accepted > 1 {
            let first_accepted = tries.iter().position(|t| (200..300).contains(&t.status)).unwrap();
            assert!(tries[first_accepted].slept >= TIMEOUT, "{name}: {id} delivered twice: {tries:?}");
            repeats += accepted - 1;
        }
        match (in_time, dead.get(id)) {
            (1, None) => {
                assert!(accepted_in_time(tries.last().unwrap()), "{name}: {id} retried after success");
                delivered += 1;
            }
            (0, Some(dlq_attempts)) => {
                assert_eq!(tries.len(), DELAYS.len() + 1, "{name}: {id} dead-lettered early: {tries:?}");
                assert_eq!(*dlq_attempts, tries.len() as u64, "{name}: {id} DLQ attempts");
                dead_lettered += 1;
            }
            (_, dlq) => {
                panic!("{name}: {id} neither delivered nor dead-lettered, or both: {dlq:?} {tries:?}")
            }
        }
        for (n, pair) in tries.windows(2).enumerate() {
            let gap = pair[1].at - pair[0].at;
            // The receiver stamps arrival; the delay starts after the result, so it only adds.
            assert!(gap + Duration::from_millis(5) >= DELAYS[n], "{name}: {id} retry {n} after {gap:?}");
            smallest_ratio = smallest_ratio.min(gap.as_secs_f64() / DELAYS[n].as_secs_f64());
        }
    }
    (delivered, dead_lettered, attempts, timeouts, repeats, smallest_ratio)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_receivers_lose_nothing_and_follow_the_retry_schedule() {
    let started = Instant::now();
    let server = TestServer::start_with(|config| {
        config.delivery.allow_private_targets = true;
        config.delivery.timeout = TIMEOUT;
        config.retry.delays = DELAYS.to_vec();
    })
    .await;
    let flaky = Receiver::start(flapping()).await;
    let failing = Receiver::start(Script::Always(500)).await;
    let gone = Receiver::start(Script::Always(410)).await;
    let flaky_id = subscribe(&server, &flaky).await;
    let failing_id = subscribe(&server, &failing).await;
    let gone_id = subscribe(&server, &gone).await;

    // Events arrive over about a second, so the receivers flap while deliveries are in flight.
    let mut events = Vec::new();
    for n in 0..EVENTS {
        let answer = post_event(&server, &order_event(&format!("flap-{n}"))).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        events.push(answer.json["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_processed(server.addr).await;
    for id in [&flaky_id, &failing_id] {
        eventually(30, "every delivery delivered or dead-lettered", || async {
            (queue(&server, id).await.0 == 0).then_some(())
        })
        .await;
    }

    let dlq = api_get(server.addr, "/dlq?kind=delivery&limit=10000").await;
    assert_eq!(dlq.status, 200, "{}", dlq.text);
    let mut dead: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    for entry in dlq.json["deadLetters"].as_array().unwrap() {
        assert_eq!(entry["kind"], "delivery");
        let webhook = entry["webhookId"].as_str().unwrap();
        let subscription = [&flaky_id, &failing_id, &gone_id].into_iter().find(|id| *id == webhook).unwrap();
        let previous = dead
            .entry(subscription.as_str())
            .or_default()
            .insert(entry["eventId"].as_str().unwrap().to_owned(), entry["attempts"].as_u64().unwrap());
        assert!(previous.is_none(), "one dead letter per delivery: {entry}");
    }
    assert!(!dead.contains_key(gone_id.as_str()), "a 410 holds, it does not dead-letter");

    let flaky_counts =
        check_deliveries("flapping", &flaky, &events, &dead.remove(flaky_id.as_str()).unwrap_or_default());
    let failing_counts =
        check_deliveries("failing", &failing, &events, &dead.remove(failing_id.as_str()).unwrap_or_default());
    assert!(
        flaky_counts.0 > 0 && flaky_counts.1 > 0,
        "the flapping receiver both took and lost some: {flaky_counts:?}"
    );
    assert!(flaky_counts.3 > 0, "some attempts timed out: {flaky_counts:?}");
    assert_eq!((failing_counts.0, failing_counts.1), (0, EVENTS), "the failing receiver dead-letters all");

    // 410: disabled at once, every delivery kept (held) for when it is enabled again.
    let view = api_get(server.addr, &format!("/webhooks/{gone_id}")).await;
    assert_eq!(view.json["active"], false, "{}", view.text);
    let gone_attempts = gone.received();
    assert!(!gone_attempts.is_empty() && gone_attempts.iter().all(|a| a.status == 410));
    let (pending, held) = queue(&server, &gone_id).await;
    assert_eq!((pending, held), (0, EVENTS as u64), "deliveries of the disabled subscription are held");
    let gone_events: HashSet<_> =
        gone_attempts.iter().map(|a| a.headers["webhook-id"].to_str().unwrap().to_owned()).collect();

    let (delivered, dead_lettered, attempts, timeouts, repeats, ratio) = flaky_counts;
    eprintln!(
        "fault_receiver: {EVENTS} events × 3 subscriptions; flapping: {delivered} delivered, {dead_lettered} \
         dead-lettered, {attempts} attempts, {timeouts} timed out, {repeats} accepted again after a timeout, \
         smallest retry gap {ratio:.2} × its delay; failing: {} dead-lettered in {} attempts \
         (smallest gap {:.2} × delay); 410: {} attempts on {} events, then {held} held; {:.1} s",
        failing_counts.1,
        failing_counts.2,
        failing_counts.5,
        gone_attempts.len(),
        gone_events.len(),
        started.elapsed().as_secs_f64()
    );
    server.stop().await;
}
