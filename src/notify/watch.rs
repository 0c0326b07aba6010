//! The monitor: every `[alerts] interval` it compares the gateway's vital signs with their limits
//! and raises an alert for each one out of bounds (the throttle keeps repeats quiet).
//!
//! - `dlq`: the dead-letter queue has more entries than at the previous check (the first check
//!   only takes the baseline: a DLQ left from before a restart is not news).
//! - `backlog`: unprocessed events over `[alerts] backlog`.
//! - `lag`: 99th percentile of the processing lag of the events processed since the previous
//!   check over `[alerts] lag`. Events waiting for a retry are not lag (their wait is planned); a
//!   worker that stopped shows as `backlog` and in `/readyz`.
//! - `signature_failures`: 401 answers in the last minute over `[alerts] signature_failures`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Notifier;
use crate::config::AlertsConfig;
use crate::store::SharedStore;
use crate::worker::lag::LagTracker;

/// Window over which signature failures are counted.
const MINUTE: Duration = Duration::from_secs(60);

/// The limits the monitor checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// Time between checks.
    pub interval: Duration,
    /// Unprocessed events above which `backlog` is raised.
    pub backlog: u64,
    /// Processing lag p99 above which `lag` is raised.
    pub lag: Duration,
    /// Signature failures per minute above which `signature_failures` is raised.
    pub signature_failures_per_minute: u64,
}

impl Thresholds {
    /// The limits of `[alerts]`.
    pub fn from_config(config: &AlertsConfig) -> Thresholds {
        Thresholds {
            interval: config.interval,
            backlog: config.backlog,
            lag: config.lag,
            signature_failures_per_minute: config.signature_failures,
        }
    }
}

/// What the monitor remembers between checks.
struct Vitals {
    /// DLQ size at the previous check.
    dlq: Option<u64>,
    /// (when, signature failures since start) at past checks, covering the last minute.
    failures: VecDeque<(Instant, u64)>,
}

impl Notifier {
    /// Checks the store, the lag and the signature failures every `thresholds.interval` and
    /// raises what is out of bounds, until `shutdown`. Run it as one task per process; it is
    /// the only caller of [`LagTracker::take_recent`].
    pub async fn watch(
        self: Arc<Self>,
        store: SharedStore,
        lag: Arc<LagTracker>,
        thresholds: Thresholds,
        shutdown: CancellationToken,
    ) {
        let mut vitals = Vitals { dlq: None, failures: VecDeque::from([(Instant::now(), 0)]) };
        lag.take_recent();
        let mut tick = tokio::time::interval(thresholds.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.check(&store, &lag, &thresholds, &mut vitals).await;
        }
    }

    async fn check(&self, store: &SharedStore, lag: &LagTracker, limits: &Thresholds, vitals: &mut Vitals) {
        match store.dlq_size().await {
            Ok(size) => {
                if let Some(before) = vitals.dlq.filter(|before| size > *before) {
                    self.raise(
                        "dlq",
                        "dead-letter queue",
                        format!(
                            "the dead-letter queue grew from {before} to {size} entries; see GET /api/v1/dlq"
                        ),
                    );
                }
                vitals.dlq = Some(size);
            }
            Err(error) => self.raise("store", "dlq size", format!("cannot read the DLQ size: {error}")),
        }
        let backlog = store.backlog();
        if backlog > limits.backlog {
            self.raise(
                "backlog",
                "unprocessed events",
                format!("{backlog} events wait to be processed (limit {})", limits.backlog),
            );
        }
        let recent = lag.take_recent();
        let limit_ms = u64::try_from(limits.lag.as_millis()).unwrap_or(u64::MAX);
        if recent.count > 0 && recent.p99_ms > limit_ms {
            self.raise(
                "lag",
                "processing",
                format!(
                    "processing lag p99 is {:.1} s over the last {:?} ({} events; limit {:?})",
                    recent.p99_ms as f64 / 1000.0,
                    limits.interval,
                    recent.count,
                    limits.lag
                ),
            );
        }
        let failures = self.failures_in_last_minute(&mut vitals.failures);
        if failures > limits.signature_failures_per_minute {
            self.raise(
                "signature_failures",
                "ingest",
                format!(
                    "{failures} requests refused for a missing or invalid signature in the last minute (limit {}); \
                     see GET /api/v1/audit and tradehook_signature_failures_total by source",
                    limits.signature_failures_per_minute
                ),
            );
        }
    }

    /// Failures since the oldest sample not older than a minute (so over one minute, give or
    /// take one interval); keeps the samples that cover the minute.
    fn failures_in_last_minute(&self, samples: &mut VecDeque<(Instant, u64)>) -> u64 {
        let now = Instant::now();
        let total = self.signature_failures();
        samples.push_back((now, total));
        while samples.len() > 1 && samples.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= MINUTE) {
            samples.pop_front();
        }
        total.saturating_sub(samples.front().map_or(total, |(_, count)| *count))
    }
}
