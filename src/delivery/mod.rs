//! Outbound delivery: tradehook as a webhook provider and a router to the user's services.
//!
//! The worker queues deliveries in the same transaction that marks their event processed (an
//! outbox), so no processed event can miss its deliveries, even across `kill -9`. The
//! [`Dispatcher`] claims due deliveries, attempts them concurrently (bounded by
//! `[delivery] concurrency`), and commits the results of many attempts in one transaction:
//! delivered, retry at a time from the `[retry]` schedule with jitter (or later, if the receiver
//! sent `Retry-After`), dead letter of kind `delivery` when the retries run out, or held while
//! the subscription is disabled. A delivery is claimed again only after its result is committed,
//! so a receiver sees each delivery at least once and, short of a crash between its answer and
//! our commit, exactly once; the `webhook-id` header (the event id) lets it drop repeats.
//!
//! Subscription health rides along: a success ends a failing streak; a streak longer than
//! `[delivery] disable_after`, or one `410 Gone`, disables the subscription and holds its queue.

pub mod attempt;
pub mod guard;
pub mod route;
pub mod sign;
pub mod subscription;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerConfig;
use crate::config::DeliveryConfig;
use crate::notify::Notifier;
use crate::sinks::nats::NatsSink;
use crate::sinks::SinkError;
use crate::store::{
    now_ms, rfc3339, DeliveryNext, DeliveryResult, DueDelivery, HealthChange, SharedStore, StoreError,
};
use crate::worker::retry::{append_history, RetryPolicy};
use attempt::{DeliveryClient, Verdict};
use subscription::SubscriptionSet;

/// Most results committed in one transaction.
const COMMIT_BATCH: usize = 2000;
/// Failed attempts of one delivery after which its subscription is reported as failing.
const FAILING_ALERT_AFTER: u32 = 3;
/// How long shutdown waits for attempts in flight before leaving them for the next start.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What one attempt decided, ready to commit.
#[derive(Debug)]
struct Outcome {
    result: DeliveryResult,
    health: Vec<(String, HealthChange)>,
    /// The subscription was disabled: refresh the in-memory set after the commit.
    disabled: bool,
}

/// Everything an attempt needs, shared by the attempt tasks.
struct Context {
    client: DeliveryClient,
    nats: Arc<NatsSink>,
    notifier: Arc<Notifier>,
    broker: BrokerConfig,
    /// The client of the `http` broker: its URL is the operator's, so private addresses are fine.
    broker_client: DeliveryClient,
    /// Where the paper broker stores its order events.
    store: SharedStore,
    subscriptions: Arc<SubscriptionSet>,
    retry: RetryPolicy,
    config: DeliveryConfig,
    /// Start of each subscription's failing streak (unix ms), as far as this process knows.
    failing_since: std::sync::Mutex<HashMap<String, i64>>,
    /// See [`Targets::entry_max_age`].
    entry_max_age: Option<Duration>,
    /// The store's namespace (`Store::order_id_namespace`), read on the first NATS publish.
    namespace: tokio::sync::OnceCell<String>,
}

/// The outbound clients a dispatcher uses.
pub struct Targets {
    /// Webhooks (`forward:`).
    pub client: DeliveryClient,
    /// NATS (`nats:`).
    pub nats: Arc<NatsSink>,
    /// Operational alerts (a subscription disabled or failing).
    pub notifier: Arc<Notifier>,
    /// The broker of order intents (`broker:`).
    pub broker: BrokerConfig,
    /// `signal_to_order.max_signal_age`: an entry order whose signal is older when it would be
    /// sent (after broker retries, or replayed from the dead-letter queue) is not sent.
    pub entry_max_age: Option<Duration>,
}

/// Claims due deliveries, attempts them and commits the results. See the module docs.
pub struct Dispatcher {
    store: SharedStore,
    context: Arc<Context>,
}

impl Dispatcher {
    /// A dispatcher over `store` with the current `subscriptions`, sending webhooks with
    /// `client`, NATS messages with `nats`, and raising operational alerts with `notifier`.
    pub fn new(
        store: SharedStore,
        subscriptions: Arc<SubscriptionSet>,
        targets: Targets,
        retry: RetryPolicy,
        config: DeliveryConfig,
    ) -> Self {
        let broker_config = DeliveryConfig { allow_private_targets: true, ..config.clone() };
        let broker_client = DeliveryClient::new(&broker_config).unwrap_or_else(|_| targets.client.clone());
        let context = Context {
            client: targets.client,
            nats: targets.nats,
            notifier: targets.notifier,
            broker: targets.broker,
            entry_max_age: targets.entry_max_age,
            broker_client,
            store: store.clone(),
            subscriptions,
            retry,
            config,
            failing_since: std::sync::Mutex::new(HashMap::new()),
            namespace: tokio::sync::OnceCell::new(),
        };
        Dispatcher { store, context: Arc::new(context) }
    }

    /// Delivers until `shutdown`, then waits briefly for attempts in flight.
    ///
    /// Three stages run at once so none waits for another: this loop claims due deliveries and
    /// starts their attempts, the attempts run as tasks, and a committer task commits their
    /// outcomes in batches. A delivery stays in `in_flight` (never claimed twice) from its claim
    /// until its outcome is committed; the committer reports committed ids back and this loop
    /// forgets them only between two reads, so no read that began before a commit can hand out
    /// a delivery that commit finished.
    pub async fn run(self, shutdown: CancellationToken) {
        let ready = self.store.deliveries_ready();
        {
            let mut streaks = lock(&self.context.failing_since);
            for subscription in self.context.subscriptions.snapshot().iter() {
                if let Some(since) = subscription.failing_since {
                    streaks.insert(subscription.id.clone(), since);
                }
            }
        }
        let (outcomes, received) = mpsc::unbounded_channel::<(i64, Outcome)>();
        let mut in_flight: HashSet<i64> = HashSet::new();
        let (committed, mut done) = mpsc::unbounded_channel::<Vec<i64>>();
        let freed = Arc::new(tokio::sync::Notify::new());
        let permits = Arc::new(Semaphore::new(self.context.config.concurrency));
        let committer = tokio::spawn(commit_loop(
            self.store.clone(),
            self.context.subscriptions.clone(),
            received,
            committed,
        ));
        while !shutdown.is_cancelled() {
            while let Ok(ids) = done.try_recv() {
                for id in ids {
                    in_flight.remove(&id);
                }
            }
            let (started, only_in_flight) =
                match self.claim(&permits, &mut in_flight, &outcomes, &freed).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read due deliveries; trying again shortly");
                        (0, true)
                    }
                };
            if started > 0 && permits.available_permits() > 0 {
                continue;
            }
            // Wait for room (an attempt finished or a result committed), new deliveries, the next
            // due retry, or shutdown.
            let pause = if only_in_flight { Duration::from_secs(1) } else { self.until_next_due().await };
            tokio::select! {
                _ = freed.notified() => {}
                Some(ids) = done.recv() => {
                    for id in ids {
                        in_flight.remove(&id);
                    }
                }
                _ = ready.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        // Let attempts in flight finish (bounded), then the committer drains and stops.
        let all = u32::try_from(self.context.config.concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await.is_err() {
            tracing::info!("deliveries still in flight at shutdown will be retried after restart");
        }
        drop(outcomes);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, committer).await;
    }

    /// Claims due deliveries up to the free permits and starts their attempts. Returns how many
    /// started and whether every due delivery read was already in flight.
    async fn claim(
        &self,
        permits: &Arc<Semaphore>,
        in_flight: &mut HashSet<i64>,
        outcomes: &mpsc::UnboundedSender<(i64, Outcome)>,
        freed: &Arc<tokio::sync::Notify>,
    ) -> Result<(usize, bool), StoreError> {
        let free = permits.available_permits();
        if free == 0 {
            return Ok((0, false));
        }
        // A claiming store hands out only deliveries not in flight, and holds each for its claim
        // time: ask for no more than will start now.
        let busy = if self.store.shared() { 0 } else { in_flight.len() };
        let limit = u32::try_from(free + busy).unwrap_or(u32::MAX).min(20_000);
        let due = self.store.due_deliveries(now_ms(), limit, &*in_flight).await?;
        if !due.is_empty() {
            // Another node may have changed a subscription (its URL, its secret) just now.
            if let Err(error) = self.context.subscriptions.follow(&self.store).await {
                tracing::debug!(%error, "cannot follow the stored subscriptions; using the shared copy");
            }
        }
        let read = due.len();
        let mut started = 0;
        for delivery in due {
            if in_flight.contains(&delivery.id) {
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else { break };
            in_flight.insert(delivery.id);
            started += 1;
            let context = self.context.clone();
            let outcomes = outcomes.clone();
            let freed = freed.clone();
            tokio::spawn(async move {
                let id = delivery.id;
                let outcome =
                    match std::panic::AssertUnwindSafe(attempt(&context, &delivery)).catch_unwind().await {
                        Ok(outcome) => outcome,
                        Err(_) => failed(&context, &delivery, None, "delivery attempt panicked".into(), None),
                    };
                drop(permit);
                freed.notify_one();
                let _ = outcomes.send((id, outcome));
            });
        }
        Ok((started, read > 0 && started == 0))
    }

    /// How long until the next pending delivery is due, between 5 ms and 1 s.
    async fn until_next_due(&self) -> Duration {
        match self.store.next_delivery_due().await {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                .clamp(Duration::from_millis(5), Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }
}

/// Commits outcomes in batches as they come, until every sender is gone, and reports the
/// committed delivery ids on `committed`. A failed commit is tried again with the same outcomes
/// (their deliveries stay claimed meanwhile; after a crash they are pending and attempted again).
async fn commit_loop(
    store: SharedStore,
    subscriptions: Arc<SubscriptionSet>,
    mut received: mpsc::UnboundedReceiver<(i64, Outcome)>,
    committed: mpsc::UnboundedSender<Vec<i64>>,
) {
    let mut batch: Vec<(i64, Outcome)> = Vec::new();
    loop {
        if batch.is_empty() {
            match received.recv().await {
                Some(outcome) => batch.push(outcome),
                None => return,
            }
        }
        while batch.len() < COMMIT_BATCH {
            match received.try_recv() {
                Ok(outcome) => batch.push(outcome),
                Err(_) => break,
            }
        }
        match commit(&store, &subscriptions, &batch).await {
            Ok(()) => {
                let _ = committed.send(batch.drain(..).map(|(id, _)| id).collect());
            }
            Err(error) => {
                tracing::warn!(%error, "cannot commit delivery results; trying again shortly");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Commits one batch of outcomes and their subscription health changes.
async fn commit(
    store: &SharedStore,
    subscriptions: &SubscriptionSet,
    outcomes: &[(i64, Outcome)],
) -> Result<(), StoreError> {
    let mut results = Vec::with_capacity(outcomes.len());
    let mut health: Vec<(String, HealthChange)> = Vec::new();
    let mut disabled = false;
    for (_, outcome) in outcomes {
        results.push(outcome.result.clone());
        health.extend(outcome.health.iter().cloned());
        disabled |= outcome.disabled;
    }
    store.commit_deliveries(results, compact_health(health)).await?;
    for (_, outcome) in outcomes {
        count(&outcome.result.next);
    }
    if disabled {
        if let Err(error) = subscriptions.reload(|| store.subscriptions()).await {
            tracing::warn!(%error, "cannot reload subscriptions");
        }
    }
    Ok(())
}

/// Refuses to send a new entry order (a `place` of role `entry` or `bracketed_entry`) while the
/// kill switch is on, or once its signal is older than `max_signal_age`: one queued before the
/// switch was turned on, waiting for a retry, or replayed from the dead-letter queue (a stale
/// signal must not open a position however it comes back). A signal's own stop-loss and
/// take-profit wait for their entry and go only once it was sent. Everything else that reduces
/// risk still goes: other legs, closes, the margin guard's reductions, amends and cancels. A
/// refusal is final: the intent fails with this reason.
async fn held_back(context: &Context, delivery: &DueDelivery) -> Result<(), SinkError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kind {
        op: Option<crate::trading::actions::IntentOp>,
        role: Option<crate::trading::actions::Role>,
        created_at: Option<chrono::DateTime<chrono::Utc>>,
        parent_client_order_id: Option<String>,
    }
    use crate::trading::actions::{IntentOp, Role};
    let Ok(kind) = serde_json::from_slice::<Kind>(&delivery.body) else { return Ok(()) };
    if kind.op != Some(IntentOp::Place) {
        return Ok(());
    }
    let entry = kind.role.is_some_and(Role::is_entry);
    if entry && context.store.kill_switch().await.map_err(|e| SinkError::retriable(e.to_string()))? {
        return Err(SinkError::permanent("the kill switch is on: this entry order is not sent"));
    }
    let stale = context.entry_max_age.zip(kind.created_at).and_then(|(max_age, at)| {
        let age = chrono::Utc::now().signed_duration_since(at);
        age.to_std().is_ok_and(|age| age > max_age).then(|| (age.num_seconds(), humantime::format_duration(max_age)))
    });
    if let (true, Some((age, max_age))) = (entry, stale) {
        return Err(SinkError::permanent(format!(
            "its signal is {age} s old, older than signal_to_order.max_signal_age {max_age}: this entry order is not sent"
        )));
    }
    // A signal's own stop-loss or take-profit protects the position its entry opens: it goes
    // once the entry went, never when the entry did not (refused by the broker, held by the
    // kill switch or its age, dead-lettered), and waits while the entry is still on its way.
    if let Some(parent) = kind.parent_client_order_id {
        let outcomes =
            context.store.intent_outcomes(vec![parent.clone()]).await.map_err(|e| SinkError::retriable(e.to_string()))?;
        match outcomes.first().map(|(_, outcome)| outcome.as_str()) {
            Some("sent") => {}
            Some("queued") => {
                return Err(SinkError::retriable(format!("waiting for its entry order {parent} to be sent")));
            }
            _ => {
                return Err(SinkError::permanent(format!(
                    "its entry order {parent} was not sent: this leg is not sent either"
                )))
            }
        }
    }
    Ok(())
}

/// Sends an intent to its broker (`broker:paper` or `broker:http`), unless it is held back
/// ([`held_back`]).
async fn broker(context: &Context, delivery: &DueDelivery) -> Result<String, SinkError> {
    held_back(context, delivery).await?;
    if delivery.target == "broker:paper" {
        paper_broker(context, delivery).await
    } else {
        http_broker(context, delivery).await
    }
}

/// Executes an intent on the paper broker: its order events go into the store under source
/// `paper` (ids derived from the client order id, so a re-sent intent is a duplicate) and are
/// processed like any venue's.
async fn paper_broker(context: &Context, delivery: &DueDelivery) -> Result<String, SinkError> {
    let intent: serde_json::Value = serde_json::from_slice(&delivery.body)
        .map_err(|e| SinkError::permanent(format!("the intent is not JSON: {e}")))?;
    let now = rfc3339(now_ms());
    let events = crate::broker::paper::execute(&intent, &now).map_err(SinkError::permanent)?;
    let mut answers = Vec::new();
    for (key, body) in events {
        let event = crate::store::NewEvent {
            source: crate::broker::PAPER_SOURCE.into(),
            event_key: key,
            event_type: body.get("event").and_then(|e| e.as_str()).map(str::to_owned),
            body: bytes::Bytes::from(body.to_string()),
            headers: "{}".into(),
            client_ip: "paper".into(),
            received_at: now_ms(),
        };
        let appended = context.store.append(event).await.map_err(|e| SinkError::retriable(e.to_string()))?;
        answers.push(match appended {
            crate::store::Appended::Accepted(id) | crate::store::Appended::Duplicate(id) => id,
        });
    }
    Ok(format!("paper: {}", answers.join(", ")))
}

/// Sends an intent to the REST broker, signed the seed 001 way; 2xx is success.
async fn http_broker(context: &Context, delivery: &DueDelivery) -> Result<String, SinkError> {
    let (Some(url), Some(key), Some(secret)) =
        (&context.broker.url, &context.broker.api_key, &context.broker.secret)
    else {
        return Err(SinkError::permanent("[broker] url, api_key and secret are needed for kind = \"http\""));
    };
    let path = reqwest::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_else(|_| "/".into());
    let headers =
        crate::broker::signed_headers(key, secret, &path, now_ms().div_euclid(1000), &delivery.body);
    let (record, verdict) =
        context.broker_client.post_with_headers(url, headers, delivery.body.clone()).await;
    match verdict {
        Verdict::Delivered => Ok(record.response.unwrap_or_default()),
        // 409: the broker already has this client order id (an earlier attempt that timed out
        // on our side reached it): the intent is placed.
        Verdict::Failed { .. } if record.status_code == Some(409) => {
            Ok(format!("already placed (409): {}", record.response.unwrap_or_default()))
        }
        Verdict::Gone => Err(SinkError::permanent("the broker answered 410 Gone")),
        Verdict::Failed { error, .. } => {
            // A 4xx other than 408/429 is the broker refusing this order: retrying will not help.
            let permanent =
                record.status_code.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
            let message = match &record.response {
                Some(body) => format!("{error}: {body}"),
                None => error,
            };
            Err(if permanent { SinkError::permanent(message) } else { SinkError::retriable(message) })
        }
    }
}

/// Keeps, per subscription, what matters of a batch's health changes: the last success or
/// failure (in order), every disable, the latest pause.
fn compact_health(changes: Vec<(String, HealthChange)>) -> Vec<(String, HealthChange)> {
    let mut last_result: HashMap<String, usize> = HashMap::new();
    let mut pause: HashMap<String, i64> = HashMap::new();
    for (i, (id, change)) in changes.iter().enumerate() {
        match change {
            HealthChange::Succeeded(_) | HealthChange::Failed(..) => {
                last_result.insert(id.clone(), i);
            }
            HealthChange::PauseUntil(until) => {
                let entry = pause.entry(id.clone()).or_insert(*until);
                *entry = (*entry).max(*until);
            }
            HealthChange::Disable(_) => {}
        }
    }
    let mut out = Vec::new();
    for (i, (id, change)) in changes.into_iter().enumerate() {
        let keep = match &change {
            HealthChange::Succeeded(_) | HealthChange::Failed(..) => last_result.get(&id) == Some(&i),
            HealthChange::Disable(_) => true,
            HealthChange::PauseUntil(until) => {
                let latest = pause.get(&id) == Some(until);
                if latest {
                    pause.remove(&id);
                }
                latest
            }
        };
        if keep {
            out.push((id, change));
        }
    }
    out
}

fn count(next: &DeliveryNext) {
    let outcome = match next {
        DeliveryNext::Delivered => "delivered",
        DeliveryNext::Retry { .. } => "retry",
        DeliveryNext::Dead { .. } => "dead",
        DeliveryNext::Held => "held",
        DeliveryNext::Tested { .. } => "test",
    };
    metrics::counter!("tradehook_deliveries_total", "outcome" => outcome).increment(1);
}

/// Publishes a delivery's event to NATS under a message id of its own: the store's namespace,
/// the event and the subject. JetStream drops a second message with one id, so the id must tell
/// apart what is not a repeat: one event sent to two subjects of one stream, and the `evt_1` of
/// two stores (two gateways, or one whose data was reset) publishing into one stream. Retries and
/// replays of one delivery keep it, and JetStream stores them once.
async fn publish(context: &Context, subject: &str, event_id: &str, delivery: &DueDelivery) -> Result<String, SinkError> {
    let namespace = context
        .namespace
        .get_or_try_init(|| context.store.order_id_namespace())
        .await
        .map_err(|e| SinkError::retriable(format!("cannot read the store's namespace: {e}")))?;
    let msg_id = match namespace.as_str() {
        "" => format!("{event_id}:{subject}"),
        namespace => format!("{namespace}:{event_id}:{subject}"),
    };
    let published = context.nats.publish(subject, &msg_id, delivery.body.clone()).await?;
    Ok(match (published.stream, published.sequence) {
        (Some(stream), Some(seq)) if published.duplicate => format!("stream {stream} already had it as #{seq}"),
        (Some(stream), Some(seq)) => format!("stored in stream {stream} as #{seq}"),
        _ => "published".to_owned(),
    })
}

/// One attempt of one delivery, decided.
async fn attempt(context: &Context, delivery: &DueDelivery) -> Outcome {
    let message_id = crate::store::event_id(delivery.seq);
    if let Some(name) = delivery.target.strip_prefix("forward:") {
        let Some(subscription) = current_subscription(context, name).await else {
            let error =
                format!("no subscription with id or name `{name}`; create it, then replay the dead letter");
            return failed(context, delivery, None, error, None);
        };
        if !subscription.active {
            return held(delivery, Some(subscription.id));
        }
        {
            // A change through the API (re-enabling, a new URL) starts a new streak.
            let mut streaks = lock(&context.failing_since);
            if streaks.get(&subscription.id).is_some_and(|since| *since < subscription.updated_at) {
                streaks.remove(&subscription.id);
            }
        }
        let (record, verdict) = context
            .client
            .post(&subscription.url, &subscription.secret, &message_id, delivery.body.clone())
            .await;
        metrics::histogram!("tradehook_delivery_seconds").record(record.latency_ms / 1000.0);
        let webhook_id = Some(subscription.id.clone());
        return match verdict {
            Verdict::Delivered => delivered(context, delivery, webhook_id, record),
            Verdict::Gone => {
                let reason = format!("disabled at {}: the endpoint answered 410 Gone", rfc3339(record.at));
                let failed = HealthChange::Failed(record.at, "answered 410 Gone".into());
                let mut outcome = disable(context, delivery, subscription.id.clone(), reason, Some(record));
                // The subscription's health shows the answer that disabled it as its last error.
                outcome.health.insert(0, (subscription.id, failed));
                outcome
            }
            Verdict::Failed { error, not_before } => {
                let mut record = record;
                record.error = Some(error.clone());
                confirm_streak(context, &subscription.id).await;
                failed(context, delivery, webhook_id, error, Some((record, not_before)))
            }
        };
    }
    let started = Instant::now();
    let at = now_ms();
    let sent = if let Some(subject) = delivery.target.strip_prefix("nats:") {
        publish(context, subject, &message_id, delivery).await
    } else if matches!(delivery.target.as_str(), "broker:paper" | "broker:http") {
        broker(context, delivery).await
    } else if let Some(command) = delivery.target.strip_prefix("exec:") {
        let event_type = delivery.event_type.as_deref().unwrap_or("");
        let env = [("TRADEHOOK_EVENT_ID", message_id.as_str()), ("TRADEHOOK_EVENT_TYPE", event_type)];
        crate::sinks::exec::run(command, &delivery.body, context.config.exec_timeout, &env)
            .await
            .map(|out| out.stdout)
    } else {
        Err(SinkError::permanent(format!("`{}` is not a delivery target", delivery.target)))
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut record = crate::store::AttemptRecord::unanswered(at, latency_ms, None);
    match sent {
        Ok(response) => {
            record.response = Some(response).filter(|r| !r.is_empty());
            delivered(context, delivery, None, record)
        }
        Err(error) => {
            record.error = Some(error.message.clone());
            let mut outcome = failed(context, delivery, None, error.message.clone(), Some((record, None)));
            if !error.retriable && matches!(outcome.result.next, DeliveryNext::Retry { .. }) {
                let attempts = outcome.result.attempts;
                outcome.result.next = DeliveryNext::Dead {
                    reason: format!("failed {attempts} times, not retried: {}", error.message),
                };
            }
            outcome
        }
    }
}

/// How old the shared copy of the subscriptions may be before an attempt that finds its
/// subscription missing or inactive reads them again.
const REREAD_AFTER: Duration = Duration::from_millis(250);

/// The subscription a `forward:` target names. The shared copy is the answer when it shows the
/// subscription active; when it shows it missing or inactive, the store is asked (and the copy
/// replaced): the copy may lag a change just committed — an enable through the API whose
/// refresh is still on its way, or another node's change — and holding or failing on a stale
/// copy would spend an attempt or hold a delivery its subscription is waiting for.
async fn current_subscription(context: &Context, name: &str) -> Option<subscription::Subscription> {
    let cached = context.subscriptions.find(name);
    // At most one read per quarter second: many deliveries to a name never created must not
    // each read the table.
    if cached.as_ref().is_some_and(|s| s.active) || context.subscriptions.read_within(REREAD_AFTER) {
        return cached;
    }
    match context.subscriptions.reload(|| context.store.subscriptions()).await {
        Ok(()) => context.subscriptions.find(name),
        Err(error) => {
            tracing::debug!(%error, "cannot re-read the subscriptions; using the shared copy");
            cached
        }
    }
}

fn delivered(
    context: &Context,
    delivery: &DueDelivery,
    webhook_id: Option<String>,
    record: crate::store::AttemptRecord,
) -> Outcome {
    let mut health = Vec::new();
    if let Some(id) = &webhook_id {
        lock(&context.failing_since).remove(id);
        health.push((id.clone(), HealthChange::Succeeded(record.at)));
    }
    let result = result_of(delivery, webhook_id, Some(record), DeliveryNext::Delivered);
    Outcome { result, health, disabled: false }
}

/// The result of `delivery` with its attempts and history unchanged.
fn result_of(
    delivery: &DueDelivery,
    webhook_id: Option<String>,
    attempt: Option<crate::store::AttemptRecord>,
    next: DeliveryNext,
) -> DeliveryResult {
    DeliveryResult {
        delivery_id: Some(delivery.id),
        seq: Some(delivery.seq),
        webhook_id,
        attempts: delivery.attempts,
        history: delivery.history.clone(),
        attempt,
        next,
        settles_intent: delivery.target.starts_with("broker:"),
    }
}

fn held(delivery: &DueDelivery, webhook_id: Option<String>) -> Outcome {
    let result = result_of(delivery, webhook_id, None, DeliveryNext::Held);
    Outcome { result, health: Vec::new(), disabled: false }
}

fn disable(
    context: &Context,
    delivery: &DueDelivery,
    webhook_id: String,
    reason: String,
    record: Option<crate::store::AttemptRecord>,
) -> Outcome {
    tracing::warn!(webhook_id, %reason, "subscription disabled");
    lock(&context.failing_since).remove(&webhook_id);
    context.notifier.raise("subscription_disabled", &webhook_id, reason.clone());
    let mut outcome = held(delivery, Some(webhook_id.clone()));
    outcome.result.attempt = record;
    outcome.health.push((webhook_id, HealthChange::Disable(reason)));
    outcome.disabled = true;
    outcome
}

/// Before a failure can disable a subscription for failing since this node's streak began: on
/// a shared store another node may have delivered since (its success cleared the stored
/// streak), so the stored streak is read and this node's follows it. Read only then — once per
/// `disable_after` at most while nothing succeeds.
async fn confirm_streak(context: &Context, id: &str) {
    if !context.store.shared() {
        return;
    }
    let now = now_ms();
    let limit = i64::try_from(context.config.disable_after.as_millis()).unwrap_or(i64::MAX);
    let Some(since) = lock(&context.failing_since).get(id).copied() else { return };
    if now - since < limit {
        return;
    }
    if let Err(error) = context.subscriptions.reload(|| context.store.subscriptions()).await {
        tracing::debug!(%error, "cannot re-read the subscriptions; judging the streak on this node's count");
        return;
    }
    let Some(stored) = context.subscriptions.find(id) else { return };
    let mut streaks = lock(&context.failing_since);
    match stored.failing_since {
        // Failures this node recorded long ago are stored; none stored now means a success
        // since, on another node: a new streak starts with this failure.
        None => {
            streaks.insert(id.to_owned(), now);
        }
        Some(stored_since) if stored_since > since => {
            streaks.insert(id.to_owned(), stored_since);
        }
        Some(_) => {}
    }
}

/// A failed attempt (or a delivery that could not be attempted): retry by the schedule, not
/// before a `Retry-After`; dead letter when the retries are used up; disable the subscription
/// when it has failed without a success for longer than `disable_after`.
fn failed(
    context: &Context,
    delivery: &DueDelivery,
    webhook_id: Option<String>,
    error: String,
    attempt: Option<(crate::store::AttemptRecord, Option<Duration>)>,
) -> Outcome {
    let now = now_ms();
    let attempts = delivery.attempts.saturating_add(1);
    let history = append_history(&delivery.history, now, &error);
    let (record, not_before) = match attempt {
        Some((record, not_before)) => (record, not_before.map(|d| d.min(context.config.max_retry_after))),
        None => (crate::store::AttemptRecord::unanswered(now, 0.0, Some(error.clone())), None),
    };
    let mut health = Vec::new();
    if let Some(id) = &webhook_id {
        health.push((id.clone(), HealthChange::Failed(now, error.clone())));
        if attempts >= FAILING_ALERT_AFTER {
            let message = format!(
                "delivery of {} failed {attempts} times; last: {error}",
                crate::store::event_id(delivery.seq)
            );
            context.notifier.raise("subscription_failing", id, message);
        }
        let since = *lock(&context.failing_since).entry(id.clone()).or_insert(now);
        let limit = i64::try_from(context.config.disable_after.as_millis()).unwrap_or(i64::MAX);
        if now - since >= limit {
            lock(&context.failing_since).remove(id);
            let reason = format!(
                "disabled at {}: failing without a success since {} (disable_after {})",
                rfc3339(now),
                rfc3339(since),
                humantime::format_duration(context.config.disable_after)
            );
            let mut outcome = disable(context, delivery, id.clone(), reason, Some(record));
            outcome.result.attempts = attempts;
            outcome.result.history = history;
            outcome.health.insert(0, health.remove(0));
            return outcome;
        }
    }
    let next = match context.retry.next_delay(attempts) {
        Some(delay) => {
            let wait = not_before.map_or(delay, |at_least| delay.max(at_least));
            let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            if let (Some(id), Some(at_least)) = (&webhook_id, not_before) {
                // The receiver's pause, not this delivery's backoff: the others wait only that.
                let until = now + i64::try_from(at_least.as_millis()).unwrap_or(i64::MAX / 2);
                health.push((id.clone(), HealthChange::PauseUntil(until)));
            }
            DeliveryNext::Retry { at }
        }
        None => DeliveryNext::Dead { reason: format!("failed {attempts} times: {error}") },
    };
    let mut result = result_of(delivery, webhook_id, Some(record), next);
    result.attempts = attempts;
    result.history = history;
    Outcome { result, health, disabled: false }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_changes_keep_the_last_result_every_disable_and_the_latest_pause() {
        let changes = vec![
            ("a".to_string(), HealthChange::Failed(1, "x".into())),
            ("a".to_string(), HealthChange::PauseUntil(50)),
            ("b".to_string(), HealthChange::Succeeded(2)),
            ("a".to_string(), HealthChange::Succeeded(3)),
            ("a".to_string(), HealthChange::PauseUntil(90)),
            ("b".to_string(), HealthChange::Disable("gone".into())),
        ];
        assert_eq!(
            compact_health(changes),
            vec![
                ("b".to_string(), HealthChange::Succeeded(2)),
                ("a".to_string(), HealthChange::Succeeded(3)),
                ("a".to_string(), HealthChange::PauseUntil(90)),
                ("b".to_string(), HealthChange::Disable("gone".into())),
            ]
        );
    }
}
