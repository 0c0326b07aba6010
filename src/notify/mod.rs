//! Operational alerts (SPEC §6): the gateway telling its operator that something needs a look —
//! the DLQ grew, the backlog or processing lag passed its limit, signature failures spiked, an
//! endpoint keeps failing.
//!
//! Not the trading and data-quality alerts of `GET /api/v1/alerts` (those are state, kept in the
//! store); these are logged at warn and POSTed as JSON `{kind, subject, message, at, node?,
//! suppressed}` to `[alerts] url` when one is configured.
//!
//! Guarantees and costs:
//! - [`Notifier::raise`] never blocks and never fails: it takes a short lock, and hands the alert
//!   to a bounded in-memory queue; a full queue drops the alert with a warning in the log.
//! - At most one alert per (kind, subject) per `[alerts] throttle` window; repeats inside the
//!   window are counted and the count (`suppressed`) travels with the next alert sent for that key.
//! - Delivery is best effort: each alert is POSTed with a few retries and backoff, in order; alerts
//!   do not survive a restart (the log has them).
//! - Callers must not put secrets in `subject` or `message`.

mod post;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::AlertsConfig;
pub use watch::Thresholds;

/// Alerts waiting to be POSTed; more are dropped (and logged).
const QUEUE_CAPACITY: usize = 256;

/// Throttle keys remembered before windows that have passed are forgotten.
const MAX_KEYS: usize = 4096;

/// Waits between the attempts to POST one alert: three retries, then it is given up.
pub const RETRY_DELAYS: [Duration; 3] =
    [Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)];

/// One alert as the receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsAlert {
    /// What kind of problem: `dlq`, `backlog`, `lag`, `signature_failures`, `endpoint_failing`, …
    pub kind: String,
    /// What it is about (a store, a source, a webhook id); with `kind`, the throttle key.
    pub subject: String,
    /// What happened, for a person.
    pub message: String,
    /// When it was raised, RFC 3339.
    pub at: String,
    /// The gateway that raised it (`[alerts] node`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Alerts with this kind and subject suppressed by the throttle since the previous one sent.
    pub suppressed: u64,
}

/// The throttle state of one (kind, subject).
struct Window {
    /// When the last alert for the key was sent.
    opened: Instant,
    /// Repeats since then.
    suppressed: u64,
}

/// Raises operational alerts: logs them and queues them for the alert URL. Share as `Arc`.
pub struct Notifier {
    /// Where alerts go to be POSTed; `None` without `[alerts] url`.
    queue: Option<mpsc::Sender<OpsAlert>>,
    /// `[alerts] throttle`.
    window: Duration,
    /// `[alerts] node`.
    node: Option<String>,
    /// Throttle state per (kind, subject).
    recent: Mutex<HashMap<(String, String), Window>>,
    /// 401 answers for a missing or invalid signature since start.
    signature_failures: AtomicU64,
}

impl Notifier {
    /// A notifier for `[alerts]`; starts the POSTing task when a URL is configured (call inside a
    /// tokio runtime).
    pub fn new(config: &AlertsConfig) -> Notifier {
        Self::with_retry_delays(config, RETRY_DELAYS.to_vec())
    }

    /// The same with other waits between POST attempts (tests use short ones).
    pub fn with_retry_delays(config: &AlertsConfig, delays: Vec<Duration>) -> Notifier {
        let queue = config.url.as_ref().and_then(|url| post::start(url, QUEUE_CAPACITY, delays));
        Notifier {
            queue,
            window: config.throttle,
            node: config.node.clone(),
            recent: Mutex::new(HashMap::new()),
            signature_failures: AtomicU64::new(0),
        }
    }

    /// Raises an alert: logs it at warn and queues it for the alert URL, unless an alert with the
    /// same `kind` and `subject` went out within the throttle window. Never blocks.
    pub fn raise(&self, kind: &str, subject: &str, message: String) {
        let Some(suppressed) = self.admit(kind, subject) else {
            metrics::counter!("tradehook_ops_alerts_total", "outcome" => "suppressed").increment(1);
            tracing::debug!(kind, subject, %message, "alert suppressed by the throttle");
            return;
        };
        tracing::warn!(kind, subject, suppressed, "alert: {message}");
        let Some(queue) = &self.queue else { return };
        let alert = OpsAlert {
            kind: kind.to_string(),
            subject: subject.to_string(),
            message,
            at: crate::store::rfc3339(crate::store::now_ms()),
            node: self.node.clone(),
            suppressed,
        };
        match queue.try_send(alert) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(alert)) => {
                metrics::counter!("tradehook_ops_alerts_total", "outcome" => "dropped").increment(1);
                tracing::warn!(kind = %alert.kind, subject = %alert.subject, "alert queue full; alert dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Counts one request refused for a missing or invalid signature (ingest's 401).
    pub fn count_signature_failure(&self) {
        self.signature_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Signature failures counted since start.
    pub fn signature_failures(&self) -> u64 {
        self.signature_failures.load(Ordering::Relaxed)
    }

    /// `Some(suppressed repeats)` when an alert for the key may go out now, `None` when the
    /// throttle holds it back.
    fn admit(&self, kind: &str, subject: &str) -> Option<u64> {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind.to_string(), subject.to_string());
        if let Some(window) = recent.get_mut(&key) {
            if now.duration_since(window.opened) < self.window {
                window.suppressed += 1;
                return None;
            }
            let suppressed = window.suppressed;
            *window = Window { opened: now, suppressed: 0 };
            return Some(suppressed);
        }
        if recent.len() >= MAX_KEYS {
            // Keys whose window has passed admit the next alert anyway; forgetting them loses
            // only their count of suppressed repeats.
            recent.retain(|_, w| now.duration_since(w.opened) < self.window);
        }
        recent.insert(key, Window { opened: now, suppressed: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests;
