//! `tradehook bench --mode deliveries`: how many signed deliveries per second the dispatcher
//! gets through to a local receiver.
//!
//! Real parts end to end: a SQLite store (WAL, `synchronous=FULL`) in a temporary directory,
//! `count` events stored and processed with one queued delivery each (the outbox rows the worker
//! writes), one subscription, the real [`Dispatcher`] and HTTP client, and the bare hyper + HMAC
//! limit receiver (on its own runtime thread, as another process would be) that answers 200
//! only to a valid `X-Webhook-Signature`. The clock runs from the dispatcher's start until no
//! delivery is pending; each delivery's result (and its attempt log row) is committed by then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::bench::event::{run_nonce, unix_now, EventWriter};
use crate::config::{AlertsConfig, DeliveryConfig};
use crate::delivery::attempt::DeliveryClient;
use crate::delivery::subscription::{new_id, Subscription, SubscriptionSet};
use crate::delivery::{Dispatcher, Targets};
use crate::notify::Notifier;
use crate::sinks::nats::{NatsConfig, NatsSink};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{now_ms, NewDelivery, NewEvent, ProcessedBatch, SharedStore};
use crate::worker::retry::RetryPolicy;

/// Settings of a delivery benchmark.
#[derive(Debug, Clone)]
pub struct DeliveryBenchOptions {
    /// Deliveries to make.
    pub count: u64,
    /// Attempts in flight at once (`[delivery] concurrency`).
    pub concurrency: usize,
    /// Approximate body size in bytes.
    pub body_size: usize,
}

/// What a delivery benchmark measured.
#[derive(Debug, Clone)]
pub struct DeliveryBenchReport {
    /// Deliveries queued.
    pub queued: u64,
    /// Deliveries the receiver accepted (2xx after checking the signature).
    pub delivered: u64,
    /// Attempts made (more than `delivered` when some failed and were retried).
    pub attempts: u64,
    /// From dispatcher start until nothing was pending.
    pub elapsed: Duration,
}

impl DeliveryBenchReport {
    /// Delivered per second.
    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": "deliveries",
            "queued": self.queued,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "seconds": self.elapsed.as_secs_f64(),
            "deliveriesPerSecond": self.per_second(),
        })
    }

    /// The report as text.
    pub fn render(&self) -> String {
        format!(
            "deliveries  {} queued, {} delivered with valid signatures in {:.2} s ({} attempts)\nthroughput  {:.0} signed deliveries/s to a local receiver",
            self.queued,
            self.delivered,
            self.elapsed.as_secs_f64(),
            self.attempts,
            self.per_second()
        )
    }
}

/// Runs the delivery benchmark in a temporary directory that is removed afterwards.
pub async fn run(options: DeliveryBenchOptions) -> anyhow::Result<DeliveryBenchReport> {
    let dir = std::env::temp_dir().join(format!("tradehook-bench-{}", run_nonce()));
    let result = run_in(&dir, options).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &std::path::Path, options: DeliveryBenchOptions) -> anyhow::Result<DeliveryBenchReport> {
    const SECRET: &str = "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC1iZW5jaA==";
    let receiver = start_receiver(SECRET)?;
    let sqlite = SqliteOptions {
        max_batch: 2000,
        queue_capacity: 100_000,
        max_backlog: u64::MAX,
        max_page_count: None,
    };
    let store: SharedStore = Arc::new(SqliteStore::open(&dir.join("bench.db"), sqlite)?);
    let url = format!("http://{receiver}/hook");
    let subscription = Subscription::new(new_id(), url, vec!["*".into()], SECRET.into(), now_ms());
    store.create_subscription(subscription.clone()).await?;
    queue_deliveries(&store, &subscription.id, options.count, options.body_size).await?;

    let config = DeliveryConfig {
        allow_private_targets: true,
        concurrency: options.concurrency,
        ..DeliveryConfig::default()
    };
    let client = DeliveryClient::new(&config).map_err(anyhow::Error::msg)?;
    let retry = RetryPolicy::new(vec![Duration::from_millis(100); 5]);
    let subscriptions = Arc::new(SubscriptionSet::new(vec![subscription.clone()]));
    let targets = Targets {
        client,
        nats: Arc::new(NatsSink::new(NatsConfig::default())),
        notifier: Arc::new(Notifier::new(&AlertsConfig::default())),
        broker: crate::broker::BrokerConfig::default(),
        entry_max_age: None,
    };
    let dispatcher = Dispatcher::new(store.clone(), subscriptions, targets, retry, config);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(dispatcher.run(stop.clone()));
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if store.next_delivery_due().await?.is_none() {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("deliveries still pending after 10 minutes");
        }
    }
    let elapsed = started.elapsed();
    stop.cancel();
    task.await.context("the dispatcher task failed")?;
    let health = store.subscription_health(&subscription.id).await?;
    store.close().await;
    Ok(DeliveryBenchReport {
        queued: options.count,
        delivered: health.delivered_24h,
        attempts: health.attempts_24h,
        elapsed,
    })
}

/// The limit receiver on a runtime of its own; returns its address.
fn start_receiver(secret: &str) -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the receiver")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let secret = secret.to_owned();
    std::thread::Builder::new().name("bench-receiver".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build();
        if let Ok(runtime) = runtime {
            runtime.block_on(async move {
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = crate::bench::limit::serve_limit(listener, secret).await;
                }
            });
        }
    })?;
    Ok(addr)
}

/// Stores `count` unique events and commits them processed with one delivery each, as the
/// worker does, in chunks.
async fn queue_deliveries(
    store: &SharedStore,
    webhook_id: &str,
    count: u64,
    body_size: usize,
) -> anyhow::Result<()> {
    const CHUNK: u64 = 2000;
    let nonce = run_nonce();
    let mut writer = EventWriter::new(&nonce, 0, body_size);
    let mut n = 0u64;
    while n < count {
        let chunk_end = (n + CHUNK).min(count);
        let mut appends = Vec::new();
        for i in n..chunk_end {
            let body = bytes::Bytes::copy_from_slice(writer.write(i, unix_now()));
            let event = NewEvent {
                source: "bench".into(),
                event_key: writer.event_id(i),
                event_type: Some("order.updated".into()),
                body,
                headers: "{}".into(),
                client_ip: "127.0.0.1".into(),
                received_at: now_ms(),
            };
            appends.push(store.append(event));
        }
        let mut batch = ProcessedBatch::default();
        for appended in futures::future::join_all(appends).await {
            let seq = match appended? {
                crate::store::Appended::Accepted(id) | crate::store::Appended::Duplicate(id) => {
                    crate::store::seq_of(&id).context("the store answered an id that is not evt_<n>")?
                }
            };
            batch.processed.push((seq, "stored"));
            batch.deliveries.push(NewDelivery {
                seq,
                target: format!("forward:{webhook_id}"),
                webhook_id: Some(webhook_id.to_owned()),
                held: false,
                payload: None,
            });
        }
        store.commit_processed(batch).await?;
        n = chunk_end;
    }
    Ok(())
}
